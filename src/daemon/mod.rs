//! The daemon's background work: a persistent job queue on the registry's `jobs` table, run by
//! a few workers inside `larder serve`.
//!
//! A job is submitted ([`Daemon::submit`]), stored `queued`, claimed by a worker (`running`),
//! and ends `done`, `failed` or `cancelled`. The registry is the queue: a daemon that dies
//! leaves its jobs `running`, and the next one to start puts them back in the queue
//! ([`Daemon::start`]); a pull picks up its part files, so the bytes already written are kept.
//! Cancelling a running job drops its pull future; its parts stay in `tmp/` for a later pull.
//!
//! Beside the workers run the tracking scheduler ([`track`]: re-resolves tracked refs, queues
//! pulls of new commits, reports them to a webhook) and, with a quota, the quota keeper
//! ([`keeper`]: evicts least recently served unpinned revisions).

pub mod jobs;
pub mod keeper;
pub mod track;
pub mod webhook;
pub mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Larder;
use crate::fetch::rate::RateLimiter;
use crate::registry::{JobRecord, JobState, RegistryError, RepoKind};
use jobs::JobSpec;

/// How the daemon runs jobs.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Jobs run at once (0: accept jobs but run none).
    pub workers: usize,
    /// How often a running job's progress is written to the registry.
    pub progress_every: Duration,
    /// How often idle workers look for jobs queued by another process.
    pub poll_every: Duration,
    /// The download rate shared by every job's pull.
    pub rate_limit: Option<Arc<RateLimiter>>,
    /// Store quota in bytes: least recently served unpinned revisions are evicted above it.
    pub quota: Option<u64>,
    /// How often the quota is checked (also after each job).
    pub quota_every: Duration,
    /// How often the tracking scheduler looks for tracked refs due for a check.
    pub track_every: Duration,
    /// Where tracking events are POSTed.
    pub webhook: Option<String>,
}

impl DaemonOptions {
    /// Apply the `[daemon]` table of the config (before flags, which override it).
    pub fn apply_config(
        &mut self,
        config: &crate::config::DaemonConfig,
    ) -> Result<(), crate::config::ConfigValueError> {
        use crate::config::ConfigValueError;
        if let Some(rate) = &config.max_rate {
            let rate = crate::fetch::rate::parse_rate(rate)
                .map_err(|reason| ConfigValueError::new("daemon.max_rate", reason))?;
            self.rate_limit = Some(Arc::new(RateLimiter::new(rate)));
        }
        if let Some(quota) = &config.quota {
            self.quota = Some(
                crate::units::parse_size(quota)
                    .map_err(|reason| ConfigValueError::new("daemon.quota", reason))?,
            );
        }
        if let Some(workers) = config.job_workers {
            if workers > 16 {
                return Err(ConfigValueError::new(
                    "daemon.job_workers",
                    format!("{workers} is more than 16"),
                ));
            }
            self.workers = usize::from(workers);
        }
        if let Some(url) = &config.webhook {
            let parsed = url::Url::parse(url)
                .map_err(|e| ConfigValueError::new("daemon.webhook", e.to_string()))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ConfigValueError::new(
                    "daemon.webhook",
                    format!("`{url}` is not an http(s) URL"),
                ));
            }
            self.webhook = Some(url.clone());
        }
        Ok(())
    }
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            workers: 2,
            progress_every: Duration::from_millis(500),
            poll_every: Duration::from_secs(2),
            rate_limit: None,
            quota: None,
            quota_every: Duration::from_secs(60),
            track_every: Duration::from_secs(1),
            webhook: None,
        }
    }
}

/// Why a daemon operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The registry failed.
    #[error("the job queue could not be read or written")]
    Registry(#[from] RegistryError),
    /// The spec could not be stored.
    #[error("the job spec could not be encoded")]
    Encode(#[from] serde_json::Error),
}

/// State shared by the handle and the workers.
pub(crate) struct Shared {
    pub(crate) larder: Larder,
    pub(crate) options: DaemonOptions,
    pub(crate) wake: Notify,
    pub(crate) shutdown: CancellationToken,
    /// The cancellation token of each running job.
    pub(crate) running: Mutex<HashMap<i64, CancellationToken>>,
    /// Files being transferred by jobs right now.
    pub(crate) active_transfers: AtomicI64,
    /// Bytes jobs received from the upstream: models, datasets.
    pub(crate) fetched_bytes: [AtomicU64; 2],
    /// Files jobs received whose content did not match its digest.
    pub(crate) verification_failures: AtomicU64,
    /// File bytes Xet pulls of jobs copied from blobs already held instead of fetching them.
    pub(crate) xet_reused_bytes: AtomicU64,
    /// Wakes the quota keeper (a job ended).
    pub(crate) quota_check: Notify,
    /// Jobs that ended while the registry could not record it (its disk is full), shown from
    /// here until a retry records them.
    pub(crate) unrecorded: Mutex<HashMap<i64, Ended>>,
}

/// How a job ended, as [`Shared::unrecorded`] keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Ended {
    pub(crate) state: JobState,
    pub(crate) error: Option<String>,
    pub(crate) error_kind: Option<&'static str>,
}

