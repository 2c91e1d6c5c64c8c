//! Licence detection at pull, the policy gate, and the reports (`audit`, `notice`, `show
//! --json`'s licence history, CycloneDX validated by the official schema), end to end
//! through the `larder` binary against the Hub stand-in.
//!
//! Licence "texts" are short stand-ins built from each licence's distinctive phrases (as in
//! the licence crate's own fixtures); we do not ship full texts.

use std::path::Path;
use std::process::{Command, Output};

use hub_standin::{Hub, RepoKind};
use larder::registry::RepoKind as Kind;
use serde_json::{Value, json};

use crate::common::{World, commit_id, content, python};

const LLAMA31_LICENSE: &str = "LLAMA 3.1 COMMUNITY LICENSE AGREEMENT\nLlama 3.1 Version Release Date: July 23, 2024\n\"Agreement\" means the terms and conditions for use, reproduction, distribution and modification of the Llama Materials set forth herein.\ni. If you distribute or make available the Llama Materials ... you shall prominently display \u{201c}Built with Llama\u{201d}.\n";
const LLAMA31_POLICY: &str = "# Llama 3.1 Acceptable Use Policy\nMeta is committed to promoting safe and fair use of its tools and features, including Llama 3.1.\n";
const LLAMA31_NOTICE: &str = "Llama 3.1 is licensed under the Llama 3.1 Community License, Copyright \u{a9} Meta Platforms, Inc. All Rights Reserved.\n";
const GEMMA_TERMS: &str = "Gemma Terms of Use\nLast modified: March 24, 2025\nBy using, reproducing, modifying, distributing, performing or displaying any portion or element of Gemma, Model Derivatives ...\n";
const MRL_TEXT: &str = "# Mistral AI Research License\nIf You want to use a Mistral Model, a Derivative or an Output for any purpose that is not expressly authorized under this Agreement, You must request a license from Mistral AI.\n";
const QWEN_LICENSE: &str = "Tongyi Qianwen LICENSE AGREEMENT\nTongyi Qianwen Release Date: August 3, 2023\nBy clicking to agree or by using or distributing any portion or element of the Tongyi Qianwen Materials, you will be deemed to have recognized and accepted the content of this Agreement.\n";
const DEEPSEEK_LICENSE: &str = "DEEPSEEK LICENSE AGREEMENT\nVersion 1.0, 23 October 2023\nCopyright (c) 2023 DeepSeek\nSection I: PREAMBLE\n";
const OPENRAIL_LICENSE: &str = "CreativeML Open RAIL-M\ndated August 22, 2022\nSection I: PREAMBLE\nMultimodal generative models are being widely adopted and used...\n";
const APACHE_LICENSE: &str = "\n                                 Apache License\n                           Version 2.0, January 2004\n                        http://www.apache.org/licenses/\n\n   TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION\n";
const MIT_LICENSE: &str = "MIT License\n\nCopyright (c) 2024 Some Lab\n\nPermission is hereby granted, free of charge, to any person obtaining a copy\nof this software and associated documentation files (the \"Software\"), to deal\nin the Software without restriction.\n\nThe above copyright notice and this permission notice shall be included in all\ncopies or substantial portions of the Software.\n";
const CC_BY_NC_LICENSE: &str = "Attribution-NonCommercial 4.0 International\n\nCreative Commons Attribution-NonCommercial 4.0 International Public License\n\nBy exercising the Licensed Rights (defined below), You accept and agree to be bound...\n";

const MISTRAL_NOTICE: &str =
    "Mistral 7B\nThis product includes work by the Mistral AI team (fixture notice 7f3a).\n";

const LLAMA: &str = "meta-llama/Llama-3.1-8B-Instruct";
const NC: &str = "CohereForAI/c4ai-command-r-v01";

/// One fixture repo: (repo, card, licence files, expected catalog key).
type Family = (
    &'static str,
    Value,
    Vec<(&'static str, &'static str)>,
    &'static str,
);

