//! Hub fidelity: renamed repos (pull under the old name, the mirror's redirect), `HEAD` as a
//! revision, `/raw/`, and model info passed through as the upstream sent it — against the
//! stand-in serving real recorded Hub shapes (`hub_standin::fixtures`), with the real clients.

use std::path::{Path, PathBuf};
use std::process::Command;

use hub_standin::fixtures::{
    BERT_BASE_UNCASED, BERT_BASE_UNCASED_OLD_NAME, bert_base_uncased_info, glue_info, gpt2_info,
};
use hub_standin::{Hub, RepoKind};
use larder::registry::RepoKind as Kind;
use larder::serve::{RunningMirror, ServeOptions, start};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{World, content, python, recorded, sha256_hex};

/// The files of the stand-in's bert-base-uncased (its info is the recorded one).
fn bert_files() -> Vec<(&'static str, Vec<u8>, bool)> {
    vec![
        (
            "config.json",
            br#"{"architectures":["BertForMaskedLM"],"model_type":"bert"}"#.to_vec(),
            false,
        ),
        ("model.safetensors", content(21, 300_000), true),
        ("vocab.txt", b"[PAD]\n[UNK]\n[CLS]\n".to_vec(), false),
    ]
}

/// A hub where `bert-base-uncased` moved to `google-bert/bert-base-uncased` (as on the Hub),
/// `gpt2` to `openai-community/gpt2`, and `nyu-mll/glue` is a dataset; each repo's info carries
/// the recorded or asserted fields of `hub_standin::fixtures`.
fn renamed_hub() -> Hub {
    let hub = Hub::new();
    let mut bert = hub.repo(RepoKind::Model, BERT_BASE_UNCASED_OLD_NAME);
    for (path, bytes, lfs) in bert_files() {
        bert = if lfs {
            bert.lfs_file(path, bytes)
        } else {
            bert.regular_file(path, bytes)
        };
    }
    bert.info(bert_base_uncased_info()).commit("main");
    hub.rename(
        RepoKind::Model,
        BERT_BASE_UNCASED_OLD_NAME,
        BERT_BASE_UNCASED,
    );
    hub.repo(RepoKind::Model, "gpt2")
        .regular_file("config.json", br#"{"model_type":"gpt2"}"#.to_vec())
        .info(gpt2_info())
        .commit("main");
    hub.rename(RepoKind::Model, "gpt2", "openai-community/gpt2");
    hub.repo(RepoKind::Dataset, "nyu-mll/glue")
        .regular_file("README.md", b"# GLUE\n".to_vec())
        .info(glue_info())
        .commit("main");
    hub
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

async fn offline_mirror(world: &World) -> RunningMirror {
    start(
        world.larder(),
        ServeOptions::new("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .expect("mirror starts")
}

async fn pull_through_mirror(world: &World) -> RunningMirror {
    let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    options.pull_through = true;
    start(world.quick_larder(1), options)
        .await
        .expect("mirror starts")
}

/// A huggingface_hub client (Python or the `hf` CLI) pointed at `endpoint`.
fn client(program: &Path, endpoint: &str, hf_home: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HOME", hf_home)
        .env("HF_HUB_DISABLE_XET", "1")
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_ETAG_TIMEOUT", "30")
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_HUB_CACHE")
        .env_remove("HUGGINGFACE_HUB_CACHE");
    command
}

/// Run a client; its stdout when it succeeded.
async fn run_ok(mut command: Command) -> String {
    let output = tokio::task::spawn_blocking(move || command.output().expect("client runs"))
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Python code run with the venv's huggingface_hub; its stdout parsed as JSON.
async fn python_json(endpoint: &str, hf_home: &Path, code: &str) -> Value {
    let mut command = client(&python(), endpoint, hf_home);
    command.arg("-c").arg(code);
    let stdout = run_ok(command).await;
    serde_json::from_str(stdout.trim().lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// `hf download REPO` through `endpoint`; the snapshot folder.
async fn hf_download(endpoint: &str, hf_home: &Path, repo: &str) -> PathBuf {
    let hf = python().with_file_name("hf");
    let mut command = client(&hf, endpoint, hf_home);
    command.args(["download", repo]);
    let stdout = run_ok(command).await;
    let last = stdout.trim().lines().last().unwrap_or("").trim();
    PathBuf::from(last.strip_prefix("path:").unwrap_or(last).trim())
}

fn assert_bert_files(snapshot: &Path) {
    for (path, bytes, _) in bert_files() {
        let got = std::fs::read(snapshot.join(path))
            .unwrap_or_else(|e| panic!("{path} in {}: {e}", snapshot.display()));
        assert_eq!(got, bytes, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn renamed_repo_pulls_under_its_old_name() {
    let world = World::start(renamed_hub()).await;
    let output = world.ok(&["pull", BERT_BASE_UNCASED_OLD_NAME]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("renamed") && stderr.contains(BERT_BASE_UNCASED),
        "{stderr}"
    );
    // Recorded under the name the Hub gives it now; the old name resolves to it.
    let larder = world.larder();
    let main = world
        .server
        .hub()
        .resolve(RepoKind::Model, BERT_BASE_UNCASED, "main")
        .unwrap();
    let (sha, detail) = recorded(&larder, Kind::Model, BERT_BASE_UNCASED, "main").await;
    assert_eq!(sha, main);
    assert_eq!(detail.files.len(), bert_files().len());
    assert!(detail.files.iter().all(|f| f.held));
    assert_eq!(
        larder
            .registry
            .resolve(Kind::Model, BERT_BASE_UNCASED_OLD_NAME, "main")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        larder
            .registry
            .alias(Kind::Model, BERT_BASE_UNCASED_OLD_NAME)
            .await
            .unwrap()
            .as_deref(),
        Some(BERT_BASE_UNCASED)
    );
    // `show` under either name says where the repo lives; `ls` lists the old name.
    let old = world.ok(&["show", BERT_BASE_UNCASED_OLD_NAME]);
    let new = world.ok(&["show", BERT_BASE_UNCASED]);
    assert!(
        String::from_utf8_lossy(&old.stderr).contains(&format!("lives at {BERT_BASE_UNCASED}")),
        "{}",
        String::from_utf8_lossy(&old.stderr)
    );
    for shown in [&old, &new] {
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(text.starts_with(BERT_BASE_UNCASED), "{text}");
        assert!(text.contains(&main), "{text}");
        assert!(text.contains("from bert-base-uncased"), "{text}");
    }
    let ls = world.ok(&["ls"]);
    let ls = String::from_utf8_lossy(&ls.stdout);
    assert!(
        ls.contains(&format!(
            "{BERT_BASE_UNCASED} (was {BERT_BASE_UNCASED_OLD_NAME})"
        )),
        "{ls}"
    );
    let json: Value = serde_json::from_slice(&world.ok(&["ls", "--json"]).stdout).unwrap();
    assert_eq!(json[0]["old_names"], json!([BERT_BASE_UNCASED_OLD_NAME]));
    // A pull under the new name is the same repo, and `HEAD` is the default branch.
    let again = world.ok(&["pull", &format!("{BERT_BASE_UNCASED}@HEAD"), "--json"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains(&main));
    assert_eq!(
        larder
            .registry
            .resolve(Kind::Model, BERT_BASE_UNCASED, "HEAD")
            .await
            .unwrap(),
        None,
        "HEAD is recorded as main, never as a ref of its own"
    );
    // A new repo that takes the old name upstream is that name's repo from its next pull on.
    let newcomer = world
        .server
        .hub()
        .repo(RepoKind::Model, BERT_BASE_UNCASED_OLD_NAME)
        .regular_file("README.md", b"a new repo\n".to_vec())
        .commit("main");
    world.ok(&["pull", BERT_BASE_UNCASED_OLD_NAME]);
    assert_eq!(
        larder
            .registry
            .alias(Kind::Model, BERT_BASE_UNCASED_OLD_NAME)
            .await
            .unwrap(),
        None
    );
    let (sha, _) = recorded(&larder, Kind::Model, BERT_BASE_UNCASED_OLD_NAME, "main").await;
    assert_eq!(sha, newcomer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mirror_redirects_old_names_like_the_hub() {
    let world = World::start(renamed_hub()).await;
    world.ok(&["pull", BERT_BASE_UNCASED_OLD_NAME]);
    let mirror = offline_mirror(&world).await;
    let mine = mirror.url();
    let c = http();
    // The same answer the Hub recorded, pointing at the mirror's own paths.
    let r = c
        .get(format!("{mine}/api/models/{BERT_BASE_UNCASED_OLD_NAME}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        header(&r, "location"),
        Some("/api/models/google-bert/bert-base-uncased")
    );
    assert_eq!(header(&r, "etag"), None);
    assert_eq!(
        r.text().await.unwrap(),
        hub_standin::fixtures::BERT_BASE_UNCASED_REDIRECT_BODY
    );
    let r = c
        .head(format!(
            "{mine}/{BERT_BASE_UNCASED_OLD_NAME}/resolve/main/config.json?x=1"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        header(&r, "location"),
        Some("/google-bert/bert-base-uncased/resolve/main/config.json?x=1")
    );
    let r = c
        .get(format!(
            "{mine}/{BERT_BASE_UNCASED_OLD_NAME}/raw/main/config.json"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        header(&r, "location"),
        Some("/google-bert/bert-base-uncased/raw/main/config.json")
    );
    // A name that was never anyone's stays unknown.
    let r = c
        .get(format!("{mine}/api/models/no-such-model"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-error-code"), Some("RepoNotFound"));

    // The real clients follow it: `hf download` and `snapshot_download` under the old name.
    let hf_home = tempfile::tempdir().unwrap();
    let snapshot = hf_download(&mine, hf_home.path(), BERT_BASE_UNCASED_OLD_NAME).await;
    assert_bert_files(&snapshot);
    let report = python_json(
        &mine,
        hf_home.path(),
        "import json, os; from huggingface_hub import snapshot_download, HfApi\n\
         p = snapshot_download('bert-base-uncased', cache_dir=os.path.join(os.environ['HF_HOME'], 'alt'))\n\
         i = HfApi().model_info('bert-base-uncased')\n\
         print(json.dumps({'path': p, 'id': i.id, 'sha': i.sha}))",
    )
    .await;
    assert_eq!(report["id"], BERT_BASE_UNCASED);
    assert_bert_files(Path::new(report["path"].as_str().unwrap()));
    mirror.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cold_pull_through_mirror_follows_and_forwards_renames() {
    let world = World::start(renamed_hub()).await;
    let mirror = pull_through_mirror(&world).await;
    let hf_home = tempfile::tempdir().unwrap();
    let snapshot = hf_download(&mirror.url(), hf_home.path(), BERT_BASE_UNCASED_OLD_NAME).await;
    assert_bert_files(&snapshot);
    let larder = world.larder();
    let (_, detail) = recorded(&larder, Kind::Model, BERT_BASE_UNCASED, "main").await;
    assert_eq!(detail.name, BERT_BASE_UNCASED);
    assert_eq!(
        larder
            .registry
            .alias(Kind::Model, BERT_BASE_UNCASED_OLD_NAME)
            .await
            .unwrap()
            .as_deref(),
        Some(BERT_BASE_UNCASED)
    );
    let model = sha256_hex(&bert_files()[1].1);
    world.published_blob(&model).await;
    mirror.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn head_revision_and_model_info_through_the_mirror() {
    let world = World::start(renamed_hub()).await;
    world.ok(&["pull", BERT_BASE_UNCASED]);
    world.ok(&["pull", "gpt2"]);
    world.ok(&["pull", "nyu-mll/glue", "--type", "dataset"]);
    let mirror = offline_mirror(&world).await;
    let mine = mirror.url();
    let up = world.server.url();
    let hub = world.server.hub();
    let main = hub
        .resolve(RepoKind::Model, BERT_BASE_UNCASED, "main")
        .unwrap();
    let c = http();

    // Field by field: every field the upstream sent is passed through, but those the mirror
    // owns; and they are the recorded ones.
    let upstream: Value = c
        .get(format!("{up}/api/models/{BERT_BASE_UNCASED}/revision/main"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = c
        .get(format!(
            "{mine}/api/models/{BERT_BASE_UNCASED}/revision/HEAD"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let served: Value = r.json().await.unwrap();
    let recording = bert_base_uncased_info();
    for (key, value) in upstream.as_object().unwrap() {
        if larder::serve::info::OWNED.contains(&key.as_str()) {
            continue;
        }
        assert_eq!(&served[key], value, "{key}");
    }
    for key in [
        "_id",
        "pipeline_tag",
        "library_name",
        "tags",
        "config",
        "safetensors",
        "transformersInfo",
        "widgetData",
        "model-index",
        "cardData",
        "createdAt",
        "lastModified",
        "downloads",
        "likes",
        "spaces",
    ] {
        assert_eq!(served[key], recording[key], "{key}");
    }
    assert_eq!(served["sha"], json!(main));
    assert_eq!(served["id"], json!(BERT_BASE_UNCASED));
    let siblings: Vec<&str> = served["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rfilename"].as_str().unwrap())
        .collect();
    assert_eq!(
        siblings,
        vec!["config.json", "model.safetensors", "vocab.txt"]
    );

    // `expand=` keeps only what was asked (plus the ids), as upstream sent it.
    let expanded: Value = c
        .get(format!(
            "{mine}/api/models/{BERT_BASE_UNCASED}?expand=safetensors&expand=cardData&expand=pipeline_tag"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut keys: Vec<&str> = expanded
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec!["_id", "cardData", "id", "pipeline_tag", "safetensors"]
    );
    assert_eq!(expanded["safetensors"], recording["safetensors"]);

    // huggingface.js asks `revision/HEAD` with its expand keys, under the old name of gpt2:
    // what its test asserts comes back.
    let js_query = "expand=pipeline_tag&expand=private&expand=gated&expand=downloads\
                    &expand=likes&expand=lastModified&expand=author";
    let r = c
        .get(format!("{mine}/api/models/gpt2/revision/HEAD?{js_query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = header(&r, "location").unwrap().to_owned();
    assert_eq!(
        location,
        format!("/api/models/openai-community/gpt2/revision/HEAD?{js_query}")
    );
    let gpt2: Value = c
        .get(format!("{mine}{location}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let asserted = gpt2_info();
    for key in ["_id", "id", "author", "gated", "private", "pipeline_tag"] {
        assert_eq!(gpt2[key], asserted[key], "{key}");
    }
    let glue: Value = c
        .get(format!("{mine}/api/datasets/nyu-mll/glue/revision/HEAD"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (key, value) in glue_info().as_object().unwrap() {
        assert_eq!(&glue[key], value, "{key}");
    }

    // huggingface_hub: `model_info(revision="HEAD")`, with what loaders read.
    let hf_home = tempfile::tempdir().unwrap();
    let report = python_json(
        &mine,
        hf_home.path(),
        "import json; from huggingface_hub import HfApi\n\
         i = HfApi().model_info('google-bert/bert-base-uncased', revision='HEAD')\n\
         print(json.dumps({'sha': i.sha, 'pipeline_tag': i.pipeline_tag,\n\
           'library_name': i.library_name, 'total': i.safetensors.total,\n\
           'tags': i.tags, 'architectures': i.config['architectures']}))",
    )
    .await;
    assert_eq!(report["sha"], json!(main));
    assert_eq!(report["pipeline_tag"], recording["pipeline_tag"]);
    assert_eq!(report["library_name"], recording["library_name"]);
    assert_eq!(report["total"], recording["safetensors"]["total"]);
    assert_eq!(report["tags"], recording["tags"]);
    assert_eq!(
        report["architectures"],
        recording["config"]["architectures"]
    );
    mirror.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn raw_serves_git_content_with_the_hubs_headers() {
    let world = World::start(renamed_hub()).await;
    world.ok(&["pull", BERT_BASE_UNCASED]);
    let mirror = offline_mirror(&world).await;
    let mine = mirror.url();
    let hub = world.server.hub();
    let main = hub
        .resolve(RepoKind::Model, BERT_BASE_UNCASED, "main")
        .unwrap();
    let c = http();

    // A regular file: its bytes, the git blob oid as ETag.
    let config = hub
        .file(RepoKind::Model, BERT_BASE_UNCASED, "main", "config.json")
        .unwrap();
    let r = c
        .get(format!("{mine}/{BERT_BASE_UNCASED}/raw/main/config.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(&r, "etag"),
        Some(format!("\"{}\"", config.oid).as_str())
    );
    assert_eq!(header(&r, "x-repo-commit"), Some(main.as_str()));
    assert_eq!(header(&r, "x-linked-size"), None);
    assert_eq!(r.bytes().await.unwrap().to_vec(), bert_files()[0].1);

    // An LFS file: the pointer git holds, with the pointer's oid as ETag (HEAD too).
    let model = hub
        .file(
            RepoKind::Model,
            BERT_BASE_UNCASED,
            "main",
            "model.safetensors",
        )
        .unwrap();
    let lfs = model.lfs.as_ref().unwrap();
    let pointer = format!(
        "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n",
        lfs.sha256, lfs.size
    );
    assert_eq!(pointer.len() as u64, lfs.pointer_size);
    assert_eq!(hub_standin::hash::git_hash(pointer.as_bytes()), model.oid);
    for head in [false, true] {
        let url = format!("{mine}/{BERT_BASE_UNCASED}/raw/HEAD/model.safetensors");
        let r = if head { c.head(&url) } else { c.get(&url) }
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            header(&r, "etag"),
            Some(format!("\"{}\"", model.oid).as_str())
        );
        assert_eq!(header(&r, "x-repo-commit"), Some(main.as_str()));
        assert_eq!(
            header(&r, "content-length"),
            Some(pointer.len().to_string().as_str())
        );
        if !head {
            assert_eq!(r.text().await.unwrap(), pointer);
        }
    }

    // Errors as the Hub's, with their codes.
    let r = c
        .get(format!("{mine}/{BERT_BASE_UNCASED}/raw/main/nope.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&r, "x-error-code"), Some("EntryNotFound"));
    assert_eq!(header(&r, "x-repo-commit"), Some(main.as_str()));
    let r = c
        .get(format!(
            "{mine}/{BERT_BASE_UNCASED}/raw/no-branch/config.json"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-error-code"), Some("RevisionNotFound"));
    let r = c
        .get(format!("{mine}/acme/unknown/raw/main/config.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&r, "x-error-code"), Some("RepoNotFound"));
    mirror.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_upstream_info_is_bounded_refused_or_passed_through() {
    let hub = Hub::new();
    // 64 MiB of info: refused, with a clear error and nothing recorded.
    hub.repo(RepoKind::Model, "evil/huge")
        .regular_file("config.json", b"{}".to_vec())
        .info(json!({"padding": "x".repeat(64 << 20)}))
        .commit("main");
    // 2 MiB of info: used, not kept (the mirror answers with its own fields).
    hub.repo(RepoKind::Model, "evil/large")
        .regular_file("config.json", b"{}".to_vec())
        .info(json!({"config": {"padding": "y".repeat(2 << 20)}, "pipeline_tag": "fill-mask"}))
        .commit("main");
    // Unknown types in fields Larder does not own: passed through as sent.
    let odd = json!({
        "pipeline_tag": 42,
        "library_name": ["not", "a", "string"],
        "config": "not an object",
        "safetensors": {"parameters": "many", "total": -1.5},
        "gguf": null,
        "xetEnabled": "yes",
    });
    hub.repo(RepoKind::Model, "evil/odd")
        .regular_file("config.json", b"{}".to_vec())
        .info(odd.clone())
        .commit("main");
    // Unknown types in fields Larder reads: refused.
    for (name, fields) in [
        ("evil/private", json!({"private": "yes"})),
        ("evil/tags", json!({"tags": 5})),
    ] {
        hub.repo(RepoKind::Model, name)
            .regular_file("config.json", b"{}".to_vec())
            .info(fields)
            .commit("main");
    }
    let world = World::start(hub).await;

    let huge = world.run(&["pull", "evil/huge"]);
    assert!(!huge.status.success());
    let stderr = String::from_utf8_lossy(&huge.stderr);
    assert!(stderr.contains("more than 67108864 bytes"), "{stderr}");
    for name in ["evil/private", "evil/tags"] {
        let refused = world.run(&["pull", name]);
        assert!(!refused.status.success(), "{name}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("malformed answer"), "{name}: {stderr}");
    }
    let larder = world.larder();
    for name in ["evil/huge", "evil/private", "evil/tags"] {
        assert_eq!(
            larder
                .registry
                .resolve(Kind::Model, name, "main")
                .await
                .unwrap(),
            None,
            "{name}"
        );
    }

    world.ok(&["pull", "evil/large"]);
    world.ok(&["pull", "evil/odd"]);
    let (large_sha, _) = recorded(&larder, Kind::Model, "evil/large", "main").await;
    assert_eq!(
        larder
            .registry
            .upstream_info(Kind::Model, "evil/large", &large_sha)
            .await
            .unwrap(),
        None,
        "a 2 MiB info is not kept"
    );
    let mirror = offline_mirror(&world).await;
    let c = http();
    let large: Value = c
        .get(format!("{}/api/models/evil/large", mirror.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(large["sha"], json!(large_sha));
    assert!(large.get("config").is_none());
    let served: Value = c
        .get(format!("{}/api/models/evil/odd", mirror.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (key, value) in odd.as_object().unwrap() {
        assert_eq!(&served[key], value, "{key}");
    }
    mirror.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expanded_tree_fields_are_the_upstreams_and_kept_for_offline() {
    let hub = renamed_hub();
    // The keys huggingface_hub's `RepoFile` reads (hf_api.py); the mirror passes the value on
    // without reading it.
    let security = json!({"status": "safe", "avScan": {"status": "safe"}, "pickleImportScan": {"status": "unscanned"}});
    hub.set_security_status(
        RepoKind::Model,
        BERT_BASE_UNCASED,
        "model.safetensors",
        security.clone(),
    );
    let world = World::start(hub).await;
    world.ok(&["pull", BERT_BASE_UNCASED]);
    let up = world.server.url();
    let c = http();
    let tree = |base: String| {
        let c = c.clone();
        async move {
            let listing: Value = c
                .get(format!(
                    "{base}/api/models/{BERT_BASE_UNCASED}/tree/main?recursive=true&expand=true"
                ))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            listing
                .as_array()
                .unwrap()
                .iter()
                .map(|e| (e["path"].as_str().unwrap().to_owned(), e.clone()))
                .collect::<std::collections::BTreeMap<String, Value>>()
        }
    };
    let upstream = tree(up.clone()).await;
    assert_eq!(
        upstream["model.safetensors"]["securityFileStatus"],
        security
    );
    let check = |served: &std::collections::BTreeMap<String, Value>| {
        assert_eq!(served.len(), upstream.len());
        for (path, entry) in &upstream {
            for field in ["lastCommit", "securityFileStatus"] {
                assert_eq!(served[path].get(field), entry.get(field), "{path} {field}");
            }
        }
    };

    // With pull-through, the mirror asks the upstream once and keeps what it said ...
    let mirror = pull_through_mirror(&world).await;
    check(&tree(mirror.url()).await);
    let before = world.server.stats().requests().len();
    check(&tree(mirror.url()).await);
    let form = c
        .post(format!(
            "{}/api/models/{BERT_BASE_UNCASED}/paths-info/main",
            mirror.url()
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("paths=config.json&paths=model.safetensors&expand=true")
        .send()
        .await
        .unwrap();
    let entries: Value = form.json().await.unwrap();
    assert_eq!(entries[1]["securityFileStatus"], security);
    assert_eq!(
        entries[0]["lastCommit"],
        upstream["config.json"]["lastCommit"]
    );
    let asked_again = world.server.stats().requests()[before..]
        .iter()
        .filter(|r| r.path.contains("paths-info"))
        .count();
    assert_eq!(asked_again, 0, "kept fields are not asked for again");
    let plain: Value = c
        .post(format!(
            "{}/api/models/{BERT_BASE_UNCASED}/paths-info/main",
            mirror.url()
        ))
        .json(&json!({"paths": ["config.json"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(plain[0].get("lastCommit").is_none());
    mirror.stop().await.unwrap();

    // ... so an offline mirror answers them too, to huggingface_hub as well.
    let offline = offline_mirror(&world).await;
    check(&tree(offline.url()).await);
    let hf_home = tempfile::tempdir().unwrap();
    let report = python_json(
        &offline.url(),
        hf_home.path(),
        "import json; from huggingface_hub import HfApi\n\
         files = {f.path: f for f in HfApi().list_repo_tree('google-bert/bert-base-uncased', expand=True)}\n\
         m = files['model.safetensors']\n\
         print(json.dumps({'oid': m.last_commit.oid, 'safe': m.security.safe}))",
    )
    .await;
    assert_eq!(
        report["oid"],
        upstream["model.safetensors"]["lastCommit"]["id"]
    );
    assert_eq!(report["safe"], json!(true));
    offline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracked_old_name_follows_the_renamed_repo() {
    let hub = renamed_hub();
    let world = World::start(hub.clone()).await;
    world.ok(&["track", BERT_BASE_UNCASED_OLD_NAME, "--every", "1s"]);
    let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    options.pull_through = true;
    options.jobs.workers = 1;
    options.jobs.poll_every = std::time::Duration::from_millis(100);
    options.jobs.track_every = std::time::Duration::from_millis(100);
    let mirror = start(world.larder(), options).await.expect("mirror starts");
    let larder = world.larder();
    let first = hub
        .resolve(RepoKind::Model, BERT_BASE_UNCASED, "main")
        .unwrap();
    let held = async |larder: &larder::Larder, want: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let sha = larder
                .registry
                .resolve(Kind::Model, BERT_BASE_UNCASED, "main")
                .await
                .unwrap();
            if sha.as_deref() == Some(want) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{want} never held");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    held(&larder, &first).await;
    // Checks go on (every second) without pulling the held commit again.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(larder.registry.jobs().await.unwrap().len(), 1);
    let second = hub
        .repo(RepoKind::Model, BERT_BASE_UNCASED)
        .base("main")
        .regular_file("config.json", br#"{"model_type":"bert","v":2}"#.to_vec())
        .commit("main");
    held(&larder, &second).await;
    assert_eq!(larder.registry.jobs().await.unwrap().len(), 2);
    mirror.stop().await.unwrap();
}
