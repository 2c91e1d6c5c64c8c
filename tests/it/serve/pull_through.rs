//! Pull-through from the stand-in as upstream: one fetch streamed to every client, failed
//! verification, an upstream that is down, gated content and refusals passed on.

use super::*;

const COLD_SIZE: usize = 6 << 20;

fn cold_hub() -> Hub {
    let hub = Hub::new();
    hub.repo(RepoKind::Model, "acme/cold")
        .regular_file("config.json", br#"{"cold":true}"#.to_vec())
        .lfs_file("model.safetensors", content(9, COLD_SIZE))
        .commit("main");
    hub
}

async fn pull_through_mirror(world: &World) -> RunningMirror {
    let larder = world.quick_larder(2);
    let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    options.pull_through = true;
    start(larder, options).await.expect("mirror starts")
}

/// The registry row of a file of acme/cold, once it is recorded as held (pull-through records
/// it just after the client had its last byte).
async fn held_row(larder: &larder::Larder, commit: &str, path: &str) -> larder::registry::FileRow {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row = larder
            .registry
            .file(Kind::Model, "acme/cold", &commit_id(commit), path)
            .await
            .unwrap()
            .unwrap();
        if row.held || Instant::now() > deadline {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cold_mirror_fetches_once_and_streams_to_every_client() {
    let world = World::start(cold_hub()).await;
    let bytes = content(9, COLD_SIZE);
    let sha = sha256_hex(&bytes);
    // Slow enough that the clients overlap the transfer: about 3 s in all.
    world
        .server
        .inject(Fault::throttle(2 << 20).path("model.safetensors").forever());
    let mirror = pull_through_mirror(&world).await;
    let url = format!("{}/acme/cold/resolve/main/model.safetensors", mirror.url());
    let c = http();

    // HEAD is answered at once from the upstream's metadata.
    let started = std::time::Instant::now();
    let head = c.head(&url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        header(&head, "x-linked-etag"),
        Some(format!("\"{sha}\"").as_str())
    );
    assert_eq!(
        header(&head, "content-length"),
        Some(COLD_SIZE.to_string().as_str())
    );
    assert!(head.headers().get("x-repo-commit").is_some());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "HEAD took {:?}",
        started.elapsed()
    );

    let clients: Vec<_> = (0..4)
        .map(|i| {
            let (c, url) = (c.clone(), url.clone());
            tokio::spawn(async move {
                let mut request = c.get(&url);
                if i == 3 {
                    request = request.header("range", "bytes=1000-2000");
                }
                let started = std::time::Instant::now();
                let mut response = request.send().await.unwrap();
                let status = response.status();
                let mut body = Vec::new();
                let mut first = None;
                while let Some(chunk) = response.chunk().await.unwrap() {
                    first.get_or_insert_with(|| started.elapsed());
                    body.extend_from_slice(&chunk);
                }
                (status, body, first, started.elapsed())
            })
        })
        .collect();
    for (i, client) in clients.into_iter().enumerate() {
        let (status, body, first, total) = client.await.unwrap();
        if i == 3 {
            assert_eq!(status, StatusCode::PARTIAL_CONTENT);
            assert_eq!(body, bytes[1000..=2000]);
        } else {
            assert_eq!(status, StatusCode::OK);
            assert!(
                body == bytes,
                "client {i} got {} bytes, not the file",
                body.len()
            );
            let first = first.unwrap();
            assert!(
                first < Duration::from_secs(5),
                "first bytes after {first:?}"
            );
            assert!(
                total > first + Duration::from_secs(1),
                "streamed as it arrived, not delivered at once: first bytes after {first:?}, all after {total:?}"
            );
        }
    }
    // The upstream sent each byte once, and the blob is now held and recorded.
    assert_eq!(
        world.server.stats().bytes_for_sha256(&sha),
        COLD_SIZE as u64
    );
    assert_eq!(
        std::fs::read(world.published_blob(&sha).await).unwrap(),
        bytes
    );
    let larder = world.larder();
    let commit = world
        .server
        .hub()
        .resolve(RepoKind::Model, "acme/cold", "main")
        .unwrap();
    let row = held_row(&larder, &commit, "model.safetensors").await;
    assert!(row.held);
    // A regular file: fetched, verified by git oid, recorded with its sha256.
    let r = c
        .get(format!(
            "{}/acme/cold/resolve/main/config.json",
            mirror.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(&r.bytes().await.unwrap()[..], br#"{"cold":true}"#);
    let row = held_row(&larder, &commit, "config.json").await;
    assert!(row.held && row.sha256.is_some());
    // Served warm from now on: no more upstream bytes.
    world.server.stats().reset();
    let r = c.get(&url).send().await.unwrap();
    assert!(r.bytes().await.unwrap() == bytes);
    assert_eq!(world.server.stats().bytes_for_sha256(&sha), 0);
    // Repo info and tree came through too.
    let info: Value = c
        .get(format!("{}/api/models/acme/cold", mirror.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sha"], json!(commit));
    mirror.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verification_failure_aborts_client_streams_and_publishes_nothing() {
    let world = World::start(cold_hub()).await;
    let bytes = content(9, COLD_SIZE);
    let sha = sha256_hex(&bytes);
    world
        .server
        .inject(Fault::flip_byte(4321).path("model.safetensors").forever());
    // Slow, so that clients read along and reach the end as the last bytes land.
    world
        .server
        .inject(Fault::throttle(4 << 20).path("model.safetensors").forever());
    let mirror = pull_through_mirror(&world).await;
    let url = format!("{}/acme/cold/resolve/main/model.safetensors", mirror.url());
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let response = http().get(&url).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response.bytes().await.map(|b| b.len())
            })
        })
        .collect();
    for client in clients {
        let result = client.await.unwrap();
        assert!(
            result.is_err(),
            "a corrupt transfer was delivered whole: {result:?}"
        );
    }
    assert!(
        !world.blob_path(&sha).exists(),
        "a corrupt blob was published"
    );
    let larder = world.larder();
    assert!(larder.registry.blob(&sha).await.unwrap().is_none());
    // Once the upstream is healthy again the next request fetches it correctly.
    world.server.faults().clear();
    let r = http().get(&url).send().await.unwrap();
    assert!(r.bytes().await.unwrap() == bytes);
    world.published_blob(&sha).await;
    mirror.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upstream_down_keeps_serving_what_is_held() {
    let world = World::start(build_hub()).await;
    fill(&world).await;
    let commit = world
        .server
        .hub()
        .resolve(RepoKind::Model, "acme/tiny", "main")
        .unwrap();
    let files: BTreeMap<String, Vec<u8>> = tiny_files()
        .into_iter()
        .map(|(p, b, _)| (p.to_owned(), b))
        .collect();
    let World { server, home } = world;
    drop(server); // the upstream is gone
    tokio::time::sleep(Duration::from_millis(100)).await;
    let world_home = home;
    let mut larder = larder::Larder::open(&larder::settings::Settings {
        home: world_home.path().to_path_buf(),
        endpoint: "http://127.0.0.1:9".into(),
        token: None,
    })
    .unwrap();
    let mut settings = larder::hub::ClientSettings::new("http://127.0.0.1:9");
    settings.retry.max_retries = 1;
    settings.retry.base = Duration::from_millis(10);
    larder.client = larder::hub::HubClient::new(settings).unwrap();
    let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    options.pull_through = true;
    let mirror = start(larder, options).await.unwrap();
    let c = http();
    for (path, bytes) in &files {
        let encoded = path
            .replace(' ', "%20")
            .replace('#', "%23")
            .replace('+', "%2B");
        for rev in ["main", commit.as_str()] {
            let r = c
                .get(format!(
                    "{}/acme/tiny/resolve/{rev}/{encoded}",
                    mirror.url()
                ))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{path}@{rev}");
            assert_eq!(header(&r, "x-repo-commit"), Some(commit.as_str()));
            assert_eq!(&r.bytes().await.unwrap()[..], &bytes[..], "{path}");
        }
    }
    let info: Value = c
        .get(format!(
            "{}/api/models/acme/tiny/revision/main",
            mirror.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sha"], json!(commit));
    // A listed file the store lacks cannot be fetched: an error status, not a broken 200.
    let r = c
        .get(format!(
            "{}/acme/partial/resolve/main/big.bin",
            mirror.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(header(&r, "x-error-message").unwrap().contains("upstream"));
    // A repo the store lacks is not called unknown while the upstream cannot be asked: the
    // answer says the upstream is unavailable. Held metadata stays served.
    let r = c
        .head(format!("{}/acme/unknown/resolve/main/x", mirror.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&r, "x-error-code"), None);
    assert!(
        header(&r, "x-error-message")
            .unwrap()
            .contains("upstream http://127.0.0.1:9 is unavailable"),
        "{:?}",
        header(&r, "x-error-message")
    );
    let r = c
        .get(format!("{}/api/models/acme/tiny/tree/main", mirror.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    mirror.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gated_content_needs_a_token_the_upstream_accepts() {
    let world = World::start(build_hub()).await;
    fill(&world).await;
    let mirror = pull_through_mirror(&world).await;
    let c = http();
    let url = format!("{}/acme/gated/resolve/main/model.safetensors", mirror.url());
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&r, "x-error-code"), Some("GatedRepo"));
    let r = c
        .get(&url)
        .bearer_auth("hf_not_accepted")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&r, "x-error-code"), Some("GatedRepo"));
    let r = c.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.unwrap() == content(6, 200_000));
    // The answer is cached: revoking upstream does not hit every request ...
    world.server.hub().revoke_token("acme/gated", TOKEN);
    let r = c.head(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // ... and a different token is checked on its own.
    let r = c.head(&url).bearer_auth("hf_other").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    mirror.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn huggingface_hub_through_a_cold_pull_through_mirror() {
    let world = World::start(build_hub()).await;
    let mirror = pull_through_mirror(&world).await;
    let commit = world
        .server
        .hub()
        .resolve(RepoKind::Model, "acme/tiny", "main")
        .unwrap();
    let hf_home = tempfile::tempdir().unwrap();
    let mut command = Command::new(python());
    command.arg(py_script("hf_clients.py")).arg(&commit);
    client_env(&mut command, &mirror.url(), hf_home.path(), false);
    let output = run_output(command).await;
    assert!(
        output.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let value: Value = serde_json::from_slice(&output.stdout).unwrap();
    let files: BTreeMap<String, Vec<u8>> = tiny_files()
        .into_iter()
        .map(|(p, b, _)| (p.to_owned(), b))
        .collect();
    check_digests(&value, "snapshot", &files);
    assert_eq!(value["pr"], json!(sha256_hex(b"from the PR\n")));
    assert_eq!(value["missing"], json!("EntryNotFound"));
    // The LFS file crossed the upstream link exactly once.
    let model = sha256_hex(&files["model.safetensors"]);
    assert_eq!(
        world.server.stats().bytes_for_sha256(&model),
        files["model.safetensors"].len() as u64
    );
    // And the mirror now holds it for offline use.
    world.published_blob(&model).await;
    mirror.stop().await.unwrap();
}

/// The upstream's status, error code and message for `url` (asked directly).
async fn upstream_answer(
    c: &reqwest::Client,
    url: String,
    token: Option<&str>,
) -> (u16, Option<String>, Option<String>) {
    let mut request = c.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let r = request.send().await.unwrap();
    (
        r.status().as_u16(),
        header(&r, "x-error-code").map(str::to_owned),
        header(&r, "x-error-message").map(str::to_owned),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upstream_refusals_are_forwarded_and_disabled_repos_refused() {
    let hub = cold_hub();
    hub.repo(RepoKind::Model, "acme/banned")
        .regular_file("config.json", b"{}".to_vec())
        .commit("main");
    hub.set_disabled(RepoKind::Model, "acme/banned", true);
    let world = World::start(hub).await;
    let mirror = pull_through_mirror(&world).await;
    let c = http();
    let up = world.server.url();
    let mine = mirror.url();

    // Unknown repo and unknown branch on a cold mirror: what the upstream said, verbatim.
    // (RepoNotFound follows the client's request: 401 anonymous, 404 with a token.)
    let r = c
        .get(format!("{mine}/acme/nope/resolve/main/config.json"))
        .bearer_auth("hf_someone")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&r, "x-error-code"), Some("RepoNotFound"));
    for (path, token) in [
        ("acme/nope/resolve/main/config.json", None),
        ("api/models/acme/nope/revision/main", None),
        ("acme/cold/resolve/no-such-branch/config.json", None),
        ("api/models/acme/cold/revision/no-such-branch", None),
    ] {
        let expected = upstream_answer(&c, format!("{up}/{path}"), token).await;
        assert!(
            expected.0 >= 400 && expected.1.is_some(),
            "{path}: {expected:?}"
        );
        let got = upstream_answer(&c, format!("{mine}/{path}"), token).await;
        assert_eq!(got, expected, "{path}");
    }

    // A disabled repo the mirror does not hold: 403 with the Hub's message.
    let disabled = "Access to this resource is disabled.";
    let r = c
        .get(format!("{mine}/acme/banned/resolve/main/config.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&r, "x-error-message"), Some(disabled));
    assert_eq!(header(&r, "x-error-code"), None);

    // A held repo that the upstream disables later is refused too, once a lookup sees it.
    let url = format!("{mine}/acme/cold/resolve/main/config.json");
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let hub = world.server.hub();
    let main = hub.resolve(RepoKind::Model, "acme/cold", "main").unwrap();
    hub.set_ref(RepoKind::Model, "acme/cold", "v1", &main);
    hub.set_disabled(RepoKind::Model, "acme/cold", true);
    // `main` was looked up a moment ago; `v1` is new, so it asks and learns of the ban.
    let r = c
        .get(format!("{mine}/api/models/acme/cold/revision/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["disabled"], json!(true));
    for url in [
        url.clone(),
        format!("{mine}/acme/cold/resolve/{main}/config.json"),
        format!("{mine}/api/models/acme/cold/tree/main"),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{url}");
        assert_eq!(header(&r, "x-error-message"), Some(disabled), "{url}");
    }
    mirror.stop().await.unwrap();
}
