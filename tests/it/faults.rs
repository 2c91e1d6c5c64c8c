//! Corrupted transfers are caught before anything enters the store.

use hub_standin::{Fault, Hub, RepoKind};
use larder::fetch::PullError;
use larder::fetch::progress::PullEvent;
use larder::fetch::transfer::TransferError;

use crate::common::{World, content, options, pull_with, read, sha256_hex};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_is_caught_and_refetched_once() {
    let hub = Hub::new();
    let bytes = content(31, 3 << 20);
    hub.repo(RepoKind::Model, "acme/flip")
        .lfs_file("model.safetensors", bytes.clone())
        .regular_file("config.json", content(32, 5000))
        .commit("main");
    let world = World::start(hub).await;
    let sha = sha256_hex(&bytes);
    // The stand-in spends a fault on the first matching request, so make that request the
    // one covering the flipped offset: one connection, lowest range first.
    world
        .server
        .inject(Fault::flip_byte(1_000).sha256(&sha).times(1));
    world
        .server
        .inject(Fault::flip_byte(10).path("config.json").times(1));
    let larder = world.larder();
    let mut opts = options("acme/flip", "main");
    opts.transfer.connections_per_file = 1;
    let (result, recorder) = pull_with(&larder, &opts).await;
    result.expect("the second fetch is clean");
    let mismatches = recorder
        .events()
        .iter()
        .filter(|e| matches!(e, PullEvent::Mismatch { .. }))
        .count();
    assert_eq!(
        mismatches, 2,
        "both the LFS file (sha256) and the regular file (git sha1)"
    );
    assert_eq!(read(&world.blob_path(&sha)), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_twice_fails_naming_the_file_and_stores_nothing() {
    let hub = Hub::new();
    let bytes = content(33, 2 << 20);
    hub.repo(RepoKind::Model, "acme/rotten")
        .lfs_file("model.safetensors", bytes.clone())
        .commit("main");
    let world = World::start(hub).await;
    let sha = sha256_hex(&bytes);
    world
        .server
        .inject(Fault::flip_byte(5).sha256(&sha).forever());
    let larder = world.larder();
    let error = pull_with(&larder, &options("acme/rotten", "main"))
        .await
        .0
        .unwrap_err();
    assert!(
        matches!(&error, PullError::Transfer(TransferError::Mismatch { path, .. }) if path == "model.safetensors"),
        "{error}"
    );
    assert!(!world.blob_path(&sha).exists());
    let blobs_dir = world.home.path().join("blobs/sha256");
    assert_eq!(std::fs::read_dir(blobs_dir).unwrap().count(), 0);
    assert!(larder.registry.blobs().await.unwrap().is_empty());
    assert!(larder.registry.list_repos().await.unwrap().is_empty());
}
