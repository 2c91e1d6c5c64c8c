//! The web page at `/`: repos with licence verdicts, hostile names escaped, `/v1/repos`, the
//! `?q=` filter; then the real `larder serve` in a real headless Chromium, which must show the
//! pulled repo and a running job's progress filled in by the page's script (`--dump-dom`), and,
//! driven over the DevTools protocol, filter the rows as one types and update the job's
//! progress without a reload.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hub_standin::{Fault, Hub, RepoKind};
use larder::daemon::jobs::JobView;
use larder::registry::{FileRecord, JobState, LicenceFields, RepoKind as Kind, SnapshotRecord};
use larder::serve::{ServeOptions, start};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::{
    Browser, Tag, chromium, dump_dom, find_tag, start_tags, without_attribute_values,
};
use crate::common::{Served, World, commit_id, content, options, pull_with, sha256_hex};

const HOSTILE: &str = "acme/<img src=x onerror=alert(1)>\"'&";
const HOSTILE_LICENCE: &str = "<script>alert('licence')</script>";
/// The running job's file, throttled to [`SLOW_RATE`] per connection: its progress (flushed per
/// MiB and connection) shows within two seconds and moves every second, and the job (8
/// connections, about 4 MiB/s) runs for some 40 s, well past the end of the test.
const SLOW: usize = 160 << 20;
/// See [`SLOW`].
const SLOW_RATE: u64 = 512 << 10;

