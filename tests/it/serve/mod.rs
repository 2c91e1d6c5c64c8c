//! `larder serve`: real Hub clients (huggingface_hub, the `hf` CLI, the hf-hub crate) and the
//! protocol's edge cases over HTTP, against a mirror filled from the stand-in; then
//! pull-through from the stand-in as upstream, and access control. This module holds the
//! shared fixture; each concern has its own file.

mod access;
mod clients;
mod protocol;
mod pull_through;

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

use crate::common::{World, commit_id, content, options, pull_with, python, sha256_hex};

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
