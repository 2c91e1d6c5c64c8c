//! `larder notice ORG/NAME... [--out FILE]`: the attribution and NOTICE text owed.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use larder::Larder;
use larder::hub::{RepoRef, RepoType};
use larder::licence::{LicenceError, load_detection};
use larder::registry::RepoKind;
use larder_licence::Catalog;
use larder_licence::report::notice;

/// Arguments of `larder notice`.
#[derive(Debug, Args)]
pub struct NoticeArgs {
    /// Repos, ORG/NAME[@REV] (newest held revision without REV)
    #[arg(required = true)]
    repos: Vec<RepoRef>,
    /// Repo type
    #[arg(long = "type", default_value = "model", value_parser = ["model", "dataset"])]
    kind: String,
    /// Write the NOTICE text to this file instead of stdout
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Run `larder notice`.
pub async fn run(larder: &Larder, args: NoticeArgs) -> anyhow::Result<ExitCode> {
    let kind = RepoKind::from(args.kind.parse::<RepoType>()?);
    let mut detections = Vec::new();
    for repo in &args.repos {
        let name = repo.id.as_str();
        let history = larder.registry.licence_history(kind, name).await?;
        let not_held = || LicenceError::NotHeld {
            repo: match &repo.revision {
                Some(revision) => format!("{name}@{revision}"),
                None => name.to_owned(),
            },
        };
        let entry = match &repo.revision {
            None => history.last().ok_or_else(not_held)?,
            Some(revision) => {
                let sha = larder
                    .registry
                    .resolve(kind, name, revision.as_str())
                    .await?
                    .ok_or_else(not_held)?;
                history
                    .iter()
                    .find(|entry| entry.sha == sha)
                    .ok_or_else(not_held)?
            }
        };
        detections.push(load_detection(larder, kind, name, entry).await?);
    }
    let refs: Vec<_> = detections.iter().collect();
    let text = notice(&refs, Catalog::builtin());
    match &args.out {
        Some(path) => std::fs::write(path, &text)
            .with_context(|| format!("could not write {}", path.display()))?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}
