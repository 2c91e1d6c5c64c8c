//! `larder verify`: re-hash blobs, quarantine the ones whose content no longer matches their
//! name, and drop their registry rows so the next pull fetches them again.

use serde::Serialize;

use crate::Larder;
use crate::fetch::digest::digest_file;
use crate::registry::RegistryError;
use crate::store::StoreError;

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
        actual: String,
        /// Where it was moved.
        quarantined_to: String,
    },
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct BlobCheck {
    /// The blob.
    pub sha256: String,
    /// Its size.
    pub size: u64,
    /// Verdict.
    #[serde(flatten)]
    pub status: BlobStatus,
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

/// Re-hash `blobs` (sha256 list); quarantine and unregister the bad ones.
pub async fn verify_blobs(
    larder: &Larder,
    blobs: Vec<(String, u64)>,
    on_checked: &(dyn Fn(&BlobCheck) + Sync),
) -> Result<Vec<BlobCheck>, VerifyError> {
    let mut report = Vec::with_capacity(blobs.len());
    for (sha256, size) in blobs {
        let actual = if larder.blobs.is_shared() {
            hash_shared(larder.blobs.as_ref(), &sha256).await?
        } else {
            let store = larder.local.clone();
            let sha = sha256.clone();
            tokio::task::spawn_blocking(move || hash_blob(&store, &sha))
                .await
                .unwrap_or(Ok(None))?
        };
        let mut status = match actual {
            None => BlobStatus::Missing,
            Some(actual) if actual == sha256 => BlobStatus::Ok,
            Some(actual) => {
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
            let sha = sha256.clone();
            let cached = tokio::task::spawn_blocking(move || hash_blob(&store, &sha))
                .await
                .unwrap_or(Ok(None))?;
            if let Some(actual) = cached.filter(|actual| *actual != sha256) {
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
            BlobStatus::Ok => {
                larder
                    .registry
                    .mark_blob_verified(&sha256, crate::now_unix())
                    .await?
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
            used_by,
        };
        on_checked(&check);
        report.push(check);
    }
    Ok(report)
}

/// sha256 of a blob in a shared store, streamed (never buffered whole); `None` when missing.
async fn hash_shared(
    store: &dyn crate::store::BlobStore,
    sha256: &str,
) -> Result<Option<String>, StoreError> {
    use futures::StreamExt;
    use sha2::{Digest, Sha256};
    let Some(size) = store.stat(sha256).await? else {
        return Ok(None);
    };
    let mut stream = match store.read(sha256, 0..size).await {
        Ok(stream) => stream,
        Err(StoreError::Missing(_)) => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut hasher = Sha256::new();
    while let Some(chunk) = stream.next().await {
        hasher.update(&chunk?);
    }
    Ok(Some(hex::encode(hasher.finalize())))
}

/// sha256 of a stored blob; `None` when it is missing.
fn hash_blob(store: &crate::store::LocalStore, sha256: &str) -> Result<Option<String>, StoreError> {
    let path = store.blob_path(sha256)?;
    match digest_file(&path, false) {
        Ok((digests, _)) => Ok(Some(digests.sha256)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("could not read", &path, e)),
    }
}
