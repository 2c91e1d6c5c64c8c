//! `pull()`: resolve a revision, plan, fetch in parallel, verify, publish, record.
//!
//! Scheduling: large files go a few at a time, each on several ranged connections; small files
//! go many at a time, one connection each. Every request holds a permit of one adaptive limit
//! ([`concurrency`]), which finds how many requests the upstream takes at once.
//!
//! Order of effects, so that a crash at any instant leaves a consistent home: a blob is
//! renamed into the store only after its digest matched and its bytes were synced; its
//! registry row is written after the rename is durable (small files: a group at a time, see
//! [`group`]); the commit, its tree, the ref move and the licence fields are recorded in one
//! transaction after every selected file is held. With a licence gate
//! ([`PullOptions::licence_gate`]) the licence is detected and judged before any transfer (a
//! denial leaves the home untouched) and its record is written right after the snapshot.
//!
//! Interruption ([`PullOptions::cancel`]): every transfer writes what it has received and
//! checkpoints its part, files already verified are still committed, and the pull fails with
//! [`PullError::Interrupted`] saying how much of what it set out to fetch is kept; the same
//! pull later resumes from there. Nothing is recorded as a snapshot.

pub mod concurrency;
pub mod digest;
pub mod group;
pub mod plan;
pub mod prefix_digest;
pub mod progress;
pub mod ranges;
pub mod rate;
pub mod state;
pub mod transfer;
pub mod xet;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::Larder;
use crate::failure::{Classify, FailureKind, Hint};
use crate::hub::{HubError, RepoFile, RepoId, RepoType, Revision};
use crate::interrupt::{Interrupted, unless_cancelled};
use crate::record::{self, AdoptError};
use crate::registry::{CommitId, FileRecord, RegistryError, RepoKind, Sha256};
use crate::report::Reporter;
use crate::store::StoreError;
use group::FetchedFile;
use plan::{PatternError, PlannedFile, Selection, content_key};
use progress::PullEvent;
use transfer::{FileJob, TransferEnv, TransferError, TransferSettings};

/// What to pull and how.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Model or dataset.
    pub kind: RepoType,
    /// The repo.
    pub repo: RepoId,
    /// Branch, tag, commit or `refs/pr/N`.
    pub revision: Revision,
    /// Only files matching one of these.
    pub include: Vec<String>,
    /// Except files matching one of these.
    pub exclude: Vec<String>,
    /// Most files in flight at once (a cap: how many actually are adapts to the upstream).
    pub max_files: usize,
    /// The connection budget: most requests in flight at once, for all files together (a cap
    /// on the adaptive limit of [`concurrency`]).
    pub total_connections: usize,
    /// Connections shared by the large files in flight.
    pub large_file_connections: usize,
    /// Most large files in flight at once (each on several ranged connections).
    pub large_files: usize,
    /// Files up to this size are small: fetched many at once on one connection each and
    /// published in groups ([`group`]); larger ones are large.
    pub small_file_size: u64,
    /// Engine tunables (connections per file, stall timeout, ...).
    pub transfer: TransferSettings,
    /// Also lay the snapshot out as plain files here.
    pub local_dir: Option<PathBuf>,
    /// Copies (the default) or hard links in `local_dir`.
    pub local_dir_links: crate::store::materialize::LinkMode,
    /// Global download rate limit shared by every connection.
    pub rate_limit: Option<Arc<rate::RateLimiter>>,
    /// Licence detection and policy, run before any transfer (see [`crate::licence`]).
    pub licence_gate: Option<Arc<crate::licence::PullGate>>,
    /// Fetch files the upstream stores in Xet from its Xet storage (else plain HTTP).
    pub xet: bool,
    /// Cancel to stop the pull, keeping what was fetched (see the module documentation).
    pub cancel: CancellationToken,
}

impl PullOptions {
    /// Defaults for `repo` at `revision`.
    pub fn new(kind: RepoType, repo: RepoId, revision: Revision) -> Self {
        PullOptions {
            kind,
            repo,
            revision,
            include: Vec::new(),
            exclude: Vec::new(),
            max_files: 64,
            total_connections: 64,
            large_file_connections: 16,
            large_files: 4,
            small_file_size: 8 << 20,
            transfer: TransferSettings::default(),
            local_dir: None,
            local_dir_links: crate::store::materialize::LinkMode::Copy,
            rate_limit: None,
            licence_gate: None,
            xet: true,
            cancel: CancellationToken::new(),
        }
    }
}

