//! The single writer under concurrent use, and readers seeing committed writes (WAL).

use std::time::Duration;

use larder_registry::{RepoKind, Sha256};
use rusqlite::{Connection, OpenFlags};

use crate::{blob, digest, lfs, open, sha, snapshot};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_from_many_tasks_all_land() {
    let (_dir, registry) = open();
    let tasks: Vec<_> = (0..64_u32)
        .map(|i| {
            let registry = registry.clone();
            tokio::spawn(async move {
                registry.record_blob(blob(i, 100)).await?;
                let name = format!("org/r{}", i % 8);
                let files = vec![lfs("w.bin", 100, i)];
                registry
                    .record_snapshot(snapshot(&name, &sha(i), &["main"], i64::from(i), files))
                    .await
            })
        })
        .collect();
    let mut commit_ids = Vec::new();
    for task in tasks {
        commit_ids.push(task.await.unwrap().unwrap());
    }
    commit_ids.sort_unstable();
    commit_ids.dedup();
    assert_eq!(commit_ids.len(), 64, "every commit got its own row");

    assert_eq!(registry.blobs().await.unwrap().len(), 64);
    let repos = registry.list_repos().await.unwrap();
    assert_eq!(repos.len(), 8);
    for repo in &repos {
        assert_eq!(repo.revisions.len(), 8, "{}", repo.name);
        assert!(repo.revisions.iter().all(|r| r.files_held == 1));
        // Each snapshot moved main to a new commit: one observation each, and `main` resolves
        // to the last one recorded.
        let history = registry
            .ref_history(RepoKind::Model, &repo.name)
            .await
            .unwrap();
        assert_eq!(history.len(), 8, "{}", repo.name);
        let last = history.last().unwrap();
        let resolved = registry
            .resolve(RepoKind::Model, &repo.name, "main")
            .await
            .unwrap();
        assert_eq!(resolved, Some(last.sha));
        let with_main: Vec<_> = repo
            .revisions
            .iter()
            .filter(|r| !r.refs.is_empty())
            .collect();
        assert_eq!(with_main.len(), 1);
        assert_eq!(with_main[0].sha, last.sha);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_sees_the_writes_that_completed_before_it() {
    let (_dir, registry) = open();
    // A connection opened before any write, kept across them, like another process's reader.
    let outside =
        Connection::open_with_flags(registry.path(), OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    // Fill the read pool so later reads reuse connections opened before the writes.
    let warm: Vec<_> = (0..8)
        .map(|_| {
            let registry = registry.clone();
            tokio::spawn(async move { registry.blobs().await })
        })
        .collect();
    for task in warm {
        assert!(task.await.unwrap().unwrap().is_empty());
    }
    for i in 0..40_u32 {
        registry.record_blob(blob(i, 1)).await.unwrap();
        assert!(
            registry.blob(&digest(i)).await.unwrap().is_some(),
            "blob {i}"
        );
        assert_eq!(registry.blobs().await.unwrap().len(), i as usize + 1);
        let count: u32 = outside
            .query_row("SELECT count(*) FROM blobs", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count, i + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_holding_the_write_lock_delays_writes_but_not_reads() {
    let (_dir, registry) = open();
    registry.record_blob(blob(1, 1)).await.unwrap();

    let other = Connection::open(registry.path()).unwrap();
    other
        .execute_batch(&format!(
            "BEGIN IMMEDIATE;
             INSERT INTO blobs (sha256, size, stored_at, location) VALUES ('{}', 2, 0, 'x');",
            digest(2)
        ))
        .unwrap();

    let write = tokio::spawn({
        let registry = registry.clone();
        async move { registry.record_blob(blob(3, 3)).await }
    });
    // Readers are not blocked by the other writer, and do not see its uncommitted row.
    assert!(registry.blob(&digest(1)).await.unwrap().is_some());
    assert!(registry.blob(&digest(2)).await.unwrap().is_none());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !write.is_finished(),
        "the write must wait for the other writer's lock"
    );

    other.execute_batch("COMMIT").unwrap();
    write.await.unwrap().unwrap();
    let all: Vec<Sha256> = registry
        .blobs()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.sha256)
        .collect();
    assert_eq!(all.len(), 3);
    assert!(all.contains(&digest(2)) && all.contains(&digest(3)));
}
