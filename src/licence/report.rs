//! Reports read back from the registry: audit rows (with relicensing between the two latest
//! revisions), the licence history of a repo, and the detections NOTICE and BOMs are built
//! from.
//!
//! A commit's detection is the one stored at pull time. Commits recorded without one (pulled
//! by an older Larder) are detected now from the registry's card and the store's licence
//! files. Licences accepted at pull (the audit log) count as accepted in the audit's verdict.

use larder_licence::{AuditRow, Catalog, Detection, Policy, Relicensing, detect, relicensing};
use serde::Serialize;

use super::decide::decide;
use super::gate::licence_id;
use super::{ACCEPT_ACTION, LicenceError, REVIEW_ACTION, audit_repo_name, evidence};
use crate::Larder;
use crate::registry::{CommitDetail, CommitId, CommitLicence, RepoKind};

/// One held commit and its licence, for `show --json`'s `licence_history`.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    /// The commit.
    pub commit: CommitId,
    /// When it was last pulled.
    pub fetched_at: i64,
    /// Catalog key (`unknown` when unresolved), `None` if never detected.
    pub licence: Option<String>,
    /// Hub id (or key).
    pub licence_id: Option<String>,
    /// Full name.
    pub licence_name: Option<String>,
    /// Detection confidence.
    pub confidence: Option<String>,
    /// The card's declared key.
    pub declared: Option<String>,
    /// Conflicts found.
    pub conflicts: serde_json::Value,
}

/// Every held commit of a repo with its licence, oldest first.
pub async fn licence_history(
    larder: &Larder,
    kind: RepoKind,
    name: &str,
) -> Result<Vec<HistoryEntry>, LicenceError> {
    let catalog = Catalog::builtin();
    let history = larder.registry.licence_history(kind, name).await?;
    Ok(history
        .into_iter()
        .map(|entry| {
            let licence = entry
                .licence_key
                .as_deref()
                .and_then(|key| catalog.get(key));
            let licence_id = match (&entry.detection, licence) {
                (Some(stored), _) => serde_json::from_value::<Detection>(stored.clone())
                    .ok()
                    .map(|detection| licence_id(&detection, catalog)),
                (None, Some(licence)) => Some(licence.report_id().to_owned()),
                (None, None) => entry.licence_key.clone(),
            };
            HistoryEntry {
                commit: entry.sha,
                fetched_at: entry.fetched_at,
                licence_id,
                licence_name: licence.map(|l| l.name.clone()),
                licence: entry.licence_key,
                confidence: entry.confidence,
                declared: entry.declared,
                conflicts: entry.conflicts,
            }
        })
        .collect())
}

/// The detection of a held commit: the stored one, else detected now from registry and store.
pub async fn load_detection(
    larder: &Larder,
    kind: RepoKind,
    name: &str,
    entry: &CommitLicence,
) -> Result<Detection, LicenceError> {
    if let Some(stored) = &entry.detection {
        return serde_json::from_value(stored.clone()).map_err(|source| {
            LicenceError::StoredDetection {
                repo: name.to_owned(),
                commit: entry.sha,
                source,
            }
        });
    }
    let detail = commit_detail(larder, kind, name, &entry.sha).await?;
    let evidence =
        evidence::held_evidence(&larder.registry, larder.blobs.as_ref(), &detail).await?;
    Ok(detect(&evidence, Catalog::builtin()))
}

async fn commit_detail(
    larder: &Larder,
    kind: RepoKind,
    name: &str,
    sha: &CommitId,
) -> Result<CommitDetail, LicenceError> {
    larder
        .registry
        .commit_detail(kind, name, sha)
        .await?
        .ok_or_else(|| LicenceError::NotHeld {
            repo: format!("{name}@{sha}"),
        })
}

/// One audited revision.
#[derive(Debug, Clone)]
pub struct Audited {
    /// The report row.
    pub row: AuditRow,
    /// Its detection.
    pub detection: Detection,
    /// The commit as recorded (files and their sha256 for BOMs).
    pub detail: CommitDetail,
    /// A licence change from the previous held revision.
    pub relicensing: Option<Relicensing>,
}

/// Licences accepted for the repo at pull time (catalog keys, from the audit log).
async fn logged_acceptances(
    larder: &Larder,
    kind: RepoKind,
    name: &str,
) -> Result<Vec<String>, LicenceError> {
    let entries = larder
        .registry
        .audit_log(Some(&audit_repo_name(kind, name)))
        .await?;
    let mut keys = Vec::new();
    for entry in entries.iter().filter(|e| e.action == ACCEPT_ACTION) {
        let listed = entry
            .detail
            .as_ref()
            .and_then(|detail| detail.get("keys"))
            .and_then(|keys| keys.as_array());
        for key in listed.into_iter().flatten().filter_map(|key| key.as_str()) {
            if !keys.iter().any(|known: &String| known == key) {
                keys.push(key.to_owned());
            }
        }
    }
    Ok(keys)
}

