//! `larder rm ORG/NAME@REV`: forget a held revision; `larder gc` then reclaims its blobs.

use std::process::ExitCode;

use clap::Args;
use larder::Larder;
use larder::hub::{RepoRef, RepoType};
use larder::registry::RepoKind;
use larder::remove::remove_revision;

use super::format;

/// Arguments of `larder rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// ORG/NAME@REV: the held revision (branch, tag or commit) to remove
    repo: RepoRef,
    /// Repo type
    #[arg(long = "type", default_value = "model", value_parser = ["model", "dataset"])]
    kind: String,
}

/// Run `larder rm`.
pub async fn run(larder: &Larder, args: RmArgs) -> anyhow::Result<ExitCode> {
    let kind = RepoKind::from(args.kind.parse::<RepoType>()?);
    let Some(revision) = args.repo.revision.as_ref() else {
        anyhow::bail!(
            "name the revision to remove: `larder rm {}@REV` (a branch, tag or commit)",
            args.repo.id
        );
    };
    let removed = remove_revision(larder, kind, args.repo.id.as_str(), revision.as_str()).await?;
    eprintln!(
        "removed {}@{}; `larder gc` reclaims {} no held revision uses",
        removed.repo,
        &removed.commit[..12.min(removed.commit.len())],
        format::size(removed.reclaimable)
    );
    Ok(ExitCode::SUCCESS)
}
