//! Pull-through: fetch what the store lacks from the upstream, once, while clients stream it.
//!
//! - **Revisions.** A commit the registry lacks is looked up upstream (repo info + tree) and
//!   recorded. A branch is re-resolved upstream at most once a minute per repo and branch; the
//!   lookups of one key are serialised, so a burst of clients on a cold repo makes one request.
//!   When the upstream cannot be reached the registry's answer stands and the failure is logged.
//!   When it refuses for good (RepoNotFound, RevisionNotFound, a 4xx) and the store holds
//!   nothing for the request, its status, `X-Error-Code` and message are passed on verbatim
//!   (remembered for ten seconds). A repo it reports disabled is refused by the mirror too,
//!   held or not, until a lookup finds it enabled again.
//! - **Renamed repos.** When the upstream redirects the repo (renamed, or another case), the
//!   revision is recorded under the name it redirected to, the old name is remembered as an
//!   alias, and the client gets the same redirect, to the mirror's own URL.
//! - **Files.** A miss starts — or joins — the one [`Flight`] of that content (keyed like the
//!   transfer engine's parts: sha256, or the git oid for regular files). The transfer runs in its
//!   own task: over the upstream's Xet storage when it listed a Xet hash for the content (and
//!   `[pull] xet` allows; terms the store already holds are copied, so a new revision of a held
//!   file costs only its changed chunks, and a chain of mirrors passes that on), else — or when
//!   that storage is unusable — over plain HTTP. Both report the part's contiguous prefix (the
//!   Xet one as terms land in order, the plain one as it is read back); every client streams
//!   from the part file up to that prefix and waits for it to grow. A client that disconnects does not cancel the transfer. The last byte of every
//!   answer is held back until the digest matched, so if verification fails every client stream
//!   is aborted with an error (the connection is reset, no client caches a wrong file) and
//!   nothing is published. Once it matched, clients get the last byte at once, while the part
//!   is synced and published (with an object store that upload can take minutes, longer than
//!   clients wait between bytes).
//! - **Access.** Gated and private content is served only to a request whose `Authorization`
//!   the upstream accepted for that repo (a `HEAD /resolve` with the client's header, without
//!   the mirror's own token), remembered for a few minutes.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{Semaphore, watch};

use super::body::READ_CHUNK;
use super::cache::{RepoItemKey, TtlCache};
use super::errors::{ErrorKind, ServeError, internal};
use super::metrics::Metrics;
use super::{Mirror, Target};
use crate::Larder;
use crate::fetch::progress::{PullEvent, Reporter};
use crate::fetch::transfer::{
    self, FileJob, PartProgress, PrefixHook, TransferEnv, TransferSettings,
};
use crate::fetch::xet::{self as fetch_xet, XetEnv};
use crate::hub::{HubError, RepoId, RepoType, Revision, UpstreamReply, is_commit_sha};
use crate::record::{self, Checked};
use crate::registry::{FileRecord, FileRow, RepoKind};

/// How long a branch's upstream answer is trusted.
const BRANCH_TTL: Duration = Duration::from_secs(60);
/// How long an upstream refusal (RepoNotFound, RevisionNotFound, ...) is reused.
const REFUSAL_TTL: Duration = Duration::from_secs(10);
/// How long an upstream access decision for a token is trusted.
const ACCESS_TTL: Duration = Duration::from_secs(300);

/// Most (repo, token) access answers remembered at once.
const ACCESS_CACHE_MAX: usize = 4096;
/// Upper bound on one upstream metadata exchange, so a dead upstream does not stall clients.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(8);
/// Connections shared by all pull-through transfers.
const CONNECTIONS: usize = 16;
/// How long an upstream CAS session (its token, refreshed as it expires, and its connections)
/// is kept for more files of the same commit.
const CAS_SESSION_TTL: Duration = Duration::from_secs(600);
/// Most CAS sessions kept at once.
const CAS_SESSION_MAX: usize = 256;

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

/// (kind, repo, sha256 of the `Authorization` value).
type BranchSlot = Arc<tokio::sync::Mutex<Option<(Instant, Lookup)>>>;
/// (kind, repo).
type RepoKey = (RepoKind, String);

/// What an upstream lookup of a revision said, as remembered for a while.
#[derive(Debug, Clone)]
enum Lookup {
    /// The commit it names (`None`: the upstream could not be asked; use the store's answer).
    Commit(Option<String>),
    /// The upstream refused for good (unknown repo or revision, gated, invalid request).
    Refused(UpstreamReply),
    /// The upstream redirected the repo to this name (renamed); the revision was recorded
    /// under it.
    Moved(String),
    /// The upstream could not be asked (down, hanging, garbage): its answer-to-be (502, 503
    /// or 504) and why, for a request the store cannot answer either.
    Unavailable { status: u16, why: String },
}

