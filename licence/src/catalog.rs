//! The licence catalog: `licence/licences.toml`, embedded at build time.
//!
//! The catalog is data, not code. Each [`Licence`] row carries the facts an audit needs
//! (commercial use, caps, attribution, naming rules, AUP, output-training restrictions,
//! redistribution and territorial clauses) plus the identifiers detection resolves against:
//! the catalog key, the Hub `license:` id, former Hub ids, `license_name` aliases and known
//! `license_link` URLs. [`Catalog::lookup`] accepts any of them, forgiving case and
//! punctuation, so spelling variants of one custom licence (`deepseek`, `deepseek-license`)
//! resolve to one key.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

mod ids;

pub use ids::validate_rows;
use ids::{id_forms, normalise_link};

use crate::error::CatalogError;

/// The catalog as shipped, embedded from `licence/licences.toml`.
pub const BUILTIN_CATALOG: &str = include_str!("../licences.toml");

/// Whether a licence allows commercial use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommercialUse {
    /// Allowed without a cap.
    Yes,
    /// Not allowed.
    No,
    /// Allowed under conditions (caps, AUP, attribution).
    Conditional,
    /// Not known (family ids, unresolved licences).
    Unknown,
}

impl CommercialUse {
    /// The lowercase name used in the catalog and reports.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Yes => "yes",
            Self::No => "no",
            Self::Conditional => "conditional",
            Self::Unknown => "unknown",
        }
    }
}

/// How well the catalog row is sourced (see `licences-research.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Evidence {
    /// Read from the licence text itself.
    Primary,
    /// A third party quoting or summarising the text.
    Secondary,
    /// A single secondary source or an unchecked detail: verify before use.
    Unverified,
}

impl Evidence {
    /// The lowercase name used in the catalog and reports.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Secondary => "secondary",
            Self::Unverified => "unverified",
        }
    }
}

/// The broad class of a licence, which decides whether its terms follow derivatives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LicenceKind {
    /// Permissive: notices only; derivatives may be relicensed.
    Permissive,
    /// Strong copyleft.
    Copyleft,
    /// Weak / limited copyleft or share-alike.
    WeakCopyleft,
    /// Non-commercial or research-only.
    NonCommercial,
    /// Open weights with conditions (caps, AUP, naming, use restrictions).
    Conditional,
    /// A Hub family id (`openrail`, `lgpl`) that does not name one text.
    Family,
}

/// A user (MAU) or revenue threshold and what happens above it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cap {
    /// `none`, `mau`, `mau_or_revenue`, `annual_revenue`, `monthly_revenue`, `attributable_revenue`.
    pub kind: String,
    /// The threshold (users or currency units).
    #[serde(default)]
    pub threshold: Option<u64>,
    /// Currency of a revenue threshold.
    #[serde(default)]
    pub currency: Option<String>,
    /// Who is counted.
    #[serde(default)]
    pub scope: Option<String>,
    /// How and when it is measured.
    #[serde(default)]
    pub measured: Option<String>,
    /// The period of a revenue threshold.
    #[serde(default)]
    pub period: Option<String>,
    /// What happens above the threshold.
    #[serde(default)]
    pub effect: Option<String>,
}

impl Cap {
    /// Whether this is a real cap (kind other than `none`).
    #[must_use]
    pub fn is_set(&self) -> bool {
        self.kind != "none"
    }

    /// A one-line summary, e.g. `mau > 700000000 (licensee and affiliates)`.
    #[must_use]
    pub fn summary(&self) -> String {
        if !self.is_set() {
            return String::new();
        }
        let mut out = self.kind.clone();
        if let Some(threshold) = self.threshold {
            out.push_str(" > ");
            out.push_str(&threshold.to_string());
            if let Some(currency) = &self.currency {
                out.push(' ');
                out.push_str(currency);
            }
        }
        if let Some(scope) = &self.scope {
            out.push_str(" (");
            out.push_str(scope);
            out.push(')');
        }
        out
    }
}

/// An acceptable-use policy incorporated by reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aup {
    /// Where the policy lives, `""` if none.
    pub url: String,
    /// Whether the licence incorporates it.
    pub incorporated: bool,
    /// Whether the licensor may change it without a new licence version.
    pub updatable: bool,
}

