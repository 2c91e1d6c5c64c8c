//! The local filesystem backend: `blobs/sha256/ab/<hex>`, `tmp/` for parts, `quarantine/`,
//! `manifests/` for revision manifests.

use std::fs::{self, File};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use super::{BlobStore, ByteStream, ListedBlob};
use crate::failure::{Classify, FailureKind, Hint};
use crate::registry::Sha256;

/// Copies `len` bytes of `source` at `from` into `target` at `to`: in the kernel with
/// `copy_file_range` (no trip through user space; a reflink on filesystems that share
/// extents), else by reading and writing.
pub fn copy_range(
    source: &File,
    from: u64,
    target: &File,
    to: u64,
    len: u64,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    let (mut from_at, mut to_at, mut left) = (from as i64, to as i64, len);
    while left > 0 {
        let want = left.min(1 << 30) as usize;
        // SAFETY: both descriptors are open for the whole call and the offsets are owned
        // locals the kernel updates.
        let copied = unsafe {
            libc::copy_file_range(
                source.as_raw_fd(),
                &mut from_at,
                target.as_raw_fd(),
                &mut to_at,
                want,
                0,
            )
        };
        if copied > 0 {
            left -= copied as u64;
            continue;
        }
        if copied == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the held blob ended early",
            ));
        }
        let error = std::io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => continue,
            // Not supported across these files (another filesystem, old kernel): copy by hand.
            Some(libc::EXDEV | libc::ENOSYS | libc::EOPNOTSUPP | libc::EINVAL) => break,
            _ => return Err(error),
        }
    }
    let mut buffer = vec![0u8; left.min(8 << 20) as usize];
    while left > 0 {
        let n = left.min(buffer.len() as u64) as usize;
        source.read_exact_at(&mut buffer[..n], from_at as u64)?;
        target.write_all_at(&buffer[..n], to_at as u64)?;
        (from_at, to_at, left) = (from_at + n as i64, to_at + n as i64, left - n as u64);
    }
    Ok(())
}

/// A failed store operation, with the path it concerned.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The filesystem is full.
    #[error("no space left on the device holding {path}")]
    DiskFull {
        /// Where the write failed.
        path: PathBuf,
    },
    /// Any other I/O failure.
    #[error("{action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The blob is not in the store.
    #[error("blob {0} is not in the store")]
    Missing(Sha256),
    /// Content fetched from the store does not match its name.
    #[error("blob {sha256} in the store has content with sha256 {actual}")]
    Corrupt {
        /// The blob's name.
        sha256: Sha256,
        /// What the content hashes to (hex; kept as text so the error stays small).
        actual: String,
    },
    /// A metadata key that is not a clean relative path.
    #[error("`{0}` is not a valid store key")]
    BadKey(String),
    /// An object-storage request failed.
    #[error("{action} {key} in the object store")]
    Remote {
        /// What was being done.
        action: &'static str,
        /// The object key.
        key: String,
        /// The underlying error.
        #[source]
        source: Box<object_store::Error>,
    },
}

impl Classify for StoreError {
    fn failure_kind(&self) -> FailureKind {
        match self {
            StoreError::DiskFull { .. } => FailureKind::DiskFull,
            _ => FailureKind::Other,
        }
    }
}

impl Hint for StoreError {
    fn hint(&self) -> Option<String> {
        match self {
            StoreError::DiskFull { .. } => Some(
                "free some space (`larder gc` removes what no held revision needs), then run it \
                 again: a pull resumes the parts it had written"
                    .to_owned(),
            ),
            StoreError::Corrupt { .. } => Some(
                "`larder verify` quarantines every damaged blob; the next pull fetches them again"
                    .to_owned(),
            ),
            _ => None,
        }
    }
}

impl StoreError {
    /// Wrap an I/O error, recognising a full disk.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        if source.kind() == io::ErrorKind::StorageFull || source.raw_os_error() == Some(28) {
            StoreError::DiskFull { path }
        } else {
            StoreError::Io {
                action,
                path,
                source,
            }
        }
    }
}

/// The store under a Larder home directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    /// A `file://` store other nodes may share (manifests are written), not the home.
    shared: bool,
}

impl LocalStore {
    /// Open (and create the directories of) the store under `home`.
    pub fn open(home: &Path) -> Result<Self, StoreError> {
        let store = LocalStore {
            root: home.to_path_buf(),
            shared: false,
        };
        for dir in [store.blobs_dir(), store.tmp_dir(), store.quarantine_dir()] {
            fs::create_dir_all(&dir).map_err(|e| StoreError::io("could not create", &dir, e))?;
        }
        Ok(store)
    }