/// The job as the API shows it: a job the registry still has `running` that ended without the
/// registry recording it is shown as it ended.
fn with_unrecorded(shared: &Shared, mut record: JobRecord) -> JobRecord {
    if record.state == JobState::Running
        && let Ok(unrecorded) = shared.unrecorded.lock()
        && let Some(ended) = unrecorded.get(&record.id)
    {
        record.state = ended.state;
        record.error = ended.error.clone();
        record.error_kind = ended.error_kind.map(str::to_owned);
    }
    record
}

/// Queue a job and wake a worker.
pub(crate) async fn submit(shared: &Shared, spec: &JobSpec) -> Result<i64, DaemonError> {
    let value = spec.to_value()?;
    let id = shared.larder.registry.add_job(spec.kind(), &value).await?;
    let (repo, revision) = spec.target();
    tracing::info!(job = id, kind = spec.kind(), repo, revision, "job queued");
    shared.wake.notify_waiters();
    shared.wake.notify_one();
    Ok(id)
}

/// A running job queue and its workers. Cloning shares it.
#[derive(Clone)]
pub struct Daemon {
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Daemon {
    /// Re-queue the jobs a previous daemon left running, then start the workers.
    pub async fn start(larder: Larder, options: DaemonOptions) -> Result<Daemon, DaemonError> {
        let requeued = larder.registry.requeue_running_jobs().await?;
        if requeued > 0 {
            tracing::info!(requeued, "re-queued jobs interrupted by a previous daemon");
        }
        let workers = options.workers;
        let shared = Arc::new(Shared {
            larder,
            options,
            wake: Notify::new(),
            shutdown: CancellationToken::new(),
            running: Mutex::new(HashMap::new()),
            active_transfers: AtomicI64::new(0),
            fetched_bytes: Default::default(),
            verification_failures: AtomicU64::new(0),
            xet_reused_bytes: AtomicU64::new(0),
            quota_check: Notify::new(),
            unrecorded: Mutex::new(HashMap::new()),
        });
        let mut tasks: Vec<JoinHandle<()>> = (0..workers)
            .map(|index| tokio::spawn(worker::run(shared.clone(), index)))
            .collect();
        tasks.push(tokio::spawn(track::run(shared.clone())));
        if shared.options.quota.is_some() {
            tasks.push(tokio::spawn(keeper::run(shared.clone())));
        }
        Ok(Daemon {
            shared,
            tasks: Arc::new(Mutex::new(tasks)),
        })
    }

    /// Queue a job; returns its id.
    pub async fn submit(&self, spec: &JobSpec) -> Result<i64, DaemonError> {
        submit(&self.shared, spec).await
    }

    /// One job (as it ended, if it ended while the registry could not record it).
    pub async fn job(&self, id: i64) -> Result<Option<JobRecord>, DaemonError> {
        let job = self.shared.larder.registry.job(id).await?;
        Ok(job.map(|job| with_unrecorded(&self.shared, job)))
    }

    /// Every job, oldest first (as [`Daemon::job`] shows each).
    pub async fn jobs(&self) -> Result<Vec<JobRecord>, DaemonError> {
        let jobs = self.shared.larder.registry.jobs().await?;
        Ok(jobs
            .into_iter()
            .map(|job| with_unrecorded(&self.shared, job))
            .collect())
    }

    /// Cancel a queued or running job (a running pull is aborted; its parts are kept).
    /// Returns the job afterwards, `None` if there is no such job.
    pub async fn cancel(&self, id: i64) -> Result<Option<JobRecord>, DaemonError> {
        let job = self.shared.larder.registry.cancel_job(id).await?;
        if let Some(job) = &job
            && job.state == JobState::Cancelled
            && let Ok(running) = self.shared.running.lock()
            && let Some(token) = running.get(&id)
        {
            token.cancel();
            tracing::info!(job = id, "running job cancelled");
        }
        Ok(job)
    }

    /// Files being transferred by jobs right now.
    pub fn active_transfers(&self) -> u64 {
        u64::try_from(self.shared.active_transfers.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Bytes jobs received from the upstream for repos of `kind` since the daemon started.
    pub fn fetched_bytes(&self, kind: RepoKind) -> u64 {
        self.shared.fetched_bytes[kind.index()].load(Ordering::Relaxed)
    }

    /// Files jobs received that failed verification (each was fetched again or failed).
    pub fn verification_failures(&self) -> u64 {
        self.shared.verification_failures.load(Ordering::Relaxed)
    }

    /// File bytes jobs' Xet pulls copied from held blobs instead of fetching (the delta).
    pub fn xet_reused_bytes(&self) -> u64 {
        self.shared.xet_reused_bytes.load(Ordering::Relaxed)
    }

    /// Stop the workers. Running jobs stay `running` in the registry and are re-queued by the
    /// next [`Daemon::start`].
    pub async fn stop(&self) {
        self.shared.shutdown.cancel();
        let tasks = match self.tasks.lock() {
            Ok(mut tasks) => std::mem::take(&mut *tasks),
            Err(_) => Vec::new(),
        };
        for task in tasks {
            let _ = task.await;
        }
    }
}
