//! The attribution and NOTICE text owed for a set of models.
//!
//! Groups models by every licence whose terms they carry (their own and, through
//! `base_model`, inherited ones) and prints, per licence, the NOTICE line, the public display
//! string, and the attribution duties; then reproduces the repos' own NOTICE files (Apache's
//! "include its attribution notices"); then lists models whose licence is unknown.

use crate::catalog::Catalog;
use crate::detect::Detection;

/// The NOTICE text owed for these models (their latest detections).
#[must_use]
pub fn notice(models: &[&Detection], catalog: &Catalog) -> String {
    // licence key -> list of "repo" or "repo (via base)"
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    for detection in models {
        for (key, via) in detection.effective_licences(catalog) {
            let label = match &via {
                Some(base) => format!("{} (via base model {base})", detection.repo),
                None => detection.repo.clone(),
            };
            match key {
                Some(key) => match groups.iter_mut().find(|(known, _)| *known == key) {
                    Some((_, repos)) => repos.push(label),
                    None => groups.push((key, vec![label])),
                },
                None => unknown.push(label),
            }
        }
    }
    groups.sort_by(|a, b| a.0.cmp(&b.0));

    let mut out = format!(
        "THIRD-PARTY MODEL NOTICES\n\nAttribution owed for {} model(s).\n",
        models.len()
    );
    for (key, repos) in &groups {
        let Some(licence) = catalog.get(key) else {
            continue;
        };
        out.push_str(&format!(
            "\n== {} ({}) ==\n",
            licence.name,
            licence.report_id()
        ));
        out.push_str(&format!("Models: {}\n", repos.join(", ")));
        if !licence.notice_text.is_empty() {
            out.push_str(&format!("Notice: {}\n", licence.notice_text));
        }
        if !licence.display_text.is_empty() {
            out.push_str(&format!("Display: \"{}\"\n", licence.display_text));
        }
        if !licence.naming_rule.is_empty() {
            out.push_str(&format!("Naming: {}\n", licence.naming_rule));
        }
        if !licence.attribution.is_empty() {
            out.push_str("Duties:\n");
            for duty in &licence.attribution {
                out.push_str(&format!("  - {duty}\n"));
            }
        }
        if !licence.text_url.is_empty() {
            out.push_str(&format!("Licence text: {}\n", licence.text_url));
        }
        if licence.evidence == crate::catalog::Evidence::Unverified {
            out.push_str(
                "Caution: catalog facts for this licence are unverified; check the licence text.\n",
            );
        }
    }
    let notice_files: Vec<(&str, &str, &str)> = models
        .iter()
        .flat_map(|detection| {
            detection
                .notice_files
                .iter()
                .map(move |(path, text)| (detection.repo.as_str(), path.as_str(), text.as_str()))
        })
        .collect();
    if !notice_files.is_empty() {
        out.push_str("\n== NOTICE files shipped with the models ==\n");
        for (repo, path, text) in notice_files {
            out.push_str(&format!("\n--- {repo}: {path} ---\n{}\n", text.trim_end()));
        }
    }
    if !unknown.is_empty() {
        out.push_str("\n== Licence unknown: attribution could not be determined ==\n");
        for repo in unknown {
            out.push_str(&format!("  - {repo}\n"));
        }
    }
    out
}
