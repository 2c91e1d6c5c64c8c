//! `larder ls`: repos and revisions held, and the refs tracked (when last checked, behind).

use std::process::ExitCode;

use clap::Args;
use larder::Larder;
use larder::registry::{CommitId, RepoKind, RepoSummary, TrackedRef};
use serde::Serialize;

use super::format;

/// Arguments of `larder ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// A repo as `ls --json` shows it: the registry's summary plus its tracked refs.
#[derive(Debug, Serialize)]
struct RepoView {
    #[serde(flatten)]
    repo: RepoSummary,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tracking: Vec<TrackingView>,
    /// Names the upstream redirects here (the repo was renamed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    old_names: Vec<String>,
}

/// One tracked ref and how it compares with what is held.
#[derive(Debug, Serialize)]
struct TrackingView {
    #[serde(rename = "ref")]
    reference: String,
    /// Seconds between checks.
    every: i64,
    /// Unix seconds, `null` until the daemon first checks.
    last_checked: Option<i64>,
    /// Where the ref pointed upstream at the last check.
    upstream_commit: Option<CommitId>,
    /// Where the ref points in the store.
    local_commit: Option<CommitId>,
    /// The upstream has a commit the store does not hold for this ref.
    behind: bool,
    /// The pull queued for it, until it ends.
    pending_job: Option<i64>,
    /// Why the last check or pull failed.
    last_error: Option<String>,
}

async fn tracking_view(larder: &Larder, tracked: &TrackedRef) -> anyhow::Result<TrackingView> {
    let local = larder
        .registry
        .resolve(tracked.kind, &tracked.name, &tracked.reference)
        .await?;
    Ok(TrackingView {
        reference: tracked.reference.clone(),
        every: tracked.every,
        last_checked: tracked.last_checked,
        behind: tracked
            .upstream_commit
            .as_ref()
            .is_some_and(|up| local.as_ref() != Some(up)),
        upstream_commit: tracked.upstream_commit,
        local_commit: local,
        pending_job: tracked.pending_job,
        last_error: tracked.last_error.clone(),
    })
}

/// Held repos with their tracked refs, plus tracked repos not held yet.
async fn views(larder: &Larder) -> anyhow::Result<Vec<RepoView>> {
    let mut views: Vec<RepoView> = larder
        .registry
        .list_repos()
        .await?
        .into_iter()
        .map(|repo| RepoView {
            repo,
            tracking: Vec::new(),
            old_names: Vec::new(),
        })
        .collect();
    for view in &mut views {
        view.old_names = larder
            .registry
            .aliases_of(view.repo.kind, &view.repo.name)
            .await?;
    }
    for tracked in larder.registry.tracked().await? {
        let view = tracking_view(larder, &tracked).await?;
        let found = views
            .iter_mut()
            .find(|v| v.repo.kind == tracked.kind && v.repo.name == tracked.name);
        match found {
            Some(repo) => repo.tracking.push(view),
            None => views.push(RepoView {
                repo: RepoSummary {
                    kind: tracked.kind,
                    name: tracked.name.clone(),
                    gated: None,
                    private: false,
                    first_seen: tracked.added_at,
                    revisions: Vec::new(),
                },
                tracking: vec![view],
                old_names: Vec::new(),
            }),
        }
    }
    Ok(views)
}

fn status(tracking: &TrackingView) -> String {
    let short = |sha: &CommitId| sha[..sha.len().min(12)].to_owned();
    let mut status = match (&tracking.upstream_commit, tracking.behind) {
        (None, _) => "not checked yet".to_owned(),
        (Some(_), false) => "up to date".to_owned(),
        (Some(up), true) => format!("behind: upstream at {}", short(up)),
    };
    if let Some(job) = tracking.pending_job {
        status.push_str(&format!(", pulling (job {job})"));
    }
    if let Some(error) = &tracking.last_error {
        status.push_str(&format!(", last error: {error}"));
    }
    status
}

/// Run `larder ls`.
pub async fn run(larder: &Larder, args: LsArgs) -> anyhow::Result<ExitCode> {
    let views = views(larder).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&views)?);
        return Ok(ExitCode::SUCCESS);
    }
    let repos: Vec<&RepoSummary> = views.iter().map(|v| &v.repo).collect();
    let shown_name = |repo: &RepoSummary| {
        let old: &[String] = views
            .iter()
            .find(|v| v.repo.kind == repo.kind && v.repo.name == repo.name)
            .map_or(&[], |v| v.old_names.as_slice());
        if old.is_empty() {
            repo.name.clone()
        } else {
            format!("{} (was {})", repo.name, old.join(", "))
        }
    };
    if repos.is_empty() {
        eprintln!("nothing held yet: try `larder pull ORG/NAME`");
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = Vec::new();
    for repo in repos.iter().filter(|r| !r.revisions.is_empty()) {
        for revision in &repo.revisions {
            let licence = revision
                .licence
                .license
                .clone()
                .map(|l| match &revision.licence.license_name {
                    Some(name) if l == "other" => format!("other ({name})"),
                    _ => l,
                })
                .unwrap_or_else(|| "-".to_owned());
            let held = if revision.files_held == revision.files {
                format::size(revision.bytes_held)
            } else {
                format!(
                    "{} of {} ({}/{} files)",
                    format::size(revision.bytes_held),
                    format::size(revision.bytes_total),
                    revision.files_held,
                    revision.files
                )
            };
            rows.push(vec![
                shown_name(repo),
                repo.kind.as_str().to_owned(),
                if revision.refs.is_empty() {
                    "-".to_owned()
                } else {
                    revision.refs.join(",")
                },
                revision.sha[..revision.sha.len().min(12)].to_owned(),
                held,
                licence,
                format::time(revision.fetched_at),
                if revision.pinned { "pinned" } else { "" }.to_owned(),
            ]);
        }
    }
    print!(
        "{}",
        format::table(
            &[
                "REPO", "TYPE", "REFS", "COMMIT", "SIZE", "LICENCE", "FETCHED", "PIN"
            ],
            &rows
        )
    );
    let tracked: Vec<Vec<String>> = views
        .iter()
        .flat_map(|view| {
            view.tracking.iter().map(|t| {
                vec![
                    view.repo.name.clone(),
                    kind_label(view.repo.kind),
                    t.reference.clone(),
                    larder::units::format_interval(t.every),
                    t.last_checked
                        .map_or_else(|| "never".to_owned(), format::time),
                    status(t),
                ]
            })
        })
        .collect();
    if !tracked.is_empty() {
        println!();
        print!(
            "{}",
            format::table(
                &["TRACKED", "TYPE", "REF", "EVERY", "CHECKED", "STATUS"],
                &tracked
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn kind_label(kind: RepoKind) -> String {
    kind.as_str().to_owned()
}
