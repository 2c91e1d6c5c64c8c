//! The console's API under `/v1`: docs/openapi.json against the router (both ways), the verbs
//! (pin, unpin, track, untrack, rm, gc, verify, licence reviews) through HTTP and through the
//! CLI's `--daemon`, with the CLI's errors; `/v1/events` carrying what changes; admin rules and
//! cross-site refusals; the repo page (revisions, lineage of a three-level `base_model` chain,
//! files) with hostile names escaped.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hub_standin::{Hub, RepoKind};
use larder::registry::{FileRecord, LicenceFields, RepoKind as Kind, SnapshotRecord};
use larder::serve::access::{AccessRules, TokenSet};
use larder::serve::{RunningMirror, ServeOptions, start};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{World, commit_id, content, options, pull_with};

const POLICY: &str = "default = \"review\"\nallow = [\"apache-2.0\", \"mit\"]\n";

/// A fine-tune of a merge of Llama: `acme/tune` ← `acme/merge` ← (`meta/llama`, `acme/other`).
pub(crate) const HOSTILE_FILE: &str = "<script>alert('file')</script>.bin";

pub(crate) fn hub() -> Hub {
    let hub = Hub::new();
    hub.repo(RepoKind::Model, "meta/llama")
        .card(json!({"license": "llama3.1"}))
        .regular_file("config.json", br#"{"llama":true}"#.to_vec())
        .commit("main");
    hub.repo(RepoKind::Model, "acme/merge")
        .card(json!({"license": "mit", "base_model": ["meta/llama", "acme/other"]}))
        .regular_file("config.json", br#"{"merge":true}"#.to_vec())
        .commit("main");
    hub.repo(RepoKind::Model, "acme/tune")
        .card(json!({"license": "apache-2.0", "base_model": "acme/merge"}))
        .regular_file("config.json", br#"{"tune":true}"#.to_vec())
        .lfs_file("model.safetensors", content(7, 64 << 10))
        .commit("main");
    hub.repo(RepoKind::Model, "acme/hostile")
        .card(json!({
            "license": "other",
            "license_name": "<script>alert('licence')</script>",
            "base_model": "<img src=x onerror=alert(1)>"
        }))
        .regular_file("README.md", b"# <script>alert('card')</script>\n".to_vec())
        .regular_file(HOSTILE_FILE, b"x".to_vec())
        .commit("main");
    hub
}

/// Pull every repo of [`hub`] into the world's store.
pub(crate) async fn fill(world: &World) {
    let larder = world.larder();
    for repo in ["meta/llama", "acme/merge", "acme/tune", "acme/hostile"] {
        let (result, _) = pull_with(&larder, &options(repo, "main")).await;
        result.unwrap_or_else(|e| panic!("pull {repo}: {e}"));
    }
}

async fn mirror(world: &World, admin: Option<&str>, online: bool) -> RunningMirror {
    let mut options = ServeOptions::new("127.0.0.1:0".parse().expect("addr"));
    options.pull_through = online;
    options.jobs.poll_every = Duration::from_millis(100);
    options.jobs.progress_every = Duration::from_millis(100);
    options.policy = Some(std::sync::Arc::new(
        larder_licence::Policy::from_toml(POLICY).expect("policy"),
    ));
    if let Some(token) = admin {
        options.access = AccessRules {
            tokens: TokenSet::default(),
            admin_tokens: TokenSet::parse(&[token]).expect("token"),
        };
    }
    start(world.larder(), options).await.expect("mirror starts")
}

/// `(METHOD, /path)` of every operation in docs/openapi.json.
fn documented() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
        .expect("docs/openapi.json");
    let doc: Value = serde_json::from_str(&text).expect("openapi.json is JSON");
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if ["get", "post", "put", "patch", "delete", "head"].contains(&method.as_str()) {
                assert!(
                    operation["responses"].is_object(),
                    "{method} {path} has no responses"
                );
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// The `/v1` paths the source registers with `.route("...")` (the Xet CAS paths under
/// `/v1/reconstructions` belong to the Hub protocol, not to this API).
fn routed_paths() -> BTreeSet<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/serve");
    let mut out = BTreeSet::new();
    let mut stack = vec![std::path::PathBuf::from(dir)];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/serve") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source");
            let mut rest = text.as_str();
            while let Some(at) = rest.find(".route(") {
                rest = &rest[at + 7..];
                let literal = rest.trim_start();
                if let Some(literal) = literal.strip_prefix('"') {
                    let end = literal.find('"').expect("literal ends");
                    let route = &literal[..end];
                    if route.starts_with("/v1") && !route.starts_with("/v1/reconstructions") {
                        out.insert(route.to_owned());
                    }
                }
            }
        }
    }
    out
}

