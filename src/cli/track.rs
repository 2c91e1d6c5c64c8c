//! `larder track` / `larder untrack`: refs the daemon (`larder serve`) re-resolves on a schedule,
//! pulling each new commit. Stored in the home's registry (a running daemon picks changes up at
//! its next check), or with `--daemon URL` through the mirror's `/v1/tracked` API; both run
//! [`larder::manage`].

use std::process::ExitCode;

use clap::Args;
use larder::Larder;
use larder::hub::{RepoRef, RepoType};
use larder::manage::{Target, TrackOutcome};
use larder::registry::RepoKind;
use serde_json::json;

use super::jobs::Api;

/// Arguments of `larder track`.
#[derive(Debug, Args)]
pub struct TrackArgs {
    /// ORG/NAME[@REF]: the branch or tag to follow [default ref: main]
    repo: RepoRef,
    /// How often to check, e.g. 6h, 30m, 1d, 90s
    #[arg(long, default_value = "6h", value_parser = larder::units::parse_interval)]
    every: std::time::Duration,
    /// Repo type
    #[arg(long = "type", default_value = "model", value_parser = ["model", "dataset"])]
    kind: String,
    /// Do it on the `larder serve` at URL, through its API (admin token in LARDER_DAEMON_TOKEN)
    #[arg(long, value_name = "URL", env = "LARDER_DAEMON")]
    daemon: Option<String>,
}

/// Arguments of `larder untrack`.
#[derive(Debug, Args)]
pub struct UntrackArgs {
    /// ORG/NAME[@REF] [default ref: main]
    repo: RepoRef,
    /// Repo type
    #[arg(long = "type", default_value = "model", value_parser = ["model", "dataset"])]
    kind: String,
    /// Do it on the `larder serve` at URL, through its API (admin token in LARDER_DAEMON_TOKEN)
    #[arg(long, value_name = "URL", env = "LARDER_DAEMON")]
    daemon: Option<String>,
}

impl TrackArgs {
    /// The daemon to do it on, if any.
    pub fn daemon(&self) -> Option<&str> {
        self.daemon.as_deref()
    }
}

impl UntrackArgs {
    /// The daemon to do it on, if any.
    pub fn daemon(&self) -> Option<&str> {
        self.daemon.as_deref()
    }
}

fn target(repo: &RepoRef, kind: &str) -> anyhow::Result<Target> {
    Ok(Target {
        repo: repo.id.as_str().to_owned(),
        revision: repo
            .revision
            .as_ref()
            .map_or_else(|| "main".to_owned(), |r| r.as_str().to_owned()),
        kind: RepoKind::from(kind.parse::<RepoType>()?),
    })
}

fn tracking(outcome: &TrackOutcome) {
    eprintln!(
        "{} {}@{}: checked every {} by `larder serve`",
        if outcome.new {
            "tracking"
        } else {
            "still tracking"
        },
        outcome.repo,
        outcome.reference,
        larder::units::format_interval(outcome.every)
    );
}

/// Run `larder track`.
pub async fn track(larder: &Larder, args: TrackArgs) -> anyhow::Result<ExitCode> {
    let target = target(&args.repo, &args.kind)?;
    tracking(&larder::manage::track(larder, &target, args.every).await?);
    Ok(ExitCode::SUCCESS)
}

/// Run `larder track --daemon URL`.
pub async fn track_on_daemon(daemon: &str, args: TrackArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(daemon)?;
    let target = target(&args.repo, &args.kind)?;
    let body = api
        .post(
            "/v1/tracked",
            &json!({
                "repo": target.repo,
                "ref": target.revision,
                "type": target.kind,
                "every": format!("{}s", args.every.as_secs()),
            }),
        )
        .await?;
    tracking(&serde_json::from_value(body)?);
    Ok(ExitCode::SUCCESS)
}

/// Run `larder untrack`.
pub async fn untrack(larder: &Larder, args: UntrackArgs) -> anyhow::Result<ExitCode> {
    let target = target(&args.repo, &args.kind)?;
    larder::manage::untrack(larder, &target).await?;
    eprintln!("no longer tracking {}@{}", target.repo, target.revision);
    Ok(ExitCode::SUCCESS)
}

/// Run `larder untrack --daemon URL`.
pub async fn untrack_on_daemon(daemon: &str, args: UntrackArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(daemon)?;
    let target = target(&args.repo, &args.kind)?;
    api.delete(&format!("/v1/tracked/{}", api.revision_path(&target)))
        .await?;
    eprintln!("no longer tracking {}@{}", target.repo, target.revision);
    Ok(ExitCode::SUCCESS)
}
