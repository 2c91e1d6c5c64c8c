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
use super::progress::{PullEvent, Reporter};
use super::ranges::RangeSet;
use super::state::PartState;
use crate::failure::{Classify, FailureKind};
use crate::hub::client::check_status;
use crate::hub::{HubClient, HubError, RepoType, RetryPolicy};
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
    pub sha256: Option<String>,
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
    pub reporter: Arc<dyn Reporter>,
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
    pub sha256: String,
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
        job.sha256.clone(),
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
            sha256: digests.sha256.clone(),
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
        Some(sha) => (sha.clone(), digests.sha256.clone()),
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
        sha256: digests.sha256.clone(),
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

/// The digests of a part an earlier run left whole but unpublished, when they match the
/// job's: a part of the right size without a resume state (a part with one resumes as usual).
/// Its bytes are re-read and hashed here, so nothing unverified is trusted.
async fn whole_part(
    part_path: &Path,
    state_path: &Path,
    job: &FileJob,
    index_chunks: bool,
) -> Option<Digests> {
    if state_path.exists()
        || std::fs::metadata(part_path).map_or(true, |m| m.len() != job.size || job.size == 0)
    {
        return None;
    }
    let (part, git) = (part_path.to_path_buf(), job.sha256.is_none());
    let (digests, size) = tokio::task::spawn_blocking(move || {
        super::digest::digest_file_as(&part, git, index_chunks)
    })
    .await
    .ok()?
    .ok()?;
    let matches = size == job.size
        && match &job.sha256 {
            Some(sha) => &digests.sha256 == sha,
            None => digests.git_oid.as_deref() == Some(job.git_oid.as_str()),
        };
    matches.then_some(digests)
}

fn segment_size(size: u64, settings: &TransferSettings) -> u64 {
    let per = size / (settings.connections_per_file.max(1) as u64 * 2);
    per.clamp(
        settings.min_segment,
        settings.max_segment.max(settings.min_segment),
    )
}

/// Claim the resumable part `<key>.part` for this writer by locking the part file itself;
/// when another process holds it (pulling the same content right now), use a private part
/// `<key>.<pid>.part` instead so the two never write one part. Returns the slot name and the
/// locked file, which must stay open until the part is published or given up. (No separate
/// lock file: creating and deleting one per file is most of what a filesystem spends on a
/// pull of many small files.) Every part is verified before publication in any case.
fn claim_slot(tmp: &Path, key: &str) -> Result<(String, File), StoreError> {
    let open = |path: &Path| {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| StoreError::io("could not create", path, e))
    };
    let part = tmp.join(format!("{key}.part"));
    for _ in 0..3 {
        let file = open(&part)?;
        if file.try_lock().is_err() {
            break;
        }
        // The lock counts only if the file is still the part at that path, not one its last
        // holder published (renamed away) between our open and our lock.
        if same_file(&file, &part) {
            return Ok((key.to_owned(), file));
        }
    }
    let slot = format!("{key}.{}", std::process::id());
    let file = open(&tmp.join(format!("{slot}.part")))?;
    Ok((slot, file))
}

/// Whether `file` is the file at `path`.
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Open the part for `fresh`, resuming when a matching state and part exist. A fresh part
/// gets a fresh state file when `save_fresh`; otherwise any old state is removed
/// (a deferred part writes a state only when a checkpoint has something to record).
fn open_part(
    part: &Path,
    state_path: &Path,
    fresh: &PartState,
    save_fresh: bool,
) -> Result<(File, PartState), StoreError> {
    if let Some(state) = PartState::load(state_path, fresh)
        && let Ok(file) = OpenOptions::new().read(true).write(true).open(part)
        && file.metadata().is_ok_and(|m| m.len() == fresh.size)
    {
        return Ok((file, state));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(part)
        .map_err(|e| StoreError::io("could not create", part, e))?;
    if save_fresh {
        file.set_len(fresh.size)
            .map_err(|e| StoreError::io("could not allocate", part, e))?;
        fresh.save(state_path)?;
    } else {
        match std::fs::remove_file(state_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("could not remove", state_path, e)),
        }
        file.set_len(fresh.size)
            .map_err(|e| StoreError::io("could not allocate", part, e))?;
    }
    Ok((file, fresh.clone()))
}

