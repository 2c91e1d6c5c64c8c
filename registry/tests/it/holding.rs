//! Held / not-held accounting, blobs and their uses.

use larder_registry::{BlobUse, RegistryError, RepoKind, Sha256};

use crate::{blob, digest, lfs, oid, open, regular, sha, snapshot};

/// One commit with every combination: LFS held, LFS excluded (sha256 known, no blob), regular
/// held, regular never downloaded (sha256 unknown).
async fn mixed_commit(registry: &larder_registry::Registry) {
    registry.record_blob(blob(1, 1_000)).await.unwrap();
    registry.record_blob(blob(3, 30)).await.unwrap();
    registry
        .record_snapshot(snapshot(
            "org/a",
            &sha(1),
            &["main"],
            10,
            vec![
                lfs("model-1.safetensors", 1_000, 1),
                lfs("model-2.safetensors", 2_000, 2),
                regular("config.json", 30, 3, true),
                regular("README.md", 4, 4, false),
            ],
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn list_repos_and_commit_detail_count_what_is_held() {
    let (_dir, registry) = open();
    mixed_commit(&registry).await;

    let repos = registry.list_repos().await.unwrap();
    let revision = &repos[0].revisions[0];
    assert_eq!(revision.files, 4);
    assert_eq!(revision.files_held, 2);
    assert_eq!(revision.bytes_total, 3_034);
    assert_eq!(revision.bytes_held, 1_030);

    let detail = registry
        .commit_detail(RepoKind::Model, "org/a", &sha(1))
        .await
        .unwrap()
        .unwrap();
    let held: Vec<(&str, bool)> = detail
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.held))
        .collect();
    assert_eq!(
        held,
        [
            ("README.md", false),
            ("config.json", true),
            ("model-1.safetensors", true),
            ("model-2.safetensors", false),
        ]
    );
}

#[tokio::test]
async fn removing_a_blob_makes_its_files_not_held_but_keeps_their_digest() {
    let (_dir, registry) = open();
    mixed_commit(&registry).await;
    registry.remove_blob(&digest(1)).await.unwrap();
    registry.remove_blob(&digest(1)).await.unwrap(); // idempotent

    assert_eq!(registry.blob(&digest(1)).await.unwrap(), None);
    let file = registry
        .file(RepoKind::Model, "org/a", &sha(1), "model-1.safetensors")
        .await
        .unwrap()
        .unwrap();
    assert!(!file.held);
    assert_eq!(file.sha256, Some(digest(1)));
    let revision = &registry.list_repos().await.unwrap()[0].revisions[0];
    assert_eq!((revision.files_held, revision.bytes_held), (1, 30));
    assert_eq!(
        registry.commits_using_blob(&digest(1)).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn sha256_for_git_oid_only_returns_held_content() {
    let (_dir, registry) = open();
    mixed_commit(&registry).await;
    assert_eq!(
        registry.sha256_for_git_oid(&oid(3)).await.unwrap(),
        Some(digest(3))
    );
    assert_eq!(
        registry.sha256_for_git_oid(&oid(2)).await.unwrap(),
        None,
        "excluded LFS file"
    );
    assert_eq!(
        registry.sha256_for_git_oid(&oid(4)).await.unwrap(),
        None,
        "never hashed"
    );
    assert_eq!(
        registry.sha256_for_git_oid(&oid(99)).await.unwrap(),
        None,
        "unknown oid"
    );
    registry.record_blob(blob(2, 2_000)).await.unwrap();
    assert_eq!(
        registry.sha256_for_git_oid(&oid(2)).await.unwrap(),
        Some(digest(2))
    );
    registry.remove_blob(&digest(3)).await.unwrap();
    assert_eq!(registry.sha256_for_git_oid(&oid(3)).await.unwrap(), None);
}

#[tokio::test]
async fn one_blob_serves_every_repo_and_commit_that_names_it() {
    let (_dir, registry) = open();
    registry.record_blob(blob(5, 50)).await.unwrap();
    for (name, commit) in [("org/b", sha(2)), ("org/a", sha(1)), ("org/a", sha(3))] {
        registry
            .record_snapshot(snapshot(name, &commit, &[], 1, vec![lfs("w.bin", 50, 5)]))
            .await
            .unwrap();
    }
    let uses = registry.commits_using_blob(&digest(5)).await.unwrap();
    let mut expected = vec![
        BlobUse {
            kind: RepoKind::Model,
            name: "org/a".into(),
            commit: sha(1),
            path: "w.bin".into(),
        },
        BlobUse {
            kind: RepoKind::Model,
            name: "org/a".into(),
            commit: sha(3),
            path: "w.bin".into(),
        },
        BlobUse {
            kind: RepoKind::Model,
            name: "org/b".into(),
            commit: sha(2),
            path: "w.bin".into(),
        },
    ];
    expected.sort_by(|x, y| (&x.name, &x.commit).cmp(&(&y.name, &y.commit)));
    assert_eq!(uses, expected);
    for repo in registry.list_repos().await.unwrap() {
        for revision in repo.revisions {
            assert_eq!(revision.files_held, 1, "{} {}", repo.name, revision.sha);
        }
    }
    assert!(
        registry
            .commits_using_blob(&digest(6))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn blobs_are_upserted_and_verification_is_recorded() {
    let (_dir, registry) = open();
    registry.record_blob(blob(1, 10)).await.unwrap();
    let mut moved = blob(1, 10);
    moved.location = "elsewhere".to_owned();
    moved.stored_at = 2_000;
    registry.record_blob(moved.clone()).await.unwrap();
    assert_eq!(
        registry.blob(&digest(1)).await.unwrap(),
        Some(moved.clone())
    );

    registry
        .mark_blob_verified(&digest(1), 3_000)
        .await
        .unwrap();
    let verified = registry.blob(&digest(1)).await.unwrap().unwrap();
    assert_eq!(verified.verified_at, Some(3_000));
    assert_eq!(registry.blobs().await.unwrap(), [verified]);

    let err = registry
        .mark_blob_verified(&digest(2), 1)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::UnknownBlob { sha256 } if *sha256 == digest(2)),
        "{err:?}"
    );
}

#[tokio::test]
async fn ensure_held_names_the_first_file_that_is_not() {
    let (_dir, registry) = open();
    mixed_commit(&registry).await;
    let commit = sha(1);
    let check = |paths: &[&str]| {
        registry.ensure_held(
            RepoKind::Model,
            "org/a",
            &commit,
            paths.iter().map(|p| (*p).to_owned()).collect(),
        )
    };
    check(&["config.json", "model-1.safetensors"])
        .await
        .unwrap();
    match check(&["config.json", "model-2.safetensors"])
        .await
        .unwrap_err()
    {
        RegistryError::MissingBlob { sha256, path } => {
            assert_eq!(path, "model-2.safetensors");
            assert_eq!(sha256, Some(digest(2)));
        }
        other => panic!("{other:?}"),
    }
    match check(&["README.md"]).await.unwrap_err() {
        RegistryError::MissingBlob { sha256: None, path } => assert_eq!(path, "README.md"),
        other => panic!("{other:?}"),
    }
    let err = check(&["nope.txt"]).await.unwrap_err();
    assert!(matches!(err, RegistryError::UnknownFile { .. }), "{err:?}");
    let err = registry
        .ensure_held(RepoKind::Model, "org/a", &sha(2), vec![])
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::UnknownCommit { .. }),
        "{err:?}"
    );
    let err = registry
        .ensure_held(RepoKind::Dataset, "org/a", &sha(1), vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::UnknownRepo { .. }), "{err:?}");
}

