//! The mirror speaks Xet: the Hub's own Xet client (`hf_xet`, and huggingface_hub with it)
//! downloads through the mirror's CAS API, a downstream Larder pulls an updated revision moving
//! only the chunks it lacks, and every credential and hostile request gets a clean answer.

use std::path::Path;
use std::process::Command;

use hub_standin::{Hub, RepoKind};
use larder::serve::{RunningMirror, ServeOptions, start};

use crate::common::{World, content, options, pull_with, python, sha256_hex};

const REPO: &str = "acme/xm";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A world whose repo holds a large LFS file and a config, pulled into the store, and a mirror
/// over that store (offline, Xet on unless `xet` is false).
async fn held_world(data: &[u8], xet: bool) -> (World, RunningMirror, String) {
    let hub = Hub::new();
    let commit = hub
        .repo(RepoKind::Model, REPO)
        .lfs_file("model.safetensors", data.to_vec())
        .file("config.json", b"{\"model_type\": \"llama\"}".to_vec())
        .commit("main");
    let world = World::start(hub).await;
    pull_with(&world.larder(), &indexing(REPO))
        .await
        .0
        .expect("pull");
    let mut opts = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    opts.xet = xet;
    let mirror = start(world.larder(), opts).await.expect("mirror starts");
    (world, mirror, commit)
}

/// Pull options for `repo` at main that chunk files as they land (`[pull] index_chunks`, what
/// a host that serves its store sets), so the mirror serves them over Xet from the start.
fn indexing(repo: &str) -> larder::fetch::PullOptions {
    let mut options = options(repo, "main");
    options.transfer.index_chunks = true;
    options
}

/// The counter `name` once it is not zero, or zero after 20 s: a pull-through transfer reports
/// what it fetched and reused as it ends, a moment after its client has every byte.
async fn once_reported(mirror: &RunningMirror, name: &str) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let value = metric(mirror, name).await;
        if value > 0 || std::time::Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