/// What a pull did.
#[derive(Debug, Clone, Serialize)]
pub struct PullSummary {
    /// `org/name`, as the upstream calls the repo now.
    pub repo: String,
    /// The name asked for, when the upstream redirected it to `repo` (a renamed repo).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
    /// `model` or `dataset`.
    pub kind: RepoType,
    /// The revision asked for.
    pub revision: String,
    /// The commit it resolved to.
    pub commit: CommitId,
    /// Files selected.
    pub files: usize,
    /// Their total size.
    pub bytes: u64,
    /// Files fetched in this run.
    pub fetched_files: usize,
    /// Bytes received in this run.
    pub fetched_bytes: u64,
    /// Files the store already held.
    pub reused_files: usize,
    /// Bytes of fetched files copied from held revisions instead of fetched (Xet delta).
    pub reused_bytes: u64,
    /// Wall time.
    pub seconds: f64,
    /// Where plain files were laid out, if asked.
    pub local_dir: Option<PathBuf>,
    /// The licence detected and the policy's verdict, when a licence gate ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub licence: Option<crate::licence::PullLicence>,
}

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The Hub refused or failed.
    #[error(transparent)]
    Hub(#[from] HubError),
    /// A pattern did not compile.
    #[error(transparent)]
    Pattern(#[from] PatternError),
    /// Nothing matched the patterns.
    #[error("no file of `{repo}` at {commit} matches the --include/--exclude patterns")]
    NothingSelected {
        /// The repo.
        repo: String,
        /// The commit.
        commit: CommitId,
    },
    /// A file could not be fetched.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// A file could not be fetched over Xet (and plain HTTP is no remedy).
    #[error(transparent)]
    Xet(#[from] xet::XetTransferError),
    /// The registry failed.
    #[error("could not record the pull in the registry")]
    Registry(#[from] RegistryError),
    /// The store failed outside a transfer.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Laying out `--local-dir` failed.
    #[error(transparent)]
    Materialize(#[from] crate::store::materialize::MaterializeError),
    /// The licence policy denied the pull, or licence detection failed.
    #[error(transparent)]
    Licence(#[from] crate::licence::LicenceError),
    /// The revision manifest could not be written to the shared store.
    #[error("could not write the revision manifest to the store")]
    Manifest(#[from] crate::manifest::ManifestError),
    /// The pull was cancelled ([`PullOptions::cancel`]); what it kept is resumed by the next.
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

impl Classify for PullError {
    fn failure_kind(&self) -> FailureKind {
        match self {
            PullError::Hub(e) => e.failure_kind(),
            PullError::Pattern(_) | PullError::NothingSelected { .. } => FailureKind::Invalid,
            PullError::Transfer(e) => e.failure_kind(),
            PullError::Xet(e) => e.failure_kind(),
            PullError::Registry(e) => e.failure_kind(),
            PullError::Store(e) => e.failure_kind(),
            PullError::Materialize(e) => e.failure_kind(),
            PullError::Licence(e) => e.failure_kind(),
            PullError::Manifest(e) => e.failure_kind(),
            PullError::Interrupted(e) => e.failure_kind(),
        }
    }
}

/// Registry lookups of the plan run this many at once.
const PLAN_LOOKUPS: usize = 16;

const RESUME_HINT: &str = "run the same `larder pull` again to resume from what was written";

impl Hint for PullError {
    fn hint(&self) -> Option<String> {
        match self {
            _ if self.is_disk_full() => Some(
                "the parts already written are kept; free space, then `larder pull` again resumes them"
                    .to_owned(),
            ),
            PullError::Hub(hub) => hub.hint(),
            PullError::Transfer(TransferError::Hub { source: hub, .. }) if hub.is_unreachable() => {
                hub.unreachable_hint()
            }
            // Resuming helps only after a transfer ran out of retries or lost its connection,
            // not after a size or digest mismatch, a bad redirect or a refusal.
            PullError::Transfer(TransferError::Exhausted { .. }) => Some(RESUME_HINT.to_owned()),
            PullError::Transfer(TransferError::Hub { source, .. }) if source.is_transient() => {
                Some(RESUME_HINT.to_owned())
            }
            PullError::Licence(e) => e.hint(),
            PullError::Xet(e) => e.hint(),
            PullError::Registry(e) => e.hint(),
            PullError::Store(e) => e.hint(),
            _ => None,
        }
    }
}

impl PullError {
    /// Whether the failure was a full disk (of the store or the registry).
    pub fn is_disk_full(&self) -> bool {
        self.failure_kind() == crate::failure::FailureKind::DiskFull
    }
}

/// Pull a repo revision into the store and registry. An interrupted pull reports
/// [`PullEvent::Interrupted`] before it fails.
pub async fn pull(
    larder: &Larder,
    options: &PullOptions,
    reporter: Arc<dyn Reporter<PullEvent>>,
) -> Result<PullSummary, PullError> {
    let result = pull_inner(larder, options, reporter.clone()).await;
    if let Err(PullError::Interrupted(interrupted)) = &result {
        reporter.report(&PullEvent::Interrupted {
            kept: interrupted.kept,
            total: interrupted.total,
        });
    }
    result
}

async fn pull_inner(
    larder: &Larder,
    options: &PullOptions,
    reporter: Arc<dyn Reporter<PullEvent>>,
) -> Result<PullSummary, PullError> {
    let started = Instant::now();
    let selection = Selection::new(&options.include, &options.exclude)?;
    // Blobs published by this pull stay unreferenced until the snapshot is recorded at the end.
    let _gc_guard = larder.local.gc_guard().await?;
    let client = &larder.client;
    let cancel = &options.cancel;
    // Until the transfers start nothing is written: a cancelled step is just dropped.
    let upstream = unless_cancelled(cancel, async {
        Ok::<_, PullError>(
            client
                .repo_info_fetched(options.kind, &options.repo, &options.revision)
                .await?,
        )
    })
    .await?;
    // A renamed repo is pulled and recorded under the name the upstream redirected to.
    let asked = options.repo.clone();
    let moved;
    let options = match upstream.renamed_from(&asked) {
        Some(_) => {
            moved = PullOptions {
                repo: upstream.canonical.clone(),
                ..options.clone()
            };
            &moved
        }
        None => options,
    };
    let info = &upstream.info;
    let commit = upstream.commit;
    let tree = unless_cancelled(cancel, async {
        Ok::<_, PullError>(
            client
                .list_files(options.kind, &options.repo, &commit)
                .await?,
        )
    })
    .await?;
    // Licence: detect and decide before any transfer; a denial downloads and records nothing.
    let licence = match &options.licence_gate {
        Some(gate) => Some(
            unless_cancelled(cancel, async {
                Ok::<_, PullError>(
                    gate.check(larder, options.kind, &options.repo, &commit, info, &tree)
                        .await?,
                )
            })
            .await?,
        ),
        None => None,
    };

    let selected: Vec<RepoFile> = tree
        .iter()
        .filter(|f| {
            selection.matches(&f.path)
                || options
                    .licence_gate
                    .as_ref()
                    .is_some_and(|gate| gate.always_fetches(&f.path, f.size))
        })
        .cloned()
        .collect();
    if selected.is_empty() {
        return Err(PullError::NothingSelected {
            repo: options.repo.to_string(),
            commit,
        });
    }

    // Plan: what the store already holds (registry lookups, several at once).
    let notes = group::HeldNotes::load(larder, &commit);
    let notes = &notes;
    let planned: Vec<PlannedFile> = unless_cancelled(
        cancel,
        futures::stream::iter(selected)
            .map(|file| async move {
                let held = held_blob(larder, notes, &file).await?;
                Ok::<_, PullError>(PlannedFile { file, held })
            })
            .buffered(PLAN_LOOKUPS)
            .try_collect(),
    )
    .await?;
    let mut to_fetch: HashMap<String, RepoFile> = HashMap::new();
    for p in planned.iter().filter(|p| p.held.is_none()) {
        to_fetch
            .entry(content_key(&p.file))
            .or_insert_with(|| p.file.clone());
    }
    let mut fetch_list: Vec<RepoFile> = to_fetch.into_values().collect();
    let sizes: HashMap<String, u64> = fetch_list
        .iter()
        .map(|f| (content_key(f), f.size))
        .collect();
    let fetch_bytes: u64 = sizes.values().sum();
    // Large files first so they get their connections early; then by path.
    fetch_list.sort_by(|a, b| b.size.cmp(&a.size).then(a.path.cmp(&b.path)));

    reporter.report(&PullEvent::Resolved {
        repo: options.repo.to_string(),
        kind: options.kind.to_string(),
        revision: options.revision.to_string(),
        commit,
        files: planned.len(),
        bytes: planned.iter().map(|p| p.file.size).sum(),
        fetch_files: fetch_list.len(),
        fetch_bytes,
    });
    for p in planned.iter().filter(|p| p.held.is_some()) {
        reporter.report(&PullEvent::FileReused {
            path: p.file.path.clone(),
            size: p.file.size,
        });
    }

    let request_limit = concurrency::AdaptiveLimit::new(
        options
            .total_connections
            .max(options.large_file_connections)
            .max(1),
    );
    let env = TransferEnv {
        client: client.clone(),
        store: larder.local.clone(),
        blobs: larder.blobs.clone(),
        permits: Arc::new(Semaphore::new(options.large_file_connections.max(1))),
        settings: options.transfer.clone(),
        reporter: reporter.clone(),
        rate_limit: options.rate_limit.clone(),
        request_limit: Some(request_limit.clone()),
        cancel: cancel.clone(),
    };
    // Small files take no large-file connection: only the adaptive limit bounds them.
    let small_env = TransferEnv {
        permits: Arc::new(Semaphore::new(options.total_connections.max(1))),
        ..env.clone()
    };
    let xet_env = if options.xet && fetch_list.iter().any(|f| f.xet_hash.is_some()) {
        match crate::xet::cas::CasSession::new(client, options.kind, &options.repo, &commit) {
            Ok(session) => Some(xet::XetEnv {
                registry: larder.registry.clone(),
                session: Arc::new(session),
            }),
            Err(error) => {
                tracing::warn!(%error, "Xet storage unusable; pulling over plain HTTP");
                None
            }
        }
    } else {
        None
    };
    // Every file in flight, large or small, holds one of these.
    let file_slots = Arc::new(Semaphore::new(options.max_files.max(1)));
    let mut large_jobs = Vec::new();
    let mut small_jobs = Vec::new();
    // Collected (the futures are lazy) so no borrowing closure is held across an await: the
    // pull future stays `Send` for `tokio::spawn` (the daemon's workers).
    for file in &fetch_list {
        let xet = xet_env.clone().zip(file.xet_hash.clone());
        // Xet transfers publish file by file; so do large files.
        let small = xet.is_none() && file.size <= options.small_file_size;
        let env = if small {
            small_env.clone()
        } else {
            env.clone()
        };
        let url = client.resolve_url(options.kind, &options.repo, &commit, &file.path);
        let job = url.map(|url| FileJob {
            kind: options.kind,
            repo: options.repo.to_string(),
            path: file.path.clone(),
            size: file.size,
            sha256: file.lfs_sha256,
            git_oid: file.git_oid.clone(),
            url,
        });
        let slots = file_slots.clone();
        let fetch = async move {
            let _slot = slots.acquire_owned().await;
            fetch_verified(&env, job.map_err(PullError::Hub)?, xet, small).await
        };
        if small {
            small_jobs.push(fetch);
        } else {
            large_jobs.push(fetch);
        }
    }
    let large = futures::stream::iter(large_jobs)
        .buffer_unordered(options.large_files.clamp(1, options.max_files.max(1)));
    let small = futures::stream::iter(small_jobs).buffer_unordered(options.max_files.max(1));
    let mut results = futures::stream::select(large, small);

    let (to_commit, arrivals) = tokio::sync::mpsc::unbounded_channel();
    // `Some(bytes kept in parts)` when interrupted.
    let transfers = async move {
        let mut interrupted: Option<u64> = None;
        while let Some(result) = results.next().await {
            match result {
                Ok(file) => {
                    if to_commit.send(file).is_err() {
                        // The committer stopped on an error; it reports it.
                        return Ok(None);
                    }
                }
                // The others stop too (or, not started, fail at once); keep draining them.
                Err(PullError::Transfer(TransferError::Interrupted { kept, .. })) => {
                    *interrupted.get_or_insert(0) += kept;
                }
                Err(PullError::Transfer(TransferError::Hub { source, .. }))
                    if source.is_access_error() =>
                {
                    // A gate or a vanished repo concerns the whole pull: say that, not "file X
                    // failed".
                    return Err(PullError::Hub(source));
                }
                // Stop starting new files; what was verified so far is still committed.
                Err(error) => return Err(error),
            }
        }
        Ok(interrupted)
    };
    let (transferred, committed) = tokio::join!(
        transfers,
        group::commit_groups(larder, reporter.as_ref(), notes, arrivals)
    );
    let committed = match (transferred, committed) {
        (Err(error), _) | (Ok(_), Err(error)) => return Err(error),
        (Ok(Some(in_parts)), Ok(committed)) => {
            let published: u64 = committed
                .fetched
                .keys()
                .filter_map(|key| sizes.get(key))
                .sum();
            return Err(Interrupted {
                kept: published + in_parts,
                total: fetch_bytes,
            }
            .into());
        }
        (Ok(None), Ok(committed)) => committed,
    };
    tracing::debug!(
        peak = request_limit.peak(),
        limit = request_limit.limit(),
        "requests in flight"
    );
    let fetched = committed.fetched;
    let fetched_bytes = committed.received;
    let reused_bytes = committed.reused;

    // Record the snapshot: the complete tree, with sha256 wherever it is known.
    let mut known: HashMap<String, Sha256> = fetched.clone();
    for p in &planned {
        if let Some(sha) = &p.held {
            known.insert(content_key(&p.file), *sha);
        }
    }
    let files: Vec<FileRecord> = tree
        .iter()
        .map(|f| FileRecord {
            path: f.path.clone(),
            size: f.size,
            git_oid: f.git_oid.clone(),
            sha256: f.lfs_sha256.or_else(|| known.get(&content_key(f)).copied()),
            lfs: f.is_lfs(),
        })
        .collect();
    let refs = if options.revision.is_commit() {
        Vec::new()
    } else {
        vec![options.revision.to_string()]
    };
    larder
        .registry
        .record_snapshot(record::upstream_snapshot(
            options.kind,
            &options.repo,
            client.endpoint(),
            info,
            &commit,
            refs,
            files,
        ))
        .await?;
    record::record_upstream_facts(larder, options.kind, &asked, &upstream, &commit).await?;
    notes.forget();
    if let (Some(gate), Some(licence)) = (&options.licence_gate, &licence) {
        gate.record(larder, options.kind, &options.repo, &commit, licence)
            .await?;
    }
    crate::manifest::publish(
        larder,
        RepoKind::from(options.kind),
        &options.repo.to_string(),
        &commit,
    )
    .await?;

    if let Some(dir) = &options.local_dir {
        let mut entries: Vec<(String, PathBuf)> = Vec::with_capacity(planned.len());
        for p in &planned {
            let Some(sha) = p
                .held
                .or_else(|| fetched.get(&content_key(&p.file)).copied())
            else {
                continue;
            };
            entries.push((p.file.path.clone(), larder.blobs.fetch_local(&sha).await?));
        }
        crate::store::materialize::plain_dir(dir, &entries, options.local_dir_links)?;
    }

    let summary = PullSummary {
        repo: options.repo.to_string(),
        renamed_from: (asked != options.repo).then(|| asked.to_string()),
        kind: options.kind,
        revision: options.revision.to_string(),
        commit,
        files: planned.len(),
        bytes: planned.iter().map(|p| p.file.size).sum(),
        fetched_files: fetched_list_len(&planned),
        fetched_bytes,
        reused_files: planned.iter().filter(|p| p.held.is_some()).count(),
        reused_bytes,
        seconds: started.elapsed().as_secs_f64(),
        local_dir: options.local_dir.clone(),
        licence,
    };
    reporter.report(&PullEvent::Done {
        repo: summary.repo.clone(),
        commit,
        fetched_files: summary.fetched_files,
        fetched_bytes,
        reused_files: summary.reused_files,
        reused_bytes,
        seconds: summary.seconds,
    });
    Ok(summary)
}

fn fetched_list_len(planned: &[PlannedFile]) -> usize {
    planned.iter().filter(|p| p.held.is_none()).count()
}

/// The sha256 of a blob the store holds with this file's content, if any. A blob found on
/// disk without a registry row (a crash between rename and insert) is recorded now: only
/// verified content is ever renamed into the store.
async fn held_blob(
    larder: &Larder,
    notes: &group::HeldNotes,
    file: &RepoFile,
) -> Result<Option<Sha256>, PullError> {
    let sha = match file.lfs_sha256 {
        Some(sha) => Some(sha),
        None => match larder.registry.sha256_for_git_oid(&file.git_oid).await? {
            Some(sha) => Some(sha),
            // Committed by a pull that died before recording its snapshot.
            None => notes.blob(larder, &file.git_oid, file.size).await,
        },
    };
    let Some(sha) = sha else { return Ok(None) };
    let held = record::adopt_held_blob(larder, &sha, file.size)
        .await
        .map_err(|error| match error {
            AdoptError::Store(e) => PullError::Store(e),
            AdoptError::Registry(e) => PullError::Registry(e),
        })?;
    Ok(held.then_some(sha))
}

/// Fetch one file — over Xet when `xet` is given, falling back to plain HTTP when the Xet
/// storage is unusable; on a digest mismatch over HTTP throw the bytes away and fetch it once
/// more. With `deferred`, an HTTP transfer leaves the verified part for [`group`] to publish
/// (and to report verified); otherwise the file is published when this returns.
async fn fetch_verified(
    env: &TransferEnv,
    job: FileJob,
    xet: Option<(xet::XetEnv, String)>,
    deferred: bool,
) -> Result<FetchedFile, PullError> {
    let key = job.key();
    let size = job.size;
    let path = job.path.clone();
    if env.cancel.is_cancelled() {
        // Not started: whatever an earlier run left in its part stays there.
        return Err(TransferError::Interrupted { path, kept: 0 }.into());
    }
    if let Some((xet_env, xet_hash)) = xet {
        // Dropped when cancelled: its part saves the terms that landed (see [`xet`]).
        let fetched = tokio::select! {
            biased;
            fetched = xet::fetch_file(env, &xet_env, &job, &xet_hash) => Some(fetched),
            () = env.cancel.cancelled() => None,
        };
        let Some(fetched) = fetched else {
            let kept = job
                .sha256
                .as_ref()
                .map_or(0, |sha| xet::kept(&env.store.tmp_dir(), sha));
            return Err(TransferError::Interrupted { path, kept }.into());
        };
        match fetched {
            Ok(fetched) => {
                env.reporter.report(&PullEvent::FileVerified {
                    path: path.clone(),
                    sha256: Some(fetched.sha256),
                });
                return Ok(FetchedFile {
                    path,
                    key,
                    sha256: fetched.sha256,
                    size,
                    received: fetched.fetched,
                    reused: fetched.reused,
                    chunking: Some(fetched.chunking),
                    part: None,
                });
            }
            Err(error) if error.falls_back() => {
                env.reporter.report(&PullEvent::XetFallback {
                    path: path.clone(),
                    reason: transfer::error_chain(&error),
                });
            }
            Err(error) => {
                env.reporter.report(&PullEvent::FileFailed {
                    path: path.clone(),
                    error: transfer::error_chain(&error),
                });
                return Err(error.into());
            }
        }
    }
    let mut received_total = 0;
    let mut retried = false;
    loop {
        let result = if deferred {
            transfer::fetch_file_deferred(env, job.clone())
                .await
                .map(|(fetched, part)| (fetched, Some(part)))
        } else {
            transfer::fetch_file(env, job.clone())
                .await
                .map(|fetched| (fetched, None))
        };
        match result {
            Ok((fetched, part)) => {
                received_total += fetched.received;
                if part.is_none() {
                    env.reporter.report(&PullEvent::FileVerified {
                        path: path.clone(),
                        sha256: Some(fetched.digests.sha256),
                    });
                }
                return Ok(FetchedFile {
                    path,
                    key,
                    sha256: fetched.digests.sha256,
                    size,
                    received: received_total,
                    reused: 0,
                    chunking: fetched.digests.xet,
                    part,
                });
            }
            Err(TransferError::Mismatch {
                path,
                expected,
                actual,
            }) if !retried => {
                retried = true;
                env.reporter.report(&PullEvent::Mismatch {
                    path,
                    expected,
                    actual,
                });
                received_total += size;
            }
            Err(error @ TransferError::Interrupted { .. }) => return Err(error.into()),
            Err(error) => {
                env.reporter.report(&PullEvent::FileFailed {
                    path: path.clone(),
                    error: transfer::error_chain(&error),
                });
                return Err(error.into());
            }
        }
    }
}
