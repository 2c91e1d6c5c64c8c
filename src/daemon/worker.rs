//! A worker: claim the oldest queued job, run it, record how it ended; repeat.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use tokio_util::sync::CancellationToken;

use crate::convert::{ConvertEvent, ConvertRequest};
use crate::daemon::jobs::{
    ActiveFile, CONVERT, ConvertSpec, GC, GcSpec, PULL, Progress, PullProgress, PullSpec,
    SpecError, VERIFY, VerifySpec,
};
use crate::daemon::{Ended, Shared};
use crate::failure::{Classify, FailureKind};
use crate::fetch::PullOptions;
use crate::fetch::progress::PullEvent;
use crate::registry::{JobRecord, JobState, RepoKind};
use crate::report::Reporter;

/// How long a cancelled job may take to stop by itself (checkpoints, clean-up) before it is
/// dropped.
const CANCEL_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The worker loop; returns at shutdown.
pub(crate) async fn run(shared: Arc<Shared>, index: usize) {
    tracing::debug!(worker = index, "job worker started");
    loop {
        if shared.shutdown.is_cancelled() {
            break;
        }
        match shared.larder.registry.claim_job().await {
            Ok(Some(job)) => run_job(&shared, job).await,
            Ok(None) => {
                tokio::select! {
                    _ = shared.wake.notified() => {}
                    _ = tokio::time::sleep(shared.options.poll_every) => {}
                    _ = shared.shutdown.cancelled() => break,
                }
            }
            Err(error) => {
                tracing::warn!(worker = index, error = %error, "could not claim a job");
                tokio::select! {
                    _ = tokio::time::sleep(shared.options.poll_every) => {}
                    _ = shared.shutdown.cancelled() => break,
                }
            }
        }
    }
    tracing::debug!(worker = index, "job worker stopped");
}

/// Counts a pull's bytes for the job's progress, and its files in flight for the metrics.
struct JobReporter {
    bytes: AtomicU64,
    total: AtomicU64,
    /// Files started and not yet finished by this job.
    active: AtomicI64,
    /// Holds the daemon-wide count of files in flight.
    shared: Arc<Shared>,
    /// Where received bytes are counted: models or datasets.
    kind_index: usize,
    /// The plan and the files in flight, once resolved.
    detail: std::sync::Mutex<Option<PullProgress>>,
}

impl JobReporter {
    fn new(shared: Arc<Shared>, kind: crate::registry::RepoKind) -> JobReporter {
        JobReporter {
            bytes: AtomicU64::new(0),
            total: AtomicU64::new(0),
            active: AtomicI64::new(0),
            shared,
            kind_index: kind.index(),
            detail: std::sync::Mutex::new(None),
        }
    }

    fn add_global(&self, n: i64) {
        self.shared.active_transfers.fetch_add(n, Ordering::Relaxed);
    }

    fn progress(&self) -> Progress {
        let total = self.total.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed);
        Progress {
            bytes: if total > 0 { bytes.min(total) } else { bytes },
            total,
            pull: self.detail.lock().ok().and_then(|d| d.clone()),
            report: None,
        }
    }

    fn with_detail(&self, change: impl FnOnce(&mut PullProgress)) {
        if let Ok(mut detail) = self.detail.lock()
            && let Some(detail) = detail.as_mut()
        {
            change(detail);
        }
    }

    fn file_ended(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
        self.add_global(-1);
    }
}

