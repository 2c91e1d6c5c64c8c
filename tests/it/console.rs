//! The console in headless Chromium, as a lab admin uses it: submit a pull from the page and
//! watch its progress arrive over server-sent events (no polling; polling while the stream is
//! down), cancel it, review a licence,
//! pin a revision on the repo's page and see its three-level `base_model` lineage drawn; hostile
//! names and cards stay text; a browser without admin rights sees no action buttons and its
//! forged requests are refused. Screenshots of the main views (desktop and phone) are saved
//! under `$CARGO_TARGET_TMPDIR/console-screenshots/`.

use std::path::PathBuf;
use std::time::Duration;

use hub_standin::{Fault, RepoKind};
use larder::registry::{JobState, RepoKind as Kind};
use larder::serve::access::{AccessRules, TokenSet};
use larder::serve::{RunningMirror, ServeOptions, start};
use serde_json::{Value, json};

use crate::browser::{Browser, chromium};
use crate::common::{World, content, sha256_hex};
use crate::console_api::{HOSTILE_FILE, fill, hub};

/// The slow repo's weights, throttled per connection so that its pull runs well past the test.
const SLOW: usize = 48 << 20;
const SLOW_RATE: u64 = 256 << 10;

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
}

async fn mirror(world: &World, admin_token: Option<&str>) -> RunningMirror {
    let mut options = ServeOptions::new("127.0.0.1:0".parse().expect("addr"));
    options.pull_through = true;
    options.jobs.progress_every = Duration::from_millis(100);
    options.jobs.poll_every = Duration::from_millis(100);
    options.jobs.quota = Some(1 << 30);
    options.policy = Some(std::sync::Arc::new(
        larder_licence::Policy::from_toml(
            "default = \"review\"\nallow = [\"apache-2.0\", \"mit\"]\n",
        )
        .expect("policy"),
    ));
    if let Some(token) = admin_token {
        options.access = AccessRules {
            tokens: TokenSet::default(),
            admin_tokens: TokenSet::parse(&[token]).expect("token"),
        };
    }
    start(world.larder(), options).await.expect("mirror starts")
}

