//! Pulls that succeed, and the bad inputs that must be refused.

use hub_standin::{Hub, RepoKind, Route};
use larder::fetch::PullError;
use larder::fetch::progress::PullEvent;
use larder::hub::{HubError, RepoType};
use larder::registry::RepoKind as Kind;
use serde_json::json;

use crate::common::{World, commit_id, content, options, pull_with, read, sha256_hex};

fn sharded_hub() -> (Hub, Vec<(String, Vec<u8>)>) {
    let hub = Hub::new();
    let files = vec![
        (
            "config.json".to_owned(),
            br#"{"architectures":["LlamaForCausalLM"]}"#.to_vec(),
        ),
        ("tokenizer.json".to_owned(), content(1, 300_000)),
        (
            "model-00001-of-00003.safetensors".to_owned(),
            content(2, 3 << 20),
        ),
        (
            "model-00002-of-00003.safetensors".to_owned(),
            content(3, 5 << 20),
        ),
        (
            "model-00003-of-00003.safetensors".to_owned(),
            content(4, 1 << 20),
        ),
        (
            "model.safetensors.index.json".to_owned(),
            br#"{"weight_map":{}}"#.to_vec(),
        ),
        ("sub/dir/notes.md".to_owned(), b"# notes\n".to_vec()),
        ("empty.txt".to_owned(), Vec::new()),
    ];
    let mut builder = hub
        .repo(RepoKind::Model, "acme/sharded")
        .card(json!({"license": "apache-2.0", "base_model": "acme/base"}));
    for (path, bytes) in &files {
        builder = if path.ends_with(".safetensors") {
            builder.lfs_file(path, bytes.clone())
        } else {
            builder.regular_file(path, bytes.clone())
        };
    }
    builder.commit("main");
    (hub, files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_pull_of_a_sharded_repo() {
    let (hub, files) = sharded_hub();
    let world = World::start(hub).await;
    let larder = world.larder();
    let (result, recorder) = pull_with(&larder, &options("acme/sharded", "main")).await;
    let summary = result.expect("pull succeeds");
    assert_eq!(summary.files, files.len());
    assert_eq!(summary.reused_files, 0);
    let commit = world
        .server
        .hub()
        .resolve(RepoKind::Model, "acme/sharded", "main")
        .unwrap();
    assert_eq!(summary.commit, commit);

    // Every file's bytes are in the store under their sha256, and recorded.
    let detail = larder
        .registry
        .commit_detail(Kind::Model, "acme/sharded", &commit_id(&commit))
        .await
        .unwrap()
        .expect("commit recorded");
    assert_eq!(detail.files.len(), files.len());
    assert_eq!(detail.refs, vec!["main".to_owned()]);
    assert_eq!(detail.licence.license.as_deref(), Some("apache-2.0"));
    for (path, bytes) in &files {
        let row = detail.files.iter().find(|f| &f.path == path).unwrap();
        assert!(row.held, "{path} held");
        assert_eq!(row.sha256.as_deref(), Some(sha256_hex(bytes).as_str()));
        assert_eq!(row.lfs, path.ends_with(".safetensors"));
        assert_eq!(read(&world.blob_path(&sha256_hex(bytes))), *bytes, "{path}");
    }
    // Large LFS files came from the CDN over several ranged connections.
    assert!(world.server.stats().count(Route::CdnGet) > 3);
    // No part files are left behind.
    assert_eq!(std::fs::read_dir(world.tmp_dir()).unwrap().count(), 0);
    // Events: one verified per file, a final done.
    let verified = recorder
        .events()
        .iter()
        .filter(|e| matches!(e, PullEvent::FileVerified { .. }))
        .count();
    assert_eq!(verified, files.len());
    // The token never leaves the endpoint's origin, and none was sent here anyway.
    assert!(
        world
            .server
            .stats()
            .requests()
            .iter()
            .all(|r| !(r.route == Route::CdnGet && r.authorization))
    );

    // Pulling again fetches nothing.
    let before = world.server.stats().total_bytes();
    let (again, _) = pull_with(&larder, &options("acme/sharded", "main")).await;
    let again = again.unwrap();
    assert_eq!(again.reused_files, files.len());
    assert_eq!(world.server.stats().total_bytes(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_and_exclude() {
    let (hub, _) = sharded_hub();
    let world = World::start(hub).await;
    let larder = world.larder();
    let mut opts = options("acme/sharded", "main");
    opts.include = vec!["*.json".into(), "sub/".into()];
    opts.exclude = vec!["tokenizer*".into()];
    let summary = pull_with(&larder, &opts).await.0.unwrap();
    assert_eq!(summary.files, 3, "config, index, sub/dir/notes.md");
    let detail = larder
        .registry
        .commit_detail(Kind::Model, "acme/sharded", &summary.commit)
        .await
        .unwrap()
        .unwrap();
    let held: Vec<&str> = detail
        .files
        .iter()
        .filter(|f| f.held)
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(
        held,
        vec![
            "config.json",
            "model.safetensors.index.json",
            "sub/dir/notes.md"
        ]
    );
    // The complete tree is still recorded, and the LFS digests are known without the bytes.
    assert_eq!(detail.files.len(), 8);
    assert_eq!(world.server.stats().count(Route::CdnGet), 0);

    opts.include = vec!["nothing-matches-*".into()];
    let error = pull_with(&larder, &opts).await.0.unwrap_err();
    assert!(
        matches!(error, PullError::NothingSelected { .. }),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_request_ref_and_commit() {
    let hub = Hub::new();
    let main = hub
        .repo(RepoKind::Model, "acme/prs")
        .regular_file("a.txt", b"one".to_vec())
        .commit("main");
    let pr = hub
        .repo(RepoKind::Model, "acme/prs")
        .base(&main)
        .regular_file("a.txt", b"two".to_vec())
        .commit("refs/pr/1");
    let world = World::start(hub).await;
    let larder = world.larder();
    let summary = pull_with(&larder, &options("acme/prs", "refs/pr/1"))
        .await
        .0
        .unwrap();
    assert_eq!(summary.commit, pr);
    assert_eq!(read(&world.blob_path(&sha256_hex(b"two"))), b"two");
    let by_sha = pull_with(&larder, &options("acme/prs", &main))
        .await
        .0
        .unwrap();
    assert_eq!(by_sha.commit, main);
    assert_eq!(
        larder
            .registry
            .resolve(Kind::Model, "acme/prs", "refs/pr/1")
            .await
            .unwrap(),
        Some(commit_id(&pr))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_repo() {
    let hub = Hub::new();
    hub.repo(RepoKind::Dataset, "acme/data")
        .regular_file("data/train.csv", b"a,b\n1,2\n".to_vec())
        .lfs_file("data/train.parquet", content(9, 2 << 20))
        .commit("main");
    let world = World::start(hub).await;
    let larder = world.larder();
    let mut opts = options("acme/data", "main");
    opts.kind = RepoType::Dataset;
    let summary = pull_with(&larder, &opts).await.0.unwrap();
    assert_eq!(summary.files, 2);
    let repos = larder.registry.list_repos().await.unwrap();
    assert_eq!(repos.len(), 1);
    assert_eq!(repos[0].kind, Kind::Dataset);
    // Pulling it as a model is a clear "not found".
    let error = pull_with(&larder, &options("acme/data", "main"))
        .await
        .0
        .unwrap_err();
    assert!(
        matches!(error, PullError::Hub(HubError::RepoNotFound { .. })),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_across_repos() {
    let hub = Hub::new();
    let shared = content(5, 4 << 20);
    hub.repo(RepoKind::Model, "acme/one")
        .lfs_file("model.safetensors", shared.clone())
        .regular_file("README.md", b"one".to_vec())
        .commit("main");
    hub.repo(RepoKind::Model, "acme/two")
        .lfs_file("weights/model.safetensors", shared.clone())
        .regular_file("README.md", b"one".to_vec())
        .commit("main");
    let world = World::start(hub).await;
    let larder = world.larder();
    pull_with(&larder, &options("acme/one", "main"))
        .await
        .0
        .unwrap();
    let sha = sha256_hex(&shared);
    let served = world.server.stats().bytes_for_sha256(&sha);
    assert!(served >= shared.len() as u64);
    let before = world.server.stats().total_bytes();
    let second = pull_with(&larder, &options("acme/two", "main"))
        .await
        .0
        .unwrap();
    assert_eq!(
        second.reused_files, 2,
        "both the LFS blob and the regular file"
    );
    assert_eq!(world.server.stats().bytes_for_sha256(&sha), served);
    assert_eq!(world.server.stats().total_bytes(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_dir_gets_plain_files() {
    let (hub, files) = sharded_hub();
    let world = World::start(hub).await;
    let larder = world.larder();
    let out = world.home.path().join("checkout");
    let mut opts = options("acme/sharded", "main");
    opts.local_dir = Some(out.clone());
    pull_with(&larder, &opts).await.0.unwrap();
    for (path, bytes) in &files {
        assert_eq!(read(&out.join(path)), *bytes, "{path}");
    }
    // Copies by default: a tool writing into the checkout cannot reach the store.
    use std::os::unix::fs::MetadataExt;
    let shard = &files[2];
    let (copy, blob) = (out.join(&shard.0), world.blob_path(&sha256_hex(&shard.1)));
    assert_ne!(
        std::fs::metadata(&copy).unwrap().ino(),
        std::fs::metadata(&blob).unwrap().ino()
    );
    std::fs::write(&copy, b"edited in place").unwrap();
    assert_eq!(read(&blob), shard.1, "the store's blob is untouched");
    // Pulling again puts the file back, and leaves the untouched copies as they are.
    let untouched = out.join(&files[0].0);
    let ino = std::fs::metadata(&untouched).unwrap().ino();
    pull_with(&larder, &opts).await.0.unwrap();
    assert_eq!(read(&copy), shard.1);
    assert_eq!(std::fs::metadata(&untouched).unwrap().ino(), ino);

    // --hard-links: the same inode, no extra space; a re-pull without it turns them into
    // copies again.
    opts.local_dir_links = larder::store::materialize::LinkMode::Hard;
    pull_with(&larder, &opts).await.0.unwrap();
    assert_eq!(
        std::fs::metadata(&copy).unwrap().ino(),
        std::fs::metadata(&blob).unwrap().ino()
    );
    opts.local_dir_links = larder::store::materialize::LinkMode::Copy;
    pull_with(&larder, &opts).await.0.unwrap();
    assert_ne!(
        std::fs::metadata(&copy).unwrap().ino(),
        std::fs::metadata(&blob).unwrap().ino()
    );
    assert_eq!(read(&copy), shard.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_names_are_refused() {
    for evil in [
        "../escape.txt",
        "a/../../escape.txt",
        "a\\b.txt",
        "a/./b",
        "x\u{0}y",
    ] {
        let hub = Hub::new();
        hub.repo(RepoKind::Model, "acme/evil")
            .regular_file("ok.txt", b"fine".to_vec())
            .regular_file(evil, b"gotcha".to_vec())
            .commit("main");
        let world = World::start(hub).await;
        let larder = world.larder();
        let mut opts = options("acme/evil", "main");
        opts.local_dir = Some(world.home.path().join("out"));
        let error = pull_with(&larder, &opts).await.0.unwrap_err();
        assert!(
            matches!(error, PullError::Hub(HubError::TreeEntry { .. })),
            "{evil}: {error}"
        );
        assert!(!world.home.path().join("escape.txt").exists());
        assert_eq!(world.server.stats().count(Route::ResolveGet), 0, "{evil}");
        assert!(larder.registry.list_repos().await.unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gated_without_and_with_token() {
    let hub = Hub::new();
    hub.repo(RepoKind::Model, "meta/gated")
        .gated("manual")
        .card(json!({"license": "llama3.1", "extra_gated_prompt": "accept"}))
        .regular_file("config.json", b"{}".to_vec())
        .lfs_file("model.safetensors", content(11, 1 << 20))
        .commit("main");
    hub.accept_token("meta/gated", "hf_good");
    let world = World::start(hub).await;

    let error = pull_with(&world.larder(), &options("meta/gated", "main"))
        .await
        .0
        .unwrap_err();
    let text = format!("{error}");
    assert!(
        matches!(error, PullError::Hub(HubError::Gated { .. })),
        "{text}"
    );
    // The error says what happened and where; what to do is its hint (the CLI prints it, a
    // daemon job keeps only the text).
    assert!(
        text.contains("gated") && text.contains("no token was sent") && !text.contains("HF_TOKEN"),
        "{text}"
    );
    let hint = larder::classify::hint_of(&error).unwrap_or_default();
    assert!(
        hint.contains("accept its licence") && hint.contains("HF_TOKEN"),
        "{hint}"
    );

    let error = pull_with(
        &world.larder_with_token("hf_wrong"),
        &options("meta/gated", "main"),
    )
    .await
    .0
    .unwrap_err();
    assert!(format!("{error}").contains("not been granted"), "{error}");
    let hint = larder::classify::hint_of(&error).unwrap_or_default();
    assert!(hint.contains("the account that owns HF_TOKEN"), "{hint}");

    let larder = world.larder_with_token("hf_good");
    let summary = pull_with(&larder, &options("meta/gated", "main"))
        .await
        .0
        .unwrap();
    assert_eq!(summary.files, 2);
    let repos = larder.registry.list_repos().await.unwrap();
    assert_eq!(repos[0].gated.as_deref(), Some("manual"));
    // The token went to the API and /resolve, never to the CDN.
    let requests = world.server.stats().requests();
    assert!(
        requests
            .iter()
            .any(|r| r.route == Route::ResolveGet && r.authorization)
    );
    assert!(
        requests
            .iter()
            .filter(|r| r.route == Route::CdnGet)
            .all(|r| !r.authorization)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_repo_and_revision() {
    let hub = Hub::new();
    hub.repo(RepoKind::Model, "acme/real")
        .regular_file("a", b"a".to_vec())
        .commit("main");
    let world = World::start(hub).await;
    let larder = world.larder();
    let error = pull_with(&larder, &options("acme/missing", "main"))
        .await
        .0
        .unwrap_err();
    assert!(
        matches!(error, PullError::Hub(HubError::RepoNotFound { .. })),
        "{error}"
    );
    let error = pull_with(&larder, &options("acme/real", "nope"))
        .await
        .0
        .unwrap_err();
    assert!(
        matches!(error, PullError::Hub(HubError::RevisionNotFound { .. })),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_refuses_bad_repo_ids_before_any_request() {
    let world = World::start(Hub::new()).await;
    for bad in ["../etc", "a/b/c", "org/na me", "x-/y", "org/name@bad rev"] {
        let output = world.cli().args(["pull", bad]).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("not a valid"), "{bad}: {stderr}");
    }
    assert!(world.server.stats().requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_pull_ls_show_json() {
    let (hub, files) = sharded_hub();
    let world = World::start(hub).await;
    let output = world.ok(&["pull", "acme/sharded", "--json"]);
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"resolved"));
    assert!(kinds.contains(&"file_started") && kinds.contains(&"file_progress"));
    assert_eq!(
        kinds.iter().filter(|k| **k == "file_verified").count(),
        files.len()
    );
    assert_eq!(kinds.last(), Some(&"summary"));

    let ls = world.cli().args(["ls", "--json"]).output().unwrap();
    let repos: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(repos[0]["name"], "acme/sharded");
    assert_eq!(repos[0]["revisions"][0]["licence"]["license"], "apache-2.0");
    let table = world.cli().args(["ls"]).output().unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("acme/sharded") && table.contains("apache-2.0"),
        "{table}"
    );

    let show = world
        .cli()
        .args(["show", "acme/sharded", "--json"])
        .output()
        .unwrap();
    assert!(show.status.success());
    let detail: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(detail["files"].as_array().unwrap().len(), files.len());
    assert!(
        detail["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["held"] == true && f["sha256"].as_str().is_some_and(|s| s.len() == 64))
    );
    let missing = world.cli().args(["show", "acme/other"]).output().unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("larder pull"));
}
