//! The events of a pull, which a [`crate::report::Reporter<PullEvent>`] receives.
//!
//! Events for one file arrive in the order `FileStarted → FileProgress* → FileVerified` (or
//! `FileFailed`); `Retrying` may come in between. `FileProgress`, the one sent many times a
//! second, shares its path rather than copying it.

use std::sync::Arc;

use serde::Serialize;

use crate::registry::{CommitId, Sha256};

/// Something that happened during a pull.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PullEvent {
    /// The revision was resolved and the work planned.
    Resolved {
        /// `org/name`.
        repo: String,
        /// `model` or `dataset`.
        kind: String,
        /// The revision asked for.
        revision: String,
        /// The commit it resolved to.
        commit: CommitId,
        /// Files selected (after include/exclude).
        files: usize,
        /// Their total size.
        bytes: u64,
        /// Files that must be fetched (the rest the store already holds).
        fetch_files: usize,
        /// Bytes that must be fetched, before resumption.
        fetch_bytes: u64,
    },
    /// A file the store already holds.
    FileReused {
        /// Path in the repo.
        path: String,
        /// Size.
        size: u64,
    },
    /// A file transfer started (or resumed).
    FileStarted {
        /// Path in the repo.
        path: String,
        /// Size.
        size: u64,
        /// Bytes already on disk from an earlier run.
        resumed: u64,
    },
    /// Bytes written to a file's part.
    FileProgress {
        /// Path in the repo (shared with the transfer, not copied per event).
        #[serde(serialize_with = "shared_str")]
        path: Arc<str>,
        /// New bytes since the previous event.
        bytes: u64,
    },
    /// A transient failure; the transfer will try again.
    Retrying {
        /// Path in the repo.
        path: String,
        /// Consecutive failures so far.
        attempt: u32,
        /// What failed.
        error: String,
        /// Delay before the next attempt.
        wait_ms: u64,
    },
    /// The content did not match its digest; the file is fetched again from scratch.
    Mismatch {
        /// Path in the repo.
        path: String,
        /// Expected digest.
        expected: String,
        /// Digest of the bytes received.
        actual: String,
    },
    /// The file was verified and published into the store.
    FileVerified {
        /// Path in the repo.
        path: String,
        /// Its sha256 (unknown to a client watching a daemon's pull).
        #[serde(skip_serializing_if = "Option::is_none")]
        sha256: Option<Sha256>,
    },
    /// A file fetched over Xet: what came over the network and what was copied from held
    /// revisions (before `FileVerified`).
    FileDelta {
        /// Path in the repo.
        path: String,
        /// Xorb bytes received from the CAS.
        fetched: u64,
        /// File bytes copied from blobs the store already held.
        reused: u64,
    },
    /// The upstream's Xet storage could not be used for this file; it is fetched over plain
    /// HTTP instead.
    XetFallback {
        /// Path in the repo.
        path: String,
        /// Why.
        reason: String,
    },
    /// The file could not be fetched.
    FileFailed {
        /// Path in the repo.
        path: String,
        /// Why.
        error: String,
    },
    /// The pull was interrupted (cancelled); it fails after this event.
    Interrupted {
        /// Bytes of what it set out to fetch that are kept: verified files and the recorded
        /// ranges of their parts.
        kept: u64,
        /// Bytes it set out to fetch.
        total: u64,
    },
    /// The pull finished.
    Done {
        /// `org/name`.
        repo: String,
        /// The commit.
        commit: CommitId,
        /// Files fetched in this run.
        fetched_files: usize,
        /// Bytes received in this run.
        fetched_bytes: u64,
        /// Files reused from the store.
        reused_files: usize,
        /// Bytes of fetched files copied from held revisions instead (Xet delta).
        reused_bytes: u64,
        /// Wall time.
        seconds: f64,
    },
}

/// Serializes a shared path as the string it is.
fn shared_str<S: serde::Serializer>(path: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(path)
}