    /// `blobs/sha256`.
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    /// Where parts and their state files live.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Where blobs that failed verification are moved.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    /// The path of a blob (whether or not it exists).
    pub fn blob_path(&self, sha256: &Sha256) -> PathBuf {
        self.blobs_dir().join(&sha256[..2]).join(sha256.as_str())
    }

    /// Whether the blob is present.
    pub fn has(&self, sha256: &Sha256) -> bool {
        self.blob_path(sha256).is_file()
    }

    /// Size of a present blob.
    pub fn size(&self, sha256: &Sha256) -> Option<u64> {
        let path = self.blob_path(sha256);
        fs::metadata(path).ok().map(|m| m.len())
    }

    /// Publish a verified part as blob `sha256`: make it read-only, sync its bytes to disk and
    /// rename it into place. A blob already at the destination is replaced, not trusted: it may
    /// be one a disk error or a hand truncated (a pull re-fetches a blob whose size is wrong),
    /// while the part was verified just now. Readers holding the old file keep reading the old
    /// inode; nobody sees a half-written blob. The directory is synced
    /// afterwards so the rename survives a crash. Syncing here, whoever wrote the part, keeps
    /// a crash from leaving a named blob with missing bytes (it costs nothing for a part its
    /// writer already synced).
    pub fn publish(&self, part: &Path, sha256: &Sha256) -> Result<PathBuf, StoreError> {
        seal(part)?;
        let dest = self.place(part, sha256)?;
        sync_dir(dest.parent().unwrap_or(&self.root))?;
        Ok(dest)
    }

    /// Publish a group of verified parts, with the same guarantees as [`LocalStore::publish`]
    /// for each, but syncing them together: every part is made read-only and synced (on
    /// several threads at once, which the filesystem's journal commits together), then all are
    /// renamed into place, then each directory they landed in is synced once. A crash before
    /// the directory syncs may lose some renames (the parts stay in `tmp/`, whole and
    /// verified, and are re-hashed by the next pull) but never leaves a named blob with
    /// missing bytes, because every part was synced before any rename.
    pub fn publish_group(&self, parts: &[(PathBuf, Sha256)]) -> Result<(), StoreError> {
        for (_, sha256) in parts {
            self.blob_path(sha256);
        }
        let threads = parts.len().clamp(1, GROUP_SYNC_THREADS);
        let per_thread = parts.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let workers: Vec<_> = parts
                .chunks(per_thread)
                .map(|chunk| scope.spawn(move || chunk.iter().try_for_each(|(p, _)| seal(p))))
                .collect();
            workers
                .into_iter()
                .try_for_each(|worker| worker.join().unwrap_or_else(|_| Err(sync_panicked())))
        })?;
        let mut dirs = std::collections::BTreeSet::new();
        for (part, sha256) in parts {
            let dest = self.place(part, sha256)?;
            dirs.insert(dest.parent().unwrap_or(&self.root).to_path_buf());
        }
        let dirs: Vec<PathBuf> = dirs.into_iter().collect();
        let per_thread = dirs.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let workers: Vec<_> = dirs
                .chunks(per_thread)
                .map(|chunk| scope.spawn(move || chunk.iter().try_for_each(|d| sync_dir(d))))
                .collect();
            workers
                .into_iter()
                .try_for_each(|worker| worker.join().unwrap_or_else(|_| Err(sync_panicked())))
        })
    }

    /// Rename a sealed part to blob `sha256` (not yet durable: sync the directory after).
    fn place(&self, part: &Path, sha256: &Sha256) -> Result<PathBuf, StoreError> {
        let dest = self.blob_path(sha256);
        let parent = dest.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&parent).map_err(|e| StoreError::io("could not create", &parent, e))?;
        match fs::rename(part, &dest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                // A store directory on another filesystem than the home's parts: copy next to
                // the destination first, so the rename stays the only publication.
                let staged = self.tmp_dir().join(format!("{sha256}.publish"));
                fs::copy(part, &staged)
                    .and_then(|_| File::open(&staged)?.sync_all())
                    .map_err(|e| StoreError::io("could not copy", &staged, e))?;
                fs::rename(&staged, &dest)
                    .map_err(|e| StoreError::io("could not publish", &dest, e))?;
                let _ = fs::remove_file(part);
            }
            Err(e) => return Err(StoreError::io("could not publish", &dest, e)),
        }
        Ok(dest)
    }

    /// Move a blob aside into `quarantine/` (it failed verification). Returns where it went.
    pub fn quarantine(&self, sha256: &Sha256) -> Result<PathBuf, StoreError> {
        let src = self.blob_path(sha256);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let dest = self.quarantine_dir().join(format!("{sha256}.{stamp}"));
        fs::rename(&src, &dest).map_err(|e| StoreError::io("could not quarantine", &src, e))?;
        Ok(dest)
    }

    /// Hold this while blobs are published but not yet referenced by a recorded snapshot
    /// (a pull, a conversion): `larder gc` waits for every such holder before it removes
    /// unreferenced blobs. Waits while a gc runs.
    pub async fn gc_guard(&self) -> Result<File, StoreError> {
        let path = self.root.join("gc.lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io("could not open", &path, e))?;
        loop {
            match file.try_lock_shared() {
                Ok(()) => return Ok(file),
                Err(fs::TryLockError::WouldBlock) => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(fs::TryLockError::Error(e)) => {
                    return Err(StoreError::io("could not lock", &path, e));
                }
            }
        }
    }

    /// The exclusive side of [`LocalStore::gc_guard`]: `None` while a pull or conversion runs.
    pub fn try_gc_lock(&self) -> Result<Option<File>, StoreError> {
        let path = self.root.join("gc.lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io("could not open", &path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(StoreError::io("could not lock", &path, e)),
        }
    }

    /// A store rooted at `dir` (a `file://` store URL), for a node whose home is `home`.
    pub fn open_shared(dir: &Path, home: &LocalStore) -> Result<Self, StoreError> {
        let _ = home;
        let mut store = LocalStore::open(dir)?;
        store.shared = true;
        Ok(store)
    }

    /// Where a metadata key lives.
    fn meta_path(&self, key: &str) -> Result<PathBuf, StoreError> {
        let clean = !key.is_empty()
            && !key.starts_with('/')
            && key
                .split('/')
                .all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains('\\'));
        let first = key.split('/').next().unwrap_or_default();
        if !clean || !matches!(first, "manifests" | "refs") {
            return Err(StoreError::BadKey(key.to_owned()));
        }
        Ok(self.root.join(key))
    }

    /// Open a blob for reading.
    pub fn open_blob(&self, sha256: &Sha256) -> Result<File, StoreError> {
        let path = self.blob_path(sha256);
        File::open(&path).map_err(|e| StoreError::io("could not open", &path, e))
    }
}

