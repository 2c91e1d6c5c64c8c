//! The mirror's routes: the axum router (web page, management API, health, metrics), the access
//! log, and the one dispatch of every Hub-style path to its handler, on the raw path
//! ([`super::paths`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};

use super::errors::ServeError;
use super::paths::{ApiAction, PathError, Route};
use super::{
    AccessNote, MAX_BODY, Mirror, access, actions, admin, errors, events, hub_api, metrics, noted,
    paths, raw, renamed, repo_detail, repo_page, resolve, storage, ui, xet,
};

/// The mirror's router: the web page, the management API, health and metrics, one handler for
/// every Hub route, plus the access log.
pub fn router(mirror: Arc<Mirror>) -> Router {
    Router::new()
        .route("/healthz", axum::routing::get(metrics::healthz))
        .route("/metrics", axum::routing::get(metrics::metrics))
        .merge(admin::routes())
        .merge(actions::routes())
        .route("/v1/events", axum::routing::get(events::stream))
        .route("/v1/storage", axum::routing::get(storage::get))
        .route(
            "/-/repo/{kind}/{org}/{name}",
            axum::routing::get(repo_page::page),
        )
        .route(
            "/v1/repos/{kind}/{org}/{name}",
            axum::routing::get(repo_detail::get),
        )
        .merge(ui::routes())
        .route(
            "/v1/reconstructions/{hash}",
            axum::routing::get(xet::reconstruction_route),
        )
        .route(
            "/v2/reconstructions/{hash}",
            axum::routing::get(xet::reconstruction_v2_route),
        )
        .route(
            "/xet/xorbs/{xorb}/{blob}/{first}",
            axum::routing::get(xet::xorb_route),
        )
        .fallback(dispatch)
        .layer(axum::middleware::from_fn_with_state(
            mirror.clone(),
            access::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            mirror.clone(),
            access_log,
        ))
        .with_state(mirror)
}

async fn access_log(
    State(mirror): State<Arc<Mirror>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let method = request.method().clone();
    let uri = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let note = response
        .extensions()
        .get::<AccessNote>()
        .cloned()
        .unwrap_or_default();
    let bytes = if method == Method::HEAD {
        0
    } else {
        response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .or_else(|| axum::body::HttpBody::size_hint(response.body()).exact())
            .unwrap_or(0)
    };
    mirror
        .metrics
        .record(metrics::ServedKind::of_path(&uri), response.status(), bytes);
    if let Some(kind) = response.extensions().get::<errors::ErrorKind>() {
        mirror.metrics.error(*kind);
    }
    tracing::info!(
        target: "larder::access",
        client,
        %method,
        uri,
        repo = note.repo,
        revision = note.revision,
        path = note.path,
        bytes,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

async fn dispatch(State(mirror): State<Arc<Mirror>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let method = parts.method.clone();
    let route = match paths::parse(parts.uri.path()) {
        Ok(route) => route,
        Err(PathError::Encoding) => {
            return ServeError::BadRequest(PathError::Encoding.to_string()).into_response();
        }
        Err(PathError::NoRoute) => return ServeError::NotFound.into_response(),
    };
    let query = parts.uri.query().unwrap_or("").to_owned();
    let fallback_note = match &route {
        Route::Api { repo, action, .. } => AccessNote {
            repo: repo.clone(),
            revision: match action {
                ApiAction::Revision(t) | ApiAction::PathsInfo(t) => t.whole(),
                ApiAction::Tree(t) => t.likely(false).0,
                ApiAction::XetReadToken(t) => t.whole(),
                ApiAction::Info | ApiAction::XetWriteToken => String::new(),
            },
            path: String::new(),
        },
        Route::Resolve { repo, tail, .. } | Route::Raw { repo, tail, .. } => {
            let (revision, path) = tail.likely(true);
            AccessNote {
                repo: repo.clone(),
                revision,
                path,
            }
        }
    };
    let headers = parts.headers;
    let (moved_type, moved_repo) = renamed::route_repo(&route);
    let moved_repo = moved_repo.to_owned();
    let result = match (route, &method) {
        (
            Route::Raw {
                repo_type,
                repo,
                tail,
            },
            &Method::GET | &Method::HEAD,
        ) => {
            raw::handle(
                &mirror,
                repo_type,
                &repo,
                &tail,
                &headers,
                method == Method::HEAD,
            )
            .await
        }
        (
            Route::Resolve {
                repo_type,
                repo,
                tail,
            },
            &Method::GET | &Method::HEAD,
        ) => {
            resolve::handle(
                &mirror,
                repo_type,
                &repo,
                &tail,
                &headers,
                method == Method::HEAD,
            )
            .await
        }
        (
            Route::Api {
                repo_type,
                repo,
                action: ApiAction::XetReadToken(tail),
            },
            &Method::GET,
        ) => xet::read_token(&mirror, repo_type, &repo, &tail, &headers).await,
        (
            Route::Api {
                action: ApiAction::XetReadToken(_) | ApiAction::XetWriteToken,
                ..
            },
            _,
        ) => Err(ServeError::NotFound),
        (
            Route::Api {
                repo_type,
                repo,
                action: ApiAction::PathsInfo(tail),
            },
            &Method::POST,
        ) => match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(bytes) => {
                hub_api::paths_info(&mirror, repo_type, &repo, &tail, &headers, &bytes).await
            }
            Err(_) => Err(ServeError::BadRequest(
                "request body too large or unreadable".into(),
            )),
        },
        (
            Route::Api {
                repo_type,
                repo,
                action,
            },
            &Method::GET | &Method::HEAD,
        ) => match action {
            ApiAction::Info => {
                hub_api::info(&mirror, repo_type, &repo, None, &query, &headers).await
            }
            ApiAction::Revision(tail) => {
                hub_api::info(&mirror, repo_type, &repo, Some(&tail), &query, &headers).await
            }
            ApiAction::Tree(tail) => {
                hub_api::tree(&mirror, repo_type, &repo, &tail, &query, &headers).await
            }
            _ => Err(ServeError::NotFound),
        },
        _ => Err(ServeError::NotFound),
    };
    let response = result.unwrap_or_else(IntoResponse::into_response);
    let response =
        renamed::redirect_if_moved(&mirror, moved_type, &moved_repo, &parts.uri, response).await;
    if response.extensions().get::<AccessNote>().is_some() {
        response
    } else {
        noted(response, fallback_note)
    }
}
