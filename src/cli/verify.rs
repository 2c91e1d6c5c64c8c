//! `larder verify [ORG/NAME[@REV]]`: re-hash blobs, quarantine bad ones; with `--daemon URL`,
//! the mirror's `/v1/verify` does it to its store.

use std::process::ExitCode;

use clap::Args;
use larder::Larder;
use larder::hub::{RepoRef, RepoType};
use larder::registry::RepoKind;
use larder::verify::{BlobCheck, BlobStatus, verify_blobs};

use super::{EXIT_CORRUPT, format};

/// Arguments of `larder verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Only the blobs of this repo (all revisions held, or one with @REV)
    repo: Option<RepoRef>,
    /// Repo type
    #[arg(long = "type", default_value = "model", value_parser = ["model", "dataset"])]
    kind: String,
    /// Print JSON
    #[arg(long)]
    json: bool,
    /// Do it on the `larder serve` at URL, through its API (admin token in LARDER_DAEMON_TOKEN)
    #[arg(long, value_name = "URL", env = "LARDER_DAEMON")]
    daemon: Option<String>,
}

impl VerifyArgs {
    /// The daemon to do it on, if any.
    pub fn daemon(&self) -> Option<&str> {
        self.daemon.as_deref()
    }
}

/// Run `larder verify --daemon URL`: the mirror's `POST /v1/verify`, waiting for the job it
/// queues.
pub async fn run_on_daemon(daemon: &str, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let api = super::jobs::Api::new(daemon)?;
    let mut request = serde_json::json!({ "type": args.kind });
    if let Some(repo) = &args.repo {
        request["repo"] = serde_json::json!(repo.id.as_str());
        if let Some(revision) = &repo.revision {
            request["revision"] = serde_json::json!(revision.as_str());
        }
    }
    let answer = api.post_long("/v1/verify", &request).await?;
    let report = api.report_of(answer).await?;
    let bad = report.get("bad").and_then(|n| n.as_u64()).unwrap_or(0);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for blob in report
            .get("blobs")
            .and_then(|b| b.as_array())
            .into_iter()
            .flatten()
            .filter(|b| b.get("status").and_then(|s| s.as_str()) != Some("ok"))
        {
            eprintln!(
                "{}: {}",
                blob.get("status")
                    .and_then(|s| s.as_str())
                    .unwrap_or("?")
                    .to_uppercase(),
                blob.get("sha256").and_then(|s| s.as_str()).unwrap_or("?")
            );
        }
        eprintln!(
            "checked {} blobs on {}: {bad} bad",
            report.get("checked").and_then(|n| n.as_u64()).unwrap_or(0),
            api.base()
        );
    }
    Ok(if bad > 0 {
        ExitCode::from(EXIT_CORRUPT)
    } else {
        ExitCode::SUCCESS
    })
}

/// Run `larder verify`.
pub async fn run(larder: &Larder, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let kind = RepoKind::from(args.kind.parse::<RepoType>()?);
    let repo = args
        .repo
        .as_ref()
        .map(|r| (r.id.as_str(), r.revision.as_ref().map(|v| v.as_str())));
    let blobs = larder::manage::blobs_to_verify(larder, kind, repo).await?;
    let json = args.json;
    let report = verify_blobs(larder, blobs, &|check: &BlobCheck| {
        if json {
            if let Ok(line) = serde_json::to_string(check) {
                println!("{line}");
            }
        } else if check.status != BlobStatus::Ok {
            eprintln!(
                "{}: {} ({}), used by {}",
                match &check.status {
                    BlobStatus::Missing => "MISSING".to_owned(),
                    BlobStatus::Corrupt { quarantined_to, .. } =>
                        format!("CORRUPT, moved to {quarantined_to}"),
                    BlobStatus::XetMismatch { recorded, actual } => format!(
                        "XET HASH MISMATCH (the chunk index said {recorded}, the content hashes to {actual}; index rewritten)"
                    ),
                    BlobStatus::Ok => String::new(),
                },
                check.sha256,
                format::size(check.size),
                check.used_by.join(", ")
            );
        }
    })
    .await?;
    let bad = report.iter().filter(|c| c.status != BlobStatus::Ok).count();
    let bytes: u64 = report.iter().map(|c| c.size).sum();
    if !json {
        eprintln!(
            "checked {} blobs ({}): {} ok, {} bad",
            report.len(),
            format::size(bytes),
            report.len() - bad,
            bad
        );
        if bad > 0 {
            super::printer::hint("`larder pull` the affected repos again to fetch fresh copies");
        }
    }
    Ok(if bad > 0 {
        ExitCode::from(EXIT_CORRUPT)
    } else {
        ExitCode::SUCCESS
    })
}
