//! Tracking through the daemon: `larder track` a ref, the scheduler pulls its commits as the
//! stand-in Hub moves it, flags a licence change, POSTs events to a webhook from `config.toml`,
//! and `larder ls` shows when it was checked and whether it is behind.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use hub_standin::{Hub, RepoKind};
use larder::registry::RepoKind as Kind;
use larder::serve::{RunningMirror, ServeOptions, start};
use serde_json::{Value, json};

use crate::common::{World, content};

pub(crate) type Events = Arc<Mutex<Vec<Value>>>;

/// A tiny webhook receiver: keeps every JSON body POSTed to `/hook`.
pub(crate) async fn receiver() -> (String, Events) {
    let events: Events = Arc::default();
    async fn hook(State(events): State<Events>, axum::Json(body): axum::Json<Value>) {
        events.lock().unwrap().push(body);
    }
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(events.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), events)
}

/// A mirror configured from the home's `config.toml` like `larder serve`, checking often.
async fn mirror(world: &World, workers: usize) -> RunningMirror {
    let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    options.pull_through = true;
    let config = larder::config::Config::load(world.home.path()).expect("config");
    options.jobs.apply_config(&config.daemon).expect("[daemon]");
    options.jobs.workers = workers;
    options.jobs.poll_every = Duration::from_millis(100);
    options.jobs.track_every = Duration::from_millis(100);
    start(world.larder(), options).await.expect("mirror starts")
}

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ls_tracking(world: &World) -> Value {
    let output = world.ok(&["ls", "--json"]);
    let repos: Value = serde_json::from_slice(&output.stdout).expect("ls --json");
    let repo = repos
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "acme/tracked")
        .cloned()
        .unwrap_or_else(|| panic!("acme/tracked not listed: {repos}"));
    repo["tracking"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracked_ref_follows_new_commits_flags_the_licence_and_calls_the_webhook() {
    let hub = Hub::new();
    let first = hub
        .repo(RepoKind::Model, "acme/tracked")
        .card(json!({ "license": "apache-2.0" }))
        .regular_file("config.json", br#"{"v":1}"#.to_vec())
        .lfs_file("model.safetensors", content(41, 1 << 20))
        .commit("main");
    let world = World::start(hub.clone()).await;
    let (url, events) = receiver().await;
    std::fs::write(
        world.home.path().join("config.toml"),
        format!("[daemon]\nwebhook = \"{url}\"\n"),
    )
    .unwrap();

    // Tracked before anything is held: listed, not checked yet.
    world.ok(&["track", "acme/tracked", "--every", "1s"]);
    let tracking = ls_tracking(&world);
    assert_eq!(tracking["ref"], "main");
    assert_eq!(tracking["every"], 1);
    assert_eq!(tracking["last_checked"], Value::Null, "{tracking}");

    let larder = world.larder();
    let mirror = mirror(&world, 1).await;
    eventually("the first commit to be pulled", async || {
        let held = larder
            .registry
            .resolve(Kind::Model, "acme/tracked", "main")
            .await
            .unwrap();
        (held.as_deref() == Some(first.as_str())).then_some(())
    })
    .await;
    let event = eventually("the first event", async || {
        events.lock().unwrap().first().cloned()
    })
    .await;
    assert_eq!(event["repo"], "acme/tracked");
    assert_eq!(event["ref"], "main");
    assert_eq!(event["old_commit"], Value::Null);
    assert_eq!(event["new_commit"], first.as_str());
    assert_eq!(event["licence_changed"], false);

    // A new commit upstream, relicensed.
    let second = hub
        .repo(RepoKind::Model, "acme/tracked")
        .base("main")
        .card(json!({ "license": "mit" }))
        .regular_file("config.json", br#"{"v":2}"#.to_vec())
        .commit("main");
    let event = eventually("the second event", async || {
        events.lock().unwrap().get(1).cloned()
    })
    .await;
    assert_eq!(event["old_commit"], first.as_str(), "{event}");
    assert_eq!(event["new_commit"], second.as_str(), "{event}");
    assert_eq!(event["licence_before"], "apache-2.0", "{event}");
    assert_eq!(event["licence_after"], "mit", "{event}");
    assert_eq!(event["licence_changed"], true, "{event}");
    assert_eq!(
        larder
            .registry
            .resolve(Kind::Model, "acme/tracked", "main")
            .await
            .unwrap()
            .as_deref(),
        Some(second.as_str())
    );
    let flagged: Vec<_> = larder
        .registry
        .audit_log(Some("model:acme/tracked"))
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "licence_changed")
        .collect();
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    let detail = flagged[0].detail.clone().unwrap();
    assert_eq!(detail["before"], "apache-2.0");
    assert_eq!(detail["after"], "mit");

    // Nothing new upstream: checks go on, no more pulls or events.
    let checked = ls_tracking(&world)["last_checked"]
        .as_i64()
        .expect("checked");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let tracking = ls_tracking(&world);
    assert!(
        tracking["last_checked"].as_i64().unwrap() > checked,
        "{tracking}"
    );
    assert_eq!(tracking["behind"], false, "{tracking}");
    assert_eq!(tracking["local_commit"], second.as_str());
    assert_eq!(events.lock().unwrap().len(), 2);
    mirror.stop().await.unwrap();

    // A daemon that runs no jobs sees the next commit but cannot pull it: behind.
    let third = hub
        .repo(RepoKind::Model, "acme/tracked")
        .base("main")
        .regular_file("config.json", br#"{"v":3}"#.to_vec())
        .commit("main");
    let idle = mirror_idle(&world).await;
    let tracking = eventually("a check that finds the third commit", async || {
        let tracking = ls_tracking(&world);
        (tracking["upstream_commit"] == third.as_str()).then_some(tracking)
    })
    .await;
    assert_eq!(tracking["behind"], true, "{tracking}");
    assert_eq!(tracking["local_commit"], second.as_str());
    assert!(tracking["pending_job"].is_i64(), "{tracking}");
    let table = String::from_utf8(world.ok(&["ls"]).stdout).unwrap();
    assert!(table.contains("behind: upstream at"), "{table}");
    idle.stop().await.unwrap();

    world.ok(&["untrack", "acme/tracked"]);
    let output = world
        .cli()
        .args(["untrack", "acme/tracked"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(larder.registry.tracked().await.unwrap().is_empty());
}

async fn mirror_idle(world: &World) -> RunningMirror {
    mirror(world, 0).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn track_refuses_bad_intervals_commits_and_config() {
    let world = World::start(Hub::new()).await;
    for args in [
        vec!["track", "acme/x", "--every", "0s"],
        vec!["track", "acme/x", "--every", "soon"],
        vec!["track", &format!("acme/x@{}", "a".repeat(40))],
    ] {
        let output = world.cli().args(&args).output().unwrap();
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(!output.stderr.is_empty());
    }
    std::fs::write(
        world.home.path().join("config.toml"),
        "[daemon]\nwebhook = \"ftp://example.invalid/\"\n",
    )
    .unwrap();
    let config = larder::config::Config::load(world.home.path()).unwrap();
    let error = larder::daemon::DaemonOptions::default()
        .apply_config(&config.daemon)
        .unwrap_err();
    assert_eq!(error.key, "daemon.webhook");
    std::fs::write(
        world.home.path().join("config.toml"),
        "[daemon]\nquota = \"2 parsecs\"\n",
    )
    .unwrap();
    let config = larder::config::Config::load(world.home.path()).unwrap();
    let error = larder::daemon::DaemonOptions::default()
        .apply_config(&config.daemon)
        .unwrap_err();
    assert_eq!(error.key, "daemon.quota");
    // `larder serve` refuses to start on it, naming the key.
    let output = world
        .cli()
        .args(["serve", "--addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("daemon.quota"), "{stderr}");
    std::fs::write(
        world.home.path().join("config.toml"),
        "[daemon]\nquota_size = \"2TB\"\n",
    )
    .unwrap();
    assert!(larder::config::Config::load(world.home.path()).is_err());
}
