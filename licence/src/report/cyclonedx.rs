//! CycloneDX 1.6 ML-BOM for mirrored models.
//!
//! One `machine-learning-model` component per model revision: `group`/`name` from the repo,
//! `version` = the commit (tags and branches are mutable), a `pkg:huggingface` purl, a
//! SHA-256 over the file manifest plus one `file` sub-component per file with its sha256,
//! the concluded licence (`acknowledgement: concluded`) and the card's declared one
//! (`declared`), external references to the source, and — since CycloneDX has no fields for
//! caps, AUPs, naming rules or duties — `properties` under the `larder:licence:` prefix.
//! Base models go in `pedigree.ancestors`. Validated against the official 1.6 schema in the
//! crate's tests.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::catalog::{Catalog, Licence};
use crate::detect::Detection;

/// One file of a model revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BomFile {
    /// Path in the repo.
    pub path: String,
    /// Content sha256 (64 hex) when known.
    pub sha256: Option<String>,
    /// Size in bytes.
    pub size: u64,
}

/// One model revision to put in a BOM.
#[derive(Debug, Clone)]
pub struct BomModel<'a> {
    /// The commit.
    pub commit: String,
    /// Its detection.
    pub detection: &'a Detection,
    /// Its files.
    pub files: Vec<BomFile>,
    /// The hub it came from, e.g. `https://huggingface.co`.
    pub endpoint: String,
    /// The gate mode, if gated.
    pub gated: Option<String>,
}

impl BomModel<'_> {
    pub(crate) fn purl(&self) -> String {
        format!("pkg:huggingface/{}@{}", self.detection.repo, self.commit)
    }

    pub(crate) fn endpoint(&self) -> &str {
        self.endpoint.trim_end_matches('/')
    }

    pub(crate) fn hashed_files(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files.iter().filter_map(|file| {
            file.sha256
                .as_deref()
                .filter(|hash| is_sha256(hash))
                .map(|hash| (file.path.as_str(), hash))
        })
    }

    /// sha256 over `"<sha256>  <path>\n"` lines sorted by path (a `sha256sum` manifest).
    pub(crate) fn manifest_sha256(&self) -> Option<String> {
        let mut lines: Vec<(&str, &str)> = self.hashed_files().collect();
        if lines.is_empty() {
            return None;
        }
        lines.sort_unstable();
        let mut hasher = Sha256::new();
        for (path, hash) in lines {
            hasher.update(format!("{}  {path}\n", hash.to_ascii_lowercase()).as_bytes());
        }
        Some(hex::encode(hasher.finalize()))
    }
}

pub(crate) fn is_sha256(hash: &str) -> bool {
    hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit())
}

fn licence_object(licence: &Licence, acknowledgement: &str) -> Value {
    let mut object = if licence.spdx_id.is_empty() {
        json!({ "name": licence.name })
    } else {
        json!({ "id": licence.spdx_id })
    };
    if !licence.text_url.is_empty() {
        object["url"] = json!(licence.text_url);
    }
    object["acknowledgement"] = json!(acknowledgement);
    json!({ "license": object })
}

fn property(properties: &mut Vec<Value>, name: &str, value: &str) {
    if value.is_empty() {
        return;
    }
    let entry = json!({ "name": name, "value": value });
    if !properties.contains(&entry) {
        properties.push(entry);
    }
}

