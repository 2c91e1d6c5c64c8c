//! The mirror's error answers, shaped like the Hub's (hub-protocol.md §2.4, §9.8).
//!
//! Clients branch on `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`,
//! `GatedRepo`), read `X-Error-Message` and the JSON body's `error`, and need `X-Repo-Commit`
//! on `EntryNotFound` to write their `.no_exist` markers. Every variant here renders all of
//! that; nothing else in `serve/` builds error responses by hand.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::registry::CommitId;

/// What went wrong, for `larder_errors_total{kind}`: the error answers of the mirror (named
/// like the Hub's `X-Error-Code` where it has one) and failures that happen behind them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Unknown, unmirrored or hidden repo.
    RepoNotFound,
    /// Unknown revision.
    RevisionNotFound,
    /// No such path at the commit.
    EntryNotFound,
    /// Gated or private content refused.
    GatedRepo,
    /// Listed but not held, and not fetchable now (503).
    NotHeld,
    /// The licence policy refused (451).
    LicenceDenied,
    /// The upstream refused a cold miss; its status and code were passed on.
    UpstreamRefused,
    /// The upstream disabled the repo; the mirror refuses it too (403).
    RepoDisabled,
    /// No (valid) access token, or a `/v1` change without admin rights (401/403).
    AccessDenied,
    /// An upstream failure answered with 502.
    UpstreamError,
    /// A malformed request.
    BadRequest,
    /// No such endpoint.
    NotFound,
    /// A failure inside the mirror (500).
    InternalError,
    /// A pull-through lookup of a revision upstream failed (the store's answer stood).
    UpstreamLookupFailed,
    /// A pull-through file transfer failed for another reason than verification.
    UpstreamTransferFailed,
    /// Received content did not match its digest (pull-through or job); nothing was published.
    VerificationFailed,
}

impl ErrorKind {
    pub(crate) const ALL: [ErrorKind; 16] = [
        ErrorKind::RepoNotFound,
        ErrorKind::RevisionNotFound,
        ErrorKind::EntryNotFound,
        ErrorKind::GatedRepo,
        ErrorKind::NotHeld,
        ErrorKind::LicenceDenied,
        ErrorKind::UpstreamRefused,
        ErrorKind::RepoDisabled,
        ErrorKind::AccessDenied,
        ErrorKind::UpstreamError,
        ErrorKind::BadRequest,
        ErrorKind::NotFound,
        ErrorKind::InternalError,
        ErrorKind::UpstreamLookupFailed,
        ErrorKind::UpstreamTransferFailed,
        ErrorKind::VerificationFailed,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::RepoNotFound => "RepoNotFound",
            ErrorKind::RevisionNotFound => "RevisionNotFound",
            ErrorKind::EntryNotFound => "EntryNotFound",
            ErrorKind::GatedRepo => "GatedRepo",
            ErrorKind::NotHeld => "NotHeld",
            ErrorKind::LicenceDenied => "LicenceDenied",
            ErrorKind::UpstreamRefused => "UpstreamRefused",
            ErrorKind::RepoDisabled => "RepoDisabled",
            ErrorKind::AccessDenied => "AccessDenied",
            ErrorKind::UpstreamError => "UpstreamError",
            ErrorKind::BadRequest => "BadRequest",
            ErrorKind::NotFound => "NotFound",
            ErrorKind::InternalError => "InternalError",
            ErrorKind::UpstreamLookupFailed => "UpstreamLookupFailed",
            ErrorKind::UpstreamTransferFailed => "UpstreamTransferFailed",
            ErrorKind::VerificationFailed => "VerificationFailed",
        }
    }

    pub(crate) fn index(self) -> usize {
        ErrorKind::ALL
            .iter()
            .position(|k| *k == self)
            .unwrap_or_default()
    }
}

