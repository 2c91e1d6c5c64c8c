//! SPDX 3.0.1 JSON-LD with the AI profile.
//!
//! Each model revision becomes an `ai_AIPackage` with the fields SPDX requires of it
//! (`suppliedBy`, `software_downloadLocation`, `software_packageVersion` = the commit,
//! `software_primaryPurpose` = `model`, `releaseTime`), its purl, a manifest hash in
//! `verifiedUsing`, the owed notices in `software_attributionText`, and caps/AUP/territorial
//! limits in `ai_limitation`. Licences are relationships (`hasDeclaredLicense`,
//! `hasConcludedLicense`) to `simplelicensing_LicenseExpression`s, using `LicenseRef-` ids
//! for licences not on the SPDX list and `NOASSERTION` when unknown. Base models are
//! `software_Package`s linked with `ancestorOf`.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::catalog::Catalog;
use crate::report::cyclonedx::BomModel;

const NAMESPACE: &str = "https://larder.invalid/spdx";

fn iri_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._~".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// An SPDX 3.0.1 JSON-LD document for these model revisions.
#[must_use]
pub fn spdx(models: &[BomModel<'_>], catalog: &Catalog, generated_at: OffsetDateTime) -> Value {
    let created = generated_at
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string());
    let tool_id = format!("{NAMESPACE}/Tool/larder");
    let agent_id = format!("{NAMESPACE}/Organization/larder");
    let mut graph = vec![
        json!({
            "type": "CreationInfo",
            "@id": "_:creationinfo",
            "specVersion": "3.0.1",
            "created": created,
            "createdBy": [agent_id],
            "createdUsing": [tool_id],
        }),
        json!({ "type": "Organization", "spdxId": agent_id, "creationInfo": "_:creationinfo", "name": "Larder mirror" }),
        json!({ "type": "Tool", "spdxId": tool_id, "creationInfo": "_:creationinfo", "name": format!("larder {}", env!("CARGO_PKG_VERSION")) }),
    ];
    let mut elements: Vec<String> = vec![agent_id.clone(), tool_id.clone()];
    let mut roots = Vec::new();
    let mut suppliers: Vec<String> = Vec::new();
    let mut next = 0usize;
    let mut new_id = |kind: &str, hint: &str| {
        next += 1;
        format!("{NAMESPACE}/{kind}/{}-{next}", iri_safe(hint))
    };

    for model in models {
        let detection = model.detection;
        let endpoint = model.endpoint();
        let (group, _) = detection
            .repo
            .split_once('/')
            .unwrap_or((detection.repo.as_str(), ""));
        let supplier_id = format!("{NAMESPACE}/Organization/hub-{}", iri_safe(group));
        if !suppliers.contains(&supplier_id) {
            suppliers.push(supplier_id.clone());
            graph.push(json!({ "type": "Organization", "spdxId": supplier_id, "creationInfo": "_:creationinfo", "name": group }));
            elements.push(supplier_id.clone());
        }
        let package_id = new_id("AIPackage", &detection.repo);
        let mut attribution = Vec::new();
        let mut limitations = Vec::new();
        for (key, via) in detection.effective_licences(catalog) {
            let Some(licence) = key.as_deref().and_then(|key| catalog.get(key)) else {
                continue;
            };
            let id = licence.report_id();
            let via = via.map(|base| format!(" (via {base})")).unwrap_or_default();
            for text in [&licence.notice_text, &licence.display_text] {
                if !text.is_empty() && !attribution.contains(text) {
                    attribution.push(text.clone());
                }
            }
            for (label, text) in [
                ("user cap", licence.user_cap.summary()),
                ("revenue cap", licence.revenue_cap.summary()),
                ("naming", licence.naming_rule.clone()),
                ("territorial", licence.territorial.clone()),
                (
                    "acceptable use policy",
                    if licence.aup.incorporated {
                        licence.aup.url.clone()
                    } else {
                        String::new()
                    },
                ),
                ("output training", licence.output_training.clone()),
            ] {
                if !text.is_empty() && text != "none" {
                    limitations.push(format!("{id}{via} {label}: {text}"));
                }
            }
        }
        let mut package = json!({
            "type": "ai_AIPackage",
            "spdxId": package_id,
            "creationInfo": "_:creationinfo",
            "name": detection.repo,
            "suppliedBy": supplier_id,
            "releaseTime": created,
            "software_packageVersion": model.commit,
            "software_downloadLocation": format!("{endpoint}/{}/tree/{}", detection.repo, model.commit),
            "software_homePage": format!("{endpoint}/{}", detection.repo),
            "software_packageUrl": model.purl(),
            "software_primaryPurpose": "model",
            "externalIdentifier": [{
                "type": "ExternalIdentifier",
                "externalIdentifierType": "packageUrl",
                "identifier": model.purl(),
            }],
            "externalRef": [{
                "type": "ExternalRef",
                "externalRefType": "documentation",
                "locator": [format!("{endpoint}/{}/blob/{}/README.md", detection.repo, model.commit)],
            }],
        });
        if let Some(manifest) = model.manifest_sha256() {
            package["verifiedUsing"] =
                json!([{ "type": "Hash", "algorithm": "sha256", "hashValue": manifest }]);
        }
        if !attribution.is_empty() {
            package["software_attributionText"] = json!(attribution);
        }
        if !limitations.is_empty() {
            package["ai_limitation"] = json!(limitations.join("\n"));
        }
        let mut comments = Vec::new();
        if let Some(mode) = &model.gated {
            comments.push(format!("gated: {mode}"));
        }
        for conflict in &detection.conflicts {
            comments.push(format!("licence conflict: {}", conflict.message));
        }
        if !comments.is_empty() {
            package["comment"] = json!(comments.join("\n"));
        }
        graph.push(package);
        elements.push(package_id.clone());
        roots.push(package_id.clone());

        let concluded = detection
            .licence
            .as_deref()
            .and_then(|key| catalog.get(key))
            .map_or_else(
                || "NOASSERTION".to_string(),
                |licence| licence.spdx_or_ref().to_string(),
            );
        let declared = match (
            detection
                .declared
                .as_deref()
                .and_then(|key| catalog.get(key)),
            &detection.declared_unresolved,
        ) {
            (Some(licence), _) => licence.spdx_or_ref().to_string(),
            (None, Some(words)) => format!("LicenseRef-{}", iri_safe(words)),
            (None, None) => "NOASSERTION".to_string(),
        };
        for (relationship, expression) in [
            ("hasConcludedLicense", concluded),
            ("hasDeclaredLicense", declared),
        ] {
            let licence_id = new_id("LicenseExpression", &expression);
            graph.push(json!({
                "type": "simplelicensing_LicenseExpression",
                "spdxId": licence_id,
                "creationInfo": "_:creationinfo",
                "simplelicensing_licenseExpression": expression,
            }));
            let relationship_id = new_id("Relationship", relationship);
            graph.push(json!({
                "type": "Relationship",
                "spdxId": relationship_id,
                "creationInfo": "_:creationinfo",
                "from": package_id,
                "relationshipType": relationship,
                "to": [licence_id],
            }));
            elements.push(licence_id);
            elements.push(relationship_id);
        }
        for base in &detection.inherited {
            let base_id = new_id("Package", &base.base_model);
            graph.push(json!({
                "type": "software_Package",
                "spdxId": base_id,
                "creationInfo": "_:creationinfo",
                "name": base.base_model,
                "software_downloadLocation": format!("{endpoint}/{}", base.base_model),
                "software_primaryPurpose": "model",
            }));
            let relationship_id = new_id("Relationship", "ancestorOf");
            graph.push(json!({
                "type": "Relationship",
                "spdxId": relationship_id,
                "creationInfo": "_:creationinfo",
                "from": base_id,
                "relationshipType": "ancestorOf",
                "to": [package_id],
            }));
            elements.push(base_id.clone());
            elements.push(relationship_id);
            if let Some(licence) = base.licence.as_deref().and_then(|key| catalog.get(key)) {
                let licence_id = new_id("LicenseExpression", licence.spdx_or_ref());
                graph.push(json!({
                    "type": "simplelicensing_LicenseExpression",
                    "spdxId": licence_id,
                    "creationInfo": "_:creationinfo",
                    "simplelicensing_licenseExpression": licence.spdx_or_ref(),
                }));
                let relationship_id = new_id("Relationship", "hasConcludedLicense");
                graph.push(json!({
                    "type": "Relationship",
                    "spdxId": relationship_id,
                    "creationInfo": "_:creationinfo",
                    "from": base_id,
                    "relationshipType": "hasConcludedLicense",
                    "to": [licence_id],
                }));
                elements.push(licence_id);
                elements.push(relationship_id);
            }
        }
    }
    let document_id = format!("{NAMESPACE}/Document/{}", iri_safe(&created));
    graph.push(json!({
        "type": "SpdxDocument",
        "spdxId": document_id,
        "creationInfo": "_:creationinfo",
        "name": "Larder model licence bill of materials",
        "profileConformance": ["core", "software", "simpleLicensing", "ai"],
        "rootElement": roots,
        "element": elements,
    }));
    json!({ "@context": "https://spdx.org/rdf/3.0.1/spdx-context.jsonld", "@graph": graph })
}
