//! `larder gc`: remove blobs no held revision refers to, stale parts and quarantined files.
//!
//! Runs only when no pull or conversion holds the store's gc guard, so a blob published by a
//! pull that has not yet recorded its snapshot is never mistaken for garbage.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::Larder;
use crate::failure::Hint;
use crate::registry::{RegistryError, Sha256};
use crate::store::StoreError;

/// Parts untouched for this long are stale (an abandoned pull).
pub const STALE_PART_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Files in `blobs/` unknown to the registry are removed only when older than this.
const ORPHAN_GRACE: Duration = Duration::from_secs(3600);

/// What to collect.
#[derive(Debug, Clone, Copy)]
pub struct GcOptions {
    /// Report only.
    pub dry_run: bool,
    /// Also remove parts younger than [`STALE_PART_AGE`] (gives up their resumption).
    pub all_parts: bool,
}

/// One thing removed (or that would be).
#[derive(Debug, Clone, Serialize)]
pub struct Collected {
    /// `blob`, `orphan`, `part` or `quarantine`.
    pub kind: &'static str,
    /// Path.
    pub path: PathBuf,
    /// Bytes.
    pub bytes: u64,
}

/// The gc report.
#[derive(Debug, Clone, Serialize)]
pub struct GcReport {
    /// Whether anything was actually removed.
    pub dry_run: bool,
    /// What was (or would be) removed.
    pub collected: Vec<Collected>,
    /// Bytes freed (or that would be).
    pub freed: u64,
}

/// Why gc could not run.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// A pull or conversion is running.
    #[error("a pull or conversion is using the store")]
    Busy,
    /// A quota was asked of a node whose blobs live in a shared store.
    #[error(
        "a store quota limits one node's own store, but this node's blobs live in a shared \
         store that every node uses and that a node never deletes from"
    )]
    SharedQuota,
    /// Registry failure.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Hint for GcError {
    fn hint(&self) -> Option<String> {
        match self {
            GcError::Busy => Some("run `larder gc` again when it is done".to_owned()),
            GcError::SharedQuota => Some(
                "bound the bucket with its own limits or lifecycle rules instead, and drop \
                 --quota / [daemon] quota here"
                    .to_owned(),
            ),
            GcError::Registry(e) => e.hint(),
            GcError::Store(e) => e.hint(),
        }
    }
}

fn age(path: &Path) -> Duration {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or_default()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Collect garbage.
pub async fn gc(larder: &Larder, options: GcOptions) -> Result<GcReport, GcError> {
    let Some(_lock) = larder.local.try_gc_lock()? else {
        return Err(GcError::Busy);
    };
    collect(larder, options).await
}

/// Collect garbage; the caller holds the store's exclusive gc lock.
pub(crate) async fn collect(larder: &Larder, options: GcOptions) -> Result<GcReport, GcError> {
    let mut collected = Vec::new();

    // Blobs the registry knows but no revision uses.
    for blob in larder.registry.unreferenced_blobs().await? {
        let path = larder.local.blob_path(&blob.sha256);
        collected.push(Collected {
            kind: "blob",
            bytes: size(&path),
            path,
        });
        if !options.dry_run {
            larder.registry.remove_blob(&blob.sha256).await?;
        }
    }
    // Files in blobs/ the registry does not know (a crash between rename and row).
    for shard in entries(&larder.local.blobs_dir()) {
        for path in entries(&shard) {
            let name = path.file_name().and_then(|n| n.to_str());
            let known = match name.and_then(|n| Sha256::parse(n).ok()) {
                Some(sha256) => larder.registry.blob(&sha256).await.ok().flatten().is_some(),
                None => false,
            };
            if !known && age(&path) > ORPHAN_GRACE {
                collected.push(Collected {
                    kind: "orphan",
                    bytes: size(&path),
                    path,
                });
            }
        }
    }
    // Parts of abandoned pulls.
    for path in entries(&larder.local.tmp_dir()) {
        if options.all_parts || age(&path) > STALE_PART_AGE {
            collected.push(Collected {
                kind: "part",
                bytes: size(&path),
                path,
            });
        }
    }
    for path in entries(&larder.local.quarantine_dir()) {
        collected.push(Collected {
            kind: "quarantine",
            bytes: size(&path),
            path,
        });
    }
    if !options.dry_run {
        for item in &collected {
            let removed = if item.path.is_dir() {
                std::fs::remove_dir_all(&item.path)
            } else {
                std::fs::remove_file(&item.path)
            };
            match removed {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io("could not remove", &item.path, e).into()),
            }
        }
    }
    let freed = collected.iter().map(|c| c.bytes).sum();
    Ok(GcReport {
        dry_run: options.dry_run,
        collected,
        freed,
    })
}
