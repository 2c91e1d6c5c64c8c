//! Revision manifests in a shared store: what lets many nodes share one bucket.
//!
//! Each recorded revision is written beside the blobs as
//! `manifests/<model|dataset>/<org>/<name>/<commit>.json`: the snapshot (tree with sizes, git
//! oids and sha256, card, licence fields, gate, the refs seen pointing at it and when) and the
//! blobs it holds. The latest commit seen for each ref goes to
//! `refs/<model|dataset>/<org>/<name>/<ref, '/' as '~'>.json`. Manifests are written after the
//! blobs they list (blob first, then the record that names it) and are rewritten when a node
//! learns more of a revision (a pull-through fetched another file).
//!
//! [`reindex`] rebuilds a node's registry from every manifest; [`lookup_commit`] and
//! [`lookup_ref`] bring in one revision another node recorded, when a request misses.
//! With the default store (the home directory) none of this is written: the registry is
//! the record there.

use std::collections::HashMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::Larder;
use crate::failure::{Classify, FailureKind};
use crate::record::Checked;
use crate::registry::{
    BlobRecord, CommitId, FileRecord, RegistryError, RepoKind, Sha256, SnapshotRecord,
};
use crate::store::StoreError;

/// The manifest format written now.
pub const FORMAT: u32 = 1;

/// One revision as written to the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version ([`FORMAT`]).
    pub format: u32,
    /// What the registry records for the revision.
    pub snapshot: SnapshotRecord,
    /// The blobs of the tree that the store holds.
    pub blobs: Vec<ManifestBlob>,
}

/// A blob a manifest's revision uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestBlob {
    /// Content sha256.
    pub sha256: Sha256,
    /// Size in bytes.
    pub size: u64,
}

/// Where a ref pointed, as last written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefPointer {
    /// Model or dataset.
    pub kind: RepoKind,
    /// `org/name`.
    pub name: String,
    /// The ref, e.g. `main` or `refs/pr/1`.
    pub reference: String,
    /// The commit.
    pub commit: CommitId,
    /// When it was seen there (unix seconds).
    pub seen_at: i64,
}

/// Writing or reading manifests failed.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A manifest in the store is not valid.
    #[error("the manifest {key} in the store is not valid")]
    Invalid {
        /// Its key.
        key: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A manifest whose contents cannot be trusted (a bad name, commit, path or digest).
    #[error("the manifest {key} in the store is unsafe: {why}")]
    Unsafe {
        /// Its key.
        key: String,
        /// What was wrong.
        why: String,
    },
    /// A manifest of a format this version does not know.
    #[error("the manifest {key} has format {format}; this larder reads format {FORMAT}")]
    Format {
        /// Its key.
        key: String,
        /// Its format.
        format: u32,
    },
}

impl Classify for ManifestError {
    fn failure_kind(&self) -> FailureKind {
        match self {
            ManifestError::Store(e) => e.failure_kind(),
            ManifestError::Registry(e) => e.failure_kind(),
            _ => FailureKind::Other,
        }
    }
}

/// The key of a revision's manifest.
pub fn manifest_key(kind: RepoKind, name: &str, commit: &CommitId) -> String {
    format!("manifests/{}/{name}/{commit}.json", kind.as_str())
}

/// The key of a ref pointer (`/` in the ref becomes `~`, which git forbids in ref names).
pub fn ref_key(kind: RepoKind, name: &str, reference: &str) -> String {
    format!(
        "refs/{}/{name}/{}.json",
        kind.as_str(),
        reference.replace('/', "~")
    )
}

