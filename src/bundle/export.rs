//! `larder export --layout bundle`: write held revisions as a self-describing bundle.
//!
//! The bundle directory gets `blobs/<sha256>` for every blob it carries, then `manifest.json`
//! last, so a directory without a manifest is an unfinished export. Blobs are hard-linked from
//! the store when the bundle is on the same filesystem and copied otherwise, through a
//! temporary name renamed when complete; re-running skips blobs already in place, so an
//! interrupted export resumes. With `--since`, commits and blobs that the earlier manifest (or
//! its own predecessors) carried are left out.
//!
//! Cancelled, an export removes the copy in progress and stops before the manifest: the blobs
//! placed are kept for the rerun, and the directory still reads as unfinished.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::manifest::{
    BLOBS_DIR, BlobEntry, CommitEntry, FileEntry, MANIFEST_FILE, Manifest, RepoEntry, Since,
    commit_key,
};
use super::{BundleError, BundleEvent, create_dir};
use crate::Larder;
use crate::interrupt::{CancellationToken, Interrupted};
use crate::registry::{CommitDetail, Sha256};
use crate::report::Reporter;

/// What an export wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportSummary {
    /// The layout: `bundle`, `hf-cache` or `plain`.
    pub layout: &'static str,
    /// The target directory.
    pub dir: PathBuf,
    /// Revisions written, as `org/name@sha`.
    pub revisions: Vec<String>,
    /// Revisions left out because the `--since` manifest carried them.
    pub skipped_revisions: Vec<String>,
    /// Blobs (or files) placed in this run.
    pub blobs_written: usize,
    /// Of those, how many were hard links.
    pub blobs_linked: usize,
    /// Blobs already in place from an earlier run.
    pub blobs_skipped: usize,
    /// Bytes of the blobs placed in this run.
    pub bytes_written: u64,
    /// The manifest's digest (bundle layout).
    pub manifest_digest: Option<String>,
}

/// Write `commits` (from [`super::select_commits`]) as a bundle in `dir`: blobs copied (or,
/// with [`super::LinkMode::Hard`], hard-linked where possible).
pub async fn export_bundle(
    larder: &Larder,
    commits: &[CommitDetail],
    dir: &Path,
    since: Option<&Manifest>,
    links: super::LinkMode,
    reporter: &dyn Reporter<BundleEvent>,
    cancel: &CancellationToken,
) -> Result<ExportSummary, BundleError> {
    let mut known_commits: BTreeSet<String> = BTreeSet::new();
    let mut known_blobs: BTreeSet<Sha256> = BTreeSet::new();
    let mut manifest = Manifest::new(crate::now_unix());
    if let Some(base) = since {
        known_commits.extend(base.commit_keys());
        known_blobs.extend(base.blobs.iter().map(|b| b.sha256));
        if let Some(earlier) = &base.since {
            known_commits.extend(earlier.commits.iter().cloned());
            known_blobs.extend(earlier.blobs.iter().cloned());
        }
        manifest.since = Some(Since {
            manifest_digest: base.digest.clone().unwrap_or_else(|| base.compute_digest()),
            commits: known_commits.iter().cloned().collect(),
            blobs: known_blobs.iter().cloned().collect(),
        });
    }

    let mut summary = ExportSummary {
        layout: "bundle",
        dir: dir.to_path_buf(),
        ..ExportSummary::default()
    };
    let mut carried: BTreeMap<Sha256, u64> = BTreeMap::new();
    for detail in commits {
        let revision = format!("{}@{}", detail.name, detail.sha);
        if known_commits.contains(&commit_key(detail.kind, &detail.name, &detail.sha)) {
            summary.skipped_revisions.push(revision);
            continue;
        }
        summary.revisions.push(revision);
        let files: Vec<FileEntry> = detail
            .files
            .iter()
            .filter_map(|f| {
                Some(FileEntry {
                    path: f.path.clone(),
                    size: f.size,
                    sha256: f.sha256?,
                    git_oid: f.git_oid.clone(),
                    lfs: f.lfs,
                })
            })
            .collect();
        for file in &files {
            if !known_blobs.contains(&file.sha256) {
                carried.insert(file.sha256, file.size);
            }
        }
        let commit = CommitEntry {
            sha: detail.sha,
            refs: detail.refs.clone(),
            fetched_at: detail.fetched_at,
            card_json: detail.card_json.clone(),
            licence: detail.licence.clone(),
            files,
        };
        match manifest
            .repos
            .iter_mut()
            .find(|r| r.kind == detail.kind && r.name == detail.name)
        {
            Some(repo) => repo.commits.push(commit),
            None => manifest.repos.push(RepoEntry {
                kind: detail.kind,
                name: detail.name.clone(),
                upstream: detail.upstream.clone(),
                gated: detail.gated.clone(),
                private: detail.private,
                commits: vec![commit],
            }),
        }
    }
    manifest.blobs = carried
        .iter()
        .map(|(sha256, size)| BlobEntry {
            sha256: *sha256,
            size: *size,
        })
        .collect();
    manifest.validate()?;

    let blobs_dir = dir.join(BLOBS_DIR);
    create_dir(&blobs_dir)?;
    remove_partials(&blobs_dir);
    let total: u64 = manifest.blobs.iter().map(|b| b.size).sum();
    reporter.report(&BundleEvent::Start {
        blobs: manifest.blobs.len(),
        bytes: total,
    });
    // Bytes of the blobs in place, this run's or an earlier one's.
    let mut kept = 0;
    let interrupted = |kept| BundleError::Interrupted(Interrupted { kept, total });
    for blob in &manifest.blobs {
        if cancel.is_cancelled() {
            return Err(interrupted(kept));
        }
        let dest = blobs_dir.join(blob.sha256);
        let action = if std::fs::metadata(&dest).is_ok_and(|m| m.is_file() && m.len() == blob.size)
        {
            summary.blobs_skipped += 1;
            "skipped"
        } else {
            let src = larder.blobs.fetch_local(&blob.sha256).await?;
            let _ = std::fs::remove_file(&dest);
            let placed = super::place_file_off_runtime(src, dest.clone(), links, cancel).await;
            let action = match placed {
                Err(BundleError::Interrupted(_)) => return Err(interrupted(kept)),
                placed => placed?,
            };
            summary.blobs_written += 1;
            summary.bytes_written += blob.size;
            if action == "linked" {
                summary.blobs_linked += 1;
            }
            action
        };
        kept += blob.size;
        reporter.report(&BundleEvent::Blob {
            name: blob.sha256.to_string(),
            size: blob.size,
            action,
        });
    }
    if cancel.is_cancelled() {
        return Err(interrupted(kept));
    }

    let bytes = manifest.to_json();
    let path = dir.join(MANIFEST_FILE);
    let tmp = dir.join(format!(".{MANIFEST_FILE}.partial"));
    std::fs::write(&tmp, &bytes).map_err(BundleError::io("write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(BundleError::io("rename to", &path))?;
    summary.manifest_digest = Some(manifest.compute_digest());
    Ok(summary)
}

/// Remove temporary copies an interrupted export left behind (`.<sha256>.<pid>.partial`).
fn remove_partials(blobs_dir: &Path) {
    let Ok(listing) = std::fs::read_dir(blobs_dir) else {
        return;
    };
    for entry in listing.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".partial") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
