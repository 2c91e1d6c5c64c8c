//! Blobs and manifests in an S3-compatible bucket: a real S3 server (moto's, from the test
//! venv) on loopback, `larder` run as separate processes sharing it like cluster nodes.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64_STANDARD;
use hub_standin::{Hub, RepoKind};
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::common::{Served, World, content, python, sha256_hex};

/// Exit status of `larder verify` when it found bad blobs.
const EXIT_CORRUPT: i32 = 3;

/// A moto S3 server on an ephemeral loopback port, killed on drop.
pub struct S3Server {
    child: Child,
    pub endpoint: String,
    http: reqwest::Client,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl S3Server {
    pub async fn start() -> S3Server {
        let server = python().with_file_name("moto_server");
        assert!(
            server.exists(),
            "no moto_server at {}: run `.ci/setup`",
            server.display()
        );
        let port = free_port();
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let endpoint = format!("http://127.0.0.1:{port}");
        // moto checks no signatures, but treats requests without credentials as anonymous
        // (denied on private objects): any SigV4-shaped header makes them authenticated.
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, \
             SignedHeaders=host, Signature=0"
                .parse()
                .unwrap(),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap();
        let s3 = S3Server {
            child,
            endpoint,
            http,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if s3.http.get(&s3.endpoint).send().await.is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "moto_server did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        s3
    }

    pub async fn create_bucket(&self, bucket: &str) {
        let response = self
            .http
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }

    fn url(&self, bucket: &str, key: &str) -> String {
        format!("{}/{bucket}/{key}", self.endpoint)
    }

    pub async fn head(&self, bucket: &str, key: &str) -> StatusCode {
        self.http
            .head(self.url(bucket, key))
            .send()
            .await
            .unwrap()
            .status()
    }

    /// The SHA-256 checksum the server stored with an object (`x-amz-checksum-sha256`: base64
    /// of the digest, or of the parts' digests followed by `-N` for a multipart upload).
    pub async fn checksum(&self, bucket: &str, key: &str) -> Option<String> {
        let response = self
            .http
            .head(self.url(bucket, key))
            .header("x-amz-checksum-mode", "ENABLED")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "HEAD {key}");
        response
            .headers()
            .get("x-amz-checksum-sha256")
            .map(|v| v.to_str().unwrap().to_owned())
    }

    pub async fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        let response = self.http.get(self.url(bucket, key)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {key}");
        response.bytes().await.unwrap().to_vec()
    }

    pub async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) {
        let response = self
            .http
            .put(self.url(bucket, key))
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// Keys under `prefix` (ListObjectsV2).
    pub async fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let text = self
            .http
            .get(format!(
                "{}/{bucket}?list-type=2&prefix={prefix}",
                self.endpoint
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        xml_values(&text, "Key")
    }

    /// Multipart uploads in progress (ListMultipartUploads): their keys.
    pub async fn uploads(&self, bucket: &str) -> Vec<String> {
        let Ok(response) = self
            .http
            .get(format!("{}/{bucket}?uploads", self.endpoint))
            .send()
            .await
        else {
            return Vec::new();
        };
        xml_values(&response.text().await.unwrap_or_default(), "Key")
    }
}

fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(after[..end].to_owned());
        rest = &after[end + close.len()..];
    }
    out
}

/// A node: a home of its own, the shared bucket as its store.
struct Node {
    home: tempfile::TempDir,
    endpoint: String,
    store: String,
}

impl Node {
    fn new(s3: &S3Server, store: &str, upstream: &str, part_size: Option<u64>) -> Node {
        let home = tempfile::tempdir().unwrap();
        let mut config = format!(
            "[store]\nendpoint = \"{}\"\nregion = \"us-east-1\"\nallow_http = true\n",
            s3.endpoint
        );
        if let Some(size) = part_size {
            config.push_str(&format!("part_size = {size}\n"));
        }
        std::fs::write(home.path().join("config.toml"), config).unwrap();
        Node {
            home,
            endpoint: upstream.to_owned(),
            store: store.to_owned(),
        }
    }

