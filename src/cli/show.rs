//! `larder show ORG/NAME[@REV]`: one revision's commit, refs and files.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use larder::Larder;
use larder::hub::{RepoRef, RepoType};
use larder::registry::{RepoKind, Sha256};

use super::format;

/// Arguments of `larder show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// ORG/NAME[@REV]; without REV, `main` (or the only revision held)
    repo: RepoRef,
    /// Repo type
    #[arg(long = "type", default_value = "model", value_parser = ["model", "dataset"])]
    kind: String,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// Run `larder show`.
pub async fn run(larder: &Larder, args: ShowArgs) -> anyhow::Result<ExitCode> {
    let kind = RepoKind::from(args.kind.parse::<RepoType>()?);
    let asked = args.repo.id.as_str();
    // An old name of a renamed repo shows the repo under its name now.
    let canonical = match larder.registry.alias(kind, asked).await? {
        Some(canonical)
            if larder
                .registry
                .resolve(kind, asked, "main")
                .await?
                .is_none() =>
        {
            eprintln!("note: {asked} was renamed upstream; it lives at {canonical} now");
            canonical
        }
        _ => asked.to_owned(),
    };
    let name = canonical.as_str();
    let old_names = larder.registry.aliases_of(kind, name).await?;
    let revision = args
        .repo
        .revision
        .as_ref()
        .map(|r| r.as_str().to_owned())
        .unwrap_or_else(|| "main".to_owned());
    let mut sha = larder.registry.resolve(kind, name, &revision).await?;
    if sha.is_none() && args.repo.revision.is_none() {
        // No `main` observed (pulled by commit only): use the most recent revision held.
        sha = larder
            .registry
            .list_repos()
            .await?
            .into_iter()
            .find(|r| r.kind == kind && r.name == name)
            .and_then(|r| r.revisions.into_iter().max_by_key(|v| v.fetched_at))
            .map(|v| v.sha);
    }
    let Some(sha) = sha else {
        bail!("`{name}@{revision}` is not held: run `larder pull {name}@{revision}` first");
    };
    let Some(detail) = larder.registry.commit_detail(kind, name, &sha).await? else {
        bail!("`{name}@{sha}` is not held");
    };
    let history = larder.registry.ref_history(kind, name).await?;
    let licence_history = larder::licence::licence_history(larder, kind, name).await?;
    if args.json {
        let mut value = serde_json::to_value(&detail)?;
        add_xet_hashes(larder, &mut value).await?;
        if let Some(object) = value.as_object_mut() {
            object.insert("ref_history".to_owned(), serde_json::to_value(&history)?);
            object.insert("old_names".to_owned(), serde_json::to_value(&old_names)?);
            object.insert(
                "licence_history".to_owned(),
                serde_json::to_value(&licence_history)?,
            );
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} ({})", detail.name, detail.kind.as_str());
    if !old_names.is_empty() {
        println!(
            "renamed:  from {} (old names redirect here)",
            old_names.join(", ")
        );
    }
    println!("commit:   {}", detail.sha);
    println!(
        "refs:     {}",
        if detail.refs.is_empty() {
            "-".to_owned()
        } else {
            detail.refs.join(", ")
        }
    );
    println!(
        "fetched:  {} from {}",
        format::time(detail.fetched_at),
        detail.upstream
    );
    println!(
        "licence:  {}{}{}",
        detail.licence.license.as_deref().unwrap_or("-"),
        detail
            .licence
            .license_name
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default(),
        detail
            .licence
            .gated
            .as_deref()
            .map(|g| format!(", gated: {g}"))
            .unwrap_or_default()
    );
    if let Some(current) = licence_history
        .iter()
        .find(|entry| entry.commit == detail.sha)
        && let Some(id) = &current.licence_id
    {
        println!(
            "detected: {id} ({} confidence){}",
            current.confidence.as_deref().unwrap_or("no"),
            current
                .conflicts
                .as_array()
                .filter(|conflicts| !conflicts.is_empty())
                .map(|conflicts| format!(", {} conflict(s)", conflicts.len()))
                .unwrap_or_default()
        );
    }
    println!();
    let rows: Vec<Vec<String>> = detail
        .files
        .iter()
        .map(|f| {
            vec![
                f.path.clone(),
                format::size(f.size),
                if f.lfs { "lfs" } else { "git" }.to_owned(),
                f.sha256.map_or_else(|| "-".to_owned(), String::from),
                f.git_oid.clone(),
                if f.held { "held" } else { "missing" }.to_owned(),
            ]
        })
        .collect();
    print!(
        "{}",
        format::table(
            &["PATH", "SIZE", "STORE", "SHA256", "GIT OID", "STATE"],
            &rows
        )
    );
    if licence_history.len() > 1 {
        println!();
        println!("licence history:");
        for entry in &licence_history {
            println!(
                "  {}  {}  {}",
                entry.commit,
                format::time(entry.fetched_at),
                entry.licence_id.as_deref().unwrap_or("-")
            );
        }
    }
    if history.len() > 1 {
        println!();
        println!("ref history:");
        for observation in &history {
            println!(
                "  {:<20} {}  {} .. {}",
                observation.reference,
                observation.sha,
                format::time(observation.first_seen),
                format::time(observation.last_seen)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Put each held file's Xet hash beside its sha256 (`xet_hash`; `null` when the content is not
/// held or its chunking is not computed yet: `larder verify` computes it).
async fn add_xet_hashes(larder: &Larder, detail: &mut serde_json::Value) -> anyhow::Result<()> {
    let Some(files) = detail.get_mut("files").and_then(|f| f.as_array_mut()) else {
        return Ok(());
    };
    for file in files {
        let held = file.get("held").and_then(|h| h.as_bool()) == Some(true);
        let sha256 = file
            .get("sha256")
            .and_then(|s| s.as_str())
            .and_then(|s| Sha256::parse(s).ok());
        let xet_hash = match sha256 {
            Some(sha256) if held => larder.registry.xet_hash(&sha256).await?,
            _ => None,
        };
        if let Some(object) = file.as_object_mut() {
            object.insert("xet_hash".to_owned(), serde_json::json!(xet_hash));
        }
    }
    Ok(())
}
