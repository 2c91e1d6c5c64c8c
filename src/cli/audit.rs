//! `larder audit [ORG/NAME[@REV]...]`: the licence audit of held repos.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use larder::Larder;
use larder::hub::{RepoRef, RepoType};
use larder::licence::{Audited, audit};
use larder::registry::RepoKind;
use larder_licence::report::{BomFile, BomModel, cyclonedx, spdx};
use larder_licence::{Catalog, Policy, audit_csv, audit_table};

/// Arguments of `larder audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Repos to audit, ORG/NAME[@REV] (newest held revision without REV) [default: every held repo]
    repos: Vec<RepoRef>,
    /// Licence policy file [default: `[policy]` of $LARDER_HOME/config.toml]
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Output format
    #[arg(long, default_value = "table", value_parser = ["table", "json", "csv", "cyclonedx", "spdx"])]
    format: String,
    /// Repo type
    #[arg(long = "type", default_value = "model", value_parser = ["model", "dataset"])]
    kind: String,
    /// Write the report to this file instead of stdout
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Exit with status 5 when a revision gets this verdict or a worse one (after writing the
    /// report): `deny`, `review` (deny or review), or `never`
    #[arg(long, default_value = "deny", value_parser = ["deny", "review", "never"])]
    fail_on: String,
}

/// Exit status when the audit finds what `--fail-on` names (as a denied `pull`).
const EXIT_POLICY: u8 = 5;

fn bom_models(audited: &[Audited]) -> Vec<BomModel<'_>> {
    audited
        .iter()
        .map(|item| BomModel {
            commit: item.row.commit.clone(),
            detection: &item.detection,
            files: item
                .detail
                .files
                .iter()
                .map(|file| BomFile {
                    path: file.path.clone(),
                    sha256: file.sha256.map(String::from),
                    size: file.size,
                })
                .collect(),
            endpoint: item.detail.upstream.clone(),
            gated: item.detail.gated.clone(),
        })
        .collect()
}

fn render(format: &str, audited: &[Audited]) -> anyhow::Result<String> {
    let catalog = Catalog::builtin();
    let rows: Vec<_> = audited.iter().map(|item| item.row.clone()).collect();
    Ok(match format {
        "json" => {
            let mut values = serde_json::to_value(&rows)?;
            if let Some(items) = values.as_array_mut() {
                for (value, item) in items.iter_mut().zip(audited) {
                    if let Some(object) = value.as_object_mut() {
                        object.insert(
                            "relicensing".to_owned(),
                            serde_json::to_value(&item.relicensing)?,
                        );
                    }
                }
            }
            let mut text = serde_json::to_string_pretty(&values)?;
            text.push('\n');
            text
        }
        "csv" => audit_csv(&rows),
        "cyclonedx" => {
            let now = generated_at();
            let mut text =
                serde_json::to_string_pretty(&cyclonedx(&bom_models(audited), catalog, now))?;
            text.push('\n');
            text
        }
        "spdx" => {
            let now = generated_at();
            let mut text = serde_json::to_string_pretty(&spdx(&bom_models(audited), catalog, now))?;
            text.push('\n');
            text
        }
        _ => {
            let mut text = audit_table(&rows);
            let changes: Vec<&str> = audited
                .iter()
                .filter_map(|item| item.relicensing.as_ref().map(|r| r.message.as_str()))
                .collect();
            if !changes.is_empty() {
                text.push_str("\nRELICENSED\n");
                for message in changes {
                    text.push_str(&format!("  {message}\n"));
                }
            }
            text
        }
    })
}

/// Now, in whole seconds: SPDX 3 `DateTime`s take no fractional seconds.
fn generated_at() -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// Run `larder audit`.
pub async fn run(larder: &Larder, args: AuditArgs) -> anyhow::Result<ExitCode> {
    let kind = RepoKind::from(args.kind.parse::<RepoType>()?);
    let policy = match larder.config.policy(args.policy.as_deref())? {
        Some(policy) => policy,
        None => {
            eprintln!(
                "note: no licence policy (--policy FILE or [policy] in config.toml): every licence gets the default verdict `review`"
            );
            Policy::from_toml("").context("the empty policy")?
        }
    };
    let targets: Vec<(String, Option<String>)> = args
        .repos
        .iter()
        .map(|repo| {
            (
                repo.id.to_string(),
                repo.revision.as_ref().map(|r| r.as_str().to_owned()),
            )
        })
        .collect();
    let audited = audit(larder, kind, &targets, &policy).await?;
    let text = render(&args.format, &audited)?;
    match &args.out {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("could not write {}", path.display()))?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    let failing: &[&str] = match args.fail_on.as_str() {
        "deny" => &["deny"],
        "review" => &["deny", "review"],
        _ => &[],
    };
    let flagged: Vec<String> = audited
        .iter()
        .filter(|item| failing.contains(&item.row.verdict.as_str()))
        .map(|item| format!("{} ({})", item.row.repo, item.row.verdict))
        .collect();
    if flagged.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "larder: {} revision(s) fail the policy (--fail-on {}): {}",
        flagged.len(),
        args.fail_on,
        flagged.join(", ")
    );
    Ok(ExitCode::from(EXIT_POLICY))
}
