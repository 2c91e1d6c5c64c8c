//! The quota keeper: checks the store against the quota now and then and after each job, and
//! evicts least recently served unpinned revisions when it is over (see [`crate::quota`]).

use std::sync::Arc;
use std::time::Duration;

use crate::daemon::Shared;
use crate::gc::GcError;
use crate::registry::RepoKind;

/// How soon to try again when a pull or conversion held the store.
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// The keeper loop; returns at shutdown.
pub(crate) async fn run(shared: Arc<Shared>) {
    let Some(quota) = shared.options.quota else {
        return;
    };
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.quota_check.notified() => {}
            _ = shared.shutdown.cancelled() => break,
        }
        wait = shared.options.quota_every;
        let protect = match protected(&shared).await {
            Ok(protect) => protect,
            Err(error) => {
                tracing::warn!(%error, "could not read the job queue; quota check skipped");
                continue;
            }
        };
        match crate::quota::enforce(&shared.larder, quota, &protect).await {
            Ok(report) => {
                if !report.evicted.is_empty() {
                    tracing::info!(
                        evicted = report.evicted.len(),
                        freed = report.gc.as_ref().map(|g| g.freed).unwrap_or(0),
                        after = report.after,
                        quota,
                        "store quota enforced"
                    );
                }
                if report.over {
                    tracing::warn!(
                        used = report.after,
                        quota,
                        "the store is over its quota, but what is left is pinned or in use"
                    );
                }
            }
            Err(GcError::Busy) => {
                tracing::debug!("a pull or conversion holds the store; quota check postponed");
                wait = BUSY_RETRY;
            }
            Err(error) => tracing::warn!(
                error = %crate::fetch::transfer::error_chain(&error),
                "quota check failed"
            ),
        }
    }
}

/// Repos named by queued or running jobs: their revisions stay.
async fn protected(
    shared: &Shared,
) -> Result<Vec<(RepoKind, String)>, crate::registry::RegistryError> {
    let jobs = shared.larder.registry.jobs().await?;
    Ok(jobs
        .into_iter()
        .filter(|job| !job.state.is_final())
        .filter_map(|job| {
            let repo = job.spec.get("repo")?.as_str()?.to_owned();
            let kind = match job.spec.get("type").and_then(|t| t.as_str()) {
                Some("dataset") if job.kind == super::jobs::PULL => RepoKind::Dataset,
                _ => RepoKind::Model,
            };
            Some((kind, repo))
        })
        .collect())
}