#[tokio::test]
async fn unknown_things_read_as_none() {
    let (_dir, registry) = open();
    mixed_commit(&registry).await;
    let (a, b) = (sha(1), sha(2));
    let detail = registry.commit_detail(RepoKind::Model, "org/a", &b);
    assert_eq!(detail.await.unwrap(), None);
    let detail = registry.commit_detail(RepoKind::Dataset, "org/a", &a);
    assert_eq!(detail.await.unwrap(), None);
    let file = registry.file(RepoKind::Model, "org/a", &a, "nope");
    assert_eq!(file.await.unwrap(), None);
}

#[tokio::test]
async fn record_blobs_writes_a_group_in_one_go_or_not_at_all() {
    let (_dir, registry) = open();
    let chunking = |n: u32, size: u32| larder_registry::XetRecord {
        sha256: digest(n),
        xet_hash: format!("{:064x}", 0xe000_u64 + u64::from(n)),
        chunks: vec![larder_registry::XetChunk {
            hash: [n as u8; 32],
            length: size,
        }],
    };
    registry
        .record_blobs(vec![
            (blob(1, 10), Some(chunking(1, 10))),
            (blob(2, 20), None),
        ])
        .await
        .unwrap();
    let held: Vec<Sha256> = registry
        .blobs()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.sha256)
        .collect();
    assert_eq!(held, vec![digest(1), digest(2)]);
    assert!(registry.xet(&digest(1)).await.unwrap().is_some());

    // A chunking that names another blob is refused before anything is written.
    let refused = registry
        .record_blobs(vec![
            (blob(3, 30), None),
            (blob(4, 40), Some(chunking(5, 40))),
        ])
        .await;
    assert!(matches!(refused, Err(RegistryError::InvalidInput { .. })));
    assert_eq!(registry.blobs().await.unwrap().len(), 2);
}
