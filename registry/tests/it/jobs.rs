//! The job queue: claims in order, transitions that never overwrite a final state, re-queueing.

use larder_registry::JobState;
use serde_json::json;

use crate::open;

#[tokio::test]
async fn jobs_are_claimed_oldest_first_once_each() {
    let (_dir, registry) = open();
    let first = registry
        .add_job("pull", &json!({"repo": "a/one"}))
        .await
        .unwrap();
    let second = registry
        .add_job("pull", &json!({"repo": "a/two"}))
        .await
        .unwrap();
    let claimed = registry.claim_job().await.unwrap().unwrap();
    assert_eq!((claimed.id, claimed.state), (first, JobState::Running));
    assert_eq!(claimed.spec, json!({"repo": "a/one"}));
    assert_eq!(registry.claim_job().await.unwrap().unwrap().id, second);
    assert_eq!(registry.claim_job().await.unwrap(), None);
    let counts = registry.job_counts().await.unwrap();
    assert!(counts.contains(&(JobState::Running, 2)), "{counts:?}");
    assert!(counts.contains(&(JobState::Queued, 0)), "{counts:?}");
}

#[tokio::test]
async fn a_cancelled_job_stays_cancelled_and_a_finished_one_stays_finished() {
    let (_dir, registry) = open();
    let id = registry.add_job("pull", &json!({})).await.unwrap();
    registry.claim_job().await.unwrap().unwrap();
    assert!(
        registry
            .set_job_progress(id, &json!({"bytes": 1, "total": 2}))
            .await
            .unwrap()
    );
    let cancelled = registry.cancel_job(id).await.unwrap().unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert_eq!(cancelled.progress, Some(json!({"bytes": 1, "total": 2})));
    // The worker finishing afterwards, or reporting progress, changes nothing.
    assert!(
        !registry
            .finish_job(id, JobState::Done, None, None)
            .await
            .unwrap()
    );
    assert!(
        !registry
            .set_job_progress(id, &json!({"bytes": 2}))
            .await
            .unwrap()
    );
    assert_eq!(
        registry.job(id).await.unwrap().unwrap().state,
        JobState::Cancelled
    );

    let done = registry.add_job("pull", &json!({})).await.unwrap();
    registry.claim_job().await.unwrap().unwrap();
    assert!(
        registry
            .finish_job(
                done,
                JobState::Failed,
                Some("boom".into()),
                Some("upstream")
            )
            .await
            .unwrap()
    );
    let after = registry.cancel_job(done).await.unwrap().unwrap();
    assert_eq!(
        (
            after.state,
            after.error.as_deref(),
            after.error_kind.as_deref()
        ),
        (JobState::Failed, Some("boom"), Some("upstream"))
    );
    assert_eq!(cancelled.error_kind, None);
    assert_eq!(registry.cancel_job(999).await.unwrap(), None);
}

#[tokio::test]
async fn running_jobs_are_requeued() {
    let (_dir, registry) = open();
    let running = registry.add_job("pull", &json!({})).await.unwrap();
    let queued = registry.add_job("pull", &json!({})).await.unwrap();
    registry.claim_job().await.unwrap().unwrap();
    assert_eq!(registry.requeue_running_jobs().await.unwrap(), 1);
    for id in [running, queued] {
        assert_eq!(
            registry.job(id).await.unwrap().unwrap().state,
            JobState::Queued
        );
    }
    assert_eq!(registry.claim_job().await.unwrap().unwrap().id, running);
}