/// Every fixture repo.
fn families() -> Vec<Family> {
    vec![
        (
            LLAMA,
            json!({ "license": "llama3.1", "extra_gated_prompt": LLAMA31_LICENSE }),
            vec![
                ("LICENSE", LLAMA31_LICENSE),
                ("USE_POLICY.md", LLAMA31_POLICY),
                ("NOTICE", LLAMA31_NOTICE),
            ],
            "llama3_1",
        ),
        (
            "google/gemma-2-9b-it",
            json!({ "license": "gemma" }),
            vec![("LICENSE", GEMMA_TERMS)],
            "gemma_tou",
        ),
        (
            "Qwen/Qwen2-72B-Instruct",
            json!({ "license": "other", "license_name": "tongyi-qianwen", "license_link": "https://huggingface.co/Qwen/Qwen2-72B-Instruct/blob/main/LICENSE" }),
            vec![("LICENSE", QWEN_LICENSE)],
            "tongyi_qianwen_2023",
        ),
        (
            "mistralai/Ministral-8B-Instruct-2410",
            json!({ "license": "other", "license_name": "mrl", "license_link": "https://mistral.ai/licenses/MRL-0.1.md", "extra_gated_prompt": MRL_TEXT }),
            vec![],
            "mistral_mrl_0_1",
        ),
        (
            "deepseek-ai/DeepSeek-V3",
            json!({ "license": "other", "license_name": "deepseek-license" }),
            vec![
                ("LICENSE-MODEL", DEEPSEEK_LICENSE),
                ("LICENSE-CODE", MIT_LICENSE),
            ],
            "deepseek_la_1_0",
        ),
        (
            "CompVis/stable-diffusion-v1-4",
            json!({ "license": "creativeml-openrail-m" }),
            vec![("LICENSE", OPENRAIL_LICENSE)],
            "creativeml_openrail_m",
        ),
        (
            NC,
            json!({ "license": "cc-by-nc-4.0" }),
            vec![("LICENSE", CC_BY_NC_LICENSE)],
            "cc_by_nc_4_0",
        ),
        (
            "mistralai/Mistral-7B-v0.1",
            json!({ "license": "apache-2.0" }),
            vec![("LICENSE", APACHE_LICENSE), ("NOTICE", MISTRAL_NOTICE)],
            "apache_2_0",
        ),
        (
            "microsoft/phi-2",
            json!({ "license": "mit" }),
            vec![("LICENSE", MIT_LICENSE)],
            "mit",
        ),
        (
            "someone/no-licence",
            json!({ "tags": ["text-generation"] }),
            vec![],
            "unknown",
        ),
    ]
}

