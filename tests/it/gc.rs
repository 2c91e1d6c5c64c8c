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
