//! `larder export --layout hf-cache`: write revisions exactly as the Hugging Face cache
//! (hub-protocol.md §5.1), so `HF_HUB_OFFLINE=1` clients load them with no change.
//!
//! ```text
//! DIR/models--org--name/blobs/<etag>             etag = sha256 (LFS) or git blob oid (regular)
//! DIR/models--org--name/snapshots/<commit>/<path> -> ../../blobs/<etag>  (one more ../ per level)
//! DIR/models--org--name/refs/<rev>               the commit, no trailing newline
//! DIR/models--org--name/trees/<commit>.json      format_version 1 tree cache
//! ```
//!
//! Writing into an existing cache merges: other repos, other revisions and blobs already in
//! place are left alone; only this export's refs, snapshot links and tree files are written.
//!
//! Cancelled, an export keeps the blobs placed (a rerun skips them) and the revisions it
//! finished, and removes the snapshot directory it had started for an unfinished revision, so
//! no snapshot is ever missing files; that revision's refs are not written.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::export::ExportSummary;
use super::{BundleError, BundleEvent, create_dir};
use crate::Larder;
use crate::hub::validate_repo_path;
use crate::interrupt::{CancellationToken, Interrupted};
use crate::registry::{CommitDetail, RepoKind};
use crate::report::Reporter;

/// `models--org--name` (or `datasets--…`).
pub fn repo_folder(kind: RepoKind, name: &str) -> String {
    format!("{}s--{}", kind.as_str(), name.replace('/', "--"))
}

/// Write `commits` into the HF cache at `dir`: blobs copied (or, with
/// [`super::LinkMode::Hard`], hard-linked where possible).
pub async fn export_hf_cache(
    larder: &Larder,
    commits: &[CommitDetail],
    dir: &Path,
    links: super::LinkMode,
    reporter: &dyn Reporter<BundleEvent>,
    cancel: &CancellationToken,
) -> Result<ExportSummary, BundleError> {
    let mut summary = ExportSummary {
        layout: "hf-cache",
        dir: dir.to_path_buf(),
        ..ExportSummary::default()
    };
    create_dir(dir)?;
    let tag = dir.join("CACHEDIR.TAG");
    if !tag.exists() {
        let _ = std::fs::write(
            &tag,
            "Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by huggingface_hub.\n",
        );
    }
    let total = commits.iter().flat_map(|c| &c.files).map(|f| f.size).sum();
    reporter.report(&BundleEvent::Start {
        blobs: commits.iter().map(|c| c.files.len()).sum(),
        bytes: total,
    });
    let mut kept = 0;
    for detail in commits {
        let repo_dir = dir.join(repo_folder(detail.kind, &detail.name));
        let blobs_dir = repo_dir.join("blobs");
        let snapshot_dir = repo_dir.join("snapshots").join(detail.sha);
        let snapshot_existed = snapshot_dir.is_dir();
        create_dir(&blobs_dir)?;
        create_dir(&snapshot_dir)?;
        // An unfinished snapshot this export started is removed rather than left short.
        let stop = |kept| {
            if !snapshot_existed {
                let _ = std::fs::remove_dir_all(&snapshot_dir);
            }
            BundleError::Interrupted(Interrupted { kept, total })
        };
        let mut tree = serde_json::Map::new();
        for file in &detail.files {
            if cancel.is_cancelled() {
                return Err(stop(kept));
            }
            let path = validate_repo_path(&file.path)?;
            let Some(sha256) = &file.sha256 else {
                continue;
            };
            let etag = if file.lfs {
                sha256.as_str()
            } else {
                &file.git_oid
            };
            let blob = blobs_dir.join(etag);
            let action = if std::fs::metadata(&blob).is_ok_and(|m| m.len() == file.size) {
                summary.blobs_skipped += 1;
                "skipped"
            } else {
                let _ = std::fs::remove_file(&blob);
                let src = larder.blobs.fetch_local(sha256).await?;
                let placed = super::place_file_off_runtime(src, blob.clone(), links, cancel).await;
                let action = match placed {
                    Err(BundleError::Interrupted(_)) => return Err(stop(kept)),
                    placed => placed?,
                };
                summary.blobs_written += 1;
                summary.bytes_written += file.size;
                if action == "linked" {
                    summary.blobs_linked += 1;
                }
                action
            };
            kept += file.size;
            reporter.report(&BundleEvent::Blob {
                name: etag.to_owned(),
                size: file.size,
                action,
            });
            link_snapshot_file(&snapshot_dir, path, etag)?;
            let mut entry = json!({"size": file.size, "blob_id": file.git_oid});
            if file.lfs {
                entry["lfs_sha256"] = json!(sha256);
                entry["lfs_size"] = json!(file.size);
            }
            tree.insert(file.path.clone(), entry);
        }
        let trees = repo_dir.join("trees");
        create_dir(&trees)?;
        let tree_doc = json!({"format_version": 1, "files": tree});
        write_atomic(
            &trees.join(format!("{}.json", detail.sha)),
            tree_doc.to_string().as_bytes(),
        )?;
        for reference in &detail.refs {
            let reference = crate::hub::Revision::parse(reference)?;
            let ref_path = repo_dir.join("refs").join(reference.as_str());
            if let Some(parent) = ref_path.parent() {
                create_dir(parent)?;
            }
            write_atomic(&ref_path, detail.sha.as_bytes())?;
        }
        summary
            .revisions
            .push(format!("{}@{}", detail.name, detail.sha));
    }
    Ok(summary)
}

/// `snapshot_dir/<path>` -> `../../blobs/<etag>` with one more `../` per directory level.
fn link_snapshot_file(snapshot_dir: &Path, path: &str, etag: &str) -> Result<(), BundleError> {
    let link = snapshot_dir.join(path);
    let depth = path.matches('/').count();
    let mut target = PathBuf::from("../".repeat(depth + 2));
    target.push("blobs");
    target.push(etag);
    if let Some(parent) = link.parent() {
        create_dir(parent)?;
    }
    if std::fs::read_link(&link).is_ok_and(|existing| existing == target) {
        return Ok(());
    }
    if std::fs::symlink_metadata(&link).is_ok() {
        std::fs::remove_file(&link).map_err(BundleError::io("replace", &link))?;
    }
    std::os::unix::fs::symlink(&target, &link).map_err(BundleError::io("link", &link))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), BundleError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(BundleError::io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(BundleError::io("rename to", path))
}
