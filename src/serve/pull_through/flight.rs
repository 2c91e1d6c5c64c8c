//! One transfer in flight: clients stream the part as it grows, the transfer runs in its own
//! task over Xet or plain HTTP, and what it landed is verified, published and recorded.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;

use super::PullThrough;
use crate::Larder;
use crate::fetch::progress::PullEvent;
use crate::fetch::transfer::{
    self, FileJob, PartProgress, PrefixHook, TransferEnv, TransferSettings,
};
use crate::fetch::xet::{self as fetch_xet, XetEnv};
use crate::hub::{RepoId, RepoType};
use crate::record::{self, Checked};
use crate::registry::{CommitId, FileRecord, FileRow, RepoKind, Sha256};
use crate::report::Reporter;
use crate::serve::body::READ_CHUNK;
use crate::serve::cache::RepoItemKey;
use crate::serve::errors::{ErrorKind, ServeError, internal};
use crate::serve::metrics::Metrics;
use crate::serve::{Mirror, Target};

/// Where a transfer stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// Bytes `..prefix` are in the part and readable.
    Running { prefix: u64 },
    /// Every byte is in the part and verified; it is being synced and published (the part
    /// disappears when it is renamed into the store: open it now or wait for `Done`).
    Verified,
    /// Verified and published at this blob path.
    Done(PathBuf),
    /// The transfer failed; nothing was published.
    Failed(String),
}

struct FlightInner {
    /// The part being written (the transfer's hook says which, should it differ).
    part: std::sync::Mutex<PathBuf>,
    size: u64,
    stage: watch::Receiver<Stage>,
}

/// One transfer in flight that clients stream from.
#[derive(Clone)]
pub struct Flight {
    inner: Arc<FlightInner>,
}

struct Reader {
    stage: watch::Receiver<Stage>,
    inner: Arc<FlightInner>,
    /// The open part (and its path) or blob (`None` path).
    file: Option<(tokio::fs::File, Option<PathBuf>)>,
    pos: u64,
    end: u64,
    failed: bool,
}

impl Flight {
    /// Stream `len` bytes from `start` as they land. The last byte waits for verification; a
    /// failed transfer ends the stream with an error.
    pub fn stream(
        &self,
        start: u64,
        len: u64,
    ) -> impl futures::Stream<Item = io::Result<Bytes>> + Send + 'static {
        let reader = Reader {
            stage: self.inner.stage.clone(),
            inner: self.inner.clone(),
            file: None,
            pos: start,
            end: start + len,
            failed: false,
        };
        futures::stream::unfold(reader, |mut r| async move {
            if r.failed || r.pos >= r.end {
                return None;
            }
            match r.next_chunk().await {
                Ok(chunk) => Some((Ok(chunk), r)),
                Err(error) => {
                    r.failed = true;
                    Some((Err(error), r))
                }
            }
        })
    }
}

impl Flight {
    /// Wait until the transfer has verified and published the file; `Err` says why it failed.
    pub async fn finished(&self) -> Result<(), String> {
        let mut stage = self.inner.stage.clone();
        let done = stage
            .wait_for(|s| matches!(s, Stage::Done(_) | Stage::Failed(_)))
            .await;
        match done {
            Ok(s) => match &*s {
                Stage::Failed(why) => Err(why.clone()),
                _ => Ok(()),
            },
            Err(_) => Err("the transfer stopped".to_owned()),
        }
    }

    /// Wait (up to `limit`) until the transfer has produced bytes or a verdict, so that a GET
    /// on a dead upstream gets an error status instead of a `200` whose body breaks off.
    /// `Err` carries why the transfer failed; a timeout is not an error (the HEAD-like
    /// metadata is already known, and the body will follow).
    pub async fn started(&self, limit: Duration) -> Result<(), String> {
        let mut stage = self.inner.stage.clone();
        let wait = stage.wait_for(|s| !matches!(s, Stage::Running { prefix: 0 }));
        match tokio::time::timeout(limit, wait).await {
            Ok(Ok(s)) => match &*s {
                Stage::Failed(why) => Err(why.clone()),
                _ => Ok(()),
            },
            Ok(Err(_)) => Err("the transfer stopped".to_owned()),
            Err(_) => Ok(()),
        }
    }
}

