//! Resolution: from the signals, in order of strength, to one catalog key and a confidence,
//! recording card/file/tag/gate disagreements on the way.

use super::{Confidence, Conflict, ConflictKind, FileRole, id_of};
use crate::catalog::{Catalog, LicenceKind};

fn same_family_refinement(catalog: &Catalog, declared: &str, found: &str) -> bool {
    match (catalog.get(declared), catalog.get(found)) {
        (Some(declared), Some(found)) => {
            declared.kind == LicenceKind::Family && declared.family == found.family
        }
        _ => false,
    }
}

pub(super) fn resolve(
    catalog: &Catalog,
    file_keys: &[(FileRole, String, String)],
    declared: Option<&str>,
    tag_keys: &[String],
    gate_key: Option<&str>,
    conflicts: &mut Vec<Conflict>,
) -> (Option<String>, Confidence) {
    let id = |key: &str| id_of(catalog, key);
    // The strongest file role present decides which files speak for the model.
    let best_role = file_keys.iter().map(|(role, _, _)| *role).min();
    let mut from_files: Vec<(&str, &str)> = Vec::new();
    for (role, key, path) in file_keys {
        if Some(*role) == best_role && !from_files.iter().any(|(known, _)| known == key) {
            from_files.push((key, path));
        }
    }
    if from_files.len() > 1 {
        let listed: Vec<String> = from_files
            .iter()
            .map(|(key, path)| format!("{path}: {}", id(key)))
            .collect();
        conflicts.push(Conflict {
            kind: ConflictKind::SplitLicensing,
            message: format!(
                "licence files name different licences ({})",
                listed.join(", ")
            ),
        });
    }
    if let (Some(declared), Some(tag)) = (declared, tag_keys.first())
        && !tag_keys.iter().any(|tag| tag == declared)
    {
        conflicts.push(Conflict {
            kind: ConflictKind::CardVsTag,
            message: format!(
                "card declares {} but the tag says {}",
                id(declared),
                id(tag)
            ),
        });
    }
    if let (Some(declared), Some(gate)) = (declared, gate_key)
        && declared != gate
        && !same_family_refinement(catalog, declared, gate)
    {
        conflicts.push(Conflict {
            kind: ConflictKind::CardVsGate,
            message: format!(
                "card declares {} but the gate prompt is the text of {}",
                id(declared),
                id(gate)
            ),
        });
    }

    if !from_files.is_empty() {
        let Some(declared) = declared else {
            let key = from_files[0].0;
            let confirmed = gate_key == Some(key) || tag_keys.iter().any(|tag| tag == key);
            let confidence = if confirmed && from_files.len() == 1 {
                Confidence::High
            } else {
                Confidence::Medium
            };
            return (Some(key.to_string()), confidence);
        };
        if let Some((key, _)) = from_files.iter().find(|(key, _)| *key == declared) {
            let confidence = if from_files.len() == 1 {
                Confidence::High
            } else {
                Confidence::Medium
            };
            return (Some((*key).to_string()), confidence);
        }
        let (key, path) = from_files[0];
        if same_family_refinement(catalog, declared, key) {
            return (Some(key.to_string()), Confidence::High);
        }
        conflicts.push(Conflict {
            kind: ConflictKind::CardVsFile,
            message: format!(
                "card declares {} but {path} is the text of {}",
                id(declared),
                id(key)
            ),
        });
        return (Some(key.to_string()), Confidence::Low);
    }
    if let Some(declared) = declared {
        let family = catalog
            .get(declared)
            .is_some_and(|licence| licence.kind == LicenceKind::Family);
        if let Some(gate) = gate_key
            && same_family_refinement(catalog, declared, gate)
        {
            return (Some(gate.to_string()), Confidence::Medium);
        }
        let confidence = if family {
            Confidence::Low
        } else if gate_key == Some(declared) {
            Confidence::High
        } else {
            Confidence::Medium
        };
        return (Some(declared.to_string()), confidence);
    }
    if let Some(gate) = gate_key {
        return (Some(gate.to_string()), Confidence::Low);
    }
    if let Some(tag) = tag_keys.first() {
        return (Some(tag.clone()), Confidence::Low);
    }
    (None, Confidence::None)
}
