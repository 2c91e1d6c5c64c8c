//! The administrative verbs on held repos that both the CLI (on this machine) and the mirror's
//! `/v1` API (for `--daemon` clients and the web console) run: pin and unpin a revision, track
//! and untrack a ref, choose the blobs `verify` re-hashes, and record a licence review. One
//! implementation, so that both give the same validation and the same errors.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Larder;
use crate::failure::Hint;
use crate::hub::{NameError, RepoId, Revision};
use crate::registry::{AuditEntry, CommitId, RegistryError, RepoKind, Sha256};

pub use crate::licence::REVIEW_ACTION;
/// The longest review note kept.
pub const MAX_NOTE: usize = 2000;

/// Why an administrative verb was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// The repo name or revision does not validate.
    #[error(transparent)]
    Name(#[from] NameError),
    /// No such revision is held.
    #[error("{repo}@{revision} is not held")]
    NotHeld {
        /// `org/name`.
        repo: String,
        /// As given.
        revision: String,
    },
    /// No revision of the repo is held.
    #[error("`{0}` is not held")]
    RepoNotHeld(String),
    /// Unpinning what was not pinned.
    #[error("{repo}@{short} was not pinned")]
    NotPinned {
        /// `org/name`.
        repo: String,
        /// The commit's first 12 digits.
        short: String,
    },
    /// Tracking a commit.
    #[error("{0} is a commit, which never moves")]
    TrackCommit(String),
    /// Untracking what is not tracked.
    #[error("{repo}@{reference} is not tracked")]
    NotTracked {
        /// `org/name`.
        repo: String,
        /// The ref.
        reference: String,
    },
    /// A bad interval or review field.
    #[error("{0}")]
    Invalid(String),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl Hint for ManageError {
    fn hint(&self) -> Option<String> {
        match self {
            ManageError::NotHeld { repo, revision } => {
                Some(format!("`larder pull {repo}@{revision}` first"))
            }
            ManageError::RepoNotHeld(repo) => Some(format!("`larder pull {repo}` first")),
            ManageError::TrackCommit(_) => Some("track a branch or tag".to_owned()),
            ManageError::Registry(e) => e.hint(),
            _ => None,
        }
    }
}

impl ManageError {
    /// Whether the caller is at fault (bad input, or something not held): a 4xx, not a 5xx.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            ManageError::NotHeld { .. }
                | ManageError::RepoNotHeld(_)
                | ManageError::NotPinned { .. }
                | ManageError::NotTracked { .. }
        )
    }

    /// Whether the request itself was bad.
    pub fn is_invalid(&self) -> bool {
        matches!(
            self,
            ManageError::Name(_) | ManageError::TrackCommit(_) | ManageError::Invalid(_)
        ) || matches!(
            self,
            ManageError::Registry(RegistryError::InvalidInput { .. })
        )
    }
}

/// A revision named by a client: `org/name`, its type and a revision (`main` when absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// `org/name`.
    pub repo: String,
    /// Branch, tag or commit; default `main`.
    #[serde(default = "main", alias = "ref")]
    pub revision: String,
    /// `model` or `dataset`; default `model`.
    #[serde(default, rename = "type")]
    pub kind: RepoKind,
}

fn main() -> String {
    "main".to_owned()
}

impl Target {
    /// Check the name and revision as the CLI's argument parser does.
    pub fn validate(&self) -> Result<(), ManageError> {
        RepoId::parse(&self.repo)?;
        Revision::parse(&self.revision)?;
        Ok(())
    }
}

/// What [`pin`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinOutcome {
    /// `org/name`.
    pub repo: String,
    /// The revision as given.
    pub revision: String,
    /// The commit it resolved to.
    pub commit: CommitId,
    /// Whether it is pinned now.
    pub pinned: bool,
    /// Whether this call changed it (`false`: it was already so).
    pub changed: bool,
}

async fn resolve(larder: &Larder, target: &Target) -> Result<CommitId, ManageError> {
    target.validate()?;
    larder
        .registry
        .resolve(target.kind, &target.repo, &target.revision)
        .await?
        .ok_or_else(|| ManageError::NotHeld {
            repo: target.repo.clone(),
            revision: target.revision.clone(),
        })
}

/// Pin (`pin = true`) or unpin a held revision. Unpinning one that is not pinned is
/// [`ManageError::NotPinned`]; pinning one already pinned succeeds with `changed: false`.
pub async fn pin(larder: &Larder, target: &Target, pin: bool) -> Result<PinOutcome, ManageError> {
    let sha = resolve(larder, target).await?;
    let changed = if pin {
        larder
            .registry
            .pin(target.kind, &target.repo, &sha)
            .await
            .map_err(|e| match e {
                RegistryError::UnknownCommit { .. } => ManageError::NotHeld {
                    repo: target.repo.clone(),
                    revision: target.revision.clone(),
                },
                other => other.into(),
            })?
    } else {
        if !larder
            .registry
            .unpin(target.kind, &target.repo, &sha)
            .await?
        {
            return Err(ManageError::NotPinned {
                repo: target.repo.clone(),
                short: sha[..12.min(sha.len())].to_owned(),
            });
        }
        true
    };
    Ok(PinOutcome {
        repo: target.repo.clone(),
        revision: target.revision.clone(),
        commit: sha,
        pinned: pin,
        changed,
    })
}

/// What [`track`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackOutcome {
    /// `org/name`.
    pub repo: String,
    /// The ref followed.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Seconds between checks.
    pub every: i64,
    /// Whether it was newly tracked (`false`: only the interval changed).
    pub new: bool,
}

