//! The "CDN" listener: `/cdn/{sha256}?expires=…&sig=…`, behaving like an S3
//! presigned URL.
//!
//! It lives on its own port so it is a different origin from the API, which
//! is what makes clients drop `Authorization` on the redirect. A request
//! that still carries `Authorization` gets 400 (S3 rejects two auth
//! mechanisms); expired or badly signed URLs get 403.

use crate::body::{BodyPlan, file_response, header_value};
use crate::context::{Incoming, Shared};
use crate::errors::HubError;
use crate::faults::{FaultContext, Route};
use crate::resolve::{signature, unix_now};
use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};

fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    response
}

fn expired() -> Response {
    s3_error(StatusCode::FORBIDDEN, "AccessDenied", "Request has expired")
}

/// Answers one CDN request.
pub(crate) async fn handle(shared: &Shared, request: &Incoming, route: Route) -> Response {
    if route == Route::Other {
        return s3_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The specified method is not allowed",
        );
    }
    let segments = crate::paths::segments(&request.path);
    let sha256 = match segments.as_slice() {
        [cdn, sha256] if cdn == "cdn" => sha256.to_ascii_lowercase(),
        _ => {
            return s3_error(
                StatusCode::NOT_FOUND,
                "NoSuchKey",
                "The specified key does not exist.",
            );
        }
    };
    if request.headers.contains_key(header::AUTHORIZATION) {
        return s3_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string \
             parameter or the Authorization header should be specified",
        );
    }
    let query = request.query_pairs();
    let get = |name: &str| {
        query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let Some(expires) = get("expires").and_then(|value| value.parse::<u64>().ok()) else {
        return s3_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Query-string authentication requires an expiry",
        );
    };
    if get("sig") != Some(signature(&shared.secret, &sha256, expires).as_str()) {
        return s3_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        );
    }
    if expires < unix_now() {
        return expired();
    }
    let (entry, paths) = {
        let hub = shared.hub.read();
        let Some(entry) = hub.blobs.get(&sha256).cloned() else {
            return s3_error(
                StatusCode::NOT_FOUND,
                "NoSuchKey",
                "The specified key does not exist.",
            );
        };
        let paths: Vec<String> = hub
            .blob_paths
            .get(&sha256)
            .map(|paths| paths.iter().cloned().collect())
            .unwrap_or_default();
        (entry, paths)
    };
    let context = FaultContext {
        route,
        paths: &paths,
        sha256: Some(&sha256),
    };
    if let Some(kind) = shared.faults.take_response_fault(&context) {
        return match HubError::hostile(&kind).await {
            Some(response) => response,
            None => expired(),
        };
    }
    let head = route == Route::CdnHead;
    let faults = if head {
        Default::default()
    } else {
        shared.faults.take_body_faults(&context)
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, header_value(&format!("\"{sha256}\"")));
    file_response(BodyPlan {
        entry: &entry,
        range: request.header(header::RANGE),
        if_range: request.header(header::IF_RANGE),
        head,
        faults,
        headers,
        count_paths: paths,
        count_sha256: Some(sha256),
        stats: shared.stats.clone(),
    })
    .await
}
