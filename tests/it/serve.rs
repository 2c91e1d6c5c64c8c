//! `larder serve`: real Hub clients (huggingface_hub, the `hf` CLI, the hf-hub crate) and the
//! protocol's edge cases over HTTP, against a mirror filled from the stand-in; then
//! pull-through from the stand-in as upstream.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hub_standin::{Fault, Hub, RepoKind};
use larder::hub::RepoType;
use larder::registry::{FileRecord, LicenceFields, RepoKind as Kind, SnapshotRecord};
use larder::serve::{RunningMirror, ServeOptions, start};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{World, content, options, pull_with, python, sha256_hex};

const TOKEN: &str = "hf_serve_test_token";

/// Files of `acme/tiny` at main.
fn tiny_files() -> Vec<(&'static str, Vec<u8>, bool)> {
    vec![
        (
            "config.json",
            br#"{"architectures":["LlamaForCausalLM"]}"#.to_vec(),
            false,
        ),
        ("tokenizer.json", content(1, 300_000), false),
        ("model.safetensors", content(2, 3 << 20), true),
        ("sub/dir/notes.md", b"# notes\n".to_vec(), false),
        ("weird name#1+x.txt", b"odd name\n".to_vec(), false),
        ("empty.txt", Vec::new(), false),
    ]
}

struct Fixture {
    world: World,
    mirror: RunningMirror,
    commit: String,
    pr_commit: String,
    files: BTreeMap<String, Vec<u8>>,
}

fn build_hub() -> Hub {
    let hub = Hub::new();
    let mut builder = hub
        .repo(RepoKind::Model, "acme/tiny")
        .card(json!({"license": "apache-2.0"}));
    for (path, bytes, lfs) in tiny_files() {
        builder = if lfs {
            builder.lfs_file(path, bytes)
        } else {
            builder.regular_file(path, bytes)
        };
    }
    builder.commit("main");
    hub.repo(RepoKind::Model, "acme/tiny")
        .base("main")
        .regular_file("pr.txt", b"from the PR\n".to_vec())
        .commit("refs/pr/1");
    hub.repo(RepoKind::Dataset, "acme/data")
        .regular_file("data/train.csv", b"a,b\n1,2\n".to_vec())
        .lfs_file("data/big.parquet", content(5, 1 << 20))
        .commit("main");
    hub.repo(RepoKind::Model, "acme/gated")
        .gated("manual")
        .regular_file("config.json", b"{}".to_vec())
        .lfs_file("model.safetensors", content(6, 200_000))
        .commit("main");
    hub.repo(RepoKind::Model, "acme/partial")
        .regular_file("config.json", b"{\"partial\":true}".to_vec())
        .lfs_file("big.bin", content(7, 500_000))
        .commit("main");
    hub.accept_token("acme/gated", TOKEN);
    hub
}

async fn fill(world: &World) {
    let larder = world.larder();
    for revision in ["main", "refs/pr/1"] {
        pull_with(&larder, &options("acme/tiny", revision))
            .await
            .0
            .expect("pull tiny");
    }
    let mut dataset = options("acme/data", "main");
    dataset.kind = RepoType::Dataset;
    pull_with(&larder, &dataset).await.0.expect("pull dataset");
    let mut partial = options("acme/partial", "main");
    partial.include = vec!["config.json".into()];
    pull_with(&larder, &partial).await.0.expect("pull partial");
    let authorised = world.larder_with_token(TOKEN);
    pull_with(&authorised, &options("acme/gated", "main"))
        .await
        .0
        .expect("pull gated");
}