/// An error answer of the mirror.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Unknown repo, a type the mirror does not hold, or a private repo the client may not see.
    #[error("Repository not found")]
    RepoNotFound {
        /// Whether the request carried `Authorization` (the Hub answers 401 without, 404 with).
        authenticated: bool,
    },
    /// The revision is not known.
    #[error("Invalid rev id: {revision}")]
    RevisionNotFound {
        /// The revision asked for.
        revision: String,
    },
    /// The path does not exist at the commit.
    #[error("{path} does not exist on \"{revision}\"")]
    EntryNotFound {
        /// Path asked for.
        path: String,
        /// Revision as asked.
        revision: String,
        /// The commit it resolved to.
        commit: CommitId,
    },
    /// The repo is gated (or private) and the client's access was not confirmed upstream.
    #[error("{}", gated_message(repo, *authenticated))]
    Gated {
        /// The repo id.
        repo: String,
        /// Whether the request carried `Authorization`.
        authenticated: bool,
    },
    /// The file is listed but its content is not in the store and cannot be fetched now.
    #[error(
        "{path} at {commit} is listed but this mirror does not hold its content and cannot fetch \
         it ({why}); ask the mirror's operator to `larder pull` it"
    )]
    NotHeld {
        /// Path.
        path: String,
        /// Commit.
        commit: CommitId,
        /// Why it cannot be fetched now (offline, upstream down, ...).
        why: String,
    },
    /// The blob a xorb range is cut from is not readable now (damaged and quarantined, or
    /// unreadable); the client fetches the reconstruction again.
    #[error("xorb {xorb} cannot be served: {why}; fetch the file's reconstruction again")]
    XorbNotHeld {
        /// The xorb (hex).
        xorb: String,
        /// What happened to the blob it is cut from.
        why: String,
    },
    /// The mirror's licence policy denies serving this repo's files.
    #[error("this mirror's licence policy does not allow serving {repo}: {reason}")]
    LicenceDenied {
        /// The repo id.
        repo: String,
        /// The licence and the rule that denied it.
        reason: String,
    },
    /// The upstream refused a request the mirror could not answer from the store; its status,
    /// `X-Error-Code` and message are passed on verbatim.
    #[error("{}", message.as_deref().unwrap_or("the upstream refused the request"))]
    UpstreamRefused {
        /// The upstream's status (a 4xx).
        status: u16,
        /// Its `X-Error-Code`.
        code: Option<String>,
        /// Its `X-Error-Message` (or JSON `error`).
        message: Option<String>,
    },
    /// The upstream has disabled the repo; the mirror follows (403, as the Hub answers).
    #[error("{DISABLED_MESSAGE}")]
    Disabled,
    /// The upstream failed while the mirror needed it.
    #[error("the upstream failed: {0}")]
    Upstream(String),
    /// The upstream could not be asked (down, hanging, answering garbage) and the store holds
    /// nothing to answer with: 502, 503 or 504, never a made-up "not found".
    #[error("the upstream {endpoint} is unavailable: {why}")]
    UpstreamUnavailable {
        /// 502 (bad answer), 503 (refused, overloaded) or 504 (timed out).
        status: u16,
        /// The upstream's base URL.
        endpoint: String,
        /// What went wrong.
        why: String,
    },
    /// A CAS request without a valid read token from this mirror (401).
    #[error("{0}")]
    CasUnauthorized(String),
    /// A xorb URL that is forged or expired (403: Xet clients then ask for fresh URLs).
    #[error("{0}")]
    XorbUrlRefused(String),
    /// The repo lives under another name now (the upstream redirected the one asked for): the
    /// dispatcher answers with the Hub's redirect to it (`super::renamed`).
    #[error("this repo lives at {0} now")]
    Moved(String),
    /// A malformed request.
    #[error("{0}")]
    BadRequest(String),
    /// No such endpoint (also the answer to `xet-read-token`).
    #[error("Not Found")]
    NotFound,
    /// Something failed inside the mirror (details are logged, not sent).
    #[error("internal error")]
    Internal,
}

/// The Hub's message for a disabled repo, which clients match on (it has no error code).
pub const DISABLED_MESSAGE: &str = "Access to this resource is disabled.";

fn gated_message(repo: &str, authenticated: bool) -> String {
    if authenticated {
        format!(
            "Access to model {repo} is restricted and you are not in the authorized list \
             (or the upstream could not confirm your access)."
        )
    } else {
        format!(
            "Access to model {repo} is restricted. You must have access to it and be \
             authenticated to access it. Please log in."
        )
    }
}

