//! `larder ls`: repos and revisions held.

use std::process::ExitCode;

use clap::Args;
use larder::Larder;

use super::format;

/// Arguments of `larder ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// Run `larder ls`.
pub async fn run(larder: &Larder, args: LsArgs) -> anyhow::Result<ExitCode> {
    let repos = larder.registry.list_repos().await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&repos)?);
        return Ok(ExitCode::SUCCESS);
    }
    if repos.is_empty() {
        eprintln!("nothing held yet: try `larder pull ORG/NAME`");
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = Vec::new();
    for repo in &repos {
        for revision in &repo.revisions {
            let licence = revision
                .licence
                .license
                .clone()
                .map(|l| match &revision.licence.license_name {
                    Some(name) if l == "other" => format!("other ({name})"),
                    _ => l,
                })
                .unwrap_or_else(|| "-".to_owned());
            let held = if revision.files_held == revision.files {
                format::size(revision.bytes_held)
            } else {
                format!(
                    "{} of {} ({}/{} files)",
                    format::size(revision.bytes_held),
                    format::size(revision.bytes_total),
                    revision.files_held,
                    revision.files
                )
            };
            rows.push(vec![
                repo.name.clone(),
                repo.kind.as_str().to_owned(),
                if revision.refs.is_empty() {
                    "-".to_owned()
                } else {
                    revision.refs.join(",")
                },
                revision.sha[..revision.sha.len().min(12)].to_owned(),
                held,
                licence,
                format::time(revision.fetched_at),
            ]);
        }
    }
    print!(
        "{}",
        format::table(
            &[
                "REPO", "TYPE", "REFS", "COMMIT", "SIZE", "LICENCE", "FETCHED"
            ],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}
