//! Xet-native pulls against xet-core's reference CAS (run in-process by the stand-in, filled by
//! xet-core's own upload client): byte-identical files, deltas between revisions, fallback to
//! plain HTTP, and hostile answers refused with nothing stored.

use std::sync::Arc;

use bytes::Bytes;
use hub_standin::{Hub, RepoKind, XET_ACCESS_TOKEN, XetCas, XetFault, XetRoute};
use larder::fetch::PullError;
use larder::fetch::progress::PullEvent;

use crate::common::{World, content, options, pull_with, read, sha256_hex};

struct XetWorld {
    world: World,
    cas: XetCas,
}

async fn xet_world(files: &[(&str, Vec<u8>)]) -> (XetWorld, Vec<String>) {
    let cas = XetCas::start().await.expect("CAS starts");
    let hub = Hub::new();
    let mut builder = hub.repo(RepoKind::Model, "acme/xet");
    let mut hashes = Vec::new();
    for (path, data) in files {
        let hash = cas.upload(data).await.expect("upload");
        builder = builder.xet_file(path, data.clone(), &hash);
        hashes.push(hash);
    }
    builder.commit("main");
    let world = World::start(hub).await;
    world.server.attach_xet(&cas);
    (XetWorld { world, cas }, hashes)
}

fn xet_bytes_requested(cas: &XetCas) -> usize {
    cas.requests()
        .iter()
        .filter(|r| r.route == XetRoute::Xorb)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_over_xet_byte_identical() {
    let data = content(1, 5 << 20);
    let (x, hashes) = xet_world(&[("model.bin", data.clone())]).await;
    let larder = x.world.larder();
    let (result, events) = pull_with(&larder, &options("acme/xet", "main")).await;
    let summary = result.expect("pull succeeds");
    let sha = sha256_hex(&data);
    assert_eq!(read(&x.world.blob_path(&sha)), data);
    assert!(xet_bytes_requested(&x.cas) > 0, "the bytes came from xorbs");
    // No plain download of the content happened.
    assert_eq!(x.world.server.stats().bytes_for_sha256(&sha), 0);
    assert!(summary.fetched_bytes > 0 && summary.fetched_bytes < data.len() as u64 * 2);
    assert!(
        events
            .events()
            .iter()
            .any(|e| matches!(e, PullEvent::FileDelta { reused: 0, .. }))
    );
    // Credentials: the CAS saw only its own token, xorb URLs none.
    for request in x.cas.requests() {
        match request.route {
            XetRoute::Xorb => assert_eq!(request.authorization, None),
            _ => assert_eq!(
                request.authorization.as_deref(),
                Some(format!("Bearer {XET_ACCESS_TOKEN}").as_str())
            ),
        }
    }
    // The Xet hash the stand-in advertised is the one xet-core computed.
    assert_eq!(hashes[0].len(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_fetches_only_changed_chunks() {
    let first = content(2, 32 << 20);
    let mut second = first.clone();
    second.splice(4096..4096, content(3, 1024));
    let middle = second.len() / 2;
    for byte in &mut second[middle..middle + 100] {
        *byte ^= 0x5A;
    }
    let (x, _) = xet_world(&[("model.bin", first.clone())]).await;
    let larder = x.world.larder();
    pull_with(&larder, &options("acme/xet", "main"))
        .await
        .0
        .expect("first pull");
    // The second revision is uploaded deduplicated against the first.
    let hash = x.cas.upload(&second).await.expect("upload");
    x.world
        .server
        .hub()
        .repo(RepoKind::Model, "acme/xet")
        .base("main")
        .xet_file("model.bin", second.clone(), &hash)
        .commit("main");
    x.cas.reset_stats();
    let (result, _) = pull_with(&larder, &options("acme/xet", "main")).await;
    let summary = result.expect("second pull");
    assert_eq!(read(&x.world.blob_path(&sha256_hex(&second))), second);
    let fetched = x.cas.xorb_bytes();
    let ratio = fetched as f64 / second.len() as f64;
    assert!(
        ratio <= 0.01,
        "fetched {fetched} bytes of {} ({:.2}%)",
        second.len(),
        ratio * 100.0
    );
    assert!(summary.reused_bytes > second.len() as u64 * 9 / 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falls_back_to_http_when_the_cas_keeps_failing_or_when_asked() {
    let data = content(4, 2 << 20);
    let sha = sha256_hex(&data);
    let (x, _) = xet_world(&[("model.bin", data.clone())]).await;
    x.cas.inject(
        XetFault::Status(XetRoute::ReconstructionV2, 503),
        usize::MAX,
    );
    x.cas.inject(
        XetFault::Status(XetRoute::ReconstructionV1, 503),
        usize::MAX,
    );
    let larder = x.world.larder();
    let mut opts = options("acme/xet", "main");
    opts.transfer.retry.max_retries = 2;
    let (result, events) = pull_with(&larder, &opts).await;
    result.expect("falls back and succeeds");
    assert_eq!(read(&x.world.blob_path(&sha)), data);
    assert!(
        events
            .events()
            .iter()
            .any(|e| matches!(e, PullEvent::XetFallback { .. }))
    );
    assert!(x.world.server.stats().bytes_for_sha256(&sha) >= data.len() as u64);

    // --no-xet: the CAS is never asked.
    let data2 = content(5, 1 << 20);
    let hash = x.cas.upload(&data2).await.unwrap();
    x.world
        .server
        .hub()
        .repo(RepoKind::Model, "acme/xet")
        .base("main")
        .xet_file("other.bin", data2.clone(), &hash)
        .commit("main");
    x.cas.faults().clear();
    x.cas.reset_stats();
    let mut opts = options("acme/xet", "main");
    opts.xet = false;
    pull_with(&larder, &opts).await.0.expect("plain pull");
    assert_eq!(read(&x.world.blob_path(&sha256_hex(&data2))), data2);
    assert!(x.cas.requests().is_empty());
}

/// Pulls once with `fault` armed and expects a refusal naming the file and nothing stored.
async fn refused(fault: XetFault, route_times: usize, expect: &str) {
    let data = content(6, 3 << 20);
    let sha = sha256_hex(&data);
    let (x, _) = xet_world(&[("model.bin", data.clone())]).await;
    x.cas.inject(fault, route_times);
    let larder = x.world.larder();
    let (result, _) = pull_with(&larder, &options("acme/xet", "main")).await;
    let error = result.expect_err("a hostile answer is refused");
    let text = larder::fetch::transfer::error_chain(&error);
    assert!(matches!(error, PullError::Xet(_)), "{text}");
    assert!(text.contains("model.bin"), "{text}");
    assert!(text.contains(expect), "{expect:?} not in {text}");
    assert!(!x.world.blob_path(&sha).exists(), "nothing is stored");
    assert_eq!(
        x.world.server.stats().bytes_for_sha256(&sha),
        0,
        "no HTTP fallback"
    );
}

fn rewrite(f: impl Fn(&mut serde_json::Value) + Send + Sync + 'static) -> XetFault {
    XetFault::Reconstruction(Arc::new(f))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_reconstructions_are_refused() {
    refused(
        rewrite(|v| {
            let terms = v["terms"].as_array_mut().unwrap();
            terms.pop();
        }),
        usize::MAX,
        "add up to",
    )
    .await;
    refused(
        rewrite(|v| v["terms"][0]["range"]["end"] = serde_json::json!(9000)),
        usize::MAX,
        "past the",
    )
    .await;
    refused(
        rewrite(|v| {
            // A second, overlapping fetch range for the first xorb.
            let xorbs = v["xorbs"].as_object_mut().unwrap();
            let first = xorbs.values_mut().next().unwrap();
            let mut copy = first[0].clone();
            copy["ranges"][0]["chunks"]["start"] = serde_json::json!(0);
            first.as_array_mut().unwrap().push(copy);
        }),
        usize::MAX,
        "overlap",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_xorb_ranges_are_refused() {
    // A header claiming 200 KiB.
    refused(
        XetFault::XorbBody(Arc::new(|body: Bytes| {
            let mut b = body.to_vec();
            b[1..4].copy_from_slice(&[0x00, 0x20, 0x03]);
            b[5..8].copy_from_slice(&[0x00, 0x20, 0x03]);
            Bytes::from(b)
        })),
        usize::MAX,
        "invalid header",
    )
    .await;
    // A range answered with the wrong length.
    refused(
        XetFault::XorbBody(Arc::new(|body: Bytes| body.slice(..body.len() - 10))),
        usize::MAX,
        "bytes for a xorb range",
    )
    .await;
    // An LZ4 bomb in place of the first chunk: a frame expanding far past its header's length.
    refused(
        XetFault::XorbBody(Arc::new(|body: Bytes| {
            use std::io::Write;
            let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
            encoder.write_all(&vec![0u8; 128 << 10]).unwrap();
            let frame = encoder.finish().unwrap();
            let stored = body.len() - 8;
            let mut b = vec![0u8; 8];
            let n = frame.len() as u32;
            b[1..4].copy_from_slice(&n.to_le_bytes()[..3]);
            b[4] = 1;
            b[5..8].copy_from_slice(&100u32.to_le_bytes()[..3]);
            b.extend_from_slice(&frame);
            b.resize(stored + 8, 0);
            Bytes::from(b)
        })),
        usize::MAX,
        "chunk 0",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_cut_midway_is_retried_without_rewriting_what_was_hashed() {
    // One xorb of random (so uncompressed) chunks: one term, hashed chunk by chunk as it lands.
    let data = content(7, 3 << 20);
    let sha = sha256_hex(&data);
    let (x, _) = xet_world(&[("model.bin", data.clone())]).await;
    // The first answer breaks off halfway; the second flips a byte of the first chunk, which
    // the first attempt wrote and the digest has read: it must not be written again, or the
    // stored file would differ from the one verified.
    let answers = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = answers.clone();
    x.cas.inject(
        XetFault::XorbBody(Arc::new(move |body: Bytes| {
            if count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                return body;
            }
            let mut b = body.to_vec();
            b[100] ^= 0xff;
            Bytes::from(b)
        })),
        2,
    );
    x.cas.inject(XetFault::XorbCut(3 << 19), 1);
    let larder = x.world.larder();
    let (result, events) = pull_with(&larder, &options("acme/xet", "main")).await;
    result.expect("the cut range is asked again and the pull completes");
    assert_eq!(answers.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(
        events
            .events()
            .iter()
            .any(|e| matches!(e, PullEvent::Retrying { .. })),
        "the cut was retried"
    );
    assert_eq!(
        read(&x.world.blob_path(&sha)),
        data,
        "the stored file is the verified one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assembled_bytes_must_match_the_digests() {
    // The stand-in advertises the Xet hash of other content of the same size.
    let data = content(7, 1 << 20);
    let other = content(8, 1 << 20);
    let cas = XetCas::start().await.unwrap();
    let other_hash = cas.upload(&other).await.unwrap();
    let hub = Hub::new();
    hub.repo(RepoKind::Model, "acme/xet")
        .xet_file("model.bin", data.clone(), &other_hash)
        .commit("main");
    let world = World::start(hub).await;
    world.server.attach_xet(&cas);
    let larder = world.larder();
    let (result, _) = pull_with(&larder, &options("acme/xet", "main")).await;
    let text = larder::fetch::transfer::error_chain(&result.expect_err("refused"));
    assert!(text.contains("sha256 should be"), "{text}");
    assert!(!world.blob_path(&sha256_hex(&data)).exists());
    assert!(!world.blob_path(&sha256_hex(&other)).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_route_refusals_are_clear() {
    for (fault, expect) in [
        (
            XetFault::Status(XetRoute::Token, 401),
            "refused a Xet read token (401)",
        ),
        (
            XetFault::Status(XetRoute::Token, 403),
            "refused a Xet read token (403)",
        ),
        (
            XetFault::TokenBody("{not json".to_owned()),
            "malformed Xet token",
        ),
    ] {
        refused(fault, usize::MAX, expect).await;
    }
    // The hint names HF_TOKEN.
    let data = content(9, 1 << 20);
    let (x, _) = xet_world(&[("model.bin", data)]).await;
    x.cas
        .inject(XetFault::Status(XetRoute::Token, 401), usize::MAX);
    let larder = x.world.larder();
    let (result, _) = pull_with(&larder, &options("acme/xet", "main")).await;
    let hint = larder::failure::Hint::hint(&result.unwrap_err()).unwrap_or_default();
    assert!(hint.contains("HF_TOKEN"), "{hint}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_token_never_reaches_the_cas() {
    let data = content(10, 1 << 20);
    let (x, _) = xet_world(&[("model.bin", data.clone())]).await;
    x.world
        .server
        .hub()
        .accept_token("acme/xet", "hf_secret_user_token");
    // A CAS that answers 401 (asking for other credentials) gets one fresh CAS token, never the
    // Hub token; then the pull falls back to plain HTTP.
    x.cas.inject(
        XetFault::Status(XetRoute::ReconstructionV2, 401),
        usize::MAX,
    );
    let larder = x.world.larder_with_token("hf_secret_user_token");
    let (result, _) = pull_with(&larder, &options("acme/xet", "main")).await;
    result.expect("falls back to HTTP");
    assert_eq!(read(&x.world.blob_path(&sha256_hex(&data))), data);
    let requests = x.cas.requests();
    assert!(!requests.is_empty());
    for request in requests {
        assert!(
            !request
                .authorization
                .unwrap_or_default()
                .contains("hf_secret_user_token"),
            "the CAS got the Hub token"
        );
    }
}

/// A 24 MiB file rebuilt from three xorbs (three pieces uploaded on their own first, so the
/// file, deduplicated against them, has three terms to land one by one), with every xorb range
/// slowed by `delay` so a run can be stopped midway. Returns the world, the data and its sha256.
async fn three_terms_world(delay: std::time::Duration) -> (XetWorld, Vec<u8>, String) {
    let pieces: Vec<Vec<u8>> = (0..3).map(|i| content(11 + i, 8 << 20)).collect();
    let data = pieces.concat();
    let sha = sha256_hex(&data);
    let cas = XetCas::start().await.expect("CAS starts");
    for piece in &pieces {
        cas.upload(piece).await.unwrap();
    }
    let hash = cas.upload(&data).await.unwrap();
    let hub = Hub::new();
    hub.repo(RepoKind::Model, "acme/xet")
        .xet_file("model.bin", data.clone(), &hash)
        .commit("main");
    let world = World::start(hub).await;
    world.server.attach_xet(&cas);
    let x = XetWorld { world, cas };
    x.cas.inject(XetFault::XorbDelay(delay), usize::MAX);
    (x, data, sha.to_string())
}

/// File bytes the Xet resume state at `state` records as landed.
fn landed_in(state: &std::path::Path) -> u64 {
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    value["done"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|d| d["lengths"].as_array().unwrap().clone())
        .map(|l| l.as_u64().unwrap())
        .sum()
}

/// Pulls `acme/xet` again with nothing slowed: it resumes from the `landed` bytes, fetches only
/// the rest (xorb bytes carry an 8-byte header per chunk and may compress; allow that slack) and
/// stores the file whole.
async fn resumes_from(x: &XetWorld, data: &[u8], sha: &str, landed: u64) {
    x.cas.faults().clear();
    x.cas.reset_stats();
    let larder = x.world.larder();
    let (result, events) = pull_with(&larder, &options("acme/xet", "main")).await;
    result.expect("the second run completes");
    assert_eq!(read(&x.world.blob_path(sha)), data);
    let resumed = events.events().iter().find_map(|e| match e {
        PullEvent::FileStarted { resumed, .. } => Some(*resumed),
        _ => None,
    });
    assert_eq!(resumed, Some(landed));
    let refetched = x.cas.xorb_bytes();
    assert!(
        refetched <= (data.len() as u64 - landed) + (data.len() as u64 / 50),
        "refetched {refetched}, landed {landed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_kill_9_at_term_granularity() {
    let (x, data, sha) = three_terms_world(std::time::Duration::from_millis(700)).await;
    let mut child = x
        .world
        .cli()
        .args(["pull", "acme/xet", "--connections", "1"])
        .env("LARDER_NO_PROGRESS", "1")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state = x.world.tmp_dir().join(format!("{sha}.xet.state"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        assert!(std::time::Instant::now() < deadline, "no durable progress");
        if let Ok(text) = std::fs::read_to_string(&state)
            && let Ok(value) = serde_json::from_str::<serde_json::Value>(&text)
            && value["done"].as_object().is_some_and(|d| !d.is_empty())
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let landed = landed_in(&state);
    assert!(landed > 0 && landed < data.len() as u64);
    resumes_from(&x, &data, &sha, landed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_keeps_the_terms_that_landed() {
    use std::io::BufRead;
    let (x, data, sha) = three_terms_world(std::time::Duration::from_millis(300)).await;
    let mut child = x
        .world
        .cli()
        .args(["pull", "acme/xet", "--connections", "1", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Follow the events until the first term (8 MiB) is written, then keep draining them.
    let stdout = child.stdout.take().unwrap();
    let (reached, first_term) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut written = 0u64;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if event["event"] == "file_progress" && event["path"] == "model.bin" {
                written += event["bytes"].as_u64().unwrap_or(0);
                if written >= 8 << 20 {
                    let _ = reached.send(written);
                }
            }
        }
    });
    let written = first_term
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the first term is written");
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: `kill` has no memory-safety preconditions; the pid is our own child's.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let output = child.wait_with_output().unwrap();
    reader.join().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    // What landed before the signal is in the resume state, whether or not a checkpoint came.
    let state = x.world.tmp_dir().join(format!("{sha}.xet.state"));
    let landed = landed_in(&state);
    assert!(
        landed >= 8 << 20 && landed < data.len() as u64,
        "landed {landed} of {}, {written} written before the signal",
        data.len()
    );
    resumes_from(&x, &data, &sha, landed).await;
}

/// The statuses the CAS answered to reconstruction requests, in order, per version.
fn reconstruction_statuses(cas: &XetCas) -> Vec<(XetRoute, u16)> {
    cas.requests()
        .iter()
        .filter(|r| {
            matches!(
                r.route,
                XetRoute::ReconstructionV1 | XetRoute::ReconstructionV2
            )
        })
        .map(|r| (r.route, r.status))
        .collect()
}

/// Pulls `acme/xet` and checks the file came whole over Xet, with no plain download of it.
async fn pulled_over_xet(x: &XetWorld, data: &[u8]) {
    let larder = x.world.larder();
    let (result, events) = pull_with(&larder, &options("acme/xet", "main")).await;
    result.expect("pull succeeds over Xet");
    let sha = sha256_hex(data);
    assert_eq!(read(&x.world.blob_path(&sha)), data);
    assert_eq!(
        x.world.server.stats().bytes_for_sha256(&sha),
        0,
        "no plain download"
    );
    assert!(
        !events
            .events()
            .iter()
            .any(|e| matches!(e, PullEvent::XetFallback { .. })),
        "no fallback to plain HTTP"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refreshed_once() {
    let data = content(81, 3 << 20);
    let (x, _) = xet_world(&[("model.bin", data.clone())]).await;
    // The first token handed out has already expired when it is used: the CAS answers 401,
    // the pull asks the token route again and carries on.
    x.cas.inject(XetFault::TokenTtl(0), 1);
    pulled_over_xet(&x, &data).await;
    let statuses = reconstruction_statuses(&x.cas);
    assert_eq!(statuses.first().map(|s| s.1), Some(401), "{statuses:?}");
    assert!(
        statuses.iter().any(|s| s.1 == 200),
        "answered with the fresh token: {statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| s.1 == 401).count(),
        1,
        "one refresh was enough: {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconstructions_fall_back_from_v2_to_v1() {
    let data = content(82, 2 << 20);
    let (x, _) = xet_world(&[("model.bin", data.clone())]).await;
    for status in [404, 501] {
        x.cas.faults().clear();
        x.cas.reset_stats();
        x.cas.inject(
            XetFault::Status(XetRoute::ReconstructionV2, status),
            usize::MAX,
        );
        // A fresh store each round, so the file is fetched again.
        let home = tempfile::tempdir().unwrap();
        let mut settings = x.world.settings(None);
        settings.home = home.path().to_path_buf();
        let larder = larder::Larder::open(&settings).expect("larder opens");
        let (result, _) = pull_with(&larder, &options("acme/xet", "main")).await;
        result.expect("pull succeeds over v1");
        assert_eq!(
            reconstruction_statuses(&x.cas),
            vec![
                (XetRoute::ReconstructionV2, status),
                (XetRoute::ReconstructionV1, 200)
            ],
            "v2 is tried first, v1 answers"
        );
        assert!(xet_bytes_requested(&x.cas) > 0, "the bytes came from xorbs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_xorb_urls_are_renewed() {
    let data = content(83, 6 << 20);
    let (x, _) = xet_world(&[("model.bin", data.clone())]).await;
    // The first two xorb ranges are refused, as signed URLs are once they expire.
    x.cas.inject(XetFault::Status(XetRoute::Xorb, 403), 2);
    pulled_over_xet(&x, &data).await;
    let requests = x.cas.requests();
    let refused = requests
        .iter()
        .filter(|r| r.route == XetRoute::Xorb && r.status == 403)
        .count();
    assert_eq!(refused, 2);
    let answered = reconstruction_statuses(&x.cas)
        .iter()
        .filter(|s| s.1 == 200)
        .count();
    assert!(
        answered >= 2,
        "fresh URLs came from a second reconstruction"
    );

    // URLs that stay refused end the Xet attempt (then plain HTTP takes over), not a loop.
    let other = content(84, 1 << 20);
    let hash = x.cas.upload(&other).await.unwrap();
    x.world
        .server
        .hub()
        .repo(RepoKind::Model, "acme/xet")
        .base("main")
        .xet_file("other.bin", other.clone(), &hash)
        .commit("main");
    x.cas.faults().clear();
    x.cas.reset_stats();
    x.cas
        .inject(XetFault::Status(XetRoute::Xorb, 403), usize::MAX);
    let (result, events) = pull_with(&x.world.larder(), &options("acme/xet", "main")).await;
    result.expect("falls back and succeeds");
    assert_eq!(read(&x.world.blob_path(&sha256_hex(&other))), other);
    assert!(
        events
            .events()
            .iter()
            .any(|e| matches!(e, PullEvent::XetFallback { .. }))
    );
    let refused = x
        .cas
        .requests()
        .iter()
        .filter(|r| r.route == XetRoute::Xorb)
        .count();
    assert!(
        refused <= 8,
        "{refused} xorb requests: the renewals are bounded"
    );
}
