//! `larder gc [--dry-run]`.

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