/// A hub holding every family, each with a config and a small LFS weight file.
fn families_hub() -> Hub {
    let hub = Hub::new();
    for (index, (repo, card, files, _)) in families().into_iter().enumerate() {
        let mut builder = hub
            .repo(RepoKind::Model, repo)
            .card(card)
            .regular_file("config.json", br#"{"architectures":["X"]}"#.to_vec())
            .lfs_file("model.safetensors", content(100 + index as u64, 64 << 10));
        for (path, text) in files {
            builder = builder.regular_file(path, text.as_bytes().to_vec());
        }
        builder.commit("main");
    }
    hub
}

fn run(world: &World, args: &[&str]) -> Output {
    world
        .cli()
        .env("USER", "auditor")
        .args(args)
        .output()
        .expect("larder runs")
}

fn ok(world: &World, args: &[&str]) -> Output {
    let output = run(world, args);
    assert!(
        output.status.success(),
        "larder {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "not JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn audit_json(world: &World, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit", "--format", "json"];
    all.extend_from_slice(args);
    let value = stdout_json(&ok(world, &all));
    value.as_array().expect("a JSON array").clone()
}

fn row<'a>(rows: &'a [Value], repo: &str) -> &'a Value {
    rows.iter()
        .find(|row| row["repo"] == repo)
        .unwrap_or_else(|| panic!("no audit row for {repo}: {rows:?}"))
}

fn write_policy(world: &World, text: &str) -> String {
    let path = world.home.path().join("policy.toml");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn blob_count(home: &Path) -> usize {
    let blobs = home.join("blobs");
    if !blobs.exists() {
        return 0;
    }
    let mut count = 0;
    let mut stack = vec![blobs];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                count += 1;
            }
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_family_is_detected_at_pull_and_recorded_per_commit() {
    let world = World::start(families_hub()).await;
    for (repo, _, _, _) in families() {
        ok(&world, &["pull", repo]);
    }
    let rows = audit_json(&world, &[]);
    assert_eq!(rows.len(), families().len());
    for (repo, _, _, expected) in families() {
        let row = row(&rows, repo);
        assert_eq!(row["licence"], expected, "{repo}: {row:#}");
        for field in [
            "repo",
            "commit",
            "licence",
            "licence_name",
            "commercial_use",
            "user_cap",
            "obligations",
            "verdict",
            "reasons",
            "signals",
            "conflicts",
        ] {
            assert!(row.get(field).is_some(), "{repo}: no `{field}` in {row:#}");
        }
    }
    let llama = row(&rows, LLAMA);
    assert_eq!(llama["confidence"], "high");
    assert_eq!(llama["commercial_use"], "conditional");
    assert!(llama["user_cap"].as_str().unwrap().contains("700000000"));
    let sources: Vec<String> = llama["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|signal| {
            format!(
                "{}={}",
                signal["source"].as_str().unwrap(),
                signal["value"].as_str().unwrap()
            )
        })
        .collect();
    for expected in [
        "file:LICENSE=llama3.1",
        "card.license=llama3.1",
        "tag=license:llama3.1",
    ] {
        assert!(
            sources.iter().any(|s| s == expected),
            "{expected} in {sources:?}"
        );
    }
    assert!(
        sources.iter().any(|s| s.starts_with("file:USE_POLICY.md=")),
        "{sources:?}"
    );
    let deepseek = row(&rows, "deepseek-ai/DeepSeek-V3");
    assert_eq!(
        deepseek["licence_name"],
        "DEEPSEEK LICENSE AGREEMENT Version 1.0"
    );
    assert_eq!(
        row(&rows, "someone/no-licence")["commercial_use"],
        "unknown"
    );
    assert_eq!(row(&rows, NC)["commercial_use"], "no");
    // No policy: everything defaults to review.
    assert!(rows.iter().all(|row| row["verdict"] == "review"));

    // Every signal is in the registry per commit, with its source, and the resolution.
    let larder = world.larder();
    let history = larder
        .registry
        .licence_history(Kind::Model, LLAMA)
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].licence_key.as_deref(), Some("llama3_1"));
    assert_eq!(history[0].confidence.as_deref(), Some("high"));
    let signals = larder
        .registry
        .licence_signals(Kind::Model, LLAMA, &history[0].sha)
        .await
        .unwrap();
    let has = |source: &str, value: &str| {
        signals
            .iter()
            .any(|signal| signal.source == source && signal.value == value)
    };
    assert!(has("licence_file", "llama3.1"), "{signals:?}");
    assert!(has("card_license", "llama3.1"), "{signals:?}");
    assert!(has("tag", "license:llama3.1"), "{signals:?}");
    assert!(has("card", "llama3.1"), "card fields stay: {signals:?}");
    let file_signal = signals
        .iter()
        .find(|signal| signal.source == "licence_file")
        .unwrap();
    let detail: Value = serde_json::from_str(file_signal.detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail["path"], "LICENSE");
    assert_eq!(detail["licence"], "llama3_1");

    // CSV and table carry the same rows.
    let csv = String::from_utf8(ok(&world, &["audit", "--format", "csv"]).stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("repo,commit,licence,"), "{csv}");
    assert_eq!(lines.len(), families().len() + 1, "{csv}");
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with(&format!("{NC},")) && line.contains(",cc_by_nc_4_0,")),
        "{csv}"
    );
    let table = String::from_utf8(ok(&world, &["audit", "google/gemma-2-9b-it"]).stdout).unwrap();
    let table_lines: Vec<&str> = table.lines().collect();
    assert_eq!(table_lines.len(), 2, "{table}");
    assert!(table_lines[0].starts_with("REPO"), "{table}");
    assert!(
        table_lines[1].starts_with("google/gemma-2-9b-it") && table_lines[1].contains("gemma"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_exits_5_when_a_revision_fails_the_policy() {
    let world = World::start(families_hub()).await;
    ok(&world, &["pull", NC, "--include", "config.json"]);
    ok(&world, &["pull", LLAMA, "--include", "config.json"]);
    let policy = write_policy(
        &world,
        "default = \"review\"\ndeny = [\"cc-by-nc-4.0\"]\nallow = [\"llama3.1\"]\n",
    );
    // Denied: the report is still complete, then the status says so.
    let denied = run(&world, &["audit", "--format", "json", "--policy", &policy]);
    assert_eq!(denied.status.code(), Some(5));
    let rows = stdout_json(&denied);
    assert_eq!(row(rows.as_array().unwrap(), NC)["verdict"], "deny");
    assert!(String::from_utf8_lossy(&denied.stderr).contains(&format!("{NC} (deny)")));
    let never = run(
        &world,
        &["audit", "--policy", &policy, "--fail-on", "never"],
    );
    assert_eq!(never.status.code(), Some(0));
    // Only the allowed one: passes; with `--fail-on review`, a review verdict fails too.
    let allowed = run(&world, &["audit", "--policy", &policy, LLAMA]);
    assert_eq!(allowed.status.code(), Some(0));
    let review = write_policy(&world, "default = \"review\"\n");
    let strict = run(
        &world,
        &["audit", "--policy", &review, "--fail-on", "review", LLAMA],
    );
    assert_eq!(strict.status.code(), Some(5));
    let lenient = run(&world, &["audit", "--policy", &review, LLAMA]);
    assert_eq!(lenient.status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn licence_files_are_fetched_even_when_include_leaves_them_out() {
    let world = World::start(families_hub()).await;
    ok(&world, &["pull", LLAMA, "--include", "config.json"]);
    let larder = world.larder();
    let commit = world
        .server
        .hub()
        .resolve(RepoKind::Model, LLAMA, "main")
        .unwrap();
    let detail = larder
        .registry
        .commit_detail(Kind::Model, LLAMA, &commit_id(&commit))
        .await
        .unwrap()
        .unwrap();
    let held = |path: &str| detail.files.iter().find(|f| f.path == path).unwrap().held;
    assert!(held("config.json"));
    assert!(held("LICENSE") && held("USE_POLICY.md") && held("NOTICE"));
    assert!(!held("model.safetensors"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relicensed_revision_is_flagged_and_history_shows_both() {
    let hub = Hub::new();
    let repo = "tiiuae/falcon-7b";
    let first = hub
        .repo(RepoKind::Model, repo)
        .card(json!({ "license": "cc-by-nc-4.0" }))
        .regular_file("LICENSE", CC_BY_NC_LICENSE.as_bytes().to_vec())
        .regular_file("config.json", b"{}".to_vec())
        .commit("main");
    let world = World::start(hub).await;
    ok(&world, &["pull", repo]);
    // Not relicensed yet.
    let rows = audit_json(&world, &[repo]);
    assert_eq!(rows[0]["relicensing"], Value::Null);

    let second = world
        .server
        .hub()
        .repo(RepoKind::Model, repo)
        .card(json!({ "license": "apache-2.0" }))
        .regular_file("LICENSE", APACHE_LICENSE.as_bytes().to_vec())
        .commit("main");
    assert_ne!(first, second);
    ok(&world, &["pull", repo]);

    let rows = audit_json(&world, &[repo]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["commit"], second.as_str());
    assert_eq!(rows[0]["licence"], "apache_2_0");
    let change = &rows[0]["relicensing"];
    assert_eq!(change["from"][0], first.as_str(), "{change:#}");
    assert_eq!(change["from"][1], "cc-by-nc-4.0");
    assert_eq!(change["to"][1], "apache-2.0");
    assert!(
        rows[0]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|reason| reason.as_str().unwrap().starts_with("relicensed:")),
        "{:#}",
        rows[0]
    );
    let table = String::from_utf8(ok(&world, &["audit", repo]).stdout).unwrap();
    assert!(
        table.contains("RELICENSED") && table.contains("cc-by-nc-4.0 at"),
        "{table}"
    );

    // The earlier revision still audits as it was.
    let old = audit_json(&world, &[&format!("{repo}@{first}")]);
    assert_eq!(old[0]["licence"], "cc_by_nc_4_0");

    let show = stdout_json(&ok(&world, &["show", repo, "--json"]));
    let history = show["licence_history"].as_array().expect("licence_history");
    assert_eq!(history.len(), 2, "{show:#}");
    assert_eq!(history[0]["commit"], first.as_str());
    assert_eq!(history[0]["licence"], "cc_by_nc_4_0");
    assert_eq!(history[1]["commit"], second.as_str());
    assert_eq!(history[1]["licence"], "apache_2_0");
    assert_eq!(history[1]["licence_id"], "apache-2.0");
    let text = String::from_utf8(ok(&world, &["show", repo]).stdout).unwrap();
    assert!(
        text.contains("detected: apache-2.0 (high confidence)"),
        "{text}"
    );
    assert!(text.contains("licence history:"), "{text}");
    assert!(
        text.contains(&format!("{first}  ")) && text.contains("cc-by-nc-4.0"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mislabeled_derivative_of_a_held_llama_is_flagged() {
    let hub = families_hub();
    let derivative = "someone/fast-chat-8b";
    hub.repo(RepoKind::Model, derivative)
        .card(json!({ "license": "mit", "base_model": LLAMA }))
        .regular_file("LICENSE", MIT_LICENSE.as_bytes().to_vec())
        .regular_file("config.json", b"{}".to_vec())
        .commit("main");
    let world = World::start(hub).await;
    ok(&world, &["pull", LLAMA]);
    let policy = write_policy(
        &world,
        "default = \"deny\"\nallow = [\"mit\", \"llama3.1\"]\n",
    );
    let pulled = ok(&world, &["pull", derivative, "--policy", &policy]);
    let stderr = String::from_utf8_lossy(&pulled.stderr);
    assert!(stderr.contains("needs review"), "{stderr}");

    let rows = audit_json(&world, &["--policy", &policy, derivative]);
    let row = &rows[0];
    assert_eq!(row["licence"], "mit");
    // The card says MIT, but the Llama base's terms follow the weights.
    assert_eq!(row["commercial_use"], "conditional", "{row:#}");
    assert_eq!(row["verdict"], "review");
    let kinds: Vec<&str> = row["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|conflict| conflict["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"inherited_terms"), "{kinds:?}");
    assert!(kinds.contains(&"naming_rule"), "{kinds:?}");
    assert!(
        row["obligations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|duty| duty.as_str().unwrap().contains(LLAMA)),
        "{row:#}"
    );
    assert!(row["user_cap"].as_str().unwrap().contains("700000000"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_pull_exits_5_with_nothing_stored_until_the_licence_is_accepted() {
    let world = World::start(families_hub()).await;
    let policy = write_policy(
        &world,
        "default = \"review\"\nallow = [\"apache-2.0\", \"mit\", \"llama3.1\"]\ndeny = [\"cc-by-nc-4.0\"]\n[require]\ncommercial_use = true\n[[exception]]\nrepo = \"acme/research-model\"\nverdict = \"allow\"\nreason = \"internal research only, approved 2026-11\"\n",
    );
    let denied = run(&world, &["pull", NC, "--policy", &policy]);
    assert_eq!(denied.status.code(), Some(5), "{denied:?}");
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(stderr.contains("cc-by-nc-4.0"), "{stderr}");
    assert!(stderr.contains("deny: cc-by-nc-4.0"), "{stderr}");
    assert!(stderr.contains("--accept-licence cc-by-nc-4.0"), "{stderr}");
    // Nothing downloaded, nothing registered.
    assert_eq!(blob_count(world.home.path()), 0);
    assert_eq!(world.server.stats().bytes_for_path("model.safetensors"), 0);
    let larder = world.larder();
    assert!(larder.registry.list_repos().await.unwrap().is_empty());
    assert!(larder.registry.audit_log(None).await.unwrap().is_empty());
    drop(larder);

    // An unrelated acceptance does not help.
    let still = run(
        &world,
        &["pull", NC, "--policy", &policy, "--accept-licence", "mit"],
    );
    assert_eq!(still.status.code(), Some(5));
    // A misspelt one is an error of its own.
    let bad = run(
        &world,
        &[
            "pull",
            NC,
            "--policy",
            &policy,
            "--accept-licence",
            "cc-by-nc-9",
        ],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("names no licence"));

    let accepted = ok(
        &world,
        &[
            "pull",
            NC,
            "--policy",
            &policy,
            "--accept-licence",
            "cc-by-nc-4.0",
        ],
    );
    assert!(
        String::from_utf8_lossy(&accepted.stderr).contains("overridden"),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    assert!(blob_count(world.home.path()) > 0);
    let larder = world.larder();
    let log = larder.registry.audit_log(None).await.unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].actor, "auditor");
    assert_eq!(log[0].action, "accept_licence");
    assert_eq!(log[0].repo.as_deref(), Some(&*format!("model:{NC}")));
    let detail = log[0].detail.as_ref().unwrap();
    assert_eq!(detail["licences"], json!(["cc-by-nc-4.0"]));
    assert_eq!(detail["overridden"], "deny: cc-by-nc-4.0");
    assert!(log[0].at > 1_700_000_000);

    // The audit honours the recorded acceptance; without it the policy still denies.
    let rows = audit_json(&world, &["--policy", &policy, NC]);
    assert_eq!(rows[0]["verdict"], "allow", "{:#}", rows[0]);
    assert_eq!(rows[0]["rule"], "accepted: cc-by-nc-4.0");

    // A licence no list names gets the default `review`: pulled, with a warning.
    let review = ok(
        &world,
        &["pull", "google/gemma-2-9b-it", "--policy", &policy],
    );
    let stderr = String::from_utf8_lossy(&review.stderr);
    assert!(stderr.contains("warning: licence gemma"), "{stderr}");
    assert!(stderr.contains("needs review: default: review"), "{stderr}");
    // An allowed but conditional licence under `require.commercial_use` needs review too,
    // unless its conditions are accepted.
    let conditional = ok(&world, &["pull", LLAMA, "--policy", &policy]);
    let stderr = String::from_utf8_lossy(&conditional.stderr);
    assert!(
        stderr.contains("needs review: require.commercial_use: llama3.1 is conditional"),
        "{stderr}"
    );
    let accepted = ok(
        &world,
        &[
            "pull",
            LLAMA,
            "--policy",
            &policy,
            "--accept-licence",
            "llama3.1",
        ],
    );
    let stderr = String::from_utf8_lossy(&accepted.stderr);
    assert!(!stderr.contains("needs review"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_from_config_toml_denies_and_unknown_keys_are_refused() {
    let world = World::start(families_hub()).await;
    std::fs::write(
        world.home.path().join("config.toml"),
        "[policy]\ndefault = \"allow\"\ndeny = [\"unknown\"]\n",
    )
    .unwrap();
    let denied = run(&world, &["pull", "someone/no-licence"]);
    assert_eq!(denied.status.code(), Some(5), "{denied:?}");
    assert!(String::from_utf8_lossy(&denied.stderr).contains("deny: unknown"));
    ok(&world, &["pull", "microsoft/phi-2"]);
    ok(
        &world,
        &["pull", "someone/no-licence", "--accept-licence", "unknown"],
    );

    std::fs::write(
        world.home.path().join("config.toml"),
        "[policy]\ndefault = \"allow\"\ndenny = [\"mit\"]\n",
    )
    .unwrap();
    let bad = run(&world, &["pull", "microsoft/phi-2"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("config.toml"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// Validate a CycloneDX BOM with cyclonedx-python-lib's strict 1.6 JSON validator.
fn validate_cyclonedx(path: &Path) -> Result<(), String> {
    let script = "import sys\nfrom cyclonedx.schema import SchemaVersion\nfrom cyclonedx.validation.json import JsonStrictValidator\nerror = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())\nif error is not None:\n    print(error)\n    sys.exit(1)\n";
    let output = Command::new(python())
        .args(["-c", script])
        .arg(path)
        .output()
        .map_err(|error| {
            format!(
                "cannot run {}: {error} (set LARDER_PYTHON)",
                python().display()
            )
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cyclonedx_bom_validates_and_carries_registry_hashes() {
    let world = World::start(families_hub()).await;
    for repo in [LLAMA, "deepseek-ai/DeepSeek-V3", "someone/no-licence"] {
        ok(&world, &["pull", repo]);
    }
    let bom_path = world.home.path().join("bom.json");
    ok(
        &world,
        &[
            "audit",
            "--format",
            "cyclonedx",
            "--out",
            bom_path.to_str().unwrap(),
        ],
    );
    validate_cyclonedx(&bom_path).expect("the BOM validates against CycloneDX 1.6");
    let bom: Value = serde_json::from_slice(&std::fs::read(&bom_path).unwrap()).unwrap();
    assert_eq!(bom["specVersion"], "1.6");
    let components = bom["components"].as_array().unwrap();
    assert_eq!(components.len(), 3);

    let larder = world.larder();
    let commit = world
        .server
        .hub()
        .resolve(RepoKind::Model, LLAMA, "main")
        .unwrap();
    let detail = larder
        .registry
        .commit_detail(Kind::Model, LLAMA, &commit_id(&commit))
        .await
        .unwrap()
        .unwrap();
    let llama = components
        .iter()
        .find(|c| c["group"] == "meta-llama")
        .expect("llama component");
    assert_eq!(llama["version"], commit.as_str());
    let files = llama["components"].as_array().unwrap();
    assert_eq!(files.len(), detail.files.len());
    for file in &detail.files {
        let entry = files
            .iter()
            .find(|entry| entry["name"] == file.path.as_str())
            .unwrap_or_else(|| panic!("{} not in the BOM", file.path));
        let sha256 = file
            .sha256
            .as_deref()
            .expect("every pulled file has a sha256");
        assert_eq!(entry["hashes"][0]["content"], sha256, "{}", file.path);
    }
    // The validator really rejects: break a hash.
    let mut broken = bom.clone();
    broken["components"][0]["hashes"][0]["content"] = json!("not-a-hash");
    std::fs::write(&bom_path, serde_json::to_vec(&broken).unwrap()).unwrap();
    assert!(validate_cyclonedx(&bom_path).is_err());

    // SPDX 3.0 is JSON-LD with an AI package per revision.
    let spdx = stdout_json(&ok(&world, &["audit", "--format", "spdx", LLAMA]));
    let graph = spdx["@graph"].as_array().unwrap();
    assert!(graph.iter().any(|element| element["type"] == "ai_AIPackage"
        && element["software_packageVersion"] == commit.as_str()));
    let spdx_path = world.home.path().join("bom.spdx.json");
    std::fs::write(&spdx_path, serde_json::to_vec(&spdx).unwrap()).unwrap();
    validate_spdx(&spdx_path).expect("the SPDX document loads in the SPDX 3.0.1 model");
    let mut broken = spdx.clone();
    if let Some(package) = broken["@graph"]
        .as_array_mut()
        .and_then(|graph| graph.iter_mut().find(|e| e["type"] == "ai_AIPackage"))
    {
        package["software_primaryPurpose"] = json!("weights");
    }
    std::fs::write(&spdx_path, serde_json::to_vec(&broken).unwrap()).unwrap();
    assert!(validate_spdx(&spdx_path).is_err());
}

/// Load an SPDX 3.0.1 JSON-LD document with the official bindings (`spdx-python-model`,
/// installed by `.ci/setup`): property names, types, vocabularies, links.
fn validate_spdx(path: &Path) -> Result<(), String> {
    let script = "import io, sys\nfrom spdx_python_model import v3_0_1 as spdx\nobjects = spdx.SHACLObjectSet()\nwith open(sys.argv[1]) as f:\n    spdx.JSONLDDeserializer().read(f, objects)\nmissing = objects.link()\nif missing:\n    print('unresolved ids', sorted(missing))\n    sys.exit(1)\nspdx.JSONLDSerializer().write(objects, io.BytesIO())\n";
    let output = Command::new(python())
        .args(["-c", script])
        .arg(path)
        .output()
        .map_err(|error| {
            format!(
                "cannot run {}: {error} (set LARDER_PYTHON)",
                python().display()
            )
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notice_reproduces_attribution_and_notice_files() {
    let world = World::start(families_hub()).await;
    ok(&world, &["pull", LLAMA]);
    ok(&world, &["pull", "mistralai/Mistral-7B-v0.1"]);
    let out = world.home.path().join("NOTICE.txt");
    ok(
        &world,
        &[
            "notice",
            LLAMA,
            "mistralai/Mistral-7B-v0.1",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("Attribution owed for 2 model(s)"), "{text}");
    assert!(text.contains(LLAMA31_NOTICE.trim()), "{text}");
    assert!(text.contains("Built with Llama"), "{text}");
    assert!(text.contains("mistralai/Mistral-7B-v0.1"), "{text}");
    // The repos' own NOTICE files are reproduced verbatim.
    assert!(
        text.contains(&format!(
            "--- mistralai/Mistral-7B-v0.1: NOTICE ---\n{}",
            MISTRAL_NOTICE.trim_end()
        )),
        "{text}"
    );
    assert!(text.contains(&format!("--- {LLAMA}: NOTICE ---")), "{text}");
    let missing = run(&world, &["notice", "acme/not-held"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not held"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_applies_the_policy_to_files() {
    let hub = hub_standin::Hub::new();
    hub.repo(hub_standin::RepoKind::Model, "acme/open")
        .card(serde_json::json!({"license": "apache-2.0"}))
        .regular_file("config.json", b"{}".to_vec())
        .commit("main");
    hub.repo(hub_standin::RepoKind::Model, "acme/nc")
        .card(serde_json::json!({"license": "cc-by-nc-4.0"}))
        .regular_file("config.json", b"{\"nc\":1}".to_vec())
        .commit("main");
    let world = crate::common::World::start(hub).await;
    for repo in ["acme/open", "acme/nc"] {
        let status = world.cli().args(["pull", repo]).status().unwrap();
        assert!(status.success(), "{repo}");
    }
    let policy =
        larder_licence::Policy::from_toml("default = \"allow\"\ndeny = [\"cc-by-nc-4.0\"]\n")
            .unwrap();
    let mut options = larder::serve::ServeOptions::new("127.0.0.1:0".parse().unwrap());
    options.policy = Some(std::sync::Arc::new(policy));
    let mirror = larder::serve::start(world.larder(), options).await.unwrap();
    let base = format!("http://{}", mirror.addr());

    let open = reqwest::get(format!("{base}/acme/open/resolve/main/config.json"))
        .await
        .unwrap();
    assert_eq!(open.status(), 200);
    let denied = reqwest::get(format!("{base}/acme/nc/resolve/main/config.json"))
        .await
        .unwrap();
    assert_eq!(denied.status(), 451);
    let message = denied
        .headers()
        .get("x-error-message")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("cc-by-nc-4.0"), "{message}");
    // Metadata stays visible, so clients learn why their download is refused.
    let info = reqwest::get(format!("{base}/api/models/acme/nc/revision/main"))
        .await
        .unwrap();
    assert_eq!(info.status(), 200);
}
