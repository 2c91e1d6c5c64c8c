//! Shared pieces of the property tests that feed hostile input to Larder's parsers.
//!
//! Every such property lives in a `fuzz` module beside the code it exercises, so that
//! `cargo test fuzz` (and `bench/fuzz`, which runs them with many more cases in release mode)
//! finds them all. They use proptest's default configuration: 256 cases, or `PROPTEST_CASES`
//! from the environment.

use std::path::{Component, Path};

use proptest::prelude::*;

/// Pieces that names, revisions and paths are made of, the harmless ones beside the ones a
/// validator has to refuse: separators, dot segments, control and format characters, URL
/// escapes, Windows drive prefixes, git's forbidden characters and the reserved words.
const PIECES: &[&str] = &[
    "a", "Z", "0", "9", "model", "main", "refs", "pr", "HEAD", "x.lock", ".lock", "-", "_", ".",
    "..", "...", "/", "//", "@", "\\", "\0", "\n", "\t", " ", "~", "^", ":", "?", "*", "[", "#",
    "%", "%2e", "%2F", "%00", "C:", "c:", "\u{202E}", "\u{200B}", "\u{FEFF}", "é", "日本",
    "\u{7f}", "\u{85}", "--", "-.", ".-",
];

/// Strings of up to `max_pieces` of [`PIECES`], the shapes validators get wrong.
pub fn hostile_text(max_pieces: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(PIECES), 0..=max_pieces)
        .prop_map(|pieces| pieces.concat())
}

/// Either [`hostile_text`] or any printable string.
pub fn any_text(max_pieces: usize) -> impl Strategy<Value = String> {
    prop_oneof![hostile_text(max_pieces), "\\PC{0,40}", ".{0,20}"]
}

/// Whether `relative`, joined onto a directory, names something strictly inside it: at least
/// one component and only plain ones (no root, prefix, `.` or `..`), checked both as `std`
/// reads the path and segment by segment (`std` quietly drops a `.` in the middle, and a
/// backslash separates on Windows).
pub fn stays_inside(relative: &str) -> bool {
    let mut components = Path::new(relative).components().peekable();
    components.peek().is_some()
        && components.all(|c| matches!(c, Component::Normal(_)))
        && relative
            .split(['/', '\\'])
            .all(|segment| !matches!(segment, "" | "." | ".."))
}
