//! Content hashing exactly as the Hub does it (hub-protocol.md §4).
//!
//! Regular files are identified by their git blob oid; LFS files by the
//! SHA-256 of their content, and in the git tree by the oid of their LFS
//! pointer text. Directory oids are real git tree hashes.

use sha1::{Digest, Sha1};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// The git blob oid of `data`: `sha1("blob {len}\0" + data)`.
pub fn git_hash(data: &[u8]) -> String {
    let mut hasher = Sha1::new();
    hasher.update(format!("blob {}\0", data.len()).as_bytes());
    hasher.update(data);
    hex::encode(hasher.finalize())
}

/// The SHA-256 of `data` as lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The LFS pointer text for content with the given SHA-256 and size.
pub fn lfs_pointer(sha256: &str, size: u64) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n")
}

/// `pointerSize`: the length of the LFS pointer, 125 + digits of `size`.
pub fn pointer_size(size: u64) -> u64 {
    125 + size.to_string().len() as u64
}

/// The git oid of the LFS pointer, which the Hub reports as `blobId`/`oid` for LFS files.
pub fn lfs_pointer_oid(sha256: &str, size: u64) -> String {
    git_hash(lfs_pointer(sha256, size).as_bytes())
}

/// What streaming hashing of a file on disk produces.
pub(crate) struct DiskDigest {
    pub(crate) size: u64,
    pub(crate) git_oid: Option<String>,
    pub(crate) sha256: Option<String>,
}

/// Hashes a file in 1 MiB chunks so memory stays flat for huge files.
///
/// Only the digests that are asked for are computed: SHA-256 for LFS files,
/// the git blob oid for regular ones.
pub(crate) fn hash_file(
    path: &Path,
    want_git: bool,
    want_sha256: bool,
) -> std::io::Result<DiskDigest> {
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut git = want_git.then(|| {
        let mut hasher = Sha1::new();
        hasher.update(format!("blob {size}\0").as_bytes());
        hasher
    });
    let mut sha = want_sha256.then(Sha256::new);
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        total += read as u64;
        if let Some(hasher) = git.as_mut() {
            hasher.update(&buffer[..read]);
        }
        if let Some(hasher) = sha.as_mut() {
            hasher.update(&buffer[..read]);
        }
    }
    if total != size {
        return Err(std::io::Error::other(format!(
            "{} changed size while being hashed",
            path.display()
        )));
    }
    Ok(DiskDigest {
        size,
        git_oid: git.map(|hasher| hex::encode(hasher.finalize())),
        sha256: sha.map(|hasher| hex::encode(hasher.finalize())),
    })
}

/// Computes git tree oids for every directory of a file tree.
///
/// `files` maps full paths to blob oids. The result maps each directory path
/// (`""` for the root) to its tree oid.
pub(crate) fn tree_oids<'a>(
    files: impl Iterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<String, String> {
    #[derive(Default)]
    struct Dir {
        files: BTreeMap<String, String>,
        dirs: BTreeMap<String, Dir>,
    }
    fn insert(dir: &mut Dir, path: &str, oid: &str) {
        match path.split_once('/') {
            Some((head, rest)) => insert(dir.dirs.entry(head.to_owned()).or_default(), rest, oid),
            None => {
                dir.files.insert(path.to_owned(), oid.to_owned());
            }
        }
    }
    fn hash(dir: &Dir, path: &str, out: &mut BTreeMap<String, String>) -> String {
        // git orders entries by name, comparing directories as if they had a trailing '/'.
        let mut entries: Vec<(String, &'static str, String)> = Vec::new();
        for (name, oid) in &dir.files {
            entries.push((name.clone(), "100644", oid.clone()));
        }
        for (name, sub) in &dir.dirs {
            let sub_path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}/{name}")
            };
            let oid = hash(sub, &sub_path, out);
            entries.push((format!("{name}/"), "40000", oid));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut body = Vec::new();
        for (name, mode, oid) in entries {
            let name = name.strip_suffix('/').unwrap_or(&name);
            body.extend_from_slice(format!("{mode} {name}\0").as_bytes());
            body.extend_from_slice(&hex::decode(&oid).unwrap_or_default());
        }
        let mut hasher = Sha1::new();
        hasher.update(format!("tree {}\0", body.len()).as_bytes());
        hasher.update(&body);
        let oid = hex::encode(hasher.finalize());
        out.insert(path.to_owned(), oid.clone());
        oid
    }
    let mut root = Dir::default();
    for (path, oid) in files {
        insert(&mut root, path, oid);
    }
    let mut out = BTreeMap::new();
    hash(&root, "", &mut out);
    out
}

/// A git commit object hash, so commit shas look and behave like real ones.
pub(crate) fn commit_oid(
    tree: &str,
    parent: Option<&str>,
    timestamp: i64,
    message: &str,
) -> String {
    let mut body = format!("tree {tree}\n");
    if let Some(parent) = parent {
        body.push_str(&format!("parent {parent}\n"));
    }
    body.push_str(&format!(
        "author Hub Stand-in <standin@example.invalid> {timestamp} +0000\n\
         committer Hub Stand-in <standin@example.invalid> {timestamp} +0000\n\n{message}\n"
    ));
    let mut hasher = Sha1::new();
    hasher.update(format!("commit {}\0", body.len()).as_bytes());
    hasher.update(body.as_bytes());
    hex::encode(hasher.finalize())
}

/// Formats unix seconds as the Hub does: `2022-11-30T19:54:16.000Z`.
pub(crate) fn iso_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let day_of_year = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}
