//! A hostile upstream: endless error bodies, hanging or trickling API answers, endless
//! listings and poisoned tree entries. Each ends quickly with a clear error.

use std::time::{Duration, Instant};

use hub_standin::{Fault, Hub, Pagination, RepoKind, Route};
use larder::Larder;
use larder::fetch::PullError;
use larder::hub::{ClientSettings, HubClient, HubError, RetryPolicy, TreeEntryError};

use crate::common::{World, content, options, pull_with};

/// How long any of these pulls may take before the test calls it a hang.
const BOUND: Duration = Duration::from_secs(30);

/// A world whose client gives up fast: 1 s of silence, 3 s per exchange, one retry.
async fn hostile_world() -> (World, Larder) {
    let hub = Hub::new();
    hub.repo(RepoKind::Model, "acme/target")
        .regular_file("config.json", content(1, 300))
        .regular_file("weights/a.bin", content(2, 300))
        .commit("main");
    let world = World::start(hub).await;
    let mut larder = world.larder();
    let mut settings = ClientSettings::new(world.server.url());
    settings.stall_timeout = Duration::from_secs(1);
    settings.metadata_timeout = Duration::from_secs(3);
    settings.retry = RetryPolicy {
        max_retries: 1,
        base: Duration::from_millis(20),
        cap: Duration::from_millis(50),
    };
    larder.client = HubClient::new(settings).unwrap();
    (world, larder)
}

async fn pull_bounded(larder: &Larder) -> (PullError, Duration) {
    let started = Instant::now();
    let result = tokio::time::timeout(BOUND, pull_with(larder, &options("acme/target", "main")))
        .await
        .expect("the pull ends instead of hanging")
        .0;
    (result.expect_err("the pull fails"), started.elapsed())
}