    fn cli(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_larder"));
        command
            .env("LARDER_HOME", self.home.path())
            .env("HF_ENDPOINT", &self.endpoint)
            .env("LARDER_NO_PROGRESS", "1")
            .env_remove("HF_TOKEN")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_PROFILE")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("HF_HOME", self.home.path().join("no-hf-home"))
            .args(["--store", &self.store]);
        command
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        let output = self.cli().args(args).output().expect("larder runs");
        eprintln!(
            "larder {args:?}: {}\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn local_blobs(&self) -> usize {
        let dir = self.home.path().join("blobs/sha256");
        std::fs::read_dir(&dir)
            .map(|shards| {
                shards
                    .flatten()
                    .map(|s| std::fs::read_dir(s.path()).map_or(0, |e| e.count()))
                    .sum()
            })
            .unwrap_or(0)
    }

    /// `larder serve` on a free port until dropped.
    async fn serve(&self, extra: &[&str]) -> Served {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let child = self
            .cli()
            .args(["serve", "--addr", &addr])
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .expect("serve starts");
        let served = Served {
            child,
            url: format!("http://{addr}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{}/api/models", served.url))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "larder serve did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        served
    }
}

fn hub() -> Hub {
    let hub = Hub::new();
    hub.repo(RepoKind::Model, "acme/tiny")
        .card(json!({"license": "apache-2.0"}))
        .regular_file("config.json", br#"{"architectures":["X"]}"#.to_vec())
        .regular_file("tokenizer.json", content(11, 200_000))
        .lfs_file("model.safetensors", content(12, 6 << 20))
        .commit("main");
    hub.repo(RepoKind::Model, "acme/later")
        .regular_file("config.json", b"{\"later\":true}".to_vec())
        .lfs_file("weights.bin", content(13, 1 << 20))
        .commit("main");
    hub.repo(RepoKind::Model, "acme/big")
        .lfs_file("big.bin", content(14, 48 << 20))
        .commit("main");
    hub
}

fn blob_key(sha256: &str) -> String {
    format!("cluster/blobs/sha256/{}/{sha256}", &sha256[..2])
}

async fn fetch(client: &reqwest::Client, url: &str, range: Option<&str>) -> reqwest::Response {
    let mut request = client.get(url);
    if let Some(range) = range {
        request = request.header("Range", range);
    }
    request.send().await.unwrap()
}

/// Pull into the bucket on node A (multipart for the 6 MiB file with 5 MiB parts); node B,
/// with an empty home, reindexes and serves byte-identical files, ranges included, from the
/// bucket; a revision A pulls later is found by B on the first miss; huggingface_hub
/// downloads through B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_into_s3_then_serve_from_a_second_node() {
    let s3 = S3Server::start().await;
    s3.create_bucket("larder").await;
    let world = World::start(hub()).await;
    let store = "s3://larder/cluster";
    let a = Node::new(&s3, store, &world.server.url(), Some(5 << 20));
    assert!(a.run(&["pull", "acme/tiny"]).status.success());

    let model = content(12, 6 << 20);
    let model_sha = sha256_hex(&model);
    let tokenizer = content(11, 200_000);
    assert_eq!(s3.get("larder", &blob_key(&model_sha)).await, model);
    // Uploaded with checksums the server checked: the 6 MiB model went in two parts (5 MiB and
    // 1 MiB), each with its SHA-256; the object's checksum is the digest of those digests
    // (moto leaves out the `-2` suffix that AWS appends).
    let parts: Vec<u8> = model
        .chunks(5 << 20)
        .flat_map(|part| Sha256::digest(part).to_vec())
        .collect();
    let composite = BASE64_STANDARD.encode(Sha256::digest(&parts));
    let stored = s3.checksum("larder", &blob_key(&model_sha)).await;
    assert_eq!(
        stored.as_deref().map(|c| c.trim_end_matches("-2")),
        Some(composite.as_str())
    );
    assert_eq!(
        s3.get("larder", &blob_key(&sha256_hex(&tokenizer))).await,
        tokenizer
    );
    let commit = world
        .server
        .hub()
        .resolve(RepoKind::Model, "acme/tiny", "main")
        .unwrap();
    let manifests = s3.list("larder", "cluster/manifests/").await;
    assert_eq!(
        manifests,
        vec![format!("cluster/manifests/model/acme/tiny/{commit}.json")]
    );
    assert_eq!(
        s3.head("larder", "cluster/refs/model/acme/tiny/main.json")
            .await,
        StatusCode::OK
    );

    // Node B: nothing local; the bucket is the source of truth.
    let b = Node::new(&s3, store, "http://127.0.0.1:9", None);
    let out = b.run(&["reindex"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("reindexed 1 revisions (3 blobs held)"));
    let ls = b.run(&["ls"]);
    assert!(String::from_utf8_lossy(&ls.stdout).contains("acme/tiny"));
    let served = b.serve(&["--offline", "--rescan", "0"]).await;
    let client = reqwest::Client::new();
    let base = format!("{}/acme/tiny/resolve/main", served.url);
    let full = fetch(&client, &format!("{base}/model.safetensors"), None).await;
    assert_eq!(full.status(), StatusCode::OK);
    assert_eq!(full.headers()["x-repo-commit"], commit.as_str());
    assert_eq!(full.headers()["etag"], format!("\"{model_sha}\"").as_str());
    assert_eq!(full.bytes().await.unwrap().as_ref(), model.as_slice());
    for (range, start, end) in [
        ("bytes=0-0", 0, 0),
        ("bytes=1000-5242979", 1000, 5_242_979),
        ("bytes=-100", model.len() - 100, model.len() - 1),
    ] {
        let part = fetch(&client, &format!("{base}/model.safetensors"), Some(range)).await;
        assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            part.bytes().await.unwrap().as_ref(),
            &model[start..=end],
            "{range}"
        );
    }
    let small = fetch(&client, &format!("{base}/config.json"), None).await;
    assert_eq!(
        small.bytes().await.unwrap().as_ref(),
        br#"{"architectures":["X"]}"#
    );
    assert_eq!(b.local_blobs(), 0, "node B streamed from the bucket");

    // A pulls another repo; B (offline, no rescan) finds it on the first request.
    assert!(a.run(&["pull", "acme/later"]).status.success());
    let later = fetch(
        &client,
        &format!("{}/acme/later/resolve/main/weights.bin", served.url),
        None,
    )
    .await;
    assert_eq!(later.status(), StatusCode::OK);
    assert_eq!(later.bytes().await.unwrap().as_ref(), content(13, 1 << 20));

    // A real client through node B.
    let cache = tempfile::tempdir().unwrap();
    let script = format!(
        "import sys\nfrom huggingface_hub import hf_hub_download\n\
         p = hf_hub_download('acme/tiny', 'model.safetensors', cache_dir={:?})\n\
         sys.stdout.write(p)\n",
        cache.path()
    );
    let out = Command::new(python())
        .args(["-c", &script])
        .env("HF_ENDPOINT", &served.url)
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_XET", "1")
        .env_remove("HF_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).into_owned());
    assert_eq!(std::fs::read(path).unwrap(), model);
}

/// A pull killed while its multipart upload runs leaves no visible blob; pulling again
/// resumes from the verified local part and publishes the complete blob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_multipart_upload_leaves_no_visible_blob() {
    let s3 = S3Server::start().await;
    s3.create_bucket("larder").await;
    let world = World::start(hub()).await;
    let node = Node::new(
        &s3,
        "s3://larder/cluster",
        &world.server.url(),
        Some(5 << 20),
    );
    let big = content(14, 48 << 20);
    let key = blob_key(&sha256_hex(&big));

    let mut child = node
        .cli()
        .args(["pull", "acme/big"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let caught = loop {
        if s3.uploads("larder").await.contains(&key) {
            break true;
        }
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(caught, "the multipart upload was never seen in progress");
    assert_eq!(s3.head("larder", &key).await, StatusCode::NOT_FOUND);
    assert!(s3.list("larder", "cluster/blobs/").await.is_empty());
    assert!(s3.list("larder", "cluster/manifests/").await.is_empty());

    assert!(node.run(&["pull", "acme/big"]).status.success());
    assert_eq!(s3.get("larder", &key).await, big);
    assert_eq!(s3.list("larder", "cluster/manifests/").await.len(), 1);
}

/// `larder verify` over S3 hashes the bucket's objects: one overwritten through the S3 API is
/// reported (exit 3) and moved to `quarantine/`; the rest pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_over_s3_detects_a_corrupted_object() {
    let s3 = S3Server::start().await;
    s3.create_bucket("larder").await;
    let world = World::start(hub()).await;
    let node = Node::new(&s3, "s3://larder/cluster", &world.server.url(), None);
    assert!(node.run(&["pull", "acme/later"]).status.success());
    assert!(node.run(&["verify"]).status.success());

    let weights = content(13, 1 << 20);
    let key = blob_key(&sha256_hex(&weights));
    let mut bad = weights.clone();
    bad[1234] ^= 0xff;
    s3.put("larder", &key, bad).await;

    let out = node.run(&["verify", "--json"]);
    assert_eq!(out.status.code(), Some(EXIT_CORRUPT));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("corrupt"), "{stdout}");
    assert_eq!(s3.head("larder", &key).await, StatusCode::NOT_FOUND);
    let quarantined = s3.list("larder", "cluster/quarantine/").await;
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");

    // Pulling again repairs the bucket from upstream.
    assert!(node.run(&["pull", "acme/later"]).status.success());
    assert_eq!(s3.get("larder", &key).await, weights);
    assert!(node.run(&["verify"]).status.success());

    // The node's cached copy (served directly) is checked too; the bucket is left alone.
    let sha = sha256_hex(&weights);
    let cached = node
        .home
        .path()
        .join("blobs/sha256")
        .join(&sha[..2])
        .join(sha);
    let mut perms = std::fs::metadata(&cached).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&cached, perms).unwrap();
    let mut bad = weights.clone();
    bad[7] ^= 1;
    std::fs::write(&cached, bad).unwrap();
    let out = node.run(&["verify"]);
    assert_eq!(out.status.code(), Some(EXIT_CORRUPT));
    assert!(!cached.exists());
    assert_eq!(s3.get("larder", &key).await, weights);
}

/// `--redirect-to-store`: a content GET answers 302 to a presigned bucket URL with the Hub
/// headers on the redirect; following it yields the bytes. HEAD still answers directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_to_store_carries_hub_headers() {
    let s3 = S3Server::start().await;
    s3.create_bucket("larder").await;
    let world = World::start(hub()).await;
    let node = Node::new(&s3, "s3://larder/cluster", &world.server.url(), None);
    assert!(node.run(&["pull", "acme/later"]).status.success());
    let served = node
        .serve(&["--offline", "--redirect-to-store", "--rescan", "0"])
        .await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = format!("{}/acme/later/resolve/main/weights.bin", served.url);
    let weights = content(13, 1 << 20);
    let sha = sha256_hex(&weights);
    let response = fetch(&client, &url, None).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let headers = response.headers();
    assert!(headers.contains_key("x-repo-commit"));
    assert_eq!(headers["x-linked-etag"], format!("\"{sha}\"").as_str());
    assert_eq!(headers["x-linked-size"], (1u64 << 20).to_string().as_str());
    let location = headers["location"].to_str().unwrap().to_owned();
    assert!(location.contains(sha.as_str()), "{location}");
    let body = reqwest::get(&location)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.as_ref(), weights.as_slice());
    let head = client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
}

