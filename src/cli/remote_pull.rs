//! `larder pull --daemon URL`: queue the pull as a job of a running `larder serve` and follow
//! it with the same progress display as a local pull. The job's progress snapshots (plan, files
//! in flight) are turned back into pull events for the local reporter. Ctrl-C stops following;
//! the job keeps running on the daemon. The exit status is the one a local pull would end with
//! for the same failure, from the kind the daemon records with a failed job.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use larder::daemon::jobs::{JobView, PullProgress};
use larder::failure::FailureKind;
use larder::fetch::progress::PullEvent;
use larder::registry::JobState;
use larder::report::Reporter;
use serde_json::json;

use super::jobs::Api;
use super::progress;

/// How often the job is polled.
const POLL: Duration = Duration::from_millis(250);

/// What to pull, as the job spec takes it.
pub struct RemotePull {
    /// `org/name`.
    pub repo: String,
    /// Branch, tag or commit.
    pub revision: String,
    /// `model` or `dataset`.
    pub kind: String,
    /// Include globs.
    pub include: Vec<String>,
    /// Exclude globs.
    pub exclude: Vec<String>,
    /// JSON lines instead of bars or log lines.
    pub json: bool,
}

/// Submit the pull to the daemon at `daemon` and follow it to its end.
pub async fn run(daemon: &str, pull: RemotePull) -> anyhow::Result<ExitCode> {
    let api = Api::new(daemon)?;
    let id = api
        .submit(&json!({
            "kind": "pull",
            "repo": pull.repo,
            "revision": pull.revision,
            "type": pull.kind,
            "include": pull.include,
            "exclude": pull.exclude,
        }))
        .await?;
    eprintln!(
        "queued job {id} on {}: pull {}@{} (Ctrl-C stops following; the job keeps running)",
        api.base(),
        pull.repo,
        pull.revision
    );
    let reporter: Arc<dyn Reporter<PullEvent>> = Arc::from(progress::reporter(pull.json));
    let mut follower = Follower::new(&pull, reporter);
    let started = Instant::now();
    loop {
        let job = tokio::select! {
            job = api.job(id) => job?,
            _ = tokio::signal::ctrl_c() => {
                eprintln!(
                    "stopped following; job {id} keeps running on the daemon \
                     (`larder jobs wait {id}` follows it, `larder jobs cancel {id}` stops it)"
                );
                return Ok(ExitCode::from(super::EXIT_INTERRUPTED));
            }
        };
        follower.update(&job);
        if job.state.is_final() {
            return Ok(follower.finish(&job, started.elapsed()));
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = tokio::signal::ctrl_c() => {
                eprintln!(
                    "stopped following; job {id} keeps running on the daemon \
                     (`larder jobs wait {id}` follows it, `larder jobs cancel {id}` stops it)"
                );
                return Ok(ExitCode::from(super::EXIT_INTERRUPTED));
            }
        }
    }
}

/// Turns successive job snapshots into pull events.
struct Follower {
    repo: String,
    revision: String,
    kind: String,
    reporter: Arc<dyn Reporter<PullEvent>>,
    resolved: Option<PullProgress>,
    /// Files shown as in flight: size and bytes reported so far.
    shown: HashMap<String, (u64, u64)>,
}

impl Follower {
    fn new(pull: &RemotePull, reporter: Arc<dyn Reporter<PullEvent>>) -> Follower {
        Follower {
            repo: pull.repo.clone(),
            revision: pull.revision.clone(),
            kind: pull.kind.clone(),
            reporter,
            resolved: None,
            shown: HashMap::new(),
        }
    }

    fn update(&mut self, job: &JobView) {
        let Some(detail) = &job.progress.pull else {
            return;
        };
        if self.resolved.is_none() {
            self.reporter.report(&PullEvent::Resolved {
                repo: self.repo.clone(),
                kind: self.kind.clone(),
                revision: self.revision.clone(),
                commit: detail.commit,
                files: detail.files,
                bytes: job.progress.total,
                fetch_files: detail.fetch_files,
                fetch_bytes: detail.fetch_bytes,
            });
        }
        self.resolved = Some(detail.clone());
        for file in &detail.active {
            match self.shown.get_mut(&file.path) {
                Some((_, seen)) => {
                    if file.bytes > *seen {
                        let delta = file.bytes - *seen;
                        *seen = file.bytes;
                        self.reporter.report(&PullEvent::FileProgress {
                            path: Arc::from(file.path.as_str()),
                            bytes: delta,
                        });
                    }
                }
                None => {
                    self.shown
                        .insert(file.path.clone(), (file.size, file.bytes));
                    self.reporter.report(&PullEvent::FileStarted {
                        path: file.path.clone(),
                        size: file.size,
                        resumed: file.bytes,
                    });
                }
            }
        }
        let gone: Vec<String> = self
            .shown
            .keys()
            .filter(|path| !detail.active.iter().any(|f| &f.path == *path))
            .cloned()
            .collect();
        for path in gone {
            self.file_done(&path);
        }
    }

    /// A file left the in-flight list: it was verified (or the job ends).
    fn file_done(&mut self, path: &str) {
        if let Some((size, seen)) = self.shown.remove(path) {
            if size > seen {
                self.reporter.report(&PullEvent::FileProgress {
                    path: Arc::from(path),
                    bytes: size - seen,
                });
            }
            self.reporter.report(&PullEvent::FileVerified {
                path: path.to_owned(),
                // The daemon keeps each file's digest in the registry, not in its progress.
                sha256: None,
            });
        }
    }

    fn finish(&mut self, job: &JobView, elapsed: Duration) -> ExitCode {
        match job.state {
            JobState::Done => {
                let paths: Vec<String> = self.shown.keys().cloned().collect();
                for path in paths {
                    self.file_done(&path);
                }
                let Some(detail) = self.resolved.clone() else {
                    // Finished before its progress was ever seen.
                    super::printer::note(&format!("pulled {} (job {})", self.repo, job.id));
                    return ExitCode::SUCCESS;
                };
                self.reporter.report(&PullEvent::Done {
                    repo: self.repo.clone(),
                    commit: detail.commit,
                    fetched_files: detail.fetch_files,
                    fetched_bytes: detail.fetch_bytes,
                    reused_files: detail.files.saturating_sub(detail.fetch_files),
                    reused_bytes: 0,
                    seconds: elapsed.as_secs_f64(),
                });
                ExitCode::SUCCESS
            }
            state => {
                for (path, _) in std::mem::take(&mut self.shown) {
                    self.reporter.report(&PullEvent::FileFailed {
                        path,
                        error: format!("job {state}"),
                    });
                }
                let why = job.error.as_deref().unwrap_or("no reason given");
                match job.error_kind {
                    Some(kind) => {
                        super::printer::error(&format!("job {} {state} ({kind}): {why}", job.id))
                    }
                    None => super::printer::error(&format!("job {} {state}: {why}", job.id)),
                }
                if job.error_kind == Some(FailureKind::DiskFull) {
                    super::printer::hint(
                        "the daemon keeps the parts already written; free space on its disk, then \
                         the same pull resumes them",
                    );
                }
                super::job_exit_status(job)
            }
        }
    }
}
