//! Validated names and the JSON shapes of the Hub API.
//!
//! Everything the Hub sends is hostile input: repo ids, revisions and file paths are checked
//! here before any of them reaches a URL or the filesystem, and JSON is parsed into these
//! types (unknown fields ignored, missing required ones rejected).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::registry::{RepoKind, Sha256, is_lower_hex};

/// Longest repo id the Hub accepts.
const MAX_REPO_ID_LEN: usize = 96;
/// Longest revision we accept (branch and tag names are far shorter in practice).
const MAX_REVISION_LEN: usize = 255;
/// Longest file path we accept inside a repo.
const MAX_PATH_LEN: usize = 1024;

/// Why a name was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    /// The repo id does not have the `org/name` (or legacy `name`) shape.
    #[error(
        "`{0}` is not a valid repo id: use ORG/NAME made of letters, digits, `-`, `_` and `.` \
         (at most 96 characters, no `--` or `..`, not starting or ending with `-` or `.`)"
    )]
    RepoId(String),
    /// The revision is empty, too long or contains characters no git ref can hold.
    #[error("`{0}` is not a valid revision: give a branch, tag, 40-hex commit or refs/pr/N")]
    Revision(String),
    /// A file path that could escape the repo or is not a plain relative path.
    #[error("refusing file path {0:?}: {1}")]
    Path(String, &'static str),
    /// An unknown repo type.
    #[error("unknown repo type `{0}`: use `model` or `dataset`")]
    RepoType(String),
}

/// The kind of repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RepoType {
    /// A model repo (`/api/models`, no URL prefix).
    #[default]
    Model,
    /// A dataset repo (`/api/datasets`, `datasets/` prefix).
    Dataset,
}

impl RepoType {
    /// The singular name: `model` or `dataset`.
    pub fn as_str(self) -> &'static str {
        match self {
            RepoType::Model => "model",
            RepoType::Dataset => "dataset",
        }
    }

    /// The API path segment: `models` or `datasets`.
    pub fn api_segment(self) -> &'static str {
        match self {
            RepoType::Model => "models",
            RepoType::Dataset => "datasets",
        }
    }

    /// The prefix of download URLs: empty for models, `datasets/` for datasets.
    pub fn url_prefix(self) -> &'static str {
        match self {
            RepoType::Model => "",
            RepoType::Dataset => "datasets/",
        }
    }
}

impl From<RepoType> for RepoKind {
    fn from(kind: RepoType) -> RepoKind {
        match kind {
            RepoType::Model => RepoKind::Model,
            RepoType::Dataset => RepoKind::Dataset,
        }
    }
}

impl From<RepoKind> for RepoType {
    fn from(kind: RepoKind) -> RepoType {
        match kind {
            RepoKind::Model => RepoType::Model,
            RepoKind::Dataset => RepoType::Dataset,
        }
    }
}

impl FromStr for RepoType {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "model" | "models" => Ok(RepoType::Model),
            "dataset" | "datasets" => Ok(RepoType::Dataset),
            other => Err(NameError::RepoType(other.to_owned())),
        }
    }
}

