//! One held repo as the console shows it (`GET /v1/repos/{kind}/{org}/{name}` and the repo
//! page): its revisions over time with the licence of each (a change from the revision before
//! is marked), the files of the newest revision with sizes and hashes, the `base_model`
//! lineage ([`super::lineage`]), and the conversions made from it. Private repos are not found,
//! as everywhere on the page.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::Mirror;
use super::api_error::ApiError;
use super::lineage::{self, Lineage};
use crate::registry::{CommitId, RegistryError, RepoKind, Sha256};

/// Most revisions whose licence is detected for the page when no detection was stored.
const MAX_AUDITED: usize = 50;
/// Most files listed (a repo may hold many thousands; the rest are counted).
pub const MAX_FILES: usize = 2000;

/// One held revision.
#[derive(Debug, Clone, Serialize)]
pub struct RevisionView {
    /// The commit.
    pub commit: CommitId,
    /// Refs pointing at it when last seen.
    pub refs: Vec<String>,
    /// When it was pulled (unix seconds).
    pub fetched_at: i64,
    /// Bytes held of the tree's bytes.
    pub bytes_held: u64,
    /// Bytes of the whole tree.
    pub bytes_total: u64,
    /// Whether it is pinned.
    pub pinned: bool,
    /// Its licence (Hub id or catalog key), when detected.
    pub licence: Option<String>,
    /// The licence's full name, when the catalog knows it.
    pub licence_name: Option<String>,
    /// Whether the licence differs from the revision pulled before it.
    pub licence_changed: bool,
}

/// One file of the newest revision.
#[derive(Debug, Clone, Serialize)]
pub struct FileView {
    /// Path in the repo.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Its SHA-256 (LFS files and hashed regular files).
    pub sha256: Option<Sha256>,
    /// Its git blob id.
    pub git_oid: String,
    /// Whether the store holds it.
    pub held: bool,
}

/// A conversion made from the repo.
#[derive(Debug, Clone, Serialize)]
pub struct DerivedView {
    /// The derived repo.
    pub repo: String,
    /// Its commit.
    pub commit: CommitId,
    /// The source commit.
    pub source_commit: CommitId,
    /// The tool, e.g. `larder-convert`.
    pub tool: String,
    /// Its parameters.
    pub params: serde_json::Value,
    /// When.
    pub created_at: i64,
}

/// Everything the repo page shows.
#[derive(Debug, Clone, Serialize)]
pub struct RepoDetail {
    /// `model` or `dataset`.
    pub kind: RepoKind,
    /// `org/name`.
    pub name: String,
    /// The gate, if any.
    pub gated: Option<String>,
    /// Revisions, newest first.
    pub revisions: Vec<RevisionView>,
    /// The newest revision's files (at most [`MAX_FILES`]).
    pub files: Vec<FileView>,
    /// Files left out of `files`.
    pub files_omitted: usize,
    /// The newest revision's licence and verdict.
    pub licence: super::repos::LicenceView,
    /// Where it came from.
    pub lineage: Lineage,
    /// Conversions made from it.
    pub derived: Vec<DerivedView>,
    /// Refs tracked.
    pub tracked: Vec<String>,
}

/// The repo's detail; `None` when it is not held or private.
pub async fn detail(
    mirror: &Mirror,
    kind: RepoKind,
    name: &str,
) -> Result<Option<RepoDetail>, RegistryError> {
    let registry = &mirror.larder.registry;
    let Some(summary) = registry
        .list_repos()
        .await?
        .into_iter()
        .find(|r| r.kind == kind && r.name == name && !r.private)
    else {
        return Ok(None);
    };
    let Some(newest) = summary.revisions.first() else {
        return Ok(None);
    };
    // Each commit's licence as `larder show` reports it (from the stored detection).
    let history = match crate::licence::licence_history(&mirror.larder, kind, name).await {
        Ok(history) => history,
        Err(error) => {
            tracing::warn!(repo = name, %error, "licence history unavailable");
            Vec::new()
        }
    };
    let licence_of = |sha: &CommitId| {
        history
            .iter()
            .position(|h| h.commit == sha)
            .map(|i| (i, history[i].licence_id.clone()))
    };
    let mut revisions = Vec::with_capacity(summary.revisions.len());
    for r in &summary.revisions {
        let stored = licence_of(&r.sha);
        // A commit recorded without a detection: the audit detects it now (cached).
        let licence = match stored.as_ref().and_then(|(_, id)| id.clone()) {
            Some(id) => Some(id),
            None if revisions.len() < MAX_AUDITED => {
                Some(super::repos::verdict(mirror, kind, name, &r.sha).await.id)
            }
            None => None,
        };
        let licence_name = stored
            .as_ref()
            .and_then(|(i, _)| history[*i].licence_name.clone());
        revisions.push(RevisionView {
            commit: r.sha,
            refs: r.refs.clone(),
            fetched_at: r.fetched_at,
            bytes_held: r.bytes_held,
            bytes_total: r.bytes_total,
            pinned: r.pinned,
            licence_name,
            licence,
            licence_changed: false,
        });
    }
    // Oldest first, to mark each licence that differs from the one before it.
    revisions.sort_by_key(|r| r.fetched_at);
    for i in 1..revisions.len() {
        let (before, now) = (&revisions[i - 1].licence, &revisions[i].licence);
        revisions[i].licence_changed = before.is_some() && now.is_some() && before != now;
    }
    revisions.sort_by_key(|r| std::cmp::Reverse(r.fetched_at));
    let commit = registry.commit_detail(kind, name, &newest.sha).await?;
    let (files, files_omitted, card) = match commit {
        Some(detail) => {
            let total = detail.files.len();
            let files: Vec<FileView> = detail
                .files
                .into_iter()
                .take(MAX_FILES)
                .map(|f| FileView {
                    path: f.path,
                    size: f.size,
                    sha256: f.sha256,
                    git_oid: f.git_oid,
                    held: f.held,
                })
                .collect();
            (files, total.saturating_sub(MAX_FILES), detail.card_json)
        }
        None => (Vec::new(), 0, None),
    };
    let licence = super::repos::verdict(mirror, kind, name, &newest.sha).await;
    let lineage = lineage::trace(mirror, name, &licence, card.as_ref()).await?;
    let derived = registry
        .derivations_from(kind, name)
        .await?
        .into_iter()
        .map(|d| DerivedView {
            repo: d.derived.name,
            commit: d.derived.sha,
            source_commit: d.source.sha,
            tool: d.tool,
            params: d.params,
            created_at: d.created_at,
        })
        .collect();
    let tracked = registry
        .tracked()
        .await?
        .into_iter()
        .filter(|t| t.kind == kind && t.name == name)
        .map(|t| t.reference)
        .collect();
    Ok(Some(RepoDetail {
        kind,
        name: summary.name,
        gated: summary.gated,
        revisions,
        files,
        files_omitted,
        licence,
        lineage,
        derived,
        tracked,
    }))
}

/// `GET /v1/repos/{kind}/{org}/{name}`.
pub async fn get(
    State(mirror): State<Arc<Mirror>>,
    Path((kind, org, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let kind = super::actions::path_kind(&kind)?;
    let name = format!("{org}/{name}");
    crate::hub::RepoId::parse(&name).map_err(|e| ApiError::bad_request(&e))?;
    match detail(&mirror, kind, &name).await {
        Ok(Some(detail)) => Ok(axum::Json(detail).into_response()),
        Ok(None) => Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            format!("{name} is not held"),
        )),
        Err(e) => Err(ApiError::internal("reading a repo", &e)),
    }
}
