//! Errors of the Hub client, classified so retry loops know what is worth another try.

use std::time::Duration;

use super::types::{NameError, TreeEntryError};
use crate::failure::{Classify, FailureKind, Hint};

/// What went wrong talking to the Hub (or a mirror of it).
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The endpoint URL is not usable.
    #[error("invalid endpoint URL `{0}`")]
    Endpoint(String),
    /// Could not build the HTTP client.
    #[error("could not set up the HTTP client")]
    Client(#[source] reqwest::Error),
    /// A request failed before a status arrived, or a body broke off.
    #[error("request to {url} failed")]
    Network {
        /// The URL (without query, which may hold signatures).
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The repo does not exist, or is private and the token does not grant access.
    #[error("{kind} repo `{repo}` was not found on {endpoint}")]
    RepoNotFound {
        /// `model` or `dataset`.
        kind: &'static str,
        /// The repo id.
        repo: String,
        /// Where we asked.
        endpoint: String,
        /// The upstream's answer as sent.
        reply: Box<UpstreamReply>,
    },
    /// The repo is gated and the request was not authorised.
    #[error("{}", gated_message(repo, page, *authenticated))]
    Gated {
        /// The repo id.
        repo: String,
        /// The repo's page, where the licence is accepted.
        page: String,
        /// Whether a token was sent.
        authenticated: bool,
        /// The upstream's answer as sent.
        reply: Box<UpstreamReply>,
    },
    /// The revision does not exist.
    #[error("revision `{revision}` does not exist in `{repo}`")]
    RevisionNotFound {
        /// The repo id.
        repo: String,
        /// The revision asked for.
        revision: String,
        /// The upstream's answer as sent.
        reply: Box<UpstreamReply>,
    },
    /// The file does not exist at that revision.
    #[error("`{path}` does not exist in `{repo}` at that revision")]
    EntryNotFound {
        /// The repo id.
        repo: String,
        /// The file path.
        path: String,
        /// The upstream's answer as sent.
        reply: Box<UpstreamReply>,
    },
    /// The Hub disabled the repo.
    #[error("access to `{repo}` has been disabled by the Hub")]
    Disabled {
        /// The repo id.
        repo: String,
        /// The upstream's answer as sent.
        reply: Box<UpstreamReply>,
    },
    /// Any other unexpected status.
    #[error("{url} answered {status}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        /// The URL (without query).
        url: String,
        /// HTTP status.
        status: u16,
        /// `X-Error-Message` or the JSON `error`.
        message: Option<String>,
        /// `X-Error-Code`, when sent.
        code: Option<String>,
        /// `Retry-After`, when sent with 429/503.
        retry_after: Option<Duration>,
    },
    /// The upstream did not answer, or stopped sending, within the time allowed.
    #[error("{url} did not {what} within {} s", after.as_secs())]
    Timeout {
        /// The URL (without query).
        url: String,
        /// What it failed to do in time (`answer`, `send its answer`).
        what: &'static str,
        /// The limit that ran out.
        after: Duration,
    },
    /// The upstream's listing went on without end (a loop, empty pages, or more than we take).
    #[error("{url} sent an endless listing: {why}")]
    Listing {
        /// The URL (without query).
        url: String,
        /// What was wrong.
        why: String,
    },
    /// A JSON answer did not have the expected shape.
    #[error("{url} sent a malformed answer")]
    Json {
        /// The URL.
        url: String,
        /// Parser error.
        #[source]
        source: serde_json::Error,
    },
    /// A JSON answer exceeded the size we accept.
    #[error("{url} sent more than {limit} bytes of metadata; refusing")]
    TooLarge {
        /// The URL.
        url: String,
        /// Limit in bytes.
        limit: usize,
    },
    /// The upstream sent a tree entry that cannot be trusted (e.g. a path escaping the repo).
    #[error("upstream listing of `{repo}` is unsafe")]
    TreeEntry {
        /// The repo id.
        repo: String,
        /// What was wrong.
        #[source]
        source: TreeEntryError,
    },
    /// The repo info has no commit sha.
    #[error("upstream answered for `{repo}` without a valid commit sha")]
    MissingCommit {
        /// The repo id.
        repo: String,
    },
    /// Too many redirects, or a redirect without a usable Location.
    #[error("bad redirect from {url}: {why}")]
    Redirect {
        /// The URL.
        url: String,
        /// Why it was refused.
        why: &'static str,
    },
    /// A name from upstream failed validation.
    #[error(transparent)]
    Name(#[from] NameError),
}

impl Classify for HubError {
    fn failure_kind(&self) -> FailureKind {
        match self {
            HubError::RepoNotFound { .. }
            | HubError::RevisionNotFound { .. }
            | HubError::EntryNotFound { .. } => FailureKind::NotFound,
            HubError::Endpoint(_) => FailureKind::Invalid,
            HubError::Client(_) => FailureKind::Other,
            HubError::Network { .. }
            | HubError::Gated { .. }
            | HubError::Disabled { .. }
            | HubError::Status { .. }
            | HubError::Json { .. }
            | HubError::TooLarge { .. }
            | HubError::Timeout { .. }
            | HubError::Listing { .. }
            | HubError::TreeEntry { .. }
            | HubError::MissingCommit { .. }
            | HubError::Redirect { .. }
            | HubError::Name(_) => FailureKind::Upstream,
        }
    }
}

/// An upstream's error answer as it was sent (status, `X-Error-Code`, message), so that a
/// mirror can pass it on to its own clients verbatim (hub-protocol.md §9.8).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamReply {
    /// HTTP status.
    pub status: u16,
    /// `X-Error-Code`, when sent.
    pub code: Option<String>,
    /// `X-Error-Message`, else the JSON body's `error`.
    pub message: Option<String>,
}

