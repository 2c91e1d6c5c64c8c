//! `larder track` / `larder untrack`: refs the daemon (`larder serve`) re-resolves on a schedule,
//! pulling each new commit. Stored in the home's registry; a running daemon picks changes up at
//! its next check.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use larder::Larder;
use larder::hub::{RepoRef, RepoType};
use larder::registry::RepoKind;

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
}

/// Arguments of `larder untrack`.
#[derive(Debug, Args)]
pub struct UntrackArgs {
    /// ORG/NAME[@REF] [default ref: main]
    repo: RepoRef,
    /// Repo type
    #[arg(long = "type", default_value = "model", value_parser = ["model", "dataset"])]
    kind: String,
}

fn reference(repo: &RepoRef) -> anyhow::Result<String> {
    let reference = repo
        .revision
        .as_ref()
        .map_or_else(|| "main".to_owned(), |r| r.as_str().to_owned());
    if larder::hub::is_commit_sha(&reference) {
        anyhow::bail!("{reference} is a commit, which never moves: track a branch or tag");
    }
    Ok(reference)
}

/// Run `larder track`.
pub async fn track(larder: &Larder, args: TrackArgs) -> anyhow::Result<ExitCode> {
    let kind = RepoKind::from(args.kind.parse::<RepoType>()?);
    let reference = reference(&args.repo)?;
    let every = i64::try_from(args.every.as_secs()).context("--every is too long")?;
    let new = larder
        .registry
        .track(
            kind,
            args.repo.id.as_str(),
            &reference,
            every,
            larder::now_unix(),
        )
        .await?;
    eprintln!(
        "{} {}@{reference}: checked every {} by `larder serve`",
        if new { "tracking" } else { "still tracking" },
        args.repo.id,
        larder::units::format_interval(every)
    );
    Ok(ExitCode::SUCCESS)
}

/// Run `larder untrack`.
pub async fn untrack(larder: &Larder, args: UntrackArgs) -> anyhow::Result<ExitCode> {
    let kind = RepoKind::from(args.kind.parse::<RepoType>()?);
    let reference = reference(&args.repo)?;
    if larder
        .registry
        .untrack(kind, args.repo.id.as_str(), &reference)
        .await?
    {
        eprintln!("no longer tracking {}@{reference}", args.repo.id);
        Ok(ExitCode::SUCCESS)
    } else {
        super::printer::error(&format!("{}@{reference} is not tracked", args.repo.id));
        Ok(ExitCode::FAILURE)
    }
}
