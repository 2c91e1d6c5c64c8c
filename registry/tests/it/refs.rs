//! Ref observations (version history) and `resolve`.

use larder_registry::{CommitId, RefObservation, RegistryError, RepoKind};

use crate::{open, sha, snapshot};

fn observation(reference: &str, sha: &CommitId, first_seen: i64, last_seen: i64) -> RefObservation {
    RefObservation {
        reference: reference.to_owned(),
        sha: *sha,
        first_seen,
        last_seen,
    }
}

#[tokio::test]
async fn a_ref_moving_a_b_a_gives_three_rows_and_re_observing_only_extends() {
    let (_dir, registry) = open();
    let (a, b) = (sha(1), sha(2));
    for (commit, at) in [(&a, 100), (&a, 110), (&b, 200), (&b, 250), (&a, 300)] {
        registry
            .record_snapshot(snapshot("org/a", commit, &["main"], at, vec![]))
            .await
            .unwrap();
    }
    let history = registry
        .ref_history(RepoKind::Model, "org/a")
        .await
        .unwrap();
    assert_eq!(
        history,
        [
            observation("main", &a, 100, 110),
            observation("main", &b, 200, 250),
            observation("main", &a, 300, 300),
        ]
    );
}

#[tokio::test]
async fn refs_are_tracked_independently_and_duplicates_count_once() {
    let (_dir, registry) = open();
    let (a, b) = (sha(1), sha(2));
    registry
        .record_snapshot(snapshot("org/a", &a, &["main", "v1", "main"], 10, vec![]))
        .await
        .unwrap();
    registry
        .record_snapshot(snapshot("org/a", &b, &["main"], 20, vec![]))
        .await
        .unwrap();
    let history = registry
        .ref_history(RepoKind::Model, "org/a")
        .await
        .unwrap();
    assert_eq!(
        history,
        [
            observation("main", &a, 10, 10),
            observation("v1", &a, 10, 10),
            observation("main", &b, 20, 20),
        ]
    );
    // Pulling by sha observes no ref.
    registry
        .record_snapshot(snapshot("org/a", &sha(3), &[], 30, vec![]))
        .await
        .unwrap();
    assert_eq!(
        registry
            .ref_history(RepoKind::Model, "org/a")
            .await
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn resolve_by_ref_takes_the_latest_observation_and_by_sha_a_held_commit() {
    let (_dir, registry) = open();
    let (a, b) = (sha(1), sha(2));
    let resolve = |revision: String| {
        let registry = registry.clone();
        async move {
            registry
                .resolve(RepoKind::Model, "org/a", &revision)
                .await
                .unwrap()
        }
    };
    assert_eq!(resolve("main".to_owned()).await, None, "unknown repo");

    registry
        .record_snapshot(snapshot("org/a", &a, &["main", "v1"], 10, vec![]))
        .await
        .unwrap();
    assert_eq!(resolve("main".to_owned()).await, Some(a));
    registry
        .record_snapshot(snapshot("org/a", &b, &["main"], 20, vec![]))
        .await
        .unwrap();
    assert_eq!(resolve("main".to_owned()).await, Some(b));
    assert_eq!(resolve("v1".to_owned()).await, Some(a));
    assert_eq!(resolve(a.to_string()).await, Some(a));
    assert_eq!(resolve(b.to_string()).await, Some(b));
    assert_eq!(
        resolve(sha(9).to_string()).await,
        None,
        "a sha that is not held"
    );
    assert_eq!(resolve("dev".to_owned()).await, None, "an unknown ref");

    // Back to A: latest observation wins, even though B was observed on main later in time
    // than A's first row.
    registry
        .record_snapshot(snapshot("org/a", &a, &["main"], 30, vec![]))
        .await
        .unwrap();
    assert_eq!(resolve("main".to_owned()).await, Some(a));

    // A commit held by another repo is not this repo's.
    registry
        .record_snapshot(snapshot("org/other", &sha(7), &[], 40, vec![]))
        .await
        .unwrap();
    assert_eq!(resolve(sha(7).to_string()).await, None);
}

#[tokio::test]
async fn only_refs_whose_latest_observation_is_a_commit_are_listed_with_it() {
    let (_dir, registry) = open();
    let (a, b) = (sha(1), sha(2));
    registry
        .record_snapshot(snapshot("org/a", &a, &["main", "v1"], 10, vec![]))
        .await
        .unwrap();
    registry
        .record_snapshot(snapshot("org/a", &b, &["main"], 20, vec![]))
        .await
        .unwrap();
    let repos = registry.list_repos().await.unwrap();
    let revisions = &repos[0].revisions;
    assert_eq!(revisions.len(), 2);
    assert_eq!(revisions[0].sha, b, "most recently fetched first");
    assert_eq!(revisions[0].refs, ["main"]);
    assert_eq!(revisions[1].sha, a);
    assert_eq!(revisions[1].refs, ["v1"]);

    let detail = registry
        .commit_detail(RepoKind::Model, "org/a", &a)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.refs, ["v1"]);
}

#[tokio::test]
async fn history_of_an_unknown_repo_is_an_error() {
    let (_dir, registry) = open();
    let err = registry
        .ref_history(RepoKind::Model, "org/none")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::UnknownRepo { kind: RepoKind::Model, name } if name == "org/none"),
        "{err:?}"
    );
}