impl ServeError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ServeError::RepoNotFound {
                authenticated: false,
            } => StatusCode::UNAUTHORIZED,
            ServeError::RepoNotFound {
                authenticated: true,
            } => StatusCode::NOT_FOUND,
            ServeError::RevisionNotFound { .. }
            | ServeError::EntryNotFound { .. }
            | ServeError::NotFound => StatusCode::NOT_FOUND,
            ServeError::Gated {
                authenticated: false,
                ..
            } => StatusCode::UNAUTHORIZED,
            ServeError::Gated {
                authenticated: true,
                ..
            } => StatusCode::FORBIDDEN,
            ServeError::NotHeld { .. } | ServeError::XorbNotHeld { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ServeError::UpstreamRefused { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            ServeError::Disabled => StatusCode::FORBIDDEN,
            ServeError::LicenceDenied { .. } => StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
            ServeError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ServeError::UpstreamUnavailable { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            ServeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServeError::CasUnauthorized(_) => StatusCode::UNAUTHORIZED,
            ServeError::XorbUrlRefused(_) => StatusCode::FORBIDDEN,
            ServeError::Moved(_) => StatusCode::TEMPORARY_REDIRECT,
            ServeError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `X-Error-Code`, for the codes the Hub defines.
    pub fn code(&self) -> Option<&str> {
        match self {
            ServeError::UpstreamRefused { code, .. } => code.as_deref(),
            ServeError::RepoNotFound { .. } => Some("RepoNotFound"),
            ServeError::RevisionNotFound { .. } => Some("RevisionNotFound"),
            ServeError::EntryNotFound { .. } => Some("EntryNotFound"),
            ServeError::Gated { .. } => Some("GatedRepo"),
            _ => None,
        }
    }

    /// What `larder_errors_total` counts this answer under.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ServeError::RepoNotFound { .. } => ErrorKind::RepoNotFound,
            ServeError::RevisionNotFound { .. } => ErrorKind::RevisionNotFound,
            ServeError::EntryNotFound { .. } => ErrorKind::EntryNotFound,
            ServeError::Gated { .. } => ErrorKind::GatedRepo,
            ServeError::NotHeld { .. } | ServeError::XorbNotHeld { .. } => ErrorKind::NotHeld,
            ServeError::LicenceDenied { .. } => ErrorKind::LicenceDenied,
            ServeError::UpstreamRefused { .. } => ErrorKind::UpstreamRefused,
            ServeError::Disabled => ErrorKind::RepoDisabled,
            ServeError::Upstream(_) | ServeError::UpstreamUnavailable { .. } => {
                ErrorKind::UpstreamError
            }
            ServeError::BadRequest(_) => ErrorKind::BadRequest,
            ServeError::CasUnauthorized(_) | ServeError::XorbUrlRefused(_) => {
                ErrorKind::AccessDenied
            }
            ServeError::NotFound | ServeError::Moved(_) => ErrorKind::NotFound,
            ServeError::Internal => ErrorKind::InternalError,
        }
    }

    /// The commit to put in `X-Repo-Commit`, when known.
    pub fn commit(&self) -> Option<&str> {
        match self {
            ServeError::EntryNotFound { commit, .. } | ServeError::NotHeld { commit, .. } => {
                Some(commit)
            }
            _ => None,
        }
    }
}

/// Marks a response as "this repo lives under another name" (the name); the dispatcher turns
/// it into the redirect (`super::renamed`), since only it knows the request path.
#[derive(Debug, Clone)]
pub struct RepoMoved(pub String);

/// `X-Repo-Commit`.
pub static X_REPO_COMMIT: HeaderName = HeaderName::from_static("x-repo-commit");
/// `X-Error-Code`.
pub static X_ERROR_CODE: HeaderName = HeaderName::from_static("x-error-code");
/// `X-Error-Message`.
pub static X_ERROR_MESSAGE: HeaderName = HeaderName::from_static("x-error-message");

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let body = serde_json::json!({ "error": message }).to_string();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        if let Some(code) = self.code()
            && let Ok(value) = HeaderValue::from_str(code)
        {
            headers.insert(X_ERROR_CODE.clone(), value);
        }
        // Header values must be visible ASCII; the JSON body keeps the exact text.
        let ascii: String = message
            .chars()
            .map(|c| {
                if c.is_ascii() && !c.is_ascii_control() {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        if let Ok(value) = HeaderValue::from_str(&ascii) {
            headers.insert(X_ERROR_MESSAGE.clone(), value);
        }
        if let Some(commit) = self.commit()
            && let Ok(value) = HeaderValue::from_str(commit)
        {
            headers.insert(X_REPO_COMMIT.clone(), value);
        }
        if matches!(
            self,
            ServeError::NotHeld { .. }
                | ServeError::XorbNotHeld { .. }
                | ServeError::Upstream(_)
                | ServeError::UpstreamUnavailable { .. }
        ) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        let mut response = (self.status(), headers, body).into_response();
        if let ServeError::Moved(to) = self {
            // Not an error: the dispatcher turns it into the redirect.
            response.extensions_mut().insert(RepoMoved(to));
            return response;
        }
        // The access log counts the error under its kind.
        response.extensions_mut().insert(self.kind());
        response
    }
}

/// Log an unexpected internal failure and turn it into [`ServeError::Internal`].
pub fn internal(what: &str, error: &dyn std::error::Error) -> ServeError {
    tracing::error!(error = %crate::fetch::transfer::error_chain(error), "{what}");
    ServeError::Internal
}
