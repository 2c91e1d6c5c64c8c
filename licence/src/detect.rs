//! Licence detection for one repo revision.
//!
//! [`detect`] reads what the caller gathered at a pinned commit ([`RepoEvidence`]): the
//! licence files (`LICENSE*`, `LICENCE*`, `COPYING*`, `NOTICE*`, `USE_POLICY.md`), the card's
//! `license` / `license_name` / `license_link`, `license:*` tags, the gate and its prompt,
//! and the licences of the `base_model`s. Every clue becomes a [`Signal`] naming where it was
//! found. Signals resolve, in order of strength (files, card, tags, gate prompt), to one
//! catalog key with a [`Confidence`], or to `unknown`. Disagreements become [`Conflict`]s:
//! a card that says one licence over a file with another's text, a permissive card over a
//! base model whose terms follow derivatives, a derivative whose name breaks the base
//! licence's naming rule. Detection never adjudicates; it records and flags.

use serde::{Deserialize, Serialize};

mod lineage;
mod resolve;

use crate::catalog::{Catalog, CommercialUse, Licence};
use crate::text::{self, TextMatch};

/// Where a signal was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignalSource {
    /// A licence-like file in the repo.
    LicenceFile {
        /// Its path in the repo.
        path: String,
    },
    /// The card's `license`.
    CardLicense,
    /// The card's `license_name`.
    CardLicenseName,
    /// The card's `license_link`.
    CardLicenseLink,
    /// A `license:<id>` tag.
    Tag,
    /// The gate (`gated`) or its `extra_gated_prompt`.
    Gate,
    /// A `base_model` and the licence the caller knows for it.
    BaseModel,
}

impl SignalSource {
    /// A short label, e.g. `file:LICENSE` or `card.license`.
    #[must_use]
    pub fn label(&self) -> String {
        match self {
            Self::LicenceFile { path } => format!("file:{path}"),
            Self::CardLicense => "card.license".to_string(),
            Self::CardLicenseName => "card.license_name".to_string(),
            Self::CardLicenseLink => "card.license_link".to_string(),
            Self::Tag => "tag".to_string(),
            Self::Gate => "gate".to_string(),
            Self::BaseModel => "base_model".to_string(),
        }
    }
}

/// One clue about the licence, with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// Where it was found.
    pub source: SignalSource,
    /// What was found (the id, the URL, the matched key, the base repo…).
    pub value: String,
    /// The catalog key it resolves to, if any.
    pub licence: Option<String>,
    /// Extra detail (hashes, match score, version line, gate mode).
    pub detail: Option<String>,
}

/// What the caller gathered for one repo at one commit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RepoEvidence {
    /// `org/name`.
    pub repo: String,
    /// The card's YAML front matter as JSON (`cardData`), if any.
    pub card: Option<serde_json::Value>,
    /// The repo's tags (those starting `license:` are used).
    pub tags: Vec<String>,
    /// The gate mode (`auto`, `manual`), `None` when not gated.
    pub gated: Option<String>,
    /// Licence-like files: (path, bytes). Select them with [`is_licence_file`].
    pub licence_files: Vec<(String, Vec<u8>)>,
    /// Base models and the licence id (catalog key, Hub id or alias) the caller knows for
    /// each, `None` when unknown. Bases named in the card but missing here are added as
    /// unknown.
    pub base_model_licences: Vec<(String, Option<String>)>,
}

/// How sure the resolution is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// Nothing resolved.
    None,
    /// Only a weak signal (tag, gate, link, family id), or strong signals disagree.
    Low,
    /// One strong signal (a licence file or the card).
    Medium,
    /// A licence file and the card (or gate prompt) agree.
    High,
}

impl Confidence {
    /// As a number in 0..=1 for sorting and thresholds.
    #[must_use]
    pub fn score(self) -> f32 {
        match self {
            Self::None => 0.0,
            Self::Low => 0.4,
            Self::Medium => 0.7,
            Self::High => 0.95,
        }
    }

