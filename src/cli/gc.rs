//! `larder gc [--dry-run]`, locally or with `--daemon URL` through the mirror's `/v1/gc`.

use std::process::ExitCode;

use clap::Args;
use larder::Larder;
use larder::gc::{GcOptions, gc};

use super::format;

/// Arguments of `larder gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only say what would be removed
    #[arg(long)]
    dry_run: bool,
    /// Also remove recent parts of interrupted pulls (they can then no longer resume)
    #[arg(long)]
    all_parts: bool,
    /// First evict the least recently served unpinned revisions until the store fits in SIZE
    /// (e.g. 2TB), as `larder serve --quota` does
    #[arg(long, value_name = "SIZE", value_parser = larder::units::parse_size, conflicts_with_all = ["dry_run", "all_parts"])]
    quota: Option<u64>,
    /// Print JSON
    #[arg(long)]
    json: bool,
    /// Do it on the `larder serve` at URL, through its API (admin token in LARDER_DAEMON_TOKEN)
    #[arg(long, value_name = "URL", env = "LARDER_DAEMON")]
    daemon: Option<String>,
}

impl GcArgs {
    /// The daemon to do it on, if any.
    pub fn daemon(&self) -> Option<&str> {
        self.daemon.as_deref()
    }
}

/// Run `larder gc --daemon URL`: the mirror's `POST /v1/gc`, waiting for the job it queues.
pub async fn run_on_daemon(daemon: &str, args: GcArgs) -> anyhow::Result<ExitCode> {
    let api = super::jobs::Api::new(daemon)?;
    let mut request = serde_json::json!({ "dry_run": args.dry_run, "all_parts": args.all_parts });
    if let Some(quota) = args.quota {
        request = serde_json::json!({ "quota": format!("{quota}B") });
    }
    let answer = api.post_long("/v1/gc", &request).await?;
    let report = api.report_of(answer).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let number = |v: &serde_json::Value, key: &str| v.get(key).and_then(|n| n.as_u64());
    let gc = report.get("gc").filter(|g| !g.is_null()).unwrap_or(&report);
    let items = gc
        .get("collected")
        .and_then(|c| c.as_array())
        .map_or(0, Vec::len);
    eprintln!(
        "{} {} in {items} items on {}",
        if args.dry_run { "would free" } else { "freed" },
        format::size(number(gc, "freed").unwrap_or(0)),
        api.base()
    );
    if let (Some(after), Some(quota)) = (number(&report, "after"), number(&report, "quota")) {
        eprintln!(
            "store: {} of quota {}",
            format::size(after),
            format::size(quota)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Run `larder gc`.
pub async fn run(larder: &Larder, args: GcArgs) -> anyhow::Result<ExitCode> {
    if let Some(quota) = args.quota {
        let report = larder::quota::enforce(larder, quota, &[]).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
            return Ok(ExitCode::SUCCESS);
        }
        for evicted in &report.evicted {
            eprintln!(
                "evicted    {}@{} (last used {})",
                evicted.name,
                &evicted.sha[..12],
                format::time(evicted.last_used)
            );
        }
        if let Some(gc) = &report.gc {
            eprintln!(
                "freed {} in {} items",
                format::size(gc.freed),
                gc.collected.len()
            );
        }
        eprintln!(
            "store: {} of quota {}{}",
            format::size(report.after),
            format::size(report.quota),
            if report.over {
                " (still over: the rest is pinned)"
            } else {
                ""
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let report = gc(
        larder,
        GcOptions {
            dry_run: args.dry_run,
            all_parts: args.all_parts,
        },
    )
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    for item in &report.collected {
        eprintln!(
            "{:<10} {:>10}  {}",
            item.kind,
            format::size(item.bytes),
            item.path.display()
        );
    }
    eprintln!(
        "{} {} in {} items",
        if report.dry_run {
            "would free"
        } else {
            "freed"
        },
        format::size(report.freed),
        report.collected.len()
    );
    Ok(ExitCode::SUCCESS)
}
