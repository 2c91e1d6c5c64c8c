//! Identifier forms, link normalisation and catalog validation.

use std::collections::HashMap;

use super::{Licence, LicenceKind};

/// The lookup forms of an id, strongest first: lowercase; alphanumerics only; and that
/// again without a trailing "license"/"licence"/"agreement" word.
pub(super) fn id_forms(id: &str) -> Vec<String> {
    let lowered = id.trim().to_ascii_lowercase();
    let compact: String = lowered
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '+')
        .collect();
    let mut stripped = compact.clone();
    loop {
        let before = stripped.len();
        for suffix in ["agreement", "license", "licence"] {
            if stripped.len() > suffix.len()
                && let Some(rest) = stripped.strip_suffix(suffix)
            {
                stripped = rest.to_string();
            }
        }
        if stripped.len() == before {
            break;
        }
    }
    let mut forms = vec![lowered, format!("~{compact}")];
    if stripped != compact {
        forms.push(format!("~~{stripped}"));
    } else {
        forms.push(format!("~~{compact}"));
    }
    forms
}

/// URLs compare without scheme, `www.`, trailing `/`, case, and with the British
/// `licences` path spelling folded (Mistral's MNPL link appears both ways), plus
/// Mistral's move from `/licenses/` to `/static/licenses/`.
pub(super) fn normalise_link(url: &str) -> String {
    let lowered = url.trim().to_ascii_lowercase();
    let without_scheme = lowered
        .strip_prefix("https://")
        .or_else(|| lowered.strip_prefix("http://"))
        .unwrap_or(&lowered);
    let without_www = without_scheme
        .strip_prefix("www.")
        .unwrap_or(without_scheme);
    without_www
        .trim_end_matches('/')
        .replace("/licences/", "/licenses/")
        .replace("/static/licenses/", "/licenses/")
}

/// Check rows for required fields and ambiguous identifiers. Returns one message per problem.
#[must_use]
pub fn validate_rows(rows: &[Licence]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut keys: HashMap<&str, &str> = HashMap::new();
    let mut forms: HashMap<String, &str> = HashMap::new();
    let mut links: HashMap<String, &str> = HashMap::new();
    for row in rows {
        let key = row.key.as_str();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            problems.push(format!("key `{key}` must be non-empty snake_case"));
        }
        if keys.insert(key, key).is_some() {
            problems.push(format!("duplicate key `{key}`"));
        }
        for (field, value) in [("name", &row.name), ("family", &row.family)] {
            if value.trim().is_empty() {
                problems.push(format!("`{key}`: `{field}` is empty"));
            }
        }
        if row.spdx_id.is_empty() && !row.spdx_ref.starts_with("LicenseRef-") {
            problems.push(format!(
                "`{key}`: needs `spdx_id` or a `LicenseRef-` `spdx_ref`"
            ));
        }
        if row.spdx_id.contains(' ') || row.spdx_ref.contains(' ') {
            problems.push(format!("`{key}`: SPDX ids must not contain spaces"));
        }
        if row.text_url.is_empty() && row.source_urls.is_empty() {
            problems.push(format!("`{key}`: needs `text_url` or `source_urls`"));
        }
        if row.source_urls.is_empty() {
            problems.push(format!("`{key}`: `source_urls` is empty"));
        }
        if !matches!(
            row.output_training.as_str(),
            "none"
                | "allowed_with_duties"
                | "derivative_inherits_terms"
                | "banned"
                | "noncommercial_only"
                | "unknown"
        ) {
            problems.push(format!(
                "`{key}`: unknown output_training `{}`",
                row.output_training
            ));
        }
        for cap in [&row.user_cap, &row.revenue_cap] {
            if cap.is_set() && cap.threshold.is_none() {
                problems.push(format!("`{key}`: cap `{}` has no threshold", cap.kind));
            }
        }
        if !row.based_on.is_empty()
            && !rows
                .iter()
                .any(|other| other.key == row.based_on && other.key != row.key)
        {
            problems.push(format!(
                "`{key}`: based_on `{}` is not a catalog key",
                row.based_on
            ));
        }
        if row.kind != LicenceKind::Family && row.fingerprints.is_empty() {
            problems.push(format!("`{key}`: no fingerprints"));
        }
        if row.hub_id.contains(' ') || row.hub_aliases.iter().any(|id| id.contains(' ')) {
            problems.push(format!("`{key}`: Hub ids must not contain spaces"));
        }
        let mut own = Vec::new();
        for id in row.ids() {
            for form in id_forms(id) {
                if own.contains(&form) {
                    continue;
                }
                own.push(form.clone());
                if let Some(other) = forms.insert(form.clone(), key)
                    && other != key
                {
                    problems.push(format!(
                        "`{key}`: id `{id}` (as `{form}`) also names `{other}`"
                    ));
                }
            }
        }
        for link in &row.links {
            if let Some(other) = links.insert(normalise_link(link), key)
                && other != key
            {
                problems.push(format!("`{key}`: link `{link}` also names `{other}`"));
            }
        }
    }
    problems
}
