//! The daemon's job queue, management API and observability, against the stand-in Hub:
//! pull jobs run to completion, cancel, survive a restart; `/metrics` and `/healthz`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use hub_standin::{Fault, Hub, RepoKind};
use larder::daemon::jobs::JobView;
use larder::registry::JobState;
use larder::serve::{RunningMirror, ServeOptions, start};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{World, content, read, sha256_hex};

const BIG: usize = 24 << 20;

fn hub() -> Hub {
    let hub = Hub::new();
    hub.repo(RepoKind::Model, "acme/job")
        .regular_file("config.json", br#"{"job":true}"#.to_vec())
        .lfs_file("model.safetensors", content(31, 2 << 20))
        .commit("main");
    hub.repo(RepoKind::Model, "acme/slow")
        .lfs_file("model.safetensors", content(32, BIG))
        .commit("main");
    hub
}

async fn daemon_mirror(world: &World) -> RunningMirror {
    daemon_mirror_reporting_every(world, Duration::from_millis(100)).await
}

async fn daemon_mirror_reporting_every(world: &World, progress_every: Duration) -> RunningMirror {
    let larder = world.quick_larder(2);
    let mut options = ServeOptions::new("127.0.0.1:0".parse().expect("addr"));
    options.pull_through = true;
    options.jobs.progress_every = progress_every;
    options.jobs.poll_every = Duration::from_millis(200);
    start(larder, options).await.expect("mirror starts")
}

async fn submit(mirror: &RunningMirror, body: Value) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/jobs", mirror.url()))
        .json(&body)
        .send()
        .await
        .expect("POST /v1/jobs");
    let status = response.status();
    (status, response.json().await.expect("JSON body"))
}

async fn job(mirror: &RunningMirror, id: i64) -> JobView {
    let response = reqwest::get(format!("{}/v1/jobs/{id}", mirror.url()))
        .await
        .expect("GET job");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("job JSON")
}

