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
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// Run `larder gc`.
pub async fn run(larder: &Larder, args: GcArgs) -> anyhow::Result<ExitCode> {
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