impl Reporter<PullEvent> for JobReporter {
    fn report(&self, event: &PullEvent) {
        match event {
            PullEvent::Resolved {
                bytes,
                fetch_bytes,
                commit,
                files,
                fetch_files,
                ..
            } => {
                self.total.store(*bytes, Ordering::Relaxed);
                self.bytes
                    .store(bytes.saturating_sub(*fetch_bytes), Ordering::Relaxed);
                if let Ok(mut detail) = self.detail.lock() {
                    *detail = Some(PullProgress {
                        commit: *commit,
                        files: *files,
                        fetch_files: *fetch_files,
                        fetch_bytes: *fetch_bytes,
                        verified: 0,
                        active: Vec::new(),
                    });
                }
            }
            PullEvent::FileStarted {
                path,
                size,
                resumed,
            } => {
                self.bytes.fetch_add(*resumed, Ordering::Relaxed);
                self.active.fetch_add(1, Ordering::Relaxed);
                self.add_global(1);
                self.with_detail(|d| {
                    d.active.retain(|f| &f.path != path);
                    d.active.push(ActiveFile {
                        path: path.clone(),
                        size: *size,
                        bytes: *resumed,
                    });
                });
            }
            PullEvent::FileProgress { path, bytes } => {
                self.bytes.fetch_add(*bytes, Ordering::Relaxed);
                self.shared.fetched_bytes[self.kind_index].fetch_add(*bytes, Ordering::Relaxed);
                self.with_detail(|d| {
                    if let Some(file) = d.active.iter_mut().find(|f| *f.path == **path) {
                        file.bytes += bytes;
                    }
                });
            }
            PullEvent::FileVerified { path, .. } => {
                self.file_ended();
                self.with_detail(|d| {
                    d.active.retain(|f| &f.path != path);
                    d.verified += 1;
                });
            }
            PullEvent::FileFailed { path, .. } => {
                self.file_ended();
                self.with_detail(|d| d.active.retain(|f| &f.path != path));
            }
            PullEvent::FileDelta { reused, .. } => {
                self.shared
                    .xet_reused_bytes
                    .fetch_add(*reused, Ordering::Relaxed);
            }
            PullEvent::Mismatch { path, .. } => {
                self.shared
                    .verification_failures
                    .fetch_add(1, Ordering::Relaxed);
                self.with_detail(|d| d.active.retain(|f| &f.path != path));
            }
            _ => {}
        }
    }
}

impl Drop for JobReporter {
    fn drop(&mut self) {
        // A pull dropped mid-file never reports the end of the files it had started.
        let left = self.active.swap(0, Ordering::Relaxed);
        if left > 0 {
            self.add_global(-left);
        }
    }
}

/// Run one claimed job to its end (or until it is cancelled or the daemon stops).
async fn run_job(shared: &Arc<Shared>, job: JobRecord) {
    match job.kind.as_str() {
        PULL => run_pull(shared, job).await,
        CONVERT => run_convert(shared, job).await,
        GC => run_gc(shared, job).await,
        VERIFY => run_verify(shared, job).await,
        other => {
            let error = SpecError::UnknownKind(other.to_owned());
            finish(shared, job.id, Err(Failure::spec(&error))).await;
        }
    }
    // A job that ended may have pushed the store over its quota.
    shared.quota_check.notify_one();
}

/// Register the job's cancellation token; `None` when the job was cancelled meanwhile (a
/// cancellation between the claim and the registration found no token to cancel).
async fn register(shared: &Arc<Shared>, id: i64) -> Option<CancellationToken> {
    let token = shared.shutdown.child_token();
    if let Ok(mut running) = shared.running.lock() {
        running.insert(id, token.clone());
    }
    match shared.larder.registry.job(id).await {
        Ok(Some(current)) if current.state == JobState::Running => Some(token),
        _ => {
            forget(shared, id);
            None
        }
    }
}

/// Run `work` as job `id`: registered for cancellation, its [`JobReporter`]'s progress stored
/// as it goes and once more at the end. `None` when the job was cancelled (before or during)
/// or the daemon is stopping; the caller records the outcome otherwise.
async fn supervise<T, Fut>(
    shared: &Arc<Shared>,
    id: i64,
    kind: crate::registry::RepoKind,
    work: impl FnOnce(Arc<JobReporter>, CancellationToken) -> Fut,
) -> Option<T>
where
    Fut: std::future::Future<Output = T>,
{
    let token = register(shared, id).await?;
    let reporter = Arc::new(JobReporter::new(shared.clone(), kind));
    let progress_task = tokio::spawn(report_progress(
        shared.clone(),
        id,
        reporter.clone(),
        token.clone(),
    ));
    let work = work(reporter.clone(), token.clone());
    tokio::pin!(work);
    let outcome = tokio::select! {
        result = &mut work => Some(result),
        _ = token.cancelled() => {
            // The work sees the same token: a pull writes its final checkpoints, a conversion
            // removes its output. Give it a moment, then drop it.
            let _ = tokio::time::timeout(CANCEL_GRACE, &mut work).await;
            None
        }
    };
    progress_task.abort();
    forget(shared, id);
    let progress = reporter.progress();
    drop(reporter);
    if let Ok(value) = serde_json::to_value(progress) {
        let _ = shared.larder.registry.set_job_progress(id, &value).await;
    }
    outcome
}

