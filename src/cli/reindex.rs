//! `larder reindex`: rebuild this node's registry from the manifests in a shared store.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use larder::Larder;

/// Arguments of `larder reindex`.
#[derive(Debug, Args)]
pub struct ReindexArgs {
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// Run `larder reindex`.
pub async fn run(larder: &Larder, args: ReindexArgs) -> anyhow::Result<ExitCode> {
    if !larder.blobs.is_shared() {
        bail!(
            "reindex reads the manifests of a shared store; give one with --store URL or \
             `[store] url` in config.toml"
        );
    }
    let summary = larder::manifest::reindex(larder)
        .await
        .with_context(|| format!("could not reindex from {}", larder.blobs.describe()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "reindexed {} revisions ({} blobs held) from {}",
            summary.manifests,
            summary.blobs,
            larder.blobs.describe()
        );
        for skipped in &summary.skipped {
            println!("skipped {skipped}");
        }
    }
    Ok(if summary.skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