fn list_blobs(dir: &Path) -> Result<Vec<ListedBlob>, StoreError> {
    let mut found = Vec::new();
    let shards = match fs::read_dir(dir) {
        Ok(shards) => shards,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(StoreError::io("could not list", dir, e)),
    };
    for shard in shards.flatten() {
        let Ok(entries) = fs::read_dir(shard.path()) else {
            continue;
        };
        for entry in entries.flatten() {
            let Some(sha256) = entry
                .file_name()
                .to_str()
                .and_then(|n| Sha256::parse(n).ok())
            else {
                continue;
            };
            if let Ok(meta) = entry.metadata() {
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs() as i64);
                found.push(ListedBlob {
                    sha256,
                    size: meta.len(),
                    modified,
                });
            }
        }
    }
    Ok(found)
}

fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io("could not list", dir, e)),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            list_files(root, &path, out)?;
        } else if let Ok(relative) = path.strip_prefix(root)
            && let Some(key) = relative.to_str()
            && !key.ends_with(".tmp")
        {
            out.push(key.to_owned());
        }
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|join| {
        Err(StoreError::Io {
            action: "store task failed:",
            path: PathBuf::new(),
            source: io::Error::other(join.to_string()),
        })
    })
}

impl BlobStore for LocalStore {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn is_shared(&self) -> bool {
        self.shared
    }

    fn local_path(&self, sha256: &Sha256) -> Option<PathBuf> {
        Some(self.blob_path(sha256)).filter(|p| p.is_file())
    }

