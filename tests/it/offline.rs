//! Offline provisioning: `larder export` (bundle, hf-cache, plain) and `larder import` (bundles
//! and plain folders), end to end through the binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hub_standin::{Hub, RepoKind};
use larder::bundle::manifest::Manifest;
use serde_json::{Value, json};

use crate::common::{World, cli_at, content, python, sha256_hex, succeeded};

fn run(command: &mut Command) -> Output {
    command.output().expect("larder runs")
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `(path, bytes, lfs)` of the first commit of `acme/off`.
fn first_files() -> Vec<(&'static str, Vec<u8>, bool)> {
    vec![
        ("config.json", br#"{"model_type":"llama"}"#.to_vec(), false),
        ("tokenizer.json", content(11, 200_000), false),
        ("model.safetensors", content(12, 2 << 20), true),
        ("sub/dir/notes.md", b"# notes\n".to_vec(), false),
        ("empty.txt", Vec::new(), false),
    ]
}

fn hub_with(repo: &str, files: &[(&str, Vec<u8>, bool)], card: Value) -> Hub {
    let hub = Hub::new();
    add_commit(&hub, repo, files, Some(card), "main");
    hub
}

fn add_commit(
    hub: &Hub,
    repo: &str,
    files: &[(&str, Vec<u8>, bool)],
    card: Option<Value>,
    reference: &str,
) -> String {
    let mut builder = hub.repo(RepoKind::Model, repo);
    if let Some(card) = card {
        builder = builder.card(card);
    }
    for (path, bytes, lfs) in files {
        builder = if *lfs {
            builder.lfs_file(path, bytes.clone())
        } else {
            builder.regular_file(path, bytes.clone())
        };
    }
    builder.commit(reference)
}

fn show(command: &mut Command, repo: &str) -> Value {
    json_of(&succeeded(run(command.args(["show", repo, "--json"]))))
}

fn ls(command: &mut Command) -> Value {
    json_of(&succeeded(run(command.args(["ls", "--json"]))))
}

/// Copy a bundle (its blobs may be hard links into the source store: never edit them in place).
fn copy_bundle(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("blobs")).unwrap();
    std::fs::copy(from.join("manifest.json"), to.join("manifest.json")).unwrap();
    for entry in std::fs::read_dir(from.join("blobs")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join("blobs").join(entry.file_name())).unwrap();
    }
}