/// A concrete URL path for a documented template.
fn concrete(template: &str) -> String {
    template
        .replace("{kind}", "model")
        .replace("{org}", "acme")
        .replace("{name}", "nothing-here")
        .replace("{revision}", "main")
        .replace("{reference}", "main")
        .replace("{id}", "999999")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_file_matches_the_routes() {
    let documented = documented();
    let paths: BTreeSet<String> = documented.iter().map(|(_, p)| p.clone()).collect();
    // Every routed /v1 path is documented, and every documented one routed.
    assert_eq!(
        paths,
        routed_paths(),
        "docs/openapi.json and the router differ"
    );

    // Every documented method is answered by its route (not 405), and every other method of a
    // documented path is refused with 405 (so no undocumented method hides there).
    let world = World::start(hub()).await;
    let mirror = mirror(&world, None, false).await;
    let client = reqwest::Client::new();
    let mut seen = BTreeMap::new();
    for path in &paths {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let url = format!("{}{}", mirror.url(), concrete(path));
            let request = client
                .request(method.parse().expect("method"), &url)
                .timeout(Duration::from_secs(10));
            // A body no verb accepts, so that probing changes nothing.
            let request = if method == "GET" || method == "DELETE" {
                request
            } else {
                request
                    .header("content-type", "application/json")
                    .body(r#"{"probe": ["not", "a", "request"]}"#)
            };
            let response = request.send().await.expect("probe");
            let status = response.status();
            drop(response);
            let documented_here = documented.contains(&(method.to_owned(), path.clone()));
            if documented_here {
                assert_ne!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is documented but not routed"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} answers {status} but is not in docs/openapi.json"
                );
            }
            seen.insert((method, path.clone()), status);
        }
    }
    // The probes changed nothing (the bodies were refused).
    assert_eq!(
        seen[&("POST", "/v1/gc".to_owned())],
        StatusCode::BAD_REQUEST
    );
    mirror.stop().await.expect("stops");
}

/// Run `larder ARGS --daemon URL` with the world's environment.
async fn on_daemon(
    world: &World,
    url: &str,
    token: Option<&str>,
    args: &[&str],
) -> std::process::Output {
    let mut command = world.cli();
    command.args(args).arg("--daemon").arg(url);
    if let Some(token) = token {
        command.env("LARDER_DAEMON_TOKEN", token);
    }
    tokio::task::spawn_blocking(move || command.output().expect("larder runs"))
        .await
        .expect("join")
}

/// Whether a held revision of the model `name` is pinned.
async fn pinned(registry: &larder::registry::Registry, name: &str) -> bool {
    registry
        .list_repos()
        .await
        .expect("repos")
        .iter()
        .find(|r| r.name == name)
        .is_some_and(|r| r.revisions.iter().any(|v| v.pinned))
}

