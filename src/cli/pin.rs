//! `larder pin` / `larder unpin`: revisions the store quota never evicts.

use std::process::ExitCode;

use anyhow::anyhow;
use clap::Args;
use larder::Larder;
use larder::hub::{RepoRef, RepoType};
use larder::registry::RepoKind;

/// Arguments of `larder pin` and `larder unpin`.
#[derive(Debug, Args)]
pub struct PinArgs {
    /// ORG/NAME[@REV]: a held revision (branch, tag or commit) [default: main]
    repo: RepoRef,
    /// Repo type
    #[arg(long = "type", default_value = "model", value_parser = ["model", "dataset"])]
    kind: String,
}

/// Run `larder pin` (`pin = true`) or `larder unpin`.
pub async fn run(larder: &Larder, args: PinArgs, pin: bool) -> anyhow::Result<ExitCode> {
    let kind = RepoKind::from(args.kind.parse::<RepoType>()?);
    let name = args.repo.id.as_str();
    let revision = args
        .repo
        .revision
        .as_ref()
        .map_or_else(|| "main".to_owned(), |r| r.as_str().to_owned());
    let sha = larder
        .registry
        .resolve(kind, name, &revision)
        .await?
        .ok_or_else(|| anyhow!("{name}@{revision} is not held: `larder pull` it first"))?;
    let short = &sha[..12];
    if pin {
        let new = larder
            .registry
            .pin(kind, name, &sha)
            .await
            .map_err(|e| match e {
                larder::registry::RegistryError::UnknownCommit { .. } => {
                    anyhow!("{name}@{revision} ({short}) is not held: `larder pull` it first")
                }
                other => other.into(),
            })?;
        eprintln!(
            "{} {name}@{short}{}",
            if new { "pinned" } else { "already pinned:" },
            if revision == sha {
                String::new()
            } else {
                format!(" ({revision})")
            }
        );
        Ok(ExitCode::SUCCESS)
    } else if larder.registry.unpin(kind, name, &sha).await? {
        eprintln!("unpinned {name}@{short}");
        Ok(ExitCode::SUCCESS)
    } else {
        super::printer::error(&format!("{name}@{short} was not pinned"));
        Ok(ExitCode::FAILURE)
    }
}