/// The stand-in's repos; `slow`: the bytes of `acme/slow`'s weights.
fn hub(slow: Option<Vec<u8>>) -> Hub {
    let hub = Hub::new();
    hub.repo(RepoKind::Model, "acme/tiny")
        .card(json!({"license": "apache-2.0"}))
        .regular_file("config.json", br#"{"tiny":true}"#.to_vec())
        .lfs_file("model.safetensors", content(41, 1 << 20))
        .commit("main");
    hub.repo(RepoKind::Dataset, "acme/corpus")
        .card(json!({"license": "cc-by-nc-4.0"}))
        .regular_file("train.csv", b"a,b\n1,2\n".to_vec())
        .commit("main");
    if let Some(slow) = slow {
        hub.repo(RepoKind::Model, "acme/slow")
            .card(json!({"license": "mit"}))
            .lfs_file("model.safetensors", slow)
            .commit("main");
    }
    hub
}

const POLICY: &str =
    "default = \"review\"\nallow = [\"apache-2.0\", \"mit\"]\ndeny = [\"cc-by-nc-4.0\"]\n";

/// Pull `acme/tiny` (model) and `acme/corpus` (dataset) into the world's store.
async fn fill(world: &World) {
    let larder = world.larder();
    let (result, _) = pull_with(&larder, &options("acme/tiny", "main")).await;
    result.expect("pull acme/tiny");
    let mut corpus = options("acme/corpus", "main");
    corpus.kind = larder::hub::RepoType::Dataset;
    let (result, _) = pull_with(&larder, &corpus).await;
    result.expect("pull acme/corpus");
}

/// Record a repo whose name and card licence are markup.
async fn record_hostile(world: &World) {
    let registry = world.larder().registry;
    registry
        .record_snapshot(SnapshotRecord {
            kind: Kind::Model,
            name: HOSTILE.to_owned(),
            upstream: world.server.url(),
            gated: None,
            private: false,
            commit: commit_id(&"ab".repeat(20)),
            card_json: Some(json!({"license": "other", "license_name": HOSTILE_LICENCE})),
            refs: vec!["<b>main</b>".to_owned()],
            seen_at: larder::now_unix(),
            files: vec![FileRecord {
                path: "README.md".to_owned(),
                size: 3,
                git_oid: "cd".repeat(20),
                sha256: None,
                lfs: false,
            }],
            licence: LicenceFields {
                license: Some("other".to_owned()),
                license_name: Some(HOSTILE_LICENCE.to_owned()),
                license_link: None,
                gated: None,
            },
        })
        .await
        .expect("record the hostile repo");
}

fn policy(world: &World) -> PathBuf {
    let path = world.home.path().join("policy.toml");
    std::fs::write(&path, POLICY).expect("policy.toml");
    path
}

/// The `<tr>` of a repo, and its markup up to `</tr>`.
fn repo_row<'a>(html: &'a str, repo: &str) -> (Tag, &'a str) {
    let tag = find_tag(html, "tr", "data-name", repo)
        .unwrap_or_else(|| panic!("no row for {repo}:\n{html}"));
    let end = tag.at + html[tag.at..].find("</tr>").expect("row end");
    let markup = &html[tag.at..end];
    (tag, markup)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_lists_repos_with_verdicts_escapes_markup_and_filters() {
    let world = World::start(hub(None)).await;
    fill(&world).await;
    record_hostile(&world).await;
    // acme/tiny's main is tracked (its last check failed); acme/corpus's commit is pinned.
    let registry = world.larder().registry;
    let checked_at = larder::now_unix() + 120;
    registry
        .track(Kind::Model, "acme/tiny", "main", 3600, larder::now_unix())
        .await
        .expect("track");
    registry
        .record_track_check(
            Kind::Model,
            "acme/tiny",
            "main",
            larder::registry::TrackCheck {
                at: checked_at,
                upstream_commit: None,
                base_commit: None,
                pending_job: None,
                error: Some("<i>upstream</i> timed out".to_owned()),
            },
        )
        .await
        .expect("record a check");
    let corpus_commit = registry
        .resolve(Kind::Dataset, "acme/corpus", "main")
        .await
        .expect("resolve")
        .expect("held");
    assert!(
        registry
            .pin(Kind::Dataset, "acme/corpus", &corpus_commit)
            .await
            .expect("pin")
    );
    let mut options = ServeOptions::new("127.0.0.1:0".parse().expect("addr"));
    options.policy = Some(std::sync::Arc::new(larder_policy(
        &std::fs::read_to_string(policy(&world)).expect("policy"),
    )));
    let mirror = start(world.larder(), options).await.expect("mirror starts");

    let response = reqwest::get(format!("{}/", mirror.url()))
        .await
        .expect("GET /");
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert!(
        headers[reqwest::header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    let csp = headers[reqwest::header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("ascii");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let page = response.text().await.expect("body");

    // Each held repo, with its licence verdict as a badge.
    assert_eq!(
        repo_row(&page, "acme/tiny").0.get("data-kind"),
        Some("model")
    );
    assert_eq!(
        repo_row(&page, "acme/corpus").0.get("data-kind"),
        Some("dataset")
    );
    let row = |name: &str| repo_row(&page, name).1.to_owned();
    assert!(
        row("acme/tiny").contains("data-verdict=\"allow\""),
        "{}",
        row("acme/tiny")
    );
    assert!(row("acme/tiny").contains(">allowed<"));
    assert!(row("acme/tiny").contains("apache-2.0"));
    assert!(row("acme/tiny").contains("main → <code>"));
    assert!(
        row("acme/corpus").contains("data-verdict=\"deny\""),
        "{}",
        row("acme/corpus")
    );
    assert!(row("acme/corpus").contains(">denied<"));
    assert!(row("acme/tiny").contains(&format!("data-bytes=\"{}\"", (1 << 20) + 13)));
    // The script and style are embedded and served from the mirror itself.
    assert!(page.contains("<script src=\"/-/larder.js\" defer></script>"));
    for (path, kind) in [
        ("/-/larder.js", "text/javascript"),
        ("/-/larder.css", "text/css"),
    ] {
        let asset = reqwest::get(format!("{}{path}", mirror.url()))
            .await
            .expect("asset");
        assert_eq!(asset.status(), StatusCode::OK, "{path}");
        assert!(
            asset.headers()[reqwest::header::CONTENT_TYPE]
                .to_str()
                .expect("ascii")
                .starts_with(kind)
        );
    }
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "external reference"
    );

    // Markup from the registry is text, never markup.
    for raw in ["<img src=x", "<script>alert", "<b>main"] {
        assert!(!page.contains(raw), "unescaped {raw:?} in the page");
    }
    assert!(page.contains("acme/&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;"));
    assert!(page.contains("&lt;b&gt;main&lt;/b&gt;"));
    // Tracking and pins.
    assert!(
        row("acme/tiny").contains(">tracked: main<"),
        "{}",
        row("acme/tiny")
    );
    assert!(
        row("acme/tiny").contains("title=\"&lt;i&gt;upstream&lt;/i&gt; timed out\">check failed<"),
        "{}",
        row("acme/tiny")
    );
    assert!(
        row("acme/corpus").contains(">pinned<"),
        "{}",
        row("acme/corpus")
    );
    assert!(!row("acme/tiny").contains(">pinned<"));

    // The same rows as JSON, and the search on the server.
    let overview: Value = reqwest::get(format!("{}/v1/repos", mirror.url()))
        .await
        .expect("GET /v1/repos")
        .json()
        .await
        .expect("JSON");
    let names: Vec<&str> = overview["repos"]
        .as_array()
        .expect("repos")
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, vec![HOSTILE, "acme/tiny", "acme/corpus"]);
    let tiny = &overview["repos"][1];
    assert_eq!(tiny["licence"]["verdict"], "allow");
    assert_eq!(tiny["revisions"], 1);
    assert_eq!(tiny["refs"], json!(["main"]));
    assert!(tiny["last_pulled"].as_i64().expect("last_pulled") > 0);
    assert_eq!(overview["policy"], true);
    assert_eq!(overview["online"], false);
    assert_eq!(tiny["tracked"], json!(["main"]));
    assert_eq!(tiny["last_checked"], json!(checked_at));
    assert_eq!(tiny["track_error"], "<i>upstream</i> timed out");
    assert_eq!(tiny["pinned"], false);
    assert_eq!(overview["repos"][2]["pinned"], true);
    assert_eq!(overview["repos"][2]["tracked"], json!([]));

    let filtered = reqwest::get(format!("{}/?q=NC-4.0", mirror.url()))
        .await
        .expect("GET /?q=")
        .text()
        .await
        .expect("body");
    assert!(filtered.contains("data-name=\"acme/corpus\""));
    assert!(!filtered.contains("data-name=\"acme/tiny\""));
    assert!(filtered.contains("value=\"NC-4.0\""));
    let none = reqwest::get(format!("{}/v1/repos?q=%3Cnothing%3E", mirror.url()))
        .await
        .expect("GET")
        .json::<Value>()
        .await
        .expect("JSON");
    assert_eq!(none["repos"], json!([]));

    // The Hub routes are untouched by the page's.
    let resolved = reqwest::get(format!(
        "{}/acme/tiny/resolve/main/config.json",
        mirror.url()
    ))
    .await
    .expect("resolve");
    assert_eq!(resolved.status(), StatusCode::OK);
    assert_eq!(resolved.text().await.expect("body"), r#"{"tiny":true}"#);
    mirror.stop().await.expect("stops");
}

fn larder_policy(text: &str) -> larder_licence::Policy {
    larder_licence::Policy::from_toml(text).expect("policy parses")
}

fn serve(world: &World, policy: &std::path::Path) -> Served {
    let mut child = world
        .cli()
        .args(["serve", "--addr", "127.0.0.1:0", "--policy"])
        .arg(policy)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("larder serve starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent && let Some(at) = line.find(" at http://") {
                let url = line[at + 4..]
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let _ = tx.send(url);
                sent = true;
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("larder serve says where it listens");
    Served { child, url }
}

/// Type into the search box and watch a running job's progress move, in one live page.
fn interact(browser: &std::path::Path, url: &str, job: i64) {
    let mut page = Browser::open(browser, url);
    let bytes = format!(
        "(() => {{ const r = document.getElementById('job-{job}'); \
         return r ? Number(r.dataset.bytes) : 0; }})()"
    );
    let first = page.wait_for(&bytes, |v| v.as_u64().unwrap_or(0) > 0);
    // The progress moves while the page stays (no reload: a marker set now survives).
    page.eval("window.stillTheSamePage = true");
    let first = first.as_u64().unwrap_or(0);
    page.wait_for(&bytes, |v| v.as_u64().unwrap_or(0) > first);
    assert_eq!(page.eval("window.stillTheSamePage === true"), json!(true));

    // Typing filters the rows as one types, and keeps the filter in the address bar.
    page.eval("document.getElementById('q').focus()");
    page.call("Input.insertText", json!({ "text": "corpus" }));
    let rows = "JSON.stringify(Array.from(document.querySelectorAll('tr.repo')) \
                .map(r => [r.dataset.name, r.hidden]))";
    let shown = page.wait_for(rows, |v| {
        let rows: Vec<(String, bool)> =
            serde_json::from_str(v.as_str().unwrap_or("[]")).unwrap_or_default();
        rows.iter()
            .any(|(name, hidden)| name == "acme/tiny" && *hidden)
    });
    let rows: Vec<(String, bool)> =
        serde_json::from_str(shown.as_str().expect("string")).expect("rows");
    for (name, hidden) in &rows {
        assert_eq!(*hidden, name != "acme/corpus", "{rows:?}");
    }
    assert_eq!(page.eval("location.search"), json!("?q=corpus"));
    assert_eq!(
        page.eval("document.getElementById('no-match').hidden"),
        json!(true)
    );
    // Nothing matches: the page says so.
    page.eval("document.getElementById('q').select()");
    page.call("Input.insertText", json!({ "text": "no-such-repo" }));
    page.wait_for("document.getElementById('no-match').hidden", |v| {
        *v == json!(false)
    });
    assert_eq!(page.eval("window.stillTheSamePage === true"), json!(true));
}

/// Submits a pull job to the mirror at `base`; returns its id.
async fn submit_pull(client: &reqwest::Client, base: &str, repo: &str) -> i64 {
    let submitted: Value = client
        .post(format!("{base}/v1/jobs"))
        .json(&json!({"kind": "pull", "repo": repo}))
        .send()
        .await
        .expect("POST /v1/jobs")
        .json()
        .await
        .expect("JSON");
    submitted["id"].as_i64().expect("job id")
}

/// The job as the mirror at `base` answers it.
async fn job_view(client: &reqwest::Client, base: &str, id: i64) -> JobView {
    client
        .get(format!("{base}/v1/jobs/{id}"))
        .send()
        .await
        .expect("GET job")
        .json()
        .await
        .expect("job JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_shows_the_pulled_repo_and_live_job_progress() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but no Chromium was found: .ci/setup installs Debian's `chromium`"
        );
        eprintln!(
            "SKIPPED browser_shows_the_pulled_repo_and_live_job_progress: no chromium on the \
             PATH (install Debian's `chromium`, or set LARDER_CHROMIUM)"
        );
        return;
    };
    let slow = content(42, SLOW);
    let slow_sha = sha256_hex(&slow);
    let world = World::start(hub(Some(slow))).await;
    fill(&world).await;
    record_hostile(&world).await;
    world
        .server
        .inject(Fault::throttle(SLOW_RATE).sha256(&slow_sha).forever());
    let policy = policy(&world);
    let served = serve(&world, &policy);
    let client = reqwest::Client::new();

    // A job that fails at once (no such repo upstream), then the slow one.
    let missing = submit_pull(&client, &served.url, "acme/missing").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = job_view(&client, &served.url, missing).await;
        if view.state.is_final() {
            assert_eq!(view.state, JobState::Failed, "{view:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the missing repo's job never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = submit_pull(&client, &served.url, "acme/slow").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let before = loop {
        let view = job_view(&client, &served.url, id).await;
        if view.state == JobState::Running && view.progress.bytes > 0 {
            break view;
        }
        assert!(!view.state.is_final(), "the slow job ended: {view:?}");
        assert!(Instant::now() < deadline, "the job never made progress");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let url = format!("{}/", served.url);
    let dom = {
        let browser = browser.clone();
        tokio::task::spawn_blocking(move || dump_dom(&browser, &url))
            .await
            .expect("join")
    };
    // The script ran: it polled the jobs and replaced the placeholder.
    let polls: u64 = start_tags(&dom, "body")
        .first()
        .and_then(|body| body.get("data-polls"))
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    assert!(
        polls >= 1,
        "the page's script never polled /v1/jobs:\n{dom}"
    );
    assert!(!dom.contains("needs JavaScript"), "{dom}");

    // The pulled repo, with its verdict.
    let (tiny, row) = repo_row(&dom, "acme/tiny");
    assert!(!tiny.has("hidden"), "{tiny:?}");
    assert!(row.contains("data-verdict=\"allow\""), "{row}");

    // The running job, with the progress the script put there.
    let job = find_tag(&dom, "tr", "id", &format!("job-{id}"))
        .unwrap_or_else(|| panic!("job {id} not in the DOM:\n{dom}"));
    assert_eq!(job.get("data-state"), Some("running"), "{job:?}");
    let number = |key: &str| -> u64 {
        job.get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{key} of {job:?}"))
    };
    let (bytes, total) = (number("data-bytes"), number("data-total"));
    assert!(
        bytes >= before.progress.bytes && bytes > 0,
        "{job:?} vs {before:?}"
    );
    assert!(bytes < SLOW as u64, "{job:?}");
    assert_eq!(total, SLOW as u64);
    let row = &dom[job.at..job.at + dom[job.at..].find("</tr>").expect("row end")];
    assert!(row.contains("acme/slow@main"), "{row}");
    assert!(row.contains(" of 160.0 MiB ("), "{row}");

    // The failed job, with why.
    let failed = find_tag(&dom, "tr", "id", &format!("job-{missing}"))
        .unwrap_or_else(|| panic!("job {missing} not in the DOM:\n{dom}"));
    assert_eq!(failed.get("data-state"), Some("failed"), "{failed:?}");
    let row = &dom[failed.at..failed.at + dom[failed.at..].find("</tr>").expect("row end")];
    assert!(
        row.contains("<code class=\"kind\">not_found</code>"),
        "{row}"
    );

    // Markup in names, refs and licences stays text.
    let (hostile, _) = repo_row(&dom, HOSTILE);
    assert!(!hostile.has("hidden"), "{hostile:?}");
    let markup = without_attribute_values(&dom);
    assert!(
        markup.contains("acme/&lt;img src=x onerror=alert(1)&gt;"),
        "{dom}"
    );
    for raw in ["<img", "<b>main", "<script>alert"] {
        assert!(!markup.contains(raw), "{raw} became markup:\n{dom}");
    }

    // The search box filters in the page: `#q=` fills it without asking the server. The server
    // rendered only `?q=tiny`'s rows, so the script fetched `/v1/repos` and built the others.
    let url = format!("{}/?q=tiny#q=corpus", served.url);
    let dom = {
        let browser = browser.clone();
        tokio::task::spawn_blocking(move || dump_dom(&browser, &url))
            .await
            .expect("join")
    };
    let (corpus, row) = repo_row(&dom, "acme/corpus");
    assert!(!corpus.has("hidden"), "{corpus:?}");
    assert!(
        row.contains("data-verdict=\"deny\"") && row.contains(">denied<"),
        "{row}"
    );
    let (tiny, _) = repo_row(&dom, "acme/tiny");
    assert!(tiny.has("hidden"), "acme/tiny not filtered out: {tiny:?}");
    let (hostile, _) = repo_row(&dom, HOSTILE);
    assert!(hostile.has("hidden"), "{hostile:?}");
    assert_eq!(
        start_tags(&dom, "body")[0].get("data-filter"),
        Some("corpus")
    );
    let markup = without_attribute_values(&dom);
    assert!(
        markup.contains("acme/&lt;img src=x onerror=alert(1)&gt;"),
        "{dom}"
    );
    for raw in ["<img", "<b>main", "<script>alert"] {
        assert!(!markup.contains(raw), "{raw} became markup:\n{dom}");
    }

    // A live page: typing into the search box, and the job's progress moving.
    let url = format!("{}/", served.url);
    let browser = chromium().expect("chromium");
    tokio::task::spawn_blocking(move || interact(&browser, &url, id))
        .await
        .expect("the live page behaves");
    // Everything above saw the job running, as intended.
    let after = job_view(&client, &served.url, id).await;
    assert_eq!(
        after.state,
        JobState::Running,
        "the slow job ended early: {after:?}"
    );
    eprintln!(
        "browser test: the job held {} of {} bytes at the end",
        after.progress.bytes, after.progress.total
    );
    drop(served);
}
