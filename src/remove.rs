//! `larder rm`: forget one held revision so that gc can reclaim the blobs only it used.
//!
//! The commit's rows (tree, licence records, pin) go; the ref history stays, as do the blobs
//! until the next gc. A revision that a recorded conversion was made from is refused (its
//! provenance must stay): remove the conversion first.

use crate::Larder;
use crate::registry::{CommitId, RegistryError, RepoKind};

/// What [`remove_revision`] removed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Removed {
    /// The repo id.
    pub repo: String,
    /// The commit removed.
    pub commit: CommitId,
    /// Bytes of blobs no held revision refers to any more (what `larder gc` reclaims).
    pub reclaimable: u64,
}

/// Why a revision could not be removed.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    /// Nothing of that name and revision is held.
    #[error("{repo}@{revision} is not held")]
    NotHeld {
        /// The repo id.
        repo: String,
        /// The revision as given.
        revision: String,
    },
    /// Registry failure (including a revision a conversion was made from).
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Remove `repo@revision` (a branch, tag or commit held) from the registry.
pub async fn remove_revision(
    larder: &Larder,
    kind: RepoKind,
    repo: &str,
    revision: &str,
) -> Result<Removed, RemoveError> {
    let not_held = || RemoveError::NotHeld {
        repo: repo.to_owned(),
        revision: revision.to_owned(),
    };
    let commit = larder
        .registry
        .resolve(kind, repo, revision)
        .await?
        .ok_or_else(not_held)?;
    if !larder.registry.remove_commit(kind, repo, &commit).await? {
        return Err(not_held());
    }
    let reclaimable = larder
        .registry
        .unreferenced_blobs()
        .await?
        .iter()
        .map(|blob| blob.size)
        .sum();
    tracing::info!(repo, %commit, "removed a revision");
    Ok(Removed {
        repo: repo.to_owned(),
        commit,
        reclaimable,
    })
}
