//! Why a daemon job failed: the kind recorded with it (`error_kind` in the jobs API) and the
//! exit status of `larder pull --daemon` and `larder jobs wait`, which must match what a local
//! `larder pull` exits with for the same failure.

use std::process::Output;

use hub_standin::{Fault, Hub, RepoKind};
use larder::registry::JobState;
use larder::serve::RunningMirror;
use serde_json::{Value, json};

use crate::common::{World, content, sha256_hex};
use crate::daemon_jobs::{RemotePull, daemon, queued_id, wait_final};

fn hub() -> Hub {
    let hub = Hub::new();
    hub.repo(RepoKind::Model, "acme/nc")
        .card(json!({ "license": "cc-by-nc-4.0" }))
        .regular_file("config.json", b"{}".to_vec())
        .lfs_file("model.safetensors", content(71, 1 << 20))
        .commit("main");
    hub.repo(RepoKind::Model, "acme/open")
        .card(json!({ "license": "apache-2.0" }))
        .regular_file("config.json", b"{}".to_vec())
        .lfs_file("model.safetensors", content(72, 2 << 20))
        .commit("main");
    hub
}

/// A world whose home's policy denies cc-by-nc-4.0, for the daemon and local pulls alike.
async fn world() -> World {
    let world = World::start(hub()).await;
    std::fs::write(
        world.home.path().join("config.toml"),
        "[policy]\ndeny = [\"cc-by-nc-4.0\"]\n",
    )
    .unwrap();
    world
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The job as the API answers it, as raw JSON.
async fn job_json(mirror: &RunningMirror, id: i64) -> Value {
    reqwest::get(format!("{}/v1/jobs/{id}", mirror.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_on_a_daemon_exits_like_a_local_pull() {
    let world = world().await;
    let mirror = daemon(&world).await;
    let url = mirror.url();

    // Denied by the licence policy: 5 both ways, and the job says why.
    let local = world.run(&["pull", "acme/nc"]);
    assert_eq!(local.status.code(), Some(5), "{}", stderr(&local));
    // Locally the CLI adds what to do, on a line of its own after the error.
    let local_text = stderr(&local);
    let error_line = local_text
        .find("the licence policy denies")
        .expect(&local_text);
    let hint_line = local_text
        .find("\nhint: to pull it anyway, accept the licence with `--accept-licence")
        .expect(&local_text);
    assert!(error_line < hint_line, "{local_text}");
    let remote = world.run(&["pull", "--daemon", &url, "acme/nc"]);
    let text = stderr(&remote);
    assert_eq!(remote.status.code(), Some(5), "{text}");
    assert!(text.contains("failed (licence_denied)"), "{text}");
    assert!(text.contains("deny: cc-by-nc-4.0"), "{text}");
    let denied = queued_id(&text);
    let view = job_json(&mirror, denied).await;
    assert_eq!(view["state"], "failed", "{view:#}");
    assert_eq!(view["error_kind"], "licence_denied", "{view:#}");
    // A job cannot pass --accept-licence: the daemon stores the reason without the CLI's advice.
    let stored = view["error"].as_str().expect("error text");
    assert!(
        !stored.contains("hint") && !stored.contains("--accept-licence"),
        "{stored}"
    );
    assert!(!world.blob_path(&sha256_hex(&content(71, 1 << 20))).exists());
    // `larder jobs wait` ends the same way; `show` and `ls` name the kind.
    let waited = world.run(&["jobs", "--daemon", &url, "wait", &denied.to_string()]);
    assert_eq!(waited.status.code(), Some(5), "{waited:?}");
    let shown = String::from_utf8_lossy(&waited.stdout).into_owned();
    assert!(shown.contains("failed (licence_denied)"), "{shown}");

    // A repo that does not exist: 1 both ways, kind not_found.
    let local = world.run(&["pull", "acme/missing"]);
    assert_eq!(local.status.code(), Some(1), "{}", stderr(&local));
    let remote = world.run(&["pull", "--daemon", &url, "acme/missing"]);
    let text = stderr(&remote);
    assert_eq!(remote.status.code(), Some(1), "{text}");
    assert!(text.contains("failed (not_found)"), "{text}");
    let missing = queued_id(&text);
    assert_eq!(job_json(&mirror, missing).await["error_kind"], "not_found");

    // A revision that does not exist either.
    let remote = world.run(&["pull", "--daemon", &url, "acme/open@no-such-branch"]);
    assert_eq!(remote.status.code(), Some(1), "{}", stderr(&remote));
    let id = queued_id(&stderr(&remote));
    assert_eq!(job_json(&mirror, id).await["error_kind"], "not_found");

    // A pull the policy allows: 0, and no kind.
    let remote = world.run(&["pull", "--daemon", &url, "acme/open"]);
    assert!(remote.status.success(), "{}", stderr(&remote));
    let done = job_json(&mirror, queued_id(&stderr(&remote))).await;
    assert_eq!(done["state"], "done", "{done:#}");
    assert_eq!(done["error_kind"], Value::Null, "{done:#}");

    let listed = world.run(&["jobs", "--daemon", &url, "ls"]);
    let table = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(table.contains("failed (licence_denied)"), "{table}");
    assert!(table.contains("failed (not_found)"), "{table}");
    let all: Value = reqwest::get(format!("{url}/v1/jobs"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds: Vec<&Value> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|job| &job["error_kind"])
        .collect();
    assert_eq!(
        kinds,
        [
            &json!("licence_denied"),
            &json!("not_found"),
            &json!("not_found"),
            &Value::Null
        ]
    );
    mirror.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_while_followed_exits_130() {
    let world = world().await;
    world.server.inject(
        Fault::throttle(256 << 10)
            .path("model.safetensors")
            .times(1),
    );
    let mirror = daemon(&world).await;
    let remote = RemotePull::start(&world, &mirror, "acme/open");
    let id = queued_id(&remote.first);
    let cancelled = reqwest::Client::new()
        .delete(format!("{}/v1/jobs/{id}", mirror.url()))
        .send()
        .await
        .unwrap();
    assert!(cancelled.status().is_success());
    let (status, stderr) = remote.finish();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("cancelled"), "{stderr}");
    let view = wait_final(&mirror, id).await;
    assert_eq!(view.state, JobState::Cancelled);
    assert_eq!(view.error_kind, None);
    mirror.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_failed_under_an_older_larder_reads_as_unknown() {
    let world = world().await;
    // The registry as a Larder at schema 3 left it, with a job that failed back then.
    {
        let conn = rusqlite::Connection::open(world.home.path().join("registry.db")).unwrap();
        for sql in [
            include_str!("../../registry/migrations/0001_initial.sql"),
            include_str!("../../registry/migrations/0002_licence_detections.sql"),
            include_str!("../../registry/migrations/0003_daemon.sql"),
        ] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.execute(
            "INSERT INTO jobs (kind, spec_json, state, error, created_at, updated_at)
             VALUES ('pull', '{\"repo\":\"acme/old\",\"revision\":\"main\"}', 'failed',
                     'it broke back then', 10, 11)",
            [],
        )
        .unwrap();
    }
    let mirror = daemon(&world).await;
    let url = mirror.url();
    let old = job_json(&mirror, 1).await;
    assert_eq!(old["state"], "failed", "{old:#}");
    assert_eq!(old["error"], "it broke back then", "{old:#}");
    assert_eq!(old["error_kind"], "unknown", "{old:#}");
    assert_eq!(old["spec"]["repo"], "acme/old", "{old:#}");
    let waited = world.run(&["jobs", "--daemon", &url, "wait", "1"]);
    assert_eq!(waited.status.code(), Some(1), "{waited:?}");
    assert!(
        String::from_utf8_lossy(&waited.stdout).contains("failed (unknown)"),
        "{waited:?}"
    );
    // New jobs on the migrated registry record their kind.
    let remote = world.run(&["pull", "--daemon", &url, "acme/nc"]);
    assert_eq!(remote.status.code(), Some(5), "{}", stderr(&remote));
    assert_eq!(queued_id(&stderr(&remote)), 2);
    assert_eq!(job_json(&mirror, 2).await["error_kind"], "licence_denied");
    mirror.stop().await.unwrap();
}