/// Sync the part, then record what is written. Returns whether anything changed.
fn checkpoint(
    shared: &Shared,
    state_path: &Path,
    last: &mut PartState,
) -> Result<bool, StoreError> {
    let closed = shared.state_io.lock().unwrap_or_else(|p| p.into_inner());
    if *closed {
        return Ok(false);
    }
    let done = shared.lock().done.clone();
    if done == last.done {
        return Ok(false);
    }
    shared
        .file
        .sync_data()
        .map_err(|e| StoreError::io("could not sync", state_path, e))?;
    last.done = done;
    last.save(state_path)?;
    Ok(true)
}

async fn checkpoint_loop(
    shared: Arc<Shared>,
    state_path: PathBuf,
    mut last: PartState,
    every: Duration,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let shared2 = shared.clone();
        let path = state_path.clone();
        let mut snapshot = last.clone();
        match tokio::task::spawn_blocking(move || {
            checkpoint(&shared2, &path, &mut snapshot).map(|_| snapshot)
        })
        .await
        {
            Ok(Ok(saved)) => last = saved,
            Ok(Err(error)) => {
                let path = shared.job.path.clone();
                shared.fail(TransferError::store(&path, error));
                return;
            }
            Err(_) => return,
        }
    }
}

/// Follow the contiguous written prefix with the hashers (sha256 or the git oid, and with
/// `index_chunks` the Xet chunking). `None` if the transfer stopped first.
fn hash_prefix(shared: &Shared, git: bool, index_chunks: bool) -> Option<Digests> {
    let size = shared.job.size;
    let mut hasher = ContentHasher::new(size, git);
    if index_chunks {
        hasher = hasher.with_xet();
    }
    let mut buffer = vec![0u8; HASH_BUFFER.min(size.max(1) as usize)];
    loop {
        let target = {
            let mut schedule = shared.lock();
            loop {
                let prefix = schedule.done.prefix();
                if prefix > hasher.fed() || hasher.fed() == size {
                    break prefix;
                }
                if schedule.error.is_some() || schedule.finished {
                    return None;
                }
                schedule = shared
                    .changed
                    .wait(schedule)
                    .unwrap_or_else(|poison| poison.into_inner());
            }
        };
        while hasher.fed() < target {
            let n = ((target - hasher.fed()) as usize).min(buffer.len());
            if shared
                .file
                .read_exact_at(&mut buffer[..n], hasher.fed())
                .is_err()
            {
                return None;
            }
            hasher.update(&buffer[..n]);
            if let Some(hook) = &shared.hook {
                hook(&shared.part_path, PartProgress::Prefix(hasher.fed()));
            }
        }
        if hasher.fed() == size {
            return Some(hasher.finish());
        }
    }
}

/// Take the next segment for `slot`: the lowest pending one, or half of the largest
/// remainder in flight.
fn claim(shared: &Shared, slot: usize, min_steal: u64) -> bool {
    let mut schedule = shared.lock();
    if schedule.error.is_some() {
        return false;
    }
    if let Some((start, end)) = schedule.pending.pop_front() {
        schedule.active[slot] = Some(Active { pos: start, end });
        return true;
    }
    let victim = schedule
        .active
        .iter()
        .enumerate()
        // `pos` may pass a freshly lowered `end`: a flush writes outside the lock, so a split
        // can land inside the chunk being written (the bytes are the same either way).
        .filter_map(|(i, a)| a.as_ref().map(|a| (i, a.end.saturating_sub(a.pos))))
        .max_by_key(|&(_, remaining)| remaining);
    if let Some((index, remaining)) = victim
        && remaining >= 2 * min_steal
        && let Some(active) = schedule.active[index].as_mut()
    {
        let mid = (active.pos + remaining / 2).div_ceil(SPLIT_ALIGN) * SPLIT_ALIGN;
        if mid > active.pos && mid < active.end {
            let end = active.end;
            active.end = mid;
            schedule.active[slot] = Some(Active { pos: mid, end });
            return true;
        }
    }
    false
}

