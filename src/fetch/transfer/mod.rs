//! One file: ranged requests over several connections into a preallocated part file,
//! resumable across runs, hashed as its contiguous prefix lands, published only when verified.
//!
//! How the pieces fit:
//! - The missing ranges of the file are cut into segments and handed out lowest offset first,
//!   so the verified prefix grows steadily. When no segment is left, an idle connection splits
//!   the largest remainder in flight and takes its second half (no slow tail at 99%).
//! - Each connection writes at its offset (`write_at`). A checkpoint task periodically syncs
//!   the part and then records the written ranges in the state file; resume trusts only those.
//! - A hashing thread follows the contiguous written prefix, reading it back from the page
//!   cache, so when the last byte lands only the remainder is left to hash.
//! - A connection that delivers nothing for the stall timeout is dropped and its remainder
//!   re-requested without spending a retry. Errors are retried with capped backoff; the retry
//!   count resets whenever bytes arrive.
//! - When the pull's token is cancelled (Ctrl-C), each connection writes out the bytes it has
//!   buffered and stops; a last checkpoint then records every byte written, so a resume asks
//!   again only for what was still in the sockets.

mod connections;
mod hashing;
mod part;

use connections::{segment_size, worker};
use hashing::hash_prefix;
use part::{checkpoint, checkpoint_loop, claim_slot, open_part, whole_part};

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use reqwest::StatusCode;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::concurrency::{AdaptiveLimit, RequestPermit};
use super::digest::{ContentHasher, Digests};
use super::progress::PullEvent;
use super::ranges::RangeSet;
use super::state::PartState;
use crate::failure::{Classify, FailureKind};
use crate::hub::client::check_status;
use crate::hub::{HubClient, HubError, RepoType, RetryPolicy};
use crate::registry::Sha256;
use crate::report::Reporter;
use crate::store::{LocalStore, StoreError};

/// Bytes buffered per connection before a write.
const WRITE_BUFFER: usize = 1 << 20;
/// Bytes read per step by the hashing thread.
const HASH_BUFFER: usize = 4 << 20;
/// Alignment of split points.
const SPLIT_ALIGN: u64 = 64 << 10;

/// Tunables of the transfer engine.
#[derive(Debug, Clone)]
pub struct TransferSettings {
    /// Connections per file.
    pub connections_per_file: usize,
    /// Smallest segment handed out (files smaller than this use one connection).
    pub min_segment: u64,
    /// Largest segment handed out.
    pub max_segment: u64,
    /// No bytes for this long: drop the connection and reconnect.
    pub stall_timeout: Duration,
    /// How often written ranges are made durable.
    pub checkpoint_interval: Duration,
    /// Backoff for transient failures; `max_retries` counts consecutive failures without progress.
    pub retry: RetryPolicy,
    /// Also compute each file's Xet chunking while it is hashed, for the chunk index (the
    /// mirror's pull-through, which serves Xet). Off, a blob is indexed when first needed
    /// ([`crate::xet::index::chunking_of`]): about 0.6 CPU-seconds per GiB saved on the pull.
    pub index_chunks: bool,
}

impl Default for TransferSettings {
    fn default() -> Self {
        TransferSettings {
            connections_per_file: 8,
            min_segment: 8 << 20,
            max_segment: 64 << 20,
            stall_timeout: Duration::from_secs(30),
            checkpoint_interval: Duration::from_secs(1),
            retry: RetryPolicy::default(),
            index_chunks: false,
        }
    }
}

/// What to fetch.
#[derive(Debug, Clone)]
pub struct FileJob {
    /// Repo type (for error messages).
    pub kind: RepoType,
    /// Repo id (for error messages).
    pub repo: String,
    /// Path in the repo.
    pub path: String,
    /// Size from the tree listing (authoritative).
    pub size: u64,
    /// sha256 promised by the listing (LFS files).
    pub sha256: Option<Sha256>,
    /// git blob oid from the listing (checked for regular files).
    pub git_oid: String,
    /// The `/resolve` URL.
    pub url: Url,
}

