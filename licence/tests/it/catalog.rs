//! The embedded catalog: it parses, is big enough, has unique ids, and resolves aliases.

use larder_licence::catalog::{BUILTIN_CATALOG, validate_rows};
use larder_licence::{Catalog, CatalogError, CommercialUse, Evidence};

#[test]
fn builtin_catalog_parses_and_validates() {
    let catalog = Catalog::from_toml(BUILTIN_CATALOG).expect("licence/licences.toml must be valid");
    assert!(
        catalog.all().len() >= 40,
        "only {} licences",
        catalog.all().len()
    );
    assert!(validate_rows(catalog.all()).is_empty());
    assert_eq!(Catalog::builtin().all().len(), catalog.all().len());
}

#[test]
fn required_fields_are_present() {
    for licence in Catalog::builtin().all() {
        assert!(!licence.name.is_empty(), "{}", licence.key);
        assert!(!licence.spdx_or_ref().is_empty(), "{}", licence.key);
        assert!(!licence.source_urls.is_empty(), "{}", licence.key);
        assert!(!licence.output_training.is_empty(), "{}", licence.key);
    }
}

#[test]
fn unverified_rows_stay_unverified() {
    let catalog = Catalog::builtin();
    for key in ["llama1", "grok2_community", "fair_noncommercial_research"] {
        assert_eq!(
            catalog.get(key).map(|licence| licence.evidence),
            Some(Evidence::Unverified),
            "{key}"
        );
    }
    assert_eq!(
        catalog.get("llama3_1").map(|licence| licence.evidence),
        Some(Evidence::Primary)
    );
}

#[test]
fn catalog_facts_match_the_research() {
    let catalog = Catalog::builtin();
    let llama = catalog.lookup("llama3.1").expect("llama3.1");
    assert_eq!(llama.user_cap.threshold, Some(700_000_000));
    assert_eq!(llama.name_prefix, "Llama");
    assert_eq!(llama.display_text, "Built with Llama");
    assert_eq!(llama.commercial_use, CommercialUse::Conditional);
    assert_eq!(
        catalog
            .lookup("llama3")
            .map(|licence| licence.name_prefix.as_str()),
        Some("Llama 3")
    );
    assert_eq!(
        catalog
            .lookup("stabilityai-ai-community")
            .and_then(|licence| licence.revenue_cap.threshold),
        Some(1_000_000)
    );
    assert!(
        catalog
            .lookup("llama3.2")
            .is_some_and(|licence| licence.territorial.contains("EU"))
    );
    assert_eq!(
        catalog
            .lookup("cc-by-nc-4.0")
            .map(|licence| licence.commercial_use),
        Some(CommercialUse::No)
    );
}

#[test]
fn aliases_resolve_to_one_key() {
    let catalog = Catalog::builtin();
    let key = |id: &str| catalog.lookup(id).map(|licence| licence.key.clone());
    for (ids, expected) in [
        (
            &[
                "deepseek",
                "deepseek-license",
                "DeepSeek License Agreement",
                "deepseek_la_1_0",
            ][..],
            "deepseek_la_1_0",
        ),
        (
            &["llama3.1", "Llama-3.1", "llama3_1", "LLAMA 3.1"][..],
            "llama3_1",
        ),
        (
            &["tongyi-qianwen", "tongyi-qianwen-license-agreement"][..],
            "tongyi_qianwen_2023",
        ),
        (
            &["open-mdw", "openmdw-1.0", "OpenMDW 1.0"][..],
            "openmdw_1_0",
        ),
        (&["tii-falcon-llm"][..], "tii_falcon_llm_1_0"),
        (&["mrl"][..], "mistral_mrl_0_1"),
        (
            &["apache-2.0", "Apache 2.0", "apache_2_0"][..],
            "apache_2_0",
        ),
    ] {
        for id in ids {
            assert_eq!(key(id).as_deref(), Some(expected), "{id}");
        }
    }
    assert_eq!(key("other"), None);
    assert_eq!(key("unknown"), None);
    assert_eq!(key("coqui-public-model-license"), None);
    assert_eq!(key("openrail++").as_deref(), Some("openrail_pp_m"));
    assert_eq!(key("openrail").as_deref(), Some("openrail_family"));
}

#[test]
fn links_resolve_including_moved_and_british_spellings() {
    let catalog = Catalog::builtin();
    let key = |url: &str| catalog.lookup_link(url).map(|licence| licence.key.clone());
    assert_eq!(
        key("https://mistral.ai/licenses/MRL-0.1.md").as_deref(),
        Some("mistral_mrl_0_1")
    );
    assert_eq!(
        key("https://mistral.ai/static/licenses/MRL-0.1.md").as_deref(),
        Some("mistral_mrl_0_1")
    );
    assert_eq!(
        key("https://mistral.ai/licenses/MNPL-0.1.md").as_deref(),
        Some("mistral_mnpl_0_1")
    );
    assert_eq!(key("LICENSE"), None);
}

#[test]
fn duplicate_aliases_are_rejected() {
    let doubled = BUILTIN_CATALOG.replace(
        "license_names = [\"mrl\"]",
        "license_names = [\"mrl\", \"deepseek\"]",
    );
    assert_ne!(doubled, BUILTIN_CATALOG);
    match Catalog::from_toml(&doubled) {
        Err(CatalogError::Invalid { problems }) => {
            assert!(
                problems.iter().any(|problem| problem.contains("deepseek")),
                "{problems:?}"
            );
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    let unknown_field = BUILTIN_CATALOG.replacen("[[licence]]\n", "[[licence]]\nsurprise = 1\n", 1);
    assert!(matches!(
        Catalog::from_toml(&unknown_field),
        Err(CatalogError::Parse(_))
    ));
}
