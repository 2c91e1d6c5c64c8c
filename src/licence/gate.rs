//! [`PullGate`]: the licence check `pull()` runs before any transfer, and the record it writes
//! after the snapshot.
//!
//! Order of effects: detection reads the repo info and the licence files (fetched into
//! memory); the policy decides; a denial returns before anything is downloaded or
//! registered. Otherwise the pull proceeds, always including the licence files (even when
//! `--include` leaves them out) so the store holds the texts the decision was made on, and
//! once the snapshot is recorded the signals, the resolution and any accepted licence are
//! written to the registry.

use larder_licence::{Catalog, Conflict, Detection, Policy, VerdictKind, detect};
use serde::Serialize;
use serde_json::json;

use super::decide::{accepted_keys, decide};
use super::evidence;
use super::{ACCEPT_ACTION, Denial, LicenceError, audit_repo_name};
use crate::Larder;
use crate::hub::{RepoFile, RepoId, RepoInfo, RepoType};
use crate::registry::{AuditEntry, CommitId, LicenceRecord, LicenceSignalRecord, RepoKind};

/// The licence gate of a pull: the policy (if any), accepted licences and who accepted them.
#[derive(Debug, Clone)]
pub struct PullGate {
    policy: Option<Policy>,
    accepted: Vec<String>,
    actor: String,
}

/// What the gate concluded for the pulled commit (part of the pull summary).
#[derive(Debug, Clone, Serialize)]
pub struct PullLicence {
    /// The resolved catalog key, `unknown` when unresolved.
    pub licence: String,
    /// The Hub id where it has one (else the key, or the card's own words).
    pub licence_id: String,
    /// Detection confidence.
    pub confidence: String,
    /// `allow` / `review` / `deny`; `None` without a policy.
    pub verdict: Option<String>,
    /// The rule that decided.
    pub rule: Option<String>,
    /// Why.
    pub reasons: Vec<String>,
    /// Disagreements between signals.
    pub conflicts: Vec<Conflict>,
    /// Accepted licences (catalog keys) that applied to this repo.
    pub accepted: Vec<String>,
    /// The rule an acceptance overrode, if any.
    pub overridden: Option<String>,
    /// The detection, recorded after the snapshot.
    #[serde(skip)]
    pub detection: Detection,
}

impl PullLicence {
    /// Whether the verdict asks for a human review.
    pub fn needs_review(&self) -> bool {
        self.verdict.as_deref() == Some(VerdictKind::Review.as_str())
    }
}

/// The Hub id (or key, or the card's words) a detection reports.
pub fn licence_id(detection: &Detection, catalog: &Catalog) -> String {
    match detection
        .licence
        .as_deref()
        .and_then(|key| catalog.get(key))
    {
        Some(licence) => licence.report_id().to_owned(),
        None => detection
            .declared_unresolved
            .clone()
            .unwrap_or_else(|| "unknown".to_owned()),
    }
}