/// One connection: claim segments until none are left. Returns bytes received.
async fn worker(env: &TransferEnv, shared: &Arc<Shared>, slot: usize) -> u64 {
    let mut received = 0;
    loop {
        let permit = tokio::select! {
            biased;
            () = env.cancel.cancelled() => return received,
            permit = env.permits.acquire() => permit,
        };
        let Ok(_permit) = permit else {
            return received;
        };
        if env.cancel.is_cancelled() || !claim(shared, slot, env.settings.min_segment / 2) {
            return received;
        }
        received += fetch_segment(env, shared, slot).await;
        shared.lock().active[slot] = None;
        if shared.stop.load(Ordering::SeqCst) || env.cancel.is_cancelled() {
            return received;
        }
    }
}

enum Attempt {
    /// The segment is complete.
    Done,
    /// The connection stalled; reconnect without counting a failure.
    Stalled,
    /// A transient failure.
    Failed(HubError),
    /// The CDN URL expired; resolve again.
    Expired,
    /// The token was cancelled; what was received is written.
    Cancelled,
}

/// Fetch the segment in `slot` to its (possibly shrinking) end, retrying as needed.
async fn fetch_segment(env: &TransferEnv, shared: &Arc<Shared>, slot: usize) -> u64 {
    let path = shared.job.path.clone();
    let mut received = 0;
    let mut expirations = 0;
    loop {
        if shared.stop.load(Ordering::SeqCst) || env.cancel.is_cancelled() {
            return received;
        }
        let (pos, end) = match &shared.lock().active[slot] {
            Some(a) => (a.pos, a.end),
            None => return received,
        };
        if pos >= end {
            return received;
        }
        let mut permit = match &env.request_limit {
            Some(limit) => tokio::select! {
                biased;
                () = env.cancel.cancelled() => return received,
                permit = limit.acquire() => Some(permit),
            },
            None => None,
        };
        let (outcome, bytes) = attempt(env, shared, slot, pos, end, permit.as_mut()).await;
        drop(permit);
        received += bytes;
        match outcome {
            Ok(Attempt::Done | Attempt::Cancelled) => return received,
            Ok(Attempt::Stalled) => {
                tracing::warn!(path = %path, pos, "connection stalled; reconnecting");
            }
            Ok(Attempt::Expired) => {
                expirations += 1;
                *shared.location.lock().unwrap_or_else(|p| p.into_inner()) = None;
                if expirations > 3 {
                    shared.fail(TransferError::Protocol {
                        path,
                        why: "the download URL keeps expiring; check the machine's clock"
                            .to_owned(),
                    });
                    return received;
                }
            }
            Ok(Attempt::Failed(error)) => {
                let failures = {
                    let mut schedule = shared.lock();
                    schedule.failures += 1;
                    schedule.failures
                };
                if failures > env.settings.retry.max_retries {
                    shared.fail(TransferError::Exhausted {
                        path,
                        attempts: failures,
                        source: error,
                    });
                    return received;
                }
                let wait = env.settings.retry.delay(failures, error.retry_after());
                env.reporter.report(&PullEvent::Retrying {
                    path: path.clone(),
                    attempt: failures,
                    error: error_chain(&error),
                    wait_ms: wait.as_millis() as u64,
                });
                tokio::select! {
                    biased;
                    () = env.cancel.cancelled() => return received,
                    () = tokio::time::sleep(wait) => {}
                }
            }
            Err(fatal) => {
                shared.fail(fatal);
                return received;
            }
        }
    }
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

/// One request for `[pos, end)`. Returns the outcome and the bytes written.
async fn attempt(
    env: &TransferEnv,
    shared: &Arc<Shared>,
    slot: usize,
    pos: u64,
    end: u64,
    permit: Option<&mut RequestPermit>,
) -> (Result<Attempt, TransferError>, u64) {
    let job = &shared.job;
    let stall = env.settings.stall_timeout;
    let cached = shared
        .location
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let target = cached.clone().unwrap_or_else(|| job.url.clone());
    let request = env.client.get_range(target.clone(), pos, end - 1);
    let answered = tokio::select! {
        biased;
        () = env.cancel.cancelled() => return (Ok(Attempt::Cancelled), 0),
        answered = tokio::time::timeout(stall, request) => answered,
    };
    let (response, final_url) = match answered {
        Err(_) => return (Ok(Attempt::Stalled), 0),
        Ok(Err(error)) if error.is_transient() => return (Ok(Attempt::Failed(error)), 0),
        Ok(Err(error)) => {
            return (
                Err(TransferError::Hub {
                    path: job.path.clone(),
                    source: error,
                }),
                0,
            );
        }
        Ok(Ok(pair)) => pair,
    };
    let status = response.status();
    if let Some(permit) = permit {
        match status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => permit.throttled(),
            _ if status.is_success() => permit.answered(),
            _ => {}
        }
    }
    let off_origin = final_url.origin() != job.url.origin();
    if off_origin
        && matches!(
            status,
            StatusCode::FORBIDDEN | StatusCode::GONE | StatusCode::UNAUTHORIZED
        )
    {
        return (Ok(Attempt::Expired), 0);
    }
    if !status.is_success() {
        let checked = check_status(
            response,
            job.kind,
            &job.repo,
            None,
            Some(&job.path),
            &env.client,
        )
        .await;
        let Err(error) = checked else {
            return (Ok(Attempt::Failed(premature_end(job))), 0);
        };
        if error.is_transient() {
            return (Ok(Attempt::Failed(error)), 0);
        }
        return (
            Err(TransferError::Hub {
                path: job.path.clone(),
                source: error,
            }),
            0,
        );
    }
    if off_origin && cached.is_none() {
        *shared.location.lock().unwrap_or_else(|p| p.into_inner()) = Some(final_url);
    }
    match status {
        StatusCode::PARTIAL_CONTENT => {
            let range = response
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_content_range);
            match range {
                Some((start, _, total)) if start == pos && total == job.size => {}
                Some((start, _, total)) => {
                    return (
                        Err(TransferError::Protocol {
                            path: job.path.clone(),
                            why: format!(
                                "asked for bytes from {pos} of {} but the server sent bytes from {start} of {total}",
                                job.size
                            ),
                        }),
                        0,
                    );
                }
                None => {
                    return (
                        Err(TransferError::Protocol {
                            path: job.path.clone(),
                            why: "a 206 answer without a valid Content-Range".to_owned(),
                        }),
                        0,
                    );
                }
            }
        }
        StatusCode::OK if pos == 0 => {
            if response.content_length().is_some_and(|len| len != job.size) {
                return (
                    Err(TransferError::Protocol {
                        path: job.path.clone(),
                        why: format!(
                            "the server sent {} bytes but the listing says {}",
                            response.content_length().unwrap_or_default(),
                            job.size
                        ),
                    }),
                    0,
                );
            }
        }
        _ => {
            return (
                Err(TransferError::Protocol {
                    path: job.path.clone(),
                    why: format!("the server ignored the Range request (answered {status})"),
                }),
                0,
            );
        }
    }
    stream_body(env, shared, slot, response, pos).await
}