/// Send a request; its answer's JSON.
async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON")
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbs_work_over_http_and_through_cli_daemon_mode() {
    let world = World::start(hub()).await;
    fill(&world).await;
    const ADMIN: &str = "root-token";
    let mirror = mirror(&world, Some(ADMIN), false).await;
    let base = mirror.url();
    let client = reqwest::Client::new();
    let registry = world.larder().registry;

    // Without the admin token: 403, and nothing changes.
    let refused = client
        .post(format!("{base}/v1/pins"))
        .json(&json!({"repo": "acme/tune"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(!pinned(&registry, "acme/tune").await);
    let session: Value = json_of(client.get(format!("{base}/v1/session"))).await;
    assert_eq!(session, json!({"admin": false}));
    let session: Value = json_of(client.get(format!("{base}/v1/session")).bearer_auth(ADMIN)).await;
    assert_eq!(session, json!({"admin": true}));

    // Pin and unpin over HTTP.
    let pin: Value = json_of(
        client
            .post(format!("{base}/v1/pins"))
            .bearer_auth(ADMIN)
            .json(&json!({"repo": "acme/tune", "revision": "main"})),
    )
    .await;
    assert_eq!(pin["pinned"], true, "{pin}");
    assert_eq!(pin["changed"], true, "{pin}");
    assert!(pinned(&registry, "acme/tune").await);
    let unpin = client
        .delete(format!("{base}/v1/pins/model/acme/tune/main"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("unpin");
    assert_eq!(unpin.status(), StatusCode::OK);
    assert!(!pinned(&registry, "acme/tune").await);
    // The CLI's errors, over HTTP.
    let again = client
        .delete(format!("{base}/v1/pins/model/acme/tune/main"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("unpin");
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let error: Value = again.json().await.expect("JSON");
    assert!(
        error["error"]
            .as_str()
            .unwrap_or_default()
            .ends_with("was not pinned"),
        "{error}"
    );
    let missing = client
        .post(format!("{base}/v1/pins"))
        .bearer_auth(ADMIN)
        .json(&json!({"repo": "acme/absent"}))
        .send()
        .await
        .expect("pin");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let local = world.run(&["pin", "acme/absent"]);
    assert!(!local.status.success());
    let message: Value = missing.json().await.expect("JSON");
    assert!(
        stderr(&local).contains(message["error"].as_str().expect("error")),
        "the CLI and the API disagree: {} vs {message}",
        stderr(&local)
    );
    let bad = client
        .post(format!("{base}/v1/pins"))
        .bearer_auth(ADMIN)
        .json(&json!({"repo": "../etc"}))
        .send()
        .await
        .expect("pin");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // Pin, unpin through the CLI's --daemon (the admin token from LARDER_DAEMON_TOKEN).
    let out = on_daemon(&world, &base, Some(ADMIN), &["pin", "acme/merge"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("pinned acme/merge@"),
        "{}",
        stderr(&out)
    );
    assert!(pinned(&registry, "acme/merge").await);
    let out = on_daemon(&world, &base, None, &["unpin", "acme/merge"]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("403"), "{}", stderr(&out));
    let out = on_daemon(&world, &base, Some(ADMIN), &["unpin", "acme/merge"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!pinned(&registry, "acme/merge").await);

    // Track and untrack, with the CLI's validation.
    let out = on_daemon(
        &world,
        &base,
        Some(ADMIN),
        &["track", "acme/tune@main", "--every", "30m"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("tracking acme/tune@main: checked every 30m"),
        "{}",
        stderr(&out)
    );
    let tracked: Value = json_of(client.get(format!("{base}/v1/tracked"))).await;
    assert_eq!(tracked[0]["repo"], "acme/tune", "{tracked}");
    assert_eq!(tracked[0]["every"], 1800, "{tracked}");
    let commit = "a".repeat(40);
    let out = on_daemon(
        &world,
        &base,
        Some(ADMIN),
        &["track", &format!("acme/tune@{commit}")],
    )
    .await;
    assert!(!out.status.success());
    // The daemon's answer carries the hint beside the error; the CLI prints it on its line.
    assert!(
        stderr(&out).contains("is a commit, which never moves")
            && stderr(&out).contains("\nhint: track a branch or tag"),
        "{}",
        stderr(&out)
    );
    let out = on_daemon(&world, &base, Some(ADMIN), &["untrack", "acme/tune"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(registry.tracked().await.expect("tracked").is_empty());
    let out = on_daemon(&world, &base, Some(ADMIN), &["untrack", "acme/tune"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("acme/tune@main is not tracked"),
        "{}",
        stderr(&out)
    );

    // Verify and gc through the API.
    let out = on_daemon(
        &world,
        &base,
        Some(ADMIN),
        &["verify", "acme/tune", "--json"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("verify JSON");
    assert_eq!(report["bad"], 0, "{report}");
    assert!(report["checked"].as_u64().unwrap_or(0) >= 1, "{report}");
    let out = on_daemon(&world, &base, Some(ADMIN), &["verify", "acme/absent"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("`acme/absent` is not held")
            && stderr(&out).contains("\nhint: `larder pull acme/absent` first"),
        "{}",
        stderr(&out)
    );
    let out = on_daemon(&world, &base, Some(ADMIN), &["gc", "--dry-run", "--json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("gc JSON");
    assert_eq!(report["dry_run"], true, "{report}");

    // Remove a revision through --daemon.
    let out = on_daemon(&world, &base, Some(ADMIN), &["rm", "acme/hostile@main"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("removed acme/hostile@"),
        "{}",
        stderr(&out)
    );
    assert!(
        registry
            .list_repos()
            .await
            .expect("repos")
            .iter()
            .filter(|r| r.kind == Kind::Model && r.name == "acme/hostile")
            .all(|r| r.revisions.is_empty()),
        "the revision is still held"
    );
    mirror.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_cross_site_changes_are_refused() {
    let world = World::start(hub()).await;
    fill(&world).await;
    let mirror = mirror(&world, Some("root-token"), false).await;
    let base = mirror.url();
    let client = reqwest::Client::new();
    for (method, path, body) in [
        ("POST", "/v1/jobs", r#"{"kind":"pull","repo":"acme/tune"}"#),
        ("POST", "/v1/pins", r#"{"repo":"acme/tune"}"#),
        ("POST", "/v1/tracked", r#"{"repo":"acme/tune"}"#),
        ("POST", "/v1/gc", "{}"),
        ("POST", "/v1/verify", "{}"),
        (
            "POST",
            "/v1/licence-reviews",
            r#"{"repo":"acme/tune","decision":"accept"}"#,
        ),
        ("DELETE", "/v1/revisions/model/acme/tune/main", ""),
        ("DELETE", "/v1/jobs/1", ""),
    ] {
        // No token, a wrong one, a form post from another site with the right one.
        for (token, origin, content_type, expected) in [
            (None, None, "application/json", StatusCode::FORBIDDEN),
            (
                Some("Bearer guess"),
                None,
                "application/json",
                StatusCode::FORBIDDEN,
            ),
            (
                Some("Bearer root-token"),
                Some("http://evil.example"),
                "application/json",
                StatusCode::FORBIDDEN,
            ),
        ] {
            let mut request = client
                .request(method.parse().expect("method"), format!("{base}{path}"))
                .header("content-type", content_type)
                .body(body);
            if let Some(token) = token {
                request = request.header("authorization", token);
            }
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
            let status = request.send().await.expect("request").status();
            assert_eq!(
                status, expected,
                "{method} {path} with {token:?} from {origin:?}"
            );
        }
        if method == "POST" {
            // A plain HTML form cannot send JSON: refused whatever it carries.
            let status = client
                .post(format!("{base}{path}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("authorization", "Bearer root-token")
                .body("repo=acme/tune")
                .send()
                .await
                .expect("form")
                .status();
            assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path}");
        }
    }
    // Nothing changed.
    assert!(
        world
            .larder()
            .registry
            .jobs()
            .await
            .expect("jobs")
            .is_empty()
    );
    assert!(
        world
            .larder()
            .registry
            .audit_log(None)
            .await
            .expect("log")
            .iter()
            .all(|e| e.action != larder::manage::REVIEW_ACTION)
    );
    mirror.stop().await.expect("stops");
}

/// Read SSE events from `response` until `done` says so (or 20 s pass); their names and data.
async fn events_until(
    response: reqwest::Response,
    done: impl Fn(&str, &Value) -> bool,
) -> Vec<(String, Value)> {
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let chunk = tokio::time::timeout_at(deadline.into(), stream.next())
            .await
            .unwrap_or_else(|_| panic!("no matching event; saw {events:?}"))
            .expect("stream open")
            .expect("chunk");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let message: String = buffer.drain(..end + 2).collect();
            let mut name = String::from("message");
            let mut data = String::new();
            for line in message.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if data.is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(&data).expect("event data is JSON");
            let stop = done(&name, &value);
            events.push((name, value));
            if stop {
                return events;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_carry_jobs_pins_reviews_and_new_revisions() {
    let world = World::start(hub()).await;
    fill(&world).await;
    let mirror = mirror(&world, None, true).await;
    let base = mirror.url();
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{base}/v1/events"))
        .send()
        .await
        .expect("events");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/event-stream")
    );
    // Let the watcher take its first look, then change things.
    let seen = events_until(response, |name, _| name == "hello").await;
    assert_eq!(seen.len(), 1);
    let response = client
        .get(format!("{base}/v1/events"))
        .send()
        .await
        .expect("events");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let status = client
        .post(format!("{base}/v1/pins"))
        .json(&json!({"repo": "acme/tune"}))
        .send()
        .await
        .expect("pin")
        .status();
    assert_eq!(status, StatusCode::OK);
    let review = client
        .post(format!("{base}/v1/licence-reviews"))
        .json(&json!({"repo": "meta/llama", "decision": "deny", "note": "<b>no</b> thanks"}))
        .send()
        .await
        .expect("review");
    assert_eq!(review.status(), StatusCode::CREATED);
    let job: Value = json_of(
        client
            .post(format!("{base}/v1/jobs"))
            .json(&json!({"kind": "pull", "repo": "acme/tune"})),
    )
    .await;
    let id = job["id"].as_i64().expect("id");
    let events = events_until(response, |name, data| {
        name == "job" && data["job"]["id"] == json!(id) && data["job"]["state"] == "done"
    })
    .await;
    let names: BTreeSet<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains("pin"), "{events:?}");
    assert!(names.contains("licence"), "{events:?}");
    let pin = events
        .iter()
        .find(|(n, _)| n == "pin")
        .expect("pin")
        .1
        .clone();
    assert_eq!(pin["repo"], "acme/tune");
    assert_eq!(pin["pinned"], true);
    // The denial shows in the audit and the verdict.
    let overview: Value = json_of(client.get(format!("{base}/v1/repos?q=llama"))).await;
    let llama = overview["repos"]
        .as_array()
        .expect("repos")
        .iter()
        .find(|r| r["name"] == "meta/llama")
        .expect("llama");
    assert_eq!(llama["licence"]["verdict"], "deny", "{llama}");
    let log = world
        .larder()
        .registry
        .audit_log(Some("model:meta/llama"))
        .await
        .expect("log");
    let entry = log
        .iter()
        .rfind(|e| e.action == larder::manage::REVIEW_ACTION)
        .expect("review logged");
    assert_eq!(
        entry.detail.as_ref().expect("detail")["note"],
        "<b>no</b> thanks"
    );

    // A revision new to the mirror is announced: delete one, pull it back.
    let removed = client
        .delete(format!("{base}/v1/revisions/model/acme/merge/main"))
        .send()
        .await
        .expect("rm");
    assert_eq!(removed.status(), StatusCode::OK);
    let response = client
        .get(format!("{base}/v1/events"))
        .send()
        .await
        .expect("events");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let status = client
        .post(format!("{base}/v1/jobs"))
        .json(&json!({"kind": "pull", "repo": "acme/merge"}))
        .send()
        .await
        .expect("job")
        .status();
    assert_eq!(status, StatusCode::CREATED);
    events_until(response, |name, data| {
        name == "revision" && data["repo"] == "acme/merge"
    })
    .await;
    // An open stream does not hold up the mirror's shutdown.
    let open = client
        .get(format!("{base}/v1/events"))
        .send()
        .await
        .expect("events");
    tokio::time::timeout(Duration::from_secs(10), mirror.stop())
        .await
        .expect("stopping waited on an open event stream")
        .expect("stops");
    drop(open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repo_page_draws_the_lineage_and_escapes_hostile_text() {
    let world = World::start(hub()).await;
    fill(&world).await;
    // acme/merge is relicensed upstream, and the new revision pulled: the change is marked.
    world
        .server
        .hub()
        .repo(RepoKind::Model, "acme/merge")
        .card(json!({"license": "apache-2.0", "base_model": ["meta/llama", "acme/other"]}))
        .regular_file("config.json", br#"{"merge":2}"#.to_vec())
        .commit("main");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (result, _) = pull_with(&world.larder(), &options("acme/merge", "main")).await;
    result.expect("pull the relicensed acme/merge");
    // A private repo stays out of the page.
    world
        .larder()
        .registry
        .record_snapshot(SnapshotRecord {
            kind: Kind::Model,
            name: "acme/secret".to_owned(),
            upstream: world.server.url(),
            gated: None,
            private: true,
            commit: commit_id(&"ef".repeat(20)),
            card_json: None,
            refs: vec!["main".to_owned()],
            seen_at: larder::now_unix(),
            files: vec![FileRecord {
                path: "README.md".to_owned(),
                size: 3,
                git_oid: "cd".repeat(20),
                sha256: None,
                lfs: false,
            }],
            licence: LicenceFields::default(),
        })
        .await
        .expect("record");
    let mirror = mirror(&world, None, false).await;
    let base = mirror.url();

    let detail: Value =
        json_of(reqwest::Client::new().get(format!("{base}/v1/repos/model/acme/tune"))).await;
    let nodes: Vec<(String, u64, String)> = detail["lineage"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["name"].as_str().expect("name").to_owned(),
                n["depth"].as_u64().expect("depth"),
                n["licence"].as_str().expect("licence").to_owned(),
            )
        })
        .collect();
    let names: Vec<&str> = nodes.iter().map(|n| n.0.as_str()).collect();
    assert_eq!(
        names,
        ["acme/tune", "acme/merge", "meta/llama", "acme/other"],
        "{detail}"
    );
    assert_eq!(nodes[2].1, 2, "{nodes:?}");
    assert_eq!(nodes[0].2, "apache-2.0");
    assert_eq!(nodes[1].2, "apache-2.0", "the newest revision of the merge");
    assert_eq!(nodes[2].2.to_lowercase(), "llama3.1", "{nodes:?}");
    assert_eq!(detail["lineage"]["edges"].as_array().map(Vec::len), Some(3));
    assert_eq!(detail["lineage"]["nodes"][3]["held"], false);
    assert_eq!(detail["revisions"][0]["licence"], "apache-2.0", "{detail}");
    assert_eq!(detail["revisions"][0]["licence_changed"], false);
    let merge: Value =
        json_of(reqwest::Client::new().get(format!("{base}/v1/repos/model/acme/merge"))).await;
    let marks: Vec<(Value, Value)> = merge["revisions"]
        .as_array()
        .expect("revisions")
        .iter()
        .map(|r| (r["licence"].clone(), r["licence_changed"].clone()))
        .collect();
    assert_eq!(
        marks,
        [
            (json!("apache-2.0"), json!(true)),
            (json!("mit"), json!(false))
        ],
        "{merge}"
    );
    let html = reqwest::get(format!("{base}/-/repo/model/acme/merge"))
        .await
        .expect("page")
        .text()
        .await
        .expect("body");
    assert_eq!(html.matches(">licence changed<").count(), 1, "{html}");

    let page = reqwest::get(format!("{base}/-/repo/model/acme/tune"))
        .await
        .expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .expect("ascii")
            .contains("script-src 'self'")
    );
    let html = page.text().await.expect("body");
    assert!(html.contains("id=\"lineage-graph\""), "{html}");
    for name in ["acme/merge", "meta/llama", "acme/other"] {
        assert!(html.contains(&format!("data-name=\"{name}\"")), "{name}");
    }
    assert!(html.contains("model.safetensors"));
    assert!(!html.contains("http://") && !html.contains("https://"));

    // Hostile names, card and licence are text.
    let html = reqwest::get(format!("{base}/-/repo/model/acme/hostile"))
        .await
        .expect("page")
        .text()
        .await
        .expect("body");
    assert!(
        html.contains("&lt;script&gt;alert(&#39;file&#39;)&lt;/script&gt;.bin"),
        "{html}"
    );
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{html}"
    );
    for raw in ["<script>alert", "<img src=x"] {
        assert!(!html.contains(raw), "{raw} became markup:\n{html}");
    }
    // Private and unknown repos are not found; bad names are refused.
    for path in [
        "/-/repo/model/acme/secret",
        "/v1/repos/model/acme/secret",
        "/-/repo/model/acme/none",
        "/-/repo/space/acme/tune",
    ] {
        let status = reqwest::get(format!("{base}{path}"))
            .await
            .expect("get")
            .status();
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST,
            "{path}: {status}"
        );
    }
    let storage: Value = json_of(reqwest::Client::new().get(format!("{base}/v1/storage"))).await;
    assert!(
        storage["used"].as_u64().unwrap_or(0) > 64 << 10,
        "{storage}"
    );
    assert!(!storage["traffic"].as_array().expect("traffic").is_empty());
    mirror.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn track_and_untrack_through_the_api_call_the_webhook() {
    let world = World::start(hub()).await;
    fill(&world).await;
    let (hook, posted) = crate::tracking::receiver().await;
    let mut options = ServeOptions::new("127.0.0.1:0".parse().expect("addr"));
    options.jobs.webhook = Some(hook);
    // Offline: nothing is checked upstream, so the hook hears only the API's events.
    let mirror = start(world.larder(), options).await.expect("mirror starts");
    let client = reqwest::Client::new();
    let base = mirror.url();
    let created = client
        .post(format!("{base}/v1/tracked"))
        .json(&json!({"repo": "acme/tune", "ref": "main", "every": "1h"}))
        .send()
        .await
        .expect("track");
    assert_eq!(created.status(), StatusCode::CREATED);
    let gone = client
        .delete(format!("{base}/v1/tracked/model/acme/tune/main"))
        .send()
        .await
        .expect("untrack");
    assert_eq!(gone.status(), StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(10);
    let events = loop {
        let events = posted.lock().expect("events").clone();
        if events.len() >= 2 {
            break events;
        }
        assert!(Instant::now() < deadline, "the webhook heard {events:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().expect("event"))
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["tracked", "untracked"], "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| e["repo"] == "acme/tune" && e["ref"] == "main")
    );
    mirror.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_cache_saved_outlives_a_restart() {
    let world = World::start(hub()).await;
    fill(&world).await;
    let options = || {
        let mut options = ServeOptions::new("127.0.0.1:0".parse().expect("addr"));
        options.pull_through = false;
        options
    };
    let storage = |base: String| async move {
        json_of(reqwest::Client::new().get(format!("{base}/v1/storage"))).await
    };
    let totals = |storage: &Value| {
        let last = storage["traffic"]
            .as_array()
            .expect("traffic")
            .last()
            .cloned();
        last.map(|s| s["served"].as_u64().expect("served"))
            .expect("a sample")
    };

    // One mirror serves a file, then stops.
    let mirror = start(world.larder(), options())
        .await
        .expect("mirror starts");
    let file = reqwest::get(format!(
        "{}/acme/tune/resolve/main/model.safetensors",
        mirror.url()
    ))
    .await
    .expect("get")
    .bytes()
    .await
    .expect("body");
    assert!(!file.is_empty());
    let before = totals(&storage(mirror.url()).await);
    assert!(before >= file.len() as u64, "{before} served");
    mirror.stop().await.expect("stops");

    // The next one starts from those totals: its history shows what the first one served.
    let mirror = start(world.larder(), options())
        .await
        .expect("mirror restarts");
    let after = storage(mirror.url()).await;
    let samples = after["traffic"].as_array().expect("traffic");
    assert!(
        totals(&after) >= before,
        "the totals restarted from zero: {after}"
    );
    assert!(
        samples.iter().any(|s| s["served"].as_u64() == Some(before)),
        "the first mirror's last sample is in the history: {after}"
    );
    mirror.stop().await.expect("stops");
}

/// Follows a queued job until it ends; its view.
async fn job_until_ended(base: &str, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job: Value = json_of(reqwest::Client::new().get(format!("{base}/v1/jobs/{id}"))).await;
        if ["done", "failed", "cancelled"].contains(&job["state"].as_str().unwrap_or("")) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} never ended: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_and_verify_run_as_jobs_on_a_mirror_with_a_queue() {
    let world = World::start(hub()).await;
    fill(&world).await;
    let mirror = mirror(&world, None, true).await;
    let base = mirror.url();
    let client = reqwest::Client::new();

    // Queued, not run in the request: 202 and the job to follow.
    let answer = client
        .post(format!("{base}/v1/verify"))
        .json(&json!({}))
        .send()
        .await
        .expect("post");
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    let queued: Value = answer.json().await.expect("JSON");
    let id = queued["id"].as_i64().expect("an id");
    assert_eq!(queued["job"], format!("/v1/jobs/{id}"));
    let job = job_until_ended(&base, id).await;
    assert_eq!(job["kind"], "verify");
    assert_eq!(job["state"], "done", "{job}");
    let progress = &job["progress"];
    assert!(progress["total"].as_u64().unwrap_or(0) > 64 << 10, "{job}");
    assert_eq!(
        progress["bytes"], progress["total"],
        "every byte hashed: {job}"
    );
    assert_eq!(progress["report"]["bad"], 0, "{job}");
    assert!(
        progress["report"]["checked"].as_u64().unwrap_or(0) >= 4,
        "{job}"
    );

    // A damaged blob: the job finds it (and quarantines it), the CLI exits 3 as a local
    // `larder verify` does.
    let registry = world.larder().registry;
    let blob = registry
        .blobs()
        .await
        .expect("blobs")
        .into_iter()
        .max_by_key(|b| b.size)
        .expect("a blob");
    let path = world.blob_path(&blob.sha256);
    let mut bytes = std::fs::read(&path).expect("blob");
    bytes[0] ^= 0xff;
    std::fs::write(&path, &bytes).expect("damage");
    let out = on_daemon(&world, &base, None, &["verify", "--json"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("verify JSON");
    assert_eq!(report["bad"], 1, "{report}");

    // gc, dry run: the report lands in the job.
    let out = on_daemon(&world, &base, None, &["gc", "--dry-run", "--json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("gc JSON");
    assert_eq!(report["dry_run"], true, "{report}");
    let jobs: Value = json_of(client.get(format!("{base}/v1/jobs"))).await;
    let gc = jobs
        .as_array()
        .expect("jobs")
        .iter()
        .find(|j| j["kind"] == "gc")
        .expect("a gc job")
        .clone();
    assert_eq!(gc["progress"]["report"]["dry_run"], true, "{gc}");

    // Refused at once, nothing queued: an unknown repo, fields that do not go together.
    for (path, body, expected) in [
        (
            "/v1/verify",
            json!({"repo": "acme/absent"}),
            StatusCode::NOT_FOUND,
        ),
        (
            "/v1/verify",
            json!({"revision": "main"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/gc",
            json!({"quota": "1GB", "dry_run": true}),
            StatusCode::BAD_REQUEST,
        ),
        ("/v1/gc", json!({"quota": "lots"}), StatusCode::BAD_REQUEST),
    ] {
        let status = client
            .post(format!("{base}{path}"))
            .json(&body)
            .send()
            .await
            .expect("post")
            .status();
        assert_eq!(status, expected, "{path} {body}");
    }
    let after: Value = json_of(client.get(format!("{base}/v1/jobs"))).await;
    assert_eq!(
        after.as_array().map(Vec::len),
        jobs.as_array().map(Vec::len)
    );
    mirror.stop().await.expect("stops");
}
