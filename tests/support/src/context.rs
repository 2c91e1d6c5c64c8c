//! What every handler of the stand-in works with: the shared state ([`Shared`]: the hub, its
//! settings, faults and statistics), the request as read ([`Incoming`]) and small response
//! helpers. The listeners in [`crate::server`] route to the handlers; the handlers import this
//! module, never the server.

use crate::faults::Faults;
use crate::model::{Hub, TokenStatus};
use crate::stats::Stats;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, Method};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Tunables that tests may change while the server runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Tree entries per page (the Hub uses 1000; tests use e.g. 3).
    pub page_size: usize,
    /// How long signed CDN URLs stay valid.
    pub cdn_ttl: Duration,
    /// When set, LFS redirects go to `{base}/{sha256}` instead of the built-in CDN.
    pub cdn_base_override: Option<String>,
    /// Raw entries appended to the first page of every tree listing, as sent (a hostile
    /// upstream: huge sizes, unsafe or colliding names).
    pub tree_extra: Vec<serde_json::Value>,
    /// How tree listings paginate.
    pub pagination: Pagination,
    /// Added to every request on both listeners before it is answered (a WAN round trip).
    pub latency: Duration,
}

/// How the tree listing links its pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Pagination {
    /// `next` while entries remain, as the Hub does.
    #[default]
    Honest,
    /// After the last entry, empty pages that always link to another one.
    EndlessEmpty,
    /// The last page links back to the first.
    Loop,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            page_size: 1000,
            cdn_ttl: Duration::from_secs(3600),
            cdn_base_override: None,
            tree_extra: Vec::new(),
            pagination: Pagination::Honest,
            latency: Duration::ZERO,
        }
    }
}

/// State shared by both listeners.
pub(crate) struct Shared {
    pub(crate) hub: Hub,
    pub(crate) faults: Arc<Faults>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) settings: Mutex<Settings>,
    pub(crate) api_url: String,
    pub(crate) cdn_url: String,
    pub(crate) secret: String,
    /// The attached Xet CAS, if any.
    pub(crate) xet: Mutex<Option<crate::xet::XetLink>>,
}

impl Shared {
    pub(crate) fn settings(&self) -> Settings {
        self.settings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// A request, reduced to what the handlers need.
pub(crate) struct Incoming {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Incoming {
    /// The bearer token, if any.
    pub(crate) fn token(&self) -> Option<&str> {
        let value = self
            .headers
            .get(http::header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .trim();
        Some(
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .unwrap_or(value)
                .trim(),
        )
    }

    pub(crate) fn header(&self, name: http::header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Decoded query pairs, in order.
    pub(crate) fn query_pairs(&self) -> Vec<(String, String)> {
        self.query
            .as_deref()
            .map(|query| {
                url::form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn token_status(&self, hub: &crate::model::HubState, repo: &str) -> TokenStatus {
        hub.token_status(repo, self.token())
    }
}

pub(crate) async fn incoming(request: Request) -> Incoming {
    let (parts, body) = request.into_parts();
    let body = if parts.method == Method::POST {
        axum::body::to_bytes(body, 16 << 20)
            .await
            .unwrap_or_default()
    } else {
        Bytes::new()
    };
    Incoming {
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        method: parts.method,
        headers: parts.headers,
        body,
    }
}

/// Helper so handlers can return an empty body with headers.
pub(crate) fn empty(status: http::StatusCode, headers: HeaderMap) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}