/// A `file://` store works like a bucket: manifests beside the blobs, reindex on another home.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_is_shared_like_a_bucket() {
    let world = World::start(hub()).await;
    let shared = tempfile::tempdir().unwrap();
    let url = format!("file://{}", shared.path().display());
    let node = |upstream: &str| {
        let home = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_larder"));
        command
            .env("LARDER_HOME", home.path())
            .env("HF_ENDPOINT", upstream)
            .env("LARDER_NO_PROGRESS", "1")
            .args(["--store", &url]);
        (home, command)
    };
    let (_a, mut pull) = node(&world.server.url());
    assert!(
        pull.args(["pull", "acme/later"])
            .status()
            .unwrap()
            .success()
    );
    let weights = content(13, 1 << 20);
    let sha = sha256_hex(&weights);
    let blob = shared.path().join("blobs/sha256").join(&sha[..2]).join(sha);
    assert_eq!(std::fs::read(blob).unwrap(), weights);
    assert!(has_json(&shared.path().join("manifests/model/acme/later")));
    let (b_home, mut reindex) = node("http://127.0.0.1:9");
    assert!(reindex.arg("reindex").status().unwrap().success());
    let out = Command::new(env!("CARGO_BIN_EXE_larder"))
        .env("LARDER_HOME", b_home.path())
        .args(["--store", &url, "verify"])
        .output()
        .unwrap();
    assert!(out.status.success());
    // A quota belongs to one node's own store: refused over a shared one, with the reason,
    // and nothing evicted.
    for args in [
        &["gc", "--quota", "1000"][..],
        &[
            "serve",
            "--offline",
            "--addr",
            "127.0.0.1:0",
            "--quota",
            "1000",
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_larder"))
            .env("LARDER_HOME", b_home.path())
            .args(["--store", &url])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("shared store"), "{args:?}: {stderr}");
    }
    assert!(has_json(&shared.path().join("manifests/model/acme/later")));
}

