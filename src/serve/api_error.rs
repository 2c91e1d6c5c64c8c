//! The error answer of the management API under `/v1`: `{"error": "..."}` with a status (and a
//! `"hint"` when the error suggests what to do), and
//! how the library's typed errors map onto statuses (bad input 400, not held 404, the mirror
//! offline 409, anything else 500 with the cause in the log only).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::daemon::DaemonError;
use crate::failure::Hint;
use crate::manage::ManageError;

/// An error answer: `{"error": "...", "hint": "..."}` with a status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    hint: Option<String>,
}

impl ApiError {
    /// An answer with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            hint: None,
        }
    }

    /// 400 with the error's text.
    pub fn bad_request(error: &dyn std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, error.to_string())
    }

    /// 500; the cause goes to the log, not to the client.
    pub fn internal(what: &str, error: &(dyn std::error::Error + 'static)) -> ApiError {
        tracing::error!(
            error = %crate::fetch::transfer::error_chain(error),
            "{what} failed"
        );
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }

    /// A job-queue failure (500).
    pub fn daemon(error: &DaemonError) -> ApiError {
        ApiError::internal("job queue operation", error)
    }

    /// An administrative verb's failure: 400, 404 or 500.
    pub fn manage(what: &str, error: ManageError) -> ApiError {
        let answer = if error.is_invalid() {
            ApiError::bad_request(&error)
        } else if error.is_not_found() {
            ApiError::new(StatusCode::NOT_FOUND, error.to_string())
        } else {
            return ApiError::internal(what, &error);
        };
        ApiError {
            hint: error.hint(),
            ..answer
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.hint {
            Some(hint) => json!({ "error": self.message, "hint": hint }),
            None => json!({ "error": self.message }),
        };
        (self.status, axum::Json(body)).into_response()
    }
}
