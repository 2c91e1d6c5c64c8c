//! Who may use the mirror: optional access tokens for everything, admin rights for the
//! management API's changes.
//!
//! - **Access tokens** (`[serve] access_tokens` in config.toml). When the list is set, every
//!   request except `/healthz` must carry `Authorization: Bearer <token>` with one of them;
//!   others get 401. Clients send their `HF_TOKEN` as that header, so the list holds the tokens
//!   the operator hands out (or the members' own Hub tokens, which then also pass the upstream
//!   checks of gated repos). Entries may be given as `sha256:<hex>` so the config file need
//!   not hold the secrets themselves.
//! - **Admin** (`[serve] admin_tokens`). Requests that change state under `/v1` (submitting or
//!   cancelling jobs) need an admin token; when none are configured, only clients on the same
//!   machine (loopback) may make them. Reading `/v1` is open to whoever may use the mirror.
//!
//! - **Cross-site requests** (CSRF). A web page on another site can make a visitor's browser
//!   send simple requests to the mirror, without tokens but from the visitor's machine (which
//!   may be the loopback the admin rule trusts). Changes under `/v1` are therefore refused when
//!   the browser says the request is cross-site (`Sec-Fetch-Site: cross-site` or `same-site`)
//!   or its `Origin` is not the mirror's own, and a `POST` must carry a JSON content type,
//!   which no page can send to another origin without the mirror's consent (a CORS preflight
//!   it never grants). Command-line clients send neither header and JSON anyway.
//!
//! Tokens are compared by their SHA-256 digests, never logged.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::Mirror;
use super::errors::X_ERROR_MESSAGE;

/// Digests of accepted tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSet {
    digests: Vec<[u8; 32]>,
}

/// A token list entry that is neither a token nor `sha256:` followed by 64 hex digits.
#[derive(Debug, thiserror::Error)]
#[error(
    "token entry #{index} is not usable: give the token itself, or `sha256:` followed by the \
     64 hex digits of its SHA-256 (e.g. from `printf %s TOKEN | sha256sum`)"
)]
pub struct TokenEntryError {
    /// 1-based position in the list.
    pub index: usize,
}

impl TokenSet {
    /// Parse config entries: plain tokens or `sha256:<hex>`.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<TokenSet, TokenEntryError> {
        let mut digests = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let entry = entry.as_ref().trim();
            let bad = || TokenEntryError { index: i + 1 };
            let digest = match entry.strip_prefix("sha256:") {
                Some(hex_digest) => {
                    let bytes = hex::decode(hex_digest).map_err(|_| bad())?;
                    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| bad())?
                }
                None if !entry.is_empty() && !entry.contains(char::is_whitespace) => {
                    Sha256::digest(entry.as_bytes()).into()
                }
                None => return Err(bad()),
            };
            digests.push(digest);
        }
        Ok(TokenSet { digests })
    }

    /// No tokens configured.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `authorization` (the header's value) carries one of the tokens.
    pub fn admits(&self, authorization: Option<&str>) -> bool {
        let Some(token) = authorization.and_then(bearer) else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.digests.contains(&digest)
    }
}

/// The token of a `Bearer` authorization value.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The mirror's access rules.
#[derive(Debug, Clone, Default)]
pub struct AccessRules {
    /// When non-empty, only these tokens (and the admin tokens) may use the mirror.
    pub tokens: TokenSet,
    /// Tokens that may change state through `/v1`; empty: loopback clients only.
    pub admin_tokens: TokenSet,
}

impl AccessRules {
    /// May a request with this `Authorization` from `peer` use the mirror?
    fn may_use(&self, authorization: Option<&str>) -> bool {
        self.tokens.is_empty()
            || self.tokens.admits(authorization)
            || self.admin_tokens.admits(authorization)
    }

    /// Whether a request with these headers from `peer` may change state through `/v1` (what
    /// `GET /v1/session` answers; the guard applies the same rule).
    pub fn is_admin(&self, headers: &axum::http::HeaderMap, peer: Option<SocketAddr>) -> bool {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        self.may_administer(authorization, peer)
    }

    /// May it change state through the management API?
    fn may_administer(&self, authorization: Option<&str>, peer: Option<SocketAddr>) -> bool {
        if self.admin_tokens.is_empty() {
            peer.is_some_and(|p| p.ip().is_loopback())
        } else {
            self.admin_tokens.admits(authorization)
        }
    }
}