impl fmt::Display for RepoType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated repo id: `org/name`, or a legacy one-segment `name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct RepoId(String);

impl RepoId {
    /// Validate a repo id.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let bad = || NameError::RepoId(raw.to_owned());
        if raw.is_empty() || raw.len() > MAX_REPO_ID_LEN {
            return Err(bad());
        }
        let segments: Vec<&str> = raw.split('/').collect();
        if segments.len() > 2 {
            return Err(bad());
        }
        for segment in segments {
            let ok_chars = segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            let ok_edges = !segment.is_empty()
                && !segment.starts_with(['-', '.'])
                && !segment.ends_with(['-', '.']);
            if !ok_chars || !ok_edges || segment.contains("--") || segment.contains("..") {
                return Err(bad());
            }
        }
        Ok(RepoId(raw.to_owned()))
    }

    /// The id as written: `org/name`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated revision: a branch, tag, `refs/pr/N`, `refs/convert/...` or a commit sha.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Revision(String);

impl Revision {
    /// Validate a revision name. `HEAD` names the default branch, as on the Hub (whose
    /// default branch is `main`), so it becomes `main`.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        if raw == DEFAULT_BRANCH_ALIAS {
            return Ok(Revision::main());
        }
        let bad = || NameError::Revision(raw.to_owned());
        if raw.is_empty() || raw.len() > MAX_REVISION_LEN {
            return Err(bad());
        }
        // The characters git forbids in ref names, plus anything that would confuse a URL
        // path segment once decoded.
        let forbidden = |c: char| {
            c.is_control()
                || c.is_whitespace()
                || matches!(c, '~' | '^' | ':' | '?' | '*' | '[' | '\\')
        };
        if raw.chars().any(forbidden)
            || raw.contains("..")
            || raw.contains("//")
            || raw.starts_with('/')
            || raw.ends_with('/')
            || raw.ends_with(".lock")
            || raw.split('/').any(|c| c == "." || c.starts_with('.'))
        {
            return Err(bad());
        }
        Ok(Revision(raw.to_owned()))
    }

    /// `main`.
    pub fn main() -> Self {
        Revision("main".to_owned())
    }

    /// The revision as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a full 40-hex commit sha.
    pub fn is_commit(&self) -> bool {
        is_commit_sha(&self.0)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The revision that names the default branch (`main` on the Hub).
pub const DEFAULT_BRANCH_ALIAS: &str = "HEAD";

/// Whether `s` is a full lowercase 40-hex git commit id.
pub fn is_commit_sha(s: &str) -> bool {
    is_lower_hex(s, 40)
}

/// Whether `s` is a lowercase 64-hex sha256.
pub fn is_sha256_hex(s: &str) -> bool {
    is_lower_hex(s, 64)
}

/// Check a file path from an upstream listing: relative, `/`-separated, no `..`, `.`,
/// empty segments, backslashes or NUL. Returns the path unchanged when it is safe.
pub fn validate_repo_path(path: &str) -> Result<&str, NameError> {
    let refuse = |why| Err(NameError::Path(path.to_owned(), why));
    if path.is_empty() {
        return refuse("empty path");
    }
    if path.len() > MAX_PATH_LEN {
        return refuse("path too long");
    }
    if path.contains('\0') {
        return refuse("contains NUL");
    }
    if path.contains('\\') {
        return refuse("contains a backslash");
    }
    if path.starts_with('/') {
        return refuse("absolute path");
    }
    if path.chars().any(char::is_control) {
        return refuse("contains a control character");
    }
    if path.chars().any(is_format_char) {
        return refuse("contains a bidi override or another invisible format character");
    }
    for segment in path.split('/') {
        match segment {
            "" => return refuse("empty path segment"),
            "." | ".." => return refuse("`.` or `..` segment"),
            _ => {}
        }
    }
    // A Windows drive prefix such as `C:` would be absolute there.
    if path.len() >= 2 && path.as_bytes()[1] == b':' && path.as_bytes()[0].is_ascii_alphabetic() {
        return refuse("drive-letter path");
    }
    Ok(path)
}

/// Unicode format characters (general category Cf): bidi overrides and isolates, zero-width
/// joiners and spaces, the BOM, tags. They render as nothing, or reorder what is around them, so
/// a name holding one can pass for another.
pub fn is_format_char(c: char) -> bool {
    matches!(
        c as u32,
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x890..=0x891
            | 0x8E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// `ORG/NAME[@REV]` as typed on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRef {
    /// The repo.
    pub id: RepoId,
    /// The revision, if one was given.
    pub revision: Option<Revision>,
}

impl FromStr for RepoRef {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('@') {
            Some((id, rev)) => Ok(RepoRef {
                id: RepoId::parse(id)?,
                revision: Some(Revision::parse(rev)?),
            }),
            None => Ok(RepoRef {
                id: RepoId::parse(s)?,
                revision: None,
            }),
        }
    }
}

/// The gate mode in repo info: `false`, `"auto"` or `"manual"` (anything else is kept as text).
pub fn gate_mode(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Bool(true) => Some("true".to_owned()),
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// One sibling of repo info (only `rfilename` is required).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Sibling {
    /// Path of the file in the repo.
    pub rfilename: String,
}

/// The subset of `/api/{type}s/{repo}/revision/{rev}` Larder uses.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RepoInfo {
    /// `org/name` as the Hub spells it.
    pub id: String,
    /// The commit the revision resolved to.
    #[serde(default)]
    pub sha: Option<String>,
    /// Whether the repo is private.
    #[serde(default)]
    pub private: bool,
    /// The gate: `false`, `"auto"` or `"manual"`; see [`gate_mode`].
    #[serde(default)]
    pub gated: serde_json::Value,
    /// Whether the Hub disabled the repo.
    #[serde(default)]
    pub disabled: bool,
    /// Tags, including `license:<id>` and `base_model:...`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The model card's YAML front matter as JSON.
    #[serde(default, rename = "cardData")]
    pub card_data: Option<serde_json::Value>,
    /// Siblings (may be absent or incomplete; the tree listing is authoritative).
    #[serde(default)]
    pub siblings: Vec<Sibling>,
}

impl RepoInfo {
    /// A string field of the card, if present and a string.
    pub fn card_str(&self, key: &str) -> Option<String> {
        self.card_data
            .as_ref()
            .and_then(|c| c.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    }
}

/// The `lfs` object of a tree entry.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct LfsInfo {
    /// sha256 of the content.
    pub oid: String,
    /// Size of the content in bytes.
    pub size: u64,
    /// Size of the pointer file.
    #[serde(default, rename = "pointerSize")]
    pub pointer_size: Option<u64>,
}

/// One entry of the tree listing, as sent by the Hub.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RawTreeEntry {
    /// `file` or `directory`.
    #[serde(rename = "type")]
    pub kind: String,
    /// git blob (or tree) sha1.
    pub oid: String,
    /// Size in bytes (the real content size for LFS files).
    #[serde(default)]
    pub size: u64,
    /// Full path from the repo root.
    pub path: String,
    /// Present for LFS files.
    #[serde(default)]
    pub lfs: Option<LfsInfo>,
    /// The Xet file hash, for files stored in Xet.
    #[serde(default, rename = "xetHash", skip_serializing_if = "Option::is_none")]
    pub xet_hash: Option<String>,
}

/// A checked file entry of a commit's tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepoFile {
    /// Validated relative path.
    pub path: String,
    /// Content size in bytes.
    pub size: u64,
    /// git blob oid (of the pointer, for LFS files).
    pub git_oid: String,
    /// sha256 of the content, for LFS files.
    pub lfs_sha256: Option<Sha256>,
    /// The Xet file hash (64 hex), for LFS files the upstream stores in Xet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xet_hash: Option<String>,
}

impl RepoFile {
    /// Whether the file is stored in LFS.
    pub fn is_lfs(&self) -> bool {
        self.lfs_sha256.is_some()
    }
}

/// Turn a raw tree entry into a checked file (directories give `None`).
pub fn check_tree_entry(raw: RawTreeEntry) -> Result<Option<RepoFile>, TreeEntryError> {
    if raw.kind == "directory" {
        validate_repo_path(&raw.path).map_err(TreeEntryError::Name)?;
        return Ok(None);
    }
    if raw.kind != "file" {
        return Err(TreeEntryError::Kind(raw.path, raw.kind));
    }
    validate_repo_path(&raw.path).map_err(TreeEntryError::Name)?;
    // The registry keeps sizes as SQLite integers (i64).
    if raw.size > MAX_FILE_SIZE {
        return Err(TreeEntryError::TooBig(raw.path, raw.size));
    }
    if !is_lower_hex(&raw.oid, 40) {
        return Err(TreeEntryError::Oid(raw.path, raw.oid));
    }
    let lfs_sha256 = match raw.lfs {
        Some(lfs) => {
            let Ok(oid) = Sha256::parse(&lfs.oid.to_ascii_lowercase()) else {
                return Err(TreeEntryError::Oid(raw.path, lfs.oid));
            };
            if lfs.size != raw.size {
                return Err(TreeEntryError::Size(raw.path, raw.size, lfs.size));
            }
            Some(oid)
        }
        None => None,
    };
    // A malformed Xet hash only costs the Xet path: the file is then fetched over HTTP.
    let xet_hash = raw
        .xet_hash
        .map(|h| h.to_ascii_lowercase())
        .filter(|h| lfs_sha256.is_some() && is_sha256_hex(h));
    Ok(Some(RepoFile {
        path: raw.path,
        size: raw.size,
        git_oid: raw.oid.to_ascii_lowercase(),
        lfs_sha256,
        xet_hash,
    }))
}

/// A tree entry that cannot be trusted.
#[derive(Debug, thiserror::Error)]
pub enum TreeEntryError {
    /// Unsafe path.
    #[error(transparent)]
    Name(NameError),
    /// Neither `file` nor `directory`.
    #[error("tree entry {0:?} has unknown type {1:?}")]
    Kind(String, String),
    /// Malformed oid.
    #[error("tree entry {0:?} has a malformed object id {1:?}")]
    Oid(String, String),
    /// The LFS size disagrees with the entry's size.
    #[error("tree entry {0:?} says size {1} but its LFS record says {2}")]
    Size(String, u64, u64),
    /// A size no file can have (beyond what the registry can count).
    #[error("tree entry {0:?} says size {1}, more than any file can hold")]
    TooBig(String, u64),
    /// The sizes of the listing add up beyond what the registry can count.
    #[error("the listed sizes add up to more than {} bytes", MAX_FILE_SIZE)]
    TotalTooBig,
    /// One path is listed both as a file and as a folder holding other files.
    #[error("{0:?} is listed both as a file and as the folder of {1:?}")]
    FileIsFolder(String, String),
}

/// Largest size a listed file (or a whole listing) may have: what an SQLite integer holds.
pub const MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// Orders a commit's checked files by path, keeps the first of any path listed twice (pages
/// can overlap) and checks the whole list with [`check_tree_files`].
pub fn finish_tree_files(mut files: Vec<RepoFile>) -> Result<Vec<RepoFile>, TreeEntryError> {
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    check_tree_files(&files)?;
    Ok(files)
}

/// Checks a whole commit's checked file list: no path is both a file and a folder of another
/// listed file, and the sizes add up to something countable.
pub fn check_tree_files(files: &[RepoFile]) -> Result<(), TreeEntryError> {
    let paths: std::collections::HashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    for file in files {
        let mut end = file.path.len();
        while let Some(slash) = file.path[..end].rfind('/') {
            let folder = &file.path[..slash];
            if paths.contains(folder) {
                return Err(TreeEntryError::FileIsFolder(
                    folder.to_owned(),
                    file.path.clone(),
                ));
            }
            end = slash;
        }
    }
    files
        .iter()
        .try_fold(0u64, |total, f| total.checked_add(f.size))
        .filter(|total| *total <= MAX_FILE_SIZE)
        .map(|_| ())
        .ok_or(TreeEntryError::TotalTooBig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids() {
        for ok in ["gpt2", "org/name", "a/b", "Org-1/My_model.v2", "x.y/z"] {
            assert!(RepoId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "/", "a/", "/a", "a/b/c", "a//b", "../x", "a/..", "a/b c", "a--b/c", "-a/b",
            "a/b.", "a\0/b", "a/b?x", "a/%2e%2e",
        ] {
            assert!(RepoId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(RepoId::parse(&"a".repeat(97)).is_err());
    }

    #[test]
    fn revisions() {
        for ok in [
            "main",
            "v1.0",
            "refs/pr/1",
            "refs/convert/parquet",
            "feature/x-y",
        ] {
            assert!(Revision::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a b", "../x", "a/../b", "a\0", "/main", "main/", "a//b", "x.lock", ".hidden",
        ] {
            assert!(Revision::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paths() {
        for ok in [
            "config.json",
            "a/b/c.bin",
            "weird name#1.txt",
            "ünï.json",
            "..hidden",
        ] {
            assert!(validate_repo_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a\\b",
            "a\0b",
            "C:x",
            "a/",
            "x\n",
        ] {
            assert!(validate_repo_path(bad).is_err(), "{bad:?}");
        }
    }

    /// A duplicate path keeps its first entry; a file that is also a folder is refused.
    #[test]
    fn tree_duplicates_and_folders() {
        let entry = |path: &str, size: u64| serde_json::json!({"type": "file", "path": path, "oid": "a".repeat(40), "size": size});
        let body = serde_json::to_vec(&[entry("a", 1), entry("a", 2)]).unwrap();
        let files = super::fuzz::checked_listing(&body).unwrap();
        assert_eq!((files.len(), files[0].size), (1, 1));
        let body = serde_json::to_vec(&[entry("a/b", 1), entry("a", 2)]).unwrap();
        assert!(super::fuzz::checked_listing(&body).is_none());
        let body = serde_json::to_vec(&[entry("a", MAX_FILE_SIZE), entry("b", 1)]).unwrap();
        assert!(super::fuzz::checked_listing(&body).is_none());
    }

    #[test]
    fn repo_ref() {
        let r: RepoRef = "org/name@refs/pr/1".parse().unwrap();
        assert_eq!(r.id.as_str(), "org/name");
        assert_eq!(r.revision.unwrap().as_str(), "refs/pr/1");
        assert!("org/name@".parse::<RepoRef>().is_err());
        let head: RepoRef = "org/name@HEAD".parse().unwrap();
        assert_eq!(head.revision.unwrap().as_str(), "main");
    }
}

/// Property tests: hostile repo ids, revisions, paths and tree listings (see `crate::fuzzing`).
#[cfg(test)]
mod fuzz {
    use super::*;
    use crate::bundle::hf_cache::repo_folder;
    use crate::fuzzing::{any_text, hostile_text, stays_inside};
    use proptest::prelude::*;

    /// One segment of a repo id the Hub would accept.
    fn id_segment() -> BoxedStrategy<String> {
        "[A-Za-z0-9]([A-Za-z0-9_]|[-.][A-Za-z0-9_]){0,12}".boxed()
    }

    /// A revision the Hub would accept: `/`-separated names that start with a letter or digit.
    fn revision_text() -> BoxedStrategy<String> {
        proptest::collection::vec("[A-Za-z0-9][A-Za-z0-9_.-]{0,10}[A-Za-z0-9_-]", 1..4)
            .prop_map(|parts| parts.join("/"))
            .prop_filter("git refuses `.lock` names and `..`", |r| {
                !r.ends_with(".lock") && !r.contains("..")
            })
            .boxed()
    }

    /// Mostly well-formed text with a hostile piece spliced in, or anything.
    fn near_miss(valid: BoxedStrategy<String>) -> impl Strategy<Value = String> {
        prop_oneof![
            1 => any_text(12),
            1 => valid.clone(),
            3 => (valid.clone(), hostile_text(2), valid).prop_map(|(a, h, b)| format!("{a}{h}{b}")),
        ]
    }

    fn repo_id_text() -> impl Strategy<Value = String> {
        near_miss(id_segment())
    }

    fn check_repo_id(id: &RepoId) -> Result<(), TestCaseError> {
        let text = id.as_str();
        prop_assert!(!text.is_empty() && text.len() <= MAX_REPO_ID_LEN);
        prop_assert!(text.split('/').count() <= 2);
        prop_assert!(stays_inside(text), "{text:?} escapes");
        prop_assert!(text.is_ascii());
        // The cache folder is one plain component, and gives the id back.
        for kind in [RepoKind::Model, RepoKind::Dataset] {
            let folder = repo_folder(kind, text);
            prop_assert!(stays_inside(&folder) && !folder.contains('/'), "{folder:?}");
            let (_, rest) = folder.split_once("--").unwrap();
            prop_assert_eq!(rest.replace("--", "/"), text);
        }
        prop_assert_eq!(RepoId::parse(text), Ok(id.clone()));
        Ok(())
    }

    fn check_revision(revision: &Revision) -> Result<(), TestCaseError> {
        let text = revision.as_str();
        prop_assert!(!text.is_empty() && text.len() <= MAX_REVISION_LEN);
        // A revision names a file under `refs/` in an HF cache: it must stay there.
        prop_assert!(stays_inside(text), "{text:?} escapes");
        prop_assert!(!text.chars().any(|c| c.is_control() || c.is_whitespace()));
        prop_assert!(text.split('/').all(|part| !part.starts_with('.')));
        prop_assert_eq!(Revision::parse(text), Ok(revision.clone()));
        Ok(())
    }

    proptest! {
        /// Whatever is typed as `ORG/NAME[@REV]`: no panic, and what is accepted is a bounded
        /// name that stays inside any directory it is joined onto, and parses back to itself.
        #[test]
        fn names_hostile_repo_refs(text in repo_id_text(), rev in near_miss(revision_text())) {
            for candidate in [text.clone(), format!("{text}@{rev}"), format!("org/{text}")] {
                if let Ok(parsed) = candidate.parse::<RepoRef>() {
                    check_repo_id(&parsed.id)?;
                    if let Some(revision) = &parsed.revision {
                        check_revision(revision)?;
                    }
                }
                if let Ok(id) = RepoId::parse(&candidate) {
                    check_repo_id(&id)?;
                }
                if let Ok(revision) = Revision::parse(&candidate) {
                    check_revision(&revision)?;
                }
            }
        }

        /// Well-formed ids and revisions are accepted, unchanged.
        #[test]
        fn names_valid_repo_refs_round_trip(
            org in id_segment(),
            name in id_segment(),
            revision in revision_text(),
        ) {
            let text = format!("{org}/{name}@{revision}");
            let parsed: RepoRef = text.parse().map_err(|e| TestCaseError::fail(format!("{e}")))?;
            prop_assert_eq!(parsed.id.as_str(), format!("{org}/{name}"));
            prop_assert_eq!(parsed.revision.as_ref().map(Revision::as_str), Some(revision.as_str()));
            check_repo_id(&parsed.id)?;
            prop_assert!(RepoId::parse(&name).is_ok());
        }

        /// No path panics the validator, and no accepted path escapes the repo or hides
        /// characters that could pass it off as another.
        #[test]
        fn names_hostile_paths(
            text in near_miss("[a-z]{1,3}(/[a-z.]{1,3}){0,2}".boxed()),
            bytes in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            for candidate in [text.clone(), String::from_utf8_lossy(&bytes).into_owned()] {
                if let Ok(path) = validate_repo_path(&candidate) {
                    prop_assert!(stays_inside(path), "{path:?} escapes");
                    prop_assert!(path.len() <= MAX_PATH_LEN);
                    prop_assert!(!path.chars().any(|c| c.is_control() || is_format_char(c)));
                    prop_assert!(!path.starts_with(|c: char| c.is_ascii_alphabetic()) || path.as_bytes().get(1) != Some(&b':'));
                }
            }
        }

        /// Over-long names are refused, never cut.
        #[test]
        fn names_length_caps(extra in 1usize..300) {
            prop_assert!(RepoId::parse(&"a".repeat(MAX_REPO_ID_LEN + extra)).is_err());
            prop_assert!(Revision::parse(&"r".repeat(MAX_REVISION_LEN + extra)).is_err());
            let long = "d/".repeat((MAX_PATH_LEN + extra) / 2) + "f";
            prop_assert!(validate_repo_path(&long).is_err());
        }
    }

    /// One tree entry as the Hub might send it, with each field right, wrong or missing.
    fn tree_entry() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::{Value, json};
        let kind = prop_oneof![
            12 => Just(json!("file")),
            2 => Just(json!("directory")),
            1 => Just(json!("symlink")),
            1 => Just(json!(7)),
        ];
        let path = prop_oneof![
            12 => "[a-c]{1,2}(/[a-c]{1,2}){0,2}".prop_map(Value::from),
            2 => hostile_text(6).prop_map(Value::from),
            1 => Just(Value::Null),
        ];
        let oid = prop_oneof![
            12 => "[0-9a-f]{40}".prop_map(Value::from),
            1 => "[0-9A-F]{40}".prop_map(Value::from),
            1 => "[0-9a-z]{0,41}".prop_map(Value::from),
        ];
        let sha256 = prop_oneof![
            12 => "[0-9a-f]{64}".prop_map(Value::from),
            1 => "[0-9A-Fa-f]{64}".prop_map(Value::from),
            1 => "[0-9a-z]{0,65}".prop_map(Value::from),
        ];
        let size = prop_oneof![
            16 => (0u64..5000).prop_map(Value::from),
            1 => Just(Value::from(MAX_FILE_SIZE)),
            1 => Just(Value::from(MAX_FILE_SIZE + 1)),
            1 => Just(Value::from(u64::MAX)),
            2 => (MAX_FILE_SIZE / 4..MAX_FILE_SIZE).prop_map(Value::from),
            1 => Just(json!(-1)),
            1 => Just(json!(1.5)),
            1 => Just(json!("12")),
        ];
        let lfs = prop_oneof![
            6 => Just(None),
            6 => Just(Some(None)),
            1 => (sha256.clone(), size.clone()).prop_map(|(oid, size)| Some(Some((oid, size)))),
        ];
        let xet_hash = proptest::option::of(sha256.clone());
        (kind, path, oid, size, lfs, xet_hash).prop_map(|(kind, path, oid, size, lfs, xet)| {
            let mut entry = json!({"type": kind, "path": path, "oid": oid, "size": size});
            match lfs {
                None => {}
                // The LFS record of a sound entry repeats its size.
                Some(None) => {
                    entry["lfs"] = json!({"oid": "ab".repeat(32), "size": size, "pointerSize": 133})
                }
                Some(Some((oid, size))) => entry["lfs"] = json!({"oid": oid, "size": size}),
            }
            if let Some(hash) = xet {
                entry["xetHash"] = hash;
            }
            entry
        })
    }

    /// Parses and checks one listing the way `HubClient::list_files` does.
    pub(super) fn checked_listing(body: &[u8]) -> Option<Vec<RepoFile>> {
        let entries: Vec<RawTreeEntry> = serde_json::from_slice(body).ok()?;
        let mut files = Vec::new();
        for raw in entries {
            if let Some(file) = check_tree_entry(raw).ok()? {
                files.push(file);
            }
        }
        finish_tree_files(files).ok()
    }

    fn check_listing(files: &[RepoFile]) -> Result<(), TestCaseError> {
        let mut total = 0u64;
        for file in files {
            prop_assert!(validate_repo_path(&file.path).is_ok());
            prop_assert!(stays_inside(&file.path), "{:?} escapes", file.path);
            prop_assert!(file.size <= MAX_FILE_SIZE);
            total = total
                .checked_add(file.size)
                .ok_or_else(|| TestCaseError::fail("total overflows"))?;
            prop_assert!(is_commit_sha(&file.git_oid), "{:?}", file.git_oid);
            if let Some(sha) = &file.lfs_sha256 {
                prop_assert!(is_sha256_hex(sha));
            }
            if let Some(hash) = &file.xet_hash {
                prop_assert!(file.is_lfs() && is_sha256_hex(hash));
            }
        }
        prop_assert!(total <= MAX_FILE_SIZE);
        for pair in files.windows(2) {
            prop_assert!(pair[0].path < pair[1].path, "not sorted and unique");
        }
        let paths: std::collections::HashSet<&str> =
            files.iter().map(|f| f.path.as_str()).collect();
        for file in files {
            for (at, _) in file.path.match_indices('/') {
                prop_assert!(
                    !paths.contains(&file.path[..at]),
                    "{} is a file and a folder",
                    &file.path[..at]
                );
            }
        }
        Ok(())
    }

    proptest! {
        /// A tree listing of hostile entries: what is accepted has sound sizes, oids and
        /// paths that stay inside the repo, none of them both a file and a folder.
        #[test]
        fn tree_hostile_listings(entries in proptest::collection::vec(tree_entry(), 0..8)) {
            let body = serde_json::to_vec(&entries).unwrap();
            if let Some(files) = checked_listing(&body) {
                check_listing(&files)?;
            }
        }

        /// Arbitrary bytes as a tree listing or repo info: an error, never a panic.
        #[test]
        fn tree_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300), text in any_text(20)) {
            for body in [bytes.as_slice(), text.as_bytes()] {
                if let Some(files) = checked_listing(body) {
                    check_listing(&files)?;
                }
                let _ = serde_json::from_slice::<RepoInfo>(body);
            }
        }

        /// Repo info of any shape parses or is refused; what parses is read without panics.
        #[test]
        fn tree_hostile_repo_info(
            id in any_text(6),
            sha in prop_oneof!["[0-9a-f]{40}", "[0-9a-z]{0,41}"],
            gated in prop_oneof![Just(serde_json::json!(false)), Just(serde_json::json!("auto")), Just(serde_json::json!(true)), Just(serde_json::json!(3)), Just(serde_json::json!(null))],
            siblings in proptest::collection::vec(any_text(6), 0..4),
            card in prop_oneof![Just(serde_json::json!(null)), Just(serde_json::json!({"license": "mit"})), Just(serde_json::json!({"license": ["a", 1]})), Just(serde_json::json!([1]))],
        ) {
            let siblings: Vec<_> = siblings.iter().map(|s| serde_json::json!({"rfilename": s})).collect();
            let doc = serde_json::json!({"id": id, "sha": sha, "gated": gated, "siblings": siblings, "cardData": card, "tags": ["license:mit"]});
            if let Ok(info) = serde_json::from_value::<RepoInfo>(doc) {
                let _ = gate_mode(&info.gated);
                let _ = info.card_str("license");
            }
        }
    }
}