    /// The lowercase name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// What kind of disagreement was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// A licence file's text is another licence than the card declares.
    CardVsFile,
    /// The card and a `license:` tag disagree.
    CardVsTag,
    /// The gate prompt's text is another licence than the card declares.
    CardVsGate,
    /// Licence files name different licences (split licensing).
    SplitLicensing,
    /// A base model's terms follow derivatives but the repo declares something else.
    InheritedTerms,
    /// The repo's name breaks a naming rule of its (base) licence.
    NamingRule,
}

/// A disagreement between signals, for a human to look at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// What kind.
    pub kind: ConflictKind,
    /// What was found, naming licences by Hub id where they have one.
    pub message: String,
}

/// A base model's licence carried by this repo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inherited {
    /// The base repo.
    pub base_model: String,
    /// Its catalog key, `None` when unknown.
    pub licence: Option<String>,
}

/// The result of [`detect`] for one revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// The repo.
    pub repo: String,
    /// Every clue found.
    pub signals: Vec<Signal>,
    /// The resolved catalog key, `None` = `unknown`.
    pub licence: Option<String>,
    /// The key the card declares (`license`, else `license_name`/`license_link`), if it resolves.
    pub declared: Option<String>,
    /// The card's own words when they do not resolve (e.g. an unlisted `license_name`).
    pub declared_unresolved: Option<String>,
    /// How sure.
    pub confidence: Confidence,
    /// Disagreements.
    pub conflicts: Vec<Conflict>,
    /// Base models and their licences.
    pub inherited: Vec<Inherited>,
    /// NOTICE files found (path, text), whose attribution notices must be reproduced.
    pub notice_files: Vec<(String, String)>,
    /// Each licence file's hashes and match.
    pub files: Vec<(String, TextMatch)>,
}

impl Detection {
    /// The resolved licence key, or `unknown`.
    #[must_use]
    pub fn licence_key(&self) -> &str {
        self.licence.as_deref().unwrap_or("unknown")
    }

    /// The licences whose terms apply: the repo's own (or `None` = unknown) followed by base
    /// licences that flow to derivatives and differ from it. Unknown bases appear as `None`.
    #[must_use]
    pub fn effective_licences(&self, catalog: &Catalog) -> Vec<(Option<String>, Option<String>)> {
        let mut out: Vec<(Option<String>, Option<String>)> = vec![(self.licence.clone(), None)];
        for inherited in &self.inherited {
            let flows = match &inherited.licence {
                Some(key) => catalog.get(key).is_none_or(Licence::flows_to_derivatives),
                None => true,
            };
            if !flows || inherited.licence == self.licence {
                continue;
            }
            if out.iter().any(|(key, _)| *key == inherited.licence) {
                continue;
            }
            out.push((
                inherited.licence.clone(),
                Some(inherited.base_model.clone()),
            ));
        }
        out
    }

    /// Combined commercial use over [`Self::effective_licences`]: the most restrictive wins
    /// (no > unknown > conditional > yes).
    #[must_use]
    pub fn commercial_use(&self, catalog: &Catalog) -> CommercialUse {
        let rank = |use_: CommercialUse| match use_ {
            CommercialUse::Yes => 0,
            CommercialUse::Conditional => 1,
            CommercialUse::Unknown => 2,
            CommercialUse::No => 3,
        };
        self.effective_licences(catalog)
            .iter()
            .map(|(key, _)| {
                key.as_deref()
                    .and_then(|key| catalog.get(key))
                    .map_or(CommercialUse::Unknown, |licence| licence.commercial_use)
            })
            .max_by_key(|use_| rank(*use_))
            .unwrap_or(CommercialUse::Unknown)
    }
}

/// Whether a repo path is a licence-like file detection should read: `LICENSE*`,
/// `LICENCE*`, `COPYING*`, `NOTICE*`, `USE_POLICY*`, `MODEL_LICENSE*`, `LICENSE-MODEL`…
/// (case-insensitive, any directory).
#[must_use]
pub fn is_licence_file(path: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    [
        "license",
        "licence",
        "copying",
        "notice",
        "use_policy",
        "model_license",
        "model-license",
    ]
    .iter()
    .any(|prefix| base.starts_with(prefix))
        // Files named after the licence title, e.g. QwenLM's `Tongyi Qianwen RESEARCH LICENSE AGREEMENT`.
        || base.ends_with("license agreement")
}