/// The note of the latest licence review of `sha`, when it denied the licence (a later
/// review that accepts it clears the denial).
async fn review_denial(
    larder: &Larder,
    kind: RepoKind,
    name: &str,
    sha: &CommitId,
) -> Result<Option<String>, LicenceError> {
    let entries = larder
        .registry
        .audit_log(Some(&audit_repo_name(kind, name)))
        .await?;
    let latest = entries
        .iter()
        .filter(|e| e.action == REVIEW_ACTION)
        .filter_map(|e| e.detail.as_ref())
        .rfind(|d| d.get("commit").and_then(|c| c.as_str()) == Some(sha));
    Ok(latest
        .filter(|d| d.get("decision").and_then(|v| v.as_str()) == Some("deny"))
        .map(|d| {
            d.get("note")
                .and_then(|n| n.as_str())
                .unwrap_or_default()
                .to_owned()
        }))
}

/// Catalog keys of the effective licences of a held commit (`unknown` for an unresolved one):
/// what a review that accepts it records as accepted.
pub async fn licence_keys(
    larder: &Larder,
    kind: RepoKind,
    name: &str,
    sha: &CommitId,
) -> Result<Vec<String>, LicenceError> {
    let history = larder.registry.licence_history(kind, name).await?;
    let entry = history
        .iter()
        .find(|entry| entry.sha == sha)
        .ok_or_else(|| LicenceError::NotHeld {
            repo: format!("{name}@{sha}"),
        })?;
    let detection = load_detection(larder, kind, name, entry).await?;
    Ok(detection
        .effective_licences(Catalog::builtin())
        .into_iter()
        .map(|(key, _)| key.unwrap_or_else(|| "unknown".to_owned()))
        .collect())
}

/// Audit `targets` (`(org/name, revision)`; the newest held revision when `None`), or every
/// held repo of `kind` when empty.
pub async fn audit(
    larder: &Larder,
    kind: RepoKind,
    targets: &[(String, Option<String>)],
    policy: &Policy,
) -> Result<Vec<Audited>, LicenceError> {
    let catalog = Catalog::builtin();
    let targets: Vec<(String, Option<String>)> = if targets.is_empty() {
        larder
            .registry
            .list_repos()
            .await?
            .into_iter()
            .filter(|repo| repo.kind == kind)
            .map(|repo| (repo.name, None))
            .collect()
    } else {
        targets.to_vec()
    };
    let mut out = Vec::new();
    for (name, revision) in targets {
        let history = larder.registry.licence_history(kind, &name).await?;
        let not_held = || LicenceError::NotHeld {
            repo: match &revision {
                Some(revision) => format!("{name}@{revision}"),
                None => name.clone(),
            },
        };
        let index = match &revision {
            None => history.len().checked_sub(1).ok_or_else(not_held)?,
            Some(revision) => {
                let sha = larder
                    .registry
                    .resolve(kind, &name, revision)
                    .await?
                    .ok_or_else(not_held)?;
                history
                    .iter()
                    .position(|entry| entry.sha == sha)
                    .ok_or_else(not_held)?
            }
        };
        let entry = &history[index];
        let detection = load_detection(larder, kind, &name, entry).await?;
        let relicensed = match index.checked_sub(1).map(|previous| &history[previous]) {
            Some(previous) => {
                let before = load_detection(larder, kind, &name, previous).await?;
                relicensing(
                    (previous.sha.as_str(), &before),
                    (entry.sha.as_str(), &detection),
                    catalog,
                )
            }
            None => None,
        };
        let accepted = logged_acceptances(larder, kind, &name).await?;
        let decision = decide(policy, &name, &detection, catalog, &accepted);
        let mut row = AuditRow::new(&entry.sha, &detection, &decision.verdict, catalog);
        if let Some(note) = review_denial(larder, kind, &name, &entry.sha).await? {
            row.verdict = "deny".to_owned();
            row.rule = "review".to_owned();
            row.reasons
                .push(format!("denied by a licence review: {note}"));
        }
        if let Some(change) = &relicensed {
            row.reasons.push(format!("relicensed: {}", change.message));
        }
        let detail = commit_detail(larder, kind, &name, &entry.sha).await?;
        out.push(Audited {
            row,
            detection,
            detail,
            relicensing: relicensed,
        });
    }
    Ok(out)
}