fn replace_file(path: &Path, bytes: &[u8]) {
    std::fs::remove_file(path).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn stored_blob_count(home: &Path) -> usize {
    let dir = home.join("blobs/sha256");
    let Ok(shards) = std::fs::read_dir(&dir) else {
        return 0;
    };
    shards
        .map(|s| std::fs::read_dir(s.unwrap().path()).unwrap().count())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_round_trip_verify_show_and_import_twice() {
    let files = first_files();
    let world = World::start(hub_with(
        "acme/off",
        &files,
        json!({"license": "apache-2.0"}),
    ))
    .await;
    succeeded(run(world.cli().args(["pull", "acme/off"])));
    let out = tempfile::tempdir().unwrap();
    let bundle = out.path().join("bundle");
    let export = succeeded(run(world.cli().args([
        "export",
        "acme/off",
        "--to",
        bundle.to_str().unwrap(),
        "--json",
    ])));
    let summary = json_of(&export);
    // Five files, four distinct contents... and the empty file: every blob is carried once.
    let distinct: std::collections::BTreeSet<_> =
        files.iter().map(|(_, b, _)| sha256_hex(b)).collect();
    assert_eq!(summary["blobs_written"], distinct.len());
    assert_eq!(summary["blobs_linked"], 0, "copies by default");
    for sha in &distinct {
        assert!(bundle.join("blobs").join(sha).is_file(), "{sha} carried");
    }
    // A copy: writing into the bundle leaves the store's blob alone.
    {
        use std::os::unix::fs::MetadataExt;
        let sha = sha256_hex(&files[2].1);
        let carried = bundle.join("blobs").join(sha);
        let stored = world.blob_path(&sha);
        assert_ne!(
            std::fs::metadata(&carried).unwrap().ino(),
            std::fs::metadata(&stored).unwrap().ino()
        );
        let original = std::fs::read(&carried).unwrap();
        std::fs::write(&carried, b"scribbled").unwrap();
        assert_eq!(
            std::fs::read(&stored).unwrap(),
            files[2].1,
            "the store is untouched"
        );
        std::fs::write(&carried, &original).unwrap();
    }
    // --hard-links: no space used on the same filesystem.
    let linked = out.path().join("linked");
    let summary = json_of(&succeeded(run(world.cli().args([
        "export",
        "acme/off",
        "--hard-links",
        "--to",
        linked.to_str().unwrap(),
        "--json",
    ]))));
    assert_eq!(
        summary["blobs_linked"],
        distinct.len(),
        "same filesystem: hard links"
    );

    // Resumable: a re-run skips the finished blobs and rewrites only the missing one, and
    // drops what an interrupted copy left behind.
    let shard = sha256_hex(&files[2].1);
    std::fs::remove_file(bundle.join("blobs").join(shard)).unwrap();
    let leftover = bundle.join("blobs").join(format!(".{shard}.999.partial"));
    std::fs::write(&leftover, b"half").unwrap();
    let again = json_of(&succeeded(run(world.cli().args([
        "export",
        "acme/off",
        "--to",
        bundle.to_str().unwrap(),
        "--json",
    ]))));
    assert_eq!(again["blobs_written"], 1);
    assert_eq!(again["blobs_skipped"], distinct.len() - 1);
    assert!(!leftover.exists());
    assert_eq!(
        std::fs::read_dir(bundle.join("blobs")).unwrap().count(),
        distinct.len()
    );

    let manifest = Manifest::read(&bundle).expect("the manifest verifies");
    assert_eq!(manifest.repos.len(), 1);
    assert_eq!(manifest.repos[0].commits[0].refs, vec!["main".to_owned()]);
    assert_eq!(
        manifest.repos[0].commits[0].licence.license.as_deref(),
        Some("apache-2.0")
    );
    assert!(manifest.derivations.is_empty());

    // The air-gapped side.
    let island = tempfile::tempdir().unwrap();
    let imported = json_of(&succeeded(run(cli_at(island.path()).args([
        "import",
        bundle.to_str().unwrap(),
        "--json",
    ]))));
    assert_eq!(imported["revisions"][0]["status"], "imported");
    assert_eq!(imported["blobs_imported"], distinct.len());
    succeeded(run(cli_at(island.path()).args(["verify"])));
    // The source's plain-HTTP pull left the Xet chunking for later (the import did it):
    // `verify` fills it in, so both sides show the same Xet hashes.
    succeeded(run(world.cli().args(["verify"])));
    let source = show(&mut world.cli(), "acme/off");
    let copy = show(&mut cli_at(island.path()), "acme/off");
    assert_eq!(source, copy, "show matches on both sides");
    assert_eq!(
        std::fs::read_dir(island.path().join("tmp"))
            .unwrap()
            .count(),
        0
    );

    // Importing the same bundle again changes nothing.
    let before = ls(&mut cli_at(island.path()));
    let twice = json_of(&succeeded(run(cli_at(island.path()).args([
        "import",
        bundle.to_str().unwrap(),
        "--json",
    ]))));
    assert_eq!(twice["revisions"][0]["status"], "unchanged");
    assert_eq!(twice["blobs_imported"], 0);
    assert_eq!(ls(&mut cli_at(island.path())), before);
    assert_eq!(show(&mut cli_at(island.path()), "acme/off"), copy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_bundle_carries_only_the_new_commit() {
    let files = first_files();
    let world = World::start(hub_with("acme/off", &files, json!({"license": "mit"}))).await;
    succeeded(run(world.cli().args(["pull", "acme/off"])));
    let out = tempfile::tempdir().unwrap();
    let first = out.path().join("b1");
    succeeded(run(world.cli().args([
        "export",
        "acme/off",
        "--to",
        first.to_str().unwrap(),
    ])));

    // Upstream moves on (a second later: fetch times are in seconds, and an import decides
    // by them which of two commits a ref saw last): a changed config, a new shard.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let new_config = br#"{"model_type":"llama","v":2}"#.to_vec();
    let new_shard = content(13, 1 << 20);
    let second_sha = add_commit(
        world.server.hub(),
        "acme/off",
        &[
            ("config.json", new_config.clone(), false),
            ("model-2.safetensors", new_shard.clone(), true),
        ],
        None,
        "main",
    );
    succeeded(run(world.cli().args(["pull", "acme/off"])));
    let second = out.path().join("b2");
    let summary = json_of(&succeeded(run(world.cli().args([
        "export",
        "acme/off",
        "--to",
        second.to_str().unwrap(),
        "--since",
        first.join("manifest.json").to_str().unwrap(),
        "--json",
    ]))));
    assert_eq!(summary["revisions"].as_array().unwrap().len(), 1);
    let manifest = Manifest::read(&second).unwrap();
    assert_eq!(manifest.repos[0].commits.len(), 1);
    assert_eq!(manifest.repos[0].commits[0].sha, second_sha);
    let carried: Vec<&str> = manifest.blobs.iter().map(|b| b.sha256.as_str()).collect();
    let mut expected = vec![
        sha256_hex(&new_config).to_string(),
        sha256_hex(&new_shard).to_string(),
    ];
    expected.sort();
    assert_eq!(carried, expected, "only the new commit's new blobs");
    assert_eq!(std::fs::read_dir(second.join("blobs")).unwrap().count(), 2);

    // The top-up alone cannot be imported: its other blobs are not held there.
    let empty = tempfile::tempdir().unwrap();
    let alone = run(cli_at(empty.path()).args(["import", second.to_str().unwrap()]));
    assert_eq!(alone.status.code(), Some(3), "{}", stderr(&alone));
    assert!(
        stderr(&alone).contains("tokenizer.json"),
        "{}",
        stderr(&alone)
    );
    assert!(stderr(&alone).contains("earlier bundle"));
    assert_eq!(stored_blob_count(empty.path()), 0);
    assert_eq!(ls(&mut cli_at(empty.path())), json!([]));

    // After the first bundle it imports on top.
    let island = tempfile::tempdir().unwrap();
    succeeded(run(
        cli_at(island.path()).args(["import", first.to_str().unwrap()])
    ));
    succeeded(run(
        cli_at(island.path()).args(["import", second.to_str().unwrap()])
    ));
    succeeded(run(cli_at(island.path()).args(["verify"])));
    let head = show(&mut cli_at(island.path()), "acme/off");
    assert_eq!(head["sha"], second_sha);
    assert_eq!(head["refs"], json!(["main"]));
    succeeded(run(world.cli().args(["verify"])));
    let source = show(&mut world.cli(), "acme/off");
    assert_eq!(head["files"], source["files"]);
    assert_eq!(
        ls(&mut cli_at(island.path()))[0]["revisions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Importing the older bundle again does not move `main` back.
    let old_again = json_of(&succeeded(run(cli_at(island.path()).args([
        "import",
        first.to_str().unwrap(),
        "--json",
    ]))));
    assert_eq!(old_again["revisions"][0]["status"], "unchanged");
    assert_eq!(
        show(&mut cli_at(island.path()), "acme/off")["sha"],
        second_sha
    );

    // A third bundle since the second one knows the whole chain: nothing left to carry.
    let third = out.path().join("b3");
    let nothing = json_of(&succeeded(run(world.cli().args([
        "export",
        "acme/off",
        "--to",
        third.to_str().unwrap(),
        "--since",
        second.to_str().unwrap(),
        "--json",
    ]))));
    assert_eq!(nothing["revisions"], json!([]));
    assert!(Manifest::read(&third).unwrap().blobs.is_empty());
}

/// A bundle with two repos; `acme/bad`'s shard is the one the tests damage.
async fn two_repo_bundle() -> (World, tempfile::TempDir, PathBuf, Vec<u8>) {
    let hub = hub_with("acme/good", &first_files(), json!({"license": "mit"}));
    let bad_shard = content(21, 1 << 20);
    add_commit(
        &hub,
        "acme/bad",
        &[
            ("config.json", b"{}".to_vec(), false),
            ("model.safetensors", bad_shard.clone(), true),
        ],
        None,
        "main",
    );
    let world = World::start(hub).await;
    succeeded(run(world.cli().args(["pull", "acme/good"])));
    succeeded(run(world.cli().args(["pull", "acme/bad"])));
    let out = tempfile::tempdir().unwrap();
    let bundle = out.path().join("bundle");
    succeeded(run(world.cli().args([
        "export",
        "acme/good",
        "acme/bad",
        "--to",
        bundle.to_str().unwrap(),
    ])));
    (world, out, bundle, bad_shard)
}

#[track_caller]
fn assert_only_bad_refused(home: &Path, output: &Output, bad_sha: &str) {
    assert_eq!(output.status.code(), Some(3), "{}", stderr(output));
    let text = stderr(output);
    assert!(text.contains("error: refused acme/bad@"), "{text}");
    assert!(
        text.contains("model.safetensors"),
        "the file is named: {text}"
    );
    assert!(text.contains(bad_sha), "{text}");
    let repos = ls(&mut cli_at(home));
    let names: Vec<&str> = repos
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["acme/good"],
        "nothing of acme/bad is registered"
    );
    assert!(
        !home
            .join("blobs/sha256")
            .join(&bad_sha[..2])
            .join(bad_sha)
            .exists(),
        "the damaged blob is not in the store"
    );
    assert_eq!(std::fs::read_dir(home.join("tmp")).unwrap().count(), 0);
    succeeded(run(cli_at(home).args(["verify"])));
}

/// A way of damaging a bundle's blob file.
type Damage = Box<dyn Fn(&Path)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_blobs_refuse_their_revision_only() {
    let (_world, out, bundle, bad_shard) = two_repo_bundle().await;
    let bad_sha = sha256_hex(&bad_shard);
    let cases: [(&str, Damage); 3] = [
        (
            "flipped",
            Box::new(|path: &Path| {
                let mut bytes = std::fs::read(path).unwrap();
                bytes[4242] ^= 0x20;
                replace_file(path, &bytes);
            }),
        ),
        (
            "truncated",
            Box::new(|path: &Path| {
                let bytes = std::fs::read(path).unwrap();
                replace_file(path, &bytes[..bytes.len() / 2]);
            }),
        ),
        (
            "deleted",
            Box::new(|path: &Path| std::fs::remove_file(path).unwrap()),
        ),
    ];
    for (name, damage) in cases {
        let copy = out.path().join(name);
        copy_bundle(&bundle, &copy);
        damage(&copy.join("blobs").join(bad_sha));
        let island = tempfile::tempdir().unwrap();
        let output = run(cli_at(island.path()).args(["import", copy.to_str().unwrap()]));
        assert_only_bad_refused(island.path(), &output, &bad_sha);
        let reason = match name {
            "flipped" => "altered",
            "truncated" => "truncated",
            _ => "missing",
        };
        assert!(
            stderr(&output).contains(reason),
            "{name}: {}",
            stderr(&output)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_git_oid_refuses_the_revision() {
    let (_world, out, bundle, _) = two_repo_bundle().await;
    let copy = out.path().join("lying");
    copy_bundle(&bundle, &copy);
    // Re-seal a manifest whose regular file claims another git oid: the digest verifies, the
    // content does not.
    let text = std::fs::read(copy.join("manifest.json")).unwrap();
    let mut manifest: Manifest = serde_json::from_slice(&text).unwrap();
    let bad = manifest
        .repos
        .iter_mut()
        .find(|r| r.name == "acme/bad")
        .unwrap();
    let config = bad.commits[0]
        .files
        .iter_mut()
        .find(|f| f.path == "config.json")
        .unwrap();
    config.git_oid = "0".repeat(40);
    std::fs::write(copy.join("manifest.json"), manifest.to_json()).unwrap();
    let island = tempfile::tempdir().unwrap();
    let output = run(cli_at(island.path()).args(["import", copy.to_str().unwrap()]));
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("config.json"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("git blob oid"),
        "{}",
        stderr(&output)
    );
    let names: Vec<String> = ls(&mut cli_at(island.path()))
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, vec!["acme/good".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_manifest_is_refused_whole() {
    let (_world, out, bundle, _) = two_repo_bundle().await;
    for (name, edit) in [
        ("licence", ("\"mit\"", "\"apache-2.0\"")),
        ("path", ("\"sub/dir/notes.md\"", "\"../../escape.md\"")),
    ] {
        let copy = out.path().join(name);
        copy_bundle(&bundle, &copy);
        let text = std::fs::read_to_string(copy.join("manifest.json")).unwrap();
        assert!(text.contains(edit.0));
        std::fs::write(copy.join("manifest.json"), text.replacen(edit.0, edit.1, 1)).unwrap();
        let island = tempfile::tempdir().unwrap();
        let output = run(cli_at(island.path()).args(["import", copy.to_str().unwrap()]));
        assert!(!output.status.success());
        assert!(stderr(&output).contains("altered"), "{}", stderr(&output));
        assert_eq!(ls(&mut cli_at(island.path())), json!([]));
        assert_eq!(stored_blob_count(island.path()), 0);
    }
    // A manifest that is missing altogether.
    let island = tempfile::tempdir().unwrap();
    let output = run(cli_at(island.path()).args(["import", out.path().to_str().unwrap()]));
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("manifest.json"),
        "{}",
        stderr(&output)
    );
}

/// Load files through the real huggingface_hub client, offline, from `cache`; returns
/// `{"snapshot": {path: sha256}, "single": {path: sha256}}`.
fn load_with_huggingface_hub(cache: &Path, repo: &str, revision: &str) -> Value {
    load_typed(cache, "model", repo, revision)
}

fn load_typed(cache: &Path, repo_type: &str, repo: &str, revision: &str) -> Value {
    let script = r#"
import hashlib, json, os, sys
from huggingface_hub import hf_hub_download, snapshot_download
repo_type, repo, revision = sys.argv[1], sys.argv[2], sys.argv[3]
folder = snapshot_download(repo, revision=revision, repo_type=repo_type)
snapshot = {}
for root, _, names in os.walk(folder):
    for name in names:
        full = os.path.join(root, name)
        with open(full, "rb") as f:
            snapshot[os.path.relpath(full, folder)] = hashlib.sha256(f.read()).hexdigest()
single = {}
for path in snapshot:
    with open(hf_hub_download(repo, path, revision=revision, repo_type=repo_type), "rb") as f:
        single[path] = hashlib.sha256(f.read()).hexdigest()
print(json.dumps({"snapshot": snapshot, "single": single}))
"#;
    let output = Command::new(python())
        .args(["-c", script, repo_type, repo, revision])
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", cache)
        .env("HF_HOME", cache.join("hf-home"))
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env_remove("HF_ENDPOINT")
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "huggingface_hub failed on {repo}@{revision}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hf_cache_layout_is_read_by_huggingface_hub_offline() {
    let files = first_files();
    let hub = hub_with("acme/off", &files, json!({"license": "mit"}));
    let keep_files = vec![("weights.safetensors", content(31, 300_000), true)];
    add_commit(&hub, "acme/keep", &keep_files, None, "main");
    let pr_files = vec![("extra/pr.txt", b"from a PR\n".to_vec(), false)];
    add_commit(&hub, "acme/off", &pr_files, None, "refs/pr/1");
    let world = World::start(hub).await;
    succeeded(run(world.cli().args(["pull", "acme/off"])));
    succeeded(run(world.cli().args(["pull", "acme/off@refs/pr/1"])));
    succeeded(run(world.cli().args(["pull", "acme/keep"])));
    let out = tempfile::tempdir().unwrap();
    let cache = out.path().join("hub");
    // An existing cache already holding another repo.
    succeeded(run(world.cli().args([
        "export",
        "acme/keep",
        "--to",
        cache.to_str().unwrap(),
        "--layout",
        "hf-cache",
    ])));
    succeeded(run(world.cli().args([
        "export",
        "acme/off",
        "--to",
        cache.to_str().unwrap(),
        "--layout",
        "hf-cache",
    ])));

    let repo_dir = cache.join("models--acme--off");
    let main_sha = std::fs::read_to_string(repo_dir.join("refs/main")).unwrap();
    assert_eq!(main_sha.len(), 40, "no trailing newline: {main_sha:?}");
    let pr_sha = std::fs::read_to_string(repo_dir.join("refs/refs/pr/1")).unwrap();
    let link = std::fs::read_link(
        repo_dir
            .join("snapshots")
            .join(&main_sha)
            .join("sub/dir/notes.md"),
    )
    .unwrap();
    let notes_oid = hub_standin::hash::git_hash(b"# notes\n");
    assert_eq!(
        link,
        PathBuf::from(format!("../../../../blobs/{notes_oid}"))
    );
    let shard_sha = sha256_hex(&files[2].1);
    assert!(
        repo_dir.join("blobs").join(shard_sha).is_file(),
        "LFS etag = sha256"
    );
    let tree: Value = serde_json::from_slice(
        &std::fs::read(repo_dir.join("trees").join(format!("{main_sha}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(tree["format_version"], 1);
    assert_eq!(
        tree["files"]["model.safetensors"]["lfs_sha256"],
        shard_sha.as_str()
    );
    assert_eq!(tree["files"]["sub/dir/notes.md"]["blob_id"], notes_oid);

    let expected = |files: &[(&str, Vec<u8>, bool)]| -> Value {
        let map: BTreeMap<String, String> = files
            .iter()
            .map(|(p, b, _)| ((*p).to_owned(), sha256_hex(b).to_string()))
            .collect();
        json!(map)
    };
    let loaded = load_with_huggingface_hub(&cache, "acme/off", "main");
    assert_eq!(loaded["snapshot"], expected(&files));
    assert_eq!(loaded["single"], expected(&files));
    let mut pr_tree = files.clone();
    pr_tree.extend(pr_files.iter().cloned());
    let loaded = load_with_huggingface_hub(&cache, "acme/off", &pr_sha);
    assert_eq!(loaded["snapshot"], expected(&pr_tree));
    let loaded = load_with_huggingface_hub(&cache, "acme/off", "refs/pr/1");
    assert_eq!(loaded["single"], expected(&pr_tree));
    // The repo that was there before is still whole.
    let kept = load_with_huggingface_hub(&cache, "acme/keep", "main");
    assert_eq!(kept["snapshot"], expected(&keep_files));
}

fn tree_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_layout_is_the_source_tree() {
    let files = first_files();
    let world = World::start(hub_with("acme/off", &files, json!({}))).await;
    succeeded(run(world.cli().args(["pull", "acme/off"])));
    let out = tempfile::tempdir().unwrap();
    succeeded(run(world.cli().args([
        "export",
        "acme/off",
        "--to",
        out.path().to_str().unwrap(),
        "--layout",
        "plain",
    ])));
    let expected: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(p, b, _)| ((*p).to_owned(), b.clone()))
        .collect();
    assert_eq!(tree_of(&out.path().join("acme/off")), expected);
}

fn git_hash_object(path: &Path) -> String {
    let output = Command::new("git")
        .args(["hash-object", "--no-filters"])
        .arg(path)
        .output()
        .expect("git is installed");
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_folder_imports_as_a_revision() {
    let folder = tempfile::tempdir().unwrap();
    let root = folder.path();
    let readme = "---\nlicense: other\nlicense_name: acme-internal\nlicense_link: https://acme.example/licence\ntags:\n  - in-house\n---\n# Acme in-house model\n";
    let big = content(41, (10 << 20) + 3);
    let files: Vec<(&str, Vec<u8>, bool)> = vec![
        ("README.md", readme.as_bytes().to_vec(), false),
        ("config.json", br#"{"model_type":"acme"}"#.to_vec(), false),
        (
            ".gitattributes",
            b"*.bin filter=lfs diff=lfs merge=lfs -text\n".to_vec(),
            false,
        ),
        ("weights.bin", content(42, 5000), true),
        ("model.safetensors", big, true),
        ("sub/tokenizer.json", content(43, 70_000), false),
    ];
    for (path, bytes, _) in &files {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, bytes).unwrap();
    }
    // Skipped: git internals and the local_dir download metadata of huggingface_hub.
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(root.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::create_dir_all(root.join(".cache/huggingface/download")).unwrap();
    std::fs::write(root.join(".cache/huggingface/download/x.metadata"), "x").unwrap();
    // A symlink inside the folder is read as the file it points to.
    std::os::unix::fs::symlink("config.json", root.join("config-link.json")).unwrap();

    let home = tempfile::tempdir().unwrap();
    let summary = json_of(&succeeded(run(cli_at(home.path()).args([
        "import",
        root.to_str().unwrap(),
        "--as",
        "acme/inhouse",
        "--json",
    ]))));
    let detail = show(&mut cli_at(home.path()), "acme/inhouse");
    assert_eq!(detail["sha"], summary["commit"]);
    assert_eq!(detail["refs"], json!(["main"]));
    assert_eq!(detail["licence"]["license"], "other");
    assert_eq!(detail["licence"]["license_name"], "acme-internal");
    assert_eq!(
        detail["licence"]["license_link"],
        "https://acme.example/licence"
    );
    let rows: BTreeMap<String, Value> = detail["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap().to_owned(), f.clone()))
        .collect();
    let mut paths: Vec<&str> = files.iter().map(|(p, _, _)| *p).collect();
    paths.push("config-link.json");
    paths.sort_unstable();
    assert_eq!(rows.keys().map(String::as_str).collect::<Vec<_>>(), paths);
    let pointer_dir = tempfile::tempdir().unwrap();
    for (path, bytes, lfs) in &files {
        let row = &rows[*path];
        let sha = sha256_hex(bytes);
        assert_eq!(row["sha256"], sha.as_str(), "{path}");
        assert_eq!(row["lfs"], *lfs, "{path}");
        assert_eq!(row["held"], true);
        let oid_source = if *lfs {
            let pointer = pointer_dir.path().join("pointer");
            std::fs::write(
                &pointer,
                format!(
                    "version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {}\n",
                    bytes.len()
                ),
            )
            .unwrap();
            pointer
        } else {
            root.join(path)
        };
        assert_eq!(row["git_oid"], git_hash_object(&oid_source), "{path}");
    }
    assert_eq!(
        rows["config-link.json"]["sha256"],
        rows["config.json"]["sha256"]
    );
    succeeded(run(cli_at(home.path()).args(["verify"])));

    // The same folder gives the same commit; a changed file gives another.
    let again = json_of(&succeeded(run(cli_at(home.path()).args([
        "import",
        root.to_str().unwrap(),
        "--as",
        "acme/inhouse",
        "--json",
    ]))));
    assert_eq!(again["commit"], summary["commit"]);
    std::fs::write(root.join("config.json"), b"{}").unwrap();
    let changed = json_of(&succeeded(run(cli_at(home.path()).args([
        "import",
        root.to_str().unwrap(),
        "--as",
        "acme/inhouse",
        "--revision",
        "v2",
        "--json",
    ]))));
    assert_ne!(changed["commit"], summary["commit"]);

    // A symlink out of the folder is refused, and nothing is registered.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"secret").unwrap();
    let hostile = tempfile::tempdir().unwrap();
    std::fs::write(hostile.path().join("config.json"), b"{}").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), hostile.path().join("leak")).unwrap();
    let other_home = tempfile::tempdir().unwrap();
    let refused = run(cli_at(other_home.path()).args([
        "import",
        hostile.path().to_str().unwrap(),
        "--as",
        "acme/hostile",
    ]));
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("outside the folder"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(ls(&mut cli_at(other_home.path())), json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datasets_round_trip_and_load_from_the_hf_cache() {
    let hub = Hub::new();
    let files = vec![
        ("data/train.parquet", content(51, 400_000), true),
        (
            "README.md",
            b"---\nlicense: cc-by-4.0\n---\n".to_vec(),
            false,
        ),
    ];
    let mut builder = hub.repo(RepoKind::Dataset, "acme/ds");
    for (path, bytes, lfs) in &files {
        builder = if *lfs {
            builder.lfs_file(path, bytes.clone())
        } else {
            builder.regular_file(path, bytes.clone())
        };
    }
    builder.commit("main");
    let world = World::start(hub).await;
    succeeded(run(world
        .cli()
        .args(["pull", "acme/ds", "--type", "dataset"])));
    let out = tempfile::tempdir().unwrap();
    let cache = out.path().join("hub");
    let bundle = out.path().join("bundle");
    for (layout, dir) in [("hf-cache", &cache), ("bundle", &bundle)] {
        succeeded(run(world.cli().args([
            "export",
            "acme/ds",
            "--type",
            "dataset",
            "--layout",
            layout,
            "--to",
            dir.to_str().unwrap(),
        ])));
    }
    assert!(cache.join("datasets--acme--ds/refs/main").is_file());
    let loaded = load_typed(&cache, "dataset", "acme/ds", "main");
    let expected: BTreeMap<String, String> = files
        .iter()
        .map(|(p, b, _)| ((*p).to_owned(), sha256_hex(b).to_string()))
        .collect();
    assert_eq!(loaded["snapshot"], json!(expected));

    let island = tempfile::tempdir().unwrap();
    succeeded(run(
        cli_at(island.path()).args(["import", bundle.to_str().unwrap()])
    ));
    let shown = json_of(&succeeded(run(
        cli_at(island.path()).args(["show", "acme/ds", "--type", "dataset", "--json"])
    )));
    assert_eq!(shown["kind"], "dataset");
    assert_eq!(shown["files"].as_array().unwrap().len(), files.len());
    // It is a dataset there too, not a model of the same name.
    assert!(
        !run(cli_at(island.path()).args(["show", "acme/ds"]))
            .status
            .success()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_bundle_is_served_offline() {
    let files = first_files();
    let world = World::start(hub_with("acme/off", &files, json!({"license": "mit"}))).await;
    succeeded(run(world.cli().args(["pull", "acme/off"])));
    let bundle = world.home.path().join("bundle");
    succeeded(run(world
        .cli()
        .args(["export", "acme/off", "--to"])
        .arg(&bundle)));
    let far = tempfile::tempdir().unwrap();
    succeeded(run(cli_at(far.path()).arg("import").arg(&bundle)));

    let settings = larder::settings::Settings {
        home: far.path().to_path_buf(),
        endpoint: "http://127.0.0.1:9".to_owned(),
        token: None,
    };
    let larder = larder::Larder::open(&settings).unwrap();
    let options = larder::serve::ServeOptions::new("127.0.0.1:0".parse().unwrap());
    let mirror = larder::serve::start(larder, options).await.unwrap();
    let base = format!("http://{}", mirror.addr());
    let info: Value = reqwest::get(format!("{base}/api/models/acme/off/revision/main"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["siblings"].as_array().unwrap().len(), files.len());
    for (path, bytes, _) in &files {
        let response = reqwest::get(format!("{base}/acme/off/resolve/main/{path}"))
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.bytes().await.unwrap().as_ref(),
            bytes.as_slice(),
            "{path}"
        );
    }
}