impl Lookup {
    /// How long the answer is reused: refusals briefly, so a repo or branch created upstream
    /// a moment ago shows up soon.
    fn ttl(&self) -> Duration {
        match self {
            Lookup::Commit(_) | Lookup::Unavailable { .. } | Lookup::Moved(_) => BRANCH_TTL,
            Lookup::Refused(_) => REFUSAL_TTL,
        }
    }
}

/// What an upstream lookup recorded.
struct FetchedRevision {
    /// The repo's name now (differs from the one asked when the upstream redirected).
    repo: String,
    /// The commit.
    sha: String,
    /// Whether the upstream disabled the repo.
    disabled: bool,
}

/// The pull-through machinery of a mirror.
pub struct PullThrough {
    larder: Larder,
    flights: Arc<Mutex<HashMap<String, Flight>>>,
    branches: Mutex<HashMap<RepoItemKey, BranchSlot>>,
    access: TtlCache<RepoItemKey, bool>,
    permits: Arc<Semaphore>,
    probe: reqwest::Client,
    /// When an upstream lookup last failed (cleared by the next success).
    down_since: Mutex<Option<Instant>>,
    /// Repos the upstream reported disabled, and when it last said so.
    disabled: Mutex<HashMap<RepoKey, Instant>>,
    /// The mirror's counters.
    metrics: Arc<Metrics>,
    /// Upstream CAS sessions by commit, for files fetched over Xet.
    cas: TtlCache<RepoItemKey, Arc<crate::xet::cas::CasSession>>,
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

impl Reporter for Counting {
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
    sha256: String,
    received: u64,
    chunking: Option<crate::xet::XetChunking>,
}

impl PullThrough {
    /// Pull-through over `larder`'s upstream client, counting into `metrics`.
    pub fn new(larder: Larder, metrics: Arc<Metrics>) -> Self {
        let probe = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(UPSTREAM_TIMEOUT)
            .build()
            .unwrap_or_default();
        PullThrough {
            larder,
            flights: Arc::new(Mutex::new(HashMap::new())),
            branches: Mutex::new(HashMap::new()),
            access: TtlCache::new(ACCESS_TTL, ACCESS_CACHE_MAX),
            permits: Arc::new(Semaphore::new(CONNECTIONS)),
            probe,
            down_since: Mutex::new(None),
            disabled: Mutex::new(HashMap::new()),
            metrics,
            cas: TtlCache::new(CAS_SESSION_TTL, CAS_SESSION_MAX),
        }
    }

    /// Whether the upstream disabled the repo (as last seen, within the branch TTL; the
    /// mark is renewed or cleared by every lookup of the repo).
    pub fn is_disabled(&self, kind: RepoKind, repo: &str) -> bool {
        self.disabled
            .lock()
            .ok()
            .and_then(|map| map.get(&(kind, repo.to_owned())).copied())
            .is_some_and(|at| at.elapsed() < BRANCH_TTL)
    }

    fn mark_disabled(&self, kind: RepoKind, repo: &str, disabled: bool) {
        if let Ok(mut map) = self.disabled.lock() {
            let key = (kind, repo.to_owned());
            if disabled {
                if map.insert(key, Instant::now()).is_none() {
                    tracing::warn!(repo, "the upstream has disabled this repo; refusing it too");
                }
            } else {
                map.remove(&key);
            }
        }
    }

