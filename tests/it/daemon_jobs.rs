//! More of the daemon's jobs: conversions (queued, run like `larder convert`, re-queued after a
//! daemon dies), and `larder pull --daemon` following a job with the local progress display.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hub_standin::{Fault, Hub, RepoKind};
use larder::daemon::jobs::JobView;
use larder::registry::{JobState, RepoKind as Kind};
use larder::serve::{RunningMirror, ServeOptions, start};
use serde_json::{Value, json};

use crate::common::{World, content, recorded, sha256_hex, succeeded};
use crate::convert::{tiny_llama, with_files};

pub(crate) async fn daemon(world: &World) -> RunningMirror {
    let larder = world.quick_larder(1);
    let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    options.pull_through = true;
    options.jobs.progress_every = Duration::from_millis(100);
    options.jobs.poll_every = Duration::from_millis(100);
    start(larder, options).await.unwrap()
}

fn cli(world: &World, mirror: &RunningMirror, args: &[&str]) -> Output {
    world
        .cli()
        .env("LARDER_DAEMON", mirror.url())
        .args(args)
        .output()
        .unwrap()
}

pub(crate) async fn job(mirror: &RunningMirror, id: i64) -> JobView {
    reqwest::get(format!("{}/v1/jobs/{id}", mirror.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The job id in `queued job N on ...`, the first line `larder pull --daemon` prints.
pub(crate) fn queued_id(stderr: &str) -> i64 {
    stderr
        .split("queued job ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no job id in {stderr}"))
}

/// `larder pull --daemon URL REPO` running in the background, once it printed its first line
/// (the job is queued and the client follows it).
pub(crate) struct RemotePull {
    pub child: std::process::Child,
    stderr: std::io::BufReader<std::process::ChildStderr>,
    pub first: String,
}

impl RemotePull {
    pub fn start(world: &World, mirror: &RunningMirror, repo: &str) -> RemotePull {
        let mut child = world
            .cli()
            .args(["pull", "--daemon", &mirror.url(), repo])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut first = String::new();
        std::io::BufRead::read_line(&mut stderr, &mut first).unwrap();
        RemotePull {
            child,
            stderr,
            first,
        }
    }

    /// Waits for the client to exit: its status and everything it printed on stderr.
    pub fn finish(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.stderr, &mut rest).unwrap();
        (status, format!("{}{rest}", self.first))
    }
}

pub(crate) async fn wait_final(mirror: &RunningMirror, id: i64) -> JobView {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view = job(mirror, id).await;
        if view.state.is_final() {
            return view;
        }
        assert!(Instant::now() < deadline, "job {id} never ended: {view:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_job_runs_like_larder_convert_and_survives_a_dead_daemon() {
    let model_dir = tempfile::tempdir().unwrap();
    let hub = Hub::new();
    let builder = hub
        .repo(RepoKind::Model, "acme/tiny")
        .card(json!({"license": "apache-2.0"}));
    let source = with_files(builder, &tiny_llama(model_dir.path())).commit("main");
    let world = World::start(hub).await;
    let mirror = daemon(&world).await;

    // Not held yet: the conversion job fails with the reason.
    let added = succeeded(cli(
        &world,
        &mirror,
        &[
            "jobs",
            "add",
            "convert",
            "acme/tiny",
            "--to",
            "gguf",
            "--type",
            "q4_k_m",
            "--json",
        ],
    ));
    let early: Value = serde_json::from_slice(&added.stdout).unwrap();
    let failed = wait_final(&mirror, early["id"].as_i64().unwrap()).await;
    assert_eq!(failed.state, JobState::Failed);
    assert!(failed.error.unwrap().contains("acme/tiny"));

    let pulled: Value = serde_json::from_slice(
        &succeeded(cli(
            &world,
            &mirror,
            &["jobs", "add", "pull", "acme/tiny", "--json"],
        ))
        .stdout,
    )
    .unwrap();
    succeeded(cli(
        &world,
        &mirror,
        &["jobs", "wait", &pulled["id"].to_string()],
    ));

    let added = succeeded(cli(
        &world,
        &mirror,
        &[
            "jobs",
            "add",
            "convert",
            "acme/tiny",
            "--to",
            "gguf",
            "--type",
            "q4_k_m",
            "--json",
        ],
    ));
    let body: Value = serde_json::from_slice(&added.stdout).unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    let id = body["id"].as_i64().unwrap();
    succeeded(cli(&world, &mirror, &["jobs", "wait", &id.to_string()]));
    let done = job(&mirror, id).await;
    assert_eq!(done.kind, "convert");
    assert!(
        done.progress.total > 0 && done.progress.bytes == done.progress.total,
        "{done:?}"
    );
    assert_eq!(done.spec["type"], "q4_k_m");

    let larder = world.larder();
    let (derived, detail) = recorded(&larder, Kind::Model, "acme/tiny-GGUF", "main").await;
    let gguf = detail
        .files
        .iter()
        .find(|f| f.path.ends_with(".gguf"))
        .expect("a GGUF file");
    assert!(
        gguf.held && gguf.path.to_lowercase().contains("q4_k_m"),
        "{gguf:?}"
    );
    let bytes = std::fs::read(world.blob_path(gguf.sha256.as_deref().unwrap())).unwrap();
    assert_eq!(&bytes[..4], b"GGUF");
    let provenance = larder
        .registry
        .derivations_of(Kind::Model, "acme/tiny-GGUF", &derived)
        .await
        .unwrap();
    assert_eq!(provenance[0].source.sha, source);
    mirror.stop().await.unwrap();

    // A daemon killed while converting leaves the job `running`; the next one re-queues and
    // finishes it.
    let spec =
        json!({"repo": "acme/tiny", "revision": "main", "to": "safetensors", "dtype": "f16"});
    let id = larder.registry.add_job("convert", &spec).await.unwrap();
    let claimed = larder.registry.claim_job().await.unwrap().unwrap();
    assert_eq!((claimed.id, claimed.state), (id, JobState::Running));
    let mirror = daemon(&world).await;
    let done = wait_final(&mirror, id).await;
    assert_eq!(done.state, JobState::Done, "{done:?}");
    assert!(
        larder
            .registry
            .resolve(Kind::Model, "acme/tiny-F16", "main")
            .await
            .unwrap()
            .is_some()
    );

    // Bad conversions are refused at submission.
    for bad in [
        json!({"kind": "convert", "repo": "acme/tiny", "to": "gguf"}),
        json!({"kind": "convert", "repo": "acme/tiny", "to": "gguf", "type": "q9_z"}),
        json!({"kind": "convert", "repo": "acme/tiny", "to": "onnx"}),
        json!({"kind": "convert", "repo": "acme/tiny", "to": "safetensors", "dtype": "f16", "type": "q8_0"}),
    ] {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/jobs", mirror.url()))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad}");
    }
    mirror.stop().await.unwrap();
}

fn hub() -> Hub {
    let hub = Hub::new();
    hub.repo(RepoKind::Model, "acme/remote")
        .regular_file("config.json", br#"{"remote":true}"#.to_vec())
        .lfs_file("model.safetensors", content(61, 3 << 20))
        .commit("main");
    hub
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_on_a_daemon_shows_progress_and_exits_with_the_jobs_outcome() {
    let world = World::start(hub()).await;
    let sha = sha256_hex(&content(61, 3 << 20));
    // Slow enough (about 2 s) for the follower to see the file in flight.
    world
        .server
        .inject(Fault::throttle(1536 << 10).sha256(&sha).times(1));
    let mirror = daemon(&world).await;
    // The client needs no home of its own.
    let output = world
        .cli()
        .env("LARDER_HOME", "/nonexistent/larder-home")
        .args(["pull", "--daemon", &mirror.url(), "acme/remote"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("queued job 1"), "{stderr}");
    assert!(stderr.contains("acme/remote@main -> "), "{stderr}");
    assert!(stderr.contains("fetching model.safetensors"), "{stderr}");
    assert!(stderr.contains("verified model.safetensors"), "{stderr}");
    assert!(stderr.contains("pulled acme/remote@"), "{stderr}");
    assert!(world.blob_path(&sha).exists());
    assert!(!std::path::Path::new("/nonexistent/larder-home").exists());

    // JSON lines, through LARDER_DAEMON; the store already holds everything.
    let output = succeeded(
        world
            .cli()
            .env("LARDER_DAEMON", mirror.url())
            .args(["pull", "--json", "acme/remote"])
            .output()
            .unwrap(),
    );
    let events: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(events.first().unwrap()["event"], "resolved", "{events:?}");
    assert_eq!(events.first().unwrap()["fetch_files"], 0);
    assert_eq!(events.last().unwrap()["event"], "done", "{events:?}");

    // A job that fails: non-zero exit with the daemon's reason.
    let output = world
        .cli()
        .args(["pull", "--daemon", &mirror.url(), "acme/missing"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("failed"), "{stderr}");

    // Ctrl-C stops following, not the job.
    world
        .server
        .inject(Fault::throttle(512 << 10).path("big.bin").times(1));
    world
        .server
        .hub()
        .repo(RepoKind::Model, "acme/remote")
        .base("main")
        .lfs_file("big.bin", content(62, 2 << 20))
        .commit("main");
    let remote = RemotePull::start(&world, &mirror, "acme/remote");
    // Once the job is queued the client is following it.
    assert!(remote.first.starts_with("queued job"), "{}", remote.first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The shell's built-in `kill` (no procps needed) sends what Ctrl-C sends.
    let killed = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", remote.child.id())])
        .status()
        .unwrap();
    assert!(killed.success());
    let (status, stderr) = remote.finish();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("keeps running"), "{stderr}");
    let id = queued_id(&stderr);
    let after = job(&mirror, id).await;
    assert!(!after.state.is_final(), "{after:?}");
    assert_eq!(wait_final(&mirror, id).await.state, JobState::Done);
    mirror.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_holds_extra_clients_until_one_closes() {
    let world = World::start(Hub::new()).await;
    let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    options.max_connections = Some(1);
    let mirror = start(world.larder(), options).await.unwrap();
    let health = format!("{}/healthz", mirror.url());
    // Clients that keep no idle connection, so each request opens (and closes) its own.
    let fresh = || {
        reqwest::Client::builder()
            .timeout(Duration::from_millis(600))
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    assert_eq!(fresh().get(&health).send().await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(100)).await;

    // An idle client holds the only slot: the next one waits (here: times out).
    let idle = tokio::net::TcpStream::connect(mirror.addr()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waited = fresh().get(&health).send().await;
    assert!(waited.is_err_and(|e| e.is_timeout()));
    drop(idle);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fresh().get(&health).send().await.unwrap().status(), 200);
    mirror.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_rate_from_config_slows_jobs_and_pull_through() {
    let world = World::start(hub()).await;
    std::fs::write(
        world.home.path().join("config.toml"),
        "[daemon]\nmax_rate = \"1MB/s\"\njob_workers = 1\n",
    )
    .unwrap();
    let config = larder::config::Config::load(world.home.path()).unwrap();
    let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    options.pull_through = true;
    options.jobs.poll_every = Duration::from_millis(50);
    options.jobs.apply_config(&config.daemon).unwrap();
    assert_eq!(options.jobs.workers, 1);
    let mirror = start(world.larder(), options).await.unwrap();
    let started = Instant::now();
    let output = succeeded(cli(
        &world,
        &mirror,
        &["jobs", "add", "pull", "acme/remote", "--json"],
    ));
    let id: Value = serde_json::from_slice(&output.stdout).unwrap();
    let done = wait_final(&mirror, id["id"].as_i64().unwrap()).await;
    assert_eq!(done.state, JobState::Done);
    // 3 MiB at 1 MB/s, less the limiter's burst of a tenth of a second.
    let elapsed = started.elapsed().as_secs_f64();
    assert!(elapsed > 2.8, "{elapsed}");

    // Pull-through shares the same budget.
    world
        .server
        .hub()
        .repo(RepoKind::Model, "acme/through")
        .lfs_file("x.bin", content(63, 2 << 20))
        .commit("main");
    let started = Instant::now();
    let body = reqwest::get(format!("{}/acme/through/resolve/main/x.bin", mirror.url()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.len(), 2 << 20);
    let elapsed = started.elapsed().as_secs_f64();
    assert!(elapsed > 1.8, "{elapsed}");
    mirror.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_on_a_daemon_with_admin_tokens_sends_larder_daemon_token() {
    let world = World::start(hub()).await;
    let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    options.pull_through = true;
    options.jobs.poll_every = Duration::from_millis(50);
    options.access.admin_tokens =
        larder::serve::access::TokenSet::parse(&["ops-admin-token"]).unwrap();
    let mirror = start(world.larder(), options).await.unwrap();
    let refused = world
        .cli()
        .args(["pull", "--daemon", &mirror.url(), "acme/remote"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("admin_tokens"), "{stderr}");
    succeeded(
        world
            .cli()
            .env("LARDER_DAEMON_TOKEN", "ops-admin-token")
            .args(["pull", "--daemon", &mirror.url(), "acme/remote"])
            .output()
            .unwrap(),
    );
    assert!(world.blob_path(&sha256_hex(&content(61, 3 << 20))).exists());
    mirror.stop().await.unwrap();
}
