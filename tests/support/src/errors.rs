//! The Hub's error shapes: status, `X-Error-Code`, `X-Error-Message` and a
//! `{"error": "..."}` body (hub-protocol.md §2.4).

use crate::model::{Repo, RepoKind, TokenStatus};
use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode};

/// An error answer in the Hub's format.
#[derive(Debug)]
pub(crate) struct HubError {
    status: StatusCode,
    code: Option<&'static str>,
    message: String,
    body: String,
    commit: Option<String>,
}

impl HubError {
    fn new(status: StatusCode, code: Option<&'static str>, message: String) -> HubError {
        HubError {
            status,
            code,
            body: message.clone(),
            message,
            commit: None,
        }
    }

    /// Unknown or invisible repo: 401 for anonymous or unknown tokens, 404 when authenticated.
    pub(crate) fn repo_not_found(token: TokenStatus) -> HubError {
        let status = if token == TokenStatus::NotAccepted {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::UNAUTHORIZED
        };
        let mut error = HubError::new(status, Some("RepoNotFound"), "Repository not found".into());
        error.body = "Repository not found".into();
        error
    }

    pub(crate) fn revision_not_found(revision: &str) -> HubError {
        HubError::new(
            StatusCode::NOT_FOUND,
            Some("RevisionNotFound"),
            format!("Invalid rev id: {revision}"),
        )
    }

    pub(crate) fn entry_not_found(path: &str, revision: &str, commit: &str) -> HubError {
        let mut error = HubError::new(
            StatusCode::NOT_FOUND,
            Some("EntryNotFound"),
            format!("{path} does not exist on \"{revision}\""),
        );
        error.commit = Some(commit.to_owned());
        error
    }

    pub(crate) fn gated(kind: RepoKind, id: &str, token: TokenStatus) -> HubError {
        let noun = match kind {
            RepoKind::Model => "model",
            RepoKind::Dataset => "dataset",
            RepoKind::Space => "space",
        };
        if token == TokenStatus::Anonymous {
            HubError::new(
                StatusCode::UNAUTHORIZED,
                Some("GatedRepo"),
                format!(
                    "Access to {noun} {id} is restricted. You must have access to it and be authenticated to access it. Please log in."
                ),
            )
        } else {
            HubError::new(
                StatusCode::FORBIDDEN,
                Some("GatedRepo"),
                format!(
                    "Access to {noun} {id} is restricted and you are not in the authorized list. Visit https://huggingface.co/{id} to ask for access."
                ),
            )
        }
    }

    pub(crate) fn disabled() -> HubError {
        HubError::new(
            StatusCode::FORBIDDEN,
            None,
            "Access to this resource is disabled.".into(),
        )
    }

    pub(crate) fn not_found() -> HubError {
        HubError::new(StatusCode::NOT_FOUND, None, "Not Found".into())
    }

    pub(crate) fn bad_request(message: &str) -> HubError {
        HubError::new(StatusCode::BAD_REQUEST, None, message.to_owned())
    }

    pub(crate) fn internal(message: String) -> HubError {
        HubError::new(StatusCode::INTERNAL_SERVER_ERROR, None, message)
    }

    /// A status injected by a fault, e.g. 503 with `Retry-After`.
    pub(crate) fn injected(status: u16, retry_after: Option<u64>) -> Response {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let message = status
            .canonical_reason()
            .unwrap_or("Injected fault")
            .to_owned();
        let mut response = HubError::new(status, None, message).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }

    /// The response for a hostile (non-body) fault, or `None` for a kind the caller handles
    /// itself (CDN expiry).
    pub(crate) async fn hostile(kind: &crate::faults::FaultKind) -> Option<Response> {
        use crate::faults::FaultKind;
        match kind {
            FaultKind::Status {
                status,
                retry_after,
            } => Some(HubError::injected(*status, *retry_after)),
            FaultKind::Hang(duration) => {
                match duration {
                    Some(duration) => tokio::time::sleep(*duration).await,
                    None => std::future::pending::<()>().await,
                }
                Some(HubError::injected(504, None))
            }
            FaultKind::HugeErrorBody { status, bytes } => {
                let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
                let total = *bytes;
                let body = futures::stream::unfold(0u64, move |sent| {
                    let chunk = chunk.clone();
                    async move {
                        (sent < total).then(|| {
                            let take = chunk.len().min((total - sent) as usize);
                            (
                                Ok::<_, std::io::Error>(chunk.slice(..take)),
                                sent + take as u64,
                            )
                        })
                    }
                });
                let mut response = Response::new(Body::from_stream(body));
                *response.status_mut() =
                    StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                Some(response)
            }
            FaultKind::Garbage => {
                let mut response =
                    Response::new(Body::from("<html><body>502 Bad Gateway</body></html>"));
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html"),
                );
                Some(response)
            }
            _ => None,
        }
    }

    pub(crate) fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.body }).to_string();
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        if let Some(code) = self.code {
            headers.insert("x-error-code", HeaderValue::from_static(code));
        }
        if let Ok(message) = HeaderValue::from_str(&self.message) {
            headers.insert("x-error-message", message);
        }
        if let Some(commit) = self
            .commit
            .and_then(|commit| HeaderValue::from_str(&commit).ok())
        {
            headers.insert("x-repo-commit", commit);
        }
        response
    }
}

/// What a request may see of a repo.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Access {
    /// Disabled repos refuse this request.
    pub(crate) disabled_blocks: bool,
    /// Gated repos require an accepted token for this request.
    pub(crate) gate_blocks: bool,
}

/// Applies the Hub's visibility rules: private → RepoNotFound, disabled → 403, gated → GatedRepo.
pub(crate) fn check_access(
    repo: &Repo,
    token: TokenStatus,
    access: Access,
) -> Result<(), HubError> {
    if repo.private && token != TokenStatus::Accepted {
        return Err(HubError::repo_not_found(token));
    }
    if access.disabled_blocks && repo.disabled {
        return Err(HubError::disabled());
    }
    if access.gate_blocks && repo.gated.is_some() && token != TokenStatus::Accepted {
        return Err(HubError::gated(repo.kind, &repo.id, token));
    }
    Ok(())
}