    /// The commit `revision` names upstream, recording the commit and the ref move. `None` when
    /// the local answer should stand: the branch was checked within the last minute, or the
    /// upstream failed (logged).
    pub async fn resolve(
        &self,
        mirror: &Mirror,
        kind: RepoKind,
        repo: &str,
        revision: &str,
        headers: &HeaderMap,
    ) -> Result<Option<String>, ServeError> {
        let (Ok(repo_id), Ok(rev)) = (RepoId::parse(repo), Revision::parse(revision)) else {
            return Ok(None);
        };
        let held = |sha: &str| {
            let (name, sha) = (repo.to_owned(), sha.to_owned());
            let registry = self.larder.registry.clone();
            async move { matches!(registry.commit_detail(kind, &name, &sha).await, Ok(Some(_))) }
        };
        if is_commit_sha(revision) && held(revision).await {
            return Ok(Some(revision.to_owned()));
        }
        let key = RepoItemKey::new(kind, repo, revision);
        let slot = {
            let Ok(mut map) = self.branches.lock() else {
                return Ok(None);
            };
            map.entry(key).or_default().clone()
        };
        let mut slot = slot.lock().await;
        let lookup = match &*slot {
            Some((at, lookup)) if at.elapsed() < lookup.ttl() => lookup.clone(),
            _ => {
                let lookup = self.look_up(mirror, kind, &repo_id, &rev).await;
                *slot = Some((Instant::now(), lookup.clone()));
                lookup
            }
        };
        match lookup {
            Lookup::Commit(answer) => Ok(answer),
            Lookup::Moved(to) => Err(ServeError::Moved(to)),
            Lookup::Unavailable { status, why } => {
                let held = self.larder.registry.resolve(kind, repo, revision).await;
                if matches!(held, Ok(Some(_))) {
                    return Ok(None);
                }
                Err(ServeError::UpstreamUnavailable {
                    status,
                    endpoint: self.larder.client.endpoint(),
                    why,
                })
            }
            Lookup::Refused(reply) => {
                // What the store holds stays served (the upstream may only have lost it, or
                // refuse the mirror's own token); only a true miss gets the upstream's answer.
                let held = self.larder.registry.resolve(kind, repo, revision).await;
                if matches!(held, Ok(Some(_))) {
                    return Ok(None);
                }
                let authenticated = super::authorization(headers).is_some();
                Err(match reply.code.as_deref() {
                    // The Hub answers 401 anonymously and 404 with a token; follow the client's
                    // request, not the mirror's.
                    Some("RepoNotFound") => ServeError::RepoNotFound { authenticated },
                    _ => ServeError::UpstreamRefused {
                        status: reply.status,
                        code: reply.code,
                        message: reply.message,
                    },
                })
            }
        }
    }

    /// Ask the upstream which commit `rev` names (recording it); classify the failure.
    async fn look_up(
        &self,
        mirror: &Mirror,
        kind: RepoKind,
        repo_id: &RepoId,
        rev: &Revision,
    ) -> Lookup {
        let repo = repo_id.as_str();
        match self.fetch_revision(kind, repo_id, rev).await {
            Ok(fetched) => {
                mirror.forget(kind, &fetched.repo);
                self.mark_down(false);
                self.mark_disabled(kind, &fetched.repo, fetched.disabled);
                if fetched.repo != repo {
                    return Lookup::Moved(fetched.repo);
                }
                Lookup::Commit(Some(fetched.sha))
            }
            Err(error) => {
                if let HubError::Disabled { .. } = error {
                    self.mark_disabled(kind, repo, true);
                    self.mark_down(false);
                    return Lookup::Commit(None);
                }
                if let Some(reply) = error.refusal() {
                    self.mark_down(false);
                    tracing::info!(
                        repo, revision = %rev, status = reply.status, code = reply.code.as_deref(),
                        "upstream refused the lookup"
                    );
                    return Lookup::Refused(reply);
                }
                self.metrics.error(ErrorKind::UpstreamLookupFailed);
                if matches!(error, HubError::Network { .. } | HubError::Endpoint(_))
                    || error.is_transient()
                {
                    self.mark_down(true);
                }
                let why = transfer::error_chain(&error);
                tracing::warn!(
                    repo, revision = %rev, error = %why,
                    "upstream lookup failed; answering from the store"
                );
                let status = match &error {
                    HubError::Timeout { .. } => 504,
                    HubError::Network { .. } => 503,
                    HubError::Status {
                        status: 429 | 503, ..
                    } => 503,
                    _ => 502,
                };
                Lookup::Unavailable { status, why }
            }
        }
    }

    fn mark_down(&self, down: bool) {
        if let Ok(mut since) = self.down_since.lock() {
            match (down, *since) {
                (true, None) => *since = Some(Instant::now()),
                (false, _) => *since = None,
                _ => {}
            }
        }
    }

    /// Whether the last upstream lookup failed recently.
    fn upstream_down(&self) -> bool {
        self.down_since
            .lock()
            .ok()
            .and_then(|since| *since)
            .is_some_and(|at| at.elapsed() < BRANCH_TTL)
    }