impl FileJob {
    /// Name of the part and state files: the expected digest, so any pull of the same content
    /// (from any repo) resumes the same part.
    pub fn key(&self) -> String {
        super::plan::key_for(self.sha256.as_deref(), &self.git_oid)
    }
}

/// A fetched, verified and published file.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Its digests.
    pub digests: Digests,
    /// Bytes found on disk from an earlier run.
    pub resumed: u64,
    /// Bytes received in this run.
    pub received: u64,
}

/// Why a file could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// A permanent upstream error.
    #[error("could not fetch `{path}`")]
    Hub {
        /// File path.
        path: String,
        /// Cause.
        #[source]
        source: HubError,
    },
    /// Transient failures kept happening.
    #[error("gave up on `{path}` after {attempts} failed attempts in a row")]
    Exhausted {
        /// File path.
        path: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        #[source]
        source: HubError,
    },
    /// The store could not be written.
    #[error("could not write `{path}`")]
    Store {
        /// File path.
        path: String,
        /// Cause.
        #[source]
        source: StoreError,
    },
    /// The content's digest differs from what the listing promised.
    #[error(
        "`{path}` failed verification: expected {expected}, received content hashing to {actual}"
    )]
    Mismatch {
        /// File path.
        path: String,
        /// Expected digest.
        expected: String,
        /// Actual digest.
        actual: String,
    },
    /// The server answered a range request in a way that cannot be used.
    #[error("`{path}`: {why}")]
    Protocol {
        /// File path.
        path: String,
        /// What was wrong.
        why: String,
    },
    /// The transfer was stopped by its token ([`TransferEnv::cancel`]); the part and its
    /// state keep what was written.
    #[error("the transfer of `{path}` was interrupted")]
    Interrupted {
        /// File path.
        path: String,
        /// Bytes of the file recorded in its part's state.
        kept: u64,
    },
}

impl Classify for TransferError {
    fn failure_kind(&self) -> FailureKind {
        match self {
            TransferError::Hub { source, .. } => source.failure_kind(),
            TransferError::Exhausted { .. }
            | TransferError::Mismatch { .. }
            | TransferError::Protocol { .. } => FailureKind::Upstream,
            TransferError::Store { source, .. } => source.failure_kind(),
            TransferError::Interrupted { .. } => FailureKind::Other,
        }
    }
}

impl TransferError {
    fn store(path: &str, source: StoreError) -> Self {
        TransferError::Store {
            path: path.to_owned(),
            source,
        }
    }
}

/// Shared resources of all transfers of a pull.
#[derive(Clone)]
pub struct TransferEnv {
    /// Hub client.
    pub client: HubClient,
    /// The node-local store (parts live in its `tmp/`).
    pub store: LocalStore,
    /// Where verified parts are published.
    pub blobs: Arc<dyn crate::store::BlobStore>,
    /// Connection permits shared by every file.
    pub permits: Arc<Semaphore>,
    /// Tunables.
    pub settings: TransferSettings,
    /// Progress sink.
    pub reporter: Arc<dyn Reporter<PullEvent>>,
    /// Global rate limit, if any.
    pub rate_limit: Option<Arc<super::rate::RateLimiter>>,
    /// The adaptive limit on requests in flight every request holds a permit of, if any.
    pub request_limit: Option<Arc<AdaptiveLimit>>,
    /// Cancelled to stop every transfer, keeping what was written ([`TransferError::Interrupted`]).
    pub cancel: CancellationToken,
}

struct Active {
    pos: u64,
    end: u64,
}

struct Schedule {
    pending: std::collections::VecDeque<(u64, u64)>,
    active: Vec<Option<Active>>,
    done: RangeSet,
    failures: u32,
    error: Option<TransferError>,
    finished: bool,
}

