//! The management API's verbs beyond the job queue, each the same as its CLI command (both run
//! [`crate::manage`]): pin and unpin, track and untrack, gc, verify, licence reviews, and
//! `GET /v1/session` (whether the caller may use the verbs; the console shows its buttons by
//! it). Every change is refused by [`super::access::guard`] unless the caller is an admin, and
//! announced on [`super::events`]. Track and untrack are also POSTed to the daemon's webhook
//! (`[daemon] webhook`), as tracking's own events are.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::Mirror;
use super::api_error::ApiError;
use super::events::Event;
use crate::daemon::jobs::{GcSpec, JobSpec, VerifySpec};
use crate::manage::{self, Review, Target};
use crate::registry::RepoKind;

/// The verbs' routes.
pub fn routes() -> Router<Arc<Mirror>> {
    Router::new()
        .route("/v1/session", get(session))
        .route("/v1/pins", post(pin))
        .route("/v1/pins/{kind}/{org}/{name}/{revision}", delete(unpin))
        .route("/v1/tracked", get(tracked).post(track))
        .route(
            "/v1/tracked/{kind}/{org}/{name}/{reference}",
            delete(untrack),
        )
        .route("/v1/gc", post(gc))
        .route("/v1/verify", post(verify))
        .route("/v1/licence-reviews", get(review_queue).post(review))
}

/// A JSON body of the expected shape, or 400 saying what is wrong.
pub fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(&format!("invalid request body: {e}")))
}

/// `model`/`models`/`dataset`/`datasets` in a path.
pub fn path_kind(kind: &str) -> Result<RepoKind, ApiError> {
    match kind {
        "model" | "models" => Ok(RepoKind::Model),
        "dataset" | "datasets" => Ok(RepoKind::Dataset),
        other => Err(ApiError::bad_request(&format!(
            "unknown repo type `{other}`: use model or dataset"
        ))),
    }
}

/// The revision named by `{kind}/{org}/{name}/{revision}` (the revision percent-encoded when it
/// holds a `/`), validated.
pub fn path_target(
    (kind, org, name, revision): (String, String, String, String),
) -> Result<Target, ApiError> {
    let target = Target {
        repo: format!("{org}/{name}"),
        revision,
        kind: path_kind(&kind)?,
    };
    target.validate().map_err(|e| ApiError::bad_request(&e))?;
    Ok(target)
}

/// The client's address, as the connection recorded it.
fn peer(parts: &Parts) -> Option<std::net::SocketAddr> {
    parts
        .extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0)
}

/// `GET /v1/session` → `{"admin": bool}`: whether this caller's changes would be accepted.
async fn session(State(mirror): State<Arc<Mirror>>, parts: Parts) -> Response {
    let admin = mirror.options.access.is_admin(&parts.headers, peer(&parts));
    axum::Json(json!({ "admin": admin })).into_response()
}

async fn pin(State(mirror): State<Arc<Mirror>>, bytes: Bytes) -> Result<Response, ApiError> {
    let target: Target = body(&bytes)?;
    set_pin(&mirror, &target, true).await
}

async fn unpin(
    State(mirror): State<Arc<Mirror>>,
    Path(path): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let target = path_target(path)?;
    set_pin(&mirror, &target, false).await
}

async fn set_pin(mirror: &Mirror, target: &Target, on: bool) -> Result<Response, ApiError> {
    let outcome = manage::pin(&mirror.larder, target, on)
        .await
        .map_err(|e| ApiError::manage("pinning", e))?;
    if outcome.changed {
        mirror.events.send(Event::Pin {
            kind: target.kind,
            repo: outcome.repo.clone(),
            commit: outcome.commit,
            pinned: on,
        });
    }
    Ok(axum::Json(outcome).into_response())
}

/// `POST /v1/tracked`: a ref to follow, checked `every` (`6h` when absent).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrackRequest {
    repo: String,
    #[serde(default = "main", rename = "ref", alias = "revision")]
    reference: String,
    #[serde(default, rename = "type")]
    kind: RepoKind,
    #[serde(default = "six_hours")]
    every: String,
}