/// Write the manifest of a recorded revision (and its refs) to a shared store; nothing with
/// the default store. Call after the registry recorded it.
pub async fn publish(
    larder: &Larder,
    kind: RepoKind,
    name: &str,
    commit: &CommitId,
) -> Result<(), ManifestError> {
    if !larder.blobs.is_shared() {
        return Ok(());
    }
    let Some(detail) = larder.registry.commit_detail(kind, name, commit).await? else {
        return Ok(());
    };
    let seen_at = crate::now_unix();
    let mut blobs: Vec<ManifestBlob> = Vec::new();
    for file in detail.files.iter().filter(|f| f.held) {
        if let Some(sha) = &file.sha256
            && !blobs.iter().any(|b| b.sha256 == sha)
        {
            blobs.push(ManifestBlob {
                sha256: *sha,
                size: file.size,
            });
        }
    }
    let manifest = Manifest {
        format: FORMAT,
        snapshot: SnapshotRecord {
            kind,
            name: name.to_owned(),
            upstream: detail.upstream.clone(),
            gated: detail.gated.clone(),
            private: detail.private,
            commit: commit.to_owned(),
            card_json: detail.card_json.clone(),
            refs: detail.refs.clone(),
            seen_at,
            files: detail
                .files
                .iter()
                .map(|f| FileRecord {
                    path: f.path.clone(),
                    size: f.size,
                    git_oid: f.git_oid.clone(),
                    sha256: f.sha256,
                    lfs: f.lfs,
                })
                .collect(),
            licence: detail.licence.clone(),
        },
        blobs,
    };
    let json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    larder
        .blobs
        .put_meta(&manifest_key(kind, name, commit), Bytes::from(json))
        .await?;
    for reference in &detail.refs {
        let pointer = RefPointer {
            kind,
            name: name.to_owned(),
            reference: reference.clone(),
            commit: commit.to_owned(),
            seen_at,
        };
        let json = serde_json::to_vec(&pointer).unwrap_or_default();
        larder
            .blobs
            .put_meta(&ref_key(kind, name, reference), Bytes::from(json))
            .await?;
    }
    Ok(())
}

/// [`publish`], logging instead of failing: the registry already has the revision, and the
/// next write of the manifest (or a `larder reindex` elsewhere) catches up.
pub async fn publish_logged(larder: &Larder, kind: RepoKind, name: &str, commit: &CommitId) {
    if let Err(error) = publish(larder, kind, name, commit).await {
        tracing::warn!(
            repo = name,
            %commit,
            error = %crate::fetch::transfer::error_chain(&error),
            "could not write the revision manifest to the store"
        );
    }
}

async fn read(larder: &Larder, key: &str) -> Result<Option<Manifest>, ManifestError> {
    let Some(bytes) = larder.blobs.get_meta(key).await? else {
        return Ok(None);
    };
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|source| ManifestError::Invalid {
            key: key.to_owned(),
            source,
        })?;
    if manifest.format != FORMAT {
        return Err(ManifestError::Format {
            key: key.to_owned(),
            format: manifest.format,
        });
    }
    check(&manifest).map_err(|why| ManifestError::Unsafe {
        key: key.to_owned(),
        why,
    })?;
    Ok(Some(manifest))
}

/// Whatever another node (or anyone with write access to the bucket) put in a manifest is
/// checked like an upstream listing before it reaches the registry: names, paths and git oids
/// here; the commit and the digests are typed, so a malformed one fails to parse.
fn check(manifest: &Manifest) -> Result<(), String> {
    use crate::hub::{RepoId, is_commit_sha, validate_repo_path};
    let snapshot = &manifest.snapshot;
    RepoId::parse(&snapshot.name).map_err(|e| e.to_string())?;
    let git_oid = |s: &str| is_commit_sha(s);
    for file in &snapshot.files {
        validate_repo_path(&file.path).map_err(|e| e.to_string())?;
        if !git_oid(&file.git_oid) {
            return Err(format!(
                "{}: `{}` is not a git oid",
                file.path, file.git_oid
            ));
        }
    }
    Ok(())
}

async fn read_pointer(larder: &Larder, key: &str) -> Result<Option<RefPointer>, ManifestError> {
    let Some(bytes) = larder.blobs.get_meta(key).await? else {
        return Ok(None);
    };
    let pointer: RefPointer =
        serde_json::from_slice(&bytes).map_err(|source| ManifestError::Invalid {
            key: key.to_owned(),
            source,
        })?;
    let unsafe_because = |why: String| ManifestError::Unsafe {
        key: key.to_owned(),
        why,
    };
    crate::hub::RepoId::parse(&pointer.name).map_err(|e| unsafe_because(e.to_string()))?;
    crate::hub::Revision::parse(&pointer.reference).map_err(|e| unsafe_because(e.to_string()))?;
    if !crate::hub::is_commit_sha(&pointer.commit) {
        return Err(unsafe_because(format!(
            "`{}` is not a commit sha",
            pointer.commit
        )));
    }
    Ok(Some(pointer))
}

