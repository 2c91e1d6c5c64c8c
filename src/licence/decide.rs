//! Policy decisions with accepted licences.
//!
//! [`Policy::evaluate`] already lets an accepted licence stand in for a missing `allow` entry
//! and satisfy `require.commercial_use` for conditional terms. A `deny` needs more: the user
//! accepting the licence by name (`--accept-licence KEY`) on the pull, which is then recorded
//! in the audit log. [`decide`] overrides a deny when every effective licence that is denied
//! on its own terms was accepted; a per-repo `[[exception]]` that denies is never overridden.

use larder_licence::{Catalog, Confidence, Detection, Policy, Verdict, VerdictKind};

use super::LicenceError;

/// The special id for an unresolved licence.
const UNKNOWN: &str = "unknown";

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The verdict (after any override).
    pub verdict: Verdict,
    /// Catalog keys of accepted licences that apply to this repo.
    pub accepted: Vec<String>,
    /// When an acceptance overrode a deny: the rule that denied.
    pub overridden: Option<String>,
    /// For a deny: ids `--accept-licence` would need; empty when nothing can override.
    pub acceptable: Vec<String>,
}

/// Resolve `--accept-licence` ids to catalog keys (`unknown` stays `unknown`).
pub fn accepted_keys(ids: &[String], catalog: &Catalog) -> Result<Vec<String>, LicenceError> {
    ids.iter()
        .map(|id| {
            if id.trim().eq_ignore_ascii_case(UNKNOWN) {
                Ok(UNKNOWN.to_owned())
            } else {
                catalog
                    .lookup(id)
                    .map(|licence| licence.key.clone())
                    .ok_or_else(|| LicenceError::UnknownAccepted { id: id.clone() })
            }
        })
        .collect()
}

fn report_id(catalog: &Catalog, key: &str) -> String {
    catalog
        .get(key)
        .map_or(key, |licence| licence.report_id())
        .to_owned()
}

/// The verdict on one licence alone, as if it were the repo's only licence.
fn single_verdict(
    policy: &Policy,
    repo: &str,
    key: Option<&str>,
    catalog: &Catalog,
) -> VerdictKind {
    let detection = Detection {
        repo: repo.to_owned(),
        signals: Vec::new(),
        licence: key.map(str::to_owned),
        declared: None,
        declared_unresolved: None,
        confidence: Confidence::Medium,
        conflicts: Vec::new(),
        inherited: Vec::new(),
        notice_files: Vec::new(),
        files: Vec::new(),
    };
    policy.evaluate(repo, &detection, catalog, &[]).verdict
}

/// Judge a detection under `policy`, with `accepted` catalog keys (from `--accept-licence`
/// or the audit log).
pub fn decide(
    policy: &Policy,
    repo: &str,
    detection: &Detection,
    catalog: &Catalog,
    accepted: &[String],
) -> Decision {
    let effective: Vec<String> = detection
        .effective_licences(catalog)
        .into_iter()
        .map(|(key, _)| key.unwrap_or_else(|| UNKNOWN.to_owned()))
        .collect();
    let applied: Vec<String> = accepted
        .iter()
        .filter(|key| effective.contains(key))
        .cloned()
        .collect();
    let for_policy: Vec<String> = applied
        .iter()
        .filter(|key| *key != UNKNOWN)
        .cloned()
        .collect();
    let verdict = policy.evaluate(repo, detection, catalog, &for_policy);
    if verdict.verdict != VerdictKind::Deny {
        return Decision {
            verdict,
            accepted: applied,
            overridden: None,
            acceptable: Vec::new(),
        };
    }
    if verdict.rule.starts_with("exception:") {
        return Decision {
            verdict,
            accepted: applied,
            overridden: None,
            acceptable: Vec::new(),
        };
    }
    let mut denied: Vec<String> = effective
        .iter()
        .filter(|key| {
            let key = (key.as_str() != UNKNOWN).then_some(key.as_str());
            single_verdict(policy, repo, key, catalog) == VerdictKind::Deny
        })
        .cloned()
        .collect();
    if denied.is_empty() {
        denied.clone_from(&effective);
    }
    if denied.iter().all(|key| applied.contains(key)) {
        let ids: Vec<String> = denied.iter().map(|key| report_id(catalog, key)).collect();
        let mut reasons = verdict.reasons.clone();
        reasons.push(format!(
            "`{}` overridden: licence accepted ({})",
            verdict.rule,
            ids.join(", ")
        ));
        let kind = if detection.conflicts.is_empty() {
            VerdictKind::Allow
        } else {
            VerdictKind::Review
        };
        return Decision {
            overridden: Some(verdict.rule.clone()),
            verdict: Verdict {
                verdict: kind,
                rule: format!("accepted: {}", ids.join(", ")),
                reasons,
            },
            accepted: applied,
            acceptable: Vec::new(),
        };
    }
    Decision {
        acceptable: denied.iter().map(|key| report_id(catalog, key)).collect(),
        verdict,
        accepted: applied,
        overridden: None,
    }
}