/// The registry record of a detection.
pub fn licence_record(detection: &Detection) -> LicenceRecord {
    let signals = detection
        .signals
        .iter()
        .map(|signal| {
            let kind = serde_json::to_value(&signal.source)
                .ok()
                .and_then(|value| {
                    value
                        .get("kind")
                        .and_then(|k| k.as_str())
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| "unknown".to_owned());
            let path = match &signal.source {
                larder_licence::SignalSource::LicenceFile { path } => Some(path.clone()),
                _ => None,
            };
            LicenceSignalRecord {
                source: kind,
                value: signal.value.clone(),
                detail: Some(
                    json!({ "path": path, "licence": signal.licence, "detail": signal.detail })
                        .to_string(),
                ),
            }
        })
        .collect();
    LicenceRecord {
        licence_key: detection.licence_key().to_owned(),
        declared: detection.declared.clone(),
        confidence: detection.confidence.as_str().to_owned(),
        conflicts: serde_json::to_value(&detection.conflicts).unwrap_or_else(|_| json!([])),
        detection: serde_json::to_value(detection).unwrap_or(serde_json::Value::Null),
        signals,
        resolved_at: crate::now_unix(),
    }
}

impl PullGate {
    /// A gate with an optional policy, `--accept-licence` ids and the accepting user.
    pub fn new(
        policy: Option<Policy>,
        accept: &[String],
        actor: impl Into<String>,
    ) -> Result<PullGate, LicenceError> {
        Ok(PullGate {
            policy,
            accepted: accepted_keys(accept, Catalog::builtin())?,
            actor: actor.into(),
        })
    }

    /// Whether `pull()` fetches this file whatever `--include`/`--exclude` say.
    pub fn always_fetches(&self, path: &str, size: u64) -> bool {
        evidence::wanted(path, size)
    }

    /// Detect and decide, before any transfer. A denial is [`LicenceError::Denied`].
    pub async fn check(
        &self,
        larder: &Larder,
        kind: RepoType,
        repo: &RepoId,
        commit: &CommitId,
        info: &RepoInfo,
        tree: &[RepoFile],
    ) -> Result<PullLicence, LicenceError> {
        let catalog = Catalog::builtin();
        let files = evidence::fetch_licence_files(&larder.client, kind, repo, commit, tree).await?;
        let bases =
            evidence::base_model_licences(&larder.registry, info.card_data.as_ref()).await?;
        let detection = detect(
            &evidence::upstream_evidence(repo, info, files, bases),
            catalog,
        );
        let mut licence = PullLicence {
            licence: detection.licence_key().to_owned(),
            licence_id: licence_id(&detection, catalog),
            confidence: detection.confidence.as_str().to_owned(),
            verdict: None,
            rule: None,
            reasons: Vec::new(),
            conflicts: detection.conflicts.clone(),
            accepted: Vec::new(),
            overridden: None,
            detection,
        };
        let Some(policy) = &self.policy else {
            licence.accepted = self
                .accepted
                .iter()
                .filter(|key| {
                    licence
                        .detection
                        .effective_licences(catalog)
                        .iter()
                        .any(|(own, _)| own.as_deref().unwrap_or("unknown") == key.as_str())
                })
                .cloned()
                .collect();
            return Ok(licence);
        };
        let decision = decide(
            policy,
            repo.as_str(),
            &licence.detection,
            catalog,
            &self.accepted,
        );
        if decision.verdict.verdict == VerdictKind::Deny {
            let own = licence
                .detection
                .licence
                .as_deref()
                .and_then(|key| catalog.get(key));
            return Err(LicenceError::Denied(Box::new(Denial {
                repo: repo.to_string(),
                commit: commit.to_owned(),
                licence: licence.licence_id.clone(),
                licence_name: own.map(|l| l.name.clone()).unwrap_or_default(),
                rule: decision.verdict.rule,
                reasons: decision.verdict.reasons,
                acceptable: decision.acceptable,
            })));
        }
        licence.verdict = Some(decision.verdict.verdict.as_str().to_owned());
        licence.rule = Some(decision.verdict.rule);
        licence.reasons = decision.verdict.reasons;
        licence.accepted = decision.accepted;
        licence.overridden = decision.overridden;
        Ok(licence)
    }

    /// After the snapshot is recorded: store the detection and log accepted licences.
    pub async fn record(
        &self,
        larder: &Larder,
        kind: RepoType,
        repo: &RepoId,
        commit: &CommitId,
        licence: &PullLicence,
    ) -> Result<(), LicenceError> {
        let repo_kind = RepoKind::from(kind);
        larder
            .registry
            .record_licence(
                repo_kind,
                repo.as_str(),
                commit,
                licence_record(&licence.detection),
            )
            .await?;
        if !licence.accepted.is_empty() {
            let catalog = Catalog::builtin();
            let ids: Vec<String> = licence
                .accepted
                .iter()
                .map(|key| {
                    catalog
                        .get(key)
                        .map_or(key.as_str(), |l| l.report_id())
                        .to_owned()
                })
                .collect();
            larder
                .registry
                .log_audit(AuditEntry {
                    id: 0,
                    at: crate::now_unix(),
                    actor: self.actor.clone(),
                    action: ACCEPT_ACTION.to_owned(),
                    repo: Some(audit_repo_name(repo_kind, repo.as_str())),
                    detail: Some(json!({
                        "commit": commit,
                        "licences": ids,
                        "keys": licence.accepted,
                        "overridden": licence.overridden,
                        "verdict": licence.verdict,
                        "rule": licence.rule,
                    })),
                })
                .await?;
        }
        Ok(())
    }
}