impl Reader {
    async fn next_chunk(&mut self) -> io::Result<Bytes> {
        loop {
            let stage = self.stage.borrow_and_update().clone();
            let readable = match &stage {
                Stage::Failed(why) => {
                    return Err(io::Error::other(format!("upstream transfer failed: {why}")));
                }
                Stage::Done(_) | Stage::Verified => self.inner.size,
                // Hold back the last byte until the digest is known to match.
                Stage::Running { prefix } => (*prefix).min(self.inner.size.saturating_sub(1)),
            };
            let limit = readable.min(self.end);
            if self.pos < limit {
                // A transfer that fell back from Xet to plain HTTP writes another part: bytes
                // past the old part's prefix are read from the new one.
                if let (Some((_, Some(opened))), Stage::Running { .. }) = (&self.file, &stage)
                    && *opened != self.part_path()
                {
                    self.file = None;
                }
                if self.file.is_none() {
                    self.file = self.open(&stage).await;
                }
                if let Some((file, _)) = &mut self.file {
                    let want = ((limit - self.pos) as usize).min(READ_CHUNK);
                    let mut buffer = vec![0u8; want];
                    file.seek(io::SeekFrom::Start(self.pos)).await?;
                    file.read_exact(&mut buffer).await?;
                    self.pos += want as u64;
                    return Ok(Bytes::from(buffer));
                }
            }
            if self.stage.changed().await.is_err() {
                // The transfer task ended without a verdict (e.g. the runtime is stopping).
                let last = self.stage.borrow().clone();
                if !matches!(last, Stage::Done(_))
                    || self.file.is_none() && self.open(&last).await.is_none()
                {
                    return Err(io::Error::other("upstream transfer stopped"));
                }
            }
        }
    }

    /// The part while it is written; the blob once published (the part is renamed into it, so
    /// an already open part stays valid either way).
    async fn open(&self, stage: &Stage) -> Option<(tokio::fs::File, Option<PathBuf>)> {
        if let Stage::Done(blob) = stage {
            return tokio::fs::File::open(blob).await.ok().map(|f| (f, None));
        }
        let part = self.part_path();
        let file = tokio::fs::File::open(&part).await.ok()?;
        Some((file, Some(part)))
    }

