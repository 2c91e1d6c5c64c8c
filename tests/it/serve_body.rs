//! File bodies of `larder serve` on its own connections (sent by `sendfile`): byte-identical
//! whole files, every range form, zero-byte files and files above 4 GiB (sparse); keep-alive
//! and pipelining on one connection; a client vanishing mid-body releases the blob's file
//! descriptor; a connection handed to hyper (chunked request body) serves the same bytes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hub_standin::{Hub, RepoKind};
use larder::registry::{FileRecord, LicenceFields, RepoKind as Kind, SnapshotRecord};
use larder::serve::{RunningMirror, ServeOptions, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{World, commit_id, content, options, pull_with};

const MODEL_LEN: usize = (3 << 20) + 17;
/// Above 4 GiB, so offsets and lengths need 64 bits everywhere.
const HUGE_LEN: u64 = (4 << 30) + (3 << 20) + 5;
const HUGE_SHA: &str = "4b1d000000000000000000000000000000000000000000000000000000000001";
/// Marks written into the sparse huge file (the rest reads as zeros).
const MARKS: [(u64, &[u8]); 3] = [
    (0, b"start of the huge file"),
    ((4 << 30) - 8, b"across the 4 GiB line"),
    (HUGE_LEN - 12, b"the very end"),
];

struct Fixture {
    _world: World,
    mirror: RunningMirror,
    model: Vec<u8>,
    small: Vec<u8>,
    huge_path: PathBuf,
}

async fn fixture() -> Fixture {
    let hub = Hub::new();
    let model = content(7, MODEL_LEN);
    let small = content(8, 1000);
    hub.repo(RepoKind::Model, "acme/bodies")
        .lfs_file("model.safetensors", model.clone())
        .regular_file("small.txt", small.clone())
        .regular_file("empty.txt", Vec::new())
        .commit("main");
    let world = World::start(hub).await;
    let larder = world.larder();
    let (pulled, _) = pull_with(&larder, &options("acme/bodies", "main")).await;
    pulled.expect("pull");
    let huge_path = sparse_huge_blob(&world, &larder).await;
    // Plain HTTP bodies only: with Xet on, the mirror's chunk-index backfill would read the
    // 4 GiB blob in the background, and these tests count who holds it open.
    let mut serve = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    serve.xet = false;
    let mirror = start(world.larder(), serve).await.unwrap();
    Fixture {
        _world: world,
        mirror,
        model,
        small,
        huge_path,
    }
}

/// Record `acme/huge` with one LFS file held as a sparse blob, stamped as verified (its
/// digest is made up; nothing here hashes it).
async fn sparse_huge_blob(world: &World, larder: &larder::Larder) -> PathBuf {
    let path = world.blob_path(HUGE_SHA);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(HUGE_LEN).unwrap();
    for (at, mark) in MARKS {
        std::os::unix::fs::FileExt::write_all_at(&file, mark, at).unwrap();
    }
    drop(file);
    larder::record::record_blob(
        larder,
        &larder::registry::Sha256::parse(HUGE_SHA).unwrap(),
        HUGE_LEN,
        larder::record::Checked::Adopted,
        None,
    )
    .await
    .unwrap();
    // As if verified when it was published: the mirror trusts a file that still carries the
    // stamp of its last good hash (a real hash of 4 GiB would dominate the test).
    let stamp = larder::store::stamp::stamp(&path).unwrap();
    larder
        .registry
        .stamp_blobs(
            vec![(larder::registry::Sha256::parse(HUGE_SHA).unwrap(), stamp)],
            1_700_000_000,
        )
        .await
        .unwrap();
    larder
        .registry
        .record_snapshot(SnapshotRecord {
            kind: Kind::Model,
            name: "acme/huge".into(),
            upstream: world.server.url(),
            gated: None,
            private: false,
            commit: commit_id(&"e".repeat(40)),
            card_json: None,
            refs: vec!["main".into()],
            seen_at: 1_700_000_000,
            files: vec![FileRecord {
                path: "huge.bin".into(),
                size: HUGE_LEN,
                git_oid: "f".repeat(40),
                sha256: Some(larder::registry::Sha256::parse(HUGE_SHA).unwrap()),
                lfs: true,
            }],
            licence: LicenceFields::default(),
        })
        .await
        .unwrap();
    path
}

/// The expected byte of the huge file at `at`.
fn huge_byte(at: u64) -> u8 {
    for (start, mark) in MARKS {
        if at >= start && at < start + mark.len() as u64 {
            return mark[(at - start) as usize];
        }
    }
    0
}

fn url(mirror: &RunningMirror, repo: &str, path: &str) -> String {
    format!("{}/{repo}/resolve/main/{path}", mirror.url())
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_gzip().build().unwrap()
}

async fn get(
    client: &reqwest::Client,
    url: &str,
    range: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = client.get(url);
    if let Some(range) = range {
        request = request.header("range", range);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

fn h<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_byte_identical_for_every_range_form() {
    let f = fixture().await;
    let c = http();
    let model = url(&f.mirror, "acme/bodies", "model.safetensors");
    let size = MODEL_LEN as u64;

    let (status, headers, body) = get(&c, &model, None).await;
    assert_eq!(status, 200);
    assert_eq!(h(&headers, "content-length"), size.to_string());
    assert_eq!(h(&headers, "accept-ranges"), "bytes");
    assert_eq!(h(&headers, "content-type"), "application/octet-stream");
    assert!(headers.get("date").is_some());
    assert!(body == f.model, "whole body differs");

    let cases: [(&str, u64, u64); 7] = [
        ("bytes=100-199", 100, 199),
        ("bytes=0-0", 0, 0),
        ("bytes=-1000", size - 1000, size - 1),
        ("bytes=3000000-", 3_000_000, size - 1),
        ("bytes=5-99999999", 5, size - 1),
        // Several ranges: the first is served, as today.
        ("bytes=10-19, 40-49", 10, 19),
        ("bytes=-99999999", 0, size - 1),
    ];
    for (range, start, end) in cases {
        let (status, headers, body) = get(&c, &model, Some(range)).await;
        assert_eq!(status, 206, "{range}");
        assert_eq!(
            h(&headers, "content-range"),
            format!("bytes {start}-{end}/{size}"),
            "{range}"
        );
        assert_eq!(
            h(&headers, "content-length"),
            (end - start + 1).to_string(),
            "{range}"
        );
        assert!(
            body == f.model[start as usize..=end as usize],
            "{range}: body differs"
        );
    }
    let (status, headers, body) = get(&c, &model, Some(&format!("bytes={size}-"))).await;
    assert_eq!(status, 416);
    assert_eq!(h(&headers, "content-range"), format!("bytes */{size}"));
    assert!(body.is_empty());

    let small = url(&f.mirror, "acme/bodies", "small.txt");
    let (status, _, body) = get(&c, &small, None).await;
    assert_eq!((status, body), (200, f.small.clone()));

    let empty = url(&f.mirror, "acme/bodies", "empty.txt");
    let (status, headers, body) = get(&c, &empty, None).await;
    assert_eq!(status, 200);
    assert_eq!(h(&headers, "content-length"), "0");
    assert!(body.is_empty());
    let (status, _, _) = get(&c, &empty, Some("bytes=0-")).await;
    assert_eq!(status, 416);

    // HEAD: the same headers, no body; the connection stays usable.
    let head = c.head(&model).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(h(head.headers(), "content-length"), size.to_string());
    assert!(head.bytes().await.unwrap().is_empty());

    // A conditional request answers 304 without a body.
    let etag = h(&headers, "etag").to_owned();
    let not_modified = c
        .get(&empty)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    f.mirror.stop().await.unwrap();
}

/// One response read off a raw connection.
struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Read one response (Content-Length framed; no body after HEAD or 304).
async fn read_reply(stream: &mut TcpStream, buf: &mut Vec<u8>, head_only: bool) -> Reply {
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before a response head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf.drain(..end).collect()).unwrap();
    let status = head[9..12].parse().unwrap();
    let mut reply = Reply {
        status,
        head,
        body: Vec::new(),
    };
    let len: usize = if head_only || status == 304 {
        0
    } else {
        reply.header("content-length").unwrap().parse().unwrap()
    };
    while buf.len() < len {
        let mut chunk = vec![0u8; 1 << 16];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    reply.body = buf.drain(..len).collect();
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_carries_pipelined_requests_then_closes_when_asked() {
    let f = fixture().await;
    let mut stream = TcpStream::connect(f.mirror.addr()).await.unwrap();
    let path = "/acme/bodies/resolve/main/model.safetensors";
    let requests = format!(
        "HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n\
         GET {path} HTTP/1.1\r\nHost: x\r\nRange: bytes=1000-1999\r\n\r\n\
         GET /acme/bodies/resolve/main/small.txt HTTP/1.1\r\nHost: x\r\n\r\n\
         GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"
    );
    stream.write_all(requests.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let head = read_reply(&mut stream, &mut buf, true).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(&*MODEL_LEN.to_string()));
    assert!(head.header("x-repo-commit").is_some());
    assert!(head.header("etag").is_some());
    let range = read_reply(&mut stream, &mut buf, false).await;
    assert_eq!(range.status, 206);
    assert_eq!(
        range.header("content-range"),
        Some(&*format!("bytes 1000-1999/{MODEL_LEN}"))
    );
    assert!(range.body == f.model[1000..2000]);
    let small = read_reply(&mut stream, &mut buf, false).await;
    assert_eq!((small.status, small.body), (200, f.small.clone()));
    let whole = read_reply(&mut stream, &mut buf, false).await;
    assert!(whole.body == f.model);

    // `Connection: close`: answered with `connection: close`, then the server closes.
    stream
        .write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nRange: bytes=0-9\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let last = read_reply(&mut stream, &mut buf, false).await;
    assert_eq!(last.header("connection"), Some("close"));
    assert!(last.body == f.model[..10]);
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
        .await
        .expect("the server closes the connection")
        .unwrap();
    assert!(rest.is_empty());

    // A malformed request gets 400 and a close.
    let mut bad = TcpStream::connect(f.mirror.addr()).await.unwrap();
    bad.write_all(b"NOT HTTP AT ALL\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), bad.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 400 "), "{answer:?}");
    f.mirror.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_above_4_gib_serve_their_ranges_and_whole_body() {
    let f = fixture().await;
    let c = http();
    let huge = url(&f.mirror, "acme/huge", "huge.bin");
    let four = 4u64 << 30;
    for (range, start, end) in [
        (
            format!("bytes={}-{}", four - 8, four + 12),
            four - 8,
            four + 12,
        ),
        ("bytes=-12".to_owned(), HUGE_LEN - 12, HUGE_LEN - 1),
        (format!("bytes={}-", four + 7), four + 7, HUGE_LEN - 1),
    ] {
        let (status, headers, body) = get(&c, &huge, Some(&range)).await;
        assert_eq!(status, 206, "{range}");
        assert_eq!(
            h(&headers, "content-range"),
            format!("bytes {start}-{end}/{HUGE_LEN}")
        );
        let expected: Vec<u8> = (start..=end).map(huge_byte).collect();
        assert!(body == expected, "{range}: body differs");
    }

    // The whole body, streamed and checked as it arrives.
    let response = c.get(&huge).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        h(response.headers(), "content-length"),
        HUGE_LEN.to_string()
    );
    let mut stream = response.bytes_stream();
    let mut at = 0u64;
    let zeros = vec![0u8; 1 << 20];
    use futures::StreamExt;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        let end = at + chunk.len() as u64;
        let marked = MARKS
            .iter()
            .any(|(s, m)| *s < end && s + m.len() as u64 > at);
        if marked || chunk.len() > zeros.len() {
            let expected: Vec<u8> = (at..end).map(huge_byte).collect();
            assert!(chunk[..] == expected[..], "bytes {at}..{end} differ");
        } else {
            // Slice equality is a memcmp, fast even unoptimized.
            assert!(
                chunk[..] == zeros[..chunk.len()],
                "bytes {at}..{end} are not zeros"
            );
        }
        at = end;
    }
    assert_eq!(at, HUGE_LEN);
    f.mirror.stop().await.unwrap();
}

/// This process's descriptors open on `path`.
fn fds_on(path: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| std::fs::read_link(entry.path()).is_ok_and(|target| target == path))
        .count()
}

/// This process's descriptors on TCP sockets whose local port is `port`:
/// the mirror's listener and the connections it accepted. Other tests'
/// descriptors never match, so the count is exact while they run.
fn sockets_on_port(port: u16) -> usize {
    let mut inodes = std::collections::HashSet::new();
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields
                .get(1)
                .and_then(|local| local.rsplit(':').next())
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            if local_port == Some(port)
                && let Some(inode) = fields.get(9)
            {
                inodes.insert(format!("socket:[{inode}]"));
            }
        }
    }
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| {
            std::fs::read_link(entry.path())
                .is_ok_and(|target| inodes.contains(target.to_string_lossy().as_ref()))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_vanishing_mid_body_releases_the_file() {
    let f = fixture().await;
    let path = f.huge_path.canonicalize().unwrap();
    assert_eq!(fds_on(&path), 0);
    let port = f.mirror.addr().port();
    assert_eq!(sockets_on_port(port), 1, "only the listener is open");
    for _ in 0..3 {
        let mut stream = TcpStream::connect(f.mirror.addr()).await.unwrap();
        stream
            .write_all(b"GET /acme/huge/resolve/main/huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut got = 0;
        let mut chunk = vec![0u8; 1 << 16];
        while got < (2 << 20) {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            got += n;
        }
        assert!(
            fds_on(&path) >= 1,
            "the blob is open while its body is sent"
        );
        drop(stream);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while fds_on(&path) > 0 {
        assert!(
            Instant::now() < deadline,
            "the blob stayed open after its clients left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The mirror closed every connection its clients left.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sockets_on_port(port) > 1 {
        assert!(
            Instant::now() < deadline,
            "{} sockets of the mirror stayed open after its clients left",
            sockets_on_port(port) - 1
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f.mirror.stop().await.unwrap();
    assert_eq!(
        sockets_on_port(port),
        0,
        "the stopped mirror left sockets open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_handed_to_hyper_serves_the_same_bytes() {
    let f = fixture().await;
    let mut stream = TcpStream::connect(f.mirror.addr()).await.unwrap();
    // A chunked request body: this connection continues under hyper.
    let form = "paths=model.safetensors&expand=false";
    let request = format!(
        "POST /api/models/acme/bodies/paths-info/main HTTP/1.1\r\nHost: x\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{form}\r\n0\r\n\r\n\
         GET /acme/bodies/resolve/main/model.safetensors HTTP/1.1\r\nHost: x\r\nRange: bytes=7-300006\r\n\r\n",
        form.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let info = read_reply(&mut stream, &mut buf, false).await;
    assert_eq!(info.status, 200, "{}", info.head);
    let listed: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
    assert_eq!(listed[0]["path"], "model.safetensors");
    let range = read_reply(&mut stream, &mut buf, false).await;
    assert_eq!(range.status, 206);
    assert!(range.body == f.model[7..300_007]);
    f.mirror.stop().await.unwrap();
}
