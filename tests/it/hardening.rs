//! The mirror and the registry under bad clients and bad data: cross-site requests to `/v1`,
//! removing a revision (`larder rm`, `DELETE /v1/revisions/...`), clients that hold sockets
//! without finishing a request.

use std::time::Duration;

use hub_standin::{Hub, RepoKind};
use larder::serve::{RunningMirror, ServeOptions, start};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{World, commit_id, content, options, pull_with, sha256_hex};

async fn jobs_mirror(world: &World) -> RunningMirror {
    let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    options.pull_through = true;
    start(world.larder(), options).await.expect("mirror starts")
}

fn small_hub() -> Hub {
    let hub = Hub::new();
    for (seed, name) in [(1, "acme/keep"), (2, "acme/drop")] {
        hub.repo(RepoKind::Model, name)
            .regular_file("config.json", content(seed, 200))
            .lfs_file("model.safetensors", content(seed + 10, 40_000))
            .commit("main");
    }
    hub
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_posts_to_v1_are_refused() {
    let world = World::start(small_hub()).await;
    let mirror = jobs_mirror(&world).await;
    let url = format!("{}/v1/jobs", mirror.url());
    let body = json!({"kind": "pull", "repo": "acme/keep"}).to_string();
    let http = reqwest::Client::new();
    // What a page on another site can send without a preflight: text/plain, its own Origin.
    let forged = http
        .post(&url)
        .header("content-type", "text/plain")
        .header("origin", "http://evil.example")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let no_origin = http
        .post(&url)
        .header("content-type", "text/plain")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(no_origin.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let fetch_metadata = http
        .post(&url)
        .header("content-type", "application/json")
        .header("sec-fetch-site", "cross-site")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(fetch_metadata.status(), StatusCode::FORBIDDEN);
    let cancel = http
        .delete(format!("{url}/1"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), StatusCode::FORBIDDEN);
    // Nothing was queued by any of them.
    let jobs: Vec<Value> = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert!(jobs.is_empty(), "{jobs:?}");
    // The mirror's own page (same origin) and command-line clients (no Origin) get through.
    let host = mirror.url().trim_start_matches("http://").to_owned();
    let own = http
        .post(&url)
        .header("content-type", "application/json")
        .header("origin", format!("http://{host}"))
        .header("sec-fetch-site", "same-origin")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::CREATED);
    mirror.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rm_forgets_a_revision_and_gc_reclaims_its_blobs() {
    let world = World::start(small_hub()).await;
    let larder = world.larder();
    for repo in ["acme/keep", "acme/drop"] {
        pull_with(&larder, &options(repo, "main")).await.0.unwrap();
    }
    let dropped = world.blob_path(&sha256_hex(&content(12, 40_000)));
    let kept = world.blob_path(&sha256_hex(&content(11, 40_000)));
    assert!(dropped.exists() && kept.exists());

    let output = world.cli().args(["rm", "acme/drop"]).output().unwrap();
    assert!(!output.status.success(), "a revision must be named");
    let output = world.cli().args(["rm", "acme/drop@main"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("removed acme/drop@") && stderr.contains("larder gc"),
        "{stderr}"
    );
    let output = world.cli().args(["rm", "acme/drop@main"]).output().unwrap();
    assert!(!output.status.success(), "removed twice");
    assert!(String::from_utf8_lossy(&output.stderr).contains("not held"));

    let repos = larder.registry.list_repos().await.unwrap();
    let names: Vec<(&str, usize)> = repos
        .iter()
        .map(|r| (r.name.as_str(), r.revisions.len()))
        .collect();
    assert!(names.contains(&("acme/keep", 1)), "{names:?}");
    assert!(!names.contains(&("acme/drop", 1)), "{names:?}");
    assert!(world.cli().args(["gc"]).status().unwrap().success());
    assert!(!dropped.exists(), "gc reclaims the removed revision's blob");
    assert!(kept.exists());
    assert!(world.cli().args(["ls"]).status().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_removes_a_revision() {
    let world = World::start(small_hub()).await;
    let larder = world.larder();
    pull_with(&larder, &options("acme/drop", "main"))
        .await
        .0
        .unwrap();
    let mirror = jobs_mirror(&world).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/revisions/model/acme/drop/main", mirror.url());
    let removed = http.delete(&url).send().await.unwrap();
    assert_eq!(removed.status(), StatusCode::OK);
    let body: Value = removed.json().await.unwrap();
    assert_eq!(body["repo"], "acme/drop");
    assert!(body["reclaimable"].as_u64().unwrap() >= 40_000, "{body}");
    let again = http.delete(&url).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let commit = &commit_id(body["commit"].as_str().unwrap());
    let detail = larder
        .registry
        .commit_detail(larder::registry::RepoKind::Model, "acme/drop", commit)
        .await
        .unwrap();
    assert!(detail.is_none(), "the commit's rows are gone");
    mirror.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_pull_replaces_a_truncated_blob() {
    let world = World::start(small_hub()).await;
    let larder = world.larder();
    pull_with(&larder, &options("acme/keep", "main"))
        .await
        .0
        .unwrap();
    let bytes = content(11, 40_000);
    let blob = world.blob_path(&sha256_hex(&bytes));
    // Damage it the way a full disk or a careless hand would.
    let mut perms = std::fs::metadata(&blob).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&blob, perms).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&blob).unwrap();
    file.set_len(1000).unwrap();
    drop(file);
    pull_with(&larder, &options("acme/keep", "main"))
        .await
        .0
        .unwrap();
    assert_eq!(
        std::fs::read(&blob).unwrap(),
        bytes,
        "the damaged blob was replaced"
    );
    assert!(world.cli().args(["verify"]).status().unwrap().success());
}

/// The `Max open files` (soft, hard) of a running process.
fn open_files_limit(pid: u32) -> Option<(String, String)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    Some((fields[3].to_owned(), fields[4].to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_raises_its_soft_fd_limit_to_the_hard_one() {
    let world = World::start(small_hub()).await;
    let binary = env!("CARGO_BIN_EXE_larder");
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -Sn 256 && exec {binary} serve --offline --addr 127.0.0.1:0"
        ))
        .env("LARDER_HOME", world.home.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut seen = None;
    while std::time::Instant::now() < deadline {
        seen = open_files_limit(pid);
        if let Some((soft, hard)) = &seen
            && soft == hard
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let (soft, hard) = seen.expect("limits readable");
    assert_eq!(
        soft, hard,
        "soft limit raised (the hard limit here is {hard})"
    );
    assert_ne!(hard, "256", "the test needs a hard limit above 256");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_fails_in_seconds_naming_it() {
    let world = World::start(small_hub()).await;
    // Bind then drop a listener: a local port that refuses connections.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let output = world
        .cli()
        .env("HF_ENDPOINT", &endpoint)
        .args(["pull", "acme/keep"])
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        took < std::time::Duration::from_secs(10),
        "{took:?}: {stderr}"
    );
    assert!(
        stderr.contains(&endpoint) && stderr.contains("HF_ENDPOINT"),
        "{stderr}"
    );
    assert!(!stderr.contains("resume"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no ANSI escapes on a pipe: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_resume_hint_after_a_digest_mismatch() {
    let world = World::start(small_hub()).await;
    let sha = sha256_hex(&content(11, 40_000));
    world
        .server
        .inject(hub_standin::Fault::flip_byte(5).sha256(&sha).forever());
    let output = world.cli().args(["pull", "acme/keep"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(!stderr.contains("to resume"), "{stderr}");
}

/// Whether the mirror closed `socket` within `within`: reads until end of stream (a closing
/// mirror may first answer a status line), `false` while it is still open.
async fn closed_within(socket: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_clients_are_cut_off() {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;
    let world = World::start(small_hub()).await;
    let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    options.pull_through = true;
    options.client_timeouts.idle = Duration::from_secs(3);
    options.client_timeouts.head = Duration::from_secs(1);
    let mirror = start(world.larder(), options).await.unwrap();
    let addr = mirror.url().trim_start_matches("http://").to_owned();
    let connect = || TcpStream::connect(addr.clone());

    // Half-sent heads (slowloris): one byte at a time, forever.
    let mut trickling = Vec::new();
    for _ in 0..20 {
        let mut socket = connect().await.unwrap();
        socket
            .write_all(b"GET /api/models/acme/keep HTTP/1.1\r\n")
            .await
            .unwrap();
        trickling.push(socket);
    }
    let dripper = {
        let mut sockets: Vec<TcpStream> = Vec::new();
        for _ in 0..5 {
            sockets.push(connect().await.unwrap());
        }
        tokio::spawn(async move {
            let mut open = sockets.len();
            for _ in 0..40 {
                open = 0;
                for socket in &mut sockets {
                    if socket.write_all(b"X").await.is_ok() {
                        open += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            open
        })
    };
    // A body promised and never sent.
    let mut stalled_body = connect().await.unwrap();
    stalled_body
        .write_all(
            b"POST /api/models/acme/keep/paths-info/main HTTP/1.1\r\nhost: x\r\n\
              content-type: application/x-www-form-urlencoded\r\ncontent-length: 4000\r\n\r\npaths=",
        )
        .await
        .unwrap();
    // Silent sockets: connected, nothing sent.
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(connect().await.unwrap());
    }

    // Well-behaved clients are served meanwhile.
    let http = reqwest::Client::new();
    let info = http
        .get(format!("{}/api/models/acme/keep", mirror.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), StatusCode::OK);

    // Heads get `head` (1 s) from their first byte; allow scheduling slack.
    for socket in &mut trickling {
        assert!(
            closed_within(socket, Duration::from_secs(4)).await,
            "a half-sent head stayed open"
        );
    }
    assert!(
        closed_within(&mut stalled_body, Duration::from_secs(3)).await,
        "a stalled request body stayed open"
    );
    // One byte every 200 ms never finishes a head: all five were cut long before the 8 s drip.
    assert_eq!(dripper.await.unwrap(), 0, "a dripping head stayed open");
    // Silent connections get `idle` (3 s).
    for socket in &mut silent {
        assert!(
            closed_within(socket, Duration::from_secs(4)).await,
            "a silent socket stayed open"
        );
    }
    // And the mirror still answers.
    let again = http
        .get(format!("{}/api/models/acme/keep", mirror.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    mirror.stop().await.unwrap();
}
