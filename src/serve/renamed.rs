//! Renamed repos on the mirror: an old name is answered as the Hub answers it, with a `307` whose
//! relative `Location` is the same request under the repo's name now (hub-protocol.md §1; the
//! Hub's own answer is recorded in huggingface_hub's cassette
//! `InferenceApiTest.test_simple_inference.yaml`: `307`, `Location:
//! /api/models/google-bert/bert-base-uncased`, a `text/plain` body saying where it redirects).
//!
//! The mirror learns a rename from the upstream (a pull-through lookup that was redirected
//! answers [`ServeError::Moved`]) or from the registry's aliases (a `larder pull` under the old
//! name recorded it), so an offline mirror redirects too.

use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::Mirror;
use super::errors::{ErrorKind, RepoMoved};
use super::paths::{Route, UrlRepoType};

/// The repo type and name a route names.
pub fn route_repo(route: &Route) -> (UrlRepoType, &str) {
    match route {
        Route::Api {
            repo_type, repo, ..
        }
        | Route::Resolve {
            repo_type, repo, ..
        }
        | Route::Raw {
            repo_type, repo, ..
        } => (*repo_type, repo),
    }
}

/// `response`, or the redirect to the repo's name now when the response says the repo moved, or
/// is an unknown-repo answer (or the upstream's refusal or failure) for a name the registry
/// knows as an old name.
pub async fn redirect_if_moved(
    mirror: &Mirror,
    repo_type: UrlRepoType,
    repo: &str,
    uri: &Uri,
    response: Response,
) -> Response {
    let moved_to = match response.extensions().get::<RepoMoved>() {
        Some(moved) => Some(moved.0.clone()),
        None => {
            let unknown = matches!(
                response.extensions().get::<ErrorKind>(),
                Some(
                    ErrorKind::RepoNotFound | ErrorKind::UpstreamRefused | ErrorKind::UpstreamError
                )
            );
            match (unknown, repo_type.kind()) {
                (true, Some(kind)) => mirror
                    .larder
                    .registry
                    .alias(kind, repo)
                    .await
                    .ok()
                    .flatten(),
                _ => None,
            }
        }
    };
    let Some(to) = moved_to else {
        return response;
    };
    let prefix = mirror
        .options
        .public_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    match moved_path(uri.path(), repo_type, repo, &to) {
        Some(path) => {
            let mut location = format!("{prefix}{path}");
            if let Some(query) = uri.query() {
                location.push('?');
                location.push_str(query);
            }
            redirect(&location)
        }
        None => response,
    }
}

/// The Hub's answer for a moved repo.
fn redirect(location: &str) -> Response {
    let Ok(value) = HeaderValue::from_str(location) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    (
        StatusCode::TEMPORARY_REDIRECT,
        [
            (header::LOCATION, value),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
        ],
        format!("Temporary Redirect. Redirecting to {location}"),
    )
        .into_response()
}

/// `raw_path` with the repo id `old` (right after `/api/{type}s/` or the download prefix)
/// replaced by `new`; `None` when the path does not name `old` there.
pub fn moved_path(raw_path: &str, repo_type: UrlRepoType, old: &str, new: &str) -> Option<String> {
    let segments: Vec<&str> = raw_path.split('/').filter(|s| !s.is_empty()).collect();
    let skip = if segments.first() == Some(&"api") {
        2
    } else if repo_type == UrlRepoType::Model {
        0
    } else {
        1
    };
    let old_len = old.split('/').count();
    let named: Vec<String> = segments
        .get(skip..skip + old_len)?
        .iter()
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    if named.join("/") != old {
        return None;
    }
    let mut out: Vec<&str> = segments[..skip].to_vec();
    out.extend(new.split('/'));
    out.extend(&segments[skip + old_len..]);
    Some(format!("/{}", out.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_names_are_replaced_in_place() {
        let new = "google-bert/bert-base-uncased";
        assert_eq!(
            moved_path(
                "/api/models/bert-base-uncased/revision/main",
                UrlRepoType::Model,
                "bert-base-uncased",
                new
            )
            .unwrap(),
            "/api/models/google-bert/bert-base-uncased/revision/main"
        );
        assert_eq!(
            moved_path(
                "/bert-base-uncased/resolve/main/config.json",
                UrlRepoType::Model,
                "bert-base-uncased",
                new
            )
            .unwrap(),
            "/google-bert/bert-base-uncased/resolve/main/config.json"
        );
        assert_eq!(
            moved_path(
                "/datasets/Old/Data/resolve/refs%2Fpr%2F1/a%20b.csv",
                UrlRepoType::Dataset,
                "Old/Data",
                "new/data"
            )
            .unwrap(),
            "/datasets/new/data/resolve/refs%2Fpr%2F1/a%20b.csv"
        );
        assert!(moved_path("/api/models/x/y", UrlRepoType::Model, "a/b", new).is_none());
    }
}
