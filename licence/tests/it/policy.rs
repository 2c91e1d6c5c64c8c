//! Policy: parsing errors and every verdict path.

use larder_licence::{Catalog, Detection, Policy, PolicyError, VerdictKind, detect};
use serde_json::json;

use crate::fixtures::{self, evidence};

const POLICY: &str = r#"
default = "review"
allow = ["apache-2.0", "mit", "llama3.1", "deepseek"]
deny = ["cc-by-nc-4.0"]
[require]
commercial_use = true
[[exception]]
repo = "acme/research-*"
verdict = "allow"
reason = "internal research only, approved 2026-11"
"#;

fn family(name: &str) -> Detection {
    let (_, evidence, _) = fixtures::families()
        .into_iter()
        .find(|(family, _, _)| *family == name)
        .expect("fixture");
    detect(&evidence, Catalog::builtin())
}

fn verdict(
    policy: &Policy,
    repo: &str,
    detection: &Detection,
    accepted: &[&str],
) -> (VerdictKind, String) {
    let accepted: Vec<String> = accepted.iter().map(|id| (*id).to_string()).collect();
    let verdict = policy.evaluate(repo, detection, Catalog::builtin(), &accepted);
    (verdict.verdict, verdict.rule)
}

#[test]
fn allow_deny_review_and_require() {
    let policy = Policy::from_toml(POLICY).expect("policy");
    let apache = family("apache");
    assert_eq!(
        verdict(&policy, "x/apache", &apache, &[]),
        (VerdictKind::Allow, "allow: apache-2.0".into())
    );
    let nc = family("cc-by-nc");
    assert_eq!(
        verdict(&policy, "x/nc", &nc, &[]),
        (VerdictKind::Deny, "deny: cc-by-nc-4.0".into())
    );
    // Allowed by the list, but conditional terms under `require.commercial_use` need review.
    let llama = family("llama3.1");
    let (kind, rule) = verdict(&policy, "x/llama", &llama, &[]);
    assert_eq!(kind, VerdictKind::Review);
    assert_eq!(rule, "require.commercial_use: llama3.1 is conditional");
    // Unlisted, non-commercial: require denies.
    let mrl = family("mistral research");
    let (kind, rule) = verdict(&policy, "x/mrl", &mrl, &[]);
    assert_eq!(kind, VerdictKind::Deny);
    assert!(
        rule.starts_with("require.commercial_use: mistral_mrl_0_1"),
        "{rule}"
    );
    // Unlisted, commercial yes: default.
    let gemma = family("gemma");
    assert_eq!(
        verdict(&policy, "x/gemma", &gemma, &[]),
        (VerdictKind::Review, "default: review".into())
    );
    // Unknown licence: default review, and require says unknown.
    let none = family("none");
    let result = policy.evaluate("x/none", &none, Catalog::builtin(), &[]);
    assert_eq!(result.verdict, VerdictKind::Review);
    assert!(
        result
            .reasons
            .iter()
            .any(|reason| reason.contains("unknown")),
        "{:?}",
        result.reasons
    );
}

#[test]
fn accept_licence_clears_conditions_but_not_deny() {
    let policy = Policy::from_toml(POLICY).expect("policy");
    let llama = family("llama3.1");
    assert_eq!(
        verdict(&policy, "x/llama", &llama, &["llama3.1"]),
        (VerdictKind::Allow, "allow: llama3.1".into())
    );
    let nc = family("cc-by-nc");
    assert_eq!(
        verdict(&policy, "x/nc", &nc, &["cc-by-nc-4.0"]).0,
        VerdictKind::Deny
    );
    let lenient = Policy::from_toml("default = \"deny\"").expect("policy");
    let gemma = family("gemma");
    assert_eq!(
        verdict(&lenient, "x/gemma", &gemma, &[]).0,
        VerdictKind::Deny
    );
    assert_eq!(
        verdict(&lenient, "x/gemma", &gemma, &["gemma"]),
        (VerdictKind::Allow, "accepted: gemma".into())
    );
}