/// Middleware applying [`AccessRules`] before any handler runs.
pub async fn guard(
    State(mirror): State<Arc<Mirror>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let rules = &mirror.options.access;
    let path = request.uri().path();
    // Health checks, and the CAS API: its requests carry the mirror's own CAS token (checked
    // by the handler) or a signed URL instead of the user's token.
    if path == "/healthz"
        || path.starts_with("/v1/reconstructions/")
        || path.starts_with("/v2/reconstructions/")
        || path.starts_with("/xet/")
    {
        return next.run(request).await;
    }
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !rules.may_use(authorization) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "this mirror requires an access token: set HF_TOKEN to a token its operator gave you",
        );
    }
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
    if changes && (path == "/v1" || path.starts_with("/v1/")) {
        if let Some((status, why)) = cross_site(&request) {
            return refuse(status, why);
        }
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        if !rules.may_administer(authorization, peer) {
            let why = if rules.admin_tokens.is_empty() {
                "changes through /v1 are accepted only from this machine; set \
                 [serve] admin_tokens in the mirror's config to allow remote clients \
                 (they send the token in LARDER_DAEMON_TOKEN)"
            } else {
                "changes through /v1 need an admin token: set LARDER_DAEMON_TOKEN to one of the \
                 mirror's [serve] admin_tokens"
            };
            return refuse(StatusCode::FORBIDDEN, why);
        }
        if let Some((status, why)) = not_json(&request) {
            return refuse(status, why);
        }
    }
    next.run(request).await
}

/// Who made an admin request, for the audit log: the first digits of the SHA-256 of its token
/// (never the token), or the loopback client when no admin tokens are configured.
pub fn actor(headers: &axum::http::HeaderMap, peer: Option<SocketAddr>) -> String {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    match token {
        Some(token) => {
            let digest = Sha256::digest(token.as_bytes());
            format!("admin token sha256:{}", &hex::encode(digest)[..12])
        }
        None => format!(
            "local client {}",
            peer.map_or_else(|| "?".to_owned(), |p| p.ip().to_string())
        ),
    }
}

/// Why a state-changing `/v1` request looks forged by another site, if it does.
fn cross_site(request: &Request) -> Option<(StatusCode, &'static str)> {
    let headers = request.headers();
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    const FORGED: &str = "cross-site requests may not change this mirror's state";
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site"))
        && !matches!(site, "same-origin" | "none")
    {
        return Some((StatusCode::FORBIDDEN, FORGED));
    }
    if let Some(origin) = text(header::ORIGIN) {
        let origin_host = origin
            .split_once("://")
            .map_or(origin, |(_, rest)| rest)
            .trim_end_matches('/');
        let host = text(header::HOST).unwrap_or_default();
        if origin == "null" || !origin_host.eq_ignore_ascii_case(host) {
            return Some((StatusCode::FORBIDDEN, FORGED));
        }
    }
    None
}

/// A `POST` whose body is not declared JSON: refused, as no page can send JSON to another
/// origin without the mirror's consent (checked after the admin rule, so that a forged
/// request without a token is told 403 first).
fn not_json(request: &Request) -> Option<(StatusCode, &'static str)> {
    if request.method() != Method::POST {
        return None;
    }
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let essence = ct.split(';').next().unwrap_or_default().trim();
            essence.eq_ignore_ascii_case("application/json")
        });
    (!json).then_some((
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "send the request body as JSON (Content-Type: application/json)",
    ))
}

fn refuse(status: StatusCode, message: &'static str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        )],
        body,
    )
        .into_response();
    response
        .headers_mut()
        .insert(X_ERROR_MESSAGE.clone(), HeaderValue::from_static(message));
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"larder\""),
        );
    }
    // The access log counts it in `larder_errors_total`.
    response
        .extensions_mut()
        .insert(super::errors::ErrorKind::AccessDenied);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_plain_and_hashed() {
        let hashed = format!("sha256:{}", hex::encode(Sha256::digest(b"hf_second")));
        let set = TokenSet::parse(&["hf_first".to_owned(), hashed]).unwrap();
        assert!(set.admits(Some("Bearer hf_first")));
        assert!(set.admits(Some("bearer  hf_second ")));
        assert!(!set.admits(Some("Bearer hf_third")));
        assert!(!set.admits(Some("hf_first")));
        assert!(!set.admits(Some("Basic hf_first")));
        assert!(!set.admits(None));
        assert!(TokenSet::parse(&["sha256:abc"]).is_err());
        assert!(TokenSet::parse(&[""]).is_err());
        assert_eq!(TokenSet::parse(&["a b"]).unwrap_err().index, 1);
    }

    #[test]
    fn admin_defaults_to_loopback() {
        let rules = AccessRules::default();
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "10.0.0.7:5000".parse().unwrap();
        assert!(rules.may_use(None));
        assert!(rules.may_administer(None, Some(local)));
        assert!(!rules.may_administer(None, Some(remote)));
        let rules = AccessRules {
            tokens: TokenSet::parse(&["user"]).unwrap(),
            admin_tokens: TokenSet::parse(&["root"]).unwrap(),
        };
        assert!(!rules.may_use(None));
        assert!(rules.may_use(Some("Bearer user")));
        assert!(rules.may_use(Some("Bearer root")));
        assert!(!rules.may_administer(Some("Bearer user"), Some(local)));
        assert!(rules.may_administer(Some("Bearer root"), Some(remote)));
    }
}