/// Parse `bytes a-b/total`.
fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((
        a.trim().parse().ok()?,
        b.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

/// Stream a response body to the part from `pos`, stopping at the slot's current end.
async fn stream_body(
    env: &TransferEnv,
    shared: &Arc<Shared>,
    slot: usize,
    mut response: reqwest::Response,
    mut pos: u64,
) -> (Result<Attempt, TransferError>, u64) {
    let stall = env.settings.stall_timeout;
    let mut buffer: Vec<u8> = Vec::with_capacity(WRITE_BUFFER);
    let mut received = 0;
    loop {
        // Cancelled: stop reading, but still write what is buffered (it has landed).
        let next = tokio::select! {
            biased;
            () = env.cancel.cancelled() => None,
            next = tokio::time::timeout(stall, response.chunk()) => Some(next),
        };
        let (chunk, outcome) = match next {
            None => (None, Some(Ok(Attempt::Cancelled))),
            Some(Err(_)) => (None, Some(Ok(Attempt::Stalled))),
            Some(Ok(Ok(Some(chunk)))) => (Some(chunk), None),
            Some(Ok(Ok(None))) => (None, Some(Ok(Attempt::Failed(premature_end(&shared.job))))),
            Some(Ok(Err(source))) => (
                None,
                Some(Ok(Attempt::Failed(HubError::Network {
                    url: crate::hub::client::redact(&shared.job.url),
                    source,
                }))),
            ),
        };
        if let Some(chunk) = &chunk {
            if let Some(limiter) = &env.rate_limit {
                tokio::select! {
                    biased;
                    () = env.cancel.cancelled() => {}
                    () = limiter.take(chunk.len()) => {}
                }
            }
            buffer.extend_from_slice(chunk);
        }
        let outcome = match outcome {
            None if env.cancel.is_cancelled() => Some(Ok(Attempt::Cancelled)),
            outcome => outcome,
        };
        let end = match &shared.lock().active[slot] {
            Some(a) => a.end,
            None => pos,
        };
        // Write when the buffer is full, the stream ended, or the slot's end (which another
        // connection may have pulled in by taking over half the range) is reached: reading on
        // would only fetch bytes that are thrown away.
        if buffer.len() >= WRITE_BUFFER || outcome.is_some() || pos + buffer.len() as u64 >= end {
            match flush(env, shared, slot, &mut buffer, &mut pos) {
                Ok(Flushed::More(n)) => received += n,
                Ok(Flushed::Reached(n)) => return (Ok(Attempt::Done), received + n),
                Err(e) => return (Err(e), received),
            }
        }
        if let Some(outcome) = outcome {
            return (outcome, received);
        }
        if shared.stop.load(Ordering::SeqCst) {
            return (Ok(Attempt::Done), received);
        }
    }
}

fn premature_end(job: &FileJob) -> HubError {
    HubError::Status {
        url: crate::hub::client::redact(&job.url),
        status: 502,
        message: Some("the connection closed before the range was complete".to_owned()),
        code: None,
        retry_after: None,
    }
}

enum Flushed {
    More(u64),
    Reached(u64),
}

/// Write the buffer at `pos`, clipped to the slot's current end, and record it.
fn flush(
    env: &TransferEnv,
    shared: &Shared,
    slot: usize,
    buffer: &mut Vec<u8>,
    pos: &mut u64,
) -> Result<Flushed, TransferError> {
    let end = match &shared.lock().active[slot] {
        Some(a) => a.end,
        None => *pos,
    };
    let n = (buffer.len() as u64).min(end.saturating_sub(*pos));
    if n > 0 {
        shared
            .file
            .write_all_at(&buffer[..n as usize], *pos)
            .map_err(|e| {
                TransferError::store(
                    &shared.job.path,
                    StoreError::io("could not write", &shared.part_path, e),
                )
            })?;
        {
            let mut schedule = shared.lock();
            schedule.done.insert(*pos, *pos + n);
            schedule.failures = 0;
            if let Some(active) = schedule.active[slot].as_mut() {
                active.pos = *pos + n;
            }
        }
        shared.changed.notify_all();
        env.reporter.report(&PullEvent::FileProgress {
            path: shared.job.path.clone(),
            bytes: n,
        });
        *pos += n;
    }
    let reached = *pos >= end;
    buffer.clear();
    Ok(if reached {
        Flushed::Reached(n)
    } else {
        Flushed::More(n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(parse_content_range("bytes 0-9/10"), Some((0, 9, 10)));
        assert_eq!(parse_content_range("bytes */10"), None);
        assert_eq!(parse_content_range("items 0-9/10"), None);
    }

    #[test]
    fn segments_are_clamped() {
        let s = TransferSettings::default();
        assert_eq!(segment_size(1 << 30, &s), 64 << 20);
        assert_eq!(segment_size(100, &s), 8 << 20);
        assert_eq!(segment_size(256 << 20, &s), 16 << 20);
    }
}
