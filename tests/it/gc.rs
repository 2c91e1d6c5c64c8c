//! `larder gc`: unreferenced blobs, stale parts and quarantined files go; held revisions stay.

use hub_standin::{Fault, Hub, RepoKind};
use larder::gc::{GcError, GcOptions, gc};

use crate::common::{World, content, options, pull_with, read, sha256_hex};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_removes_only_garbage() {
    let hub = Hub::new();
    let kept = content(61, 1 << 20);
    let orphaned = content(62, 2 << 20);
    let broken = content(63, 1 << 20);
    hub.repo(RepoKind::Model, "acme/kept")
        .lfs_file("model.safetensors", kept.clone())
        .commit("main");
    hub.repo(RepoKind::Model, "acme/failed")
        .lfs_file("a.safetensors", orphaned.clone())
        .lfs_file("b.safetensors", broken.clone())
        .commit("main");
    let world = World::start(hub).await;
    let larder = world.larder();
    pull_with(&larder, &options("acme/kept", "main"))
        .await
        .0
        .unwrap();

    // A pull that publishes one blob, then fails on the other: the first is unreferenced.
    world
        .server
        .inject(Fault::flip_byte(0).sha256(&sha256_hex(&broken)).forever());
    let mut opts = options("acme/failed", "main");
    opts.max_files = 1;
    assert!(pull_with(&larder, &opts).await.0.is_err());
    assert!(larder.local.has(&sha256_hex(&orphaned)));

    // While a pull holds the guard, gc refuses.
    let guard = larder.local.gc_guard().await.unwrap();
    let busy = gc(
        &larder,
        GcOptions {
            dry_run: false,
            all_parts: false,
        },
    )
    .await;
    assert!(matches!(busy, Err(GcError::Busy)));
    drop(guard);

    let dry = gc(
        &larder,
        GcOptions {
            dry_run: true,
            all_parts: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(dry.collected.len(), 1, "{:?}", dry.collected);
    assert_eq!(dry.freed, orphaned.len() as u64);
    assert!(
        larder.local.has(&sha256_hex(&orphaned)),
        "dry run removes nothing"
    );

    let report = gc(
        &larder,
        GcOptions {
            dry_run: false,
            all_parts: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(report.freed, orphaned.len() as u64);
    assert!(!larder.local.has(&sha256_hex(&orphaned)));
    assert!(
        larder
            .registry
            .blob(&sha256_hex(&orphaned))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(read(&world.blob_path(&sha256_hex(&kept))), kept);
    assert!(world.cli().args(["verify"]).status().unwrap().success());

    // The CLI reports what it freed.
    let output = world.cli().args(["gc", "--dry-run"]).output().unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("would free 0 B"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gc_leaves_a_live_pull_through_part_alone() {
    use std::time::Duration;
    let bytes = content(64, 6 << 20);
    let hub = Hub::new();
    hub.repo(RepoKind::Model, "acme/live")
        .lfs_file("model.safetensors", bytes.clone())
        .commit("main");
    let world = World::start(hub).await;
    // About three seconds upstream: the client is mid-body when gc comes.
    world
        .server
        .inject(Fault::throttle(2 << 20).path("model.safetensors").forever());
    let mut serve = larder::serve::ServeOptions::new("127.0.0.1:0".parse().unwrap());
    serve.pull_through = true;
    let mirror = larder::serve::start(world.larder(), serve).await.unwrap();
    let url = format!("{}/acme/live/resolve/main/model.safetensors", mirror.url());
    let client = tokio::spawn(async move {
        let response = reqwest::get(&url).await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.bytes().await.map(|b| b.to_vec())
    });
    // Wait until the transfer has a part on disk.
    let larder = world.larder();
    let parts = larder.local.tmp_dir();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&parts).map_or(0, |d| d.count()) == 0 {
        assert!(std::time::Instant::now() < deadline, "no part appeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let busy = gc(
        &larder,
        GcOptions {
            dry_run: false,
            all_parts: true,
        },
    )
    .await;
    assert!(matches!(busy, Err(GcError::Busy)), "{busy:?}");
    // The client gets the whole file, and the mirror holds it.
    let got = client
        .await
        .unwrap()
        .expect("the client's download was not cut");
    assert!(got == bytes, "got {} bytes, not the file", got.len());
    mirror.stop().await.unwrap();
    // The transfer lets go of the store once it has recorded the file, just after the client's
    // last byte.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let report = loop {
        let options = GcOptions {
            dry_run: false,
            all_parts: true,
        };
        match gc(&larder, options).await {
            Err(GcError::Busy) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => break other.unwrap(),
        }
    };
    assert!(
        report.collected.iter().all(|c| c.kind != "blob"),
        "{:?}",
        report.collected
    );
    assert!(larder.local.has(&sha256_hex(&bytes)));
}