    fn stat<'a>(&'a self, sha256: &'a Sha256) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        let result = Ok(self.size(sha256));
        futures::future::ready(result).boxed()
    }

    fn publish<'a>(
        &'a self,
        part: &'a Path,
        sha256: &'a Sha256,
    ) -> BoxFuture<'a, Result<Option<PathBuf>, StoreError>> {
        let (store, part, sha) = (self.clone(), part.to_path_buf(), sha256.to_owned());
        blocking(move || store.publish(&part, &sha).map(Some)).boxed()
    }

    fn publish_group<'a>(
        &'a self,
        parts: &'a [(PathBuf, Sha256)],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let (store, parts) = (self.clone(), parts.to_vec());
        blocking(move || store.publish_group(&parts)).boxed()
    }

    fn read<'a>(
        &'a self,
        sha256: &'a Sha256,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<ByteStream, StoreError>> {
        async move {
            use tokio::io::{AsyncReadExt, AsyncSeekExt};
            let path = self.blob_path(sha256);
            let mut file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| StoreError::io("could not open", &path, e))?;
            file.seek(io::SeekFrom::Start(range.start))
                .await
                .map_err(|e| StoreError::io("could not seek in", &path, e))?;
            let len = range.end.saturating_sub(range.start);
            let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), 256 << 10)
                .map(move |r| r.map_err(|e| StoreError::io("could not read", &path, e)));
            Ok(stream.boxed())
        }
        .boxed()
    }

    fn fetch_local<'a>(&'a self, sha256: &'a Sha256) -> BoxFuture<'a, Result<PathBuf, StoreError>> {
        let path = self.blob_path(sha256);
        let result = if path.is_file() {
            Ok(path)
        } else {
            Err(StoreError::Missing(*sha256))
        };
        futures::future::ready(result).boxed()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<ListedBlob>, StoreError>> {
        let dir = self.blobs_dir();
        blocking(move || list_blobs(&dir)).boxed()
    }

    fn quarantine<'a>(&'a self, sha256: &'a Sha256) -> BoxFuture<'a, Result<String, StoreError>> {
        let result = LocalStore::quarantine(self, sha256).map(|p| p.display().to_string());
        futures::future::ready(result).boxed()
    }

    fn remove<'a>(&'a self, sha256: &'a Sha256) -> BoxFuture<'a, Result<(), StoreError>> {
        let path = self.blob_path(sha256);
        let result = match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("could not remove", &path, e)),
        };
        futures::future::ready(result).boxed()
    }

    fn presign<'a>(
        &'a self,
        _sha256: &'a Sha256,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<url::Url>, StoreError>> {
        futures::future::ready(Ok(None)).boxed()
    }

    fn put_meta<'a>(&'a self, key: &'a str, bytes: Bytes) -> BoxFuture<'a, Result<(), StoreError>> {
        let path = self.meta_path(key);
        blocking(move || {
            let path = path?;
            let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
            fs::create_dir_all(&parent)
                .map_err(|e| StoreError::io("could not create", &parent, e))?;
            let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
            fs::write(&tmp, &bytes).map_err(|e| StoreError::io("could not write", &tmp, e))?;
            fs::rename(&tmp, &path).map_err(|e| StoreError::io("could not write", &path, e))
        })
        .boxed()
    }

    fn get_meta<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, StoreError>> {
        let path = self.meta_path(key);
        blocking(move || {
            let path = path?;
            match fs::read(&path) {
                Ok(bytes) => Ok(Some(Bytes::from(bytes))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(StoreError::io("could not read", &path, e)),
            }
        })
        .boxed()
    }

    fn list_meta<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        let dir = self.meta_path(prefix);
        let root = self.root.clone();
        blocking(move || {
            let mut keys = Vec::new();
            list_files(&root, &dir?, &mut keys)?;
            keys.sort();
            Ok(keys)
        })
        .boxed()
    }
}

/// Threads syncing the parts of one group at once.
const GROUP_SYNC_THREADS: usize = 16;

/// Make a verified part read-only and sync its bytes (whoever wrote it: this keeps a crash
/// from leaving a named blob with missing bytes, and costs nothing for a part already synced).
fn seal(part: &Path) -> Result<(), StoreError> {
    let mut perms = fs::metadata(part)
        .map_err(|e| StoreError::io("could not read", part, e))?
        .permissions();
    perms.set_readonly(true);
    fs::set_permissions(part, perms).map_err(|e| StoreError::io("could not chmod", part, e))?;
    File::open(part)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::io("could not sync", part, e))
}

fn sync_panicked() -> StoreError {
    StoreError::Io {
        action: "could not sync",
        path: PathBuf::new(),
        source: io::Error::other("a syncing thread panicked"),
    }
}

