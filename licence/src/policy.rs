//! Licence policy: which licences a site allows, reviews or denies.
//!
//! A policy is TOML (a `--policy FILE`, or the `[policy]` table of the config, which the
//! caller deserialises into [`PolicySpec`]):
//!
//! ```toml
//! default = "review"            # for licences matched by nothing below
//! allow = ["apache-2.0", "mit", "llama3.1"]
//! deny = ["cc-by-nc-4.0"]
//! [require]
//! commercial_use = true         # "no" -> deny, "conditional"/"unknown" -> review
//! [[exception]]
//! repo = "acme/research-*"
//! verdict = "allow"
//! reason = "internal research only, approved 2026-11"
//! ```
//!
//! Entries take Hub ids, `license_name` values or catalog keys, plus `unknown` for
//! unresolved licences; entries the catalog does not know are an error naming them.
//! [`Policy::evaluate`] judges the repo's own licence and every base-model licence whose
//! terms follow derivatives; the most severe verdict wins, an exception overrides all, and
//! any detection conflict turns an `allow` into `review`.

use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, CommercialUse};
use crate::detect::Detection;
use crate::error::PolicyError;

/// A verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerdictKind {
    /// May be mirrored and used.
    Allow,
    /// Needs a human.
    Review,
    /// Must not be mirrored or used.
    Deny,
}

impl VerdictKind {
    /// The lowercase name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Review => "review",
            Self::Deny => "deny",
        }
    }
}

/// `[require]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequireSpec {
    /// Require commercial use: `no` denies, `conditional`/`unknown` go to review unless the
    /// licence is accepted.
    #[serde(default)]
    pub commercial_use: bool,
}

/// One `[[exception]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionSpec {
    /// `org/name`, glob allowed (`*` does not cross `/`).
    pub repo: String,
    /// The verdict for matching repos.
    pub verdict: VerdictKind,
    /// Why (kept in reports).
    pub reason: String,
}

fn default_verdict() -> VerdictKind {
    VerdictKind::Review
}

/// The policy as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// Verdict for licences no list matches.
    #[serde(default = "default_verdict")]
    pub default: VerdictKind,
    /// Allowed licences.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Licences that always need review.
    #[serde(default)]
    pub review: Vec<String>,
    /// Denied licences.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Requirements.
    #[serde(default)]
    pub require: RequireSpec,
    /// Per-repo overrides, first match wins.
    #[serde(default)]
    pub exception: Vec<ExceptionSpec>,
}

/// The outcome of [`Policy::evaluate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// The verdict.
    pub verdict: VerdictKind,
    /// The rule that decided, e.g. `deny: cc-by-nc-4.0` or `exception: acme/*`.
    pub rule: String,
    /// Every consideration, in order.
    pub reasons: Vec<String>,
}

/// A loaded, validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    default: VerdictKind,
    allow: Vec<String>,
    review: Vec<String>,
    deny: Vec<String>,
    require_commercial: bool,
    exceptions: Vec<(GlobMatcher, ExceptionSpec)>,
}

/// The special entry for unresolved licences.
const UNKNOWN: &str = "unknown";

/// Resolve policy entries to catalog keys; `unknown` stays `unknown`.
///
/// # Errors
/// [`PolicyError::UnknownLicences`] naming every entry the catalog does not know.
pub fn resolve_ids(
    ids: &[String],
    field: &'static str,
    catalog: &Catalog,
) -> Result<Vec<String>, PolicyError> {
    let mut keys = Vec::new();
    let mut unknown = Vec::new();
    for id in ids {
        if id.trim().eq_ignore_ascii_case(UNKNOWN) {
            keys.push(UNKNOWN.to_string());
        } else if let Some(licence) = catalog.lookup(id) {
            keys.push(licence.key.clone());
        } else {
            unknown.push(id.clone());
        }
    }
    if unknown.is_empty() {
        Ok(keys)
    } else {
        Err(PolicyError::UnknownLicences {
            field,
            ids: unknown,
        })
    }
}

impl Policy {
    /// Parse a policy file against the built-in catalog.
    ///
    /// # Errors
    /// [`PolicyError`] on bad TOML, unknown keys, unknown licences, contradictions or bad globs.
    pub fn from_toml(source: &str) -> Result<Policy, PolicyError> {
        Self::from_toml_with(source, Catalog::builtin())
    }

    /// Parse a policy file against a given catalog.
    ///
    /// # Errors
    /// As [`Policy::from_toml`].
    pub fn from_toml_with(source: &str, catalog: &Catalog) -> Result<Policy, PolicyError> {
        let spec: PolicySpec = toml::from_str(source).map_err(PolicyError::Parse)?;
        Self::from_spec(&spec, catalog)
    }

