//! The store quota: when the blobs held exceed it, remove the least recently served unpinned
//! revisions from the registry until what remains fits, then collect the blobs no remaining
//! revision uses with gc.
//!
//! All of it runs under the store's exclusive gc lock, so no pull or conversion is running (they
//! hold the shared side while their blobs are not yet referenced): a blob a running job needs is
//! never taken. Revisions of repos named by queued or running jobs are kept too, and a blob
//! shared with a kept revision stays, since gc removes only blobs no file refers to.

use serde::Serialize;

use crate::Larder;
use crate::gc::{GcError, GcOptions, GcReport};
use crate::registry::{EvictionCandidate, RepoKind};

/// What [`enforce`] did.
#[derive(Debug, Clone, Serialize)]
pub struct QuotaReport {
    /// The quota, in bytes.
    pub quota: u64,
    /// Bytes of referenced blobs before.
    pub before: u64,
    /// Bytes of referenced blobs after.
    pub after: u64,
    /// Revisions removed, least recently used first.
    pub evicted: Vec<EvictionCandidate>,
    /// The gc that followed (`None` when nothing was evicted).
    pub gc: Option<GcReport>,
    /// Whether the store still exceeds the quota (everything left is pinned or protected).
    pub over: bool,
}

/// Bring the store under `quota` bytes. `protect` names repos whose revisions must stay (those
/// of queued or running jobs). Fails with [`GcError::Busy`] while a pull or conversion runs.
pub async fn enforce(
    larder: &Larder,
    quota: u64,
    protect: &[(RepoKind, String)],
) -> Result<QuotaReport, GcError> {
    if larder.blobs.is_shared() {
        return Err(GcError::SharedQuota);
    }
    let Some(_lock) = larder.local.try_gc_lock()? else {
        return Err(GcError::Busy);
    };
    let before = larder.registry.referenced_blob_bytes().await?;
    let mut used = before;
    let mut evicted = Vec::new();
    if used > quota {
        for candidate in larder.registry.eviction_candidates().await? {
            if protect
                .iter()
                .any(|(kind, name)| *kind == candidate.kind && *name == candidate.name)
            {
                continue;
            }
            let removed = larder
                .registry
                .remove_commit(candidate.kind, &candidate.name, &candidate.sha)
                .await?;
            if removed {
                tracing::info!(
                    repo = candidate.name,
                    commit = %candidate.sha,
                    last_used = candidate.last_used,
                    "evicted a revision to stay under the store quota"
                );
                evicted.push(candidate);
            }
            used = larder.registry.referenced_blob_bytes().await?;
            if used <= quota {
                break;
            }
        }
    }
    let gc = if evicted.is_empty() {
        None
    } else {
        Some(
            crate::gc::collect(
                larder,
                GcOptions {
                    dry_run: false,
                    all_parts: false,
                },
            )
            .await?,
        )
    };
    Ok(QuotaReport {
        quota,
        before,
        after: used,
        over: used > quota,
        evicted,
        gc,
    })
}
