//! The management API under `/v1`, the part that runs jobs and removes revisions. Its other
//! verbs are in [`super::actions`] (pin, track, gc, verify, licence reviews, the session), the
//! live events in [`super::events`], the repo and storage views in [`super::repo_detail`] and
//! [`super::storage`]; docs/openapi.json describes all of them and a test keeps it in step with
//! the routes. Every change is allowed only to admins ([`super::access`]); the CLI's
//! `--daemon URL` and the web console ([`super::ui`]) are its clients.
//!
//! - `POST /v1/jobs` `{"kind":"pull","repo":"org/name","revision":"main","type":"model",
//!   "include":[..],"exclude":[..]}` or `{"kind":"convert","repo":"org/name","revision":"main",
//!   "to":"gguf","type":"q4_k_m"}` → `201 {"id":N}`
//! - `GET /v1/jobs` → every job; `GET /v1/jobs/{id}` → one
//! - `DELETE /v1/jobs/{id}` → cancel (a running pull is aborted; its parts are kept)
//! - `DELETE /v1/revisions/{type}/{org}/{name}/{rev}` → forget a held revision, as `larder rm`
//!   does (`rev` percent-encoded when it holds a `/`) → `200 {"repo","commit","reclaimable"}`
//!
//! Errors are `{"error": "..."}` ([`super::api_error`]) with 400, 404, 409 (the mirror runs
//! offline) or 500.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::Mirror;
use super::api_error::ApiError;
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
    Path(path): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let target = super::actions::path_target(path)?;
    match crate::remove::remove_revision(
        &mirror.larder,
        target.kind,
        &target.repo,
        &target.revision,
    )
    .await
    {
        Ok(removed) => {
            mirror.forget(target.kind, &target.repo);
            Ok(axum::Json(removed).into_response())
        }
        Err(error @ crate::remove::RemoveError::NotHeld { .. }) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, error.to_string()))
        }
        Err(crate::remove::RemoveError::Registry(error)) => {
            Err(ApiError::internal("removing a revision", &error))
        }
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
        .map_err(|e| ApiError::daemon(&e))?;
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
    .map_err(|e| ApiError::daemon(&e))?;
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
    .map_err(|e| ApiError::daemon(&e))?
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
        .map_err(|e| ApiError::daemon(&e))?
        .ok_or_else(|| no_job(id))?;
    Ok(axum::Json(JobView::from(job)).into_response())
}
