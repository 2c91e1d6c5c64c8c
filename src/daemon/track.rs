//! The tracking scheduler: every tracked ref due for a check is re-resolved upstream; a commit
//! the store does not hold for that ref gets a pull job. When that job ends, the change is
//! settled: a licence that differs from the previous commit's is flagged (a warning and a
//! `licence_changed` audit-log entry), and the event is POSTed to the webhook, if one is set.

use std::sync::Arc;

use serde_json::json;

use crate::daemon::Shared;
use crate::daemon::jobs::{JobSpec, PullSpec};
use crate::daemon::webhook::{self, TrackEvent};
use crate::hub::{RepoId, RepoType, Revision};
use crate::registry::{AuditEntry, CommitId, JobState, TrackCheck, TrackedRef};

/// The audit-log action of a licence change seen by tracking.
pub const LICENCE_CHANGED_ACTION: &str = "licence_changed";

/// The scheduler loop; returns at shutdown.
pub(crate) async fn run(shared: Arc<Shared>) {
    let client = reqwest::Client::new();
    loop {
        if let Err(error) = tick(&shared, &client).await {
            tracing::warn!(
                error = %crate::fetch::transfer::error_chain(&*error),
                "tracking check failed"
            );
        }
        tokio::select! {
            _ = tokio::time::sleep(shared.options.track_every) => {}
            _ = shared.shutdown.cancelled() => break,
        }
    }
}

type TickError = Box<dyn std::error::Error + Send + Sync>;

async fn tick(shared: &Shared, client: &reqwest::Client) -> Result<(), TickError> {
    let registry = &shared.larder.registry;
    for tracked in registry.tracked().await? {
        if let Some(job) = tracked.pending_job {
            settle(shared, client, &tracked, job).await?;
        }
    }
    let now = crate::now_unix();
    for tracked in registry.tracked_due(now).await? {
        check(shared, &tracked, now).await?;
    }
    Ok(())
}

/// Re-resolve one tracked ref upstream and queue a pull if it moved.
async fn check(shared: &Shared, tracked: &TrackedRef, now: i64) -> Result<(), TickError> {
    let registry = &shared.larder.registry;
    let kind = tracked.kind;
    let record = |check: TrackCheck| {
        registry.record_track_check(kind, &tracked.name, &tracked.reference, check)
    };
    let (repo, revision) = match (
        RepoId::parse(&tracked.name),
        Revision::parse(&tracked.reference),
    ) {
        (Ok(repo), Ok(revision)) => (repo, revision),
        (Err(e), _) | (_, Err(e)) => {
            record(failed(now, e.to_string())).await?;
            return Ok(());
        }
    };
    let upstream = match shared
        .larder
        .client
        .repo_info_fetched(RepoType::from(kind), &repo, &revision)
        .await
    {
        Ok(fetched) => fetched.commit,
        Err(error) => {
            let message = crate::fetch::transfer::error_chain(&error);
            tracing::warn!(
                repo = tracked.name,
                reference = tracked.reference,
                error = message,
                "tracked ref could not be resolved"
            );
            record(failed(now, message)).await?;
            return Ok(());
        }
    };
    let local = registry
        .resolve(
            kind,
            &recorded_name(registry, kind, &tracked.name).await,
            &tracked.reference,
        )
        .await?;
    let mut check = TrackCheck {
        at: now,
        upstream_commit: Some(upstream),
        base_commit: None,
        pending_job: None,
        error: None,
    };
    if local.as_deref() != Some(upstream.as_str()) && tracked.pending_job.is_none() {
        let spec = JobSpec::Pull(PullSpec {
            repo: tracked.name.clone(),
            revision: tracked.reference.clone(),
            repo_type: RepoType::from(kind),
            include: Vec::new(),
            exclude: Vec::new(),
        });
        let job = super::submit(shared, &spec).await?;
        tracing::info!(
            repo = tracked.name,
            reference = tracked.reference,
            old = local.as_ref().map_or("-", |c| c.as_str()),
            new = %upstream,
            job,
            "tracked ref moved; pull queued"
        );
        check.base_commit = local;
        check.pending_job = Some(job);
    }
    record(check).await?;
    Ok(())
}

/// The name a tracked repo is recorded under: the one it lives under now, when the upstream
/// renamed it (its pulls record it there, with the tracked name as an old name).
async fn recorded_name(
    registry: &crate::registry::Registry,
    kind: crate::registry::RepoKind,
    name: &str,
) -> String {
    match registry.alias(kind, name).await {
        Ok(Some(now)) => now,
        _ => name.to_owned(),
    }
}

fn failed(at: i64, error: String) -> TrackCheck {
    TrackCheck {
        at,
        upstream_commit: None,
        base_commit: None,
        pending_job: None,
        error: Some(error),
    }
}

/// When the pull queued for a tracked ref has ended: flag a licence change, send the event.
async fn settle(
    shared: &Shared,
    client: &reqwest::Client,
    tracked: &TrackedRef,
    id: i64,
) -> Result<(), TickError> {
    let registry = &shared.larder.registry;
    let (kind, name, reference) = (tracked.kind, &tracked.name, &tracked.reference);
    let Some(job) = registry.job(id).await? else {
        registry
            .settle_track_job(
                kind,
                name,
                reference,
                id,
                Some(format!("job {id} vanished")),
            )
            .await?;
        return Ok(());
    };
    if !job.state.is_final() {
        return Ok(());
    }
    if job.state != JobState::Done {
        let error = job
            .error
            .unwrap_or_else(|| format!("the pull (job {id}) was {}", job.state));
        registry
            .settle_track_job(kind, name, reference, id, Some(error))
            .await?;
        return Ok(());
    }
    let now_named = recorded_name(registry, kind, name).await;
    let new = registry.resolve(kind, &now_named, reference).await?;
    let old = tracked.base_commit;
    if let Some(new) = new.filter(|new| old != Some(*new)) {
        let history = crate::licence::licence_history(&shared.larder, kind, &now_named).await?;
        let licence_of = |sha: &CommitId| {
            history
                .iter()
                .find(|entry| entry.commit == sha)
                .and_then(|entry| entry.licence_id.clone().or_else(|| entry.licence.clone()))
        };
        let before = old.as_ref().and_then(licence_of);
        let after = licence_of(&new);
        let changed = old.is_some() && before != after;
        if changed {
            tracing::warn!(
                repo = name.as_str(),
                reference = reference.as_str(),
                before = before.as_deref().unwrap_or("unknown"),
                after = after.as_deref().unwrap_or("unknown"),
                "the licence of a tracked repo changed"
            );
            registry
                .log_audit(AuditEntry {
                    id: 0,
                    at: crate::now_unix(),
                    actor: "larder-daemon".to_owned(),
                    action: LICENCE_CHANGED_ACTION.to_owned(),
                    repo: Some(crate::licence::audit_repo_name(kind, name)),
                    detail: Some(json!({
                        "ref": reference,
                        "old_commit": old,
                        "new_commit": new,
                        "before": before,
                        "after": after,
                    })),
                })
                .await?;
        }
        if let Some(url) = &shared.options.webhook {
            let event = TrackEvent {
                event: "revision",
                kind: kind.as_str().to_owned(),
                repo: name.clone(),
                reference: reference.clone(),
                old_commit: old,
                new_commit: new,
                licence_before: before,
                licence_after: after,
                licence_changed: changed,
                job: id,
            };
            // Delivery retries must not hold up the other tracked refs.
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { webhook::send(&client, &url, &event).await });
        }
    }
    registry
        .settle_track_job(kind, name, reference, id, None)
        .await?;
    Ok(())
}
