//! Views of a snapshot outside the store: a plain directory of files (`--local-dir`).
//!
//! Files are copies by default: a tool that writes into the directory must never reach the
//! store's blobs. The copy goes through `copy_file_range(2)`, so on filesystems that share
//! extents (btrfs, XFS, bcachefs) it is a reflink that costs no space and no time, and on NFS a
//! server-side copy. Hard links ([`LinkMode::Hard`], `--hard-links`) cost no space anywhere on
//! the same filesystem, but a write through one changes the store's copy: the mirror and
//! `larder verify` then find the blob damaged and quarantine it (store/stamp.rs), so they are
//! for directories only read from.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::failure::{Classify, FailureKind};
use crate::hub::validate_repo_path;

/// Laying out a view failed.
#[derive(Debug, thiserror::Error)]
pub enum MaterializeError {
    /// A repo path that would escape the target directory.
    #[error(transparent)]
    Path(#[from] crate::hub::NameError),
    /// A filesystem operation failed.
    #[error("could not {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
}

impl Classify for MaterializeError {
    fn failure_kind(&self) -> FailureKind {
        match self {
            // A listed path that would escape the target: the upstream's listing is at fault.
            MaterializeError::Path(_) => FailureKind::Upstream,
            MaterializeError::Io { source, .. } => source.failure_kind(),
        }
    }
}

/// How a view's files relate to the store's blobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LinkMode {
    /// Independent files (reflinks where the filesystem shares extents).
    #[default]
    Copy,
    /// Hard links to the blobs when on the same filesystem (copies otherwise).
    Hard,
}

/// Put each `(repo path, blob path)` at `dir/<repo path>`, replacing what is there. A copy
/// already in place (same size and modification time as its blob, not a link to it) is kept.
pub fn plain_dir(
    dir: &Path,
    entries: &[(String, PathBuf)],
    mode: LinkMode,
) -> Result<(), MaterializeError> {
    let io_err = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| MaterializeError::Io {
            action,
            path,
            source,
        }
    };
    fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    for (repo_path, blob) in entries {
        let relative = validate_repo_path(repo_path)?;
        let target = dir.join(relative);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_err("create", parent))?;
        }
        if target.exists() {
            match (mode, same_file(&target, blob)) {
                (LinkMode::Hard, true) => continue,
                (LinkMode::Copy, false) if same_copy(&target, blob) => continue,
                _ => fs::remove_file(&target).map_err(io_err("replace", &target))?,
            }
        }
        if mode == LinkMode::Hard && fs::hard_link(blob, &target).is_ok() {
            continue;
        }
        let tmp = target.with_extension("larder-tmp");
        fs::copy(blob, &tmp).map_err(io_err("copy to", &tmp))?;
        let mut perms = fs::metadata(&tmp)
            .map_err(io_err("stat", &tmp))?
            .permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        fs::set_permissions(&tmp, perms).map_err(io_err("chmod", &tmp))?;
        // The blob's modification time marks the copy as complete and current (`same_copy`).
        let modified = fs::metadata(blob)
            .and_then(|m| m.modified())
            .map_err(io_err("stat", blob))?;
        fs::File::options()
            .write(true)
            .open(&tmp)
            .and_then(|f| f.set_modified(modified))
            .map_err(io_err("set the time of", &tmp))?;
        fs::rename(&tmp, &target).map_err(io_err("rename to", &target))?;
    }
    Ok(())
}

/// Whether `copy` is a finished copy of `blob`: a separate file with its size and
/// modification time (which `plain_dir` gives each copy it makes).
fn same_copy(copy: &Path, blob: &Path) -> bool {
    match (fs::symlink_metadata(copy), fs::metadata(blob)) {
        (Ok(c), Ok(b)) => {
            c.is_file()
                && c.len() == b.len()
                && c.modified()
                    .ok()
                    .is_some_and(|t| Some(t) == b.modified().ok())
        }
        _ => false,
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}
