//! The plain data types of the registry's API: what callers record ([`SnapshotRecord`],
//! [`BlobRecord`]) and what queries return ([`RepoSummary`], [`CommitDetail`], ...).
//!
//! They hold no connection and no behaviour beyond conversions; they serialize with the field
//! names as written (snake_case) because the CLI prints them with `--json`.

use std::fmt;
use std::str::FromStr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Serialize};

use crate::digest::{CommitId, Sha256};

/// Whether a repository holds a model or a dataset (the Hub's two repo types we mirror).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum RepoKind {
    /// `api/models/...`
    #[default]
    Model,
    /// `api/datasets/...`
    Dataset,
}

impl RepoKind {
    /// Both kinds, in [`RepoKind::index`] order.
    pub const ALL: [RepoKind; 2] = [RepoKind::Model, RepoKind::Dataset];

    /// A dense index (0 for models, 1 for datasets), for per-kind counters.
    pub fn index(self) -> usize {
        match self {
            RepoKind::Model => 0,
            RepoKind::Dataset => 1,
        }
    }

    /// The lowercase name used in the database, on the command line and in JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            RepoKind::Model => "model",
            RepoKind::Dataset => "dataset",
        }
    }
}

impl fmt::Display for RepoKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`RepoKind`] from a string other than `model` or `dataset`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown repo kind {0:?} (expected `model` or `dataset`)")]
pub struct ParseRepoKindError(pub String);

impl FromStr for RepoKind {
    type Err = ParseRepoKindError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "model" => Ok(RepoKind::Model),
            "dataset" => Ok(RepoKind::Dataset),
            other => Err(ParseRepoKindError(other.to_owned())),
        }
    }
}

impl ToSql for RepoKind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for RepoKind {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|err| FromSqlError::Other(Box::new(err)))
    }
}

/// Everything one pull learned about one commit, recorded in one transaction by
/// [`Registry::record_snapshot`](crate::Registry::record_snapshot).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// Model or dataset.
    pub kind: RepoKind,
    /// `org/name`.
    pub name: String,
    /// The endpoint URL it came from.
    pub upstream: String,
    /// The repo's gate (`auto` or `manual`), `None` when not gated.
    pub gated: Option<String>,
    /// Whether the upstream repo is private.
    pub private: bool,
    /// The commit (40 lowercase hex).
    pub commit: CommitId,
    /// The repo info's `cardData` at this commit, if any.
    pub card_json: Option<serde_json::Value>,
    /// Refs observed pointing at `commit` now, e.g. `["main"]`; empty when pulled by sha.
    pub refs: Vec<String>,
    /// When this was observed (unix seconds).
    pub seen_at: i64,
    /// The commit's complete tree.
    pub files: Vec<FileRecord>,
    /// The licence-relevant fields of the card.
    pub licence: LicenceFields,
}

/// One entry of a commit's tree, as listed upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Path inside the repo (relative, `/`-separated).
    pub path: String,
    /// Size of the content in bytes (for LFS files: of the real content, not the pointer).
    pub size: u64,
    /// The git blob id (40 hex; for LFS files, the pointer's).
    pub git_oid: String,
    /// Content sha256 when known: always for LFS files, for regular files once hashed.
    pub sha256: Option<Sha256>,
    /// Whether the file is stored in LFS upstream.
    pub lfs: bool,
}

/// The licence fields of a model card (and the repo's gate), as signals, not a verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenceFields {
    /// The card's `license` (an SPDX-like id, or `other`).
    pub license: Option<String>,
    /// The card's `license_name`, used with `license: other`.
    pub license_name: Option<String>,
    /// The card's `license_link`.
    pub license_link: Option<String>,
    /// The gate the card or repo declares.
    pub gated: Option<String>,
}

/// A blob the store holds, named by its sha256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    /// Content sha256 (64 lowercase hex).
    pub sha256: Sha256,
    /// Size in bytes.
    pub size: u64,
    /// Where the store keeps it (backend-specific, e.g. a path or an object key).
    pub location: String,
    /// When it was published to the store (unix seconds).
    pub stored_at: i64,
    /// When its digest was last re-verified, if ever.
    pub verified_at: Option<i64>,
}

/// A repository and the revisions held of it, for `larder list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoSummary {
    /// Model or dataset.
    pub kind: RepoKind,
    /// `org/name`.
    pub name: String,
    /// The repo's gate, as last seen.
    pub gated: Option<String>,
    /// Whether the repo was private, as last seen.
    pub private: bool,
    /// When the repo was first recorded.
    pub first_seen: i64,
    /// Held commits, most recently fetched first.
    pub revisions: Vec<RevisionSummary>,
}

/// One held commit of a repository, with what of its tree is held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionSummary {
    /// The commit.
    pub sha: CommitId,
    /// Refs whose latest observation is this commit, sorted.
    pub refs: Vec<String>,
    /// When this commit was last pulled.
    pub fetched_at: i64,
    /// Number of files in the tree.
    pub files: u64,
    /// Number of those whose content is held.
    pub files_held: u64,
    /// Total size of the tree.
    pub bytes_total: u64,
    /// Total size of the held files.
    pub bytes_held: u64,
    /// When the mirror last served it (recorded in batches), if ever.
    #[serde(default)]
    pub last_served: Option<i64>,
    /// Whether quota eviction must keep it (`larder pin`).
    #[serde(default)]
    pub pinned: bool,
    /// The card's licence fields.
    pub licence: LicenceFields,
}

/// Everything known about one commit, for `larder show` and the Hub API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitDetail {
    /// Model or dataset.
    pub kind: RepoKind,
    /// `org/name`.
    pub name: String,
    /// The commit.
    pub sha: CommitId,
    /// When this commit was last pulled.
    pub fetched_at: i64,
    /// The card data recorded with the commit.
    pub card_json: Option<serde_json::Value>,
    /// Refs whose latest observation is this commit, sorted.
    pub refs: Vec<String>,
    /// The complete tree, sorted by path.
    pub files: Vec<FileRow>,
    /// The card's licence fields.
    pub licence: LicenceFields,
    /// The endpoint the repo was last pulled from.
    pub upstream: String,
    /// The repo's gate, as last seen.
    pub gated: Option<String>,
    /// Whether the repo was private, as last seen.
    pub private: bool,
}

/// One file of a commit's tree and whether its content is held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRow {
    /// Path inside the repo.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// The git blob id.
    pub git_oid: String,
    /// Content sha256, when known.
    pub sha256: Option<Sha256>,
    /// Whether the file is stored in LFS upstream.
    pub lfs: bool,
    /// Whether the content is in the store: sha256 known and a blob recorded for it.
    pub held: bool,
}

/// One stretch of time during which a ref pointed at one commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefObservation {
    /// The ref, e.g. `main` or `refs/pr/1`.
    pub reference: String,
    /// The commit it pointed at.
    pub sha: CommitId,
    /// When it was first seen pointing there.
    pub first_seen: i64,
    /// When it was last seen pointing there.
    pub last_seen: i64,
}

/// A place where a blob's content appears: one path of one commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobUse {
    /// Model or dataset.
    pub kind: RepoKind,
    /// `org/name`.
    pub name: String,
    /// The commit.
    pub commit: CommitId,
    /// The path in that commit.
    pub path: String,
}
