//! `larder import DIR [--json]` (a bundle) and `larder import DIR --as ORG/NAME` (a folder).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use larder::Larder;
use larder::bundle::{BundleError, folder, import};
use larder::hub::{RepoId, RepoType, Revision};
use larder::interrupt::CancellationToken;
use larder::registry::RepoKind;

use super::{EXIT_CORRUPT, format};

/// Arguments of `larder import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A bundle written by `larder export`, or with --as a plain model folder
    dir: PathBuf,
    /// Import DIR as a plain folder, registered as this repo
    #[arg(long = "as", value_name = "ORG/NAME", value_parser = RepoId::parse)]
    as_repo: Option<RepoId>,
    /// With --as: the ref to record
    #[arg(long, default_value = "main", requires = "as_repo", value_parser = Revision::parse)]
    revision: Revision,
    /// With --as: the repo type
    #[arg(long = "type", default_value = "model", value_parser = ["model", "dataset"])]
    kind: String,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
}

/// Run `larder import`; cancelling `cancel` (Ctrl-C) stops it, keeping the revisions imported.
pub async fn run(
    larder: &Larder,
    args: ImportArgs,
    cancel: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let reporter = super::export::progress(args.json);
    if let Some(repo) = &args.as_repo {
        let kind = RepoKind::from(args.kind.parse::<RepoType>()?);
        let imported = folder::import_folder(
            larder,
            &args.dir,
            kind,
            repo,
            &args.revision,
            &reporter,
            &cancel,
        )
        .await;
        let summary = match imported {
            Ok(summary) => summary,
            Err(BundleError::Interrupted(kept)) => {
                return Ok(super::interrupt::finish(
                    &format!(
                        "copied {} into the store; nothing was registered; run the same command \
                         to finish",
                        super::interrupt::kept_of(&kept)
                    ),
                    Some(kept),
                    args.json,
                ));
            }
            Err(error) => {
                return Err(anyhow::Error::new(error).context(format!(
                    "import of the folder {} failed",
                    args.dir.display()
                )));
            }
        };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            eprintln!(
                "imported {} as {}@{} (commit {}): {} file(s), {}, licence {}",
                args.dir.display(),
                summary.repo,
                summary.revision,
                summary.commit,
                summary.files,
                format::size(summary.bytes),
                summary.licence.license.as_deref().unwrap_or("-"),
            );
        }
        return Ok(ExitCode::SUCCESS);
    }

    let summary = match import::import_bundle(larder, &args.dir, &reporter, &cancel).await {
        Ok(summary) => summary,
        Err(BundleError::Interrupted(kept)) => {
            return Ok(super::interrupt::finish(
                &format!(
                    "kept {} of the bundle's blobs in revisions registered whole; the revision \
                     being imported was not registered; run the same command to resume",
                    super::interrupt::kept_of(&kept)
                ),
                Some(kept),
                args.json,
            ));
        }
        Err(error) => {
            return Err(anyhow::Error::new(error).context(format!(
                "import of the bundle {} failed",
                args.dir.display()
            )));
        }
    };
    let refused = summary.refused().count();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        let count = |status| {
            summary
                .revisions
                .iter()
                .filter(|r| r.status == status)
                .count()
        };
        eprintln!(
            "{} revision(s) imported, {} already held, {} refused; {} blob(s) copied ({})",
            count("imported"),
            count("unchanged"),
            refused,
            summary.blobs_imported,
            format::size(summary.bytes_imported),
        );
        for revision in summary.refused() {
            super::printer::error(&format!("refused {}@{}:", revision.repo, revision.commit));
            for problem in &revision.problems {
                eprintln!("  {problem}");
            }
        }
        if refused > 0 {
            super::printer::hint(
                "nothing of a refused revision was registered; export it again on the \
                 connected host and re-run the import",
            );
        }
    }
    Ok(if refused > 0 {
        ExitCode::from(EXIT_CORRUPT)
    } else {
        ExitCode::SUCCESS
    })
}
