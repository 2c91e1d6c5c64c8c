//! `larder pin` / `larder unpin`: revisions the store quota never evicts. Locally, or with
//! `--daemon URL` through the mirror's `/v1/pins` API; both run [`larder::manage::pin`].

use std::process::ExitCode;

use clap::Args;
use larder::Larder;
use larder::hub::{RepoRef, RepoType};
use larder::manage::{PinOutcome, Target};
use larder::registry::RepoKind;
use serde_json::json;

use super::jobs::Api;

/// Arguments of `larder pin` and `larder unpin`.
#[derive(Debug, Args)]
pub struct PinArgs {
    /// ORG/NAME[@REV]: a held revision (branch, tag or commit) [default: main]
    repo: RepoRef,
    /// Repo type
    #[arg(long = "type", default_value = "model", value_parser = ["model", "dataset"])]
    kind: String,
    /// Do it on the `larder serve` at URL, through its API (admin token in LARDER_DAEMON_TOKEN)
    #[arg(long, value_name = "URL", env = "LARDER_DAEMON")]
    daemon: Option<String>,
}

impl PinArgs {
    /// The daemon to do it on, if any.
    pub fn daemon(&self) -> Option<&str> {
        self.daemon.as_deref()
    }

    fn target(&self) -> anyhow::Result<Target> {
        Ok(Target {
            repo: self.repo.id.as_str().to_owned(),
            revision: self
                .repo
                .revision
                .as_ref()
                .map_or_else(|| "main".to_owned(), |r| r.as_str().to_owned()),
            kind: RepoKind::from(self.kind.parse::<RepoType>()?),
        })
    }
}

/// Run `larder pin` (`pin = true`) or `larder unpin` in the local home.
pub async fn run(larder: &Larder, args: PinArgs, pin: bool) -> anyhow::Result<ExitCode> {
    let target = args.target()?;
    let outcome = larder::manage::pin(larder, &target, pin).await?;
    report(&outcome);
    Ok(ExitCode::SUCCESS)
}

/// Run `larder pin --daemon URL` / `larder unpin --daemon URL`.
pub async fn run_on_daemon(daemon: &str, args: PinArgs, pin: bool) -> anyhow::Result<ExitCode> {
    let api = Api::new(daemon)?;
    let target = args.target()?;
    let body = if pin {
        api.post("/v1/pins", &json!(target)).await?
    } else {
        api.delete(&format!("/v1/pins/{}", api.revision_path(&target)))
            .await?
    };
    let outcome: PinOutcome = serde_json::from_value(body)?;
    report(&outcome);
    Ok(ExitCode::SUCCESS)
}

fn report(outcome: &PinOutcome) {
    let short = &outcome.commit[..12.min(outcome.commit.len())];
    let named = if outcome.revision == outcome.commit {
        String::new()
    } else {
        format!(" ({})", outcome.revision)
    };
    let verb = match (outcome.pinned, outcome.changed) {
        (true, true) => "pinned",
        (true, false) => "already pinned:",
        (false, _) => "unpinned",
    };
    eprintln!("{verb} {}@{short}{named}", outcome.repo);
}