fn has_json(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "json"))
        })
        .unwrap_or(false)
}

/// `larder serve --rescan`: a ref that another node saw move is picked up from the bucket's
/// manifests without a miss, and a file of the new commit that the serving node never
/// recorded is found in the bucket by content (the same blob under another revision).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescan_picks_up_a_moved_ref() {
    let s3 = S3Server::start().await;
    s3.create_bucket("larder").await;
    let world = World::start(hub()).await;
    let store = "s3://larder/cluster";
    let a = Node::new(&s3, store, &world.server.url(), None);
    assert!(a.run(&["pull", "acme/later"]).status.success());
    let b = Node::new(&s3, store, "http://127.0.0.1:9", None);
    assert!(b.run(&["reindex"]).status.success());
    let served = b.serve(&["--offline", "--rescan", "1"]).await;
    let url = format!("{}/acme/later/resolve/main/config.json", served.url);
    let first = reqwest::get(&url).await.unwrap();
    assert_eq!(first.bytes().await.unwrap().as_ref(), b"{\"later\":true}");

    world
        .server
        .hub()
        .repo(RepoKind::Model, "acme/later")
        .base("main")
        .regular_file("config.json", b"{\"later\":2}".to_vec())
        .commit("main");
    let moved = world
        .server
        .hub()
        .resolve(RepoKind::Model, "acme/later", "main")
        .unwrap();
    assert!(a.run(&["pull", "acme/later"]).status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = reqwest::get(&url).await.unwrap();
        if response.headers()["x-repo-commit"] == moved.as_str() {
            assert_eq!(response.bytes().await.unwrap().as_ref(), b"{\"later\":2}");
            break;
        }
        assert!(Instant::now() < deadline, "node B never saw main move");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Later rescans change nothing: main's history is the two commits, not a replay per scan.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let registry = larder::registry::Registry::open(&b.home.path().join("registry.db")).unwrap();
    let history = registry
        .ref_history(larder::registry::RepoKind::Model, "acme/later")
        .await
        .unwrap();
    let main: Vec<&str> = history
        .iter()
        .filter(|o| o.reference == "main")
        .map(|o| o.sha.as_str())
        .collect();
    assert_eq!(main.len(), 2, "{history:?}");
    assert_eq!(main[1], moved.as_str());
    let weights = reqwest::get(format!(
        "{}/acme/later/resolve/{moved}/weights.bin",
        served.url
    ))
    .await
    .unwrap();
    assert_eq!(weights.status(), StatusCode::OK);
    assert_eq!(
        weights.bytes().await.unwrap().as_ref(),
        content(13, 1 << 20)
    );
}

