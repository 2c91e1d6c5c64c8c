//! `expand=true` on tree listings and paths-info: the fields the upstream adds to each entry
//! (`lastCommit`, `securityFileStatus`), passed on when the upstream gave them.
//!
//! The mirror cannot compute them (it holds commits, not their history or scans). It keeps what
//! the upstream said per commit and path in the registry; with pull-through, paths it has not
//! kept yet are asked upstream (one `paths-info?expand=true` per [`BATCH`] paths) and kept, so
//! an offline mirror answers them too. An entry the upstream gave nothing for, or that cannot
//! be asked now, is served without them, as the Hub's own entries without those fields.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value};

use super::{Mirror, Target};
use crate::hub::{RepoId, RepoType};
use crate::registry::CommitId;

/// Paths asked upstream in one request (the Hub's own expanded tree pages hold 50 entries).
const BATCH: usize = 50;
/// Longest wait for the upstream's expanded fields before answering without them.
const UPSTREAM_WAIT: Duration = Duration::from_secs(8);

/// Add the kept (or, with pull-through, fetched) expanded fields to `entries` of `commit`.
pub async fn add_expanded_fields(
    mirror: &Mirror,
    target: &Target,
    commit: &CommitId,
    entries: &mut [Value],
) {
    let paths: Vec<String> = entries
        .iter()
        .filter_map(|e| e.get("path").and_then(Value::as_str).map(str::to_owned))
        .collect();
    if paths.is_empty() {
        return;
    }
    let registry = &mirror.larder.registry;
    let mut kept = registry
        .path_info(target.kind, &target.repo, commit, paths.clone())
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(repo = target.repo, %error, "reading expanded tree fields failed");
            HashMap::new()
        });
    let missing: Vec<String> = paths
        .into_iter()
        .filter(|p| !kept.contains_key(p))
        .collect();
    if !missing.is_empty() && mirror.pull.is_some() {
        for (path, json) in fetch(mirror, target, commit, &missing).await {
            kept.insert(path, json);
        }
    }
    for entry in entries.iter_mut() {
        let Some(path) = entry.get("path").and_then(Value::as_str) else {
            continue;
        };
        let Some(fields) = kept
            .get(path)
            .and_then(|json| serde_json::from_str::<Map<String, Value>>(json).ok())
        else {
            continue;
        };
        if let Value::Object(map) = entry {
            for (key, value) in fields {
                map.insert(key, value);
            }
        }
    }
}

/// Ask the upstream for `paths`' expanded fields and keep them (`{}` for a listed path it gave
/// none for, so it is not asked again).
async fn fetch(
    mirror: &Mirror,
    target: &Target,
    commit: &CommitId,
    paths: &[String],
) -> Vec<(String, String)> {
    let Ok(repo) = RepoId::parse(&target.repo) else {
        return Vec::new();
    };
    let client = &mirror.larder.client;
    let kind = RepoType::from(target.kind);
    let mut found = Vec::new();
    for batch in paths.chunks(BATCH) {
        let asked = client.expanded_fields(kind, &repo, commit, batch);
        match tokio::time::timeout(UPSTREAM_WAIT, asked).await {
            Ok(Ok(fields)) => found.extend(fields),
            Ok(Err(error)) => {
                tracing::warn!(repo = target.repo, error = %crate::fetch::transfer::error_chain(&error), "the upstream's expanded tree fields could not be read");
                break;
            }
            Err(_) => {
                tracing::warn!(
                    repo = target.repo,
                    "the upstream's expanded tree fields took too long"
                );
                break;
            }
        }
    }
    if !found.is_empty()
        && let Err(error) = mirror
            .larder
            .registry
            .record_path_info(target.kind, &target.repo, commit, found.clone())
            .await
    {
        tracing::warn!(repo = target.repo, %error, "keeping expanded tree fields failed");
    }
    found
}
