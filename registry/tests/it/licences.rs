//! Licence records: detections per commit, the licence history, the audit log.

use larder_registry::{
    AuditEntry, LicenceFields, LicenceRecord, LicenceSignalRecord, RegistryError, RepoKind,
};
use serde_json::json;

use crate::{open, regular, sha, snapshot};

fn record(key: &str, signals: &[(&str, &str)]) -> LicenceRecord {
    LicenceRecord {
        licence_key: key.to_owned(),
        declared: Some(key.to_owned()),
        confidence: "high".to_owned(),
        conflicts: json!([{ "kind": "card_vs_tag", "message": "m" }]),
        detection: json!({ "repo": "org/a", "licence": key }),
        signals: signals
            .iter()
            .map(|(source, value)| LicenceSignalRecord {
                source: (*source).to_owned(),
                value: (*value).to_owned(),
                detail: Some(json!({ "licence": key }).to_string()),
            })
            .collect(),
        resolved_at: 500,
    }
}

#[tokio::test]
async fn a_detection_replaces_the_previous_one_and_keeps_the_card_fields() {
    let (_dir, registry) = open();
    let mut first = snapshot(
        "org/a",
        &sha(1),
        &["main"],
        100,
        vec![regular("LICENSE", 5, 1, true)],
    );
    first.licence = LicenceFields {
        license: Some("mit".to_owned()),
        ..LicenceFields::default()
    };
    registry.record_snapshot(first).await.unwrap();

    registry
        .record_licence(
            RepoKind::Model,
            "org/a",
            &sha(1),
            record(
                "apache_2_0",
                &[
                    ("tag", "license:apache-2.0"),
                    ("licence_file", "apache-2.0"),
                ],
            ),
        )
        .await
        .unwrap();
    registry
        .record_licence(
            RepoKind::Model,
            "org/a",
            &sha(1),
            record("mit", &[("card_license", "mit")]),
        )
        .await
        .unwrap();
    let signals = registry
        .licence_signals(RepoKind::Model, "org/a", &sha(1))
        .await
        .unwrap();
    let pairs: Vec<(&str, &str)> = signals
        .iter()
        .map(|s| (s.source.as_str(), s.value.as_str()))
        .collect();
    assert_eq!(pairs, vec![("card", "mit"), ("card_license", "mit")]);

    let history = registry
        .licence_history(RepoKind::Model, "org/a")
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].licence_key.as_deref(), Some("mit"));
    assert_eq!(history[0].confidence.as_deref(), Some("high"));
    assert_eq!(history[0].conflicts[0]["kind"], "card_vs_tag");
    assert_eq!(history[0].detection.as_ref().unwrap()["licence"], "mit");
    assert_eq!(history[0].resolved_at, Some(500));

    let missing = registry
        .record_licence(RepoKind::Model, "org/a", &sha(9), record("mit", &[]))
        .await;
    assert!(
        matches!(missing, Err(RegistryError::UnknownCommit { .. })),
        "{missing:?}"
    );
}

#[tokio::test]
async fn history_lists_held_commits_in_the_order_first_recorded() {
    let (_dir, registry) = open();
    registry
        .record_snapshot(snapshot("org/a", &sha(2), &["main"], 100, vec![]))
        .await
        .unwrap();
    registry
        .record_snapshot(snapshot("org/a", &sha(1), &["main"], 200, vec![]))
        .await
        .unwrap();
    registry
        .record_licence(RepoKind::Model, "org/a", &sha(1), record("apache_2_0", &[]))
        .await
        .unwrap();
    // Re-pulling the first commit later does not make it the newest.
    registry
        .record_snapshot(snapshot("org/a", &sha(2), &[], 300, vec![]))
        .await
        .unwrap();
    let history = registry
        .licence_history(RepoKind::Model, "org/a")
        .await
        .unwrap();
    let order: Vec<&str> = history.iter().map(|entry| entry.sha.as_str()).collect();
    assert_eq!(order, vec![sha(2).as_str(), sha(1).as_str()]);
    assert_eq!(history[0].licence_key, None);
    assert_eq!(history[0].detection, None);
    assert_eq!(history[1].licence_key.as_deref(), Some("apache_2_0"));
    assert!(
        registry
            .licence_history(RepoKind::Model, "org/unknown")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_audit_log_keeps_entries_in_order_and_filters_by_repo() {
    let (_dir, registry) = open();
    for (repo, at) in [
        ("model:org/a", 10),
        ("model:org/b", 20),
        ("model:org/a", 30),
    ] {
        registry
            .log_audit(AuditEntry {
                id: 0,
                at,
                actor: "alice".to_owned(),
                action: "accept_licence".to_owned(),
                repo: Some(repo.to_owned()),
                detail: Some(json!({ "keys": ["mit"] })),
            })
            .await
            .unwrap();
    }
    let all = registry.audit_log(None).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.at).collect::<Vec<_>>(),
        vec![10, 20, 30]
    );
    let only_a = registry.audit_log(Some("model:org/a")).await.unwrap();
    assert_eq!(only_a.len(), 2);
    assert!(
        only_a
            .iter()
            .all(|e| e.repo.as_deref() == Some("model:org/a"))
    );
    assert_eq!(only_a[1].detail.as_ref().unwrap()["keys"][0], "mit");
    assert_eq!(only_a[0].actor, "alice");
}
