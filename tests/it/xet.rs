//! The store knows its chunks: Xet hashes equal `hf_xet`'s, a blob is chunked as it lands
//! (pull with `[pull] index_chunks`, pull-through, import) or later (a mirror's backfill,
//! `verify`), `show --json` prints the Xet hash, `verify` checks it and fills it in.

use std::path::Path;
use std::process::Command;

use hub_standin::{Hub, RepoKind};
use larder::fetch::digest::ContentHasher;
use larder::xet::{self, PipelinedXetHasher, XetHasher};

use crate::common::{World, content, python, sha256_hex};

/// `hf_xet.hash_files` over `paths`: the Xet hash of each.
fn hf_xet_hashes(paths: &[&Path]) -> Vec<String> {
    let script = "import hf_xet, json, sys\n\
                  print(json.dumps([i.hash for i in hf_xet.hash_files(sys.argv[1:])]))";
    let output = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(paths)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "hf_xet failed (is hf-xet in the venv? run .ci/setup): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a JSON list of hashes")
}

/// A small safetensors file: the 8-byte header length, the JSON header, the tensor bytes.
fn safetensors(seed: u64) -> Vec<u8> {
    let data = content(seed, 3 * 4096 * 4);
    let header = format!(
        r#"{{"__metadata__":{{"format":"pt"}},"w":{{"dtype":"F32","shape":[3,4096],"data_offsets":[0,{}]}}}}"#,
        data.len()
    );
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data);
    out
}

#[test]
fn xet_hash_equals_hf_xet() {
    let dir = tempfile::tempdir().unwrap();
    let mut zeros_and_noise = vec![0u8; 2 << 20];
    zeros_and_noise.extend_from_slice(&content(5, 300_000));
    zeros_and_noise.extend(std::iter::repeat_n(0u8, 1 << 20));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("one", vec![42]),
        ("8k-1", content(1, 8191)),
        ("8k", content(2, 8192)),
        ("8k+1", content(3, 8193)),
        ("64k", content(4, 64 << 10)),
        ("128k+1", content(6, (128 << 10) + 1)),
        ("random-6m", content(7, 6 << 20)),
        ("random-20m", content(8, 20 << 20)),
        ("zeros-3m", vec![0u8; 3 << 20]),
        ("zeros-and-noise", zeros_and_noise),
        ("model.safetensors", safetensors(9)),
    ];
    let mut paths = Vec::new();
    for (name, bytes) in &cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        paths.push(path);
    }
    let expected = hf_xet_hashes(&paths.iter().map(|p| p.as_path()).collect::<Vec<_>>());
    assert_eq!(expected.len(), cases.len());
    for (((name, bytes), path), expected) in cases.iter().zip(&paths).zip(&expected) {
        // Whole file, odd slices, the pipelined hasher, the store's hasher: all agree with hf_xet.
        let whole = xet::hash_file(path).unwrap();
        assert_eq!(&whole.hex(), expected, "{name}: hash_file");
        let mut sliced = XetHasher::new();
        for piece in bytes.chunks(77_777) {
            sliced.update(piece);
        }
        assert_eq!(sliced.finish(), whole, "{name}: 77777-byte slices");
        let mut pipelined = PipelinedXetHasher::new(bytes.len() as u64);
        for piece in bytes.chunks(1 << 20) {
            pipelined.update(piece);
        }
        assert_eq!(pipelined.finish(), whole, "{name}: pipelined");
        let mut content_hasher = ContentHasher::new(bytes.len() as u64, true).with_xet();
        content_hasher.update(bytes);
        let digests = content_hasher.finish();
        assert_eq!(digests.sha256, sha256_hex(bytes));
        assert_eq!(digests.xet.as_ref(), Some(&whole), "{name}: ContentHasher");
        // The file hash follows from the chunk list alone (how a Xet pull checks assembly).
        let from_chunks =
            xet::file_hash(whole.chunks.iter().map(|c| (c.hash, u64::from(c.length))));
        assert_eq!(&from_chunks.hex(), expected, "{name}: file_hash");
        assert_eq!(whole.size(), bytes.len() as u64, "{name}: size");
    }
    // A file of zeros is one repeated chunk; the random ones are cut near the 64 KiB target.
    let random = xet::hash_bytes(&cases[8].1);
    let mean = random.size() / random.chunks.len() as u64;
    assert!((40_000..100_000).contains(&mean), "mean chunk {mean}");
}