fn main() -> String {
    "main".to_owned()
}

fn six_hours() -> String {
    "6h".to_owned()
}

async fn tracked(State(mirror): State<Arc<Mirror>>) -> Result<Response, ApiError> {
    let tracked = mirror
        .larder
        .registry
        .tracked()
        .await
        .map_err(|e| ApiError::internal("listing tracked refs", &e))?;
    let mut rows = Vec::with_capacity(tracked.len());
    for t in tracked {
        if mirror.is_private(t.kind, &t.name).await {
            continue;
        }
        rows.push(json!({
            "type": t.kind,
            "repo": t.name,
            "ref": t.reference,
            "every": t.every,
            "last_checked": t.last_checked,
            "last_error": t.last_error,
        }));
    }
    Ok(axum::Json(rows).into_response())
}

async fn track(State(mirror): State<Arc<Mirror>>, bytes: Bytes) -> Result<Response, ApiError> {
    let request: TrackRequest = body(&bytes)?;
    let every = crate::units::parse_interval(&request.every)
        .map_err(|e| ApiError::bad_request(&format!("every: {e}")))?;
    let target = Target {
        repo: request.repo,
        revision: request.reference,
        kind: request.kind,
    };
    let outcome = manage::track(&mirror.larder, &target, every)
        .await
        .map_err(|e| ApiError::manage("tracking", e))?;
    announce_tracking(&mirror, &target, true);
    let status = if outcome.new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(outcome)).into_response())
}

async fn untrack(
    State(mirror): State<Arc<Mirror>>,
    Path(path): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let target = path_target(path)?;
    manage::untrack(&mirror.larder, &target)
        .await
        .map_err(|e| ApiError::manage("untracking", e))?;
    announce_tracking(&mirror, &target, false);
    Ok(
        axum::Json(json!({ "repo": target.repo, "ref": target.revision, "tracked": false }))
            .into_response(),
    )
}

/// Tell the event stream and the webhook that a ref is (no longer) followed.
fn announce_tracking(mirror: &Mirror, target: &Target, tracked: bool) {
    mirror.events.send(Event::Track {
        kind: target.kind,
        repo: target.repo.clone(),
        reference: target.revision.clone(),
        tracked,
    });
    if let Some(url) = mirror.options.jobs.webhook.clone() {
        let payload = json!({
            "event": if tracked { "tracked" } else { "untracked" },
            "type": target.kind,
            "repo": target.repo,
            "ref": target.revision,
        });
        tokio::spawn(async move {
            crate::daemon::webhook::post(&reqwest::Client::new(), &url, &payload).await;
        });
    }
}

/// `POST /v1/gc`: as `larder gc` (`{"dry_run","all_parts"}`, or `{"quota":"2TB"}` as
/// `--quota`). With the job queue, it is queued as a `gc` job (`202` and its id; the report
/// lands in the job's progress); a mirror without one (`--offline`) runs it in the request.
async fn gc(State(mirror): State<Arc<Mirror>>, bytes: Bytes) -> Result<Response, ApiError> {
    let spec: GcSpec = if bytes.is_empty() {
        GcSpec::default()
    } else {
        body(&bytes)?
    };
    let quota = spec
        .quota_bytes()
        .map_err(|e| ApiError::bad_request(&e.to_string()))?;
    if let Some(daemon) = &mirror.daemon {
        return queued(daemon, &JobSpec::Gc(spec)).await;
    }
    let report = match quota {
        Some(quota) => crate::quota::enforce(&mirror.larder, quota, &[])
            .await
            .map(|r| serde_json::to_value(r).unwrap_or_default()),
        None => crate::gc::gc(
            &mirror.larder,
            crate::gc::GcOptions {
                dry_run: spec.dry_run,
                all_parts: spec.all_parts,
            },
        )
        .await
        .map(|r| serde_json::to_value(r).unwrap_or_default()),
    }
    .map_err(|e| ApiError::internal("gc", &e))?;
    Ok(axum::Json(report).into_response())
}