/// The role of a licence file, which decides how much its match counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum FileRole {
    /// The model's licence text (`LICENSE`, `LICENSE-MODEL`, `COPYING`).
    Licence,
    /// A NOTICE or acceptable-use policy file: names the licence, isn't it.
    Supporting,
    /// A code-only licence (`LICENSE-CODE`) in a split-licensed repo.
    Code,
}

fn file_role(path: &str) -> FileRole {
    let base = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    if base.contains("code") {
        FileRole::Code
    } else if base.starts_with("notice") || base.starts_with("use_policy") {
        FileRole::Supporting
    } else {
        FileRole::Licence
    }
}

/// Strings from a card field that may be a string or a list of strings.
fn card_strings(card: Option<&serde_json::Value>, field: &str) -> Vec<String> {
    match card.and_then(|card| card.get(field)) {
        Some(serde_json::Value::String(value)) => vec![value.trim().to_string()],
        Some(serde_json::Value::Array(values)) => values
            .iter()
            .filter_map(|value| value.as_str().map(|value| value.trim().to_string()))
            .collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|value| !value.is_empty())
    .collect()
}

pub(crate) fn id_of(catalog: &Catalog, key: &str) -> String {
    catalog.get(key).map_or_else(
        || key.to_string(),
        |licence| licence.report_id().to_string(),
    )
}