/// fsync a directory so that renames into it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("could not sync", dir, e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn copy_range_copies_exactly_the_range() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("blob"), &data).unwrap();
        let source = File::open(dir.path().join("blob")).unwrap();
        let target = File::create(dir.path().join("part")).unwrap();
        target.set_len(2_000_000).unwrap();
        copy_range(&source, 1_000_001, &target, 500_000, 1_200_000).unwrap();
        let written = std::fs::read(dir.path().join("part")).unwrap();
        assert_eq!(written.len(), 2_000_000);
        assert_eq!(&written[500_000..1_700_000], &data[1_000_001..2_200_001]);
        assert!(written[..500_000].iter().all(|&b| b == 0));
        assert!(written[1_700_000..].iter().all(|&b| b == 0));
        // A source shorter than the range is an error, not a silent short copy.
        assert!(copy_range(&source, 2_500_000, &target, 0, 1_000_000).is_err());
    }

    use super::*;

    #[test]
    fn publish_group_places_every_part() {
        let home = tempfile::tempdir().unwrap();
        let store = LocalStore::open(home.path()).unwrap();
        let parts: Vec<(PathBuf, Sha256)> = (0..40u8)
            .map(|i| {
                let part = store.tmp_dir().join(format!("{i}.part"));
                fs::write(&part, [i; 3]).unwrap();
                (
                    part,
                    Sha256::parse(&format!("{:02x}", i).repeat(32)).unwrap(),
                )
            })
            .collect();
        store.publish_group(&parts).unwrap();
        for (i, (part, sha)) in parts.iter().enumerate() {
            assert!(!part.exists());
            assert_eq!(fs::read(store.blob_path(sha)).unwrap(), [i as u8; 3]);
        }
    }

    #[test]
    fn publish_is_atomic_and_idempotent() {
        let home = tempfile::tempdir().unwrap();
        let store = LocalStore::open(home.path()).unwrap();
        let sha = Sha256::parse(&"ab".repeat(32)).unwrap();
        assert!(!store.has(&sha));
        let part = store.tmp_dir().join("x.part");
        fs::write(&part, b"hello").unwrap();
        let dest = store.publish(&part, &sha).unwrap();
        assert!(store.has(&sha));
        assert!(!part.exists());
        assert!(fs::metadata(&dest).unwrap().permissions().readonly());
        // A second writer of the same content finds it there.
        fs::write(&part, b"hello").unwrap();
        store.publish(&part, &sha).unwrap();
        assert!(!part.exists());
        assert_eq!(fs::read(&dest).unwrap(), b"hello");
        store.quarantine(&sha).unwrap();
        assert!(!store.has(&sha));
    }

    #[tokio::test]
    async fn trait_reads_ranges_lists_and_keeps_metadata() {
        let home = tempfile::tempdir().unwrap();
        let store = LocalStore::open(home.path()).unwrap();
        let sha = Sha256::parse(&"cd".repeat(32)).unwrap();
        let part = store.tmp_dir().join("y.part");
        fs::write(&part, b"0123456789").unwrap();
        let dyn_store: &dyn BlobStore = &store;
        assert_eq!(dyn_store.stat(&sha).await.unwrap(), None);
        dyn_store.publish(&part, &sha).await.unwrap();
        assert_eq!(dyn_store.stat(&sha).await.unwrap(), Some(10));
        let mut body = Vec::new();
        let mut stream = dyn_store.read(&sha, 2..5).await.unwrap();
        while let Some(chunk) = stream.next().await {
            body.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(body, b"234");
        let listed = dyn_store.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].sha256.as_str(), listed[0].size),
            (sha.as_str(), 10)
        );
        assert!(!dyn_store.is_shared());

        let key = "manifests/model/acme/x/abc.json";
        dyn_store
            .put_meta(key, Bytes::from_static(b"{}"))
            .await
            .unwrap();
        assert_eq!(dyn_store.get_meta(key).await.unwrap().unwrap(), &b"{}"[..]);
        assert_eq!(dyn_store.list_meta("manifests").await.unwrap(), vec![key]);
        assert!(
            dyn_store
                .get_meta("manifests/none.json")
                .await
                .unwrap()
                .is_none()
        );
        for bad in [
            "../x",
            "manifests/../../x",
            "/etc/passwd",
            "blobs/sha256/x",
            "refs//x",
        ] {
            assert!(
                dyn_store.put_meta(bad, Bytes::new()).await.is_err(),
                "{bad}"
            );
        }
    }
}