/// Run a conversion job, its progress being the tensor bytes converted.
async fn run_convert(shared: &Arc<Shared>, job: JobRecord) {
    let id = job.id;
    let request = match serde_json::from_value::<ConvertSpec>(job.spec.clone())
        .map_err(SpecError::from)
        .and_then(|spec| spec.request())
    {
        Ok(request) => request,
        Err(error) => {
            finish(shared, id, Err(Failure::spec(&error))).await;
            return;
        }
    };
    let repo = request.repo.to_string();
    let outcome = supervise(shared, id, request.kind, |reporter, cancel| {
        tracing::info!(
            job = id,
            repo,
            revision = request.revision,
            "conversion started"
        );
        let progress = Arc::new(move |event: &ConvertEvent| match *event {
            ConvertEvent::Tensors { done, total } => {
                reporter.total.store(total, Ordering::Relaxed);
                reporter.bytes.store(done, Ordering::Relaxed);
            }
        });
        let request = ConvertRequest { cancel, ..request };
        async move { crate::convert::convert(&shared.larder, &request, progress).await }
    })
    .await;
    match outcome {
        Some(Ok(outcome)) => {
            tracing::info!(
                job = id,
                derived = outcome.derived,
                commit = %outcome.commit,
                "conversion done"
            );
            finish(shared, id, Ok(())).await;
        }
        Some(Err(error)) => {
            let failure = Failure::of(&error);
            tracing::warn!(job = id, error = failure.message, kind = %failure.kind, "conversion failed");
            finish(shared, id, Err(failure)).await;
        }
        None => tracing::info!(job = id, "conversion interrupted"),
    }
}

/// Run a gc job (or a quota eviction): the report goes into the job's progress.
async fn run_gc(shared: &Arc<Shared>, job: JobRecord) {
    let id = job.id;
    let parsed = serde_json::from_value::<GcSpec>(job.spec.clone())
        .map_err(SpecError::from)
        .and_then(|spec| spec.quota_bytes().map(|quota| (spec, quota)));
    let (spec, quota) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            finish(shared, id, Err(Failure::spec(&error))).await;
            return;
        }
    };
    let larder = shared.larder.clone();
    let outcome = supervise(shared, id, RepoKind::Model, |_, _| async move {
        tracing::info!(job = id, quota, dry_run = spec.dry_run, "gc started");
        let report = match quota {
            Some(quota) => crate::quota::enforce(&larder, quota, &[])
                .await
                .map(|r| serde_json::to_value(r).unwrap_or_default()),
            None => {
                let options = crate::gc::GcOptions {
                    dry_run: spec.dry_run,
                    all_parts: spec.all_parts,
                };
                crate::gc::gc(&larder, options)
                    .await
                    .map(|r| serde_json::to_value(r).unwrap_or_default())
            }
        };
        report.map_err(|e| Failure::of(&e))
    })
    .await;
    end_with_report(shared, id, GC, outcome, Progress::default()).await;
}

