//! Integration tests of `larder-registry` against real SQLite databases in temp directories.

mod concurrency;
mod holding;
mod jobs;
mod licences;
mod migrations;
mod refs;
mod retention;
mod snapshots;

use larder_registry::{
    BlobRecord, CommitId, FileRecord, LicenceFields, Registry, RepoKind, Sha256, SnapshotRecord,
};
use tempfile::TempDir;

/// A distinct 40-hex git sha per `n`.
fn sha(n: u32) -> CommitId {
    CommitId::parse(&format!("{:040x}", 0xc000_0000_u64 + u64::from(n))).unwrap()
}

/// A distinct 40-hex git blob id per `n` (never equal to a [`sha`]).
fn oid(n: u32) -> String {
    format!("{:040x}", 0xb000_0000_u64 + u64::from(n))
}

/// A distinct 64-hex sha256 per `n`.
fn digest(n: u32) -> Sha256 {
    Sha256::parse(&format!("{:064x}", 0xd000_0000_u64 + u64::from(n))).unwrap()
}

fn open() -> (TempDir, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(&dir.path().join("registry.db")).unwrap();
    (dir, registry)
}

fn lfs(path: &str, size: u64, n: u32) -> FileRecord {
    FileRecord {
        path: path.to_owned(),
        size,
        git_oid: oid(n),
        sha256: Some(digest(n)),
        lfs: true,
    }
}

fn regular(path: &str, size: u64, n: u32, hashed: bool) -> FileRecord {
    FileRecord {
        path: path.to_owned(),
        size,
        git_oid: oid(n),
        sha256: hashed.then(|| digest(n)),
        lfs: false,
    }
}

fn snapshot(
    name: &str,
    commit: &CommitId,
    refs: &[&str],
    seen_at: i64,
    files: Vec<FileRecord>,
) -> SnapshotRecord {
    SnapshotRecord {
        kind: RepoKind::Model,
        name: name.to_owned(),
        upstream: "https://huggingface.co".to_owned(),
        gated: None,
        private: false,
        commit: *commit,
        card_json: None,
        refs: refs.iter().map(|r| (*r).to_owned()).collect(),
        seen_at,
        files,
        licence: LicenceFields::default(),
    }
}

fn blob(n: u32, size: u64) -> BlobRecord {
    BlobRecord {
        sha256: digest(n),
        size,
        location: format!("blobs/sha256/{}", digest(n)),
        stored_at: 1_000,
        verified_at: None,
    }
}