struct Shared {
    /// Serialises writes of the state file; `true` once the part is finished with, after which
    /// no checkpoint may write it again (a late checkpoint would resurrect a removed state).
    state_io: Mutex<bool>,
    job: FileJob,
    /// `job.path`, shared with every progress event rather than copied into each.
    shown_path: Arc<str>,
    file: File,
    part_path: PathBuf,
    schedule: Mutex<Schedule>,
    changed: Condvar,
    location: Mutex<Option<Url>>,
    stop: AtomicBool,
    hook: Option<PrefixHook>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Schedule> {
        self.schedule
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn fail(&self, error: TransferError) {
        let mut schedule = self.lock();
        if schedule.error.is_none() {
            schedule.error = Some(error);
        }
        self.stop.store(true, Ordering::SeqCst);
        drop(schedule);
        self.changed.notify_all();
    }
}

struct StopOnDrop(Arc<Shared>, tokio::task::AbortHandle);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.1.abort();
        self.0.stop.store(true, Ordering::SeqCst);
        self.0.lock().finished = true;
        self.0.changed.notify_all();
    }
}

/// What a [`PrefixHook`] is told about the part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartProgress {
    /// The contiguous prefix that is written and has been read back (hashed) grew to this
    /// length: bytes below it can be served from the part while the transfer goes on.
    Prefix(u64),
    /// Every byte is in the part and the digest matched. Syncing and publishing follow (the
    /// part is then renamed away, so readers should have it open or wait for the blob).
    Verified,
}

/// Told the part file and its [`PartProgress`] (pull-through serving). It runs on the hashing
/// thread or the transfer task and must not block.
pub type PrefixHook = Arc<dyn Fn(&Path, PartProgress) + Send + Sync>;

/// Fetch one file into the store. On any failure the part and its state stay on disk for the
/// next run, except after a digest mismatch, where they are discarded.
pub async fn fetch_file(env: &TransferEnv, job: FileJob) -> Result<Fetched, TransferError> {
    fetch_file_with_hook(env, job, None).await
}

/// The part file a job normally writes to, under the store's `tmp/` (a private part is used
/// instead while another process writes this one; the [`PrefixHook`] names the real one).
pub fn part_path(store: &LocalStore, job: &FileJob) -> PathBuf {
    store.tmp_dir().join(format!("{}.part", job.key()))
}

/// [`fetch_file`], reporting the readable prefix of the part to `hook` as it grows.
pub async fn fetch_file_with_hook(
    env: &TransferEnv,
    job: FileJob,
    hook: Option<PrefixHook>,
) -> Result<Fetched, TransferError> {
    let path = job.path.clone();
    let (fetched, part, shared) = transfer_verified(env, job, hook, false).await?;
    let synced = {
        let shared = shared.clone();
        let part_path = part.part_path.clone();
        tokio::task::spawn_blocking(move || {
            shared
                .file
                .sync_all()
                .map_err(|e| StoreError::io("could not sync", &part_path, e))
        })
        .await
    };
    match synced {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(TransferError::store(&path, e)),
        Err(join) => {
            return Err(TransferError::Protocol {
                path,
                why: format!("syncing the part failed: {join}"),
            });
        }
    }
    // On failure (e.g. an object store upload) the verified part and its state stay for the
    // next run, which finds every range done and publishes again.
    env.blobs
        .publish(&part.part_path, &fetched.digests.sha256)
        .await
        .map_err(|e| TransferError::store(&path, e))?;
    *shared.state_io.lock().unwrap_or_else(|p| p.into_inner()) = true;
    part.published();
    Ok(fetched)
}

/// A part whose every byte was received and matched its digest, not yet synced nor published
/// (see [`fetch_file_deferred`]). Publish it with [`crate::store::BlobStore::publish_group`],
/// then call [`VerifiedPart::published`]. Dropped unpublished, it stays in `tmp/` for the next
/// pull, which re-hashes it before use.
#[derive(Debug)]
pub struct VerifiedPart {
    /// The part file.
    pub part_path: PathBuf,
    /// Its digest (the blob's name).
    pub sha256: Sha256,
    state_path: PathBuf,
    /// The part, locked: keeps other processes off it until it is published.
    slot_lock: File,
}