/// Run a verify job: held blobs re-hashed, progress in bytes hashed, the report (bad blobs
/// quarantined, as `larder verify` does) into the job's progress.
async fn run_verify(shared: &Arc<Shared>, job: JobRecord) {
    let id = job.id;
    let spec = match serde_json::from_value::<VerifySpec>(job.spec.clone())
        .map_err(SpecError::from)
        .and_then(|spec| spec.check().map(|()| spec))
    {
        Ok(spec) => spec,
        Err(error) => {
            finish(shared, id, Err(Failure::spec(&error))).await;
            return;
        }
    };
    let larder = shared.larder.clone();
    let totals = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let counted = totals.clone();
    let outcome = supervise(shared, id, spec.kind, |reporter, _| async move {
        let repo = spec
            .repo
            .as_deref()
            .map(|name| (name, spec.revision.as_deref()));
        let blobs = crate::manage::blobs_to_verify(&larder, spec.kind, repo)
            .await
            .map_err(|e| Failure::of(&e))?;
        let total: u64 = blobs.iter().map(|(_, size)| size).sum();
        reporter.total.store(total, Ordering::Relaxed);
        counted.1.store(total, Ordering::Relaxed);
        tracing::info!(
            job = id,
            blobs = blobs.len(),
            bytes = total,
            "verify started"
        );
        let checked = |check: &crate::verify::BlobCheck| {
            reporter.bytes.fetch_add(check.size, Ordering::Relaxed);
            counted.0.fetch_add(check.size, Ordering::Relaxed);
        };
        let report = crate::verify::verify_blobs(&larder, blobs, &checked)
            .await
            .map_err(|e| Failure::of(&e))?;
        let bad = report
            .iter()
            .filter(|c| c.status != crate::verify::BlobStatus::Ok)
            .count();
        Ok(serde_json::json!({ "checked": report.len(), "bad": bad, "blobs": report }))
    })
    .await;
    let progress = Progress {
        bytes: totals.0.load(Ordering::Relaxed),
        total: totals.1.load(Ordering::Relaxed),
        ..Progress::default()
    };
    end_with_report(shared, id, VERIFY, outcome, progress).await;
}

/// Record how a gc or verify job ended: its report kept in its progress, then its state.
async fn end_with_report(
    shared: &Arc<Shared>,
    id: i64,
    kind: &str,
    outcome: Option<Result<serde_json::Value, Failure>>,
    progress: Progress,
) {
    match outcome {
        Some(Ok(report)) => {
            tracing::info!(job = id, kind, "job done");
            let progress = Progress {
                report: Some(report),
                ..progress
            };
            if let Ok(value) = serde_json::to_value(progress) {
                let _ = shared.larder.registry.set_job_progress(id, &value).await;
            }
            finish(shared, id, Ok(())).await;
        }
        Some(Err(failure)) => {
            tracing::warn!(job = id, kind, error = failure.message, "job failed");
            finish(shared, id, Err(failure)).await;
        }
        None => tracing::info!(job = id, kind, "job interrupted"),
    }
}

/// Run a pull job.
async fn run_pull(shared: &Arc<Shared>, job: JobRecord) {
    let id = job.id;
    let options = match serde_json::from_value::<PullSpec>(job.spec.clone())
        .map_err(|e| Failure::spec(&SpecError::from(e)))
        .and_then(|spec| spec.options().map_err(|e| Failure::spec(&e)))
        .and_then(|options| with_licence_gate(&shared.larder, options))
    {
        Ok(mut options) => {
            options.rate_limit = shared.options.rate_limit.clone();
            options
        }
        Err(error) => {
            finish(shared, id, Err(error)).await;
            return;
        }
    };
    let kind = RepoKind::from(options.kind);
    let outcome = supervise(shared, id, kind, |reporter, cancel| {
        tracing::info!(job = id, repo = %options.repo, revision = %options.revision, "job started");
        let options = PullOptions { cancel, ..options };
        async move { crate::fetch::pull(&shared.larder, &options, reporter).await }
    })
    .await;
    match outcome {
        Some(Ok(summary)) => {
            tracing::info!(
                job = id,
                commit = %summary.commit,
                fetched_bytes = summary.fetched_bytes,
                "job done"
            );
            finish(shared, id, Ok(())).await;
        }
        Some(Err(error)) => {
            let failure = Failure::of(&error);
            tracing::warn!(job = id, error = failure.message, kind = %failure.kind, "job failed");
            finish(shared, id, Err(failure)).await;
        }
        // Cancelled (the registry says so already) or the daemon is stopping (the job stays
        // `running` and is re-queued at the next start).
        None => tracing::info!(job = id, "job interrupted"),
    }
}

