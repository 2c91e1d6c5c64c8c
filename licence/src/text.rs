//! Licence-text fingerprints: normalisation, hashes and phrase matching.
//!
//! We cannot ship full licence texts we do not have, so a text is identified by the
//! distinctive phrases the catalog lists for each licence (titles, NOTICE lines, display
//! strings). Texts are normalised first — lowercased, copyright statements dropped, years
//! dropped, punctuation (except `+`, which separates `RAIL-M` from `RAIL++-M`) turned into
//! spaces, whitespace collapsed — so reflowed or re-punctuated copies still match, and
//! the normalised text's sha256 is a stable fingerprint to store and compare across
//! revisions. Each phrase is worth `1/n` when `n` licences list it; a licence built on
//! another (`based_on`: Kimi's modified MIT, Falcon's Apache-based terms) adds its base's
//! score to its own, so it wins over its base exactly when its own phrase is present.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
pub use crate::normalise::normalise;

/// Lowercase hex sha256 of some bytes.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What a text matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextMatch {
    /// sha256 of the bytes as found.
    pub sha256: String,
    /// sha256 of the normalised text.
    pub normalised_sha256: String,
    /// The best-matching catalog key, if any phrase matched.
    pub key: Option<String>,
    /// Its score (sum of matched phrase weights).
    pub score: f32,
    /// The runner-up and its score, when another licence also matched.
    pub runner_up: Option<(String, f32)>,
    /// The first version/date line found ("Version Release Date", "Last modified", …).
    pub version_line: Option<String>,
}

impl TextMatch {
    /// A short human-readable description for signal details.
    #[must_use]
    pub fn describe(&self) -> String {
        let mut out = format!(
            "sha256={} normalised_sha256={}",
            self.sha256, self.normalised_sha256
        );
        if self.key.is_some() {
            out.push_str(&format!(" score={:.2}", self.score));
        }
        if let Some((key, score)) = &self.runner_up {
            out.push_str(&format!(" runner_up={key}:{score:.2}"));
        }
        if let Some(line) = &self.version_line {
            out.push_str(&format!(" version_line=\"{line}\""));
        }
        out
    }
}

/// Identify a licence text against the catalog's fingerprints.
#[must_use]
pub fn identify(bytes: &[u8], catalog: &Catalog) -> TextMatch {
    let raw = String::from_utf8_lossy(bytes);
    let normalised = normalise(&raw);
    let padded = format!(" {normalised} ");
    let mut scores: Vec<(usize, f32)> = Vec::new();
    for (phrase, owner, weight) in catalog.phrases() {
        if phrase.is_empty() || !padded.contains(&format!(" {phrase} ")) {
            continue;
        }
        match scores.iter_mut().find(|(index, _)| index == owner) {
            Some(entry) => entry.1 += weight,
            None => scores.push((*owner, *weight)),
        }
    }
    // A licence that extends another (based_on) and matched its own phrases also owns its
    // base's matches: Kimi's text contains all of MIT.
    let own_scores = scores.clone();
    for (index, score) in &mut scores {
        let base = catalog.at(*index).based_on.as_str();
        if base.is_empty() {
            continue;
        }
        if let Some(base_score) = catalog
            .index_of(base)
            .and_then(|base_index| own_scores.iter().find(|(known, _)| *known == base_index))
        {
            *score += base_score.1;
        }
    }
    // Highest score first; ties go to the licence listed first in the catalog.
    scores.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let best = scores
        .first()
        .map(|&(index, score)| (catalog.at(index).key.clone(), score));
    let runner_up = scores
        .get(1)
        .map(|&(index, score)| (catalog.at(index).key.clone(), score));
    TextMatch {
        sha256: sha256_hex(bytes),
        normalised_sha256: sha256_hex(normalised.as_bytes()),
        score: best.as_ref().map_or(0.0, |(_, score)| *score),
        key: best.map(|(key, _)| key),
        runner_up,
        version_line: version_line(&raw),
    }
}

fn version_line(text: &str) -> Option<String> {
    const MARKERS: [&str; 6] = [
        "version release date",
        "last modified",
        "last updated",
        "effective date",
        "release date",
        "version ",
    ];
    text.lines().map(str::trim).find_map(|line| {
        let lowered = line.to_lowercase();
        MARKERS
            .iter()
            .any(|marker| lowered.contains(marker))
            .then(|| line.chars().take(120).collect())
    })
}
