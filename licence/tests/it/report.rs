//! Reports: audit rows in every format, CycloneDX validated by the official schema (via
//! cyclonedx-python-lib), SPDX 3.0 structure, and the NOTICE text.

use std::io::Write as _;
use std::process::Command;

use larder_licence::report::{BomFile, BomModel, cyclonedx, notice, spdx};
use larder_licence::{
    AuditRow, Catalog, Detection, Policy, audit_csv, audit_json, audit_table, detect,
};
use serde_json::{Value, json};
use time::macros::datetime;

use crate::fixtures::{self, evidence};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn detections() -> Vec<Detection> {
    let catalog = Catalog::builtin();
    let mut out: Vec<Detection> = fixtures::families()
        .iter()
        .map(|(_, evidence, _)| detect(evidence, catalog))
        .collect();
    let mut mislabeled = evidence(
        "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
        json!({ "license": "mit", "base_model": "meta-llama/Llama-3.1-8B" }),
        &[("LICENSE", fixtures::MIT_LICENSE)],
    );
    mislabeled.base_model_licences =
        vec![("meta-llama/Llama-3.1-8B".into(), Some("llama3.1".into()))];
    out.push(detect(&mislabeled, catalog));
    out.push(detect(
        &evidence(
            "coqui/XTTS-v2",
            json!({ "license": "other", "license_name": "coqui-public-model-license" }),
            &[],
        ),
        catalog,
    ));
    out
}

fn rows() -> Vec<AuditRow> {
    let catalog = Catalog::builtin();
    let policy = Policy::from_toml(
        "default = \"review\"\nallow = [\"apache-2.0\", \"mit\"]\ndeny = [\"cc-by-nc-4.0\"]",
    )
    .expect("policy");
    detections()
        .iter()
        .map(|detection| {
            let verdict = policy.evaluate(&detection.repo, detection, catalog, &[]);
            AuditRow::new(COMMIT, detection, &verdict, catalog)
        })
        .collect()
}

#[test]
fn audit_rows_carry_the_required_fields() {
    let rows = rows();
    let json: Value = serde_json::from_str(&audit_json(&rows).expect("json")).expect("parse");
    let llama = json
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|row| row["repo"] == "meta-llama/Llama-3.1-8B-Instruct")
        })
        .expect("row");
    for field in [
        "repo",
        "commit",
        "licence",
        "licence_name",
        "commercial_use",
        "user_cap",
        "obligations",
        "verdict",
        "reasons",
        "signals",
        "conflicts",
    ] {
        assert!(llama.get(field).is_some(), "missing {field}");
    }
    assert_eq!(llama["licence"], "llama3_1");
    assert_eq!(llama["licence_id"], "llama3.1");
    assert_eq!(llama["commercial_use"], "conditional");
    assert!(
        llama["user_cap"]
            .as_str()
            .is_some_and(|cap| cap.contains("700000000"))
    );
    assert!(
        llama["obligations"]
            .as_array()
            .is_some_and(|duties| duties.iter().any(|duty| duty
                .as_str()
                .is_some_and(|duty| duty.contains("Built with Llama"))))
    );

    let mislabeled = rows
        .iter()
        .find(|row| row.repo.ends_with("Distill-Llama-8B"))
        .expect("row");
    assert_eq!(mislabeled.licence, "mit");
    assert_eq!(mislabeled.verdict, "review");
    assert!(!mislabeled.conflicts.is_empty());
    assert!(
        mislabeled
            .obligations
            .iter()
            .any(|duty| duty.starts_with("[llama3.1 via meta-llama/Llama-3.1-8B]")),
        "{:?}",
        mislabeled.obligations
    );

    let coqui = rows
        .iter()
        .find(|row| row.repo == "coqui/XTTS-v2")
        .expect("row");
    assert_eq!(coqui.licence, "unknown");
    assert_eq!(coqui.licence_id, "coqui-public-model-license");
}

#[test]
fn csv_and_table() {
    let rows = rows();
    let csv = audit_csv(&rows);
    let lines: Vec<&str> = csv.split("\r\n").filter(|line| !line.is_empty()).collect();
    assert!(lines[0].starts_with("repo,commit,licence,licence_id,licence_name"));
    assert!(
        lines.len() > rows.len(),
        "multi-line fields must be quoted, not split rows"
    );
    assert!(
        csv.contains("\"Llama 3.1 Community License Agreement\"")
            || csv.contains(",Llama 3.1 Community License Agreement,")
    );
    let table = audit_table(&rows);
    assert_eq!(table.lines().count(), rows.len() + 1);
    assert!(
        table
            .lines()
            .next()
            .is_some_and(|header| header.starts_with("REPO"))
    );
    assert!(table.contains("cc-by-nc-4.0") && table.contains("deny"));
}