/// The licence policy of the home's `config.toml` applies to jobs as to `larder pull`; a job
/// cannot accept a licence the policy denies (that is recorded per user, on the command line).
fn with_licence_gate(
    larder: &crate::Larder,
    mut options: crate::fetch::PullOptions,
) -> Result<crate::fetch::PullOptions, Failure> {
    let policy = larder.config.policy(None).map_err(|e| Failure::of(&e))?;
    let gate =
        crate::licence::PullGate::new(policy, &[], "larder-daemon").map_err(|e| Failure::of(&e))?;
    options.licence_gate = Some(Arc::new(gate));
    Ok(options)
}

fn forget(shared: &Shared, id: i64) {
    if let Ok(mut running) = shared.running.lock() {
        running.remove(&id);
    }
}

/// Why a job failed: the message shown to people and the kind scripts (and `larder pull
/// --daemon`'s exit status) go by.
struct Failure {
    kind: FailureKind,
    message: String,
}

impl Failure {
    fn of(error: &(dyn std::error::Error + 'static)) -> Failure {
        Failure {
            kind: crate::classify::kind_of(error),
            message: crate::fetch::transfer::error_chain(error),
        }
    }

    /// A stored spec that does not validate (its message already says everything).
    fn spec(error: &SpecError) -> Failure {
        Failure {
            kind: error.failure_kind(),
            message: error.to_string(),
        }
    }
}

async fn finish(shared: &Arc<Shared>, id: i64, outcome: Result<(), Failure>) {
    let ended = match outcome {
        Ok(()) => Ended {
            state: JobState::Done,
            error: None,
            error_kind: None,
        },
        Err(failure) => Ended {
            state: JobState::Failed,
            error: Some(failure.message),
            error_kind: Some(failure.kind.as_str()),
        },
    };
    if let Err(e) = record_end(shared, id, &ended).await {
        // Typically the registry's disk is full (often what failed the job): the API shows the
        // end from memory meanwhile, so `larder pull --daemon` still ends, and it is recorded
        // once there is room. A daemon stopped first leaves the job to be re-queued.
        tracing::warn!(job = id, error = %e, "could not record the end of a job; retrying");
        if let Ok(mut unrecorded) = shared.unrecorded.lock() {
            unrecorded.insert(id, ended.clone());
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(shared.options.poll_every) => {}
                    _ = shared.shutdown.cancelled() => return,
                }
                if record_end(&shared, id, &ended).await.is_ok() {
                    tracing::info!(job = id, "recorded the end of the job");
                    if let Ok(mut unrecorded) = shared.unrecorded.lock() {
                        unrecorded.remove(&id);
                    }
                    return;
                }
            }
        });
    }
}

/// Write how a job ended to the registry (a job cancelled meanwhile stays cancelled).
async fn record_end(
    shared: &Shared,
    id: i64,
    ended: &Ended,
) -> Result<bool, crate::registry::RegistryError> {
    shared
        .larder
        .registry
        .finish_job(id, ended.state, ended.error.clone(), ended.error_kind)
        .await
}

/// Write the job's progress to the registry now and then, while it changes. A job no longer
/// `running` there (cancelled by another process) is stopped.
async fn report_progress(
    shared: Arc<Shared>,
    id: i64,
    reporter: Arc<JobReporter>,
    token: CancellationToken,
) {
    let mut last = None;
    let mut tick = tokio::time::interval(shared.options.progress_every);
    loop {
        tick.tick().await;
        let progress = reporter.progress();
        if last.as_ref() == Some(&progress) {
            continue;
        }
        let Ok(value) = serde_json::to_value(&progress) else {
            continue;
        };
        match shared.larder.registry.set_job_progress(id, &value).await {
            Ok(true) => last = Some(progress),
            Ok(false) => {
                token.cancel();
                return;
            }
            Err(error) => tracing::warn!(job = id, error = %error, "could not record progress"),
        }
    }
}