async fn fixture() -> Fixture {
    let world = World::start(build_hub()).await;
    fill(&world).await;
    let hub = world.server.hub();
    let commit = hub.resolve(RepoKind::Model, "acme/tiny", "main").unwrap();
    let pr_commit = hub
        .resolve(RepoKind::Model, "acme/tiny", "refs/pr/1")
        .unwrap();
    // The plain-HTTP conformance suite (hub-protocol.md §9): the mirror with Xet hidden, as
    // `--no-xet` runs it. The Xet side is tested in `xet_mirror.rs`.
    let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    options.xet = false;
    let mirror = start(world.larder(), options).await.expect("mirror starts");
    let files = tiny_files()
        .into_iter()
        .map(|(p, b, _)| (p.to_owned(), b))
        .collect();
    Fixture {
        world,
        mirror,
        commit,
        pr_commit,
        files,
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_gzip()
        .build()
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// No response of the mirror may steer a client to Xet or off the mirror.
fn assert_plain(response: &reqwest::Response) {
    for (name, value) in response.headers() {
        assert!(!name.as_str().starts_with("x-xet"), "{name} sent");
        assert!(
            !(name == "link" && value.to_str().unwrap_or("").contains("xet")),
            "xet link sent"
        );
    }
    assert!(
        response.headers().get("location").is_none(),
        "redirect sent"
    );
    assert!(
        response.headers().get("content-encoding").is_none(),
        "encoded body"
    );
}

// ---- real clients ------------------------------------------------------------------------

fn py_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(name)
}

/// Run a client with a fresh-or-given HF_HOME pointed at the mirror.
fn client_env(command: &mut Command, endpoint: &str, hf_home: &Path, offline: bool) {
    command
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HOME", hf_home)
        .env("HF_HUB_DISABLE_XET", "1")
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_ETAG_TIMEOUT", "30")
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_CACHE")
        .env_remove("HUGGINGFACE_HUB_CACHE");
    if offline {
        command.env("HF_HUB_OFFLINE", "1");
    } else {
        command.env_remove("HF_HUB_OFFLINE");
    }
}

async fn run_output(mut command: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().expect("client runs"))
        .await
        .unwrap()
}