fn python() -> String {
    std::env::var("LARDER_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python").to_string())
}

const VALIDATE: &str = r"
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())
if error is not None:
    data = getattr(error, 'data', None)
    print('INVALID:', getattr(data, 'message', error), 'at', getattr(data, 'json_path', '?'))
    sys.exit(1)
print('VALID')
";

fn validate_cyclonedx(bom: &Value) -> Result<(), String> {
    let mut file = tempfile::NamedTempFile::new().map_err(|error| error.to_string())?;
    file.write_all(bom.to_string().as_bytes())
        .map_err(|error| error.to_string())?;
    let output = Command::new(python())
        .args(["-c", VALIDATE])
        .arg(file.path())
        .output()
        .map_err(|error| format!("cannot run {}: {error} (set LARDER_PYTHON)", python()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.success() && stdout.contains("VALID") {
        Ok(())
    } else {
        Err(format!(
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn bom_models(detections: &[Detection]) -> Vec<BomModel<'_>> {
    detections
        .iter()
        .map(|detection| BomModel {
            commit: COMMIT.to_string(),
            detection,
            files: vec![
                BomFile {
                    path: "model.safetensors".into(),
                    sha256: Some("ab".repeat(32)),
                    size: 1 << 30,
                },
                BomFile {
                    path: "config.json".into(),
                    sha256: None,
                    size: 600,
                },
            ],
            endpoint: "https://huggingface.co/".into(),
            gated: Some("manual".into()),
        })
        .collect()
}

#[test]
fn cyclonedx_validates_against_the_official_1_6_schema() {
    let catalog = Catalog::builtin();
    let detections = detections();
    let bom = cyclonedx(
        &bom_models(&detections),
        catalog,
        datetime!(2026-11-27 12:00 UTC),
    );
    assert_eq!(bom["specVersion"], "1.6");
    let components = bom["components"].as_array().expect("components");
    assert_eq!(components.len(), detections.len());
    let llama = components
        .iter()
        .find(|component| component["name"] == "Llama-3.1-8B-Instruct")
        .expect("llama");
    assert_eq!(llama["type"], "machine-learning-model");
    assert_eq!(llama["version"], COMMIT);
    assert_eq!(
        llama["purl"],
        format!("pkg:huggingface/meta-llama/Llama-3.1-8B-Instruct@{COMMIT}")
    );
    assert!(
        llama["properties"]
            .to_string()
            .contains("larder:licence:mau_cap")
    );
    validate_cyclonedx(&bom).expect("BOM must validate");

    // The validator really rejects: a bad hash and an unknown field must fail.
    let mut broken = bom.clone();
    broken["components"][0]["hashes"] = json!([{ "alg": "SHA-256", "content": "not-hex" }]);
    assert!(validate_cyclonedx(&broken).is_err());
    let mut broken = bom;
    broken["components"][0]["licenceCaps"] = json!(1);
    assert!(validate_cyclonedx(&broken).is_err());
}

#[test]
fn every_catalog_licence_validates_in_a_bom() {
    let catalog = Catalog::builtin();
    let detections: Vec<Detection> = catalog
        .all()
        .iter()
        .map(|licence| {
            let id = if licence.hub_id.is_empty() {
                licence.key.clone()
            } else {
                licence.hub_id.clone()
            };
            let mut evidence = evidence(
                &format!("org/{}", licence.key),
                json!({ "license": "other", "license_name": id }),
                &[],
            );
            evidence.base_model_licences = vec![("org/base".into(), Some("llama3.2".into()))];
            detect(&evidence, catalog)
        })
        .collect();
    assert!(
        detections
            .iter()
            .all(|detection| detection.licence.is_some())
    );
    let bom = cyclonedx(
        &bom_models(&detections),
        catalog,
        datetime!(2026-11-27 12:00 UTC),
    );
    validate_cyclonedx(&bom).expect("BOM with every catalog licence must validate");
}

#[test]
fn spdx_3_document_has_the_ai_profile_fields() {
    let catalog = Catalog::builtin();
    let detections = detections();
    let document = spdx(
        &bom_models(&detections),
        catalog,
        datetime!(2026-11-27 12:00 UTC),
    );
    assert_eq!(
        document["@context"],
        "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"
    );
    let graph = document["@graph"].as_array().expect("graph");
    let packages: Vec<&Value> = graph
        .iter()
        .filter(|element| element["type"] == "ai_AIPackage")
        .collect();
    assert_eq!(packages.len(), detections.len());
    for package in &packages {
        for field in [
            "suppliedBy",
            "releaseTime",
            "software_downloadLocation",
            "software_packageVersion",
            "software_primaryPurpose",
        ] {
            assert!(package.get(field).is_some(), "missing {field}");
        }
    }
    let llama = packages
        .iter()
        .find(|package| package["name"] == "meta-llama/Llama-3.1-8B-Instruct")
        .expect("llama");
    assert!(
        llama["software_attributionText"]
            .to_string()
            .contains("Llama 3.1 is licensed under")
    );
    let ids: Vec<&str> = graph
        .iter()
        .filter_map(|element| element["spdxId"].as_str())
        .collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "spdxIds must be unique");
    let expressions: Vec<&str> = graph
        .iter()
        .filter_map(|element| element["simplelicensing_licenseExpression"].as_str())
        .collect();
    assert!(expressions.contains(&"LicenseRef-scancode-llama-3.1-license-2024"));
    assert!(expressions.contains(&"Apache-2.0"));
    assert!(expressions.contains(&"NOASSERTION"));
    // Every relationship endpoint exists in the graph.
    for relationship in graph
        .iter()
        .filter(|element| element["type"] == "Relationship")
    {
        let from = relationship["from"].as_str().expect("from");
        assert!(ids.contains(&from));
        for to in relationship["to"].as_array().expect("to") {
            assert!(ids.contains(&to.as_str().expect("id")));
        }
    }
}

#[test]
fn notice_lists_owed_attribution() {
    let catalog = Catalog::builtin();
    let detections = detections();
    let refs: Vec<&Detection> = detections.iter().collect();
    let text = notice(&refs, catalog);
    assert!(text.contains("Llama 3.1 is licensed under the Llama 3.1 Community License"));
    assert!(text.contains("Display: \"Built with Llama\""));
    assert!(text.contains(
        "deepseek-ai/DeepSeek-R1-Distill-Llama-8B (via base model meta-llama/Llama-3.1-8B)"
    ));
    assert!(text.contains("Gemma is provided under and subject to the Gemma Terms of Use"));
    assert!(text.contains("--- meta-llama/Llama-3.1-8B-Instruct: NOTICE ---"));
    assert!(text.contains("Licence unknown"));
    assert!(text.contains("someone/no-licence"));
}

const VALIDATE_SPDX: &str = r"
import io, sys
try:
    from spdx_python_model import v3_0_1 as spdx
except ImportError:
    print('SKIP: spdx-python-model is not installed')
    sys.exit(0)
objects = spdx.SHACLObjectSet()
with open(sys.argv[1]) as f:
    spdx.JSONLDDeserializer().read(f, objects)
missing = objects.link()
if missing:
    print('INVALID: unresolved ids', sorted(missing))
    sys.exit(1)
spdx.JSONLDSerializer().write(objects, io.BytesIO())
print('VALID', len(objects.objects))
";

/// Checks the document against the SPDX 3.0.1 model with the official generated bindings
/// (`spdx-python-model`: property names, types, vocabularies, cardinalities). Uses
/// `LARDER_SPDX_PYTHON`, else the CycloneDX python; skips (saying so) when neither has the
/// package.
#[test]
fn spdx_3_document_loads_in_the_spdx_python_model() {
    let catalog = Catalog::builtin();
    let detections = detections();
    let document = spdx(
        &bom_models(&detections),
        catalog,
        datetime!(2026-11-27 12:00 UTC),
    );
    let python = std::env::var("LARDER_SPDX_PYTHON").unwrap_or_else(|_| python());
    let run = |document: &Value| -> (bool, String) {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(document.to_string().as_bytes())
            .expect("write");
        match Command::new(&python)
            .args(["-c", VALIDATE_SPDX])
            .arg(file.path())
            .output()
        {
            Ok(output) => (
                output.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            ),
            Err(error) => (true, format!("SKIP: cannot run {python}: {error}")),
        }
    };
    let (ok, output) = run(&document);
    if output.starts_with("SKIP") {
        eprintln!("{output}");
        return;
    }
    assert!(ok && output.starts_with("VALID"), "{output}");
    let mut broken = document;
    if let Some(package) = broken["@graph"].as_array_mut().and_then(|graph| {
        graph
            .iter_mut()
            .find(|element| element["type"] == "ai_AIPackage")
    }) {
        package["software_primaryPurpose"] = json!("weights");
    }
    assert!(
        !run(&broken).0,
        "the checker must reject an invalid vocabulary value"
    );
}