fn gated_message(repo: &str, page: &str, authenticated: bool) -> String {
    if authenticated {
        format!("`{repo}` is gated ({page}) and your token has not been granted access")
    } else {
        format!("`{repo}` is gated ({page}) and no token was sent")
    }
}

/// What the user can do: the advice the CLI prints on a `hint:` line (the daemon keeps only
/// the error's text, which says what happened and where).
impl Hint for HubError {
    fn hint(&self) -> Option<String> {
        match self {
            HubError::Endpoint(_) => {
                Some("give a base URL such as https://huggingface.co".to_owned())
            }
            HubError::RepoNotFound { .. } => Some(
                "if it is private, set HF_TOKEN (or run `hf auth login`) with a token that can \
                 read it"
                    .to_owned(),
            ),
            HubError::Gated {
                page,
                authenticated: true,
                ..
            } => Some(format!(
                "accept the licence at {page} with the account that owns HF_TOKEN, then pull again"
            )),
            HubError::Gated { page, .. } => Some(format!(
                "accept its licence at {page}, then set HF_TOKEN (or run `hf auth login`) and \
                 pull again"
            )),
            HubError::RevisionNotFound { .. } => {
                Some("check the branch, tag or commit id".to_owned())
            }
            HubError::Network { .. } if self.is_unreachable() => self.unreachable_hint(),
            _ => None,
        }
    }
}

impl HubError {
    /// Whether another attempt may succeed (network faults, 408, 429, 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            HubError::Network { source, .. } => {
                source.is_timeout()
                    || source.is_connect()
                    || source.is_body()
                    || source.is_request()
                    || source.is_decode()
            }
            HubError::Status { status, .. } => matches!(status, 408 | 429 | 500..=599),
            HubError::Timeout { .. } => true,
            _ => false,
        }
    }

    /// Whether the endpoint could not be reached at all (connection refused, unknown host,
    /// connect timeout): retrying for long rarely helps.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, HubError::Network { source, .. } if source.is_connect())
    }

    /// For an unreachable endpoint: which one, and what to do.
    pub fn unreachable_hint(&self) -> Option<String> {
        let HubError::Network { url, .. } = self else {
            return None;
        };
        let origin = url::Url::parse(url).ok()?.origin().ascii_serialization();
        Some(format!(
            "{origin} could not be reached; check the network, or set HF_ENDPOINT to a \
             reachable Hub or mirror"
        ))
    }

    /// Whether the error is about access to the whole repo (gated, missing, disabled) rather
    /// than about one request.
    pub fn is_access_error(&self) -> bool {
        matches!(
            self,
            HubError::Gated { .. } | HubError::RepoNotFound { .. } | HubError::Disabled { .. }
        )
    }

    /// How long the server asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HubError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The upstream's own answer, when it refused the request for good (a 4xx other than 408
    /// and 429): what a mirror forwards to its client instead of inventing its own error.
    pub fn refusal(&self) -> Option<UpstreamReply> {
        let reply = match self {
            HubError::RepoNotFound { reply, .. }
            | HubError::Gated { reply, .. }
            | HubError::RevisionNotFound { reply, .. }
            | HubError::EntryNotFound { reply, .. }
            | HubError::Disabled { reply, .. } => (**reply).clone(),
            HubError::Status {
                status,
                message,
                code,
                ..
            } => UpstreamReply {
                status: *status,
                code: code.clone(),
                message: message.clone(),
            },
            _ => return None,
        };
        let definitive = (400..500).contains(&reply.status) && !matches!(reply.status, 408 | 429);
        definitive.then_some(reply)
    }

    /// The HTTP status, when the error carries one.
    pub fn status(&self) -> Option<u16> {
        match self {
            HubError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}
