//! `larder pull ORG/NAME[@REV]`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use larder::Larder;
use larder::fetch::{PullError, PullOptions, pull};
use larder::hub::{RepoRef, RepoType, Revision};
use larder::interrupt::CancellationToken;
use larder::licence::PullGate;

use super::{interrupt, progress};

/// Arguments of `larder pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The repo, optionally with a revision: ORG/NAME[@REV] (branch, tag, commit or refs/pr/N)
    repo: RepoRef,
    /// Repo type
    #[arg(long = "type", default_value = "model", value_parser = ["model", "dataset"])]
    kind: String,
    /// Only files matching this glob (repeatable; `*` crosses `/`, `dir/` means everything below)
    #[arg(long, value_name = "GLOB")]
    include: Vec<String>,
    /// Skip files matching this glob (repeatable)
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Also place the snapshot's files here as plain files: copies (reflinks on btrfs/XFS)
    #[arg(long, value_name = "DIR")]
    local_dir: Option<PathBuf>,
    /// With --local-dir: hard-link the files from the store instead of copying them (no extra
    /// space on one filesystem; never write to them: that would damage the store's copy)
    #[arg(long, requires = "local_dir")]
    hard_links: bool,
    /// Connections per large file
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    connections: u16,
    /// Most files fetched at once; how many are adapts to the upstream (many small files go
    /// many at a time, backing off when the upstream answers 429/503 or slows down)
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=256))]
    max_files: u16,
    /// Print one JSON event per line on stdout
    #[arg(long)]
    json: bool,
    /// Limit the total download rate, e.g. 100MB/s, 50MiB/s, 800k
    #[arg(long, value_name = "RATE", env = "LARDER_MAX_RATE", value_parser = larder::fetch::rate::parse_rate)]
    max_rate: Option<u64>,
    /// Licence policy file [default: `[policy]` of $LARDER_HOME/config.toml]
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Accept this licence (Hub id, license_name or catalog key; repeatable) even where the
    /// policy denies it; recorded with your user name in the audit log
    #[arg(long = "accept-licence", value_name = "KEY")]
    accept_licence: Vec<String>,
    /// Queue the pull on a running `larder serve` at URL and follow it (the daemon's store and
    /// licence policy apply; Ctrl-C stops following, the job keeps running)
    #[arg(
        long,
        value_name = "URL",
        env = "LARDER_DAEMON",
        conflicts_with_all = ["local_dir", "accept_licence", "policy"]
    )]
    daemon: Option<String>,
    /// Fetch over plain HTTP even when the upstream stores files in Xet [default: `[pull] xet`
    /// of config.toml, else Xet is used]
    #[arg(long)]
    no_xet: bool,
    /// Seconds without a byte before a connection is dropped and retried
    #[arg(long, default_value_t = 30, hide = true, env = "LARDER_STALL_TIMEOUT")]
    stall_timeout: u64,
    /// Smallest range handed to one connection, in bytes
    #[arg(long, hide = true, env = "LARDER_MIN_SEGMENT")]
    min_segment: Option<u64>,
    /// Base retry delay in milliseconds
    #[arg(long, hide = true, env = "LARDER_RETRY_BASE_MS")]
    retry_base_ms: Option<u64>,
}

impl PullArgs {
    /// The daemon to queue the pull on, if any.
    pub fn daemon(&self) -> Option<&str> {
        self.daemon.as_deref()
    }
}

/// Run `larder pull --daemon URL`: no local home is involved.
pub async fn run_on_daemon(daemon: &str, args: PullArgs) -> anyhow::Result<ExitCode> {
    let revision = args.repo.revision.clone().unwrap_or_else(Revision::main);
    super::remote_pull::run(
        daemon,
        super::remote_pull::RemotePull {
            repo: args.repo.id.as_str().to_owned(),
            revision: revision.as_str().to_owned(),
            kind: args.kind,
            include: args.include,
            exclude: args.exclude,
            json: args.json,
        },
    )
    .await
}

/// Run `larder pull`; cancelling `cancel` (Ctrl-C) stops it, keeping what was fetched.
pub async fn run(
    larder: &Larder,
    args: PullArgs,
    cancel: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let kind: RepoType = args.kind.parse()?;
    let revision = args.repo.revision.clone().unwrap_or_else(Revision::main);
    let mut options = PullOptions::new(kind, args.repo.id.clone(), revision.clone());
    options.include = args.include;
    options.exclude = args.exclude;
    options.local_dir = args.local_dir;
    if args.hard_links {
        options.local_dir_links = larder::store::materialize::LinkMode::Hard;
    }
    options.rate_limit = args
        .max_rate
        .map(|rate| Arc::new(larder::fetch::rate::RateLimiter::new(rate)));
    options.max_files = args.max_files.into();
    let config = larder.config.pull()?;
    options.xet = !args.no_xet && config.xet.unwrap_or(true);
    options.transfer.index_chunks = config.index_chunks.unwrap_or(false);
    options.cancel = cancel;
    options.transfer.connections_per_file = args.connections.into();
    options.large_file_connections = (usize::from(args.connections) * 2).max(16);
    options.total_connections = options
        .total_connections
        .max(options.large_file_connections);
    options.transfer.stall_timeout = Duration::from_secs(args.stall_timeout.max(1));
    if let Some(min) = args.min_segment {
        options.transfer.min_segment = min.max(64 << 10);
    }
    if let Some(ms) = args.retry_base_ms {
        options.transfer.retry.base = Duration::from_millis(ms);
    }
    let policy = larder.config.policy(args.policy.as_deref())?;
    options.licence_gate = Some(Arc::new(PullGate::new(
        policy,
        &args.accept_licence,
        actor(),
    )?));
    let reporter: Arc<dyn larder::report::Reporter<larder::fetch::progress::PullEvent>> =
        Arc::from(progress::reporter(args.json));
    let summary = match pull(larder, &options, reporter).await {
        Ok(summary) => summary,
        // The reporter has emitted the `interrupted` event (`--json`).
        Err(PullError::Interrupted(kept)) if kept.total == 0 => {
            return Ok(interrupt::finish(
                "stopped before any transfer started; nothing to keep",
                None,
                false,
            ));
        }
        Err(PullError::Interrupted(kept)) => {
            return Ok(interrupt::finish(
                &format!(
                    "kept {} (verified files and resumable parts); run the same command to resume",
                    interrupt::kept_of(&kept)
                ),
                None,
                false,
            ));
        }
        Err(error) => {
            return Err(anyhow::Error::new(error)
                .context(format!("pull of {}@{} failed", args.repo.id, revision)));
        }
    };
    if let Some(old) = &summary.renamed_from {
        eprintln!(
            "note: {old} was renamed upstream; it lives at {} now (recorded under that name; \
             the old one still works)",
            summary.repo
        );
    }
    if let Some(licence) = &summary.licence {
        if let Some(rule) = &licence.overridden {
            eprintln!(
                "note: licence {} of {} accepted: `{rule}` overridden (recorded in the audit log)",
                licence.licence_id, summary.repo
            );
        }
        if licence.needs_review() {
            eprintln!(
                "warning: licence {} of {}@{} needs review: {}",
                licence.licence_id,
                summary.repo,
                summary.commit.get(..12).unwrap_or(&summary.commit),
                licence.rule.as_deref().unwrap_or("-")
            );
            for reason in &licence.reasons {
                eprintln!("  - {reason}");
            }
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({"event": "summary", "summary": summary})
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Who accepts licences: `$USER`, else `$LOGNAME`, else `unknown`.
fn actor() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|name| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}
