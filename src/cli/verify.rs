//! `larder verify [ORG/NAME[@REV]]`: re-hash blobs, quarantine bad ones.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use larder::Larder;
use larder::hub::{RepoRef, RepoType};
use larder::registry::RepoKind;
use larder::verify::{BlobStatus, verify_blobs};

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
}

/// Run `larder verify`.
pub async fn run(larder: &Larder, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let mut blobs: BTreeMap<String, u64> = BTreeMap::new();
    match &args.repo {
        None => {
            for blob in larder.registry.blobs().await? {
                blobs.insert(blob.sha256, blob.size);
            }
        }
        Some(repo_ref) => {
            let kind = RepoKind::from(args.kind.parse::<RepoType>()?);
            let name = repo_ref.id.as_str();
            let shas: Vec<String> = match &repo_ref.revision {
                Some(rev) => match larder.registry.resolve(kind, name, rev.as_str()).await? {
                    Some(sha) => vec![sha],
                    None => bail!("`{name}@{rev}` is not held"),
                },
                None => larder
                    .registry
                    .list_repos()
                    .await?
                    .into_iter()
                    .filter(|r| r.kind == kind && r.name == name)
                    .flat_map(|r| r.revisions.into_iter().map(|v| v.sha))
                    .collect(),
            };
            if shas.is_empty() {
                bail!("`{name}` is not held");
            }
            for sha in shas {
                if let Some(detail) = larder.registry.commit_detail(kind, name, &sha).await? {
                    for file in detail.files.into_iter().filter(|f| f.held) {
                        if let Some(sha256) = file.sha256 {
                            blobs.insert(sha256, file.size);
                        }
                    }
                }
            }
        }
    }
    let json = args.json;
    let report = verify_blobs(larder, blobs.into_iter().collect(), &|check| {
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