impl VerifiedPart {
    /// The part was published: forget its resume state and lock.
    pub fn published(self) {
        let _ = std::fs::remove_file(&self.state_path);
        drop(self.slot_lock);
    }
}

/// Fetch one file into a verified part, leaving syncing and publication to the caller, who
/// does it for a group of files at once ([`crate::store::BlobStore::publish_group`]). For
/// files that take a moment each: no resume state is written up front (only a checkpoint of a
/// transfer that runs long writes one), and a whole part left by an earlier run without a
/// state (one that was verified but not yet published when the run died) is re-hashed and
/// used when its digest matches, instead of being fetched again.
pub async fn fetch_file_deferred(
    env: &TransferEnv,
    job: FileJob,
) -> Result<(Fetched, VerifiedPart), TransferError> {
    let (fetched, part, _) = transfer_verified(env, job, None, true).await?;
    Ok((fetched, part))
}

/// Transfer and verify one file into its part; the part is neither synced nor published.
async fn transfer_verified(
    env: &TransferEnv,
    job: FileJob,
    hook: Option<PrefixHook>,
    deferred: bool,
) -> Result<(Fetched, VerifiedPart, Arc<Shared>), TransferError> {
    let path = job.path.clone();
    let tmp = env.store.tmp_dir();
    let key = job.key();
    let (slot, slot_lock) = claim_slot(&tmp, &key).map_err(|e| TransferError::store(&path, e))?;
    let part_path = tmp.join(format!("{slot}.part"));
    let state_path = tmp.join(format!("{slot}.state"));
    let fresh = PartState::new(
        job.size,
        job.sha256,
        job.sha256.is_none().then(|| job.git_oid.clone()),
    );

    if deferred
        && let Some(digests) =
            whole_part(&part_path, &state_path, &job, env.settings.index_chunks).await
    {
        env.reporter.report(&PullEvent::FileStarted {
            path: path.clone(),
            size: job.size,
            resumed: job.size,
        });
        let file = File::open(&part_path).map_err(|e| {
            TransferError::store(&path, StoreError::io("could not open", &part_path, e))
        })?;
        let shared = Arc::new(Shared {
            shown_path: Arc::from(job.path.as_str()),
            file,
            schedule: Mutex::new(Schedule {
                pending: std::collections::VecDeque::new(),
                active: Vec::new(),
                done: RangeSet::new(),
                failures: 0,
                error: None,
                finished: true,
            }),
            changed: Condvar::new(),
            location: Mutex::new(None),
            stop: AtomicBool::new(true),
            part_path: part_path.clone(),
            state_io: Mutex::new(true),
            hook: None,
            job,
        });
        let part = VerifiedPart {
            part_path,
            sha256: digests.sha256,
            state_path,
            slot_lock,
        };
        let fetched = Fetched {
            digests,
            resumed: shared.job.size,
            received: 0,
        };
        return Ok((fetched, part, shared));
    }

    let (file, state) = open_part(&part_path, &state_path, &fresh, !deferred)
        .map_err(|e| TransferError::store(&path, e))?;
    let resumed = state.done.total();
    env.reporter.report(&PullEvent::FileStarted {
        path: path.clone(),
        size: job.size,
        resumed,
    });

    let segment = segment_size(job.size, &env.settings);
    let mut pending = std::collections::VecDeque::new();
    for (start, end) in state.done.gaps(job.size) {
        let mut s = start;
        while s < end {
            let e = (s + segment).min(end);
            pending.push_back((s, e));
            s = e;
        }
    }
    let workers = env
        .settings
        .connections_per_file
        .max(1)
        .min(pending.len().max(1));
    let shared = Arc::new(Shared {
        shown_path: Arc::from(job.path.as_str()),
        file,
        schedule: Mutex::new(Schedule {
            pending,
            active: (0..workers).map(|_| None).collect(),
            done: state.done.clone(),
            failures: 0,
            error: None,
            finished: false,
        }),
        changed: Condvar::new(),
        location: Mutex::new(None),
        stop: AtomicBool::new(false),
        part_path: part_path.clone(),
        state_io: Mutex::new(false),
        hook,
        job,
    });

    let hasher = {
        let shared = shared.clone();
        let (git, index_chunks) = (shared.job.sha256.is_none(), env.settings.index_chunks);
        tokio::task::spawn_blocking(move || hash_prefix(&shared, git, index_chunks))
    };
    let checkpointer = tokio::spawn(checkpoint_loop(
        shared.clone(),
        state_path.clone(),
        state.clone(),
        env.settings.checkpoint_interval,
    ));

    // If this future is dropped (the pull was abandoned), the guard stops the hashing thread
    // and the JoinSet aborts the connections.
    let _guard = StopOnDrop(shared.clone(), checkpointer.abort_handle());
    let mut tasks = tokio::task::JoinSet::new();
    for slot in 0..workers {
        let shared = shared.clone();
        let env = env.clone();
        tasks.spawn(async move { worker(&env, &shared, slot).await });
    }
    let mut received = 0;
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok(bytes) => received += bytes,
            Err(join) => shared.fail(TransferError::Protocol {
                path: path.clone(),
                why: format!("transfer task failed: {join}"),
            }),
        }
    }
    {
        let mut schedule = shared.lock();
        schedule.finished = true;
    }
    shared.changed.notify_all();
    checkpointer.abort();
    let _ = checkpointer.await;

    let failure = shared.lock().error.take();
    // Cancelled before the last byte landed (a file whose bytes all arrived is finished).
    let interrupted = env.cancel.is_cancelled() && shared.lock().done.total() < shared.job.size;
    if failure.is_some() || interrupted {
        // Keep what was written for the next run.
        let shared2 = shared.clone();
        let state_path2 = state_path.clone();
        let mut last = state.clone();
        let saved =
            tokio::task::spawn_blocking(move || checkpoint(&shared2, &state_path2, &mut last))
                .await;
        let _ = hasher.await;
        if let Some(error) = failure {
            return Err(error);
        }
        // What a resume will trust: the ranges the state file records now.
        let kept = match saved {
            Ok(Ok(_)) => shared.lock().done.total(),
            _ => PartState::load(&state_path, &state).map_or(0, |s| s.done.total()),
        };
        return Err(TransferError::Interrupted { path, kept });
    }

    let digests = match hasher.await {
        Ok(Some(digests)) => digests,
        _ => {
            return Err(TransferError::Protocol {
                path,
                why: "the content could not be hashed".to_owned(),
            });
        }
    };
    let (expected, actual) = match &shared.job.sha256 {
        Some(sha) => (sha.to_string(), digests.sha256.to_string()),
        None => (
            shared.job.git_oid.clone(),
            digests.git_oid.clone().unwrap_or_default(),
        ),
    };
    if expected != actual {
        *shared.state_io.lock().unwrap_or_else(|p| p.into_inner()) = true;
        let _ = std::fs::remove_file(&part_path);
        let _ = std::fs::remove_file(&state_path);
        return Err(TransferError::Mismatch {
            path,
            expected,
            actual,
        });
    }
    if let Some(hook) = &shared.hook {
        hook(&part_path, PartProgress::Verified);
    }
    if deferred {
        // Nothing may record ranges of this part any more: it is whole and verified.
        *shared.state_io.lock().unwrap_or_else(|p| p.into_inner()) = true;
    }
    let part = VerifiedPart {
        part_path,
        sha256: digests.sha256,
        state_path,
        slot_lock,
    };
    let fetched = Fetched {
        digests,
        resumed,
        received,
    };
    Ok((fetched, part, shared))
}

/// Full error chain on one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
