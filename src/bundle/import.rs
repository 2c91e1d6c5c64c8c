//! `larder import DIR`: verify a bundle and register what verifies.
//!
//! Order of effects, per revision: every blob it needs is either already held or copied from
//! the bundle into a part in the store's `tmp/` while being hashed (sha256 always; the git
//! blob oid for regular files; the LFS pointer's oid is checked against the manifest). Only
//! when every file of the revision checks out are its new blobs published (renamed into the
//! store) and then recorded together with the revision in one registry transaction. A revision
//! with a missing, truncated or altered file is refused whole — nothing of it is registered —
//! while the other revisions of the bundle are still imported. Parts that no imported revision
//! needed are removed at the end. A revision already held completely is left untouched, so
//! importing the same bundle twice changes nothing.
//!
//! Cancelled, an import stops within the blob it is copying; the revisions registered so far
//! stay (each whole), the parts of the unfinished one are removed, and running the same
//! import again finds the former held and imports the rest.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::manifest::{BLOBS_DIR, CommitEntry, Manifest, RepoEntry};
use super::{BundleError, BundleEvent, copy_hashed};
use crate::Larder;
use crate::fetch::digest::Digests;
use crate::interrupt::{CancellationToken, Interrupted};
use crate::record::{self, Checked};
use crate::registry::{BlobRecord, CommitId, FileRecord, Sha256, SnapshotRecord};
use crate::report::Reporter;

