//! [`RegistryError`], the one error type of this crate.
//!
//! Every variant names the operation that failed and keeps the underlying error as its
//! `#[source]`, so `{:#}` (anyhow) prints the whole chain.

use std::path::PathBuf;

use crate::digest::{CommitId, Sha256};
use crate::types::RepoKind;

/// Everything that can go wrong in the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The database file could not be opened (or created).
    #[error("could not open the registry at {}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },

    /// A connection could not be configured (PRAGMAs, busy timeout).
    #[error("could not configure the registry connection to {}", path.display())]
    Configure {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },

    /// Applying a schema migration failed; the database is left at the previous version.
    #[error("could not migrate the registry at {} to schema version {version} ({name})", path.display())]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// The version being applied.
        version: i64,
        /// The migration's file name, without `.sql`.
        name: &'static str,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },

    /// The database was written by a newer Larder.
    #[error(
        "the registry schema is version {found}, but this larder only knows up to version {supported}"
    )]
    SchemaTooNew {
        /// `PRAGMA user_version` of the database.
        found: i64,
        /// The newest version this binary can migrate to.
        supported: i64,
    },

    /// The writer thread could not be started.
    #[error("could not start the registry writer thread")]
    SpawnWriter {
        /// Why the thread could not be spawned.
        #[source]
        source: std::io::Error,
    },

    /// The writer thread did not run the write: it has stopped, or the write panicked (a bug;
    /// its transaction was rolled back and the thread carries on).
    #[error(
        "the registry writer did not complete the write (its thread stopped or the write panicked)"
    )]
    WriterGone,

    /// A blocking read task was cancelled or panicked.
    #[error("a registry read task did not complete")]
    ReadTask {
        /// The join failure.
        #[source]
        source: tokio::task::JoinError,
    },

    /// A write (`operation` says which) failed; its transaction was rolled back.
    #[error("could not {operation}")]
    Write {
        /// What was being written, e.g. "record the snapshot of model org/name at SHA".
        operation: String,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },

    /// A read (`operation` says which) failed.
    #[error("could not {operation}")]
    Read {
        /// What was being read, e.g. "list repos".
        operation: String,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },

    /// A stored JSON column did not parse.
    #[error("the stored {what} is not valid JSON")]
    StoredJson {
        /// Which column of which row, e.g. "card of model org/name at SHA".
        what: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },

    /// A value given to the registry is malformed (hostile input never reaches SQL).
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidInput {
        /// Which input, e.g. "commit sha" or "file path".
        field: &'static str,
        /// The offending value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A file that must be held has no blob in the store's records.
    #[error("{path} is not held: {}", describe_sha256(.sha256.as_ref()))]
    MissingBlob {
        /// The file's content digest, when known.
        sha256: Option<Sha256>,
        /// The file's path in its commit.
        path: String,
    },

    /// The blob is not recorded at all.
    #[error("no blob with sha256 {sha256} is recorded")]
    UnknownBlob {
        /// The digest asked for.
        sha256: Sha256,
    },

    /// The repository has never been recorded.
    #[error("{kind} {name} is not in the registry")]
    UnknownRepo {
        /// Model or dataset.
        kind: RepoKind,
        /// `org/name`.
        name: String,
    },

    /// The repository is known but that commit is not held.
    #[error("{kind} {name} has no commit {sha} in the registry")]
    UnknownCommit {
        /// Model or dataset.
        kind: RepoKind,
        /// `org/name`.
        name: String,
        /// The commit asked for.
        sha: CommitId,
    },

    /// The commit is held but has no file at that path.
    #[error("{kind} {name} at {sha} has no file {path}")]
    UnknownFile {
        /// Model or dataset.
        kind: RepoKind,
        /// `org/name`.
        name: String,
        /// The commit.
        sha: CommitId,
        /// The path asked for.
        path: String,
    },

    /// A blob's stored Xet chunk list is not a whole number of entries (the chunk index is
    /// damaged; `larder verify` recomputes it).
    #[error("the stored Xet chunk list of blob {sha256} is damaged ({bytes} bytes)")]
    CorruptXetIndex {
        /// The blob.
        sha256: Sha256,
        /// The length of the stored list.
        bytes: usize,
    },
}

impl RegistryError {
    /// Whether SQLite failed because the disk holding the database is full.
    pub fn is_disk_full(&self) -> bool {
        let source = match self {
            RegistryError::Open { source, .. }
            | RegistryError::Configure { source, .. }
            | RegistryError::Migrate { source, .. }
            | RegistryError::Write { source, .. }
            | RegistryError::Read { source, .. } => source,
            RegistryError::SpawnWriter { source, .. } => {
                return source.kind() == std::io::ErrorKind::StorageFull;
            }
            _ => return false,
        };
        source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
    }
}

fn describe_sha256(sha256: Option<&Sha256>) -> String {
    match sha256 {
        Some(sha256) => format!("no blob with sha256 {sha256} is recorded"),
        None => "its sha256 is not known yet (never downloaded)".to_owned(),
    }
}

/// Turns a SQLite error into [`RegistryError::Write`] with a description built only on failure.
pub(crate) fn write_error(
    operation: impl FnOnce() -> String,
) -> impl FnOnce(rusqlite::Error) -> RegistryError {
    move |source| RegistryError::Write {
        operation: operation(),
        source,
    }
}

/// Turns a SQLite error into [`RegistryError::Read`] with a description built only on failure.
pub(crate) fn read_error(
    operation: impl FnOnce() -> String,
) -> impl FnOnce(rusqlite::Error) -> RegistryError {
    move |source| RegistryError::Read {
        operation: operation(),
        source,
    }
}