/// Detect the licence of one repo revision. Pure: no I/O; never panics on odd input.
#[must_use]
pub fn detect(evidence: &RepoEvidence, catalog: &Catalog) -> Detection {
    let card = evidence.card.as_ref();
    let mut signals = Vec::new();
    let mut files = Vec::new();
    let mut notice_files = Vec::new();
    let mut file_keys: Vec<(FileRole, String, String)> = Vec::new();

    // 1. Licence files.
    for (path, bytes) in &evidence.licence_files {
        let found = text::identify(bytes, catalog);
        let role = file_role(path);
        if role == FileRole::Supporting
            && path
                .rsplit('/')
                .next()
                .unwrap_or(path)
                .to_ascii_lowercase()
                .starts_with("notice")
        {
            notice_files.push((path.clone(), String::from_utf8_lossy(bytes).into_owned()));
        }
        if let Some(key) = &found.key {
            file_keys.push((role, key.clone(), path.clone()));
        }
        signals.push(Signal {
            source: SignalSource::LicenceFile { path: path.clone() },
            value: found
                .key
                .as_deref()
                .map_or_else(|| "unrecognised".to_string(), |key| id_of(catalog, key)),
            licence: found.key.clone(),
            detail: Some(found.describe()),
        });
        files.push((path.clone(), found));
    }

    // 2. The card.
    let mut declared: Option<String> = None;
    let mut declared_unresolved: Option<String> = None;
    for value in card_strings(card, "license") {
        let resolved = catalog.lookup(&value).map(|licence| licence.key.clone());
        if declared.is_none() {
            declared.clone_from(&resolved);
        }
        let lowered = value.to_ascii_lowercase();
        if resolved.is_none()
            && lowered != "other"
            && lowered != "unknown"
            && declared_unresolved.is_none()
        {
            declared_unresolved = Some(value.clone());
        }
        signals.push(Signal {
            source: SignalSource::CardLicense,
            value,
            licence: resolved,
            detail: None,
        });
    }
    for value in card_strings(card, "license_name") {
        let resolved = catalog.lookup(&value).map(|licence| licence.key.clone());
        if declared.is_none() {
            declared.clone_from(&resolved);
            if resolved.is_none() && declared_unresolved.is_none() {
                declared_unresolved = Some(value.clone());
            }
        }
        signals.push(Signal {
            source: SignalSource::CardLicenseName,
            value,
            licence: resolved,
            detail: None,
        });
    }
    let mut link_key = None;
    for value in card_strings(card, "license_link") {
        let resolved = catalog
            .lookup_link(&value)
            .map(|licence| licence.key.clone());
        let in_repo = !value.contains("://");
        if link_key.is_none() {
            link_key.clone_from(&resolved);
        }
        signals.push(Signal {
            source: SignalSource::CardLicenseLink,
            detail: in_repo.then(|| "points at a file in the repo".to_string()),
            value,
            licence: resolved,
        });
    }
    if declared.is_none() && declared_unresolved.is_none() {
        declared.clone_from(&link_key);
    }

    // 3. Tags.
    let mut tag_keys: Vec<String> = Vec::new();
    for tag in &evidence.tags {
        let Some(id) = tag.strip_prefix("license:") else {
            continue;
        };
        let resolved = catalog.lookup(id).map(|licence| licence.key.clone());
        if let Some(key) = &resolved
            && !tag_keys.contains(key)
        {
            tag_keys.push(key.clone());
        }
        signals.push(Signal {
            source: SignalSource::Tag,
            value: tag.clone(),
            licence: resolved,
            detail: None,
        });
    }

    // 4. The gate.
    let gate_mode = evidence
        .gated
        .clone()
        .or_else(|| card_strings(card, "gated").into_iter().next())
        .filter(|mode| !matches!(mode.to_ascii_lowercase().as_str(), "false" | "no" | ""));
    if let Some(mode) = &gate_mode {
        signals.push(Signal {
            source: SignalSource::Gate,
            value: format!("gated:{mode}"),
            licence: None,
            detail: None,
        });
    }
    // What users attested and whether the gate keeps EU users out: evidence, not licence.
    if let Some(serde_json::Value::Object(fields)) =
        card.and_then(|card| card.get("extra_gated_fields"))
    {
        let labels: Vec<&str> = fields.keys().map(String::as_str).collect();
        signals.push(Signal {
            source: SignalSource::Gate,
            value: "extra_gated_fields".to_string(),
            licence: None,
            detail: Some(labels.join(" | ")),
        });
    }
    if card
        .and_then(|card| card.get("extra_gated_eu_disallowed"))
        .and_then(serde_json::Value::as_bool)
        == Some(true)
    {
        signals.push(Signal {
            source: SignalSource::Gate,
            value: "extra_gated_eu_disallowed".to_string(),
            licence: None,
            detail: Some("the gate blocks users whose IP geolocates to the EU".to_string()),
        });
    }
    let mut gate_key = None;
    if let Some(prompt) = card_strings(card, "extra_gated_prompt").into_iter().next() {
        let found = text::identify(prompt.as_bytes(), catalog);
        gate_key.clone_from(&found.key);
        signals.push(Signal {
            source: SignalSource::Gate,
            value: found.key.as_deref().map_or_else(
                || "extra_gated_prompt".to_string(),
                |key| id_of(catalog, key),
            ),
            licence: found.key.clone(),
            detail: Some(format!("extra_gated_prompt {}", found.describe())),
        });
    }

    // 5. Lineage.
    let mut inherited: Vec<Inherited> = Vec::new();
    for (base, id) in &evidence.base_model_licences {
        let resolved = id
            .as_deref()
            .and_then(|id| catalog.lookup(id))
            .map(|licence| licence.key.clone());
        inherited.push(Inherited {
            base_model: base.clone(),
            licence: resolved.clone(),
        });
        signals.push(Signal {
            source: SignalSource::BaseModel,
            value: base.clone(),
            licence: resolved,
            detail: Some(format!("licence: {}", id.as_deref().unwrap_or("unknown"))),
        });
    }
    for base in card_strings(card, "base_model") {
        if inherited.iter().any(|known| known.base_model == base) {
            continue;
        }
        inherited.push(Inherited {
            base_model: base.clone(),
            licence: None,
        });
        signals.push(Signal {
            source: SignalSource::BaseModel,
            value: base,
            licence: None,
            detail: Some("licence: unknown (not supplied)".to_string()),
        });
    }

    let mut conflicts = Vec::new();
    let (licence, confidence) = resolve::resolve(
        catalog,
        &file_keys,
        declared.as_deref(),
        &tag_keys,
        gate_key.as_deref(),
        &mut conflicts,
    );
    lineage::lineage_conflicts(
        catalog,
        &evidence.repo,
        licence.as_deref(),
        &inherited,
        &mut conflicts,
    );

    Detection {
        repo: evidence.repo.clone(),
        signals,
        licence,
        declared,
        declared_unresolved,
        confidence,
        conflicts,
        inherited,
        notice_files,
        files,
    }
}
