//! Validated names and the JSON shapes of the Hub API.
//!
//! Everything the Hub sends is hostile input: repo ids, revisions and file paths are checked
//! here before any of them reaches a URL or the filesystem, and JSON is parsed into these
//! types (unknown fields ignored, missing required ones rejected).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::registry::RepoKind;

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
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `s` is a lowercase 64-hex sha256.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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
    pub lfs_sha256: Option<String>,
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
    if raw.oid.len() != 40 || !raw.oid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(TreeEntryError::Oid(raw.path, raw.oid));
    }
    let lfs_sha256 = match raw.lfs {
        Some(lfs) => {
            let oid = lfs.oid.to_ascii_lowercase();
            if !is_sha256_hex(&oid) {
                return Err(TreeEntryError::Oid(raw.path, lfs.oid));
            }
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

    proptest::proptest! {
        /// No input panics, and no accepted path escapes the repo.
        #[test]
        fn accepted_paths_stay_inside(path in "\\PC{0,40}", bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            for candidate in [path.clone(), String::from_utf8_lossy(&bytes).into_owned()] {
                if let Ok(ok) = validate_repo_path(&candidate) {
                    let joined = std::path::Path::new("/repo").join(ok);
                    let mut depth = 0i32;
                    for component in joined.components().skip(2) {
                        match component {
                            std::path::Component::Normal(_) => depth += 1,
                            other => proptest::prop_assert!(false, "{other:?} in {ok:?}"),
                        }
                    }
                    proptest::prop_assert!(depth >= 1);
                }
                let _ = RepoId::parse(&candidate);
                let _ = Revision::parse(&candidate);
                let _ = candidate.parse::<RepoRef>();
            }
        }

        /// Arbitrary JSON in the tree listing is refused or accepted, never a panic.
        #[test]
        fn tree_json_never_panics(kind in "(file|directory|[a-z]{0,5})", path in "[a-z./\\\\]{0,12}", oid in "[0-9a-f]{0,41}", size in proptest::prelude::any::<u64>(), lfs_size in proptest::prelude::any::<u64>(), garbage in "\\PC{0,30}") {
            let doc = serde_json::json!([{"type": kind, "path": path, "oid": oid, "size": size, "lfs": {"oid": oid, "size": lfs_size}}]);
            if let Ok(entries) = serde_json::from_value::<Vec<RawTreeEntry>>(doc) {
                for entry in entries {
                    if let Ok(Some(file)) = check_tree_entry(entry) {
                        proptest::prop_assert!(validate_repo_path(&file.path).is_ok());
                    }
                }
            }
            let _ = serde_json::from_str::<Vec<RawTreeEntry>>(&garbage);
            let _ = serde_json::from_str::<RepoInfo>(&garbage);
        }
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
