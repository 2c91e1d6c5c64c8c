//! `/metrics` moves as the issue asks: bytes served and fetched upstream by repo type, cache
//! hits and misses of pull-through, errors by kind (Hub error codes, upstream and verification
//! failures), jobs' upstream bytes, active transfers and store size. Every scrape is parsed as
//! Prometheus text by the strict parser of `daemon.rs`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hub_standin::{Fault, Hub, RepoKind, Route};
use larder::daemon::jobs::JobView;
use larder::registry::JobState;
use larder::serve::{RunningMirror, ServeOptions, start};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{World, content, sha256_hex};
use crate::daemon::parse_metrics;

const WEIGHTS: usize = 1 << 20;
const BAD: usize = 300_000;

fn hub() -> Hub {
    let hub = Hub::new();
    hub.repo(RepoKind::Model, "acme/tiny")
        .regular_file("config.json", br#"{"tiny":true}"#.to_vec())
        .lfs_file("model.safetensors", content(51, WEIGHTS))
        .lfs_file("bad.bin", content(52, BAD))
        .commit("main");
    hub.repo(RepoKind::Dataset, "acme/data")
        .regular_file("train.csv", b"a,b\n1,2\n".to_vec())
        .commit("main");
    hub.repo(RepoKind::Model, "acme/job")
        .lfs_file("model.safetensors", content(53, 2 * WEIGHTS))
        .commit("main");
    hub
}

async fn mirror(world: &World) -> RunningMirror {
    let larder = world.quick_larder(1);
    let mut options = ServeOptions::new("127.0.0.1:0".parse().expect("addr"));
    options.pull_through = true;
    options.jobs.progress_every = Duration::from_millis(100);
    options.jobs.poll_every = Duration::from_millis(100);
    start(larder, options).await.expect("mirror starts")
}

async fn scrape(mirror: &RunningMirror) -> BTreeMap<String, f64> {
    let response = reqwest::get(format!("{}/metrics", mirror.url()))
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), StatusCode::OK);
    parse_metrics(&response.text().await.expect("text"))
}

async fn get(url: String) -> (StatusCode, Option<usize>) {
    let response = reqwest::get(url).await.expect("GET");
    let status = response.status();
    (status, response.bytes().await.ok().map(|b| b.len()))
}

