//! Each fault, armed on demand, and the counters tests assert on.

use crate::{CONFIG, blob, client, header, tiny};
use futures::StreamExt;
use hub_standin::{Fault, RepoKind, Route};
use std::time::{Duration, Instant};

/// Follows the LFS redirect like a client would (no auth to the CDN).
fn follow() -> reqwest::Client {
    reqwest::Client::new()
}

async fn read_all(response: reqwest::Response) -> (Vec<u8>, bool) {
    let mut stream = response.bytes_stream();
    let mut received = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => received.extend_from_slice(&chunk),
            Err(_) => return (received, true),
        }
    }
    (received, false)
}

#[tokio::test]
async fn cut_connection_after_n_bytes() {
    let (server, _) = tiny().await;
    let url = format!("{}/acme/tiny/resolve/main/model.safetensors", server.url());
    server.inject(Fault::cut_after(1000).path("model.safetensors"));
    let response = follow().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (received, broken) = read_all(response).await;
    assert!(broken, "the client must see a broken transfer");
    assert_eq!(received.len(), 1000);
    assert_eq!(server.stats().bytes_for_path("model.safetensors"), 1000);
    let (received, broken) = read_all(follow().get(&url).send().await.unwrap()).await;
    assert!(!broken);
    assert_eq!(received, blob(100_000, 7));
    assert!(server.faults().pending().is_empty());

    // Also on directly served regular files, addressed by sha256 for LFS.
    server.inject(Fault::cut_after(5).path("config.json"));
    let (received, broken) = read_all(
        client()
            .get(format!(
                "{}/acme/tiny/resolve/main/config.json",
                server.url()
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(broken && received.len() <= 5);
    let sha256 = server
        .hub()
        .file(RepoKind::Model, "acme/tiny", "main", "model.safetensors")
        .unwrap();
    server.inject(
        Fault::cut_after(10)
            .sha256(sha256.sha256().unwrap())
            .times(2),
    );
    for _ in 0..2 {
        assert!(read_all(follow().get(&url).send().await.unwrap()).await.1);
    }
    assert!(!read_all(follow().get(&url).send().await.unwrap()).await.1);
}

#[tokio::test]
async fn unavailable_and_rate_limited_with_retry_after() {
    let (server, _) = tiny().await;
    let url = format!("{}/acme/tiny/resolve/main/config.json", server.url());
    server.inject(Fault::unavailable(7).path("config.json").times(2));
    for _ in 0..2 {
        let response = client().head(&url).send().await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(header(&response, "retry-after"), Some("7"));
    }
    assert_eq!(client().head(&url).send().await.unwrap().status(), 200);

    // Scoped to the CDN: the resolve 302 is untouched.
    server.inject(
        Fault::too_many_requests(1)
            .path("model.safetensors")
            .on(Route::CdnGet),
    );
    let lfs = format!("{}/acme/tiny/resolve/main/model.safetensors", server.url());
    assert_eq!(client().head(&lfs).send().await.unwrap().status(), 302);
    let response = follow().get(&lfs).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(header(&response, "retry-after"), Some("1"));
    assert_eq!(follow().get(&lfs).send().await.unwrap().status(), 200);

    server.inject(Fault::unavailable(2).on(Route::Api));
    let api = format!("{}/api/models/acme/tiny", server.url());
    assert_eq!(client().get(&api).send().await.unwrap().status(), 503);
    assert_eq!(client().get(&api).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn flipped_byte_corrupts_the_transfer() {
    let (server, _) = tiny().await;
    let url = format!("{}/acme/tiny/resolve/main/model.safetensors", server.url());
    server.inject(Fault::flip_byte(70_000).path("model.safetensors"));
    let body = follow()
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let data = blob(100_000, 7);
    assert_eq!(body.len(), data.len());
    let differing: Vec<usize> = (0..data.len())
        .filter(|&index| body[index] != data[index])
        .collect();
    assert_eq!(differing, [70_000]);
    // The offset is a file offset: a ranged request covering it sees the flip at the right place.
    server.inject(Fault::flip_byte(4).path("config.json"));
    let ranged = client()
        .get(format!(
            "{}/acme/tiny/resolve/main/config.json",
            server.url()
        ))
        .header("range", "bytes=2-")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(ranged[2], CONFIG[4] ^ 0xFF);
    assert_eq!(
        follow()
            .get(&url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        data.as_slice()
    );
}

#[tokio::test]
async fn stall_then_resume_or_forever() {
    let (server, _) = tiny().await;
    let url = format!("{}/acme/tiny/resolve/main/model.safetensors", server.url());
    server.inject(Fault::stall(2000, Some(Duration::from_millis(400))).path("model.safetensors"));
    let started = Instant::now();
    let body = follow()
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(body.as_ref(), blob(100_000, 7).as_slice());

    server.inject(Fault::stall(3000, None).path("model.safetensors"));
    let response = follow().get(&url).send().await.unwrap();
    let mut stream = response.bytes_stream();
    let mut received = 0;
    let outcome = tokio::time::timeout(Duration::from_millis(500), async {
        while let Some(Ok(chunk)) = stream.next().await {
            received += chunk.len();
        }
    })
    .await;
    assert!(outcome.is_err(), "the stream must hang");
    assert_eq!(received, 3000);
}

#[tokio::test]
async fn expired_cdn_urls_and_throttling() {
    let (server, _) = tiny().await;
    let url = format!("{}/acme/tiny/resolve/main/model.safetensors", server.url());
    server.inject(Fault::expire_cdn().times(2));
    for _ in 0..2 {
        let response = follow().get(&url).send().await.unwrap();
        assert_eq!(response.status(), 403);
        assert!(response.text().await.unwrap().contains("expired"));
    }
    assert_eq!(follow().get(&url).send().await.unwrap().status(), 200);

    server.inject(Fault::throttle(200_000).path("model.safetensors"));
    let started = Instant::now();
    let body = follow()
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(body.len(), 100_000);
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn counters_and_request_log() {
    let (server, _) = tiny().await;
    let url = format!("{}/acme/tiny/resolve/main/model.safetensors", server.url());
    let _ = client()
        .get(format!("{}/api/models/acme/tiny", server.url()))
        .send()
        .await
        .unwrap();
    let _ = client()
        .head(&url)
        .bearer_auth("hf_x")
        .send()
        .await
        .unwrap();
    let body = follow()
        .get(&url)
        .bearer_auth("hf_x")
        .header("range", "bytes=100-")
        .send()
        .await
        .unwrap();
    assert_eq!(body.bytes().await.unwrap().len(), 99_900);
    let stats = server.stats();
    assert_eq!(stats.count(Route::Api), 1);
    assert_eq!(stats.count(Route::ResolveHead), 1);
    assert_eq!(stats.count(Route::ResolveGet), 1);
    assert_eq!(stats.count(Route::CdnGet), 1);
    assert_eq!(stats.total_bytes(), 99_900);
    let requests = stats.requests();
    let cdn = requests
        .iter()
        .find(|record| record.route == Route::CdnGet)
        .unwrap();
    assert!(!cdn.authorization && cdn.cdn);
    assert_eq!(cdn.range.as_deref(), Some("bytes=100-"));
    assert_eq!(cdn.status, 206);
    let resolve = requests
        .iter()
        .find(|record| record.route == Route::ResolveGet)
        .unwrap();
    assert!(resolve.authorization);
    assert_eq!(resolve.status, 302);
    assert_eq!(resolve.method, "GET");
    stats.reset();
    assert!(stats.requests().is_empty());
}

#[tokio::test]
async fn latency_delays_requests_and_peak_concurrency_counts_them() {
    let (server, _) = tiny().await;
    server.set_latency(Duration::from_millis(150));
    let url = format!("{}/acme/tiny/resolve/main/config.json", server.url());
    let started = Instant::now();
    let requests = (0..6).map(|_| {
        let url = url.clone();
        async move { client().get(&url).send().await.unwrap().status() }
    });
    let statuses = futures::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 200));
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(server.stats().peak_concurrency(), 6);
    assert_eq!(server.stats().concurrency(), 0);
    server.stats().reset_peak_concurrency();
    server.set_latency(Duration::ZERO);
    client().get(&url).send().await.unwrap();
    assert_eq!(server.stats().peak_concurrency(), 1);
    assert_eq!(server.stats().count_status(200), 7);
}