/// What happened to one revision of the bundle.
#[derive(Debug, Clone, Serialize)]
pub struct RevisionOutcome {
    /// `model` or `dataset`.
    pub kind: String,
    /// `org/name`.
    pub repo: String,
    /// The commit.
    pub commit: CommitId,
    /// `imported`, `unchanged` (already held) or `refused`.
    pub status: &'static str,
    /// Why it was refused, file by file.
    pub problems: Vec<String>,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportSummary {
    /// The manifest's digest.
    pub manifest_digest: String,
    /// Every revision of the bundle.
    pub revisions: Vec<RevisionOutcome>,
    /// Blobs copied into the store.
    pub blobs_imported: usize,
    /// Their bytes.
    pub bytes_imported: u64,
}

impl ImportSummary {
    /// The revisions refused.
    pub fn refused(&self) -> impl Iterator<Item = &RevisionOutcome> {
        self.revisions.iter().filter(|r| r.status == "refused")
    }
}

/// The verdict on one blob of the bundle.
enum BlobState {
    /// Verified into this part, not yet published.
    Part(PathBuf, Digests),
    /// Published to the store (by this import or before).
    Published,
    /// Unusable: why.
    Bad(String),
}

/// Import the bundle in `dir` into `larder`.
pub async fn import_bundle(
    larder: &Larder,
    dir: &Path,
    reporter: &dyn Reporter<BundleEvent>,
    cancel: &CancellationToken,
) -> Result<ImportSummary, BundleError> {
    // Blobs published here are unreferenced until their revision is recorded.
    let _gc_guard = larder.local.gc_guard().await?;
    let manifest = Manifest::read(dir)?;
    let carried: BTreeMap<&str, u64> = manifest
        .blobs
        .iter()
        .map(|b| (b.sha256.as_str(), b.size))
        .collect();
    let mut summary = ImportSummary {
        manifest_digest: manifest.digest.clone().unwrap_or_default(),
        ..ImportSummary::default()
    };
    let total: u64 = manifest.blobs.iter().map(|b| b.size).sum();
    reporter.report(&BundleEvent::Start {
        blobs: manifest.blobs.len(),
        bytes: total,
    });
    let mut blobs: HashMap<Sha256, BlobState> = HashMap::new();
    let result = async {
        for repo in &manifest.repos {
            for commit in &repo.commits {
                let outcome = import_commit(
                    larder,
                    dir,
                    repo,
                    commit,
                    &carried,
                    &mut blobs,
                    &mut summary,
                    reporter,
                    cancel,
                )
                .await?;
                reporter.report(&BundleEvent::Revision {
                    revision: format!("{}@{}", outcome.repo, outcome.commit),
                    status: outcome.status,
                });
                summary.revisions.push(outcome);
            }
        }
        Ok::<(), BundleError>(())
    }
    .await;
    // Parts no imported revision needed (or left by a failure) are not kept.
    for state in blobs.into_values() {
        if let BlobState::Part(part, _) = state {
            let _ = std::fs::remove_file(part);
        }
    }
    match result {
        Ok(()) => Ok(summary),
        Err(BundleError::Interrupted(_)) => Err(BundleError::Interrupted(Interrupted {
            kept: summary.bytes_imported,
            total,
        })),
        Err(error) => Err(error),
    }
}

#[allow(clippy::too_many_arguments)]
async fn import_commit(
    larder: &Larder,
    dir: &Path,
    repo: &RepoEntry,
    commit: &CommitEntry,
    carried: &BTreeMap<&str, u64>,
    blobs: &mut HashMap<Sha256, BlobState>,
    summary: &mut ImportSummary,
    reporter: &dyn Reporter<BundleEvent>,
    cancel: &CancellationToken,
) -> Result<RevisionOutcome, BundleError> {
    let mut outcome = RevisionOutcome {
        kind: repo.kind.to_string(),
        repo: repo.name.clone(),
        commit: commit.sha,
        status: "unchanged",
        problems: Vec::new(),
    };
    let refs = current_refs(larder, repo, commit).await?;
    if already_held(larder, repo, commit, &refs).await? {
        return Ok(outcome);
    }

    for file in &commit.files {
        if cancel.is_cancelled() {
            return Err(Interrupted::default().into());
        }
        if let std::collections::hash_map::Entry::Vacant(e) = blobs.entry(file.sha256) {
            let state = if larder.blobs.stat(&file.sha256).await? == Some(file.size) {
                BlobState::Published
            } else if let Some(size) = carried.get(file.sha256.as_str()) {
                let state = verify_blob(larder, dir, &file.sha256, *size, cancel).await?;
                if let BlobState::Part(..) = &state {
                    reporter.report(&BundleEvent::Blob {
                        name: file.sha256.to_string(),
                        size: *size,
                        action: "verified",
                    });
                }
                state
            } else {
                BlobState::Bad(
                    "is neither in this bundle nor held: import the earlier bundle this one \
                     was made `--since` first"
                        .to_owned(),
                )
            };
            e.insert(state);
        }
        let problem = match blobs.get(&file.sha256) {
            Some(BlobState::Bad(why)) => Some(why.clone()),
            Some(BlobState::Part(_, digests)) if !file.lfs => match &digests.git_oid {
                Some(oid) if *oid != file.git_oid => Some(format!(
                    "has git blob oid {oid}, but the manifest says {}",
                    file.git_oid
                )),
                _ => None,
            },
            _ => None,
        };
        if let Some(problem) = problem {
            outcome
                .problems
                .push(format!("{} (blob {}) {problem}", file.path, file.sha256));
        }
    }
    if !outcome.problems.is_empty() {
        outcome.status = "refused";
        return Ok(outcome);
    }

    if cancel.is_cancelled() {
        return Err(Interrupted::default().into());
    }
    // Blob first, then rows: publish the new blobs, then record them with the revision.
    // From here on the revision is finished even if cancelled meanwhile.
    let mut records = Vec::new();
    let mut chunkings = Vec::new();
    for file in &commit.files {
        let Some(state) = blobs.get_mut(&file.sha256) else {
            continue;
        };
        match state {
            BlobState::Part(part, digests) => {
                if let Some(chunking) = digests.xet.take() {
                    chunkings.push((file.sha256, chunking));
                }
                larder.blobs.publish(part, &file.sha256).await?;
                summary.blobs_imported += 1;
                summary.bytes_imported += file.size;
                *state = BlobState::Published;
            }
            BlobState::Published | BlobState::Bad(_) => {}
        }
        if !records.iter().any(|r: &BlobRecord| r.sha256 == file.sha256)
            && larder.registry.blob(&file.sha256).await?.is_none()
        {
            records.push(record::blob_record(
                larder,
                &file.sha256,
                file.size,
                Checked::Verified,
            ));
        }
    }
    let snapshot = SnapshotRecord {
        kind: repo.kind,
        name: repo.name.clone(),
        upstream: repo.upstream.clone(),
        gated: repo.gated.clone(),
        private: repo.private,
        commit: commit.sha,
        card_json: commit.card_json.clone(),
        refs,
        seen_at: commit.fetched_at,
        files: commit
            .files
            .iter()
            .map(|f| FileRecord {
                path: f.path.clone(),
                size: f.size,
                git_oid: f.git_oid.clone(),
                sha256: Some(f.sha256),
                lfs: f.lfs,
            })
            .collect(),
        licence: commit.licence.clone(),
    };
    larder
        .registry
        .record_snapshot_with_blobs(snapshot, records)
        .await?;
    // The chunk index follows its blobs' rows; a crash in between leaves blobs whose chunking
    // `larder verify` computes later.
    for (sha256, chunking) in &chunkings {
        crate::xet::index::record(&larder.registry, sha256, chunking).await?;
    }
    crate::manifest::publish_logged(larder, repo.kind, &repo.name, &commit.sha).await;
    crate::licence::record_held_detection(larder, repo.kind, &repo.name, &commit.sha).await;
    outcome.status = "imported";
    Ok(outcome)
}

/// The commit's refs that the bundle may set: a ref that already points at a commit fetched
/// later than this one keeps pointing there (importing an older bundle never moves refs back).
async fn current_refs(
    larder: &Larder,
    repo: &RepoEntry,
    commit: &CommitEntry,
) -> Result<Vec<String>, BundleError> {
    let mut refs = Vec::new();
    for reference in &commit.refs {
        let newer = match larder
            .registry
            .resolve(repo.kind, &repo.name, reference)
            .await?
        {
            Some(sha) if sha != commit.sha => larder
                .registry
                .commit_detail(repo.kind, &repo.name, &sha)
                .await?
                .is_some_and(|held| held.fetched_at > commit.fetched_at),
            _ => false,
        };
        if !newer {
            refs.push(reference.clone());
        }
    }
    Ok(refs)
}

/// Whether the commit is already registered with every file held and `refs` on it.
async fn already_held(
    larder: &Larder,
    repo: &RepoEntry,
    commit: &CommitEntry,
    refs: &[String],
) -> Result<bool, BundleError> {
    let Some(detail) = larder
        .registry
        .commit_detail(repo.kind, &repo.name, &commit.sha)
        .await?
    else {
        return Ok(false);
    };
    let mut files_held = detail.files.len() == commit.files.len()
        && detail.files.iter().all(|f| f.held)
        && commit.files.iter().all(|f| {
            detail
                .files
                .iter()
                .any(|d| d.path == f.path && d.sha256.as_deref() == Some(f.sha256.as_str()))
        });
    for f in &commit.files {
        if !files_held {
            break;
        }
        files_held = larder.blobs.stat(&f.sha256).await? == Some(f.size);
    }
    let refs_on_it = refs.iter().all(|r| detail.refs.contains(r));
    Ok(files_held && refs_on_it)
}

/// Copy one carried blob into a part while hashing it, and judge it.
async fn verify_blob(
    larder: &Larder,
    dir: &Path,
    sha256: &Sha256,
    size: u64,
    cancel: &CancellationToken,
) -> Result<BlobState, BundleError> {
    let src = dir.join(BLOBS_DIR).join(sha256);
    match std::fs::symlink_metadata(&src) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(BlobState::Bad("is missing from the bundle".to_owned()));
        }
        Err(e) => return Err(BundleError::io("stat", &src)(e)),
        Ok(meta) if !meta.is_file() => {
            return Ok(BlobState::Bad(
                "is not a regular file in the bundle".to_owned(),
            ));
        }
        Ok(meta) if meta.len() != size => {
            return Ok(BlobState::Bad(format!(
                "is truncated or padded in the bundle: {} bytes, expected {size}",
                meta.len()
            )));
        }
        Ok(_) => {}
    }
    let part = larder
        .local
        .tmp_dir()
        .join(format!("import-{sha256}-{}.part", std::process::id()));
    let (part2, cancel) = (part.clone(), cancel.clone());
    let copied = tokio::task::spawn_blocking(move || copy_hashed(&src, &part2, &cancel))
        .await
        .map_err(|e| BundleError::Io {
            action: "verify",
            path: part.clone(),
            source: std::io::Error::other(e),
        })?;
    let (digests, copied) = match copied {
        Ok(done) => done,
        Err(error) => {
            let _ = std::fs::remove_file(&part);
            return Err(error);
        }
    };
    if copied != size || digests.sha256 != sha256 {
        let _ = std::fs::remove_file(&part);
        return Ok(BlobState::Bad(format!(
            "is altered in the bundle: its content hashes to {} ({copied} bytes)",
            digests.sha256
        )));
    }
    Ok(BlobState::Part(part, digests))
}
