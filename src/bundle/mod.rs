//! Offline provisioning: carrying held revisions across an air gap and back into a store.
//!
//! - [`export`] writes a self-describing bundle (a [`manifest::Manifest`] plus blobs named by
//!   sha256), optionally incremental over an earlier bundle's manifest;
//! - [`import`] verifies a bundle blob by blob and registers each revision whole or not at all;
//! - [`hf_cache`] lays revisions out exactly as the Hugging Face cache, so offline clients load
//!   them unchanged; the `plain` layout reuses [`crate::store::materialize::plain_dir`];
//! - [`folder`] imports a plain model folder (an in-house checkpoint) as a revision.
//!
//! Everything read from a bundle or folder is hostile input: names, revisions and paths are
//! checked with the same rules as Hub listings ([`crate::hub`]), sizes and digests are checked
//! against the bytes, and no symlink is followed out of the folder being read.
//!
//! Each of them takes a [`CancellationToken`] and, once it is cancelled, stops between blobs
//! or within a copy, removes the copy it was writing, and fails with
//! [`BundleError::Interrupted`]; what each keeps is described beside it.

pub mod export;
pub mod folder;
pub mod hf_cache;
pub mod import;
pub mod manifest;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::Larder;
use crate::failure::Hint;
use crate::fetch::digest::{ContentHasher, Digests};
use crate::hub::{NameError, RepoId, Revision};
use crate::interrupt::Interrupted;
use crate::registry::{CommitDetail, CommitId, RegistryError, RepoKind};
use crate::store::StoreError;
pub use crate::store::materialize::LinkMode;
use manifest::ManifestError;

/// Why an export or import could not run (a refused revision is not an error: see
/// [`import::ImportSummary`]).
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The manifest is unusable.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A name read from the input is invalid.
    #[error(transparent)]
    Name(#[from] NameError),
    /// Laying out plain files failed.
    #[error(transparent)]
    Materialize(#[from] crate::store::materialize::MaterializeError),
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
    /// The revision is not held.
    #[error("`{repo}@{revision}` is not held")]
    NotHeld {
        /// The repo.
        repo: String,
        /// The revision asked for.
        revision: String,
    },
    /// A file of a held revision has no blob (partial pull, or quarantined by verify).
    #[error("{repo}@{sha}: {path} is not held, so the revision cannot be exported whole")]
    Incomplete {
        /// The repo.
        repo: String,
        /// The commit.
        sha: CommitId,
        /// The first file not held.
        path: String,
    },
    /// The plain layout holds one revision per repo.
    #[error("the plain layout holds one revision per repo, and {repo} was asked for twice")]
    TwoRevisions {
        /// The repo.
        repo: String,
    },
    /// Something in a folder to import is refused.
    #[error("refusing {path}: {reason}")]
    Refused {
        /// The entry.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The export or import was cancelled; `kept` counts the bytes placed (export) or
    /// imported (import) that a rerun does not redo.
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

impl Hint for BundleError {
    fn hint(&self) -> Option<String> {
        match self {
            BundleError::NotHeld { repo, revision } => {
                Some(format!("`larder pull {repo}@{revision}` first"))
            }
            BundleError::Incomplete { repo, sha, .. } => Some(format!(
                "`larder pull {repo}@{sha}` (without --include/--exclude) first"
            )),
            BundleError::Registry(e) => e.hint(),
            BundleError::Store(e) => e.hint(),
            _ => None,
        }
    }
}

impl BundleError {
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BundleError {
        let path = path.to_path_buf();
        move |source| BundleError::Io {
            action,
            path,
            source,
        }
    }
}

/// One step of an export or import, for a [`crate::report::Reporter<BundleEvent>`].
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum BundleEvent {
    /// About to write or read this many blobs.
    Start {
        /// Blobs to handle.
        blobs: usize,
        /// Their total size.
        bytes: u64,
    },
    /// A blob was handled.
    Blob {
        /// Its sha256 (or, in the HF cache layout, its etag).
        name: String,
        /// Its size.
        size: u64,
        /// `linked`, `copied`, `skipped` (already there) or `verified`.
        action: &'static str,
    },
    /// A revision was registered, found already held, or refused.
    Revision {
        /// `org/name@sha`.
        revision: String,
        /// `imported`, `unchanged` or `refused`.
        status: &'static str,
    },
}

/// One `ORG/NAME[@REV]` on the command line.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Model or dataset.
    pub kind: RepoKind,
    /// The repo.
    pub repo: RepoId,
    /// The revision; `None` means every held revision (bundle, hf-cache) or `main` (plain).
    pub revision: Option<Revision>,
}

/// The held commits `selections` name, each complete (every file held), in order, without
/// duplicates. With `latest_only`, a selection without a revision names `main` (or the most
/// recently fetched revision when `main` is not held) instead of every revision.
pub async fn select_commits(
    larder: &Larder,
    selections: &[Selection],
    latest_only: bool,
) -> Result<Vec<CommitDetail>, BundleError> {
    let mut out: Vec<CommitDetail> = Vec::new();
    for selection in selections {
        let name = selection.repo.as_str();
        let mut shas = Vec::new();
        match &selection.revision {
            Some(revision) => {
                match larder
                    .registry
                    .resolve(selection.kind, name, revision.as_str())
                    .await?
                {
                    Some(sha) => shas.push(sha),
                    None => {
                        return Err(BundleError::NotHeld {
                            repo: name.to_owned(),
                            revision: revision.to_string(),
                        });
                    }
                }
            }
            None => {
                let mut revisions: Vec<_> = larder
                    .registry
                    .list_repos()
                    .await?
                    .into_iter()
                    .filter(|r| r.kind == selection.kind && r.name == name)
                    .flat_map(|r| r.revisions)
                    .collect();
                if latest_only {
                    let main = revisions
                        .iter()
                        .find(|r| r.refs.iter().any(|x| x == "main"))
                        .or_else(|| revisions.first())
                        .cloned();
                    revisions = main.into_iter().collect();
                }
                // Oldest first, so refs recorded by an import end where they are now.
                revisions.sort_by_key(|r| r.fetched_at);
                shas.extend(revisions.into_iter().map(|r| r.sha));
                if shas.is_empty() {
                    return Err(BundleError::NotHeld {
                        repo: name.to_owned(),
                        revision: "main".to_owned(),
                    });
                }
            }
        }
        for sha in shas {
            if out
                .iter()
                .any(|c| c.kind == selection.kind && c.name == name && c.sha == sha)
            {
                continue;
            }
            let Some(detail) = larder
                .registry
                .commit_detail(selection.kind, name, &sha)
                .await?
            else {
                return Err(BundleError::NotHeld {
                    repo: name.to_owned(),
                    revision: sha.to_string(),
                });
            };
            if let Some(file) = detail.files.iter().find(|f| !f.held || f.sha256.is_none()) {
                return Err(BundleError::Incomplete {
                    repo: name.to_owned(),
                    sha,
                    path: file.path.clone(),
                });
            }
            out.push(detail);
        }
    }
    Ok(out)
}

pub use crate::fetch::digest::{lfs_pointer, lfs_pointer_oid};

/// Copy `src` to `dest` (created or truncated) while hashing it (sha256, git blob oid and Xet
/// chunking), and sync it. Returns the digests and the number of bytes copied. Cancelled, it
/// stops with [`BundleError::Interrupted`], leaving `dest` incomplete for the caller to remove.
pub(crate) fn copy_hashed(
    src: &Path,
    dest: &Path,
    cancel: &CancellationToken,
) -> Result<(Digests, u64), BundleError> {
    let mut input = File::open(src).map_err(BundleError::io("open", src))?;
    let size = input
        .metadata()
        .map_err(BundleError::io("stat", src))?
        .len();
    let mut output = File::create(dest).map_err(BundleError::io("create", dest))?;
    let mut hasher = ContentHasher::new(size, true).with_xet();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        if cancel.is_cancelled() {
            return Err(Interrupted::default().into());
        }
        let n = input
            .read(&mut buffer)
            .map_err(BundleError::io("read", src))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        output
            .write_all(&buffer[..n])
            .map_err(|e| store_io("write", dest, e))?;
    }
    output.sync_all().map_err(|e| store_io("sync", dest, e))?;
    let copied = hasher.fed();
    Ok((hasher.finish(), copied))
}

fn store_io(action: &'static str, path: &Path, source: io::Error) -> BundleError {
    match StoreError::io(action, path, source) {
        full @ StoreError::DiskFull { .. } => BundleError::Store(full),
        StoreError::Io {
            action,
            path,
            source,
        } => BundleError::Io {
            action,
            path,
            source,
        },
        other => BundleError::Store(other),
    }
}

/// [`place_file`] on the blocking pool.
pub(crate) async fn place_file_off_runtime(
    src: PathBuf,
    dest: PathBuf,
    links: LinkMode,
    cancel: &CancellationToken,
) -> Result<&'static str, BundleError> {
    let (path, cancel) = (dest.clone(), cancel.clone());
    tokio::task::spawn_blocking(move || place_file(&src, &dest, links, &cancel))
        .await
        .map_err(|e| BundleError::Io {
            action: "copy",
            path,
            source: io::Error::other(e),
        })?
}

