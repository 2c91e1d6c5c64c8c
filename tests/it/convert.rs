//! `larder convert`: a pulled checkpoint becomes a registered, served-like derived repo with
//! provenance and the source's licence.

use std::path::Path;
use std::process::Command;

use hub_standin::{Hub, RepoKind};
use larder::registry::RepoKind as Kind;
use serde_json::json;

use crate::common::{World, python, recorded};

/// A tiny random Llama checkpoint (2 shards, BPE tokenizer) made by the convert crate's script.
pub(crate) fn tiny_llama(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("convert/tests/py/make_model.py");
    let status = Command::new(python())
        .arg(script)
        .args([dir.to_str().unwrap(), "llama", "bf16", "bpe"])
        .status()
        .unwrap();
    assert!(status.success(), "make_model.py failed");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            files.push((name, std::fs::read(&path).unwrap()));
        }
    }
    files
}

/// Adds a checkpoint's files to a stand-in repo: weights as LFS files, the rest as regular ones.
pub(crate) fn with_files(
    mut builder: hub_standin::RepoBuilder,
    files: &[(String, Vec<u8>)],
) -> hub_standin::RepoBuilder {
    for (name, bytes) in files {
        builder = if name.ends_with(".safetensors") {
            builder.lfs_file(name, bytes.clone())
        } else {
            builder.regular_file(name, bytes.clone())
        };
    }
    builder
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_registers_a_derived_repo() {
    let model_dir = tempfile::tempdir().unwrap();
    let files = tiny_llama(model_dir.path());
    let hub = Hub::new();
    let builder = hub
        .repo(RepoKind::Model, "acme/tiny")
        .card(json!({"license": "llama3.1"}));
    let source_commit = with_files(builder, &files).commit("main");
    let world = World::start(hub).await;

    // Not held yet: a clear error.
    let early = world
        .cli()
        .args(["convert", "acme/tiny", "--to", "gguf", "--type", "q8_0"])
        .output()
        .unwrap();
    assert!(!early.status.success());
    assert!(String::from_utf8_lossy(&early.stderr).contains("larder pull acme/tiny"));

    assert!(
        world
            .cli()
            .args(["pull", "acme/tiny"])
            .status()
            .unwrap()
            .success()
    );
    let out = world.home.path().join("tiny.gguf");
    let converted = world
        .cli()
        .args([
            "convert",
            "acme/tiny",
            "--to",
            "gguf",
            "--type",
            "q8_0",
            "--json",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        converted.status.success(),
        "{}",
        String::from_utf8_lossy(&converted.stderr)
    );
    let outcome: serde_json::Value = serde_json::from_slice(&converted.stdout).unwrap();
    assert_eq!(outcome["derived"], "acme/tiny-GGUF");
    assert_eq!(outcome["source_commit"], source_commit.as_str());
    let written = std::fs::read(&out).unwrap();
    assert_eq!(&written[..4], b"GGUF");

    // The gguf package reads it back.
    let check = Command::new(python())
        .arg("-c")
        .arg(
            "import sys, gguf\n\
             r = gguf.GGUFReader(sys.argv[1])\n\
             f = r.fields['general.architecture']\n\
             print(bytes(f.parts[f.data[0]]).decode(), len(r.tensors))",
        )
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout).starts_with("llama "));

    let larder = world.larder();
    let (derived, detail) = recorded(&larder, Kind::Model, "acme/tiny-GGUF", "main").await;
    let paths: Vec<&str> = detail.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, vec!["README.md", "tiny-Q8_0.gguf"]);
    assert!(detail.files.iter().all(|f| f.held));
    let gguf = detail
        .files
        .iter()
        .find(|f| f.path.ends_with(".gguf"))
        .unwrap();
    assert!(gguf.lfs);
    assert_eq!(
        std::fs::read(larder.local.blob_path(gguf.sha256.as_ref().unwrap())).unwrap(),
        written
    );
    assert_eq!(detail.licence.license.as_deref(), Some("llama3.1"));
    let card = detail.card_json.clone().unwrap();
    assert_eq!(card["base_model"], "acme/tiny");
    assert_eq!(card["base_model_relation"], "quantized");
    let provenance = larder
        .registry
        .derivations_of(Kind::Model, "acme/tiny-GGUF", &derived)
        .await
        .unwrap();
    assert_eq!(provenance.len(), 1);
    assert_eq!(provenance[0].source.sha, source_commit);
    assert_eq!(provenance[0].params["type"], "Q8_0");

    // A second type joins the same derived repo in a new commit.
    let second = world
        .cli()
        .args(["convert", "acme/tiny", "--to", "gguf", "--type", "q4_k_m"])
        .output()
        .unwrap();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let (next, detail) = recorded(&larder, Kind::Model, "acme/tiny-GGUF", "main").await;
    assert_ne!(next, derived);
    let paths: Vec<&str> = detail.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        vec!["README.md", "tiny-Q4_K_M.gguf", "tiny-Q8_0.gguf"]
    );

    // dtype conversion.
    let f16 = world
        .cli()
        .args([
            "convert",
            "acme/tiny",
            "--to",
            "safetensors",
            "--dtype",
            "f16",
        ])
        .output()
        .unwrap();
    assert!(
        f16.status.success(),
        "{}",
        String::from_utf8_lossy(&f16.stderr)
    );
    let (_, detail) = recorded(&larder, Kind::Model, "acme/tiny-F16", "main").await;
    assert!(detail.files.iter().any(|f| f.path == "config.json"));
    assert!(
        detail
            .files
            .iter()
            .filter(|f| f.path.ends_with(".safetensors"))
            .count()
            >= 1
    );
    // Everything verifies.
    assert!(world.cli().args(["verify"]).status().unwrap().success());

    // Bad arguments are refused clearly.
    let bad = world
        .cli()
        .args(["convert", "acme/tiny", "--to", "gguf", "--type", "q9_9"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--type"));
}
