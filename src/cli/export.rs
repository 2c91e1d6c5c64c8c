//! `larder export ORG/NAME[@REV]... --to DIR [--layout bundle|hf-cache|plain] [--since M]`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use larder::Larder;
use larder::bundle::manifest::Manifest;
use larder::bundle::{
    BundleError, BundleEvent, LinkMode, Selection, export, hf_cache, select_commits,
};
use larder::hub::{RepoRef, RepoType};
use larder::interrupt::{CancellationToken, Interrupted};
use larder::registry::RepoKind;
use larder::report::Reporter;

use super::format;

/// Arguments of `larder export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// ORG/NAME[@REV], one or more; without REV, every held revision (plain: `main`)
    #[arg(required = true)]
    repos: Vec<RepoRef>,
    /// Target directory (created if needed; an existing HF cache is merged into)
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    /// bundle: manifest + blobs for `larder import`; hf-cache: the Hugging Face cache layout;
    /// plain: the files as in the repo under DIR/ORG/NAME
    #[arg(long, default_value = "bundle", value_parser = ["bundle", "hf-cache", "plain"])]
    layout: String,
    /// Only what this earlier bundle's manifest (or bundle directory) did not carry
    #[arg(long, value_name = "BUNDLE_MANIFEST")]
    since: Option<PathBuf>,
    /// Repo type
    #[arg(long = "type", default_value = "model", value_parser = ["model", "dataset"])]
    kind: String,
    /// Hard-link blobs from the store where the target is on the same filesystem (no space
    /// used, but a write into the exported files would change the store's copy); by default
    /// they are copies (reflinks where the filesystem shares extents)
    #[arg(long)]
    hard_links: bool,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
}

/// Run `larder export`; cancelling `cancel` (Ctrl-C) stops it, keeping the files placed.
pub async fn run(
    larder: &Larder,
    args: ExportArgs,
    cancel: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let kind = RepoKind::from(args.kind.parse::<RepoType>()?);
    if args.since.is_some() && args.layout != "bundle" {
        bail!("--since only applies to --layout bundle");
    }
    let selections: Vec<Selection> = args
        .repos
        .iter()
        .map(|r| Selection {
            kind,
            repo: r.id.clone(),
            revision: r.revision.clone(),
        })
        .collect();
    let commits = select_commits(larder, &selections, args.layout == "plain").await?;
    let reporter = progress(args.json);
    let links = if args.hard_links {
        LinkMode::Hard
    } else {
        LinkMode::Copy
    };
    let exported = match args.layout.as_str() {
        "bundle" => {
            let since = match &args.since {
                Some(path) => Some(
                    Manifest::read(path).with_context(|| format!("--since {}", path.display()))?,
                ),
                None => None,
            };
            export::export_bundle(
                larder,
                &commits,
                &args.to,
                since.as_ref(),
                links,
                &reporter,
                &cancel,
            )
            .await
        }
        "hf-cache" => {
            hf_cache::export_hf_cache(larder, &commits, &args.to, links, &reporter, &cancel).await
        }
        _ => export_plain(larder, &commits, &args.to, links, &cancel).await,
    };
    let summary = match exported {
        Ok(summary) => summary,
        Err(BundleError::Interrupted(kept)) => {
            let what = match args.layout.as_str() {
                "bundle" => "the bundle has no manifest yet, so nothing reads it as complete",
                "hf-cache" => "the revision being written was left out (no snapshot, no ref)",
                _ => "the repos finished are complete, the rest is not written",
            };
            return Ok(super::interrupt::finish(
                &format!(
                    "kept {} in {}; {what}; run the same command to resume",
                    super::interrupt::kept_of(&kept),
                    args.to.display()
                ),
                Some(kept),
                args.json,
            ));
        }
        Err(error) => return Err(error.into()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        eprintln!(
            "exported {} revision(s) to {} ({}): {} blob(s) written ({}, {} hard-linked), {} already there",
            summary.revisions.len(),
            summary.dir.display(),
            summary.layout,
            summary.blobs_written,
            format::size(summary.bytes_written),
            summary.blobs_linked,
            summary.blobs_skipped,
        );
        if !summary.skipped_revisions.is_empty() {
            eprintln!(
                "left out (carried by the --since bundle): {}",
                summary.skipped_revisions.join(", ")
            );
        }
        if let Some(digest) = &summary.manifest_digest {
            eprintln!("manifest digest: {digest}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn export_plain(
    larder: &Larder,
    commits: &[larder::registry::CommitDetail],
    dir: &std::path::Path,
    links: LinkMode,
    cancel: &CancellationToken,
) -> Result<export::ExportSummary, BundleError> {
    let mut summary = export::ExportSummary {
        layout: "plain",
        dir: dir.to_path_buf(),
        ..Default::default()
    };
    let total = commits.iter().flat_map(|c| &c.files).map(|f| f.size).sum();
    for (i, detail) in commits.iter().enumerate() {
        if commits[..i].iter().any(|c| c.name == detail.name) {
            return Err(BundleError::TwoRevisions {
                repo: detail.name.clone(),
            });
        }
        // Between repos: each one laid out is whole.
        if cancel.is_cancelled() {
            return Err(BundleError::Interrupted(Interrupted {
                kept: summary.bytes_written,
                total,
            }));
        }
        let mut entries = Vec::new();
        for file in &detail.files {
            if let Some(sha256) = &file.sha256 {
                entries.push((file.path.clone(), larder.blobs.fetch_local(sha256).await?));
                summary.bytes_written += file.size;
            }
        }
        summary.blobs_written += entries.len();
        larder::store::materialize::plain_dir(&dir.join(&detail.name), &entries, links)?;
        summary
            .revisions
            .push(format!("{}@{}", detail.name, detail.sha));
    }
    Ok(summary)
}

/// Progress lines on stderr (unless `--json` or `LARDER_NO_PROGRESS`).
pub fn progress(json: bool) -> impl Reporter<BundleEvent> {
    let quiet = json || std::env::var_os("LARDER_NO_PROGRESS").is_some();
    move |event: &BundleEvent| {
        if quiet {
            return;
        }
        match event {
            BundleEvent::Start { blobs, bytes } => {
                eprintln!("{blobs} blob(s), {}", format::size(*bytes));
            }
            BundleEvent::Blob { name, size, action } => {
                eprintln!("  {action:<8} {name} ({})", format::size(*size));
            }
            BundleEvent::Revision { revision, status } => {
                eprintln!("{status:<9} {revision}");
            }
        }
    }
}
