//! `larder verify`: re-hash blobs, quarantine the ones whose content no longer matches their
//! name, and drop their registry rows so the next pull fetches them again.
//!
//! The same read recomputes each blob's Xet chunking and checks it against the chunk index: a
//! blob stored before Larder kept one gets its record now; a record that disagrees with the
//! content (the index is damaged, the blob is not) is reported and rewritten.

use serde::Serialize;

use crate::Larder;
use crate::fetch::digest::{ContentHasher, Digests, digest_file_with_xet};
use crate::registry::{RegistryError, Sha256};
use crate::report::Reporter;
use crate::store::StoreError;
use crate::xet::XetChunking;

/// What happened to one blob.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum BlobStatus {
    /// Content matches.
    Ok,
    /// The file is gone.
    Missing,
    /// Content differs; moved to quarantine.
    Corrupt {
        /// Digest of what was found.
        actual: Sha256,
        /// Where it was moved.
        quarantined_to: String,
    },
    /// Content matches its sha256, but the chunk index recorded another Xet chunking for it
    /// (the index was damaged); the index now holds the recomputed one.
    XetMismatch {
        /// The Xet hash the index recorded (`damaged` when its chunk list was unreadable).
        recorded: String,
        /// The Xet hash of the content.
        actual: String,
    },
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct BlobCheck {
    /// The blob.
    pub sha256: Sha256,
    /// Its size.
    pub size: u64,
    /// Verdict.
    #[serde(flatten)]
    pub status: BlobStatus,
    /// Its Xet hash, when the content was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xet_hash: Option<String>,
    /// Files that use it, as `org/name@commit:path`.
    pub used_by: Vec<String>,
}

/// Why verification could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Registry failure.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Re-hash `blobs` (sha256 list); quarantine and unregister the bad ones. `reporter` hears of
/// each blob as it is checked.
pub async fn verify_blobs(
    larder: &Larder,
    blobs: Vec<(Sha256, u64)>,
    reporter: &dyn Reporter<BlobCheck>,
) -> Result<Vec<BlobCheck>, VerifyError> {
    let mut report = Vec::with_capacity(blobs.len());
    for (sha256, size) in blobs {
        let local = larder.blobs.local_path(&sha256);
        let before = local
            .as_deref()
            .and_then(|path| crate::store::stamp::stamp(path).ok());
        let digests = if larder.blobs.is_shared() {
            hash_shared(larder.blobs.as_ref(), &sha256).await?
        } else {
            let store = larder.local.clone();
            tokio::task::spawn_blocking(move || hash_blob(&store, &sha256))
                .await
                .unwrap_or(Ok(None))?
        };
        let xet_hash = digests
            .as_ref()
            .and_then(|d| d.xet.as_ref())
            .map(XetChunking::hex);
        let mut status = match digests {
            None => BlobStatus::Missing,
            Some(Digests {
                sha256: actual,
                xet,
                ..
            }) if actual == sha256 => match xet {
                Some(chunking) => check_xet(larder, &sha256, &chunking).await?,
                None => BlobStatus::Ok,
            },
            Some(Digests { sha256: actual, .. }) => {
                let moved = larder.blobs.quarantine(&sha256).await?;
                BlobStatus::Corrupt {
                    actual,
                    quarantined_to: moved,
                }
            }
        };
        // With a shared store the node also serves its cached copies: check those too.
        if larder.blobs.is_shared() && larder.local.has(&sha256) {
            let store = larder.local.clone();
            let cached = tokio::task::spawn_blocking(move || hash_blob(&store, &sha256))
                .await
                .unwrap_or(Ok(None))?;
            if let Some(actual) = cached
                .map(|digests| digests.sha256)
                .filter(|actual| *actual != sha256)
            {
                let moved = larder.local.quarantine(&sha256)?;
                if status == BlobStatus::Ok {
                    status = BlobStatus::Corrupt {
                        actual,
                        quarantined_to: moved.display().to_string(),
                    };
                }
            }
        }
        match status {
            BlobStatus::Ok | BlobStatus::XetMismatch { .. } => {
                // The file's stamp, when it did not change while it was hashed, lets the
                // mirror serve it without hashing it again (store/stamp.rs).
                let unchanged = local
                    .as_deref()
                    .and_then(|path| crate::store::stamp::unchanged(path, before.as_deref()));
                match unchanged {
                    Some(stamp) => {
                        let stamps = vec![(sha256, stamp)];
                        larder
                            .registry
                            .stamp_blobs(stamps, crate::now_unix())
                            .await?
                    }
                    None => {
                        larder
                            .registry
                            .mark_blob_verified(&sha256, crate::now_unix())
                            .await?
                    }
                }
            }
            _ => larder.registry.remove_blob(&sha256).await?,
        }
        let used_by = larder
            .registry
            .commits_using_blob(&sha256)
            .await?
            .into_iter()
            .map(|u| format!("{}@{}:{}", u.name, u.commit, u.path))
            .collect();
        let check = BlobCheck {
            sha256,
            size,
            status,
            xet_hash,
            used_by,
        };
        reporter.report(&check);
        report.push(check);
    }
    Ok(report)
}

/// Compare the Xet chunking of content that matched its sha256 with the chunk index: record
/// it when the index has none, report and rewrite a record that differs.
async fn check_xet(
    larder: &Larder,
    sha256: &Sha256,
    chunking: &XetChunking,
) -> Result<BlobStatus, VerifyError> {
    let fresh = crate::xet::index::to_record(sha256, chunking);
    let recorded = match larder.registry.xet(sha256).await {
        Ok(Some(record)) if record == fresh => return Ok(BlobStatus::Ok),
        Ok(Some(record)) => Some(record.xet_hash),
        Ok(None) => None,
        Err(RegistryError::CorruptXetIndex { .. }) => Some("damaged".to_owned()),
        Err(other) => return Err(other.into()),
    };
    larder.registry.record_xet(fresh).await?;
    Ok(match recorded {
        None => BlobStatus::Ok,
        Some(recorded) => BlobStatus::XetMismatch {
            recorded,
            actual: chunking.hex(),
        },
    })
}

/// Digests (sha256, Xet) of a blob in a shared store, streamed (never buffered whole); `None`
/// when missing.
async fn hash_shared(
    store: &dyn crate::store::BlobStore,
    sha256: &Sha256,
) -> Result<Option<Digests>, StoreError> {
    use futures::StreamExt;
    let Some(size) = store.stat(sha256).await? else {
        return Ok(None);
    };
    let mut stream = match store.read(sha256, 0..size).await {
        Ok(stream) => stream,
        Err(StoreError::Missing(_)) => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut hasher = ContentHasher::new(size, false).with_xet();
    while let Some(chunk) = stream.next().await {
        hasher.update(&chunk?);
    }
    Ok(Some(hasher.finish()))
}

/// Digests (sha256, Xet) of a stored blob; `None` when it is missing.
fn hash_blob(
    store: &crate::store::LocalStore,
    sha256: &Sha256,
) -> Result<Option<Digests>, StoreError> {
    let path = store.blob_path(sha256);
    match digest_file_with_xet(&path, false) {
        Ok((digests, _)) => Ok(Some(digests)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("could not read", &path, e)),
    }
}