/// Two nodes pulling the same revision at once both fetch and may both upload; the bucket
/// ends with one correct object per blob and both nodes' manifests agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_pulling_the_same_file_leave_one_correct_blob() {
    let s3 = S3Server::start().await;
    s3.create_bucket("larder").await;
    let world = World::start(hub()).await;
    let store = "s3://larder/cluster";
    let nodes: Vec<Node> = (0..2)
        .map(|_| Node::new(&s3, store, &world.server.url(), Some(5 << 20)))
        .collect();
    let children: Vec<Child> = nodes
        .iter()
        .map(|node| {
            node.cli()
                .args(["pull", "acme/tiny"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let model = content(12, 6 << 20);
    let keys = s3.list("larder", "cluster/blobs/").await;
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys.contains(&blob_key(&sha256_hex(&model))));
    assert_eq!(
        s3.get("larder", &blob_key(&sha256_hex(&model))).await,
        model
    );
    assert_eq!(s3.list("larder", "cluster/manifests/").await.len(), 1);
    for node in &nodes {
        assert!(node.run(&["verify"]).status.success());
    }
}

/// A file of a revision the serving node knows but does not hold, fetched since by another
/// node, is found through the revision's manifest on the first request (offline node).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_another_node_fetched_is_served_on_a_miss() {
    let s3 = S3Server::start().await;
    s3.create_bucket("larder").await;
    let world = World::start(hub()).await;
    let store = "s3://larder/cluster";
    let a = Node::new(&s3, store, &world.server.url(), None);
    assert!(
        a.run(&["pull", "acme/tiny", "--include", "config.json"])
            .status
            .success()
    );
    let b = Node::new(&s3, store, "http://127.0.0.1:9", None);
    assert!(b.run(&["reindex"]).status.success());
    let served = b.serve(&["--offline", "--rescan", "0"]).await;
    let url = format!("{}/acme/tiny/resolve/main/model.safetensors", served.url);
    let before = reqwest::get(&url).await.unwrap();
    assert_eq!(before.status(), StatusCode::SERVICE_UNAVAILABLE);

    assert!(a.run(&["pull", "acme/tiny"]).status.success());
    let after = reqwest::get(&url).await.unwrap();
    assert_eq!(after.status(), StatusCode::OK);
    assert_eq!(after.bytes().await.unwrap().as_ref(), content(12, 6 << 20));
}