fn tracked_ref(target: &Target) -> Result<(), ManageError> {
    target.validate()?;
    if crate::hub::is_commit_sha(&target.revision) {
        return Err(ManageError::TrackCommit(target.revision.clone()));
    }
    Ok(())
}

/// Follow a branch or tag, checked every `every` by `larder serve`.
pub async fn track(
    larder: &Larder,
    target: &Target,
    every: Duration,
) -> Result<TrackOutcome, ManageError> {
    tracked_ref(target)?;
    let every = i64::try_from(every.as_secs())
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| ManageError::Invalid("the interval must be 1s or more".to_owned()))?;
    let new = larder
        .registry
        .track(
            target.kind,
            &target.repo,
            &target.revision,
            every,
            crate::now_unix(),
        )
        .await?;
    Ok(TrackOutcome {
        repo: target.repo.clone(),
        reference: target.revision.clone(),
        every,
        new,
    })
}

/// Stop following a ref.
pub async fn untrack(larder: &Larder, target: &Target) -> Result<(), ManageError> {
    tracked_ref(target)?;
    if larder
        .registry
        .untrack(target.kind, &target.repo, &target.revision)
        .await?
    {
        Ok(())
    } else {
        Err(ManageError::NotTracked {
            repo: target.repo.clone(),
            reference: target.revision.clone(),
        })
    }
}

/// The blobs (sha256, size) `verify` re-hashes: every blob, or those of one repo's held
/// revisions (`revision: None`) or of one revision.
pub async fn blobs_to_verify(
    larder: &Larder,
    kind: RepoKind,
    repo: Option<(&str, Option<&str>)>,
) -> Result<Vec<(Sha256, u64)>, ManageError> {
    let mut blobs: BTreeMap<Sha256, u64> = BTreeMap::new();
    let Some((name, revision)) = repo else {
        for blob in larder.registry.blobs().await? {
            blobs.insert(blob.sha256, blob.size);
        }
        return Ok(blobs.into_iter().collect());
    };
    RepoId::parse(name)?;
    let shas: Vec<CommitId> = match revision {
        Some(rev) => {
            Revision::parse(rev)?;
            match larder.registry.resolve(kind, name, rev).await? {
                Some(sha) => vec![sha],
                None => return Err(ManageError::RepoNotHeld(format!("{name}@{rev}"))),
            }
        }
        None => larder
            .registry
            .list_repos()
            .await?
            .into_iter()
            .filter(|r| r.kind == kind && r.name == name)
            .flat_map(|r| r.revisions.into_iter().map(|v| v.sha))
            .collect(),
    };
    if shas.is_empty() {
        return Err(ManageError::RepoNotHeld(name.to_owned()));
    }
    for sha in shas {
        if let Some(detail) = larder.registry.commit_detail(kind, name, &sha).await? {
            for file in detail.files.into_iter().filter(|f| f.held) {
                if let Some(sha256) = file.sha256 {
                    blobs.insert(sha256, file.size);
                }
            }
        }
    }
    Ok(blobs.into_iter().collect())
}

/// A licence review: accept or deny a held revision's licence, with a note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// The revision reviewed.
    #[serde(flatten)]
    pub target: Target,
    /// `accept` or `deny`.
    pub decision: String,
    /// Why (kept in the audit log).
    #[serde(default)]
    pub note: String,
}

/// What [`review`] recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reviewed {
    /// `org/name`.
    pub repo: String,
    /// The commit reviewed.
    pub commit: CommitId,
    /// `accept` or `deny`.
    pub decision: String,
    /// The audit-log entry's id.
    pub audit_id: i64,
}

/// Record a review in the audit log. An `accept` also records the revision's licences as
/// accepted (as `larder pull --accept-licence` does), so the policy allows it from now on; a
/// `deny` marks it denied for the console and `larder audit`.
pub async fn review(
    larder: &Larder,
    review: &Review,
    actor: &str,
) -> Result<Reviewed, ManageError> {
    let accept = match review.decision.as_str() {
        "accept" => true,
        "deny" => false,
        other => {
            return Err(ManageError::Invalid(format!(
                "unknown decision `{other}`: use accept or deny"
            )));
        }
    };
    if review.note.len() > MAX_NOTE {
        return Err(ManageError::Invalid(format!(
            "the note is longer than {MAX_NOTE} bytes"
        )));
    }
    let target = &review.target;
    let sha = resolve(larder, target).await?;
    let repo = crate::licence::audit_repo_name(target.kind, &target.repo);
    let keys = if accept {
        crate::licence::licence_keys(larder, target.kind, &target.repo, &sha)
            .await
            .map_err(|e| ManageError::Invalid(format!("the licence could not be read: {e}")))?
    } else {
        Vec::new()
    };
    let at = crate::now_unix();
    if accept && !keys.is_empty() {
        larder
            .registry
            .log_audit(AuditEntry {
                id: 0,
                at,
                actor: actor.to_owned(),
                action: crate::licence::ACCEPT_ACTION.to_owned(),
                repo: Some(repo.clone()),
                detail: Some(json!({
                    "commit": sha,
                    "keys": keys,
                    "licences": keys,
                    "rule": "review",
                    "note": review.note,
                })),
            })
            .await?;
    }
    let audit_id = larder
        .registry
        .log_audit(AuditEntry {
            id: 0,
            at,
            actor: actor.to_owned(),
            action: REVIEW_ACTION.to_owned(),
            repo: Some(repo),
            detail: Some(json!({
                "commit": sha,
                "decision": review.decision,
                "note": review.note,
            })),
        })
        .await?;
    Ok(Reviewed {
        repo: target.repo.clone(),
        commit: sha,
        decision: review.decision.clone(),
        audit_id,
    })
}