fn number(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

/// The admin's session in the browser; returns the id of the pull it cancelled.
fn admin_session(browser: &std::path::Path, base: &str) -> i64 {
    let shots = screenshots();
    let mut page = Browser::open(browser, &format!("{base}/"));
    page.viewport(1280, 900, false);
    page.wait_for("document.body.dataset.admin", |v| *v == json!("true"));
    page.wait_for("document.body.dataset.live", |v| *v == json!("sse"));
    page.wait_for("!!document.querySelector('#traffic-chart polyline')", |v| {
        *v == json!(true)
    });
    page.screenshot(&shots.join("overview.png"));

    // Submit a pull from the page.
    page.fill("#pull-form input[name=repo]", "acme/slow");
    page.click("#pull-form button[type=submit]");
    let status = page.wait_for(
        "document.querySelector('#pull-form .form-status').textContent",
        |v| v.as_str().is_some_and(|s| s.starts_with("queued job ")),
    );
    let id: i64 = status
        .as_str()
        .and_then(|s| s.strip_prefix("queued job "))
        .and_then(|s| s.parse().ok())
        .expect("job id");
    let bytes = format!(
        "(() => {{ const r = document.getElementById('job-{id}'); \
         return r ? Number(r.dataset.bytes) : 0; }})()"
    );
    // Its progress arrives over the event stream: it moves while the page polls no more.
    let first = number(&page.wait_for(&bytes, |v| number(v) > 0));
    let polls = page.eval("Number(document.body.dataset.polls)");
    let events = number(&page.eval("Number(document.body.dataset.streamEvents)"));
    page.wait_for(&bytes, |v| number(v) > first + (256 << 10));
    assert_eq!(
        page.eval("Number(document.body.dataset.polls)"),
        polls,
        "the page polled"
    );
    assert_eq!(page.eval("document.body.dataset.live"), json!("sse"));
    assert!(number(&page.eval("Number(document.body.dataset.streamEvents)")) > events);
    assert_eq!(
        page.eval(&format!(
            "document.getElementById('job-{id}').dataset.state"
        )),
        json!("running")
    );
    page.screenshot(&shots.join("jobs-running.png"));

    // Cancel it.
    page.click(&format!("#job-{id} button.cancel"));
    page.wait_for(
        &format!("(document.getElementById('job-{id}') || {{dataset: {{}}}}).dataset.state"),
        |v| *v == json!("cancelled"),
    );

    // Review a licence: meta/llama's needs a review; deny it with a note.
    page.wait_for(
        "!!document.querySelector('article.review[data-repo=\"meta/llama\"]')",
        |v| *v == json!(true),
    );
    page.screenshot(&shots.join("reviews.png"));
    page.fill(
        "article.review[data-repo=\"meta/llama\"] input.note",
        "no <b>community</b> licences here",
    );
    page.click("article.review[data-repo=\"meta/llama\"] button.deny");
    page.wait_for(
        "!!document.querySelector('article.review[data-repo=\"meta/llama\"]')",
        |v| *v == json!(false),
    );
    page.wait_for(
        "(document.querySelector('tr.repo[data-name=\"meta/llama\"]') || {dataset: {}}).dataset.verdict",
        |v| *v == json!("deny"),
    );

    // The repo page: the lineage of a fine-tune of a merge of Llama, and a pin.
    page.navigate(&format!("{base}/-/repo/model/acme/tune"));
    page.wait_for("document.body.dataset.admin", |v| *v == json!("true"));
    let nodes = page.eval(
        "JSON.stringify(Array.from(document.querySelectorAll('#lineage-graph g.node')) \
         .map(g => [g.dataset.name, g.dataset.licence, Number(g.dataset.depth)]))",
    );
    let nodes: Vec<(String, String, u64)> =
        serde_json::from_str(nodes.as_str().expect("string")).expect("nodes");
    assert_eq!(nodes.len(), 4, "{nodes:?}");
    assert_eq!(
        nodes[0],
        ("acme/tune".to_owned(), "apache-2.0".to_owned(), 0)
    );
    assert_eq!(nodes[1], ("acme/merge".to_owned(), "mit".to_owned(), 1));
    assert_eq!(nodes[2].0, "meta/llama");
    assert_eq!(nodes[2].2, 2);
    assert_eq!(
        page.eval("document.querySelectorAll('#lineage-graph line.edge').length"),
        json!(3)
    );
    page.click("tr.revision button.pin");
    page.wait_for(
        "document.querySelector('tr.revision').dataset.pinned",
        |v| *v == json!("true"),
    );
    page.screenshot(&shots.join("repo.png"));

    // Storage, and the page on a phone.
    page.navigate(&format!("{base}/"));
    page.wait_for(
        "document.getElementById('pinned-list').textContent.includes('acme/tune')",
        |v| *v == json!(true),
    );
    page.eval("document.getElementById('storage-section').scrollIntoView()");
    page.screenshot(&shots.join("storage.png"));
    page.viewport(390, 844, true);
    page.navigate(&format!("{base}/"));
    page.wait_for("document.body.dataset.admin", |v| *v == json!("true"));
    page.screenshot(&shots.join("phone.png"));
    // Nothing wider than the phone's screen, not by a pixel (wide tables scroll inside their
    // own box). On failure: the widths, and the boxes whose content spills out of them.
    assert_eq!(
        page.eval("document.documentElement.scrollWidth <= 390"),
        json!(true),
        "the page is wider than the phone: {}",
        page.eval(
            "document.documentElement.scrollWidth + ' ' + document.documentElement.clientWidth + ' ' + window.innerWidth + ' body ' + document.body.scrollWidth + ' ' + Math.round(document.body.getBoundingClientRect().right) + ' ' + JSON.stringify(Array.from(document.querySelectorAll('body *')) \
             .filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX === 'visible') \
             .slice(0, 12).map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + \
             e.scrollWidth + '/' + e.clientWidth + ' r' + Math.round(e.getBoundingClientRect().right)))"
        )
    );
    id
}

/// Hostile names: the card, file name and licence name are shown as text.
fn hostile_page(browser: &std::path::Path, base: &str) {
    let mut page = Browser::open(browser, &format!("{base}/-/repo/model/acme/hostile"));
    page.wait_for(
        "document.readyState === 'complete' && document.body.dataset.page === 'repo'",
        |v| *v == json!(true),
    );
    assert_eq!(page.eval("document.scripts.length"), json!(1));
    assert_eq!(
        page.eval("document.querySelectorAll('img').length"),
        json!(0)
    );
    let files = page.eval(
        "Array.from(document.querySelectorAll('#files td.path')).map(td => td.textContent).join('|')",
    );
    assert!(
        files.as_str().unwrap_or_default().contains(HOSTILE_FILE),
        "{files}"
    );
    page.screenshot(&screenshots().join("hostile.png"));
}

fn page_url(page: &mut Browser) -> String {
    page.eval("location.origin")
        .as_str()
        .expect("origin")
        .to_owned()
}

/// A browser without the admin token: no action buttons, forged requests refused.
fn visitor(browser: &std::path::Path, base: &str) {
    let mut page = Browser::open(browser, &format!("{base}/"));
    page.wait_for("document.body.dataset.admin", |v| *v == json!("false"));
    // Give the script time to build anything it would.
    page.wait_for("Number(document.body.dataset.polls) >= 1", |v| {
        *v == json!(true)
    });
    let actions = "document.querySelectorAll('.action, .action-form, button.cancel, button.pin, \
                   article.review').length";
    assert_eq!(page.eval(actions), json!(0));
    assert_eq!(
        page.eval("document.getElementById('reviews-section').hidden"),
        json!(true)
    );
    // Forged changes from this browser: refused.
    let forged = page.call(
        "Runtime.evaluate",
        json!({
            "expression": "Promise.all([\
                fetch('/v1/jobs', {method: 'POST', headers: {'Content-Type': 'application/json'}, \
                    body: JSON.stringify({kind: 'pull', repo: 'acme/tune'})}).then(r => r.status), \
                fetch('/v1/pins', {method: 'POST', headers: {'Content-Type': 'application/json', \
                    'Authorization': 'Bearer guessed'}, body: JSON.stringify({repo: 'acme/merge'})}).then(r => r.status), \
                fetch('/v1/licence-reviews', {method: 'POST', body: 'repo=meta/llama&decision=accept'}).then(r => r.status), \
                fetch('/v1/jobs/1', {method: 'DELETE'}).then(r => r.status)])",
            "awaitPromise": true,
            "returnByValue": true,
        }),
    );
    let statuses = forged["result"]["value"]
        .as_array()
        .expect("statuses")
        .clone();
    for status in &statuses {
        let status = status.as_u64().expect("status");
        assert!(status == 401 || status == 403, "{statuses:?}");
    }
    // The event stream drops: the page polls instead, and opens the stream again later. (A
    // wrapper installed before the page's script keeps its EventSource reachable.)
    page.call("Page.enable", json!({}));
    page.call(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({ "source": "window.__streams = []; const Real = window.EventSource; \
            window.EventSource = function (url) { const s = new Real(url); \
            window.__streams.push(s); return s; };" }),
    );
    let url = format!("{}/", page_url(&mut page));
    page.navigate(&url);
    page.wait_for("document.body.dataset.live", |v| *v == json!("sse"));
    page.eval(
        "(() => { const s = window.__streams[0]; s.close(); s.onerror(new Event('error')); })()",
    );
    page.wait_for("document.body.dataset.live", |v| *v == json!("polling"));
    let polls = number(&page.eval("Number(document.body.dataset.polls)"));
    page.wait_for("Number(document.body.dataset.polls)", |v| {
        number(v) > polls + 1
    });
    page.wait_for("document.body.dataset.live", |v| *v == json!("sse"));
    assert_eq!(page.eval("window.__streams.length"), json!(2));
    // Signing in with a wrong token changes nothing.
    page.fill("#admin-token", "guessed");
    page.click("#signin button[type=submit]");
    page.wait_for("document.getElementById('live').textContent", |v| {
        v.as_str().is_some_and(|s| s.contains("not an admin token"))
    });
    assert_eq!(page.eval(actions), json!(0));
    page.screenshot(&screenshots().join("visitor.png"));
    // The right one shows the actions.
    page.fill("#admin-token", "root-token");
    page.click("#signin button[type=submit]");
    page.wait_for("document.body.dataset.admin", |v| *v == json!("true"));
    page.wait_for("!!document.getElementById('pull-form')", |v| {
        *v == json!(true)
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but no Chromium was found: .ci/setup installs Debian's `chromium`"
        );
        eprintln!("SKIPPED the_console_in_a_browser: no chromium on the PATH");
        return;
    };
    let hub = hub();
    let slow = content(43, SLOW);
    let slow_sha = sha256_hex(&slow);
    hub.repo(RepoKind::Model, "acme/slow")
        .card(json!({"license": "mit"}))
        .lfs_file("model.safetensors", slow)
        .commit("main");
    let world = World::start(hub).await;
    fill(&world).await;
    world
        .server
        .inject(Fault::throttle(SLOW_RATE).sha256(&slow_sha).forever());
    let mirror = mirror(&world, None).await;
    let base = mirror.url();

    let cancelled = {
        let (browser, base) = (browser.clone(), base.clone());
        tokio::task::spawn_blocking(move || {
            let id = admin_session(&browser, &base);
            hostile_page(&browser, &base);
            id
        })
        .await
        .expect("the admin's session")
    };
    let registry = world.larder().registry;
    let job = registry
        .job(cancelled)
        .await
        .expect("job")
        .expect("the job");
    assert_eq!(job.state, JobState::Cancelled);
    let tune = registry
        .list_repos()
        .await
        .expect("repos")
        .into_iter()
        .find(|r| r.kind == Kind::Model && r.name == "acme/tune")
        .expect("acme/tune");
    assert!(
        tune.revisions[0].pinned,
        "the pin did not reach the registry"
    );
    let log = registry
        .audit_log(Some("model:meta/llama"))
        .await
        .expect("audit log");
    let review = log
        .iter()
        .rfind(|e| e.action == larder::manage::REVIEW_ACTION)
        .expect("the review is in the audit log");
    let detail = review.detail.as_ref().expect("detail");
    assert_eq!(detail["decision"], "deny");
    assert_eq!(detail["note"], "no <b>community</b> licences here");

    // The same mirror's state, seen by a browser without admin rights.
    let guarded = self::mirror(&world, Some("root-token")).await;
    let url = guarded.url();
    tokio::task::spawn_blocking(move || visitor(&browser, &url))
        .await
        .expect("the visitor's session");
    let jobs = registry.jobs().await.expect("jobs");
    assert_eq!(jobs.len(), 1, "a forged request queued a job: {jobs:?}");
    guarded.stop().await.expect("stops");
    mirror.stop().await.expect("stops");
}
