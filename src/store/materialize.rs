//! Views of a snapshot outside the store: a plain directory of files (`--local-dir`).
//!
//! Files are hard-linked from the blob when the directory is on the same filesystem (no extra
//! space; blobs are read-only, so the linked files are too) and copied otherwise.

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

/// Put each `(repo path, blob path)` at `dir/<repo path>`, replacing what is there.
pub fn plain_dir(dir: &Path, entries: &[(String, PathBuf)]) -> Result<(), MaterializeError> {
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
            if same_file(&target, blob) {
                continue;
            }
            fs::remove_file(&target).map_err(io_err("replace", &target))?;
        }
        if fs::hard_link(blob, &target).is_err() {
            let tmp = target.with_extension("larder-tmp");
            fs::copy(blob, &tmp).map_err(io_err("copy to", &tmp))?;
            let mut perms = fs::metadata(&tmp)
                .map_err(io_err("stat", &tmp))?
                .permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            fs::set_permissions(&tmp, perms).map_err(io_err("chmod", &tmp))?;
            fs::rename(&tmp, &target).map_err(io_err("rename to", &target))?;
        }
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}
