//! Pulls of thousands of small files: killed at random points and resumed (everything ends
//! byte-identical, nothing unverified is ever recorded, little is fetched twice), and an
//! upstream answering 429 makes the pull send fewer requests at once, then complete.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hub_standin::{Fault, Hub, RepoKind, Route};

use crate::common::{World, content, options, pull_with, sha256_hex};

/// A repo of `count` small files of 2 to 14 KB (a few of them LFS), and each file's content.
fn small_files_repo(hub: &Hub, repo: &str, count: usize) -> HashMap<String, Vec<u8>> {
    let mut files = HashMap::new();
    let mut builder = hub.repo(RepoKind::Model, repo);
    for i in 0..count {
        let size = 2_000 + (i * 7_919) % 12_000;
        let bytes = content(10_000 + i as u64, size);
        let path = format!("shard-{:02}/file-{i:05}.bin", i % 17);
        builder = if i % 100 == 0 {
            builder.lfs_file(&path, bytes.clone())
        } else {
            builder.regular_file(&path, bytes.clone())
        };
        files.insert(path, bytes);
    }
    builder.commit("main");
    files
}

/// xorshift, seeded from the clock (printed, so a failure can be replayed with `MANY_SEED`).
struct Dice(u64);

impl Dice {
    fn new() -> Dice {
        let seed = std::env::var("MANY_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("many_files: MANY_SEED={seed}");
        Dice(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Every blob the registry records is in the store, whole, and hashes to its name; so is every
/// blob in the store (a blob without a row is fine: the next pull adopts it).
async fn assert_store_holds_only_verified_content(world: &World) {
    let larder = world.larder();
    for blob in larder.registry.blobs().await.unwrap() {
        let path = world.blob_path(&blob.sha256);
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("recorded blob {} is not in the store: {e}", blob.sha256));
        assert_eq!(bytes.len() as u64, blob.size);
        assert_eq!(sha256_hex(&bytes), blob.sha256, "recorded blob is damaged");
    }
    let root = world.home.path().join("blobs/sha256");
    for shard in std::fs::read_dir(&root).unwrap().flatten() {
        for entry in std::fs::read_dir(shard.path()).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(entry.path()).unwrap();
            assert_eq!(sha256_hex(&bytes), name, "blob {name} has other content");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_then_resume_is_byte_identical_and_fetches_little_twice() {
    let hub = Hub::new();
    let files = small_files_repo(&hub, "acme/many", 2_000);
    let repo_bytes: u64 = files.values().map(|b| b.len() as u64).sum();
    let world = World::start(hub).await;
    world.server.set_page_size(1000);
    // A little latency per request so each run takes long enough to be killed mid-transfer.
    world.server.set_latency(Duration::from_millis(3));
    let mut dice = Dice::new();

    let mut kills = 0;
    for _ in 0..5 {
        let served = |world: &World| {
            world
                .server
                .stats()
                .requests()
                .iter()
                .filter(|r| matches!(r.route, Route::ResolveGet | Route::CdnGet) && r.status < 300)
                .count()
        };
        let before = served(&world);
        let remaining = files.len().saturating_sub(before);
        if remaining < 100 {
            break;
        }
        // Kill after a random share (5% to 50%) of what is left has been served: at most half
        // goes per run, so at least three runs are always left to kill (2,000 files, a run
        // ends the loop once fewer than 100 are left).
        let target = before + remaining * (5 + dice.below(46) as usize) / 100;
        // A kill loses only the files in flight (responses sent but not yet written to their
        // part), at most `--max-files` of them; verified parts and published blobs are kept.
        let mut child = world
            .cli()
            .args(["pull", "acme/many"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while served(&world) < target {
            assert!(Instant::now() < deadline, "the pull made no progress");
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the pull ended ({status}) before it could be killed");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        assert_store_holds_only_verified_content(&world).await;
    }
    assert!(kills >= 3, "only {kills} runs could be killed");

    world.server.set_latency(Duration::ZERO);
    world.ok(&["pull", "acme/many"]);
    assert_store_holds_only_verified_content(&world).await;
    for (path, bytes) in &files {
        let stored = std::fs::read(world.blob_path(&sha256_hex(bytes)))
            .unwrap_or_else(|e| panic!("{path} is not in the store: {e}"));
        assert!(&stored == bytes, "{path} differs");
    }
    let fetched = world.server.stats().total_bytes();
    let twice = files
        .iter()
        .filter(|(path, bytes)| world.server.stats().bytes_for_path(path) > bytes.len() as u64)
        .count();
    assert!(
        fetched as f64 <= repo_bytes as f64 * 1.1,
        "{kills} kills: fetched {fetched} bytes for a repo of {repo_bytes} ({twice} files more than once)"
    );
    // Nothing is left behind in tmp/: no part, no resume state, no note.
    let leftovers: Vec<_> = std::fs::read_dir(world.tmp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            name.ends_with(".part") || name.ends_with(".state") || name.ends_with(".held")
        })
        .collect();
    assert!(leftovers.is_empty(), "left in tmp/: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_makes_the_pull_back_off_and_it_completes() {
    let hub = Hub::new();
    let files = small_files_repo(&hub, "acme/storm", 1_200);
    let world = World::start(hub).await;
    world.server.set_page_size(1000);
    // With 20 ms per request, the requests in flight at the stand-in are what the client sends
    // at once.
    world.server.set_latency(Duration::from_millis(20));
    let larder = world.larder();
    let mut opts = options("acme/storm", "main");
    opts.transfer.retry.max_retries = 40;
    let pull = tokio::spawn(async move { pull_with(&larder, &opts).await });

    let ok_files = |world: &World| {
        world
            .server
            .stats()
            .requests()
            .iter()
            .filter(|r| r.route == Route::ResolveGet && r.status < 300)
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while ok_files(&world) < 300 {
        assert!(Instant::now() < deadline, "the pull made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let peak_before = world.server.stats().peak_concurrency();

    world
        .server
        .inject(Fault::status(429, None).on(Route::ResolveGet).forever());
    while world.server.stats().count_status(429) < 40 {
        assert!(Instant::now() < deadline, "no 429 was answered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Let the rounds of requests sent before the storm drain, then watch.
    tokio::time::sleep(Duration::from_millis(400)).await;
    world.server.stats().reset_peak_concurrency();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let peak_storm = world.server.stats().peak_concurrency();
    let refused = world.server.stats().count_status(429);
    world.server.faults().clear();

    let (result, recorder) = pull.await.unwrap();
    let summary = result.expect("the pull completes after the storm");
    assert_eq!(summary.files, files.len());
    assert!(
        peak_before >= 16,
        "before the storm the pull had only {peak_before} requests out at once"
    );
    assert!(
        peak_storm <= 4,
        "during the storm the pull still had {peak_storm} requests out at once (before: {peak_before})"
    );
    assert!(
        recorder
            .events()
            .iter()
            .any(|e| matches!(e, larder::fetch::progress::PullEvent::Retrying { .. })),
        "the 429s were retried"
    );
    eprintln!("peak before {peak_before}, during the storm {peak_storm}, {refused} answered 429");
    for bytes in files.values().take(50) {
        assert_eq!(
            &std::fs::read(world.blob_path(&sha256_hex(bytes))).unwrap(),
            bytes
        );
    }
}
