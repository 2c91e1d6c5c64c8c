//! Nothing damaged leaves the mirror: a held blob changed on disk since it was last hashed is
//! hashed on its way out (a whole file is cut short, a range is refused) and quarantined; an
//! unchanged one goes out as it is; the scrub finds decay nobody asked for.

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use hub_standin::{Hub, RepoKind};
use larder::serve::{RunningMirror, ServeOptions, start};
use reqwest::StatusCode;

use crate::common::{World, content, options, pull_with, sha256_hex};
use crate::xet_mirror::metric;

const SIZE: usize = 3 << 20;

fn hub() -> Hub {
    let hub = Hub::new();
    hub.repo(RepoKind::Model, "acme/held")
        .regular_file("config.json", content(1, 300))
        .lfs_file("a.safetensors", content(2, SIZE))
        .lfs_file("b.safetensors", content(3, SIZE))
        .commit("main");
    hub
}

/// A world holding acme/held, and an offline mirror of it (scrub at `scrub_rate`).
async fn held(scrub_rate: Option<u64>) -> (World, RunningMirror) {
    let world = World::start(hub()).await;
    let larder = world.larder();
    pull_with(&larder, &options("acme/held", "main"))
        .await
        .0
        .unwrap();
    let mut serve = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    serve.scrub_rate = scrub_rate;
    let mirror = start(world.larder(), serve).await.unwrap();
    (world, mirror)
}

/// Change one byte of a blob in place, as decay or a stray write would.
fn flip(world: &World, sha256: &str, at: u64) {
    let path = world.blob_path(sha256);
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&path, perms).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let mut byte = [0u8];
    file.read_at(&mut byte, at).unwrap_or_default();
    file.write_all_at(&[byte[0] ^ 0x5a], at).unwrap();
}

fn url(mirror: &RunningMirror, file: &str) -> String {
    format!("{}/acme/held/resolve/main/{file}", mirror.url())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_changed_on_disk_is_cut_short_and_quarantined() {
    let (world, mirror) = held(None).await;
    let bytes = content(2, SIZE);
    let sha = sha256_hex(&bytes);
    let http = reqwest::Client::new();
    // Unchanged since the pull hashed it: served as it is.
    let good = http
        .get(url(&mirror, "a.safetensors"))
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), StatusCode::OK);
    assert!(good.bytes().await.unwrap() == bytes);

    flip(&world, &sha, 1234);
    let damaged = http
        .get(url(&mirror, "a.safetensors"))
        .send()
        .await
        .unwrap();
    assert_eq!(damaged.status(), StatusCode::OK);
    match damaged.bytes().await {
        Ok(body) => panic!("a damaged blob was served whole ({} bytes)", body.len()),
        Err(error) => assert!(error.is_body() || error.is_decode(), "{error}"),
    }
    assert_eq!(
        metric(
            &mirror,
            "larder_quarantined_blobs_total{found_by=\"serve\"}"
        )
        .await,
        1
    );
    assert!(
        !world.blob_path(&sha).exists(),
        "the damaged blob was quarantined"
    );
    // No longer held: the offline mirror says so instead of serving it.
    let after = http
        .get(url(&mirror, "a.safetensors"))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::SERVICE_UNAVAILABLE);
    mirror.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_of_a_changed_blob_waits_for_a_whole_hash() {
    let (world, mirror) = held(None).await;
    let (a, b) = (content(2, SIZE), content(3, SIZE));
    let http = reqwest::Client::new();
    // Damaged: the range is refused, whichever bytes it covers.
    flip(&world, &sha256_hex(&a), (SIZE - 1) as u64);
    let refused = http
        .get(url(&mirror, "a.safetensors"))
        .header("range", "bytes=0-999")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let message = refused.headers()["x-error-message"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("damaged"), "{message}");
    assert!(!world.blob_path(&sha256_hex(&a)).exists());

    // Changed metadata but good bytes (a chmod moves the ctime): hashed once, then served, and
    // stamped again so later requests take the fast path.
    let b_sha = sha256_hex(&b);
    let path = world.blob_path(&b_sha);
    let perms = std::fs::metadata(&path).unwrap().permissions();
    std::fs::set_permissions(&path, perms).unwrap();
    let before = world.larder().registry.blob_stamp(&b_sha).await.unwrap();
    let ranges: Vec<_> = (0..4)
        .map(|i| {
            let (http, url) = (http.clone(), url(&mirror, "b.safetensors"));
            tokio::spawn(async move {
                let start = i * 1000;
                let response = http
                    .get(url)
                    .header("range", format!("bytes={start}-{}", start + 999))
                    .send()
                    .await
                    .unwrap();
                (start, response.status(), response.bytes().await.unwrap())
            })
        })
        .collect();
    for range in ranges {
        let (start, status, body) = range.await.unwrap();
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(&body[..], &b[start..start + 1000]);
    }
    let after = world.larder().registry.blob_stamp(&b_sha).await.unwrap();
    assert!(after.is_some() && after != before, "{before:?} → {after:?}");
    assert_eq!(
        metric(
            &mirror,
            "larder_quarantined_blobs_total{found_by=\"serve\"}"
        )
        .await,
        1
    );
    mirror.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrub_finds_decay_nobody_asked_for() {
    let world = World::start(hub()).await;
    let larder = world.larder();
    pull_with(&larder, &options("acme/held", "main"))
        .await
        .0
        .unwrap();
    let (a, b) = (sha256_hex(&content(2, SIZE)), sha256_hex(&content(3, SIZE)));
    // Verified long ago, so the scrub takes them now (it re-hashes whatever the stamps say:
    // decay leaves a file's stamp alone, which only a re-hash can find).
    for sha in [&a, &b] {
        larder.registry.mark_blob_verified(sha, 0).await.unwrap();
    }
    flip(&world, &b, 99);
    let mut serve = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    serve.scrub_rate = Some(64 << 20);
    let mirror = start(world.larder(), serve).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(
        &mirror,
        "larder_quarantined_blobs_total{found_by=\"scrub\"}",
    )
    .await
        == 0
    {
        assert!(Instant::now() < deadline, "the scrub found nothing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!world.blob_path(&b).exists());
    assert!(world.blob_path(&a).exists(), "the good blob stays");
    assert!(metric(&mirror, "larder_scrubbed_bytes_total").await >= SIZE as u64);
    let verified = larder.registry.blob(&a).await.unwrap().unwrap().verified_at;
    assert!(
        verified.is_some_and(|at| at > 0),
        "the scrub recorded its check of a"
    );
    mirror.stop().await.unwrap();
}