/// Record a manifest's revision and the blobs of it the store holds (`present`: sha256 ->
/// size, when known; otherwise the manifest's word is taken, since blobs are written first).
async fn ingest(
    larder: &Larder,
    mut manifest: Manifest,
    present: Option<&HashMap<Sha256, u64>>,
    refs: Option<Vec<String>>,
) -> Result<usize, ManifestError> {
    let blobs: Vec<BlobRecord> = manifest
        .blobs
        .iter()
        .filter(|b| present.is_none_or(|p| p.get(&b.sha256) == Some(&b.size)))
        .map(|b| crate::record::blob_record(larder, &b.sha256, b.size, Checked::Adopted))
        .collect();
    let count = blobs.len();
    if let Some(refs) = refs {
        manifest.snapshot.refs = refs;
    }
    larder
        .registry
        .record_snapshot_with_blobs(manifest.snapshot, blobs)
        .await?;
    Ok(count)
}

/// What [`reindex`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReindexSummary {
    /// Manifests read.
    pub manifests: usize,
    /// Blobs recorded as held.
    pub blobs: usize,
    /// Manifests that could not be used (logged), as `key: why`.
    pub skipped: Vec<String>,
}

/// Rebuild the registry from every manifest in the store (idempotent; revisions already
/// recorded are updated). Blobs count as held only when the store lists them at their size.
pub async fn reindex(larder: &Larder) -> Result<ReindexSummary, ManifestError> {
    let present: HashMap<Sha256, u64> = larder
        .blobs
        .list()
        .await?
        .into_iter()
        .map(|b| (b.sha256, b.size))
        .collect();
    let keys = larder.blobs.list_meta("manifests").await?;
    let mut summary = ReindexSummary::default();
    let mut manifests = Vec::new();
    for key in keys.iter().filter(|k| k.ends_with(".json")) {
        match read(larder, key).await {
            Ok(Some(manifest)) => manifests.push((key.clone(), manifest)),
            Ok(None) => {}
            Err(error) => summary.skipped.push(format!(
                "{key}: {}",
                crate::fetch::transfer::error_chain(&error)
            )),
        }
    }
    // Revisions first, without their refs: the `refs/` pointers say where each ref is now,
    // and applying only those that differ keeps every node's ref history free of replays.
    manifests.sort_by_key(|(_, m)| m.snapshot.seen_at);
    let mut by_commit: HashMap<(RepoKind, String, CommitId), Manifest> = HashMap::new();
    for (key, manifest) in manifests {
        let id = (
            manifest.snapshot.kind,
            manifest.snapshot.name.clone(),
            manifest.snapshot.commit,
        );
        match ingest(larder, manifest.clone(), Some(&present), Some(Vec::new())).await {
            Ok(blobs) => {
                summary.manifests += 1;
                summary.blobs += blobs;
                by_commit.insert(id, manifest);
            }
            Err(ManifestError::Registry(error)) => summary.skipped.push(format!(
                "{key}: {}",
                crate::fetch::transfer::error_chain(&error)
            )),
            Err(error) => return Err(error),
        }
    }
    for key in larder.blobs.list_meta("refs").await? {
        let pointer = match read_pointer(larder, &key).await {
            Ok(Some(pointer)) => pointer,
            Ok(None) => continue,
            Err(error) => {
                summary.skipped.push(format!(
                    "{key}: {}",
                    crate::fetch::transfer::error_chain(&error)
                ));
                continue;
            }
        };
        let current = larder
            .registry
            .resolve(pointer.kind, &pointer.name, &pointer.reference)
            .await?;
        if current == Some(pointer.commit) {
            continue;
        }
        let id = (pointer.kind, pointer.name.clone(), pointer.commit);
        if let Some(manifest) = by_commit.get(&id) {
            ingest(
                larder,
                manifest.clone(),
                Some(&present),
                Some(vec![pointer.reference.clone()]),
            )
            .await?;
        }
    }
    for skipped in &summary.skipped {
        tracing::warn!(skipped, "reindex: manifest skipped");
    }
    Ok(summary)
}

/// Bring in `commit` of `name` from the store's manifests (another node recorded it).
/// Returns whether it was found. Nothing happens with the default store.
pub async fn lookup_commit(
    larder: &Larder,
    kind: RepoKind,
    name: &str,
    commit: &CommitId,
) -> Result<bool, ManifestError> {
    lookup(larder, kind, name, commit, Vec::new(), None).await
}

