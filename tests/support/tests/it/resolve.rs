//! `/resolve` headers, LFS redirects, and the CDN's Range handling.

use crate::{CONFIG, blob, client, header, tiny};
use hub_standin::{RepoKind, Route};

#[tokio::test]
async fn regular_file_served_directly() {
    let (server, sha) = tiny().await;
    let url = format!("{}/acme/tiny/resolve/main/config.json", server.url());
    let etag = format!("\"{}\"", hub_standin::hash::git_hash(CONFIG));
    let head = client()
        .head(&url)
        .header("accept-encoding", "identity")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "etag"), Some(etag.as_str()));
    assert_eq!(header(&head, "x-repo-commit"), Some(sha.as_str()));
    assert_eq!(
        header(&head, "content-length"),
        Some(CONFIG.len().to_string().as_str())
    );
    assert_eq!(header(&head, "accept-ranges"), Some("bytes"));
    assert!(header(&head, "x-linked-etag").is_none());
    assert!(header(&head, "x-xet-hash").is_none() && header(&head, "link").is_none());
    let get = client().get(&url).send().await.unwrap();
    assert_eq!(
        header(&get, "content-length"),
        Some(CONFIG.len().to_string().as_str())
    );
    assert!(header(&get, "content-encoding").is_none());
    assert_eq!(get.bytes().await.unwrap().as_ref(), CONFIG);
    let probe = client()
        .get(&url)
        .header("range", "bytes=0-0")
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status(), 206);
    assert_eq!(
        header(&probe, "content-range"),
        Some(format!("bytes 0-0/{}", CONFIG.len()).as_str())
    );
    assert_eq!(header(&probe, "x-repo-commit"), Some(sha.as_str()));
    let cached = client()
        .head(&url)
        .header("if-none-match", etag.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    assert_eq!(header(&cached, "x-repo-commit"), Some(sha.as_str()));
    let odd = client()
        .get(format!(
            "{}/acme/tiny/resolve/main/with%20space%23%3F.txt",
            server.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(odd.bytes().await.unwrap().as_ref(), b"odd name");
    assert_eq!(server.stats().count(Route::ResolveHead), 2);
    assert_eq!(
        server.stats().bytes_for_path("config.json"),
        CONFIG.len() as u64 + 1
    );
}

#[tokio::test]
async fn lfs_file_redirects_to_signed_cdn_url() {
    let (server, sha) = tiny().await;
    let entry = server
        .hub()
        .file(RepoKind::Model, "acme/tiny", "main", "model.safetensors")
        .unwrap();
    let sha256 = entry.lfs.as_ref().unwrap().sha256.clone();
    for request in [
        client().head(format!(
            "{}/acme/tiny/resolve/main/model.safetensors",
            server.url()
        )),
        client().get(format!(
            "{}/acme/tiny/resolve/main/model.safetensors",
            server.url()
        )),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 302);
        assert_eq!(header(&response, "x-repo-commit"), Some(sha.as_str()));
        assert_eq!(
            header(&response, "x-linked-etag"),
            Some(format!("\"{sha256}\"").as_str())
        );
        assert_eq!(header(&response, "x-linked-size"), Some("100000"));
        assert_eq!(
            header(&response, "etag"),
            Some(format!("\"{}\"", entry.oid).as_str())
        );
        assert_eq!(header(&response, "accept-ranges"), Some("bytes"));
        let location = header(&response, "location").unwrap();
        assert!(
            location.starts_with(&format!("{}/cdn/{sha256}?expires=", server.cdn_url())),
            "{location}"
        );
    }
    // reqwest follows the cross-origin redirect and strips Authorization.
    let data = blob(100_000, 7);
    let followed = reqwest::Client::new()
        .get(format!(
            "{}/acme/tiny/resolve/main/model.safetensors",
            server.url()
        ))
        .bearer_auth("hf_secret")
        .send()
        .await
        .unwrap();
    assert_eq!(followed.status(), 200);
    assert_eq!(
        header(&followed, "etag"),
        Some(format!("\"{sha256}\"").as_str())
    );
    assert_eq!(followed.bytes().await.unwrap().as_ref(), data.as_slice());
    let requests = server.stats().requests();
    assert!(
        requests
            .iter()
            .filter(|record| record.cdn)
            .all(|record| !record.authorization)
    );
    assert_eq!(server.stats().bytes_for_sha256(&sha256), 100_000);
    assert_eq!(server.stats().bytes_for_path("model.safetensors"), 100_000);
}

async fn cdn_url(server: &hub_standin::StandIn) -> String {
    let response = client()
        .head(format!(
            "{}/acme/tiny/resolve/main/model.safetensors",
            server.url()
        ))
        .send()
        .await
        .unwrap();
    header(&response, "location").unwrap().to_owned()
}

#[tokio::test]
async fn cdn_range_forms() {
    let (server, _) = tiny().await;
    let url = cdn_url(&server).await;
    let data = blob(100_000, 7);
    let cases: &[(&str, u16, Option<&str>, std::ops::Range<usize>)] = &[
        ("bytes=0-0", 206, Some("bytes 0-0/100000"), 0..1),
        ("bytes=10-19", 206, Some("bytes 10-19/100000"), 10..20),
        (
            "bytes=99990-100000",
            206,
            Some("bytes 99990-99999/100000"),
            99_990..100_000,
        ),
        (
            "bytes=50000-",
            206,
            Some("bytes 50000-99999/100000"),
            50_000..100_000,
        ),
        (
            "bytes=-5",
            206,
            Some("bytes 99995-99999/100000"),
            99_995..100_000,
        ),
        ("bytes=100000-", 416, Some("bytes */100000"), 0..0),
        ("bytes=200000-300000", 416, Some("bytes */100000"), 0..0),
    ];
    for (range, status, content_range, expected) in cases {
        let response = client()
            .get(&url)
            .header("range", *range)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), *status, "{range}");
        assert_eq!(
            header(&response, "content-range"),
            *content_range,
            "{range}"
        );
        if *status == 206 {
            assert_eq!(
                header(&response, "content-length"),
                Some(expected.len().to_string().as_str())
            );
        }
        let body = response.bytes().await.unwrap();
        if *status == 206 {
            assert_eq!(body.as_ref(), &data[expected.clone()], "{range}");
        }
    }
    let full = client().get(&url).send().await.unwrap();
    assert_eq!(full.status(), 200);
    assert_eq!(header(&full, "content-length"), Some("100000"));
    let head = client().head(&url).send().await.unwrap();
    assert_eq!(header(&head, "content-length"), Some("100000"));
}

