//! What a pull, a pull-through, a conversion or an import put in the store, as registry rows.
//!
//! The one place that builds [`BlobRecord`]s and [`SnapshotRecord`]s, so every writer records
//! the same facts the same way. A blob row's `location` is always the store the blob was
//! published to ([`crate::store::BlobStore::describe`]: the home's blob directory, or the
//! bucket's URL), and `verified_at` says whether this node hashed the bytes itself.

use crate::Larder;
use crate::hub::{RepoId, RepoInfo, RepoType, gate_mode};
use crate::registry::{
    BlobRecord, CommitDetail, CommitId, FileRecord, LicenceFields, RegistryError, RepoKind, Sha256,
    SnapshotRecord,
};
use crate::store::StoreError;
use crate::xet::XetChunking;

/// How this node knows a blob's bytes are right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// This node hashed the bytes as they were written, just now.
    Verified,
    /// The store already held the bytes (published earlier, or by another node of a shared
    /// store); only their size was checked here.
    Adopted,
}

/// The row of a blob just published to (or found in) the store.
pub fn blob_record(larder: &Larder, sha256: &Sha256, size: u64, checked: Checked) -> BlobRecord {
    let now = crate::now_unix();
    BlobRecord {
        sha256: *sha256,
        size,
        location: larder.blobs.describe(),
        stored_at: now,
        verified_at: (checked == Checked::Verified).then_some(now),
    }
}

/// Record a blob just published to the store, and its Xet chunking when it was computed as the
/// bytes landed (the chunk index row follows the blob row).
pub async fn record_blob(
    larder: &Larder,
    sha256: &Sha256,
    size: u64,
    checked: Checked,
    chunking: Option<&XetChunking>,
) -> Result<(), RegistryError> {
    larder
        .registry
        .record_blob(blob_record(larder, sha256, size, checked))
        .await?;
    if let Some(chunking) = chunking {
        crate::xet::index::record(&larder.registry, sha256, chunking).await?;
    }
    if checked == Checked::Verified {
        stamp_local_copies(larder, [sha256]).await?;
    }
    Ok(())
}

/// Stamp the local copies of blobs this node just verified (crate::store::stamp), so the
/// mirror serves them without hashing them again. A blob without a local copy gets none.
async fn stamp_local_copies<'a>(
    larder: &Larder,
    blobs: impl IntoIterator<Item = &'a Sha256>,
) -> Result<(), RegistryError> {
    let stamps = blobs
        .into_iter()
        .filter_map(|sha256| {
            let path = larder.blobs.local_path(sha256)?;
            let stamp = crate::store::stamp::stamp(&path).ok()?;
            Some((*sha256, stamp))
        })
        .collect();
    larder.registry.stamp_blobs(stamps, crate::now_unix()).await
}

/// Record a group of blobs this node just verified and published together, each with its Xet
/// chunking when it was computed as the bytes landed, in one registry transaction.
pub async fn record_verified_blobs(
    larder: &Larder,
    group: &[(Sha256, u64, Option<XetChunking>)],
) -> Result<(), RegistryError> {
    let rows = group
        .iter()
        .map(|(sha256, size, chunking)| {
            (
                blob_record(larder, sha256, *size, Checked::Verified),
                chunking
                    .as_ref()
                    .map(|chunking| crate::xet::index::to_record(sha256, chunking)),
            )
        })
        .collect();
    larder.registry.record_blobs(rows).await?;
    stamp_local_copies(larder, group.iter().map(|(sha256, ..)| sha256)).await
}

/// Why a held blob could not be adopted.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    /// The store could not be asked.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Whether the store holds `sha256` with exactly `size` bytes; if it does and the registry has
/// no row for it (content another revision, repo or node published), the row is written.
pub async fn adopt_held_blob(
    larder: &Larder,
    sha256: &Sha256,
    size: u64,
) -> Result<bool, AdoptError> {
    if larder.blobs.stat(sha256).await? != Some(size) {
        return Ok(false);
    }
    if larder.registry.blob(sha256).await?.is_none() {
        record_blob(larder, sha256, size, Checked::Adopted, None).await?;
    }
    Ok(true)
}

/// Licence fields of the card (`license` may be a string or a list) and the repo's gate.
pub fn licence_fields(info: &RepoInfo) -> LicenceFields {
    let license = info
        .card_data
        .as_ref()
        .and_then(|c| c.get("license"))
        .and_then(|v| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Array(items) => {
                let names: Vec<&str> = items.iter().filter_map(|i| i.as_str()).collect();
                (!names.is_empty()).then(|| names.join(","))
            }
            _ => None,
        });
    LicenceFields {
        license,
        license_name: info.card_str("license_name"),
        license_link: info.card_str("license_link"),
        gated: gate_mode(&info.gated),
    }
}

/// A commit of `repo` as the upstream at `upstream` described it (`info` at that commit), with
/// `refs` seen pointing at it and its tree `files`.
pub fn upstream_snapshot(
    kind: RepoType,
    repo: &RepoId,
    upstream: String,
    info: &RepoInfo,
    commit: &CommitId,
    refs: Vec<String>,
    files: Vec<FileRecord>,
) -> SnapshotRecord {
    SnapshotRecord {
        kind: RepoKind::from(kind),
        name: repo.to_string(),
        upstream,
        gated: gate_mode(&info.gated),
        private: info.private,
        commit: *commit,
        card_json: info.card_data.clone(),
        refs,
        seen_at: crate::now_unix(),
        files,
        licence: licence_fields(info),
    }
}

/// More `files` (and `refs`) of a commit the registry already describes in `detail`, keeping
/// what it says of the repo and the commit.
pub fn held_snapshot(
    detail: &CommitDetail,
    refs: Vec<String>,
    files: Vec<FileRecord>,
) -> SnapshotRecord {
    SnapshotRecord {
        kind: detail.kind,
        name: detail.name.clone(),
        upstream: detail.upstream.clone(),
        gated: detail.gated.clone(),
        private: detail.private,
        commit: detail.sha,
        card_json: detail.card_json.clone(),
        refs,
        seen_at: detail.fetched_at,
        files,
        licence: detail.licence.clone(),
    }
}

/// After a revision fetched from the upstream was recorded under `fetched.canonical`: remember
/// `asked` as an old name of it when the upstream redirected (or forget that `asked` was one,
/// when it answered directly), and keep the upstream's info JSON of `commit`. Returns whether
/// the repo was renamed.
pub async fn record_upstream_facts(
    larder: &Larder,
    kind: RepoType,
    asked: &RepoId,
    fetched: &crate::hub::FetchedInfo,
    commit: &CommitId,
) -> Result<bool, RegistryError> {
    let kind = RepoKind::from(kind);
    let now = crate::now_unix();
    let canonical = fetched.canonical.as_str();
    let renamed = fetched.renamed_from(asked).is_some();
    if renamed {
        larder
            .registry
            .record_alias(kind, asked.as_str(), canonical, now)
            .await?;
    }
    larder.registry.forget_alias(kind, canonical).await?;
    if let Some(json) = &fetched.upstream_json {
        larder
            .registry
            .record_upstream_info(kind, canonical, commit, json.clone(), now)
            .await?;
    }
    Ok(renamed)
}