fn check_digests(report: &Value, key: &str, expected: &BTreeMap<String, Vec<u8>>) {
    let got = report[key]
        .as_object()
        .unwrap_or_else(|| panic!("{key} missing in {report}"));
    assert_eq!(got.len(), expected.len(), "{key}: {got:?}");
    for (path, bytes) in expected {
        assert_eq!(
            got[path].as_str(),
            Some(sha256_hex(bytes).as_str()),
            "{key}: {path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn huggingface_hub_downloads_through_the_mirror_then_offline() {
    let f = fixture().await;
    let python = python();
    let hf_home = tempfile::tempdir().unwrap();
    let mut report = None;
    for offline in [false, true] {
        let mut command = Command::new(&python);
        command.arg(py_script("hf_clients.py")).arg(&f.commit);
        client_env(&mut command, &f.mirror.url(), hf_home.path(), offline);
        let output = run_output(command).await;
        assert!(
            output.status.success(),
            "offline={offline}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let value: Value = serde_json::from_slice(&output.stdout).expect("script prints JSON");
        check_digests(&value, "snapshot", &f.files);
        let jsons: BTreeMap<String, Vec<u8>> = f
            .files
            .iter()
            .filter(|(p, _)| p.ends_with(".json"))
            .map(|(p, b)| (p.clone(), b.clone()))
            .collect();
        check_digests(&value, "allow_patterns", &jsons);
        assert_eq!(
            value["by_branch"],
            json!(sha256_hex(&f.files["config.json"]))
        );
        assert_eq!(
            value["by_commit"],
            json!(sha256_hex(&f.files["model.safetensors"]))
        );
        assert_eq!(value["pr"], json!(sha256_hex(b"from the PR\n")));
        assert_eq!(
            value["dataset"]["data/train.csv"],
            json!(sha256_hex(b"a,b\n1,2\n"))
        );
        assert_eq!(
            value["dataset"]["data/big.parquet"],
            json!(sha256_hex(&content(5, 1 << 20)))
        );
        if !offline {
            assert_eq!(value["missing"], json!("EntryNotFound"));
            assert_eq!(value["info_sha"], json!(f.commit));
            assert_eq!(value["tree_files"], json!(f.files.len()));
        }
        report = Some(value);
    }
    // The cache matches one filled from the Hub: blobs named by the Hub's etags.
    let blobs = hf_home.path().join("hub/models--acme--tiny/blobs");
    let model = f.files["model.safetensors"].clone();
    assert_eq!(
        std::fs::read(blobs.join(sha256_hex(&model))).unwrap(),
        model
    );
    let config_oid = hub_standin::hash::git_hash(&f.files["config.json"]);
    assert!(blobs.join(config_oid).is_file());
    let refs =
        std::fs::read_to_string(hf_home.path().join("hub/models--acme--tiny/refs/main")).unwrap();
    assert_eq!(refs, f.commit);
    drop(report);
    f.mirror.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hf_cli_downloads_through_the_mirror() {
    let f = fixture().await;
    let hf = python().with_file_name("hf");
    assert!(
        hf.exists(),
        "no `hf` CLI next to the Python at {}",
        hf.display()
    );
    let hf_home = tempfile::tempdir().unwrap();
    for offline in [false, true] {
        let mut command = Command::new(&hf);
        command.args(["download", "acme/tiny"]);
        client_env(&mut command, &f.mirror.url(), hf_home.path(), offline);
        let output = run_output(command).await;
        assert!(
            output.status.success(),
            "offline={offline}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        // The last line is the snapshot path, bare or as `path: …` (newer CLIs).
        let last = stdout.trim().lines().last().unwrap_or("").trim();
        let snapshot = PathBuf::from(last.strip_prefix("path:").unwrap_or(last).trim());
        assert!(snapshot.ends_with(&f.commit), "{stdout}");
        for (path, bytes) in &f.files {
            let got = std::fs::read(snapshot.join(path)).unwrap_or_else(|e| {
                panic!("{path} in {}: {e}\nstdout: {stdout}", snapshot.display())
            });
            assert_eq!(&got, bytes, "{path}");
        }
    }
    // One file by commit, into a local dir.
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(&hf);
    command
        .args([
            "download",
            "datasets/acme/data".trim_start_matches("datasets/"),
            "data/big.parquet",
        ])
        .args([
            "--repo-type",
            "dataset",
            "--revision",
            "main",
            "--local-dir",
        ])
        .arg(dir.path());
    client_env(&mut command, &f.mirror.url(), hf_home.path(), false);
    let output = run_output(command).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        std::fs::read(dir.path().join("data/big.parquet")).unwrap(),
        content(5, 1 << 20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hf_hub_crate_downloads_through_the_mirror() {
    use hf_hub::api::tokio::ApiBuilder;
    use hf_hub::{Repo, RepoType as HfType};
    let f = fixture().await;
    let cache = tempfile::tempdir().unwrap();
    let api = ApiBuilder::new()
        .with_endpoint(f.mirror.url())
        .with_cache_dir(cache.path().to_path_buf())
        .with_progress(false)
        .build()
        .unwrap();
    let repo = api.model("acme/tiny".to_owned());
    let info = repo.info().await.expect("info");
    assert_eq!(info.sha, f.commit);
    assert_eq!(info.siblings.len(), f.files.len());
    for (path, bytes) in &f.files {
        if bytes.is_empty() || path.contains('#') {
            // hf-hub 0.x probes with Range 0-0, which a 0-byte file cannot satisfy, and puts
            // file names into URLs unencoded, so `#` starts a fragment.
            continue;
        }
        let local = repo
            .get(path)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(&std::fs::read(local).unwrap(), bytes, "{path}");
    }
    let pr = api.repo(Repo::with_revision(
        "acme/tiny".to_owned(),
        HfType::Model,
        "refs/pr/1".to_owned(),
    ));
    assert_eq!(pr.info().await.unwrap().sha, f.pr_commit);
    assert_eq!(
        std::fs::read(pr.get("pr.txt").await.unwrap()).unwrap(),
        b"from the PR\n"
    );
    let data = api.dataset("acme/data".to_owned());
    let local = data.get("data/big.parquet").await.unwrap();
    assert_eq!(std::fs::read(local).unwrap(), content(5, 1 << 20));
    // Chunked parallel download of a larger file: ranges must be exact and clamped.
    let api = ApiBuilder::new()
        .with_endpoint(f.mirror.url())
        .with_cache_dir(tempfile::tempdir().unwrap().keep())
        .with_progress(false)
        .with_chunk_size(Some(1_000_000))
        .build()
        .unwrap();
    let local = api
        .model("acme/tiny".to_owned())
        .get("model.safetensors")
        .await
        .unwrap();
    assert_eq!(std::fs::read(local).unwrap(), f.files["model.safetensors"]);
}

// ---- the protocol over HTTP --------------------------------------------------------------

#[tokio::test]
async fn resolve_headers_on_head_and_get() {
    let f = fixture().await;
    let client = http();
    let base = f.mirror.url();
    let model = &f.files["model.safetensors"];
    let config = &f.files["config.json"];
    for method in [reqwest::Method::HEAD, reqwest::Method::GET] {
        // LFS file.
        let r = client
            .request(
                method.clone(),
                format!("{base}/acme/tiny/resolve/main/model.safetensors"),
            )
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_plain(&r);
        let sha = sha256_hex(model);
        assert_eq!(header(&r, "x-repo-commit"), Some(f.commit.as_str()));
        assert_eq!(header(&r, "etag"), Some(format!("\"{sha}\"").as_str()));
        assert_eq!(
            header(&r, "x-linked-etag"),
            Some(format!("\"{sha}\"").as_str())
        );
        assert_eq!(
            header(&r, "x-linked-size"),
            Some(model.len().to_string().as_str())
        );
        assert_eq!(
            header(&r, "content-length"),
            Some(model.len().to_string().as_str())
        );
        assert_eq!(header(&r, "accept-ranges"), Some("bytes"));
        let body = r.bytes().await.unwrap();
        if method == reqwest::Method::GET {
            assert_eq!(&body[..], &model[..]);
        } else {
            assert!(body.is_empty());
        }
        // Regular file: ETag is the git blob oid, no X-Linked-Etag.
        let r = client
            .request(
                method.clone(),
                format!("{base}/acme/tiny/resolve/{}/config.json", f.commit),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_plain(&r);
        let oid = hub_standin::hash::git_hash(config);
        assert_eq!(header(&r, "etag"), Some(format!("\"{oid}\"").as_str()));
        assert_eq!(header(&r, "x-linked-etag"), None);
        assert_eq!(header(&r, "x-repo-commit"), Some(f.commit.as_str()));
        assert_eq!(
            header(&r, "content-length"),
            Some(config.len().to_string().as_str())
        );
        // Names needing percent-encoding, and an empty file.
        let r = client
            .request(
                method.clone(),
                format!("{base}/acme/tiny/resolve/main/weird%20name%231%2Bx.txt"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = client
            .request(
                method.clone(),
                format!("{base}/acme/tiny/resolve/main/empty.txt"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-length"), Some("0"));
        // Dataset prefix.
        let r = client
            .request(
                method.clone(),
                format!("{base}/datasets/acme/data/resolve/main/data/train.csv"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-length"), Some("8"));
    }
    // If-None-Match → 304 with the metadata.
    let sha = sha256_hex(model);
    let r = client
        .head(format!("{base}/acme/tiny/resolve/main/model.safetensors"))
        .header("if-none-match", format!("\"{sha}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&r, "x-repo-commit"), Some(f.commit.as_str()));
    let r = client
        .get(format!("{base}/acme/tiny/resolve/main/model.safetensors"))
        .header("if-none-match", "\"0000\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_range_form() {
    let f = fixture().await;
    let client = http();
    let url = format!(
        "{}/acme/tiny/resolve/main/model.safetensors",
        f.mirror.url()
    );
    let model = &f.files["model.safetensors"];
    let size = model.len() as u64;
    let cases: Vec<(String, u64, u64)> = vec![
        ("bytes=0-0".into(), 0, 0),
        ("bytes=100-".into(), 100, size - 1),
        ("bytes=100-199".into(), 100, 199),
        (format!("bytes=10-{size}"), 10, size - 1),
        (format!("bytes=10-{}", size + 5000), 10, size - 1),
        ("bytes=-500".into(), size - 500, size - 1),
        (format!("bytes=-{}", size * 2), 0, size - 1),
        (format!("bytes={}-", size - 1), size - 1, size - 1),
    ];
    for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
        for (range, start, end) in &cases {
            let r = client
                .request(method.clone(), &url)
                .header("range", range)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
            assert_plain(&r);
            assert_eq!(
                header(&r, "content-range"),
                Some(format!("bytes {start}-{end}/{size}").as_str()),
                "{range}"
            );
            assert_eq!(
                header(&r, "content-length"),
                Some((end - start + 1).to_string().as_str()),
                "{range}"
            );
            assert_eq!(header(&r, "x-repo-commit"), Some(f.commit.as_str()));
            assert!(header(&r, "etag").is_some());
            let body = r.bytes().await.unwrap();
            if method == reqwest::Method::GET {
                assert_eq!(
                    &body[..],
                    &model[*start as usize..=*end as usize],
                    "{range}"
                );
            }
        }
        for range in [
            format!("bytes={size}-"),
            format!("bytes={}-{}", size + 1, size + 9),
            "bytes=-0".into(),
        ] {
            let r = client
                .request(method.clone(), &url)
                .header("range", &range)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
            assert_eq!(
                header(&r, "content-range"),
                Some(format!("bytes */{size}").as_str())
            );
        }
    }
    // A malformed range is ignored: the whole file.
    let r = client
        .get(&url)
        .header("range", "bytes=9-3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().len() as u64, size);
    // An empty file cannot satisfy any range.
    let empty = format!("{}/acme/tiny/resolve/main/empty.txt", f.mirror.url());
    let r = client
        .get(&empty)
        .header("range", "bytes=0-0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&r, "content-range"), Some("bytes */0"));
}

async fn expect_error(
    client: &reqwest::Client,
    request: reqwest::RequestBuilder,
    status: u16,
    code: Option<&str>,
) -> reqwest::Response {
    let _ = client;
    let r = request.send().await.unwrap();
    assert_eq!(r.status().as_u16(), status, "{}", r.url());
    assert_eq!(header(&r, "x-error-code"), code, "{}", r.url());
    assert_plain(&r);
    r
}

#[tokio::test]
async fn error_codes() {
    let f = fixture().await;
    let c = http();
    let base = f.mirror.url();
    // Unknown repo: 401 anonymous, 404 with a token, JSON body.
    let r = expect_error(
        &c,
        c.get(format!("{base}/acme/nope/resolve/main/x")),
        401,
        Some("RepoNotFound"),
    )
    .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], json!("Repository not found"));
    expect_error(
        &c,
        c.head(format!("{base}/acme/nope/resolve/main/x"))
            .bearer_auth("hf_x"),
        404,
        Some("RepoNotFound"),
    )
    .await;
    expect_error(
        &c,
        c.get(format!("{base}/api/models/acme/nope")),
        401,
        Some("RepoNotFound"),
    )
    .await;
    expect_error(
        &c,
        c.get(format!("{base}/api/models/acme/nope/tree/main")),
        401,
        Some("RepoNotFound"),
    )
    .await;
    expect_error(
        &c,
        c.get(format!("{base}/api/spaces/acme/tiny")),
        401,
        Some("RepoNotFound"),
    )
    .await;
    expect_error(
        &c,
        c.get(format!("{base}/spaces/acme/tiny/resolve/main/x")),
        401,
        Some("RepoNotFound"),
    )
    .await;
    // Unknown revision.
    let r = expect_error(
        &c,
        c.head(format!("{base}/acme/tiny/resolve/nobranch/config.json")),
        404,
        Some("RevisionNotFound"),
    )
    .await;
    assert!(header(&r, "x-error-message").unwrap().contains("nobranch"));
    expect_error(
        &c,
        c.get(format!("{base}/api/models/acme/tiny/revision/nobranch")),
        404,
        Some("RevisionNotFound"),
    )
    .await;
    expect_error(
        &c,
        c.get(format!(
            "{base}/api/models/acme/tiny/revision/{}",
            "0".repeat(40)
        )),
        404,
        Some("RevisionNotFound"),
    )
    .await;
    // Missing file: EntryNotFound with the commit, on HEAD and GET.
    for method in [reqwest::Method::HEAD, reqwest::Method::GET] {
        let r = expect_error(
            &c,
            c.request(method, format!("{base}/acme/tiny/resolve/main/nope.json")),
            404,
            Some("EntryNotFound"),
        )
        .await;
        assert_eq!(header(&r, "x-repo-commit"), Some(f.commit.as_str()));
    }
    // A directory is not a file.
    expect_error(
        &c,
        c.head(format!("{base}/acme/tiny/resolve/main/sub/dir")),
        404,
        Some("EntryNotFound"),
    )
    .await;
    expect_error(
        &c,
        c.get(format!("{base}/api/models/acme/tiny/tree/main/nope")),
        404,
        Some("EntryNotFound"),
    )
    .await;
    // Gated: metadata is public, content is not; offline nothing can confirm a token.
    let r = c
        .get(format!("{base}/api/models/acme/gated/revision/main"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["gated"], json!("manual"));
    expect_error(
        &c,
        c.head(format!("{base}/acme/gated/resolve/main/model.safetensors")),
        401,
        Some("GatedRepo"),
    )
    .await;
    expect_error(
        &c,
        c.get(format!("{base}/acme/gated/resolve/main/config.json")),
        401,
        Some("GatedRepo"),
    )
    .await;
    expect_error(
        &c,
        c.get(format!("{base}/acme/gated/resolve/main/config.json"))
            .bearer_auth(TOKEN),
        403,
        Some("GatedRepo"),
    )
    .await;
    // Listed but not held, offline: 503 with a message and the commit.
    let r = expect_error(
        &c,
        c.head(format!("{base}/acme/partial/resolve/main/big.bin")),
        503,
        None,
    )
    .await;
    assert!(header(&r, "x-error-message").unwrap().contains("offline"));
    assert!(header(&r, "x-repo-commit").is_some());
    let r = c
        .head(format!("{base}/acme/partial/resolve/main/config.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Xet token routes and unknown routes: plain 404.
    expect_error(
        &c,
        c.get(format!("{base}/api/models/acme/tiny/xet-read-token/main")),
        404,
        None,
    )
    .await;
    expect_error(
        &c,
        c.get(format!(
            "{base}/api/models/acme/tiny/xet-read-token/{}",
            f.commit
        )),
        404,
        None,
    )
    .await;
    expect_error(
        &c,
        c.get(format!("{base}/acme/tiny/blob/main/config.json")),
        404,
        None,
    )
    .await;
    expect_error(
        &c,
        c.get(format!("{base}/acme/tiny/resolve/%ff/config.json")),
        400,
        None,
    )
    .await;
}

#[tokio::test]
async fn revisions_encoded_literal_and_by_commit() {
    let f = fixture().await;
    let c = http();
    let base = f.mirror.url();
    let pr_body = b"from the PR\n";
    for url in [
        format!("{base}/acme/tiny/resolve/refs%2Fpr%2F1/pr.txt"),
        format!("{base}/acme/tiny/resolve/refs/pr/1/pr.txt"),
        format!("{base}//acme/tiny/resolve/refs/pr/1/pr.txt"),
        format!("{base}/acme/tiny/resolve/{}/pr.txt", f.pr_commit),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{url}");
        assert_eq!(
            header(&r, "x-repo-commit"),
            Some(f.pr_commit.as_str()),
            "{url}"
        );
        assert_eq!(&r.bytes().await.unwrap()[..], pr_body);
    }
    // A file in a sub-directory of refs/pr/1, literal slashes all the way.
    let r = c
        .get(format!(
            "{base}/acme/tiny/resolve/refs/pr/1/sub/dir/notes.md"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(&r.bytes().await.unwrap()[..], b"# notes\n");
    // pr.txt is not on main.
    let r = c
        .head(format!("{base}/acme/tiny/resolve/main/pr.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&r, "x-repo-commit"), Some(f.commit.as_str()));
    for url in [
        format!("{base}/api/models/acme/tiny/revision/refs%2Fpr%2F1"),
        format!("{base}/api/models/acme/tiny/revision/refs/pr/1"),
        format!("{base}//api/models/acme/tiny/revision/{}", f.pr_commit),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{url}");
        assert_eq!(
            r.json::<Value>().await.unwrap()["sha"],
            json!(f.pr_commit),
            "{url}"
        );
    }
    for url in [
        format!("{base}/api/models/acme/tiny/tree/refs%2Fpr%2F1/sub%2Fdir"),
        format!("{base}/api/models/acme/tiny/tree/refs/pr/1/sub/dir"),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{url}");
        let entries: Value = r.json().await.unwrap();
        assert_eq!(entries[0]["path"], json!("sub/dir/notes.md"), "{url}");
    }
}

#[tokio::test]
async fn repo_info_shapes() {
    let f = fixture().await;
    let c = http();
    let base = f.mirror.url();
    let date_ok = |v: &Value| {
        let s = v.as_str().unwrap();
        s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T'
    };
    for url in [
        format!("{base}/api/models/acme/tiny"),
        format!("{base}/api/models/acme/tiny/revision/main"),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_plain(&r);
        let info: Value = r.json().await.unwrap();
        assert_eq!(info["id"], json!("acme/tiny"));
        assert_eq!(info["sha"], json!(f.commit));
        assert_eq!(info["private"], json!(false));
        assert_eq!(info["gated"], json!(false));
        assert_eq!(info["disabled"], json!(false));
        assert!(
            date_ok(&info["lastModified"]) && date_ok(&info["createdAt"]),
            "{info}"
        );
        let names: Vec<&str> = info["siblings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["rfilename"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), f.files.len());
        assert!(info["siblings"][0].get("size").is_none());
        assert!(!info.to_string().contains("xetHash"));
    }
    let info: Value = c
        .get(format!(
            "{base}/api/models/acme/tiny/revision/main?blobs=true"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let model = f.files["model.safetensors"].clone();
    let sibling = info["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["rfilename"] == "model.safetensors")
        .unwrap();
    assert_eq!(sibling["size"], json!(model.len()));
    assert_eq!(sibling["lfs"]["sha256"], json!(sha256_hex(&model)));
    assert_eq!(sibling["lfs"]["size"], json!(model.len()));
    assert_eq!(
        sibling["lfs"]["pointerSize"],
        json!(125 + model.len().to_string().len())
    );
    assert_eq!(
        sibling["blobId"],
        json!(hub_standin::hash::lfs_pointer_oid(
            &sha256_hex(&model),
            model.len() as u64
        ))
    );
    let config = info["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["rfilename"] == "config.json")
        .unwrap();
    assert_eq!(
        config["blobId"],
        json!(hub_standin::hash::git_hash(&f.files["config.json"]))
    );
    assert!(config.get("lfs").is_none());
    // expand returns only what was asked (plus id), in both spellings.
    for q in [
        "expand=sha&expand=siblings",
        "expand%5B%5D=sha&expand%5B%5D=siblings",
    ] {
        let info: Value = c
            .get(format!("{base}/api/models/acme/tiny?{q}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut keys: Vec<&String> = info.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["_id", "id", "sha", "siblings"], "{q}");
    }
    // Datasets.
    let info: Value = c
        .get(format!("{base}/api/datasets/acme/data/revision/main"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["id"], json!("acme/data"));
    assert_eq!(info["siblings"].as_array().unwrap().len(), 2);
    // The upstream's answer for the same commit lists the same files.
    let upstream: Value = c
        .get(format!(
            "{}/api/models/acme/tiny/revision/main",
            f.world.server.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        upstream["siblings"].as_array().unwrap().len(),
        f.files.len()
    );
}

#[tokio::test]
async fn paths_info_form_and_json() {
    let f = fixture().await;
    let c = http();
    let url = format!("{}/api/models/acme/tiny/paths-info/main", f.mirror.url());
    let form = c
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            "paths=config.json&paths=sub%2Fdir&paths=nope.bin&paths=model.safetensors&expand=false",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let form: Value = form.json().await.unwrap();
    let json_body: Value = c
        .post(&url)
        .json(&json!({"paths": ["config.json", "sub/dir", "nope.bin", "model.safetensors"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(form, json_body);
    let entries = form.as_array().unwrap();
    assert_eq!(entries.len(), 3, "{form}");
    assert_eq!(entries[0]["type"], json!("file"));
    assert_eq!(
        entries[0]["oid"],
        json!(hub_standin::hash::git_hash(&f.files["config.json"]))
    );
    assert_eq!(entries[1]["type"], json!("directory"));
    assert_eq!(entries[1]["oid"].as_str().unwrap().len(), 40);
    assert_eq!(
        entries[2]["lfs"]["oid"],
        json!(sha256_hex(&f.files["model.safetensors"]))
    );
    assert!(!form.to_string().contains("xetHash"));
    // Directory oids are the upstream's (real git tree oids).
    let upstream: Value = c
        .get(format!(
            "{}/api/models/acme/tiny/tree/main/sub?recursive=false",
            f.world.server.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(upstream[0]["path"], json!("sub/dir"));
    assert_eq!(entries[1]["oid"], upstream[0]["oid"], "tree oid of sub/dir");
}

#[tokio::test]
async fn tree_of_thousands_of_files_paginates_with_absolute_links() {
    let world = World::start(Hub::new()).await;
    let larder = world.larder();
    let commit = "c".repeat(40);
    let files: Vec<FileRecord> = (0..2345)
        .map(|i| FileRecord {
            path: format!("shard{:02}/file{i:05}.bin", i % 12),
            size: i,
            git_oid: format!("{:040x}", i + 1),
            sha256: None,
            lfs: false,
        })
        .collect();
    larder
        .registry
        .record_snapshot(SnapshotRecord {
            kind: Kind::Model,
            name: "acme/huge".into(),
            upstream: world.server.url(),
            gated: None,
            private: false,
            commit: commit.clone(),
            card_json: None,
            refs: vec!["main".into()],
            seen_at: 1_700_000_000,
            files,
            licence: LicenceFields::default(),
        })
        .await
        .unwrap();
    for public in [None, Some("https://mirror.example.org/hf/")] {
        let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap());
        options.public_url = public.map(str::to_owned);
        let mirror = start(world.larder(), options).await.unwrap();
        let c = http();
        let origin = public
            .map(|p| p.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| mirror.url());
        let mut url = format!(
            "{}/api/models/acme/huge/tree/main?recursive=True&expand=false",
            mirror.url()
        );
        let mut pages = 0;
        let mut seen = Vec::new();
        loop {
            let r = c.get(&url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let link = header(&r, "link").map(str::to_owned);
            let page: Vec<Value> = r.json().await.unwrap();
            assert!(page.len() <= 1000);
            pages += 1;
            seen.extend(
                page.into_iter()
                    .map(|e| e["path"].as_str().unwrap().to_owned()),
            );
            let Some(link) = link else { break };
            assert!(link.ends_with("; rel=\"next\""), "{link}");
            let next = link
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap()
                .to_owned();
            assert!(
                next.starts_with(&format!("{origin}/api/models/acme/huge/tree/")),
                "{next}"
            );
            // Behind the proxy the Link is the public URL; follow it on the mirror.
            url = next.replacen(&origin, &mirror.url(), 1);
        }
        assert_eq!(pages, 3);
        assert_eq!(seen.len(), 2345 + 12);
        let unique: std::collections::BTreeSet<_> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len());
        // Non-recursive at the root lists the 12 directories, one page, no Link.
        let r = c
            .get(format!("{}/api/models/acme/huge/tree/main", mirror.url()))
            .send()
            .await
            .unwrap();
        assert!(header(&r, "link").is_none());
        assert_eq!(r.json::<Vec<Value>>().await.unwrap().len(), 12);
        // Python's form: the sub-directory path percent-encoded in one segment.
        let r = c
            .get(format!(
                "{}/api/models/acme/huge/tree/{commit}/shard03?recursive=1",
                mirror.url()
            ))
            .send()
            .await
            .unwrap();
        let page: Vec<Value> = r.json().await.unwrap();
        assert_eq!(page.len(), 2345 / 12 + 1);
        mirror.stop().await.unwrap();
    }
    // The siblings list is complete too.
    let mirror = start(
        world.larder(),
        ServeOptions::new("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap();
    let info: Value = http()
        .get(format!(
            "{}/api/models/acme/huge/revision/main",
            mirror.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["siblings"].as_array().unwrap().len(), 2345);
}

// ---- pull-through ------------------------------------------------------------------------

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
            .file(Kind::Model, "acme/cold", commit, path)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn access_tokens_restrict_the_mirror_and_admin_tokens_the_job_api() {
    use larder::serve::access::{AccessRules, TokenSet};
    let world = World::start(build_hub()).await;
    fill(&world).await;
    let mut larder = world.larder();
    larder.client =
        larder::hub::HubClient::new(larder::hub::ClientSettings::new(world.server.url())).unwrap();
    let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    options.pull_through = true;
    options.jobs.workers = 0; // accept jobs, run none
    let lab_hashed = format!("sha256:{}", sha256_hex(b"hf_lab_second"));
    options.access = AccessRules {
        tokens: TokenSet::parse(&["hf_lab".to_owned(), lab_hashed]).unwrap(),
        admin_tokens: TokenSet::parse(&["root-secret"]).unwrap(),
    };
    let mirror = start(larder, options).await.unwrap();
    let c = http();
    let info = format!("{}/api/models/acme/tiny", mirror.url());
    let r = c.get(&info).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        header(&r, "x-error-message")
            .unwrap()
            .contains("access token")
    );
    assert!(header(&r, "www-authenticate").is_some());
    for token in ["hf_wrong", "hf_lab_secon"] {
        let r = c.get(&info).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{token}");
    }
    for token in ["hf_lab", "hf_lab_second", "root-secret"] {
        let r = c.get(&info).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{token}");
    }
    let r = c
        .get(format!("{}/healthz", mirror.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .get(format!("{}/metrics", mirror.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Jobs: reading with a user token, changing only with an admin token (even from loopback).
    let jobs = format!("{}/v1/jobs", mirror.url());
    let body = json!({"kind": "pull", "repo": "acme/tiny"});
    let r = c
        .post(&jobs)
        .bearer_auth("hf_lab")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        header(&r, "x-error-message")
            .unwrap()
            .contains("admin token")
    );
    let r = c
        .post(&jobs)
        .bearer_auth("root-secret")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = c.get(&jobs).bearer_auth("hf_lab").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // A real client: huggingface_hub sends HF_TOKEN and gets through; without it, refused
    // (each run with its own cache, since the client would fall back to a cached copy).
    let script = "import sys\nfrom huggingface_hub import hf_hub_download\n\
                  p = hf_hub_download('acme/tiny', 'config.json')\n\
                  sys.stdout.write(open(p).read())";
    for token in [Some("hf_lab"), None] {
        let hf_home = tempfile::tempdir().unwrap();
        let mut command = Command::new(python());
        command.arg("-c").arg(script);
        client_env(&mut command, &mirror.url(), hf_home.path(), false);
        if let Some(token) = token {
            command.env("HF_TOKEN", token);
        }
        let output = run_output(command).await;
        assert_eq!(output.status.success(), token.is_some(), "{output:?}");
        if token.is_some() {
            let expected = &tiny_files()
                .into_iter()
                .find(|(p, _, _)| *p == "config.json")
                .unwrap()
                .1;
            assert_eq!(&output.stdout, expected);
        }
    }
    mirror.stop().await.unwrap();
}
