//! The store quota: least recently *served* unpinned revisions are evicted, pinned ones and
//! blobs shared with kept revisions stay, and gc accounts for exactly what was freed — from
//! `larder gc --quota` and from the daemon's quota keeper.

use std::process::Output;
use std::time::{Duration, Instant};

use hub_standin::{Hub, RepoKind};
use larder::registry::RepoKind as Kind;
use larder::serve::{ServeOptions, start};
use serde_json::Value;

use crate::common::{World, content, options, pull_with, sha256_hex};

const MIB: usize = 1 << 20;

fn hub() -> Hub {
    let hub = Hub::new();
    hub.repo(RepoKind::Model, "acme/a")
        .lfs_file("a.bin", content(51, MIB))
        .commit("main");
    hub.repo(RepoKind::Model, "acme/b")
        .lfs_file("b.bin", content(52, MIB))
        .lfs_file("shared.bin", content(50, MIB / 2))
        .commit("main");
    hub.repo(RepoKind::Model, "acme/c")
        .lfs_file("c.bin", content(53, MIB))
        .lfs_file("shared.bin", content(50, MIB / 2))
        .commit("main");
    hub
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

async fn held(world: &World, repo: &str) -> bool {
    let larder = world.larder();
    let Some(sha) = larder
        .registry
        .resolve(Kind::Model, repo, "main")
        .await
        .unwrap()
    else {
        return false;
    };
    larder
        .registry
        .commit_detail(Kind::Model, repo, &sha)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_evicts_the_least_recently_served_unpinned_revision() {
    let world = World::start(hub()).await;
    let larder = world.larder();
    for repo in ["acme/a", "acme/b", "acme/c"] {
        let (result, _) = pull_with(&larder, &options(repo, "main")).await;
        result.expect("pull");
    }
    world.ok(&["pin", "acme/a"]);
    let unique_c = sha256_hex(&content(53, MIB));
    let shared = sha256_hex(&content(50, MIB / 2));

    // Serve b a second later than every pull: c is now the least recently used unpinned one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut serve = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    serve.served_flush_every = Duration::from_millis(50);
    let mirror = start(world.larder(), serve).await.unwrap();
    let body = reqwest::get(format!("{}/acme/b/resolve/main/b.bin", mirror.url()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.len(), MIB);
    mirror.stop().await.unwrap();
    let listed = json(&world.ok(&["ls", "--json"]));
    let revision = |name: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()["revisions"][0]
            .clone()
    };
    assert!(revision("acme/b")["last_served"].is_i64(), "{listed}");
    assert_eq!(revision("acme/c")["last_served"], Value::Null);
    assert_eq!(revision("acme/a")["pinned"], true);

    // 3.5 MiB referenced; 3 MiB allowed: c goes, its shared blob stays for b.
    let before = larder.registry.referenced_blob_bytes().await.unwrap();
    assert_eq!(before, (3 * MIB + MIB / 2) as u64);
    let quota = (3 * MIB).to_string();
    let report = json(&world.ok(&["gc", "--quota", &quota, "--json"]));
    let evicted: Vec<&str> = report["evicted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(evicted, ["acme/c"], "{report}");
    assert_eq!(report["gc"]["freed"], MIB as u64, "{report}");
    assert_eq!(report["after"], (2 * MIB + MIB / 2) as u64);
    assert_eq!(report["over"], false);
    assert!(!world.blob_path(&unique_c).exists());
    assert!(world.blob_path(&shared).exists());
    assert!(!held(&world, "acme/c").await);
    assert!(held(&world, "acme/a").await && held(&world, "acme/b").await);
    // Nothing is left for a plain gc.
    let gc = json(&world.ok(&["gc", "--json"]));
    assert_eq!(gc["freed"], 0, "{gc}");

    // Over a quota that only the pinned revision fits: the daemon evicts b (and the shared
    // blob with it), keeps the pinned a.
    let mut serve = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    serve.pull_through = true;
    serve.jobs.quota = Some((MIB + MIB / 4) as u64);
    serve.jobs.quota_every = Duration::from_millis(100);
    let mirror = start(world.larder(), serve).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while held(&world, "acme/b").await {
        assert!(Instant::now() < deadline, "the daemon never evicted acme/b");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while world.blob_path(&shared).exists() {
        assert!(
            Instant::now() < deadline,
            "the shared blob was never collected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let scrape = reqwest::get(format!("{}/metrics", mirror.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let quota_line = format!("larder_store_quota_bytes {}", MIB + MIB / 4);
    assert!(scrape.lines().any(|l| l == quota_line), "{scrape}");
    mirror.stop().await.unwrap();
    assert!(held(&world, "acme/a").await);
    assert!(world.blob_path(&sha256_hex(&content(51, MIB))).exists());
    assert_eq!(
        larder.registry.referenced_blob_bytes().await.unwrap(),
        MIB as u64
    );

    // Below what is pinned: nothing can go, and the report says the store is still over.
    let report = json(&world.ok(&["gc", "--quota", "1000", "--json"]));
    assert_eq!(report["evicted"], Value::Array(Vec::new()), "{report}");
    assert_eq!(report["over"], true);
    assert!(held(&world, "acme/a").await);
    // Unpinned, it goes.
    world.ok(&["unpin", "acme/a"]);
    let report = json(&world.ok(&["gc", "--quota", "1000", "--json"]));
    assert_eq!(report["evicted"][0]["name"], "acme/a", "{report}");
    assert_eq!(report["gc"]["freed"], MIB as u64);
    assert!(!held(&world, "acme/a").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_needs_a_held_revision() {
    let world = World::start(hub()).await;
    let output = world.cli().args(["pin", "acme/a"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not held"), "{stderr}");
    let output = world
        .cli()
        .args(["gc", "--quota", "2 parsecs"])
        .output()
        .unwrap();
    assert!(!output.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_waits_for_running_pulls_and_keeps_what_queued_jobs_name() {
    let world = World::start(hub()).await;
    let larder = world.larder();
    for repo in ["acme/a", "acme/b"] {
        let (result, _) = pull_with(&larder, &options(repo, "main")).await;
        result.expect("pull");
    }
    // A queued job names acme/a (no worker runs it), and a pull holds the store.
    let spec = serde_json::json!({"repo": "acme/a", "revision": "main", "type": "model"});
    larder.registry.add_job("pull", &spec).await.unwrap();
    let guard = larder.local.gc_guard().await.unwrap();

    let mut serve = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    serve.pull_through = true;
    serve.jobs.workers = 0;
    serve.jobs.quota = Some(1000);
    serve.jobs.quota_every = Duration::from_millis(100);
    let mirror = start(world.larder(), serve).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        held(&world, "acme/b").await,
        "evicted while a pull held the store"
    );

    drop(guard);
    let deadline = Instant::now() + Duration::from_secs(20);
    while held(&world, "acme/b").await {
        assert!(Instant::now() < deadline, "acme/b was never evicted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        held(&world, "acme/a").await,
        "the queued job's repo was evicted"
    );
    mirror.stop().await.unwrap();
}