/// One catalog row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Licence {
    /// Catalog key (stable, `snake_case`).
    pub key: String,
    /// Full name.
    pub name: String,
    /// Licensor family, e.g. `meta-llama`.
    pub family: String,
    /// Version or date of the text.
    pub version: String,
    /// Broad class.
    pub kind: LicenceKind,
    /// The Hub `license:` id, `""` if the Hub has none.
    pub hub_id: String,
    /// Former Hub ids (e.g. `open-mdw`, `tii-falcon-llm`).
    pub hub_aliases: Vec<String>,
    /// `license_name` values seen on cards.
    pub license_names: Vec<String>,
    /// Known `license_link` URLs.
    pub links: Vec<String>,
    /// SPDX License List id, `""` if not listed.
    pub spdx_id: String,
    /// LicenseRef to use when `spdx_id` is empty.
    pub spdx_ref: String,
    /// ScanCode category, where known.
    pub scancode_category: String,
    /// OSI approval.
    pub osi_approved: bool,
    /// Commercial use.
    pub commercial_use: CommercialUse,
    /// Why, in a sentence.
    pub commercial_note: String,
    /// Monthly-active-user cap.
    pub user_cap: Cap,
    /// Revenue cap.
    pub revenue_cap: Cap,
    /// Attribution duties.
    pub attribution: Vec<String>,
    /// The NOTICE text a distribution must carry, `""` if none.
    pub notice_text: String,
    /// Text to display publicly (e.g. "Built with Llama"), `""` if none.
    pub display_text: String,
    /// Naming rule for derivatives, in words.
    pub naming_rule: String,
    /// Required prefix of a derivative's name (e.g. `Llama`), `""` if none.
    pub name_prefix: String,
    /// Acceptable-use policy.
    pub aup: Aup,
    /// Restriction on training other models with outputs.
    pub output_training: String,
    /// Detail of `output_training`.
    pub output_training_note: String,
    /// Redistribution duties.
    pub redistribution: Vec<String>,
    /// What flows down to derivatives.
    pub flow_down: String,
    /// Territorial clauses, `""` if none.
    pub territorial: String,
    /// Governing law, where known.
    pub governing_law: String,
    /// Termination triggers.
    pub termination: Vec<String>,
    /// Where the text is.
    pub text_url: String,
    /// Catalog key of a licence whose text this one extends (`""` if none): a text matching
    /// this licence's own phrases and its base's is this licence, not the base.
    pub based_on: String,
    /// Distinctive phrases of the text, matched after [`crate::normalise::normalise`].
    pub fingerprints: Vec<String>,
    /// How well the row is sourced.
    pub evidence: Evidence,
    /// Sources of the row.
    pub source_urls: Vec<String>,
    /// Free-text notes.
    pub notes: String,
}

impl Licence {
    /// The id reports use: the Hub id where there is one, else the catalog key.
    #[must_use]
    pub fn report_id(&self) -> &str {
        if self.hub_id.is_empty() {
            &self.key
        } else {
            &self.hub_id
        }
    }

    /// The SPDX id, else the LicenseRef.
    #[must_use]
    pub fn spdx_or_ref(&self) -> &str {
        if self.spdx_id.is_empty() {
            &self.spdx_ref
        } else {
            &self.spdx_id
        }
    }

    /// Every id [`Catalog::lookup`] resolves to this licence (key, Hub ids, `license_name`s).
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.key.as_str())
            .chain((!self.hub_id.is_empty()).then_some(self.hub_id.as_str()))
            .chain(self.hub_aliases.iter().map(String::as_str))
            .chain(self.license_names.iter().map(String::as_str))
    }

    /// Whether terms follow derivatives (anything but permissive), so a derivative that
    /// declares another licence still owes these.
    #[must_use]
    pub fn flows_to_derivatives(&self) -> bool {
        self.kind != LicenceKind::Permissive
    }

    /// The obligations a holder owes, as short strings for reports.
    #[must_use]
    pub fn obligations(&self) -> Vec<String> {
        let mut out: Vec<String> = self.attribution.clone();
        if !self.notice_text.is_empty() {
            out.push(format!("NOTICE: {}", self.notice_text));
        }
        if !self.display_text.is_empty() {
            out.push(format!("display: {}", self.display_text));
        }
        if !self.naming_rule.is_empty() {
            out.push(format!("naming: {}", self.naming_rule));
        }
        if self.aup.incorporated && !self.aup.url.is_empty() {
            out.push(format!("acceptable use policy: {}", self.aup.url));
        }
        if !self.territorial.is_empty() {
            out.push(format!("territorial: {}", self.territorial));
        }
        if !matches!(self.output_training.as_str(), "none" | "") {
            out.push(format!("output training: {}", self.output_training));
        }
        out
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[expect(dead_code, reason = "provenance of the file, kept for readers")]
    meta: toml::Table,
    licence: Vec<Licence>,
}

