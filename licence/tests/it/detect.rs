//! Detection: each family, conflicts, lineage, relicensing.

use larder_licence::report::relicensing;
use larder_licence::text::{identify, normalise};
use larder_licence::{
    Catalog, Confidence, ConflictKind, RepoEvidence, SignalSource, detect, is_licence_file,
};
use serde_json::json;

use crate::fixtures::{self, evidence};

#[test]
fn each_family_resolves_to_its_key() {
    let catalog = Catalog::builtin();
    for (name, evidence, expected) in fixtures::families() {
        let detection = detect(&evidence, catalog);
        assert_eq!(
            detection.licence.as_deref(),
            expected,
            "{name}: {:#?}",
            detection.signals
        );
        let own_conflicts: Vec<_> = detection
            .conflicts
            .iter()
            .filter(|conflict| conflict.kind != ConflictKind::SplitLicensing)
            .collect();
        assert!(own_conflicts.is_empty(), "{name}: {own_conflicts:?}");
        if expected.is_none() {
            assert_eq!(detection.confidence, Confidence::None, "{name}");
            assert_eq!(detection.licence_key(), "unknown");
        } else {
            assert!(
                detection.confidence >= Confidence::Medium,
                "{name}: {:?}",
                detection.confidence
            );
        }
    }
}

#[test]
fn file_and_card_agreeing_is_high_confidence_and_signals_name_sources() {
    let catalog = Catalog::builtin();
    let (_, evidence, _) = fixtures::families()
        .into_iter()
        .find(|(name, _, _)| *name == "llama3.1")
        .expect("fixture");
    let detection = detect(&evidence, catalog);
    assert_eq!(detection.confidence, Confidence::High);
    let sources: Vec<String> = detection
        .signals
        .iter()
        .map(|signal| signal.source.label())
        .collect();
    for expected in [
        "file:LICENSE",
        "file:USE_POLICY.md",
        "file:NOTICE",
        "card.license",
        "tag",
        "gate",
    ] {
        assert!(
            sources.iter().any(|source| source == expected),
            "{expected} missing from {sources:?}"
        );
    }
    let licence_signal = detection
        .signals
        .iter()
        .find(|signal| {
            signal.source
                == SignalSource::LicenceFile {
                    path: "LICENSE".into(),
                }
        })
        .expect("LICENSE signal");
    assert_eq!(licence_signal.value, "llama3.1");
    let detail = licence_signal.detail.as_deref().unwrap_or_default();
    assert!(detail.contains("normalised_sha256="), "{detail}");
    assert!(detail.contains("Version Release Date"), "{detail}");
    assert_eq!(detection.notice_files.len(), 1);
}

#[test]
fn sibling_licences_are_told_apart() {
    let catalog = Catalog::builtin();
    let key = |text: &str| identify(text.as_bytes(), catalog).key;
    assert_eq!(key(fixtures::LLAMA31_LICENSE).as_deref(), Some("llama3_1"));
    assert_eq!(key(fixtures::LLAMA32_LICENSE).as_deref(), Some("llama3_2"));
    assert_eq!(key(fixtures::LLAMA2_LICENSE).as_deref(), Some("llama2"));
    assert_eq!(
        key("META LLAMA 3 COMMUNITY LICENSE AGREEMENT").as_deref(),
        Some("llama3")
    );
    assert_eq!(
        key(fixtures::OPENRAIL_LICENSE).as_deref(),
        Some("creativeml_openrail_m")
    );
    assert_eq!(
        key(fixtures::OPENRAIL_PP_LICENSE).as_deref(),
        Some("openrail_pp_m")
    );
    assert_eq!(
        key(fixtures::KIMI_LICENSE).as_deref(),
        Some("kimi_modified_mit")
    );
    assert_eq!(key(fixtures::MIT_LICENSE).as_deref(), Some("mit"));
    assert_eq!(
        key("Tongyi Qianwen RESEARCH LICENSE AGREEMENT").as_deref(),
        Some("tongyi_qianwen_research_2023")
    );
    assert_eq!(
        key("Qwen RESEARCH LICENSE AGREEMENT").as_deref(),
        Some("qwen_research_2024")
    );
    assert_eq!(key("just some readme text"), None);
    let kimi = identify(fixtures::KIMI_LICENSE.as_bytes(), catalog);
    assert_eq!(
        kimi.runner_up.as_ref().map(|(key, _)| key.as_str()),
        Some("mit")
    );
}

