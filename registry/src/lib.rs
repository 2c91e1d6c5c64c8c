//! Larder's registry: the SQLite database that is the one source of truth for what the mirror
//! holds — repos, commits and their trees, where refs pointed over time (version history),
//! which blobs the store holds, licence signals, and the daemon's jobs, tracked refs, pins and
//! served times.
//!
//! [`Registry`] is the only entry point. It owns
//! - one **writer thread** with the read-write connection, which runs every write in order, in
//!   its own transaction (`writer.rs`);
//! - a small pool of **read-only connections** used from `spawn_blocking` (`readers.rs`);
//! - the schema, migrated at open from the numbered files in `registry/migrations/`
//!   (`migrate.rs`).
//!
//! The database runs with `journal_mode=WAL`, `synchronous=NORMAL`, `busy_timeout=5000` and
//! `foreign_keys=ON`, so readers never block the writer, and another Larder process on the same
//! file (CLI next to the daemon) waits instead of failing.
//!
//! A file of a commit is *held* when its sha256 is known and the store holds a blob with that
//! digest; this is derived in every query, never stored, so removing a blob is one row.

#![deny(missing_docs)]

mod aliases;
mod blobs;
mod chunk_index;
mod connection;
mod derivations;
mod digest;
mod error;
mod gc;
mod jobs;
mod licence;
mod migrate;
mod queries;
mod readers;
mod registry;
mod retention;
mod snapshot;
mod tracking;
mod traffic;
mod types;
mod validate;
mod writer;
mod xet;
mod xet_terms;

pub use chunk_index::{ChunkLocation, XetChunk, XetRecord};
pub use derivations::{CommitRef, Derivation};
pub use digest::{CommitId, DigestError, Sha256, is_lower_hex};
pub use error::RegistryError;
pub use jobs::{JobRecord, JobState, ParseJobStateError};
pub use licence::{AuditEntry, CommitLicence, LicenceRecord, LicenceSignalRecord};
pub use migrate::LATEST as SCHEMA_VERSION;
pub use registry::Registry;
pub use retention::{EvictionCandidate, Served};
pub use tracking::{TrackCheck, TrackedRef};
pub use traffic::TrafficRow;
pub use types::{
    BlobRecord, BlobUse, CommitDetail, FileRecord, FileRow, LicenceFields, ParseRepoKindError,
    RefObservation, RepoKind, RepoSummary, RevisionSummary, SnapshotRecord,
};
pub use xet_terms::HeldTerm;