/// Bytes copied between two checks for cancellation.
const COPY_PIECE: u64 = 64 << 20;

/// Put a copy of `src` at `dest`, written to a temporary name and renamed when complete: by
/// `copy_file_range` (a reflink where the filesystem shares extents), so nothing written at
/// `dest` later reaches the store's blob. With [`LinkMode::Hard`], a hard link when both are
/// on one filesystem instead (no space, but `dest` then shares the store's bytes). Returns
/// `"linked"` or `"copied"`. Cancelled during a copy, it removes the temporary copy and fails
/// with [`BundleError::Interrupted`].
pub(crate) fn place_file(
    src: &Path,
    dest: &Path,
    links: LinkMode,
    cancel: &CancellationToken,
) -> Result<&'static str, BundleError> {
    if links == LinkMode::Hard && fs::hard_link(src, dest).is_ok() {
        return Ok("linked");
    }
    let file_name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dest.with_file_name(format!(".{file_name}.{}.partial", std::process::id()));
    let copied = (|| {
        let input = File::open(src).map_err(BundleError::io("open", src))?;
        let size = input
            .metadata()
            .map_err(BundleError::io("stat", src))?
            .len();
        let output = File::create(&tmp).map_err(BundleError::io("create", &tmp))?;
        let mut at = 0;
        while at < size {
            if cancel.is_cancelled() {
                return Err(Interrupted::default().into());
            }
            let piece = (size - at).min(COPY_PIECE);
            crate::store::copy_range(&input, at, &output, at, piece)
                .map_err(|e| store_io("copy to", &tmp, e))?;
            at += piece;
        }
        output.sync_all().map_err(|e| store_io("sync", &tmp, e))?;
        fs::rename(&tmp, dest).map_err(BundleError::io("rename to", dest))
    })();
    if copied.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    copied.map(|()| "copied")
}

/// Create `dir` and its parents.
pub(crate) fn create_dir(dir: &Path) -> Result<(), BundleError> {
    fs::create_dir_all(dir).map_err(BundleError::io("create", dir))
}