#[test]
fn normalisation_ignores_layout_copyright_and_years() {
    let a = normalise("Copyright 2023 Alice\nApache   License,\n Version 2.0, January 2004");
    let b = normalise("Copyright (c) 2025 Bob\n\nAPACHE LICENSE\nVersion 2.0, January 2019\n");
    assert_eq!(a, b);
    assert_eq!(a, "apache license version 2 0 january");
}

#[test]
fn card_says_mit_over_a_llama_base_is_flagged() {
    let catalog = Catalog::builtin();
    let mut evidence = evidence(
        "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
        json!({ "license": "mit", "base_model": "meta-llama/Llama-3.1-8B" }),
        &[("LICENSE", fixtures::MIT_LICENSE)],
    );
    evidence.base_model_licences =
        vec![("meta-llama/Llama-3.1-8B".into(), Some("llama3.1".into()))];
    let detection = detect(&evidence, catalog);
    assert_eq!(detection.licence.as_deref(), Some("mit"));
    let kinds: Vec<ConflictKind> = detection
        .conflicts
        .iter()
        .map(|conflict| conflict.kind)
        .collect();
    assert!(kinds.contains(&ConflictKind::InheritedTerms), "{kinds:?}");
    assert!(kinds.contains(&ConflictKind::NamingRule), "{kinds:?}");
    let message = &detection.conflicts[0].message;
    assert!(
        message.contains("llama3.1") && message.contains("mit"),
        "{message}"
    );
    let effective: Vec<Option<String>> = detection
        .effective_licences(catalog)
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(
        effective,
        vec![Some("mit".to_string()), Some("llama3_1".to_string())]
    );
    assert_eq!(detection.commercial_use(catalog).as_str(), "conditional");
}

#[test]
fn a_llama_derivative_named_llama_passes_the_naming_rule() {
    let catalog = Catalog::builtin();
    let mut evidence = evidence(
        "acme/Llama-3.1-acme-8B",
        json!({ "license": "llama3.1" }),
        &[],
    );
    evidence.base_model_licences =
        vec![("meta-llama/Llama-3.1-8B".into(), Some("llama3.1".into()))];
    let detection = detect(&evidence, catalog);
    assert!(detection.conflicts.is_empty(), "{:?}", detection.conflicts);
    assert_eq!(detection.effective_licences(catalog).len(), 1);
}

#[test]
fn permissive_base_does_not_conflict() {
    let catalog = Catalog::builtin();
    let mut evidence = evidence(
        "acme/tiny-ft",
        json!({ "license": "mit", "base_model": ["org/apache-base"] }),
        &[],
    );
    evidence.base_model_licences = vec![("org/apache-base".into(), Some("apache-2.0".into()))];
    let detection = detect(&evidence, catalog);
    assert!(detection.conflicts.is_empty(), "{:?}", detection.conflicts);
}

#[test]
fn licence_file_text_contradicting_the_card_is_flagged_and_the_file_wins() {
    let catalog = Catalog::builtin();
    let evidence = evidence(
        "RedHatAI/Pixtral-Large-Instruct-2411-hf-quantized.w4a16",
        json!({ "license": "apache-2.0" }),
        &[("LICENSE.md", fixtures::MRL_TEXT)],
    );
    let detection = detect(&evidence, catalog);
    assert_eq!(detection.licence.as_deref(), Some("mistral_mrl_0_1"));
    assert_eq!(detection.confidence, Confidence::Low);
    assert_eq!(detection.declared.as_deref(), Some("apache_2_0"));
    assert!(
        detection
            .conflicts
            .iter()
            .any(|conflict| conflict.kind == ConflictKind::CardVsFile)
    );
}

#[test]
fn family_id_refined_by_the_file_is_not_a_conflict() {
    let catalog = Catalog::builtin();
    let evidence = evidence(
        "acme/sd-ft",
        json!({ "license": "openrail" }),
        &[("LICENSE", fixtures::OPENRAIL_PP_LICENSE)],
    );
    let detection = detect(&evidence, catalog);
    assert_eq!(detection.licence.as_deref(), Some("openrail_pp_m"));
    assert!(detection.conflicts.is_empty(), "{:?}", detection.conflicts);
}

