//! Renamed repos: a request naming a repo's old id gets the Hub's relative `307` to the same
//! path under the id the repo lives under now, with no `ETag` (hub-protocol.md §1.6; the answer's
//! shape is the one recorded in huggingface_hub's cassette
//! `InferenceApiTest.test_simple_inference.yaml`, see [`crate::fixtures`]).

use crate::context::Incoming;
use crate::model::RepoKind;
use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

/// The redirect for `request`, which names `old` (a `kind` repo) where `new` lives now.
pub(crate) fn redirect(request: &Incoming, kind: RepoKind, old: &str, new: &str) -> Response {
    let segments: Vec<&str> = request
        .path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .collect();
    let skip = match segments.first() {
        Some(&"api") => 2,
        _ if kind == RepoKind::Model => 0,
        _ => 1,
    };
    let old_len = old.split('/').count();
    let mut path: Vec<&str> = segments[..skip.min(segments.len())].to_vec();
    path.extend(new.split('/'));
    path.extend(segments.iter().skip(skip + old_len));
    let mut location = format!("/{}", path.join("/"));
    if let Some(query) = &request.query {
        location.push('?');
        location.push_str(query);
    }
    let mut response = Response::new(Body::from(format!(
        "Temporary Redirect. Redirecting to {location}"
    )));
    *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