    /// Repo info (+ tree, for a commit not yet recorded) from upstream, recorded under the
    /// name the upstream gives the repo now (with `repo` as an old name, if it redirected).
    async fn fetch_revision(
        &self,
        kind: RepoKind,
        asked: &RepoId,
        revision: &Revision,
    ) -> Result<FetchedRevision, HubError> {
        let client = &self.larder.client;
        let rt = RepoType::from(kind);
        let timed = |what: &'static str, after: Duration| HubError::Timeout {
            url: format!("{} ({what})", client.endpoint()),
            what: "answer",
            after,
        };
        let fetched = tokio::time::timeout(
            UPSTREAM_TIMEOUT,
            client.repo_info_fetched(rt, asked, revision),
        )
        .await
        .map_err(|_| timed("repo info", UPSTREAM_TIMEOUT))??;
        let repo = &fetched.canonical;
        let info = &fetched.info;
        let sha = info.sha.clone().unwrap_or_default();
        let known = self
            .larder
            .registry
            .commit_detail(kind, repo.as_str(), &sha)
            .await
            .ok()
            .flatten();
        let refs = if revision.is_commit() {
            Vec::new()
        } else {
            vec![revision.to_string()]
        };
        let files = match known {
            Some(_) => Vec::new(), // the tree of a commit never changes; only the ref moves
            None => {
                let tree =
                    tokio::time::timeout(UPSTREAM_TIMEOUT * 4, client.list_files(rt, repo, &sha))
                        .await
                        .map_err(|_| timed("tree", UPSTREAM_TIMEOUT * 4))??;
                let mut files = Vec::with_capacity(tree.len());
                // The Xet hashes it lists, so the mirror can advertise Xet for files it has not
                // fetched yet (a hash is a function of the content, so the pair stays true).
                let listed: Vec<(String, String)> = tree
                    .iter()
                    .filter_map(|f| Some((f.lfs_sha256.clone()?, f.xet_hash.clone()?)))
                    .collect();
                if let Err(error) = self.larder.registry.record_listed_xet(listed).await {
                    tracing::warn!(error = %transfer::error_chain(&error), "recording listed Xet hashes failed");
                }
                for f in tree {
                    let sha256 = match &f.lfs_sha256 {
                        Some(sha) => Some(sha.clone()),
                        None => self
                            .larder
                            .registry
                            .sha256_for_git_oid(&f.git_oid)
                            .await
                            .ok()
                            .flatten(),
                    };
                    files.push(FileRecord {
                        lfs: f.is_lfs(),
                        path: f.path,
                        size: f.size,
                        git_oid: f.git_oid,
                        sha256,
                    });
                }
                files
            }
        };
        let record = record::upstream_snapshot(
            RepoType::from(kind),
            repo,
            client.endpoint(),
            info,
            &sha,
            refs,
            files,
        );
        match self.larder.registry.record_snapshot(record).await {
            Ok(_) => {
                crate::manifest::publish_logged(&self.larder, kind, repo.as_str(), &sha).await;
                if let Err(error) =
                    record::record_upstream_facts(&self.larder, rt, asked, &fetched, &sha).await
                {
                    tracing::error!(error = %transfer::error_chain(&error), "recording an upstream rename or info failed");
                }
            }
            Err(error) => {
                tracing::error!(error = %transfer::error_chain(&error), "recording an upstream revision failed");
            }
        }
        Ok(FetchedRevision {
            repo: repo.to_string(),
            sha,
            disabled: info.disabled,
        })
    }

    /// Whether the upstream accepts `authorization` for the repo (cached a few minutes).
    pub async fn check_access(
        &self,
        kind: RepoKind,
        repo: &str,
        commit: &str,
        authorization: &str,
    ) -> bool {
        let token_key = hex::encode(Sha256::digest(authorization.as_bytes()));
        let key = RepoItemKey::new(kind, repo, token_key);
        if let Some(allowed) = self.access.get(&key) {
            return allowed;
        }
        let url = format!(
            "{}/{}{}/resolve/{}/.gitattributes",
            self.larder.client.endpoint().trim_end_matches('/'),
            RepoType::from(kind).url_prefix(),
            repo,
            commit
        );
        let allowed = match self
            .probe
            .head(&url)
            .header(reqwest::header::AUTHORIZATION, authorization)
            .send()
            .await
        {
            Ok(response) => {
                let status = response.status();
                let code = response
                    .headers()
                    .get("x-error-code")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                status.is_success()
                    || status.is_redirection()
                    || (status.as_u16() == 404 && code == "EntryNotFound")
            }
            Err(error) => {
                tracing::warn!(repo, error = %transfer::error_chain(&error), "upstream access check failed");
                return false; // not cached: try again next time
            }
        };
        tracing::info!(repo, allowed, "upstream access check");
        self.access.insert(key, allowed);
        allowed
    }

    /// Start or join the transfer of `file` of `commit`.
    pub async fn flight(
        &self,
        mirror: &Mirror,
        target: &Target,
        commit: &str,
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
            sha256: file.sha256.clone().filter(|_| file.lfs),
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
            commit,
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
                    let sha = fetched.sha256.clone();
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
        commit: &str,
        file: &FileRow,
    ) -> Option<(XetEnv, String)> {
        if !mirror.options.pull_xet || !file.lfs {
            return None;
        }
        let sha256 = file.sha256.clone()?;
        let xet_hash = match self
            .larder
            .registry
            .known_xet_hashes(vec![sha256.clone()])
            .await
        {
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
    commit: &str,
    row: &FileRow,
    sha256: &str,
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