#[test]
fn unlisted_license_name_stays_unknown_but_is_recorded() {
    let catalog = Catalog::builtin();
    let evidence = evidence(
        "coqui/XTTS-v2",
        json!({ "license": "other", "license_name": "coqui-public-model-license", "license_link": "https://coqui.ai/cpml" }),
        &[],
    );
    let detection = detect(&evidence, catalog);
    assert_eq!(detection.licence, None);
    assert_eq!(
        detection.declared_unresolved.as_deref(),
        Some("coqui-public-model-license")
    );
    assert!(
        detection
            .signals
            .iter()
            .any(|signal| signal.source == SignalSource::CardLicenseLink)
    );
}

#[test]
fn odd_input_does_not_panic() {
    let catalog = Catalog::builtin();
    let evidence = RepoEvidence {
        repo: String::new(),
        card: Some(
            json!({ "license": 42, "license_name": ["", "  "], "base_model": {"x": 1}, "extra_gated_prompt": "" }),
        ),
        tags: vec!["license:".into(), "license:other".into()],
        gated: Some("false".into()),
        licence_files: vec![
            ("LICENSE".into(), vec![0xff, 0xfe, 0x00]),
            ("NOTICE".into(), Vec::new()),
        ],
        base_model_licences: vec![("x".into(), Some("no-such".into()))],
    };
    let detection = detect(&evidence, catalog);
    assert_eq!(detection.licence, None);
    let empty = detect(&RepoEvidence::default(), catalog);
    assert_eq!(empty.licence, None);
}

#[test]
fn relicensed_revision_is_flagged() {
    let catalog = Catalog::builtin();
    let before = detect(
        &evidence(
            "microsoft/phi-2",
            json!({ "license": "other", "license_name": "microsoft-research-license" }),
            &[],
        ),
        catalog,
    );
    let after = detect(
        &evidence(
            "microsoft/phi-2",
            json!({ "license": "mit" }),
            &[("LICENSE", fixtures::MIT_LICENSE)],
        ),
        catalog,
    );
    let change = relicensing(
        ("a".repeat(40).as_str(), &before),
        ("b".repeat(40).as_str(), &after),
        catalog,
    )
    .expect("a change");
    assert_eq!(change.to.1, "mit");
    assert!(change.message.contains("relicensed"), "{}", change.message);
    assert!(relicensing(("a", &after), ("b", &after), catalog).is_none());
}

#[test]
fn licence_file_selection() {
    for path in [
        "LICENSE",
        "LICENSE.txt",
        "sub/LICENCE.md",
        "NOTICE",
        "USE_POLICY.md",
        "LICENSE-MODEL",
        "COPYING",
    ] {
        assert!(is_licence_file(path), "{path}");
    }
    for path in [
        "README.md",
        "model.safetensors",
        "config.json",
        "docs/usage.md",
    ] {
        assert!(!is_licence_file(path), "{path}");
    }
}

#[test]
fn gemma_id_over_an_apache_text_is_the_gemma_4_case() {
    let catalog = Catalog::builtin();
    let detection = detect(
        &evidence(
            "google/gemma-4-9b",
            json!({ "license": "gemma" }),
            &[("LICENSE", fixtures::APACHE_LICENSE)],
        ),
        catalog,
    );
    assert_eq!(detection.licence.as_deref(), Some("apache_2_0"));
    assert!(
        detection
            .conflicts
            .iter()
            .any(|conflict| conflict.kind == ConflictKind::CardVsFile)
    );
}

#[test]
fn gate_attestations_and_eu_block_are_recorded() {
    let catalog = Catalog::builtin();
    let mut evidence = evidence(
        "meta-llama/Llama-3.2-11B-Vision",
        json!({
            "license": "llama3.2",
            "extra_gated_fields": { "Country": "country", "I accept the terms": "checkbox" },
            "extra_gated_eu_disallowed": true,
        }),
        &[("LICENSE.txt", fixtures::LLAMA32_LICENSE)],
    );
    evidence.gated = Some("manual".into());
    let detection = detect(&evidence, catalog);
    assert_eq!(detection.licence.as_deref(), Some("llama3_2"));
    let gate: Vec<&str> = detection
        .signals
        .iter()
        .filter(|signal| signal.source == SignalSource::Gate)
        .map(|signal| signal.value.as_str())
        .collect();
    assert_eq!(
        gate,
        vec![
            "gated:manual",
            "extra_gated_fields",
            "extra_gated_eu_disallowed"
        ]
    );
    assert!(is_licence_file("Tongyi Qianwen RESEARCH LICENSE AGREEMENT"));
}