/// Wait until no pull-through transfer is running.
async fn settle(mirror: &RunningMirror) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while scrape(mirror).await["larder_active_transfers"] != 0.0 {
        assert!(Instant::now() < deadline, "a transfer never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_hits_misses_upstream_bytes_and_errors_by_kind() {
    let world = World::start(hub()).await;
    let mirror = mirror(&world).await;
    let base = mirror.url();
    let before = scrape(&mirror).await;
    for series in [
        "larder_upstream_bytes_total{repo_type=\"model\",source=\"pull_through\"}",
        "larder_upstream_bytes_total{repo_type=\"dataset\",source=\"job\"}",
        "larder_cache_hits_total{repo_type=\"model\"}",
        "larder_cache_misses_total{repo_type=\"dataset\"}",
        "larder_errors_total{kind=\"RepoNotFound\"}",
        "larder_errors_total{kind=\"EntryNotFound\"}",
        "larder_errors_total{kind=\"VerificationFailed\"}",
        "larder_errors_total{kind=\"UpstreamLookupFailed\"}",
        "larder_active_transfers",
        "larder_store_bytes",
    ] {
        assert_eq!(before.get(series), Some(&0.0), "{series}: {before:?}");
    }

    // A miss (fetched through from the upstream), then a hit (from the store). A client has
    // every byte once they are verified, a moment before the blob is published: until then
    // a second request joins the transfer (a miss), so wait for it to end.
    let weights = format!("{base}/acme/tiny/resolve/main/model.safetensors");
    assert_eq!(get(weights.clone()).await, (StatusCode::OK, Some(WEIGHTS)));
    settle(&mirror).await;
    assert_eq!(get(weights).await, (StatusCode::OK, Some(WEIGHTS)));
    // The same for a dataset.
    let csv = format!("{base}/datasets/acme/data/resolve/main/train.csv");
    assert_eq!(get(csv.clone()).await, (StatusCode::OK, Some(8)));
    settle(&mirror).await;
    assert_eq!(get(csv).await, (StatusCode::OK, Some(8)));
    // Errors: an unknown path, an unknown repo.
    let (status, _) = get(format!("{base}/acme/tiny/resolve/main/nope.bin")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(format!("{base}/acme/ghost/resolve/main/x.bin")).await;
    assert!(status.is_client_error(), "{status}");
    // Content that fails verification upstream: the client gets no complete file.
    world
        .server
        .inject(Fault::flip_byte(1000).path("bad.bin").forever());
    // (The connection may be reset before the status line is out: no answer at all.)
    if let Ok(response) = reqwest::get(format!("{base}/acme/tiny/resolve/main/bad.bin")).await {
        let status = response.status();
        let body = response.bytes().await.ok().map(|b| b.len());
        assert!(
            body != Some(BAD) || status != StatusCode::OK,
            "a corrupt file was delivered: {status}"
        );
    }
    // The upstream's API fails: the lookup of a repo the store lacks fails, and the answer
    // says the upstream failed (502), not that the repo does not exist.
    world.server.faults().clear();
    world
        .server
        .inject(Fault::status(500, None).on(Route::Api).forever());
    let (status, _) = get(format!("{base}/acme/nowhere/resolve/main/x.bin")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    world.server.faults().clear();

    // A job's bytes count as the job's.
    let submitted: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/v1/jobs"))
        .json(&json!({"kind": "pull", "repo": "acme/job"}))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    let id = submitted["id"].as_i64().expect("id");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view: JobView = reqwest::get(format!("{base}/v1/jobs/{id}"))
            .await
            .expect("GET job")
            .json()
            .await
            .expect("job");
        if view.state.is_final() {
            assert_eq!(view.state, JobState::Done, "{view:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the job did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The verification failure is counted when the transfer task ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let after = scrape(&mirror).await;
        if after["larder_errors_total{kind=\"VerificationFailed\"}"] >= 1.0
            && after["larder_active_transfers"] == 0.0
        {
            break after;
        }
        assert!(
            Instant::now() < deadline,
            "no verification failure counted: {after:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let delta = |series: &str| {
        after
            .get(series)
            .unwrap_or_else(|| panic!("{series} missing"))
            - before[series]
    };
    assert_eq!(delta("larder_cache_misses_total{repo_type=\"model\"}"), 2.0); // weights, bad.bin
    assert_eq!(delta("larder_cache_hits_total{repo_type=\"model\"}"), 1.0);
    assert_eq!(
        delta("larder_cache_misses_total{repo_type=\"dataset\"}"),
        1.0
    );
    assert_eq!(delta("larder_cache_hits_total{repo_type=\"dataset\"}"), 1.0);
    let pulled_through =
        delta("larder_upstream_bytes_total{repo_type=\"model\",source=\"pull_through\"}");
    assert!(pulled_through >= WEIGHTS as f64, "{pulled_through}");
    assert!(pulled_through <= (WEIGHTS + BAD) as f64, "{pulled_through}");
    assert_eq!(
        delta("larder_upstream_bytes_total{repo_type=\"dataset\",source=\"pull_through\"}"),
        8.0
    );
    assert_eq!(
        delta("larder_upstream_bytes_total{repo_type=\"model\",source=\"job\"}"),
        (2 * WEIGHTS) as f64
    );
    assert!(delta("larder_served_bytes_total{repo_type=\"model\"}") >= (2 * WEIGHTS) as f64);
    assert!(delta("larder_served_bytes_total{repo_type=\"dataset\"}") >= 16.0);
    assert_eq!(delta("larder_errors_total{kind=\"EntryNotFound\"}"), 1.0);
    assert_eq!(delta("larder_errors_total{kind=\"RepoNotFound\"}"), 1.0);
    assert_eq!(delta("larder_errors_total{kind=\"UpstreamError\"}"), 1.0);
    assert!(delta("larder_errors_total{kind=\"UpstreamLookupFailed\"}") >= 1.0);
    assert_eq!(
        delta("larder_errors_total{kind=\"VerificationFailed\"}"),
        1.0
    );
    assert_eq!(delta("larder_errors_total{kind=\"InternalError\"}"), 0.0);
    assert_eq!(after["larder_jobs{state=\"done\"}"], 1.0);
    let held = WEIGHTS + 8 + 2 * WEIGHTS;
    assert_eq!(after["larder_store_bytes"], held as f64);
    assert!(!world.blob_path(&sha256_hex(&content(52, BAD))).exists());
    mirror.stop().await.expect("stops");
}
