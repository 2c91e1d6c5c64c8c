//! `larder rm ORG/NAME@REV`: forget a held revision; `larder gc` then reclaims its blobs. With
//! `--daemon URL`, through the mirror's `DELETE /v1/revisions/...`.

use std::process::ExitCode;

use clap::Args;
use larder::Larder;
use larder::hub::{RepoRef, RepoType};
use larder::registry::RepoKind;
use larder::remove::{Removed, remove_revision};

use super::format;

/// Arguments of `larder rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// ORG/NAME@REV: the held revision (branch, tag or commit) to remove
    repo: RepoRef,
    /// Repo type
    #[arg(long = "type", default_value = "model", value_parser = ["model", "dataset"])]
    kind: String,
    /// Do it on the `larder serve` at URL, through its API (admin token in LARDER_DAEMON_TOKEN)
    #[arg(long, value_name = "URL", env = "LARDER_DAEMON")]
    daemon: Option<String>,
}

impl RmArgs {
    /// The daemon to do it on, if any.
    pub fn daemon(&self) -> Option<&str> {
        self.daemon.as_deref()
    }
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
    report(&removed);
    Ok(ExitCode::SUCCESS)
}

/// Run `larder rm --daemon URL`.
pub async fn run_on_daemon(daemon: &str, args: RmArgs) -> anyhow::Result<ExitCode> {
    let Some(revision) = args.repo.revision.as_ref() else {
        anyhow::bail!(
            "name the revision to remove: `larder rm {}@REV` (a branch, tag or commit)",
            args.repo.id
        );
    };
    let api = super::jobs::Api::new(daemon)?;
    let target = larder::manage::Target {
        repo: args.repo.id.as_str().to_owned(),
        revision: revision.as_str().to_owned(),
        kind: RepoKind::from(args.kind.parse::<RepoType>()?),
    };
    let body = api
        .delete(&format!("/v1/revisions/{}", api.revision_path(&target)))
        .await?;
    report(&serde_json::from_value(body)?);
    Ok(ExitCode::SUCCESS)
}

fn report(removed: &Removed) {
    eprintln!(
        "removed {}@{}; `larder gc` reclaims {} no held revision uses",
        removed.repo,
        &removed.commit[..12.min(removed.commit.len())],
        format::size(removed.reclaimable)
    );
}