    /// Where the transfer writes now.
    fn part_path(&self) -> PathBuf {
        self.inner
            .part
            .lock()
            .map(|p| p.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }
}

/// Counts the bytes a transfer receives for `/metrics`.
///
/// A plain transfer's progress is all received bytes. A Xet transfer's progress also counts
/// terms copied from held blobs, so its received bytes are counted from its closing
/// `FileDelta` instead (what crossed the wire, and what was reused), unless it fell back to
/// plain HTTP.
struct Counting {
    metrics: Arc<Metrics>,
    kind: RepoKind,
    progress_is_received: std::sync::atomic::AtomicBool,
}

impl Counting {
    fn new(metrics: Arc<Metrics>, kind: RepoKind, over_xet: bool) -> Self {
        Counting {
            metrics,
            kind,
            progress_is_received: std::sync::atomic::AtomicBool::new(!over_xet),
        }
    }
}

impl Reporter<PullEvent> for Counting {
    fn report(&self, event: &PullEvent) {
        use std::sync::atomic::Ordering;
        match event {
            PullEvent::FileProgress { bytes, .. }
                if self.progress_is_received.load(Ordering::Relaxed) =>
            {
                self.metrics.upstream_bytes(self.kind, *bytes);
            }
            PullEvent::XetFallback { .. } => {
                self.progress_is_received.store(true, Ordering::Relaxed);
            }
            PullEvent::FileDelta {
                fetched, reused, ..
            } => {
                self.metrics.upstream_bytes(self.kind, *fetched);
                self.metrics.pull_through_reused(*reused);
            }
            _ => {}
        }
    }
}

/// What a flight's transfer produced, whichever way it went.
struct Landed {
    sha256: Sha256,
    received: u64,
    chunking: Option<crate::xet::XetChunking>,
}

impl PullThrough {
    /// Start or join the transfer of `file` of `commit`.
    pub async fn flight(
        &self,
        mirror: &Mirror,
        target: &Target,
        commit: &CommitId,
        file: &FileRow,
    ) -> Result<Flight, ServeError> {
        let repo_id = RepoId::parse(&target.repo).map_err(|e| internal("bad repo id", &e))?;
        let rt = RepoType::from(target.kind);
        let url = self
            .larder
            .client
            .resolve_url(rt, &repo_id, commit, &file.path)
            .map_err(|e| internal("building an upstream URL failed", &e))?;
        let job = FileJob {
            kind: rt,
            repo: target.repo.clone(),
            path: file.path.clone(),
            size: file.size,
            sha256: file.sha256.filter(|_| file.lfs),
            git_oid: file.git_oid.clone(),
            url,
        };
        let key = job.key();
        if self.upstream_down() {
            return Err(ServeError::NotHeld {
                path: file.path.clone(),
                commit: commit.to_owned(),
                why: format!(
                    "the upstream {} is unreachable",
                    self.larder.client.endpoint()
                ),
            });
        }
        let (flight, tx) = {
            let mut flights = self.flights.lock().map_err(|_| ServeError::Internal)?;
            if let Some(flight) = flights.get(&key)
                && !matches!(&*flight.inner.stage.borrow(), Stage::Failed(_))
            {
                return Ok(flight.clone());
            }
            let (tx, rx) = watch::channel(Stage::Running { prefix: 0 });
            let flight = Flight {
                inner: Arc::new(FlightInner {
                    part: std::sync::Mutex::new(transfer::part_path(&self.larder.local, &job)),
                    size: job.size,
                    stage: rx,
                }),
            };
            flights.insert(key.clone(), flight.clone());
            (flight, tx)
        };
        tracing::info!(
            repo = target.repo,
            %commit,
            path = file.path,
            size = file.size,
            "pull-through: fetching"
        );
        let xet = self
            .xet_source(mirror, target, &repo_id, commit, file)
            .await;
        let env = TransferEnv {
            client: self.larder.client.clone(),
            store: self.larder.local.clone(),
            blobs: self.larder.blobs.clone(),
            permits: self.permits.clone(),
            settings: TransferSettings {
                retry: self.larder.client.retry_policy(),
                // The mirror serves Xet: index what it fetches as it lands.
                index_chunks: true,
                ..TransferSettings::default()
            },
            reporter: Arc::new(Counting::new(
                self.metrics.clone(),
                target.kind,
                xet.is_some(),
            )),
            // The daemon's global rate (`--max-rate`) covers pull-through as well as jobs.
            rate_limit: mirror.options.jobs.rate_limit.clone(),
            request_limit: None,
            // A pull-through fetch runs to its end; clients leaving do not stop it.
            cancel: tokio_util::sync::CancellationToken::new(),
        };
        let larder = self.larder.clone();
        let tx = Arc::new(tx);
        let hook_tx = tx.clone();
        let hook_flight = flight.clone();
        let hook: PrefixHook = Arc::new(move |part, progress| {
            if let Ok(mut known) = hook_flight.inner.part.lock()
                && known.as_path() != part
            {
                *known = part.to_path_buf();
            }
            hook_tx.send_modify(|stage| match (progress, &mut *stage) {
                (PartProgress::Prefix(prefix), Stage::Running { prefix: p }) => *p = prefix,
                (PartProgress::Verified, Stage::Running { .. }) => *stage = Stage::Verified,
                _ => {}
            });
        });
        let registry_kind_ = target.kind;
        let repo = target.repo.clone();
        let commit = commit.to_owned();
        let row = file.clone();
        let flights_key = key;
        let this_flights = self.flights.clone();
        let metrics = self.metrics.clone();
        metrics.pull_through_transfers(1);
        tokio::spawn(async move {
            // Held until the file is recorded: `larder gc` leaves the part and the freshly
            // published blob alone meanwhile (and this waits while a gc runs).
            let gc_guard = larder.local.gc_guard().await;
            let landed = match gc_guard {
                Ok(_) => land(&env, job, xet, hook).await,
                Err(error) => Err((ErrorKind::InternalError, error.to_string())),
            };
            let stage = match landed {
                Ok(fetched) => {
                    let sha = fetched.sha256;
                    let recorded = record(
                        &larder,
                        registry_kind_,
                        &repo,
                        &commit,
                        &row,
                        &sha,
                        fetched.chunking.as_ref(),
                    )
                    .await;
                    let local = larder
                        .blobs
                        .local_path(&sha)
                        .ok_or_else(|| format!("blob {sha} has no local copy after publishing"));
                    match (recorded, local) {
                        (Ok(()), Ok(path)) => {
                            tracing::info!(
                                repo,
                                path = row.path,
                                bytes = fetched.received,
                                "pull-through: verified and stored"
                            );
                            Stage::Done(path)
                        }
                        (Err(why), _) | (_, Err(why)) => Stage::Failed(why),
                    }
                }
                Err((kind, why)) => {
                    metrics.error(kind);
                    tracing::error!(
                        repo,
                        path = row.path,
                        error = why,
                        "pull-through failed; client streams aborted"
                    );
                    Stage::Failed(why)
                }
            };
            tx.send_replace(stage);
            if let Ok(mut flights) = this_flights.lock() {
                flights.remove(&flights_key);
            }
            // Counted until recorded and out of the flight table, so "no transfers" means
            // the next request finds the file held.
            metrics.pull_through_transfers(-1);
        });
        Ok(flight)
    }
}

impl PullThrough {
    /// The upstream Xet storage to fetch `file` from, when pull-through may use Xet and the
    /// upstream listed a Xet hash for the content: the commit's CAS session (kept for the
    /// commit's other files) and that hash.
    async fn xet_source(
        &self,
        mirror: &Mirror,
        target: &Target,
        repo: &RepoId,
        commit: &CommitId,
        file: &FileRow,
    ) -> Option<(XetEnv, String)> {
        if !mirror.options.pull_xet || !file.lfs {
            return None;
        }
        let sha256 = file.sha256?;
        let xet_hash = match self.larder.registry.known_xet_hashes(vec![sha256]).await {
            Ok(mut known) => known.remove(&sha256)?,
            Err(error) => {
                tracing::warn!(error = %transfer::error_chain(&error), "looking up a listed Xet hash failed; fetching over plain HTTP");
                return None;
            }
        };
        let key = RepoItemKey::new(target.kind, repo.as_str(), commit);
        let session = match self.cas.get(&key) {
            Some(session) => session,
            None => {
                let session = crate::xet::cas::CasSession::new(
                    &self.larder.client,
                    RepoType::from(target.kind),
                    repo,
                    commit,
                );
                match session {
                    Ok(session) => {
                        let session = Arc::new(session);
                        self.cas.insert(key, session.clone());
                        session
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the upstream's Xet storage is unusable; fetching over plain HTTP");
                        return None;
                    }
                }
            }
        };
        Some((
            XetEnv {
                registry: self.larder.registry.clone(),
                session,
            },
            xet_hash,
        ))
    }
}

/// Fetches `job` into the store: over the upstream's Xet storage when `xet` is given (falling
/// back to plain HTTP when that storage is unusable), else over plain HTTP. Errors come with
/// the kind counted for `/metrics` and the reason given to waiting clients.
async fn land(
    env: &TransferEnv,
    job: FileJob,
    xet: Option<(XetEnv, String)>,
    hook: PrefixHook,
) -> Result<Landed, (ErrorKind, String)> {
    if let Some((xet_env, xet_hash)) = xet {
        match fetch_xet::fetch_file_with_hook(env, &xet_env, &job, &xet_hash, Some(hook.clone()))
            .await
        {
            Ok(fetched) => {
                return Ok(Landed {
                    sha256: fetched.sha256,
                    received: fetched.fetched,
                    chunking: Some(fetched.chunking),
                });
            }
            Err(error) if error.falls_back() => {
                let reason = transfer::error_chain(&error);
                tracing::warn!(
                    path = job.path,
                    reason,
                    "pull-through over Xet failed; fetching over plain HTTP"
                );
                env.reporter.report(&PullEvent::XetFallback {
                    path: job.path.clone(),
                    reason,
                });
            }
            Err(error) => {
                let kind = match error {
                    fetch_xet::XetTransferError::Mismatch { .. } => ErrorKind::VerificationFailed,
                    _ => ErrorKind::UpstreamTransferFailed,
                };
                return Err((kind, transfer::error_chain(&error)));
            }
        }
    }
    match transfer::fetch_file_with_hook(env, job, Some(hook)).await {
        Ok(fetched) => Ok(Landed {
            sha256: fetched.digests.sha256,
            received: fetched.received,
            chunking: fetched.digests.xet,
        }),
        Err(error) => {
            let kind = match error {
                transfer::TransferError::Mismatch { .. } => ErrorKind::VerificationFailed,
                _ => ErrorKind::UpstreamTransferFailed,
            };
            Err((kind, transfer::error_chain(&error)))
        }
    }
}

/// Record the fetched blob and its Xet chunking, and the file's sha256 when it was not known
/// (regular files).
async fn record(
    larder: &Larder,
    kind: RepoKind,
    repo: &str,
    commit: &CommitId,
    row: &FileRow,
    sha256: &Sha256,
    xet: Option<&crate::xet::XetChunking>,
) -> Result<(), String> {
    record::record_blob(larder, sha256, row.size, Checked::Verified, xet)
        .await
        .map_err(|e| transfer::error_chain(&e))?;
    if row.sha256.is_some() {
        crate::manifest::publish_logged(larder, kind, repo, commit).await;
        return Ok(());
    }
    let detail = larder
        .registry
        .commit_detail(kind, repo, commit)
        .await
        .map_err(|e| transfer::error_chain(&e))?
        .ok_or_else(|| format!("commit {commit} of {repo} vanished from the registry"))?;
    larder
        .registry
        .record_snapshot(record::held_snapshot(
            &detail,
            Vec::new(),
            vec![FileRecord {
                path: row.path.clone(),
                size: row.size,
                git_oid: row.git_oid.clone(),
                sha256: Some(sha256.to_owned()),
                lfs: row.lfs,
            }],
        ))
        .await
        .map(|_| ())
        .map_err(|e| transfer::error_chain(&e))?;
    crate::manifest::publish_logged(larder, kind, repo, commit).await;
    Ok(())
}