/// A world whose store holds `files`, pulled by `larder pull` over plain HTTP; with
/// `index_chunks`, under `[pull] index_chunks = true` (chunked as they land).
async fn pulled_world(files: &[(&str, Vec<u8>)], index_chunks: bool) -> World {
    let hub = Hub::new();
    let mut repo = hub.repo(RepoKind::Model, "acme/chunks");
    for (path, bytes) in files {
        repo = if path.ends_with(".safetensors") {
            repo.lfs_file(path, bytes.clone())
        } else {
            repo.file(path, bytes.clone())
        };
    }
    repo.commit("main");
    let world = World::start(hub).await;
    if index_chunks {
        std::fs::write(
            world.home.path().join("config.toml"),
            "[pull]\nindex_chunks = true\n",
        )
        .unwrap();
    }
    let pulled = world.cli().args(["pull", "acme/chunks"]).output().unwrap();
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    world
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pulled_blob_is_indexed() {
    let big = content(21, 20 << 20);
    let small = b"{\"architectures\":[\"LlamaForCausalLM\"]}\n".to_vec();
    let world = pulled_world(
        &[
            ("model.safetensors", big.clone()),
            ("config.json", small.clone()),
        ],
        true,
    )
    .await;
    let larder = world.larder();
    let dir = tempfile::tempdir().unwrap();
    let big_path = dir.path().join("big");
    std::fs::write(&big_path, &big).unwrap();
    let expected = hf_xet_hashes(&[&big_path]);

    for (bytes, hub_hash) in [(&big, Some(&expected[0])), (&small, None)] {
        let sha = sha256_hex(bytes);
        let record = larder
            .registry
            .xet(&sha)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no chunk index record for {sha}"));
        let computed = xet::hash_bytes(bytes);
        assert_eq!(record, xet::index::to_record(&sha, &computed));
        assert_eq!(record.size(), bytes.len() as u64);
        if let Some(hub_hash) = hub_hash {
            assert_eq!(&record.xet_hash, hub_hash);
        }
        assert_eq!(
            larder.registry.xet_hash(&sha).await.unwrap(),
            Some(computed.hex())
        );
    }

    // Chunk hash -> where the store holds it, confirmed by the bytes at that offset.
    let computed = xet::hash_bytes(&big);
    let wanted: Vec<[u8; 32]> = computed
        .chunks
        .iter()
        .skip(5)
        .take(3)
        .map(|c| xet::hash_to_bytes(&c.hash))
        .chain(std::iter::once([0xAB; 32]))
        .collect();
    let found = larder.registry.locate_chunks(wanted).await.unwrap();
    assert!(found[3].is_none(), "an unknown chunk is not found");
    for (i, location) in found[..3].iter().enumerate() {
        let location = location.as_ref().expect("held chunk found");
        assert_eq!(location.sha256, sha256_hex(&big));
        assert_eq!(location.index as usize, 5 + i);
        let (offset, chunk) = computed.with_offsets().nth(5 + i).unwrap();
        assert_eq!(location.offset, offset);
        assert_eq!(location.length, chunk.length);
        let bytes = &big[offset as usize..(offset + u64::from(chunk.length)) as usize];
        assert_eq!(xet::chunk_hash(bytes), chunk.hash);
    }

    // `show --json` prints the Xet hash beside sha256.
    let show = world
        .cli()
        .args(["show", "acme/chunks", "--json"])
        .output()
        .unwrap();
    assert!(show.status.success());
    let detail: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    for file in detail["files"].as_array().unwrap() {
        let bytes = if file["path"] == "config.json" {
            &small
        } else {
            &big
        };
        assert_eq!(file["sha256"], sha256_hex(bytes).as_str());
        assert_eq!(file["xet_hash"], xet::hash_bytes(bytes).hex());
    }
}

fn registry_db(world: &World) -> rusqlite::Connection {
    rusqlite::Connection::open(world.home.path().join("registry.db")).unwrap()
}

fn verify_json(world: &World) -> (Option<i32>, Vec<serde_json::Value>) {
    let output = world.cli().args(["verify", "--json"]).output().unwrap();
    let lines = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (output.status.code(), lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_the_xet_hash_and_fills_the_index() {
    let a = content(31, 3 << 20);
    let b = content(32, 1 << 20);
    let world = pulled_world(
        &[("a.safetensors", a.clone()), ("b.safetensors", b.clone())],
        false,
    )
    .await;
    let (code, lines) = verify_json(&world);
    assert_eq!(code, Some(0));
    for line in &lines {
        assert_eq!(line["status"], "ok");
        let bytes = if line["sha256"] == sha256_hex(&a).as_str() {
            &a
        } else {
            &b
        };
        assert_eq!(line["xet_hash"], xet::hash_bytes(bytes).hex());
    }

    // A recorded Xet hash that disagrees with the content is reported like a bad digest...
    let db = registry_db(&world);
    db.execute(
        "UPDATE xet_files SET xet_hash = ?1 WHERE sha256 = ?2",
        rusqlite::params!["0".repeat(63) + "1", sha256_hex(&a)],
    )
    .unwrap();
    // ...and so is a damaged chunk list (one byte of a chunk hash flipped, same length).
    let mut chunks: Vec<u8> = db
        .query_row(
            "SELECT chunks FROM xet_files WHERE sha256 = ?1",
            [sha256_hex(&b)],
            |row| row.get(0),
        )
        .unwrap();
    chunks[40] ^= 0xFF;
    db.execute(
        "UPDATE xet_files SET chunks = ?1 WHERE sha256 = ?2",
        rusqlite::params![chunks, sha256_hex(&b)],
    )
    .unwrap();
    let (code, lines) = verify_json(&world);
    assert_eq!(code, Some(3), "{lines:?}");
    assert_eq!(lines.len(), 2);
    for line in &lines {
        assert_eq!(line["status"], "xet_mismatch", "{line}");
    }
    let a_line = lines
        .iter()
        .find(|l| l["sha256"] == sha256_hex(&a).as_str())
        .unwrap();
    assert_eq!(a_line["recorded"], "0".repeat(63) + "1");
    assert_eq!(a_line["actual"], xet::hash_bytes(&a).hex());
    // The blobs are fine, so they stay; the index is rewritten and the next run is clean.
    assert!(world.blob_path(&sha256_hex(&a)).exists());
    assert_eq!(verify_json(&world).0, Some(0));

    // A home from before the chunk index: no rows. `verify` computes them.
    db.execute("DELETE FROM xet_chunks", []).unwrap();
    db.execute("DELETE FROM xet_files", []).unwrap();
    let larder = world.larder();
    assert_eq!(
        larder.registry.xet_hash(&sha256_hex(&a)).await.unwrap(),
        None
    );
    assert_eq!(
        larder.registry.blobs_without_xet().await.unwrap().len(),
        2,
        "both blobs lack a chunking"
    );
    assert_eq!(verify_json(&world).0, Some(0));
    assert_eq!(
        larder.registry.xet_hash(&sha256_hex(&a)).await.unwrap(),
        Some(xet::hash_bytes(&a).hex())
    );
    assert!(
        larder
            .registry
            .blobs_without_xet()
            .await
            .unwrap()
            .is_empty()
    );

    // On demand: the same for one blob, without `verify`.
    db.execute("DELETE FROM xet_files WHERE sha256 = ?1", [sha256_hex(&b)])
        .unwrap();
    let chunking = xet::index::chunking_of(&larder, &sha256_hex(&b))
        .await
        .unwrap();
    assert_eq!(chunking, xet::hash_bytes(&b));
    assert!(
        larder
            .registry
            .xet(&sha256_hex(&b))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_pull_leaves_the_chunking_to_the_mirror() {
    let big = content(22, 12 << 20);
    let world = pulled_world(
        &[
            ("model.safetensors", big.clone()),
            ("config.json", b"{}".to_vec()),
        ],
        false,
    )
    .await;
    let larder = world.larder();
    let sha = sha256_hex(&big);
    assert_eq!(
        larder.registry.xet(&sha).await.unwrap(),
        None,
        "pulled unchunked"
    );

    // A mirror over the store offers the file over plain HTTP until its backfill has indexed
    // it, then over Xet too.
    let mirror = larder::serve::start(
        world.larder(),
        larder::serve::ServeOptions::new("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .expect("mirror starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let record = loop {
        if let Some(record) = larder.registry.xet(&sha).await.unwrap() {
            break record;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the mirror never indexed the held blob"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let computed = xet::hash_bytes(&big);
    assert_eq!(record, xet::index::to_record(&sha, &computed));
    let head = reqwest::Client::new()
        .head(format!(
            "{}/acme/chunks/resolve/main/model.safetensors",
            mirror.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()
            .get("x-xet-hash")
            .and_then(|v| v.to_str().ok()),
        Some(computed.hex().as_str()),
        "the indexed file is advertised over Xet"
    );
    mirror.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_blob_leaves_the_chunk_index() {
    let a = content(51, 2 << 20);
    let world = pulled_world(&[("a.safetensors", a.clone())], true).await;
    let larder = world.larder();
    let first = xet::hash_bytes(&a).chunks[0].hash;
    let key = vec![xet::hash_to_bytes(&first)];
    assert!(larder.registry.locate_chunks(key.clone()).await.unwrap()[0].is_some());
    larder.registry.remove_blob(&sha256_hex(&a)).await.unwrap();
    assert!(larder.registry.locate_chunks(key).await.unwrap()[0].is_none());
    let db = registry_db(&world);
    let rows: i64 = db
        .query_row("SELECT count(*) FROM xet_chunks", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 0, "no lookup rows outlive their blob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_folder_is_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let weights = content(61, 5 << 20);
    std::fs::write(dir.path().join("model.safetensors"), &weights).unwrap();
    std::fs::write(dir.path().join("config.json"), b"{}").unwrap();
    let world = World::start(Hub::new()).await;
    let imported = world
        .cli()
        .arg("import")
        .arg(dir.path())
        .args(["--as", "lab/checkpoint"])
        .output()
        .unwrap();
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let larder = world.larder();
    for bytes in [&weights[..], b"{}"] {
        assert_eq!(
            larder.registry.xet_hash(&sha256_hex(bytes)).await.unwrap(),
            Some(xet::hash_bytes(bytes).hex())
        );
    }
}
