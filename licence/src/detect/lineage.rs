//! Lineage checks: base-model terms that follow derivatives, and derivative naming rules.

use super::{Conflict, ConflictKind, Inherited, id_of};
use crate::catalog::Catalog;

fn compact(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase()
}

pub(super) fn lineage_conflicts(
    catalog: &Catalog,
    repo: &str,
    licence: Option<&str>,
    inherited: &[Inherited],
    conflicts: &mut Vec<Conflict>,
) {
    let id = |key: &str| id_of(catalog, key);
    let (org, name) = repo.split_once('/').unwrap_or(("", repo));
    let mut prefixes: Vec<(String, String)> = Vec::new();
    for base in inherited {
        let Some(base_licence) = base.licence.as_deref().and_then(|key| catalog.get(key)) else {
            continue;
        };
        if base_licence.flows_to_derivatives() && Some(base_licence.key.as_str()) != licence {
            let declared = licence.map_or_else(|| "no resolvable licence".to_string(), id);
            conflicts.push(Conflict {
                kind: ConflictKind::InheritedTerms,
                message: format!(
                    "repo resolves to {declared} but base model {} is under {}, whose terms follow derivatives",
                    base.base_model,
                    base_licence.report_id()
                ),
            });
        }
        if !base_licence.name_prefix.is_empty() {
            prefixes.push((
                base_licence.name_prefix.clone(),
                base_licence.report_id().to_string(),
            ));
        }
    }
    if !inherited.is_empty()
        && let Some(own) = licence.and_then(|key| catalog.get(key))
        && !own.name_prefix.is_empty()
    {
        prefixes.push((own.name_prefix.clone(), own.report_id().to_string()));
    }
    // The licensor's own repos are not derivatives.
    if org.eq_ignore_ascii_case("meta-llama") {
        return;
    }
    let mut seen = Vec::new();
    for (prefix, licence_id) in prefixes {
        if seen.contains(&prefix) {
            continue;
        }
        seen.push(prefix.clone());
        if !compact(name).starts_with(&compact(&prefix)) {
            conflicts.push(Conflict {
                kind: ConflictKind::NamingRule,
                message: format!("{licence_id} requires a derivative's name to begin with \"{prefix}\"; `{name}` does not"),
            });
        }
    }
}
