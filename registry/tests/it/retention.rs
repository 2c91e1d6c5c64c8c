//! Tracked refs, pins, served times and the eviction order.

use larder_registry::{RegistryError, RepoKind, Served, TrackCheck};

use crate::{blob, lfs, open, sha, snapshot};

#[tokio::test]
async fn tracked_refs_are_due_by_interval_and_keep_their_pending_pull() {
    let (_dir, registry) = open();
    assert!(
        registry
            .track(RepoKind::Model, "acme/a", "main", 60, 1_000)
            .await
            .unwrap()
    );
    // Again: only the interval changes.
    assert!(
        !registry
            .track(RepoKind::Model, "acme/a", "main", 30, 2_000)
            .await
            .unwrap()
    );
    assert!(matches!(
        registry
            .track(RepoKind::Model, "acme/a", "dev", 0, 1_000)
            .await,
        Err(RegistryError::InvalidInput { .. })
    ));
    assert!(
        registry
            .track(RepoKind::Model, "../x", "main", 5, 1_000)
            .await
            .is_err()
    );

    let due = registry.tracked_due(1_000).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].every, due[0].added_at), (30, 1_000));

    let check = TrackCheck {
        at: 1_000,
        upstream_commit: Some(sha(1)),
        base_commit: None,
        pending_job: Some(7),
        error: None,
    };
    registry
        .record_track_check(RepoKind::Model, "acme/a", "main", check)
        .await
        .unwrap();
    assert!(registry.tracked_due(1_029).await.unwrap().is_empty());
    assert_eq!(registry.tracked_due(1_030).await.unwrap().len(), 1);

    // A failed check keeps the upstream commit and the pending pull.
    let failed = TrackCheck {
        at: 1_030,
        upstream_commit: None,
        base_commit: None,
        pending_job: None,
        error: Some("upstream down".into()),
    };
    registry
        .record_track_check(RepoKind::Model, "acme/a", "main", failed)
        .await
        .unwrap();
    let row = registry
        .tracked_ref(RepoKind::Model, "acme/a", "main")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.upstream_commit, Some(sha(1)));
    assert_eq!(row.pending_job, Some(7));
    assert_eq!(row.last_error.as_deref(), Some("upstream down"));

    // Settling another job changes nothing; settling this one clears it.
    registry
        .settle_track_job(RepoKind::Model, "acme/a", "main", 8, None)
        .await
        .unwrap();
    let row = registry.tracked().await.unwrap().remove(0);
    assert_eq!(row.pending_job, Some(7));
    registry
        .settle_track_job(RepoKind::Model, "acme/a", "main", 7, None)
        .await
        .unwrap();
    let row = registry.tracked().await.unwrap().remove(0);
    assert_eq!((row.pending_job, row.last_error), (None, None));

    assert!(
        registry
            .untrack(RepoKind::Model, "acme/a", "main")
            .await
            .unwrap()
    );
    assert!(
        !registry
            .untrack(RepoKind::Model, "acme/a", "main")
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn eviction_goes_least_recently_served_first_and_skips_pins() {
    let (_dir, registry) = open();
    for (n, name) in [(1, "acme/a"), (2, "acme/b"), (3, "acme/c")] {
        registry.record_blob(blob(n, 100)).await.unwrap();
        let files = vec![lfs("w.bin", 100, n)];
        registry
            .record_snapshot(snapshot(
                name,
                &sha(n),
                &["main"],
                1_000 + i64::from(n),
                files,
            ))
            .await
            .unwrap();
    }
    assert_eq!(registry.referenced_blob_bytes().await.unwrap(), 300);
    // a is the oldest pull but was served last; b is pinned.
    registry
        .record_served(
            vec![Served {
                kind: RepoKind::Model,
                name: "acme/a".into(),
                sha: sha(1),
            }],
            5_000,
        )
        .await
        .unwrap();
    assert!(
        registry
            .pin(RepoKind::Model, "acme/b", &sha(2))
            .await
            .unwrap()
    );
    assert!(
        !registry
            .pin(RepoKind::Model, "acme/b", &sha(2))
            .await
            .unwrap()
    );
    assert!(matches!(
        registry.pin(RepoKind::Model, "acme/b", &sha(9)).await,
        Err(RegistryError::UnknownCommit { .. })
    ));
    let order: Vec<(String, i64)> = registry
        .eviction_candidates()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.last_used))
        .collect();
    assert_eq!(
        order,
        [("acme/c".to_owned(), 1_003), ("acme/a".to_owned(), 5_000)]
    );
    let listed = registry.list_repos().await.unwrap();
    assert_eq!(listed[0].revisions[0].last_served, Some(5_000));
    assert!(listed[1].revisions[0].pinned);

    assert!(
        registry
            .remove_commit(RepoKind::Model, "acme/c", &sha(3))
            .await
            .unwrap()
    );
    assert!(
        !registry
            .remove_commit(RepoKind::Model, "acme/c", &sha(3))
            .await
            .unwrap()
    );
    assert_eq!(registry.referenced_blob_bytes().await.unwrap(), 200);
    assert_eq!(registry.unreferenced_blobs().await.unwrap().len(), 1);
    // The ref history outlives the commit.
    assert_eq!(
        registry
            .resolve(RepoKind::Model, "acme/c", "main")
            .await
            .unwrap(),
        Some(sha(3))
    );
    assert!(
        registry
            .unpin(RepoKind::Model, "acme/b", &sha(2))
            .await
            .unwrap()
    );
    assert_eq!(registry.eviction_candidates().await.unwrap().len(), 2);
}
