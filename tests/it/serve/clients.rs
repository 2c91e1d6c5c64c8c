//! Real Hub clients through the mirror: huggingface_hub (online, then offline), the `hf` CLI
//! and the hf-hub crate.

use super::*;

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