    /// Validate a deserialised spec (e.g. the config's `[policy]` table).
    ///
    /// # Errors
    /// As [`Policy::from_toml`] minus parsing.
    pub fn from_spec(spec: &PolicySpec, catalog: &Catalog) -> Result<Policy, PolicyError> {
        let allow = resolve_ids(&spec.allow, "allow", catalog)?;
        let review = resolve_ids(&spec.review, "review", catalog)?;
        let deny = resolve_ids(&spec.deny, "deny", catalog)?;
        for (first, first_keys, second, second_keys) in [
            ("allow", &allow, "deny", &deny),
            ("allow", &allow, "review", &review),
            ("review", &review, "deny", &deny),
        ] {
            if let Some(key) = first_keys.iter().find(|key| second_keys.contains(key)) {
                let id = catalog
                    .get(key)
                    .map_or(key.as_str(), |licence| licence.report_id())
                    .to_string();
                return Err(PolicyError::Contradiction { id, first, second });
            }
        }
        let mut exceptions = Vec::new();
        for exception in &spec.exception {
            let glob = Glob::new(&exception.repo).map_err(|source| PolicyError::Glob {
                pattern: exception.repo.clone(),
                source,
            })?;
            exceptions.push((glob.compile_matcher(), exception.clone()));
        }
        Ok(Policy {
            default: spec.default,
            allow,
            review,
            deny,
            require_commercial: spec.require.commercial_use,
            exceptions,
        })
    }

    /// Judge one detection. `accepted` are `--accept-licence` ids: they allow a licence
    /// matched by no list and satisfy `require.commercial_use` for conditional terms, but do
    /// not override `deny` or a non-commercial licence.
    #[must_use]
    pub fn evaluate(
        &self,
        repo: &str,
        detection: &Detection,
        catalog: &Catalog,
        accepted: &[String],
    ) -> Verdict {
        if let Some((_, exception)) = self.exceptions.iter().find(|(glob, _)| glob.is_match(repo)) {
            return Verdict {
                verdict: exception.verdict,
                rule: format!("exception: {}", exception.repo),
                reasons: vec![exception.reason.clone()],
            };
        }
        let mut reasons = Vec::new();
        let mut accepted_keys = Vec::new();
        for id in accepted {
            match catalog.lookup(id) {
                Some(licence) => accepted_keys.push(licence.key.clone()),
                None => reasons.push(format!(
                    "accepted licence `{id}` matches no catalog licence (ignored)"
                )),
            }
        }
        let mut decision = Decision {
            verdict: VerdictKind::Allow,
            rule: String::new(),
        };
        for (key, via) in detection.effective_licences(catalog) {
            let key = key.unwrap_or_else(|| UNKNOWN.to_string());
            let licence = catalog.get(&key);
            let id = licence
                .map_or(key.as_str(), |licence| licence.report_id())
                .to_string();
            let via = via
                .map(|base| format!(" (inherited from base model {base})"))
                .unwrap_or_default();
            let (candidate, candidate_rule) = if self.deny.contains(&key) {
                (VerdictKind::Deny, format!("deny: {id}"))
            } else if self.review.contains(&key) {
                (VerdictKind::Review, format!("review: {id}"))
            } else if self.allow.contains(&key) {
                (VerdictKind::Allow, format!("allow: {id}"))
            } else if accepted_keys.contains(&key) {
                (VerdictKind::Allow, format!("accepted: {id}"))
            } else {
                (self.default, format!("default: {}", self.default.as_str()))
            };
            reasons.push(format!(
                "{id}{via}: {} by `{candidate_rule}`",
                candidate.as_str()
            ));
            decision.raise(candidate, candidate_rule);
            if !self.require_commercial {
                continue;
            }
            let commercial =
                licence.map_or(CommercialUse::Unknown, |licence| licence.commercial_use);
            match commercial {
                CommercialUse::Yes => {}
                CommercialUse::No => {
                    reasons.push(format!("{id}{via}: commercial use is `no`"));
                    decision.raise(
                        VerdictKind::Deny,
                        format!("require.commercial_use: {id} does not allow commercial use"),
                    );
                }
                CommercialUse::Conditional | CommercialUse::Unknown
                    if accepted_keys.contains(&key) =>
                {
                    reasons.push(format!(
                        "{id}{via}: commercial use is `{}`, conditions accepted",
                        commercial.as_str()
                    ));
                }
                CommercialUse::Conditional | CommercialUse::Unknown => {
                    reasons.push(format!(
                        "{id}{via}: commercial use is `{}`",
                        commercial.as_str()
                    ));
                    decision.raise(
                        VerdictKind::Review,
                        format!("require.commercial_use: {id} is {}", commercial.as_str()),
                    );
                }
            }
        }
        if !detection.conflicts.is_empty() {
            for conflict in &detection.conflicts {
                reasons.push(format!("conflict: {}", conflict.message));
            }
            decision.raise(
                VerdictKind::Review,
                "conflicting licence evidence".to_string(),
            );
        }
        Verdict {
            verdict: decision.verdict,
            rule: decision.rule,
            reasons,
        }
    }
}

/// The running verdict: the first rule reaching the most severe verdict decides.
struct Decision {
    verdict: VerdictKind,
    rule: String,
}

impl Decision {
    fn raise(&mut self, candidate: VerdictKind, rule: String) {
        if self.rule.is_empty() || candidate > self.verdict {
            self.verdict = candidate;
            self.rule = rule;
        }
    }
}