#[test]
fn exception_overrides_by_glob() {
    let policy = Policy::from_toml(POLICY).expect("policy");
    let nc = family("cc-by-nc");
    let result = policy.evaluate("acme/research-model", &nc, Catalog::builtin(), &[]);
    assert_eq!(result.verdict, VerdictKind::Allow);
    assert_eq!(result.rule, "exception: acme/research-*");
    assert_eq!(
        result.reasons,
        vec!["internal research only, approved 2026-11".to_string()]
    );
    assert_eq!(
        verdict(&policy, "acme/other", &nc, &[]).0,
        VerdictKind::Deny
    );
}

#[test]
fn inherited_licence_is_judged_and_conflicts_force_review() {
    let catalog = Catalog::builtin();
    let mut evidence = evidence("acme/distill-8b", json!({ "license": "mit" }), &[]);
    evidence.base_model_licences = vec![("org/nc-base".into(), Some("cc-by-nc-4.0".into()))];
    let detection = detect(&evidence, catalog);
    let policy =
        Policy::from_toml("default = \"allow\"\ndeny = [\"cc-by-nc-4.0\"]").expect("policy");
    let result = policy.evaluate("acme/distill-8b", &detection, catalog, &[]);
    assert_eq!(result.verdict, VerdictKind::Deny);
    assert!(
        result
            .reasons
            .iter()
            .any(|reason| reason.contains("inherited from base model org/nc-base")),
        "{:?}",
        result.reasons
    );

    let mut evidence = evidence.clone();
    evidence.base_model_licences =
        vec![("meta-llama/Llama-3.1-8B".into(), Some("llama3.1".into()))];
    let detection = detect(&evidence, catalog);
    let policy = Policy::from_toml("allow = [\"mit\", \"llama3.1\"]").expect("policy");
    let result = policy.evaluate("acme/distill-8b", &detection, catalog, &[]);
    assert_eq!(result.verdict, VerdictKind::Review);
    assert_eq!(result.rule, "conflicting licence evidence");
}

#[test]
fn policy_errors_are_clear() {
    let err =
        Policy::from_toml("default = \"allow\"\nallowed = [\"mit\"]").expect_err("unknown key");
    assert!(matches!(err, PolicyError::Parse(_)));
    let source = std::error::Error::source(&err)
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(source.contains("allowed"), "{source}");

    let err = Policy::from_toml("allow = [\"mit\", \"no-such-licence\", \"also-missing\"]")
        .expect_err("unknown ids");
    match &err {
        PolicyError::UnknownLicences { field, ids } => {
            assert_eq!(*field, "allow");
            assert_eq!(
                ids,
                &vec!["no-such-licence".to_string(), "also-missing".to_string()]
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("no-such-licence"));

    let err = Policy::from_toml("allow = [\"mit\"]\ndeny = [\"MIT\"]").expect_err("contradiction");
    assert!(matches!(err, PolicyError::Contradiction { .. }), "{err:?}");

    let err = Policy::from_toml("[require]\ncommercial = true").expect_err("unknown require key");
    assert!(matches!(err, PolicyError::Parse(_)));

    let err =
        Policy::from_toml("[[exception]]\nrepo = \"a/[\"\nverdict = \"allow\"\nreason = \"x\"")
            .expect_err("bad glob");
    assert!(matches!(err, PolicyError::Glob { .. }), "{err:?}");

    let err = Policy::from_toml("[[exception]]\nrepo = \"a/b\"\nverdict = \"allow\"")
        .expect_err("reason required");
    assert!(matches!(err, PolicyError::Parse(_)));
}

#[test]
fn entries_accept_hub_ids_license_names_and_keys() {
    let policy = Policy::from_toml(
        "default = \"deny\"\nallow = [\"tongyi-qianwen\", \"llama3_1\", \"open-mdw\", \"unknown\"]",
    );
    assert!(policy.is_ok(), "{policy:?}");
    let policy = policy.expect("policy");
    let none = family("none");
    assert_eq!(
        verdict(&policy, "x/none", &none, &[]),
        (VerdictKind::Allow, "allow: unknown".into())
    );
    let qwen = family("qwen");
    assert_eq!(verdict(&policy, "x/qwen", &qwen, &[]).0, VerdictKind::Allow);
}