/// The licence catalog with its lookup indexes.
#[derive(Debug, Clone)]
pub struct Catalog {
    licences: Vec<Licence>,
    by_id: HashMap<String, usize>,
    by_link: HashMap<String, usize>,
    /// (normalised phrase, licence index, weight)
    phrases: Vec<(String, usize, f32)>,
}

impl Catalog {
    /// The catalog shipped with the crate. A malformed embedded catalog is a build defect
    /// caught by the crate's tests; should it ever happen, the result is an empty catalog
    /// (everything resolves to `unknown`) rather than a panic.
    #[must_use]
    pub fn builtin() -> &'static Catalog {
        static BUILTIN: OnceLock<Catalog> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            Catalog::from_toml(BUILTIN_CATALOG).unwrap_or_else(|_| Catalog::empty())
        })
    }

    fn empty() -> Catalog {
        Catalog {
            licences: Vec::new(),
            by_id: HashMap::new(),
            by_link: HashMap::new(),
            phrases: Vec::new(),
        }
    }

    /// Parse and index a catalog file, rejecting duplicate keys, ids, aliases or links.
    ///
    /// # Errors
    /// [`CatalogError`] on malformed TOML, missing required fields or duplicates.
    pub fn from_toml(source: &str) -> Result<Catalog, CatalogError> {
        let file: CatalogFile = toml::from_str(source).map_err(CatalogError::Parse)?;
        let problems = validate_rows(&file.licence);
        if !problems.is_empty() {
            return Err(CatalogError::Invalid { problems });
        }
        let mut by_id = HashMap::new();
        let mut by_link = HashMap::new();
        let mut phrase_owners: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, licence) in file.licence.iter().enumerate() {
            for id in licence.ids() {
                for form in id_forms(id) {
                    by_id.entry(form).or_insert(index);
                }
            }
            for link in &licence.links {
                by_link.insert(normalise_link(link), index);
            }
            for phrase in &licence.fingerprints {
                let normalised = crate::normalise::normalise(phrase);
                let owners = phrase_owners.entry(normalised).or_default();
                if !owners.contains(&index) {
                    owners.push(index);
                }
            }
        }
        let mut phrases = Vec::new();
        for (phrase, owners) in phrase_owners {
            // A phrase shared by n licences is worth 1/n to each: the sibling that also
            // carries its own distinctive phrase wins (Kimi's modified MIT over MIT).
            #[expect(clippy::cast_precision_loss, reason = "a handful of owners")]
            let weight = 1.0 / owners.len() as f32;
            for owner in owners {
                phrases.push((phrase.clone(), owner, weight));
            }
        }
        phrases.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        Ok(Catalog {
            licences: file.licence,
            by_id,
            by_link,
            phrases,
        })
    }

    /// Every licence, in file order.
    #[must_use]
    pub fn all(&self) -> &[Licence] {
        &self.licences
    }

    /// The licence with this catalog key exactly.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Licence> {
        self.licences.iter().find(|licence| licence.key == key)
    }

    /// Resolve a catalog key, Hub id (current or former) or `license_name` alias.
    ///
    /// Case, `_`/`-`/space/`.` differences and a trailing `-license`/`-licence`/`-agreement`
    /// are forgiven. `other`, `unknown` and empty strings resolve to nothing.
    #[must_use]
    pub fn lookup(&self, id_or_alias: &str) -> Option<&Licence> {
        let trimmed = id_or_alias.trim();
        let lowered = trimmed.to_ascii_lowercase();
        if matches!(lowered.as_str(), "" | "other" | "unknown") {
            return None;
        }
        id_forms(trimmed)
            .into_iter()
            .find_map(|form| self.by_id.get(&form))
            .map(|&index| &self.licences[index])
    }

    /// Resolve a `license_link` URL to the licence whose text it points at, if known.
    #[must_use]
    pub fn lookup_link(&self, url: &str) -> Option<&Licence> {
        self.by_link
            .get(&normalise_link(url))
            .map(|&index| &self.licences[index])
    }

    pub(crate) fn phrases(&self) -> &[(String, usize, f32)] {
        &self.phrases
    }

    pub(crate) fn index_of(&self, key: &str) -> Option<usize> {
        self.licences.iter().position(|licence| licence.key == key)
    }

    pub(crate) fn at(&self, index: usize) -> &Licence {
        &self.licences[index]
    }
}
