//! Interrupted pulls continue from what was written: within one run (cut connections, 503,
//! stalls, expired URLs) and across runs (the CLI killed with SIGKILL).

use std::time::{Duration, Instant};

use hub_standin::{Fault, Hub, RepoKind};
use larder::fetch::progress::PullEvent;

use crate::common::{World, content, options, pull_with, read, sha256_hex};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_kill_9_without_refetching() {
    let size = 48usize << 20;
    let hub = Hub::new();
    let bytes = content(21, size);
    hub.repo(RepoKind::Model, "acme/big")
        .lfs_file("model.safetensors", bytes.clone())
        .commit("main");
    let world = World::start(hub).await;
    let sha = sha256_hex(&bytes);
    // Slow the first run down so it can be killed mid-transfer: 2 connections x 3 MiB/s.
    world
        .server
        .inject(Fault::throttle(3 << 20).sha256(&sha).forever());
    let mut child = world
        .cli()
        .args(["pull", "acme/big", "--connections", "2"])
        .env("LARDER_MIN_SEGMENT", (4u64 << 20).to_string())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the resume state records at least 12 MiB, then SIGKILL.
    let state = world.tmp_dir().join(format!("{sha}.state"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let recorded = loop {
        assert!(
            Instant::now() < deadline,
            "the first run made no durable progress"
        );
        if let Ok(text) = std::fs::read_to_string(&state)
            && let Ok(value) = serde_json::from_str::<serde_json::Value>(&text)
        {
            let done: u64 = value["done"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r[1].as_u64().unwrap() - r[0].as_u64().unwrap())
                .sum();
            if done >= 12 << 20 {
                break done;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Let the stand-in notice the dead connections before reading its counters.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first_run = world.server.stats().bytes_for_sha256(&sha);
    assert!(
        !world.blob_path(&sha).exists(),
        "nothing published by the killed run"
    );

    world.server.faults().clear();
    let output = world.ok(&["pull", "acme/big", "--connections", "2"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("resuming model.safetensors"));
    let total = world.server.stats().bytes_for_sha256(&sha);
    let second_run = total - first_run;
    assert!(
        second_run <= size as u64 - recorded + (6 << 20),
        "second run fetched {second_run} bytes though {recorded} were recorded"
    );
    // In total, close to the file size: what the first run had in flight is lost, and a range
    // split off a busy connection may have been sent ahead into socket buffers.
    assert!(
        total <= size as u64 + (10 << 20),
        "fetched {total} bytes in total for a {size}-byte file"
    );
    assert_eq!(read(&world.blob_path(&sha)), bytes);
    assert!(!state.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connections_and_503_are_retried_in_one_run() {
    let hub = Hub::new();
    let bytes = content(22, 6 << 20);
    hub.repo(RepoKind::Model, "acme/flaky")
        .lfs_file("model.safetensors", bytes.clone())
        .regular_file("config.json", b"{\"x\":1}".to_vec())
        .commit("main");
    let world = World::start(hub).await;
    let sha = sha256_hex(&bytes);
    world
        .server
        .inject(Fault::cut_after(100_000).sha256(&sha).times(3));
    world
        .server
        .inject(Fault::unavailable(1).path("config.json").times(2));
    let larder = world.larder();
    let started = Instant::now();
    let (result, recorder) = pull_with(&larder, &options("acme/flaky", "main")).await;
    result.expect("pull succeeds after retries");
    // Retry-After: 1 was honoured twice for config.json.
    assert!(started.elapsed() >= Duration::from_secs(2));
    let retries = recorder
        .events()
        .iter()
        .filter(|e| matches!(e, PullEvent::Retrying { .. }))
        .count();
    assert!(retries >= 5, "{retries} retries");
    assert_eq!(read(&world.blob_path(&sha)), bytes);
    // Cut ranges resumed where they broke: little was fetched twice.
    let served = world.server.stats().bytes_for_sha256(&sha);
    assert!(served < bytes.len() as u64 + (2 << 20), "served {served}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalls_reconnect_without_spending_retries() {
    let hub = Hub::new();
    let bytes = content(23, 2 << 20);
    hub.repo(RepoKind::Model, "acme/stall")
        .lfs_file("model.safetensors", bytes.clone())
        .commit("main");
    let world = World::start(hub).await;
    let sha = sha256_hex(&bytes);
    world
        .server
        .inject(Fault::stall(64 << 10, None).sha256(&sha).times(4));
    let larder = world.larder();
    let mut opts = options("acme/stall", "main");
    opts.transfer.stall_timeout = Duration::from_millis(500);
    opts.transfer.retry.max_retries = 1; // stalls must not count against this
    let (result, recorder) = pull_with(&larder, &opts).await;
    result.expect("pull survives stalls");
    assert!(
        recorder
            .events()
            .iter()
            .all(|e| !matches!(e, PullEvent::Retrying { .. }))
    );
    assert_eq!(read(&world.blob_path(&sha)), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_cdn_urls_are_resolved_again() {
    let hub = Hub::new();
    let bytes = content(24, 3 << 20);
    hub.repo(RepoKind::Model, "acme/expiry")
        .lfs_file("model.safetensors", bytes.clone())
        .commit("main");
    let world = World::start(hub).await;
    let sha = sha256_hex(&bytes);
    world
        .server
        .inject(Fault::expire_cdn().sha256(&sha).times(2));
    let larder = world.larder();
    pull_with(&larder, &options("acme/expiry", "main"))
        .await
        .0
        .expect("pull re-resolves expired URLs");
    assert_eq!(read(&world.blob_path(&sha)), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_failures_keep_the_part_for_next_time() {
    let hub = Hub::new();
    let bytes = content(25, 4 << 20);
    hub.repo(RepoKind::Model, "acme/down")
        .lfs_file("model.safetensors", bytes.clone())
        .commit("main");
    let world = World::start(hub).await;
    let sha = sha256_hex(&bytes);
    // The first megabyte arrives, then every request breaks before its first byte.
    world
        .server
        .inject(Fault::cut_after(1 << 20).sha256(&sha).times(1));
    world
        .server
        .inject(Fault::cut_after(0).sha256(&sha).forever());
    let larder = world.larder();
    let mut opts = options("acme/down", "main");
    opts.transfer.connections_per_file = 1;
    opts.transfer.min_segment = 2 << 20;
    opts.transfer.max_segment = 2 << 20;
    opts.transfer.retry.max_retries = 2;
    let error = pull_with(&larder, &opts).await.0.unwrap_err();
    assert!(format!("{error}").contains("model.safetensors"), "{error}");
    assert!(larder.registry.list_repos().await.unwrap().is_empty());
    assert!(world.tmp_dir().join(format!("{sha}.part")).exists());

    world.server.faults().clear();
    let before = world.server.stats().bytes_for_sha256(&sha);
    pull_with(&larder, &opts)
        .await
        .0
        .expect("second run completes");
    let second = world.server.stats().bytes_for_sha256(&sha) - before;
    assert!(second <= 3 << 20, "second run fetched {second} bytes");
    assert_eq!(read(&world.blob_path(&sha)), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_pulling_the_same_repo_both_succeed() {
    let hub = Hub::new();
    let bytes = content(26, 12 << 20);
    hub.repo(RepoKind::Model, "acme/twice")
        .lfs_file("model.safetensors", bytes.clone())
        .commit("main");
    let world = World::start(hub).await;
    let sha = sha256_hex(&bytes);
    world
        .server
        .inject(Fault::throttle(8 << 20).sha256(&sha).forever());
    let spawn = || {
        world
            .cli()
            .args(["pull", "acme/twice", "--connections", "2"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(), spawn());
    for child in [first, second] {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_eq!(read(&world.blob_path(&sha)), bytes);
    let leftovers: Vec<_> = std::fs::read_dir(world.tmp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_holds_within_ten_percent() {
    let hub = Hub::new();
    let bytes = content(27, 20 << 20);
    hub.repo(RepoKind::Model, "acme/slow")
        .lfs_file("model.safetensors", bytes.clone())
        .commit("main");
    let world = World::start(hub).await;
    let larder = world.larder();
    let rate = 2u64 << 20;
    // Default segment sizes: the test options' tiny segments make connections take over each
    // other's ranges constantly, and every takeover reads a little that is thrown away.
    let mut opts = options("acme/slow", "main");
    opts.transfer.min_segment = larder::fetch::transfer::TransferSettings::default().min_segment;
    opts.transfer.max_segment = larder::fetch::transfer::TransferSettings::default().max_segment;
    opts.rate_limit = Some(std::sync::Arc::new(larder::fetch::rate::RateLimiter::new(
        rate,
    )));
    let started = Instant::now();
    pull_with(&larder, &opts).await.0.unwrap();
    let measured = bytes.len() as f64 / started.elapsed().as_secs_f64();
    let ratio = measured / rate as f64;
    assert!(
        (0.9..=1.1).contains(&ratio),
        "measured {measured:.0} B/s against a limit of {rate} B/s"
    );
}