/// `POST /v1/verify`: as `larder verify [REPO[@REV]]` (`{"repo","revision","type"}`, all
/// optional). Queued as a `verify` job when the mirror has a job queue, run in the request
/// otherwise; an unknown repo is refused at once either way.
async fn verify(State(mirror): State<Arc<Mirror>>, bytes: Bytes) -> Result<Response, ApiError> {
    let spec: VerifySpec = if bytes.is_empty() {
        VerifySpec::default()
    } else {
        body(&bytes)?
    };
    spec.check()
        .map_err(|e| ApiError::bad_request(&e.to_string()))?;
    let repo = spec
        .repo
        .as_deref()
        .map(|name| (name, spec.revision.as_deref()));
    let blobs = manage::blobs_to_verify(&mirror.larder, spec.kind, repo)
        .await
        .map_err(|e| ApiError::manage("choosing blobs to verify", e))?;
    if let Some(daemon) = &mirror.daemon {
        return queued(daemon, &JobSpec::Verify(spec)).await;
    }
    let report = crate::verify::verify_blobs(&mirror.larder, blobs, &crate::report::Silent)
        .await
        .map_err(|e| ApiError::internal("verify", &e))?;
    let bad = report
        .iter()
        .filter(|c| c.status != crate::verify::BlobStatus::Ok)
        .count();
    Ok(axum::Json(json!({ "checked": report.len(), "bad": bad, "blobs": report })).into_response())
}

/// Queue `spec`: `202 Accepted` with the job's id and where to follow it.
async fn queued(daemon: &crate::daemon::Daemon, spec: &JobSpec) -> Result<Response, ApiError> {
    let id = daemon
        .submit(spec)
        .await
        .map_err(|e| ApiError::daemon(&e))?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({ "id": id, "job": format!("/v1/jobs/{id}") })),
    )
        .into_response())
}

/// `GET /v1/licence-reviews`: held public revisions (the newest of each repo) whose verdict is
/// `review`, and that no review has decided yet.
async fn review_queue(State(mirror): State<Arc<Mirror>>) -> Result<Response, ApiError> {
    let overview = super::repos::overview(&mirror, None)
        .await
        .map_err(|e| ApiError::internal("listing repos", &e))?;
    // A revision reviewed already is decided, whatever the policy still says of it.
    let reviewed: std::collections::BTreeSet<(String, String)> = mirror
        .larder
        .registry
        .audit_log(None)
        .await
        .map_err(|e| ApiError::internal("reading the audit log", &e))?
        .into_iter()
        .filter(|e| e.action == manage::REVIEW_ACTION)
        .filter_map(|e| {
            let commit = e.detail.as_ref()?.get("commit")?.as_str()?.to_owned();
            Some((e.repo?, commit))
        })
        .collect();
    let queue: Vec<_> = overview
        .repos
        .into_iter()
        .filter(|r| r.licence.verdict == "review")
        .filter(|r| {
            let repo = crate::licence::audit_repo_name(r.kind, &r.name);
            !reviewed.contains(&(repo, r.commit.to_string()))
        })
        .map(|r| {
            json!({
                "type": r.kind,
                "repo": r.name,
                "commit": r.commit,
                "licence": r.licence,
            })
        })
        .collect();
    Ok(axum::Json(queue).into_response())
}

/// `POST /v1/licence-reviews` `{"repo","revision","type","decision":"accept"|"deny","note"}`.
async fn review(
    State(mirror): State<Arc<Mirror>>,
    parts: Parts,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let review: Review = body(&bytes)?;
    let actor = super::access::actor(&parts.headers, peer(&parts));
    let reviewed = manage::review(&mirror.larder, &review, &actor)
        .await
        .map_err(|e| ApiError::manage("recording a licence review", e))?;
    mirror
        .verdicts
        .forget(review.target.kind, &review.target.repo);
    mirror.events.send(Event::Licence {
        kind: review.target.kind,
        repo: reviewed.repo.clone(),
        action: manage::REVIEW_ACTION.to_owned(),
        commit: Some(reviewed.commit),
    });
    Ok((StatusCode::CREATED, axum::Json(reviewed)).into_response())
}
