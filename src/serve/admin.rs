//! The management API under `/v1`: the job queue.
//!
//! - `POST /v1/jobs` `{"kind":"pull","repo":"org/name","revision":"main","type":"model",
//!   "include":[..],"exclude":[..]}` or `{"kind":"convert","repo":"org/name","revision":"main",
//!   "to":"gguf","type":"q4_k_m"}` → `201 {"id":N}`
//! - `GET /v1/jobs` → every job; `GET /v1/jobs/{id}` → one
//! - `DELETE /v1/jobs/{id}` → cancel (a running pull is aborted; its parts are kept)
//! - `DELETE /v1/revisions/{type}/{org}/{name}/{rev}` → forget a held revision, as `larder rm`
//!   does (`rev` percent-encoded when it holds a `/`) → `200 {"repo","commit","reclaimable"}`
//!
//! Errors are `{"error": "..."}` with 400, 404, 409 (the mirror runs offline) or 500.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::Mirror;
use crate::daemon::jobs::{JobSpec, JobView};
use crate::daemon::{Daemon, DaemonError};

/// The `/v1` routes.
pub fn routes() -> Router<Arc<Mirror>> {
    Router::new()
        .route("/v1/jobs", get(list).post(submit))
        .route("/v1/jobs/{id}", get(show).delete(cancel))
        .route(
            "/v1/revisions/{kind}/{org}/{name}/{revision}",
            axum::routing::delete(remove),
        )
}

async fn remove(
    State(mirror): State<Arc<Mirror>>,
    Path((kind, org, name, revision)): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let bad = |e: &dyn std::fmt::Display| ApiError::new(StatusCode::BAD_REQUEST, e.to_string());
    let kind = match kind.as_str() {
        "model" | "models" => crate::registry::RepoKind::Model,
        "dataset" | "datasets" => crate::registry::RepoKind::Dataset,
        other => {
            return Err(bad(&format!(
                "unknown repo type `{other}`: use model or dataset"
            )));
        }
    };
    let repo = crate::hub::RepoId::parse(&format!("{org}/{name}")).map_err(|e| bad(&e))?;
    let revision = crate::hub::Revision::parse(&revision).map_err(|e| bad(&e))?;
    match crate::remove::remove_revision(&mirror.larder, kind, repo.as_str(), revision.as_str())
        .await
    {
        Ok(removed) => {
            mirror.forget(kind, repo.as_str());
            Ok(axum::Json(removed).into_response())
        }
        Err(error @ crate::remove::RemoveError::NotHeld { .. }) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, error.to_string()))
        }
        Err(crate::remove::RemoveError::Registry(error)) => {
            tracing::error!(
                error = %crate::fetch::transfer::error_chain(&error),
                "removing a revision failed"
            );
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
            ))
        }
    }
}

/// An error answer of the management API: `{"error": "..."}` with a status.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn internal(e: &DaemonError) -> ApiError {
        tracing::error!(
            error = %crate::fetch::transfer::error_chain(e),
            "job queue operation failed"
        );
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

fn daemon(mirror: &Mirror) -> Result<&Daemon, ApiError> {
    mirror.daemon.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "this mirror runs offline and does not run jobs",
        )
    })
}

fn job_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, format!("`{raw}` is not a job id")))
}

fn no_job(id: i64) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no job {id}"))
}

async fn submit(State(mirror): State<Arc<Mirror>>, body: Bytes) -> Result<Response, ApiError> {
    let daemon = daemon(&mirror)?;
    let spec = JobSpec::from_submission(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let id = daemon
        .submit(&spec)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "id": id }))).into_response())
}

async fn list(State(mirror): State<Arc<Mirror>>) -> Result<Response, ApiError> {
    let jobs = match &mirror.daemon {
        Some(daemon) => daemon.jobs().await,
        None => mirror
            .larder
            .registry
            .jobs()
            .await
            .map_err(DaemonError::Registry),
    }
    .map_err(|e| ApiError::internal(&e))?;
    let views: Vec<JobView> = jobs.into_iter().map(JobView::from).collect();
    Ok(axum::Json(views).into_response())
}

async fn show(
    State(mirror): State<Arc<Mirror>>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = job_id(&raw)?;
    let job = match &mirror.daemon {
        Some(daemon) => daemon.job(id).await,
        None => mirror
            .larder
            .registry
            .job(id)
            .await
            .map_err(DaemonError::Registry),
    }
    .map_err(|e| ApiError::internal(&e))?
    .ok_or_else(|| no_job(id))?;
    Ok(axum::Json(JobView::from(job)).into_response())
}

async fn cancel(
    State(mirror): State<Arc<Mirror>>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = job_id(&raw)?;
    // Offline, nothing runs, so the queue alone is updated.
    let cancelled = match &mirror.daemon {
        Some(daemon) => daemon.cancel(id).await,
        None => mirror
            .larder
            .registry
            .cancel_job(id)
            .await
            .map_err(DaemonError::Registry),
    };
    let job = cancelled
        .map_err(|e| ApiError::internal(&e))?
        .ok_or_else(|| no_job(id))?;
    Ok(axum::Json(JobView::from(job)).into_response())
}