async fn lookup(
    larder: &Larder,
    kind: RepoKind,
    name: &str,
    commit: &CommitId,
    refs: Vec<String>,
    only_if_held: Option<&str>,
) -> Result<bool, ManifestError> {
    if !larder.blobs.is_shared() || !crate::hub::is_commit_sha(commit) {
        return Ok(false);
    }
    let key = manifest_key(kind, name, commit);
    let Some(manifest) = read(larder, &key).await? else {
        return Ok(false);
    };
    if manifest.snapshot.kind != kind
        || manifest.snapshot.name != name
        || manifest.snapshot.commit != commit
    {
        return Ok(false);
    }
    if let Some(path) = only_if_held
        && !manifest.snapshot.files.iter().any(|f| {
            f.path == path
                && f.sha256
                    .as_ref()
                    .is_some_and(|sha| manifest.blobs.iter().any(|b| b.sha256 == sha))
        })
    {
        return Ok(false);
    }
    ingest(larder, manifest, None, Some(refs)).await?;
    Ok(true)
}

/// [`lookup_commit`] when the store's manifest of `commit` has `path` held (another node
/// fetched that file); nothing is recorded otherwise. Returns whether it was brought in.
pub async fn lookup_held_file(
    larder: &Larder,
    kind: RepoKind,
    name: &str,
    commit: &CommitId,
    path: &str,
) -> Result<bool, ManifestError> {
    lookup(larder, kind, name, commit, Vec::new(), Some(path)).await
}

/// The commit another node last saw `reference` of `name` at, brought in from the store's
/// manifests (with the ref). `None` when the store knows nothing of it.
pub async fn lookup_ref(
    larder: &Larder,
    kind: RepoKind,
    name: &str,
    reference: &str,
) -> Result<Option<CommitId>, ManifestError> {
    if !larder.blobs.is_shared() {
        return Ok(None);
    }
    let key = ref_key(kind, name, reference);
    let Some(pointer) = read_pointer(larder, &key).await? else {
        return Ok(None);
    };
    if pointer.kind != kind || pointer.name != name || pointer.reference != reference {
        return Ok(None);
    }
    let found = lookup(
        larder,
        kind,
        name,
        &pointer.commit,
        vec![reference.to_owned()],
        None,
    )
    .await?;
    Ok(found.then_some(pointer.commit))
}

/// Re-read the shared store's manifests every `every` (the first time after one interval), so
/// revisions other nodes recorded are found without waiting for a miss. Runs until aborted.
pub fn spawn_rescan(larder: Larder, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            match reindex(&larder).await {
                Ok(summary) => tracing::info!(
                    manifests = summary.manifests,
                    blobs = summary.blobs,
                    "rescanned the store"
                ),
                Err(error) => tracing::warn!(error = %error, "rescanning the store failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::LicenceFields;

    fn manifest(path: &str, commit: &CommitId, sha: &Sha256) -> Manifest {
        Manifest {
            format: FORMAT,
            snapshot: SnapshotRecord {
                kind: RepoKind::Model,
                name: "acme/tiny".into(),
                upstream: "http://hub".into(),
                gated: None,
                private: false,
                commit: *commit,
                card_json: None,
                refs: vec!["main".into()],
                seen_at: 0,
                files: vec![FileRecord {
                    path: path.into(),
                    size: 3,
                    git_oid: "a".repeat(40),
                    sha256: Some(*sha),
                    lfs: true,
                }],
                licence: LicenceFields::default(),
            },
            blobs: vec![ManifestBlob {
                sha256: *sha,
                size: 3,
            }],
        }
    }

    #[test]
    fn manifests_from_the_store_are_checked_like_upstream_listings() {
        let commit = CommitId::parse(&"c".repeat(40)).unwrap();
        let sha = Sha256::parse(&"d".repeat(64)).unwrap();
        assert!(check(&manifest("dir/model.safetensors", &commit, &sha)).is_ok());
        for path in ["../../etc/passwd", "/abs", "a/./b"] {
            assert!(check(&manifest(path, &commit, &sha)).is_err(), "{path}");
        }
        // A malformed commit or digest does not even parse.
        let json = serde_json::to_string(&manifest("ok.bin", &commit, &sha)).unwrap();
        for (good, bad) in [(commit.as_str(), "main"), (sha.as_str(), "../x")] {
            let forged = json.replace(good, bad);
            assert!(serde_json::from_str::<Manifest>(&forged).is_err(), "{bad}");
        }
        let mut bad_name = manifest("ok.bin", &commit, &sha);
        bad_name.snapshot.name = "../evil".into();
        assert!(check(&bad_name).is_err());
    }
}