#[tokio::test]
async fn cdn_rejects_authorization_expired_and_forged_urls() {
    let (server, _) = tiny().await;
    let url = cdn_url(&server).await;
    let response = client().get(&url).bearer_auth("hf_x").send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Only one auth mechanism")
    );
    let forged = url.replace("sig=", "sig=0");
    assert_eq!(client().get(&forged).send().await.unwrap().status(), 403);
    let (base, _) = url.split_once('?').unwrap();
    assert_eq!(client().get(base).send().await.unwrap().status(), 403);
    let expires: u64 = url
        .split("expires=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!((now + 3590..=now + 3610).contains(&expires));

    server.set_cdn_ttl(std::time::Duration::ZERO);
    let short = cdn_url(&server).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let response = client().get(&short).send().await.unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("expired"));
    assert_eq!(client().get(&url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn cdn_base_override_points_elsewhere() {
    let hub = hub_standin::Hub::new();
    hub.repo(RepoKind::Model, "a/b")
        .lfs_file("w", b"abc".to_vec())
        .commit("main");
    let server = hub_standin::StandIn::builder(hub)
        .cdn_base_override("http://nginx:8080/blobs/")
        .start()
        .await
        .unwrap();
    let response = client()
        .head(format!("{}/a/b/resolve/main/w", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&response, "location"),
        Some(
            format!(
                "http://nginx:8080/blobs/{}",
                hub_standin::hash::sha256_hex(b"abc")
            )
            .as_str()
        )
    );
}

#[tokio::test]
async fn if_range_and_case_mismatch_redirect() {
    let (server, _) = tiny().await;
    let url = format!("{}/acme/tiny/resolve/main/config.json", server.url());
    let oid = hub_standin::hash::git_hash(CONFIG);
    let matching = client()
        .get(&url)
        .header("range", "bytes=2-")
        .header("if-range", format!("\"{oid}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(matching.status(), 206);
    let stale = client()
        .get(&url)
        .header("range", "bytes=2-")
        .header("if-range", "\"0000\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.bytes().await.unwrap().as_ref(), CONFIG);

    let response = client()
        .head(format!(
            "{}/ACME/Tiny/resolve/refs%2Fpr%2F1/config.json?x=1",
            server.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 307);
    assert_eq!(
        header(&response, "location"),
        Some("/acme/tiny/resolve/refs%2Fpr%2F1/config.json?x=1")
    );
    assert!(header(&response, "etag").is_none());
}