/// Poll until `done(job)` or the deadline; returns the last view.
async fn wait_for(mirror: &RunningMirror, id: i64, done: impl Fn(&JobView) -> bool) -> JobView {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view = job(mirror, id).await;
        if done(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "job never got there: {view:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pull_spec(repo: &str) -> Value {
    json!({"kind": "pull", "repo": repo, "revision": "main", "type": "model"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pull_job_runs_to_done_and_fills_the_store() {
    let world = World::start(hub()).await;
    let mirror = daemon_mirror(&world).await;

    let (status, body) = submit(&mirror, pull_spec("acme/job")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_i64().expect("id");
    let done = wait_for(&mirror, id, |j| j.state.is_final()).await;
    assert_eq!(done.state, JobState::Done, "{done:?}");
    assert_eq!(done.kind, "pull");
    assert_eq!(done.error, None);
    let total = (2u64 << 20) + br#"{"job":true}"#.len() as u64;
    assert_eq!((done.progress.bytes, done.progress.total), (total, total));
    let sha = sha256_hex(&content(31, 2 << 20));
    assert_eq!(read(&world.blob_path(&sha)), content(31, 2 << 20));

    // The mirror now serves what the job pulled.
    let served = reqwest::get(format!(
        "{}/acme/job/resolve/main/config.json",
        mirror.url()
    ))
    .await
    .expect("resolve");
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(
        served.bytes().await.expect("body").as_ref(),
        br#"{"job":true}"#
    );

    let list: Vec<JobView> = reqwest::get(format!("{}/v1/jobs", mirror.url()))
        .await
        .expect("list")
        .json()
        .await
        .expect("list JSON");
    assert_eq!(list.iter().map(|j| j.id).collect::<Vec<_>>(), vec![id]);

    // Refused submissions, unknown and malformed ids.
    for bad in [
        json!({"kind": "pull", "repo": "../etc"}),
        json!({"kind": "convert", "repo": "acme/job"}),
        json!({"repo": "acme/job"}),
        json!({"kind": "pull", "repo": "acme/job", "type": "space"}),
    ] {
        let (status, body) = submit(&mirror, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} -> {body}");
        assert!(body["error"].is_string(), "{body}");
    }
    let client = reqwest::Client::new();
    for (path, expected) in [
        ("/v1/jobs/999", StatusCode::NOT_FOUND),
        ("/v1/jobs/abc", StatusCode::BAD_REQUEST),
    ] {
        let response = client
            .get(format!("{}{path}", mirror.url()))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), expected, "{path}");
    }
    // Cancelling a finished job changes nothing.
    let response = client
        .delete(format!("{}/v1/jobs/{id}", mirror.url()))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(job(&mirror, id).await.state, JobState::Done);
    mirror.stop().await.expect("stops");
}

/// Wait until no job transfers a file.
async fn until_no_transfer(mirror: &RunningMirror) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while active_transfers(mirror).await != 0.0 {
        assert!(Instant::now() < deadline, "the transfer was not dropped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn parts(world: &World) -> Vec<String> {
    std::fs::read_dir(world.tmp_dir())
        .expect("tmp dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".part"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_aborts_a_running_pull_and_keeps_its_part() {
    let world = World::start(hub()).await;
    let sha = sha256_hex(&content(32, BIG));
    world
        .server
        .inject(Fault::throttle(512 << 10).sha256(&sha).forever());
    // Progress is written once a minute here, so only the API's own cancellation can stop the
    // pull in time.
    let mirror = daemon_mirror_reporting_every(&world, Duration::from_secs(60)).await;
    let (status, body) = submit(&mirror, pull_spec("acme/slow")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_i64().expect("id");
    let deadline = Instant::now() + Duration::from_secs(30);
    while active_transfers(&mirror).await != 1.0 {
        assert!(Instant::now() < deadline, "the transfer never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(job(&mirror, id).await.state, JobState::Running);
    // Cancel between two checkpoints (every second), where dropping the pull would lose most.
    let state = world.tmp_dir().join(format!("{sha}.state"));
    while crate::interrupt::recorded(&state).is_none_or(|kept| kept < 2 << 20) {
        assert!(Instant::now() < deadline, "nothing was recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;

    let response = reqwest::Client::new()
        .delete(format!("{}/v1/jobs/{id}", mirror.url()))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status(), StatusCode::OK);
    let body: JobView = response.json().await.expect("JSON");
    assert_eq!(body.state, JobState::Cancelled);

    // The pull is gone: no transfer in flight, nothing published, the state stays cancelled,
    // and the part is kept for a later pull with everything that landed recorded (the pull
    // saw the cancellation and wrote its checkpoint; only what was in flight is lost).
    until_no_transfer(&mirror).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(job(&mirror, id).await.state, JobState::Cancelled);
    assert!(!world.blob_path(&sha).exists());
    assert!(!parts(&world).is_empty(), "the part was removed");
    let kept = crate::interrupt::recorded(&state).expect("the part's state is kept");
    let served = world.server.stats().bytes_for_sha256(&sha);
    assert!(
        served <= kept + (256 << 10),
        "served {served} bytes but only {kept} were kept"
    );
    mirror.stop().await.expect("stops");

    // Cancelled by another process (straight in the registry): the worker notices when it
    // next records progress. The pull resumed from the part, so progress starts above zero.
    let mirror = daemon_mirror(&world).await;
    let (_, body) = submit(&mirror, pull_spec("acme/slow")).await;
    let id = body["id"].as_i64().expect("id");
    let running = wait_for(&mirror, id, |j| {
        j.state == JobState::Running && j.progress.bytes > 0 || j.state.is_final()
    })
    .await;
    assert_eq!(running.state, JobState::Running, "{running:?}");
    assert_eq!(running.progress.total, BIG as u64);
    assert!(running.progress.bytes < BIG as u64);
    let cancelled = world
        .larder()
        .registry
        .cancel_job(id)
        .await
        .expect("cancel");
    assert_eq!(cancelled.map(|j| j.state), Some(JobState::Cancelled));
    until_no_transfer(&mirror).await;
    assert!(!world.blob_path(&sha).exists());
    mirror.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_left_running_is_requeued_and_completes_after_restart() {
    let world = World::start(hub()).await;
    // A daemon claimed the job and died before finishing it.
    let registry = world.larder().registry;
    let id = registry
        .add_job(
            "pull",
            &json!({"repo": "acme/job", "revision": "main", "type": "model"}),
        )
        .await
        .expect("add");
    let claimed = registry.claim_job().await.expect("claim").expect("a job");
    assert_eq!((claimed.id, claimed.state), (id, JobState::Running));
    assert_eq!(registry.claim_job().await.expect("claim"), None);

    let mirror = daemon_mirror(&world).await;
    let done = wait_for(&mirror, id, |j| j.state.is_final()).await;
    assert_eq!(done.state, JobState::Done, "{done:?}");
    let sha = sha256_hex(&content(31, 2 << 20));
    assert!(world.blob_path(&sha).exists());
    mirror.stop().await.expect("stops");
}

/// Parse Prometheus text: every sample line is `name{labels} value` or `name value`, and each
/// sample's family has a `# TYPE` line before it. Returns `name{labels}` -> value.
pub(crate) fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut typed = BTreeSet::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split(' ');
            let name = words.next().expect("TYPE name");
            let kind = words.next().expect("TYPE kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            typed.insert(name.to_owned());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').expect("labels close");
                for pair in labels.split(',') {
                    let (key, quoted) = pair.split_once('=').expect("label=value");
                    assert!(
                        key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "{line}"
                    );
                    assert!(
                        quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"'),
                        "{line}"
                    );
                }
                name
            }
            None => series,
        };
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        assert!(typed.contains(name), "no # TYPE before {line}");
        samples.insert(series.to_owned(), value);
    }
    samples
}

async fn scrape(mirror: &RunningMirror) -> BTreeMap<String, f64> {
    let response = reqwest::get(format!("{}/metrics", mirror.url()))
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    parse_metrics(&response.text().await.expect("text"))
}

async fn active_transfers(mirror: &RunningMirror) -> f64 {
    scrape(mirror).await["larder_active_transfers"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_parse_and_move_and_healthz_answers() {
    let world = World::start(hub()).await;
    let mirror = daemon_mirror(&world).await;

    let health = reqwest::get(format!("{}/healthz", mirror.url()))
        .await
        .expect("healthz");
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.text().await.expect("text"), "ok");

    let before = scrape(&mirror).await;
    for series in [
        "larder_served_bytes_total{repo_type=\"model\"}",
        "larder_served_bytes_total{repo_type=\"dataset\"}",
        "larder_http_requests_total{status=\"2xx\"}",
        "larder_http_requests_total{status=\"4xx\"}",
        "larder_jobs{state=\"queued\"}",
        "larder_jobs{state=\"done\"}",
        "larder_store_bytes",
        "larder_active_transfers",
    ] {
        assert!(before.contains_key(series), "{series} missing: {before:?}");
    }
    assert_eq!(before["larder_store_bytes"], 0.0);
    assert_eq!(before["larder_jobs{state=\"done\"}"], 0.0);

    let (_, body) = submit(&mirror, pull_spec("acme/job")).await;
    let id = body["id"].as_i64().expect("id");
    assert_eq!(
        wait_for(&mirror, id, |j| j.state.is_final()).await.state,
        JobState::Done
    );
    let weights = reqwest::get(format!(
        "{}/acme/job/resolve/main/model.safetensors",
        mirror.url()
    ))
    .await
    .expect("resolve");
    assert_eq!(weights.status(), StatusCode::OK);
    assert_eq!(weights.bytes().await.expect("body").len(), 2 << 20);
    let missing = reqwest::get(format!("{}/acme/nope/resolve/main/x", mirror.url()))
        .await
        .expect("resolve");
    assert!(missing.status().is_client_error());

    let after = scrape(&mirror).await;
    let delta = |series: &str| after[series] - before[series];
    assert!(delta("larder_served_bytes_total{repo_type=\"model\"}") >= (2 << 20) as f64);
    assert_eq!(
        delta("larder_served_bytes_total{repo_type=\"dataset\"}"),
        0.0
    );
    assert!(delta("larder_http_requests_total{status=\"2xx\"}") >= 3.0);
    assert!(delta("larder_http_requests_total{status=\"4xx\"}") >= 1.0);
    assert_eq!(after["larder_jobs{state=\"done\"}"], 1.0);
    assert_eq!(
        after["larder_store_bytes"],
        ((2u64 << 20) + br#"{"job":true}"#.len() as u64) as f64
    );
    assert_eq!(after["larder_active_transfers"], 0.0);
    mirror.stop().await.expect("stops");
}

async fn jobs_cli(world: &World, mirror: &RunningMirror, args: &[&str]) -> std::process::Output {
    let mut command = world.cli();
    command
        .env("LARDER_DAEMON", mirror.url())
        .arg("jobs")
        .args(args);
    tokio::task::spawn_blocking(move || command.output().expect("larder runs"))
        .await
        .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_cli_adds_waits_shows_lists_and_cancels() {
    let world = World::start(hub()).await;
    let sha = sha256_hex(&content(32, BIG));
    world
        .server
        .inject(Fault::throttle(512 << 10).sha256(&sha).forever());
    let mirror = daemon_mirror(&world).await;

    let added = jobs_cli(
        &world,
        &mirror,
        &[
            "add",
            "pull",
            "acme/job@main",
            "--include",
            "*.json",
            "--json",
        ],
    )
    .await;
    assert!(added.status.success(), "{added:?}");
    let id = serde_json::from_slice::<Value>(&added.stdout).expect("JSON")["id"]
        .as_i64()
        .expect("id");

    let waited = jobs_cli(&world, &mirror, &["wait", &id.to_string()]).await;
    assert!(waited.status.success(), "{waited:?}");
    let shown = jobs_cli(&world, &mirror, &["show", &id.to_string(), "--json"]).await;
    let view: JobView = serde_json::from_slice(&shown.stdout).expect("job JSON");
    assert_eq!(view.state, JobState::Done);
    // Only config.json was selected.
    let config = br#"{"job":true}"#.len() as u64;
    assert_eq!((view.progress.bytes, view.progress.total), (config, config));
    assert!(!world.blob_path(&sha256_hex(&content(31, 2 << 20))).exists());

    let slow = jobs_cli(&world, &mirror, &["add", "pull", "acme/slow", "--json"]).await;
    assert!(slow.status.success(), "{slow:?}");
    let slow_id = serde_json::from_slice::<Value>(&slow.stdout).expect("JSON")["id"]
        .as_i64()
        .expect("id");
    let cancelled = jobs_cli(&world, &mirror, &["cancel", &slow_id.to_string()]).await;
    assert!(cancelled.status.success(), "{cancelled:?}");
    assert_eq!(
        String::from_utf8_lossy(&cancelled.stdout).trim(),
        format!("job {slow_id}: cancelled")
    );
    let waited = jobs_cli(&world, &mirror, &["wait", &slow_id.to_string()]).await;
    assert!(
        !waited.status.success(),
        "waiting on a cancelled job succeeded"
    );

    let listed = jobs_cli(&world, &mirror, &["ls"]).await;
    assert!(listed.status.success(), "{listed:?}");
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(
        table.contains("acme/job@main") && table.contains("done"),
        "{table}"
    );
    assert!(
        table.contains("acme/slow@main") && table.contains("cancelled"),
        "{table}"
    );

    let missing = jobs_cli(&world, &mirror, &["show", "999"]).await;
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("404"),
        "{missing:?}"
    );
    mirror.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_obeys_the_homes_licence_policy() {
    let world = World::start(hub()).await;
    std::fs::write(
        world.home.path().join("config.toml"),
        "[policy]\ndeny = [\"unknown\"]\n",
    )
    .expect("config.toml");
    let mirror = daemon_mirror(&world).await;
    let (status, body) = submit(&mirror, pull_spec("acme/job")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_i64().expect("id");
    let failed = wait_for(&mirror, id, |j| j.state.is_final()).await;
    assert_eq!(failed.state, JobState::Failed, "{failed:?}");
    let error = failed.error.unwrap_or_default();
    assert!(error.contains("deny: unknown"), "{error}");
    assert!(!world.blob_path(&sha256_hex(&content(31, 2 << 20))).exists());
    mirror.stop().await.expect("stops");
}