fn hub_error(error: &PullError) -> &HubError {
    match error {
        PullError::Hub(error) => error,
        other => panic!("expected a Hub error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_error_body_is_dropped_unread() {
    let (world, larder) = hostile_world().await;
    world
        .server
        .inject(Fault::huge_error_body(500, u64::MAX).forever());
    let (error, _) = pull_bounded(&larder).await;
    assert!(
        matches!(hub_error(&error), HubError::Status { status: 500, .. }),
        "{error:?}"
    );
    // Two attempts, each reading at most 64 KiB of the endless body.
    let sent = world.server.stats().requests().len();
    assert!(sent <= 2, "{sent} requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_that_never_answers_times_out() {
    let (world, larder) = hostile_world().await;
    world.server.inject(Fault::hang().on(Route::Api).forever());
    let (error, took) = pull_bounded(&larder).await;
    assert!(
        matches!(hub_error(&error), HubError::Timeout { what: "answer", .. }),
        "{error:?}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_sending_a_byte_a_second_hits_the_deadline() {
    let (world, larder) = hostile_world().await;
    world
        .server
        .inject(Fault::throttle(2).on(Route::Api).forever());
    let (error, took) = pull_bounded(&larder).await;
    assert!(
        matches!(
            hub_error(&error),
            HubError::Timeout {
                what: "finish answering",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(took < Duration::from_secs(12), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_empty_pages_end_with_a_clear_error() {
    let (world, larder) = hostile_world().await;
    world
        .server
        .update_settings(|s| s.pagination = Pagination::EndlessEmpty);
    let (error, _) = pull_bounded(&larder).await;
    assert!(
        matches!(hub_error(&error), HubError::Listing { why, .. } if why.contains("empty pages")),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_loops_back_is_refused() {
    let (world, larder) = hostile_world().await;
    world
        .server
        .update_settings(|s| s.pagination = Pagination::Loop);
    let (error, _) = pull_bounded(&larder).await;
    assert!(
        matches!(hub_error(&error), HubError::Listing { why, .. } if why.contains("already read")),
        "{error:?}"
    );
}

/// Pull with one raw entry added to the listing; the pull must refuse the listing and record
/// nothing.
async fn refused_entry(entries: Vec<serde_json::Value>) -> TreeEntryError {
    let (world, larder) = hostile_world().await;
    world.server.update_settings(|s| s.tree_extra = entries);
    let (error, _) = pull_bounded(&larder).await;
    assert!(larder.registry.list_repos().await.unwrap().is_empty());
    match error {
        PullError::Hub(HubError::TreeEntry { source, .. }) => source,
        other => panic!("expected a refused listing, got {other:?}"),
    }
}

fn file_entry(path: &str, size: serde_json::Value) -> serde_json::Value {
    serde_json::json!({ "type": "file", "oid": "0".repeat(40), "size": size, "path": path })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_beyond_i64_are_refused_at_the_listing() {
    let error = refused_entry(vec![file_entry("huge.bin", (1u64 << 63).into())]).await;
    assert!(matches!(error, TreeEntryError::TooBig(..)), "{error:?}");
    // Each fits, the sum does not (what used to make `ls` fail for the whole home).
    let max = serde_json::Value::from(i64::MAX as u64);
    let error = refused_entry(vec![
        file_entry("x.bin", max.clone()),
        file_entry("y.bin", max),
    ])
    .await;
    assert!(matches!(error, TreeEntryError::TotalTooBig), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_negative_size_is_refused() {
    let (world, larder) = hostile_world().await;
    world
        .server
        .update_settings(|s| s.tree_extra = vec![file_entry("neg.bin", (-5).into())]);
    let (error, _) = pull_bounded(&larder).await;
    assert!(
        matches!(hub_error(&error), HubError::Json { .. }),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_both_file_and_folder_is_refused() {
    // `weights/a.bin` is a real file; `weights` as a file collides with its folder.
    let error = refused_entry(vec![file_entry("weights", 10.into())]).await;
    assert!(
        matches!(&error, TreeEntryError::FileIsFolder(file, _) if file == "weights"),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_bidi_overrides_or_format_characters_are_refused() {
    for name in [
        "model\u{202e}nibs.exe",
        "zero\u{200b}width.bin",
        "bom\u{feff}.json",
    ] {
        let error = refused_entry(vec![file_entry(name, 10.into())]).await;
        assert!(
            matches!(error, TreeEntryError::Name(_)),
            "{name:?}: {error:?}"
        );
    }
}

/// A pull-through mirror of `world` whose upstream client gives up fast.
async fn impatient_mirror(world: &World) -> larder::serve::RunningMirror {
    let mut larder = world.larder();
    let mut settings = ClientSettings::new(world.server.url());
    settings.stall_timeout = Duration::from_secs(1);
    settings.metadata_timeout = Duration::from_secs(2);
    settings.retry = RetryPolicy {
        max_retries: 0,
        base: Duration::from_millis(20),
        cap: Duration::from_millis(50),
    };
    larder.client = HubClient::new(settings).unwrap();
    let mut options = larder::serve::ServeOptions::new("127.0.0.1:0".parse().unwrap());
    options.pull_through = true;
    larder::serve::start(larder, options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_names_the_upstream_problem_instead_of_repo_not_found() {
    let hub = Hub::new();
    for name in ["acme/hang", "acme/garbage", "acme/busy"] {
        hub.repo(RepoKind::Model, name)
            .regular_file("config.json", content(3, 100))
            .commit("main");
    }
    let world = World::start(hub).await;
    let mirror = impatient_mirror(&world).await;
    let http = reqwest::Client::new();
    let cases: [(&str, Fault, u16, &str); 3] = [
        ("acme/hang", Fault::hang(), 504, "did not answer"),
        ("acme/garbage", Fault::garbage(), 502, "malformed answer"),
        ("acme/busy", Fault::unavailable(1), 503, "answered 503"),
    ];
    for (repo, fault, status, why) in cases {
        world.server.faults().clear();
        world.server.inject(fault.on(Route::Api).forever());
        let response = tokio::time::timeout(
            BOUND,
            http.get(format!("{}/{repo}/resolve/main/config.json", mirror.url()))
                .send(),
        )
        .await
        .expect("the mirror answers")
        .unwrap();
        assert_eq!(response.status().as_u16(), status, "{repo}");
        assert!(response.headers().get("x-error-code").is_none(), "{repo}");
        let message = response.headers()["x-error-message"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            message.contains(&format!("upstream {} is unavailable", world.server.url()))
                && message.contains(why),
            "{repo}: {message}"
        );
    }
    world.server.faults().clear();
    mirror.stop().await.unwrap();
}