fn component(model: &BomModel<'_>, catalog: &Catalog) -> Value {
    let detection = model.detection;
    let (group, name) = detection
        .repo
        .split_once('/')
        .unwrap_or(("", detection.repo.as_str()));
    let purl = model.purl();
    let endpoint = model.endpoint();
    let own = detection
        .licence
        .as_deref()
        .and_then(|key| catalog.get(key));

    let mut licenses = Vec::new();
    if let Some(licence) = own {
        licenses.push(licence_object(licence, "concluded"));
    }
    match (
        detection
            .declared
            .as_deref()
            .and_then(|key| catalog.get(key)),
        &detection.declared_unresolved,
    ) {
        (Some(declared), _) => licenses.push(licence_object(declared, "declared")),
        (None, Some(words)) => {
            licenses.push(json!({ "license": { "name": words, "acknowledgement": "declared" } }))
        }
        (None, None) => {}
    }

    let mut references = vec![
        json!({ "type": "distribution", "url": format!("{endpoint}/{}/tree/{}", detection.repo, model.commit) }),
        json!({ "type": "vcs", "url": format!("{endpoint}/{}", detection.repo) }),
        json!({ "type": "model-card", "url": format!("{endpoint}/{}/blob/{}/README.md", detection.repo, model.commit) }),
    ];

    let mut properties = Vec::new();
    property(
        &mut properties,
        "larder:licence:key",
        detection.licence_key(),
    );
    property(
        &mut properties,
        "larder:licence:confidence",
        detection.confidence.as_str(),
    );
    property(
        &mut properties,
        "larder:licence:commercial_use",
        detection.commercial_use(catalog).as_str(),
    );
    if let Some(mode) = &model.gated {
        property(&mut properties, "hf:gated", mode);
    }
    let mut limitations = Vec::new();
    for (key, via) in detection.effective_licences(catalog) {
        let Some(licence) = key.as_deref().and_then(|key| catalog.get(key)) else {
            if let Some(base) = via {
                property(
                    &mut properties,
                    "larder:licence:inherited",
                    &format!("{base}: unknown"),
                );
            }
            continue;
        };
        let id = licence.report_id();
        if let Some(base) = &via {
            property(
                &mut properties,
                "larder:licence:inherited",
                &format!("{base}: {id}"),
            );
        }
        let reference = json!({ "type": "license", "url": licence.text_url });
        if !licence.text_url.is_empty() && !references.contains(&reference) {
            references.push(reference);
        }
        property(
            &mut properties,
            "larder:licence:spdx",
            &format!("{id}: {}", licence.spdx_or_ref()),
        );
        property(
            &mut properties,
            "larder:licence:evidence",
            &format!("{id}: {}", licence.evidence.as_str()),
        );
        if licence.user_cap.is_set() {
            property(
                &mut properties,
                "larder:licence:user_cap",
                &format!("{id}: {}", licence.user_cap.summary()),
            );
            if let Some(threshold) = licence.user_cap.threshold {
                property(
                    &mut properties,
                    "larder:licence:mau_cap",
                    &threshold.to_string(),
                );
            }
        }
        if licence.revenue_cap.is_set() {
            property(
                &mut properties,
                "larder:licence:revenue_cap",
                &format!("{id}: {}", licence.revenue_cap.summary()),
            );
        }
        property(
            &mut properties,
            "larder:licence:notice",
            &licence.notice_text,
        );
        property(
            &mut properties,
            "larder:licence:display",
            &licence.display_text,
        );
        property(
            &mut properties,
            "larder:licence:naming_rule",
            &licence.naming_rule,
        );
        if licence.aup.incorporated {
            property(&mut properties, "larder:licence:aup", &licence.aup.url);
        }
        property(
            &mut properties,
            "larder:licence:output_training",
            &format!("{id}: {}", licence.output_training),
        );
        property(
            &mut properties,
            "larder:licence:territorial",
            &licence.territorial,
        );
        for duty in licence.attribution.iter().chain(&licence.redistribution) {
            property(
                &mut properties,
                "larder:licence:duty",
                &format!("{id}: {duty}"),
            );
        }
        if !licence.commercial_note.is_empty() {
            limitations.push(format!("{id}: {}", licence.commercial_note));
        }
        if !licence.territorial.is_empty() {
            limitations.push(format!("{id}: {}", licence.territorial));
        }
    }
    for conflict in &detection.conflicts {
        property(
            &mut properties,
            "larder:licence:conflict",
            &conflict.message,
        );
    }

    let mut component = json!({
        "type": "machine-learning-model",
        "bom-ref": purl,
        "name": name,
        "version": model.commit,
        "purl": purl,
        "externalReferences": references,
        "properties": properties,
    });
    if !group.is_empty() {
        component["group"] = json!(group);
        component["supplier"] = json!({ "name": group, "url": [format!("{endpoint}/{group}")] });
    }
    if !licenses.is_empty() {
        component["licenses"] = json!(licenses);
    }
    if let Some(manifest) = model.manifest_sha256() {
        component["hashes"] = json!([{ "alg": "SHA-256", "content": manifest }]);
    }
    let files: Vec<Value> = model
        .files
        .iter()
        .map(|file| {
            let mut entry = json!({
                "type": "file",
                "bom-ref": format!("{purl}#{}", file.path),
                "name": file.path,
                "properties": [{ "name": "larder:file:size", "value": file.size.to_string() }],
            });
            if let Some(hash) = file.sha256.as_deref().filter(|hash| is_sha256(hash)) {
                entry["hashes"] =
                    json!([{ "alg": "SHA-256", "content": hash.to_ascii_lowercase() }]);
            }
            entry
        })
        .collect();
    if !files.is_empty() {
        component["components"] = json!(files);
    }
    let ancestors: Vec<Value> = detection
        .inherited
        .iter()
        .map(|base| {
            let (base_group, base_name) = base.base_model.split_once('/').unwrap_or(("", base.base_model.as_str()));
            let mut ancestor = json!({
                "type": "machine-learning-model",
                "name": base_name,
                "externalReferences": [{ "type": "vcs", "url": format!("{endpoint}/{}", base.base_model) }],
            });
            if !base_group.is_empty() {
                ancestor["group"] = json!(base_group);
            }
            if let Some(licence) = base.licence.as_deref().and_then(|key| catalog.get(key)) {
                ancestor["licenses"] = json!([licence_object(licence, "concluded")]);
            }
            ancestor
        })
        .collect();
    if !ancestors.is_empty() {
        component["pedigree"] = json!({ "ancestors": ancestors });
    }
    if !limitations.is_empty() {
        component["modelCard"] =
            json!({ "considerations": { "technicalLimitations": limitations } });
    }
    component
}

/// A UUID-shaped serial derived from the content, so equal inputs give equal BOMs.
fn serial(models: &[BomModel<'_>], timestamp: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(timestamp.as_bytes());
    for model in models {
        hasher.update(model.purl().as_bytes());
        hasher.update(b"\n");
    }
    let digest = hex::encode(hasher.finalize());
    format!(
        "urn:uuid:{}-{}-4{}-8{}-{}",
        &digest[0..8],
        &digest[8..12],
        &digest[13..16],
        &digest[17..20],
        &digest[20..32]
    )
}

/// A CycloneDX 1.6 JSON BOM for these model revisions.
#[must_use]
pub fn cyclonedx(
    models: &[BomModel<'_>],
    catalog: &Catalog,
    generated_at: OffsetDateTime,
) -> Value {
    let timestamp = generated_at
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string());
    let components: Vec<Value> = models
        .iter()
        .map(|model| component(model, catalog))
        .collect();
    json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial(models, &timestamp),
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": { "components": [{ "type": "application", "name": "larder", "version": env!("CARGO_PKG_VERSION") }] },
        },
        "components": components,
    })
}