pub(crate) async fn metric(mirror: &RunningMirror, name: &str) -> u64 {
    let text = http()
        .get(format!("{}/metrics", mirror.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
}

fn run_python(script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    run_python_in(&python(), script, args, env)
}

/// Runs `script` with `args` in the Python at `python`, with no Hub token, Xet allowed and
/// `env` set; panics when it fails, else its standard output.
pub(crate) fn run_python_in(
    python: &Path,
    script: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> String {
    let mut command = Command::new(python);
    command.arg("-c").arg(script).args(args);
    command
        .env_remove("HF_HUB_DISABLE_XET")
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .env("HF_HUB_DISABLE_TELEMETRY", "1");
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().expect("python runs");
    assert!(
        output.status.success(),
        "python failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hf_download_through_the_mirror_takes_the_xet_path() {
    let data = content(71, 6 << 20);
    let (_world, mirror, commit) = held_world(&data, true).await;
    let c = http();

    // What a client sees on resolve and in the tree.
    let head = c
        .head(format!(
            "{}/{REPO}/resolve/main/model.safetensors",
            mirror.url()
        ))
        .send()
        .await
        .unwrap();
    let xet_hash = head.headers()["x-xet-hash"].to_str().unwrap().to_owned();
    assert_eq!(xet_hash.len(), 64);
    let route = format!("/api/models/{REPO}/xet-read-token/{commit}");
    assert_eq!(head.headers()["x-xet-refresh-route"], route.as_str());
    let link = head.headers()["link"].to_str().unwrap();
    assert_eq!(link, format!("<{}{route}>; rel=\"xet-auth\"", mirror.url()));
    let tree: serde_json::Value = c
        .get(format!("{}/api/models/{REPO}/tree/main", mirror.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entry = tree
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "model.safetensors")
        .unwrap();
    assert_eq!(entry["xetHash"], xet_hash.as_str());
    // Regular files are not in Xet.
    let head = c
        .head(format!("{}/{REPO}/resolve/main/config.json", mirror.url()))
        .send()
        .await
        .unwrap();
    assert!(head.headers().get("x-xet-hash").is_none());

    // huggingface_hub 2.4 with hf_xet, HF_HUB_DISABLE_XET unset: hf_hub_download and
    // snapshot_download through the mirror.
    let hf_home = tempfile::tempdir().unwrap();
    let script = "import sys, huggingface_hub as h\n\
                  p = h.hf_hub_download(sys.argv[1], 'model.safetensors')\n\
                  d = h.snapshot_download(sys.argv[1])\n\
                  print(p); print(d)";
    let out = run_python(
        script,
        &[REPO],
        &[
            ("HF_ENDPOINT", &mirror.url()),
            ("HF_HOME", hf_home.path().to_str().unwrap()),
        ],
    );
    let mut lines = out.lines();
    let file = lines.next().unwrap();
    let snapshot = lines.next().unwrap();
    assert_eq!(std::fs::read(file).unwrap(), data);
    assert_eq!(
        std::fs::read(Path::new(snapshot).join("model.safetensors")).unwrap(),
        data
    );
    // The Xet path was taken: reconstructions answered, the file's bytes left as xorb ranges,
    // and /resolve sent only the small regular file.
    assert!(metric(&mirror, "larder_xet_reconstructions_total").await >= 1);
    let xet_bytes = metric(&mirror, "larder_file_bytes_total{transport=\"xet\"}").await;
    let http_bytes = metric(&mirror, "larder_file_bytes_total{transport=\"http\"}").await;
    assert!(xet_bytes >= data.len() as u64, "xet bytes {xet_bytes}");
    assert!(http_bytes < 1024, "http bytes {http_bytes}");

    // Clients that do not use Xet keep working over plain HTTP against the same mirror:
    // huggingface_hub with Xet disabled, and the hf-hub crate (no Xet support).
    let plain_home = tempfile::tempdir().unwrap();
    let out = run_python(
        "import sys, huggingface_hub as h\nprint(h.hf_hub_download(sys.argv[1], 'model.safetensors'))",
        &[REPO],
        &[
            ("HF_ENDPOINT", &mirror.url()),
            ("HF_HOME", plain_home.path().to_str().unwrap()),
            ("HF_HUB_DISABLE_XET", "1"),
        ],
    );
    assert_eq!(std::fs::read(out.trim()).unwrap(), data);
    let api = hf_hub::api::tokio::ApiBuilder::new()
        .with_endpoint(mirror.url())
        .with_cache_dir(tempfile::tempdir().unwrap().keep())
        .with_progress(false)
        .build()
        .unwrap();
    let local = api
        .model(REPO.to_owned())
        .get("model.safetensors")
        .await
        .expect("hf-hub downloads");
    assert_eq!(std::fs::read(local).unwrap(), data);
    let http_after = metric(&mirror, "larder_file_bytes_total{transport=\"http\"}").await;
    assert!(http_after >= http_bytes + 2 * data.len() as u64);
    // The page says what went which way.
    let page = http()
        .get(format!("{}/", mirror.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"transports\""), "{page}");
    assert!(page.contains("over Xet (1 reconstructions)") || page.contains("reconstructions)"));
    mirror.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hf_xet_session_downloads_from_the_mirror() {
    let data = content(72, 3 << 20);
    let (_world, mirror, commit) = held_world(&data, true).await;
    let head = http()
        .head(format!(
            "{}/{REPO}/resolve/main/model.safetensors",
            mirror.url()
        ))
        .send()
        .await
        .unwrap();
    let xet_hash = head.headers()["x-xet-hash"].to_str().unwrap().to_owned();
    let out_dir = tempfile::tempdir().unwrap();
    let dest = out_dir.path().join("out.bin");
    let script = "import sys, hf_xet\n\
                  s = hf_xet.XetSession()\n\
                  g = s.new_file_download_group(token_refresh_url=sys.argv[1])\n\
                  g.start_download_file(hf_xet.XetFileInfo(sys.argv[2], int(sys.argv[3])), sys.argv[4])\n\
                  g.wait_to_finish()\n\
                  print('ok')";
    let refresh = format!("{}/api/models/{REPO}/xet-read-token/{commit}", mirror.url());
    run_python(
        script,
        &[
            &refresh,
            &xet_hash,
            &data.len().to_string(),
            dest.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert!(metric(&mirror, "larder_xet_reconstructions_total").await >= 1);
    mirror.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_hostile_requests_get_clean_answers() {
    let data = content(73, 2 << 20);
    let (world, mirror, commit) = held_world(&data, true).await;
    let c = http();
    let base = mirror.url();
    let head = c
        .head(format!("{base}/{REPO}/resolve/main/model.safetensors"))
        .send()
        .await
        .unwrap();
    let hash = head.headers()["x-xet-hash"].to_str().unwrap().to_owned();
    let token: serde_json::Value = c
        .get(format!("{base}/api/models/{REPO}/xet-read-token/main"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["casUrl"], base.as_str());
    let access = token["accessToken"].as_str().unwrap().to_owned();
    let reconstruction = |auth: Option<String>, hash: &str, range: Option<&str>| {
        let mut request = c.get(format!("{base}/v1/reconstructions/{hash}"));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        if let Some(range) = range {
            request = request.header("range", range);
        }
        request.send()
    };
    let bearer = Some(format!("Bearer {access}"));

    // No token, a forged one, one for another commit's scope: 401.
    for auth in [
        None,
        Some("Bearer nope".to_owned()),
        Some(format!("Bearer {}x", &access[..access.len() - 1])),
    ] {
        let r = reconstruction(auth, &hash, None).await.unwrap();
        assert_eq!(r.status(), 401);
    }
    // v2 is absent (clients fall back), an unknown hash is 404, a malformed one 400.
    let r = c
        .get(format!("{base}/v2/reconstructions/{hash}"))
        .header("authorization", bearer.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        reconstruction(bearer.clone(), &"0".repeat(64), None)
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        reconstruction(bearer.clone(), "../../etc/passwd", None)
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        reconstruction(bearer.clone(), &"Z".repeat(64), None)
            .await
            .unwrap()
            .status(),
        400
    );
    // An absurd range: 416.
    let r = reconstruction(bearer.clone(), &hash, Some("bytes=999999999999-"))
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    // A huge batch request: a clean 4xx.
    let batch: String = (0..800).map(|i| format!("file_id={i:064x}&")).collect();
    let r = c
        .get(format!("{base}/v1/reconstructions?{batch}"))
        .header("authorization", bearer.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());

    // A genuine reconstruction, and its xorb URLs: genuine works, tampered or expired is 403.
    let r = reconstruction(bearer.clone(), &hash, Some("bytes=0-99999"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let terms = body["terms"].as_array().unwrap();
    assert!(!terms.is_empty());
    let first = terms[0]["hash"].as_str().unwrap();
    let fetch = &body["fetch_info"][first][0];
    let url = fetch["url"].as_str().unwrap().to_owned();
    let range = format!(
        "bytes={}-{}",
        fetch["url_range"]["start"], fetch["url_range"]["end"]
    );
    let r = c.get(&url).header("range", &range).send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert!(!r.bytes().await.unwrap().is_empty());
    let tampered = url.replace("sig=", "sig=A");
    assert_eq!(
        c.get(&tampered).send().await.unwrap().status(),
        403,
        "tampered signature"
    );
    let (before, after) = url.split_once("exp=").unwrap();
    let expired = format!("{before}exp=1{}", &after[after.find('&').unwrap()..]);
    assert_eq!(
        c.get(&expired).send().await.unwrap().status(),
        403,
        "expired"
    );
    assert_eq!(
        c.get(url.split('?').next().unwrap())
            .send()
            .await
            .unwrap()
            .status(),
        403,
        "unsigned"
    );

    // A gated repo: the token route refuses an anonymous client as resolve does.
    let hub = world.server.hub();
    hub.repo(RepoKind::Model, "acme/gated")
        .lfs_file("w.bin", content(74, 1 << 20))
        .gated("manual")
        .commit("main");
    hub.accept_token("acme/gated", "hf_ok");
    pull_with(
        &world.larder_with_token("hf_ok"),
        &options("acme/gated", "main"),
    )
    .await
    .0
    .expect("pull gated");
    let r = c
        .get(format!("{base}/api/models/acme/gated/xet-read-token/main"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The mirror keeps serving.
    let r = reconstruction(bearer, &hash, None).await.unwrap();
    assert_eq!(r.status(), 200);
    let _ = commit;
    mirror.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_sharing_a_key_file_accept_each_others_credentials() {
    use larder::serve::xet::grant::{MIN_SECRET_BYTES, XetKey};
    let data = content(79, 1 << 20);
    let (world, a, _) = held_world(&data, true).await;
    // The same key file on two more nodes over the same store; a third keeps a key of its own.
    let key_file = world.home.path().join("xet.key");
    std::fs::write(&key_file, format!("{}\n", "5e".repeat(32))).unwrap();
    let secret = larder::config::read_secret_file(&key_file, MIN_SECRET_BYTES).unwrap();
    let node = |key: Option<XetKey>| {
        let mut opts = ServeOptions::new("127.0.0.1:0".parse().unwrap());
        opts.xet_key = key;
        start(world.larder(), opts)
    };
    let b = node(XetKey::from_secret(&secret))
        .await
        .expect("node b starts");
    let c_node = node(XetKey::from_secret(&secret))
        .await
        .expect("node c starts");
    let lone = node(None).await.expect("lone node starts");
    let c = http();
    let hash = c
        .head(format!("{}/{REPO}/resolve/main/model.safetensors", b.url()))
        .send()
        .await
        .unwrap()
        .headers()["x-xet-hash"]
        .to_str()
        .unwrap()
        .to_owned();
    let token: serde_json::Value = c
        .get(format!("{}/api/models/{REPO}/xet-read-token/main", b.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = format!("Bearer {}", token["accessToken"].as_str().unwrap());
    let reconstruction = |base: String| {
        c.get(format!("{base}/v1/reconstructions/{hash}"))
            .header("authorization", bearer.clone())
            .send()
    };
    // Node c honours node b's token, and the xorb URLs b's key signed.
    let r = reconstruction(c_node.url()).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let first = body["terms"][0]["hash"].as_str().unwrap();
    let fetch = &body["fetch_info"][first][0];
    let url = fetch["url"].as_str().unwrap();
    let range = format!(
        "bytes={}-{}",
        fetch["url_range"]["start"], fetch["url_range"]["end"]
    );
    let path = &url[url.find("/xet/").unwrap()..];
    let from_b = c.get(format!("{}{path}", b.url())).header("range", &range);
    assert_eq!(from_b.send().await.unwrap().status(), 206);
    // Nodes with keys of their own do not.
    for other in [&a, &lone] {
        assert_eq!(reconstruction(other.url()).await.unwrap().status(), 401);
        let xorb = c
            .get(format!("{}{path}", other.url()))
            .header("range", &range);
        assert_eq!(xorb.send().await.unwrap().status(), 403);
    }
    // A key file too short to be a secret is refused with what to do.
    std::fs::write(&key_file, "short").unwrap();
    let err = larder::config::read_secret_file(&key_file, MIN_SECRET_BYTES).unwrap_err();
    assert!(err.to_string().contains("fewer than 32"), "{err}");
    let hint = larder::classify::hint_of(&err).unwrap();
    assert!(hint.contains("openssl rand"), "{hint}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switch_hides_xet() {
    let data = content(75, 1 << 20);
    let (_world, mirror, _) = held_world(&data, false).await;
    let c = http();
    let head = c
        .head(format!(
            "{}/{REPO}/resolve/main/model.safetensors",
            mirror.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert!(
        head.headers()
            .keys()
            .all(|k| !k.as_str().starts_with("x-xet"))
    );
    assert!(head.headers().get("link").is_none());
    let tree = c
        .get(format!("{}/api/models/{REPO}/tree/main", mirror.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!tree.contains("xetHash"));
    let r = c
        .get(format!(
            "{}/api/models/{REPO}/xet-read-token/main",
            mirror.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    mirror.stop().await.unwrap();
}

/// rack mirror ← site mirror: a Larder whose upstream is a Larder mirror pulls an updated
/// revision over Xet and moves only the chunks it lacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chained_larder_moves_only_changed_chunks() {
    let first = content(76, 128 << 20);
    let mut second = first.clone();
    second.splice(4096..4096, content(77, 1024));
    let middle = second.len() / 2;
    for byte in &mut second[middle..middle + 100] {
        *byte ^= 0x5A;
    }
    // The site mirror holds both revisions (pulled from the Hub stand-in over plain HTTP).
    let hub = Hub::new();
    let one = hub
        .repo(RepoKind::Model, REPO)
        .lfs_file("model.gguf", first.clone())
        .commit("main");
    let site = World::start(hub).await;
    pull_with(&site.larder(), &indexing(REPO))
        .await
        .0
        .expect("site pulls the first revision");
    let two = site
        .server
        .hub()
        .repo(RepoKind::Model, REPO)
        .base("main")
        .lfs_file("model.gguf", second.clone())
        .commit("main");
    pull_with(&site.larder(), &indexing(REPO))
        .await
        .0
        .expect("site pulls the second revision");
    let mirror = start(
        site.larder(),
        ServeOptions::new("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .expect("site mirror");

    // The rack Larder's upstream is the site mirror.
    let rack_home = tempfile::tempdir().unwrap();
    let rack = larder::Larder::open(&larder::settings::Settings {
        home: rack_home.path().to_path_buf(),
        endpoint: mirror.url(),
        token: None,
    })
    .unwrap();
    let (result, _) = pull_with(&rack, &options(REPO, &one)).await;
    let summary = result.expect("rack pulls the first revision");
    assert!(summary.fetched_bytes >= first.len() as u64);
    let (result, _) = pull_with(&rack, &options(REPO, &two)).await;
    let summary = result.expect("rack pulls the update");
    let blob = rack_home
        .path()
        .join("blobs/sha256")
        .join(&sha256_hex(&second)[..2])
        .join(sha256_hex(&second));
    assert_eq!(std::fs::read(blob).unwrap(), second);
    let moved = summary.fetched_bytes as f64 / second.len() as f64;
    eprintln!(
        "chained update: moved {} of {} bytes ({:.2}%), reused {}",
        summary.fetched_bytes,
        second.len(),
        moved * 100.0,
        summary.reused_bytes
    );
    assert!(
        moved <= 0.02,
        "the update moved {} of {} bytes ({:.2}%)",
        summary.fetched_bytes,
        second.len(),
        moved * 100.0
    );
    assert!(summary.reused_bytes >= second.len() as u64 * 9 / 10);
    mirror.stop().await.unwrap();
}

/// A file the mirror lists but has not fetched: `HEAD` advertises the upstream's Xet hash, and
/// the reconstruction is answered once the mirror has fetched and verified the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_through_answers_a_reconstruction_once_verified() {
    let data = content(78, 5 << 20);
    let cas = hub_standin::XetCas::start().await.expect("CAS starts");
    let hash = cas.upload(&data).await.expect("upload");
    let hub = Hub::new();
    hub.repo(RepoKind::Model, REPO)
        .xet_file("model.safetensors", data.clone(), &hash)
        .file("config.json", b"{}".to_vec())
        .commit("main");
    let world = World::start(hub).await;
    world.server.attach_xet(&cas);
    let mut opts = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    opts.pull_through = true;
    let mirror = start(world.larder(), opts).await.expect("mirror starts");

    let head = http()
        .head(format!(
            "{}/{REPO}/resolve/main/model.safetensors",
            mirror.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["x-xet-hash"], hash.as_str());
    assert!(
        !world.blob_path(&sha256_hex(&data)).exists(),
        "HEAD fetched nothing"
    );

    let hf_home = tempfile::tempdir().unwrap();
    let out = run_python(
        "import sys, huggingface_hub as h\nprint(h.hf_hub_download(sys.argv[1], 'model.safetensors'))",
        &[REPO],
        &[
            ("HF_ENDPOINT", &mirror.url()),
            ("HF_HOME", hf_home.path().to_str().unwrap()),
        ],
    );
    assert_eq!(std::fs::read(out.trim()).unwrap(), data);
    assert!(metric(&mirror, "larder_xet_reconstructions_total").await >= 1);
    assert_eq!(
        std::fs::read(world.blob_path(&sha256_hex(&data))).unwrap(),
        data
    );
    mirror.stop().await.unwrap();
}

/// Pull-through over the upstream's Xet storage: a file whose plain download the upstream
/// refuses (as the Hub's bridge does above 50 GB) still reaches Xet and plain-HTTP clients of
/// the mirror, and a new revision of a held file fetches only the xorb ranges of its changed
/// chunks (the rest is copied from the held revision).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_through_fetches_over_xet_and_reuses_held_chunks() {
    use hub_standin::{Fault, Route};
    let first = content(79, 24 << 20);
    let mut second = first.clone();
    second.splice(8192..8192, content(80, 1024));
    let middle = second.len() / 2;
    for byte in &mut second[middle..middle + 100] {
        *byte ^= 0x5A;
    }
    let cas = hub_standin::XetCas::start().await.expect("CAS starts");
    let first_hash = cas.upload(&first).await.expect("upload");
    let second_hash = cas.upload(&second).await.expect("upload");
    let hub = Hub::new();
    let one = hub
        .repo(RepoKind::Model, REPO)
        .xet_file("model.safetensors", first.clone(), &first_hash)
        .commit("main");
    let world = World::start(hub).await;
    world.server.attach_xet(&cas);
    // The classic path refuses both files, for good.
    for data in [&first, &second] {
        world.server.inject(
            Fault::status(403, None)
                .sha256(&sha256_hex(data))
                .on(Route::ResolveGet)
                .on(Route::CdnGet)
                .forever(),
        );
    }
    let mut opts = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    opts.pull_through = true;
    let mirror = start(world.larder(), opts).await.expect("mirror starts");

    // A plain-HTTP client of a file the mirror does not hold: the mirror fetches it over Xet.
    let body = http()
        .get(format!(
            "{}/{REPO}/resolve/{one}/model.safetensors",
            mirror.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(body.status(), 200);
    assert!(body.bytes().await.unwrap() == first, "plain GET bytes");
    // The client has every byte once the file is verified; the transfer then publishes it,
    // learns its terms and reports what it fetched (all at once, over Xet) a moment later.
    let upstream = "larder_upstream_bytes_total{repo_type=\"model\",source=\"pull_through\"}";
    let fetched_first = once_reported(&mirror, upstream).await;
    assert!(
        fetched_first > 0,
        "the first transfer never reported what it fetched"
    );
    assert_eq!(
        metric(&mirror, "larder_xet_reused_bytes_total").await,
        0,
        "nothing was held to reuse"
    );

    // The update: a Xet client of the mirror asks for the new revision's file.
    let two = world
        .server
        .hub()
        .repo(RepoKind::Model, REPO)
        .base("main")
        .xet_file("model.safetensors", second.clone(), &second_hash)
        .commit("main");
    let hf_home = tempfile::tempdir().unwrap();
    let out = run_python(
        "import sys, huggingface_hub as h\nprint(h.hf_hub_download(sys.argv[1], 'model.safetensors', revision=sys.argv[2]))",
        &[REPO, &two],
        &[
            ("HF_ENDPOINT", &mirror.url()),
            ("HF_HOME", hf_home.path().to_str().unwrap()),
        ],
    );
    assert!(
        std::fs::read(out.trim()).unwrap() == second,
        "Xet client bytes"
    );
    assert!(world.blob_path(&sha256_hex(&second)).exists());
    // As above: the update's transfer reports what it reused and fetched as it ends.
    let reused = once_reported(&mirror, "larder_xet_reused_bytes_total").await;
    let moved = metric(&mirror, upstream).await - fetched_first;
    eprintln!(
        "pull-through update: fetched {moved} of {} bytes, reused {reused}",
        second.len()
    );
    assert!(
        reused >= second.len() as u64 / 2,
        "held chunks were copied ({reused} bytes)"
    );
    assert!(
        moved < second.len() as u64 / 2,
        "the update fetched {moved} bytes"
    );
    mirror.stop().await.unwrap();
}
