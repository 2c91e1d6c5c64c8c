//! `record_snapshot` upsert semantics.

use larder_registry::{LicenceFields, RegistryError, RepoKind};
use serde_json::json;

use crate::{blob, digest, lfs, oid, open, regular, sha, snapshot};

#[tokio::test]
async fn re_recording_updates_the_commit_but_never_forgets_a_known_sha256() {
    let (_dir, registry) = open();
    let mut first = snapshot(
        "org/a",
        &sha(1),
        &["main"],
        100,
        vec![
            regular("config.json", 10, 1, true),
            lfs("model.safetensors", 1_000, 2),
        ],
    );
    first.card_json = Some(json!({"license": "apache-2.0"}));
    let id1 = registry.record_snapshot(first).await.unwrap();

    // The next pull of the same commit did not download config.json, so it does not know its
    // sha256; it moved upstream and the repo became gated and private.
    let mut second = snapshot(
        "org/a",
        &sha(1),
        &["main"],
        200,
        vec![
            regular("config.json", 10, 1, false),
            lfs("model.safetensors", 1_000, 2),
        ],
    );
    second.card_json = Some(json!({"license": "mit"}));
    second.upstream = "https://mirror.example".to_owned();
    second.gated = Some("manual".to_owned());
    second.private = true;
    let id2 = registry.record_snapshot(second).await.unwrap();
    assert_eq!(id1, id2, "the same commit keeps its row");

    let detail = registry
        .commit_detail(RepoKind::Model, "org/a", &sha(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.fetched_at, 200);
    assert_eq!(detail.card_json, Some(json!({"license": "mit"})));
    assert_eq!(detail.upstream, "https://mirror.example");
    assert_eq!(detail.gated.as_deref(), Some("manual"));
    assert!(detail.private);
    let config = detail
        .files
        .iter()
        .find(|f| f.path == "config.json")
        .unwrap();
    assert_eq!(config.sha256.as_deref(), Some(digest(1).as_str()));
    assert_eq!(detail.files.len(), 2);

    let repos = registry.list_repos().await.unwrap();
    assert_eq!(repos.len(), 1);
    assert_eq!(repos[0].first_seen, 100, "first_seen is the first pull");
    assert_eq!(repos[0].revisions.len(), 1);
    assert_eq!(repos[0].revisions[0].fetched_at, 200);
}

#[tokio::test]
async fn a_later_pull_can_fill_in_a_sha256_and_a_changed_oid_drops_the_stale_one() {
    let (_dir, registry) = open();
    let record = |files| snapshot("org/a", &sha(1), &[], 100, files);
    registry
        .record_snapshot(record(vec![
            regular("a.txt", 1, 1, false),
            regular("b.txt", 1, 2, true),
        ]))
        .await
        .unwrap();
    let mut changed = regular("b.txt", 1, 3, false);
    changed.git_oid = oid(3);
    registry
        .record_snapshot(record(vec![regular("a.txt", 1, 1, true), changed]))
        .await
        .unwrap();
    let detail = registry
        .commit_detail(RepoKind::Model, "org/a", &sha(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.files[0].sha256.as_deref(), Some(digest(1).as_str()));
    assert_eq!(detail.files[1].git_oid, oid(3));
    assert_eq!(
        detail.files[1].sha256, None,
        "a digest of other content must not survive"
    );
}

#[tokio::test]
async fn card_licence_signals_are_replaced_on_each_pull() {
    let (_dir, registry) = open();
    let mut first = snapshot("org/a", &sha(1), &["main"], 1, vec![]);
    first.licence = LicenceFields {
        license: Some("other".to_owned()),
        license_name: Some("llama3".to_owned()),
        license_link: Some("LICENSE".to_owned()),
        gated: Some("auto".to_owned()),
    };
    registry.record_snapshot(first.clone()).await.unwrap();
    let detail = registry
        .commit_detail(RepoKind::Model, "org/a", &sha(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.licence, first.licence);

    let mut second = first.clone();
    second.licence = LicenceFields {
        license: Some("mit".to_owned()),
        ..LicenceFields::default()
    };
    registry.record_snapshot(second.clone()).await.unwrap();
    let repos = registry.list_repos().await.unwrap();
    assert_eq!(repos[0].revisions[0].licence, second.licence);
}

#[tokio::test]
async fn a_missing_card_is_stored_as_none() {
    let (_dir, registry) = open();
    let mut record = snapshot("org/a", &sha(1), &[], 1, vec![]);
    record.card_json = Some(serde_json::Value::Null);
    registry.record_snapshot(record).await.unwrap();
    let detail = registry
        .commit_detail(RepoKind::Model, "org/a", &sha(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.card_json, None);
}

#[tokio::test]
async fn models_and_datasets_with_the_same_name_are_different_repos() {
    let (_dir, registry) = open();
    registry
        .record_snapshot(snapshot("org/a", &sha(1), &["main"], 1, vec![]))
        .await
        .unwrap();
    let mut dataset = snapshot("org/a", &sha(2), &["main"], 1, vec![]);
    dataset.kind = RepoKind::Dataset;
    registry.record_snapshot(dataset).await.unwrap();
    let resolve = |kind| registry.resolve(kind, "org/a", "main");
    assert_eq!(resolve(RepoKind::Model).await.unwrap(), Some(sha(1)));
    assert_eq!(resolve(RepoKind::Dataset).await.unwrap(), Some(sha(2)));
    let kinds: Vec<RepoKind> = registry
        .list_repos()
        .await
        .unwrap()
        .iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(kinds, [RepoKind::Model, RepoKind::Dataset]);
}

#[tokio::test]
async fn hostile_input_is_rejected_before_anything_is_written() {
    let (_dir, registry) = open();
    let cases = [
        snapshot("../a", &sha(1), &[], 1, vec![]),
        snapshot("org/a", &sha(1), &[""], 1, vec![]),
        snapshot(
            "org/a",
            &sha(1),
            &[],
            1,
            vec![regular("../../etc/passwd", 1, 1, true)],
        ),
        snapshot("org/a", &sha(1), &[], 1, vec![regular("/abs", 1, 1, true)]),
        {
            let mut bad = snapshot("org/a", &sha(1), &[], 1, vec![]);
            bad.gated = Some("yes".to_owned());
            bad
        },
    ];
    for case in cases {
        let err = registry.record_snapshot(case.clone()).await.unwrap_err();
        assert!(
            matches!(err, RegistryError::InvalidInput { .. }),
            "{case:?}: {err:?}"
        );
    }
    assert!(registry.list_repos().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_snapshot_transaction_leaves_nothing_behind() {
    let (_dir, registry) = open();
    // Passes validation but violates the schema (size beyond i64): the whole pull rolls back.
    let record = snapshot(
        "org/a",
        &sha(1),
        &["main"],
        1,
        vec![
            regular("ok.txt", 1, 1, true),
            regular("huge.bin", u64::MAX, 2, true),
        ],
    );
    let err = registry.record_snapshot(record).await.unwrap_err();
    assert!(matches!(err, RegistryError::Write { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("record the snapshot of model org/a"),
        "{err}"
    );
    assert!(registry.list_repos().await.unwrap().is_empty());
    assert_eq!(
        registry
            .resolve(RepoKind::Model, "org/a", "main")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_snapshot_with_its_blobs_is_recorded_whole_or_not_at_all() {
    let (_dir, registry) = open();
    let files = vec![
        lfs("model.safetensors", 1_000, 1),
        regular("a.txt", 5, 2, true),
    ];
    registry
        .record_snapshot_with_blobs(
            snapshot("org/i", &sha(1), &["main"], 50, files),
            vec![blob(1, 1_000), blob(2, 5)],
        )
        .await
        .unwrap();
    let detail = registry
        .commit_detail(RepoKind::Model, "org/i", &sha(1))
        .await
        .unwrap()
        .unwrap();
    assert!(detail.files.iter().all(|f| f.held));
    assert_eq!(detail.refs, vec!["main".to_owned()]);

    // A file whose size SQLite cannot store fails the insert after the blob rows were written:
    // the transaction rolls back, so neither the blob nor the commit is recorded.
    let huge = lfs("huge.bin", u64::MAX, 3);
    let failed = registry
        .record_snapshot_with_blobs(
            snapshot("org/i", &sha(2), &["main"], 60, vec![huge]),
            vec![blob(3, 7)],
        )
        .await;
    assert!(failed.is_err());
    assert!(registry.blob(&digest(3)).await.unwrap().is_none());
    assert!(
        registry
            .commit_detail(RepoKind::Model, "org/i", &sha(2))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        registry
            .resolve(RepoKind::Model, "org/i", "main")
            .await
            .unwrap(),
        Some(sha(1))
    );
}
