//! The local filesystem backend: `blobs/sha256/ab/<hex>`, `tmp/` for parts, `quarantine/`.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// A failed store operation, with the path it concerned.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The filesystem is full.
    #[error(
        "no space left on the device holding {path}: free some space (try `larder gc`), then pull again to resume"
    )]
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
    /// A digest that is not 64 lowercase hex characters.
    #[error("`{0}` is not a sha256 digest")]
    BadDigest(String),
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
}

impl LocalStore {
    /// Open (and create the directories of) the store under `home`.
    pub fn open(home: &Path) -> Result<Self, StoreError> {
        let store = LocalStore {
            root: home.to_path_buf(),
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
    pub fn blob_path(&self, sha256: &str) -> Result<PathBuf, StoreError> {
        if !crate::hub::is_sha256_hex(sha256) {
            return Err(StoreError::BadDigest(sha256.to_owned()));
        }
        Ok(self.blobs_dir().join(&sha256[..2]).join(sha256))
    }

    /// Whether the blob is present.
    pub fn has(&self, sha256: &str) -> bool {
        self.blob_path(sha256).is_ok_and(|p| p.is_file())
    }

    /// Size of a present blob.
    pub fn size(&self, sha256: &str) -> Option<u64> {
        let path = self.blob_path(sha256).ok()?;
        fs::metadata(path).ok().map(|m| m.len())
    }

    /// Publish a verified, synced part as blob `sha256`: make it read-only and rename it into
    /// place. If the blob already exists (another pull finished the same content first) the
    /// part is dropped and that counts as success. The directory is synced afterwards so the
    /// rename survives a crash.
    pub fn publish(&self, part: &Path, sha256: &str) -> Result<PathBuf, StoreError> {
        let dest = self.blob_path(sha256)?;
        let parent = dest.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&parent).map_err(|e| StoreError::io("could not create", &parent, e))?;
        let mut perms = fs::metadata(part)
            .map_err(|e| StoreError::io("could not read", part, e))?
            .permissions();
        perms.set_readonly(true);
        fs::set_permissions(part, perms).map_err(|e| StoreError::io("could not chmod", part, e))?;
        if dest.exists() {
            fs::remove_file(part).map_err(|e| StoreError::io("could not remove", part, e))?;
            return Ok(dest);
        }
        fs::rename(part, &dest).map_err(|e| StoreError::io("could not publish", &dest, e))?;
        sync_dir(&parent)?;
        Ok(dest)
    }

    /// Move a blob aside into `quarantine/` (it failed verification). Returns where it went.
    pub fn quarantine(&self, sha256: &str) -> Result<PathBuf, StoreError> {
        let src = self.blob_path(sha256)?;
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

    /// Open a blob for reading.
    pub fn open_blob(&self, sha256: &str) -> Result<File, StoreError> {
        let path = self.blob_path(sha256)?;
        File::open(&path).map_err(|e| StoreError::io("could not open", &path, e))
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
    use super::*;

    #[test]
    fn publish_is_atomic_and_idempotent() {
        let home = tempfile::tempdir().unwrap();
        let store = LocalStore::open(home.path()).unwrap();
        let sha = "ab".repeat(32);
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
        assert!(store.blob_path("../../etc/passwd").is_err());
        store.quarantine(&sha).unwrap();
        assert!(!store.has(&sha));
    }
}
