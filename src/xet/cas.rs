//! Talking to a Xet CAS (`../shared/docs/xet.md` §1-2): the read token from the Hub's
//! `xet-read-token` route, reconstructions (v2 when offered, v1 otherwise) and xorb ranges.
//!
//! Credentials stay apart: the Hub token goes only to the Hub (through [`HubClient`], which
//! attaches it on the Hub's own origin), the CAS gets only the access token it issued, and xorb
//! URLs (signed) get no `Authorization` at all. A CAS that answers 401 gets one fresh token and
//! nothing else.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use url::Url;

use super::reconstruction::{self, FetchRange, ReconstructionError, Term};
use crate::hub::client::redact;
use crate::hub::{HubClient, HubError, RepoId, RepoType};

/// Refresh the token when it has less than this left.
const REFRESH_MARGIN: u64 = 60;
/// Largest reconstruction answer read (a 1 TB file needs a few MB).
const MAX_RECONSTRUCTION_BYTES: usize = 256 << 20;

/// Why the CAS could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CasError {
    /// The Hub refused the token (401/403).
    #[error("{route} refused a Xet read token ({status})")]
    TokenDenied {
        /// The token route.
        route: String,
        /// 401 or 403.
        status: u16,
        /// Whether a Hub token was sent.
        had_token: bool,
    },
    /// The token route answered something that is not a token.
    #[error("{route} answered a malformed Xet token: {why}")]
    TokenMalformed {
        /// The token route.
        route: String,
        /// What was wrong.
        why: String,
    },
    /// The upstream has no token route (404): it does not serve Xet.
    #[error("{route} does not hand out Xet tokens")]
    NoXet {
        /// The token route.
        route: String,
    },
    /// The CAS refused the access token.
    #[error("the CAS at {cas} refused the Xet access token ({status})")]
    CasDenied {
        /// The CAS URL.
        cas: String,
        /// Its status.
        status: u16,
    },
    /// The CAS knows no such file.
    #[error("the CAS at {cas} has no file {xet_hash}")]
    UnknownFile {
        /// The CAS URL.
        cas: String,
        /// The Xet hash asked for.
        xet_hash: String,
    },
    /// The reconstruction was refused.
    #[error("the CAS at {cas} sent a bad reconstruction")]
    Reconstruction {
        /// The CAS URL.
        cas: String,
        /// What was wrong.
        #[source]
        source: ReconstructionError,
    },
    /// A xorb range came back with another length than asked.
    #[error("{url} answered {actual} bytes for a xorb range of {expected}")]
    RangeLength {
        /// The xorb URL (without query).
        url: String,
        /// Bytes asked for.
        expected: u64,
        /// Bytes received (counting stops one past the expectation).
        actual: u64,
    },
    /// A transient failure (network, 5xx, 429): worth retrying.
    #[error(transparent)]
    Transient(HubError),
    /// A permanent HTTP failure.
    #[error(transparent)]
    Http(HubError),
}

impl CasError {
    /// Whether trying again later may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, CasError::Transient(_))
    }

    /// The wait the server asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CasError::Transient(e) => e.retry_after(),
            _ => None,
        }
    }

    /// Whether the failure says the upstream (or its CAS) is unusable for Xet rather than that
    /// it answered something hostile: plain HTTP is then the fallback.
    pub fn falls_back(&self) -> bool {
        matches!(
            self,
            CasError::NoXet { .. }
                | CasError::Transient(_)
                | CasError::Http(_)
                | CasError::CasDenied { .. }
                | CasError::UnknownFile { .. }
        )
    }
}

#[derive(Debug, Deserialize)]
struct TokenBody {
    #[serde(rename = "accessToken")]
    access_token: String,
    exp: u64,
    #[serde(rename = "casUrl")]
    cas_url: String,
}

/// A CAS access token.
#[derive(Debug, Clone)]
struct Token {
    access: String,
    exp: u64,
    cas: Url,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(300)))
}

fn status_error(url: &Url, status: StatusCode, headers: &HeaderMap) -> CasError {
    let error = HubError::Status {
        url: redact(url),
        status: status.as_u16(),
        message: None,
        code: None,
        retry_after: retry_after(headers),
    };
    if error.is_transient() {
        CasError::Transient(error)
    } else {
        CasError::Http(error)
    }
}

fn network(url: &Url, source: reqwest::Error) -> CasError {
    let error = HubError::Network {
        url: redact(url),
        source,
    };
    if error.is_transient() {
        CasError::Transient(error)
    } else {
        CasError::Http(error)
    }
}

/// One file's connection to the CAS: its token (refreshed as needed) and an HTTP client that
/// never carries the Hub token.
#[derive(Debug)]
pub struct CasSession {
    hub: HubClient,
    http: reqwest::Client,
    route: Url,
    token: Mutex<Option<Token>>,
}

impl CasSession {
    /// A session for files of `repo` at `commit`.
    pub fn new(
        hub: &HubClient,
        kind: RepoType,
        repo: &RepoId,
        commit: &str,
    ) -> Result<Self, CasError> {
        let text = format!(
            "{}/api/{}/{repo}/xet-read-token/{commit}",
            hub.endpoint(),
            kind.api_segment()
        );
        let route = Url::parse(&text).map_err(|_| CasError::Http(HubError::Endpoint(text)))?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(15))
            .tcp_nodelay(true)
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| CasError::Http(HubError::Client(e)))?;
        Ok(CasSession {
            hub: hub.clone(),
            http,
            route,
            token: Mutex::new(None),
        })
    }

    /// The CAS URL of the current token, for messages.
    pub fn cas_url(&self) -> String {
        self.lock()
            .as_ref()
            .map_or_else(|| "the CAS".to_owned(), |t| redact(&t.cas))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Token>> {
        self.token.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn token(&self, force: bool) -> Result<Token, CasError> {
        if !force
            && let Some(token) = self.lock().clone()
            && token.exp > now() + REFRESH_MARGIN
        {
            return Ok(token);
        }
        let token = self.fetch_token().await?;
        *self.lock() = Some(token.clone());
        Ok(token)
    }

    async fn fetch_token(&self) -> Result<Token, CasError> {
        let route = redact(&self.route);
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        let response = self
            .hub
            .send(Method::GET, self.route.clone(), headers)
            .await
            .map_err(|e| {
                if e.is_transient() {
                    CasError::Transient(e)
                } else {
                    CasError::Http(e)
                }
            })?;
        let status = response.status();
        match status.as_u16() {
            401 | 403 => {
                return Err(CasError::TokenDenied {
                    route,
                    status: status.as_u16(),
                    had_token: self.hub.has_token(),
                });
            }
            404 | 501 => return Err(CasError::NoXet { route }),
            _ if !status.is_success() => {
                return Err(status_error(&self.route, status, response.headers()));
            }
            _ => {}
        }
        let header_text = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let from_headers = match (
            header_text("x-xet-access-token"),
            header_text("x-xet-token-expiration").and_then(|e| e.trim().parse::<u64>().ok()),
            header_text("x-xet-cas-url"),
        ) {
            (Some(access_token), Some(exp), Some(cas_url)) => Some(TokenBody {
                access_token,
                exp,
                cas_url,
            }),
            _ => None,
        };
        let body = response
            .bytes()
            .await
            .map_err(|e| network(&self.route, e))?;
        let malformed = |why: String| CasError::TokenMalformed {
            route: route.clone(),
            why,
        };
        let parsed = match serde_json::from_slice::<TokenBody>(&body) {
            Ok(parsed) => parsed,
            Err(error) => from_headers.ok_or_else(|| malformed(error.to_string()))?,
        };
        let cas = Url::parse(parsed.cas_url.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                malformed(format!("casUrl `{}` is not an http(s) URL", parsed.cas_url))
            })?;
        if parsed.access_token.is_empty() {
            return Err(malformed("the access token is empty".to_owned()));
        }
        Ok(Token {
            access: parsed.access_token,
            exp: parsed.exp,
            cas,
        })
    }

    /// The checked reconstruction of the file `xet_hash` of `size` bytes: v2, or v1 when the
    /// CAS does not offer v2.
    pub async fn reconstruction(&self, xet_hash: &str, size: u64) -> Result<Vec<Term>, CasError> {
        let mut refreshed = false;
        let mut version = 2;
        loop {
            let token = self.token(false).await?;
            let url = token
                .cas
                .join(&format!(
                    "{}/v{version}/reconstructions/{xet_hash}",
                    token.cas.path().trim_end_matches('/')
                ))
                .map_err(|_| CasError::Http(HubError::Endpoint(token.cas.to_string())))?;
            let response = self
                .http
                .get(url.clone())
                .bearer_auth(&token.access)
                .send()
                .await
                .map_err(|e| network(&url, e))?;
            let status = response.status();
            match status.as_u16() {
                401 if !refreshed => {
                    refreshed = true;
                    self.token(true).await?;
                    continue;
                }
                401 | 403 => {
                    return Err(CasError::CasDenied {
                        cas: redact(&token.cas),
                        status: status.as_u16(),
                    });
                }
                404 | 501 if version == 2 => {
                    version = 1;
                    continue;
                }
                404 => {
                    return Err(CasError::UnknownFile {
                        cas: redact(&token.cas),
                        xet_hash: xet_hash.to_owned(),
                    });
                }
                _ if !status.is_success() => {
                    return Err(status_error(&url, status, response.headers()));
                }
                _ => {}
            }
            let body = read_bounded(response, MAX_RECONSTRUCTION_BYTES as u64, &url).await?;
            let parsed = if version == 2 {
                reconstruction::parse_v2(&body, size)
            } else {
                reconstruction::parse_v1(&body, size)
            };
            return parsed.map_err(|source| CasError::Reconstruction {
                cas: redact(&token.cas),
                source,
            });
        }
    }

    /// Starts the GET of a xorb range (no `Authorization`: the URL is signed). The caller
    /// streams the body (see [`read_range`]).
    pub async fn start_range(&self, fetch: &FetchRange) -> Result<reqwest::Response, CasError> {
        let url = Url::parse(&fetch.url)
            .map_err(|_| CasError::Http(HubError::Endpoint(fetch.url.clone())))?;
        let response = self
            .http
            .get(url.clone())
            .header(
                header::RANGE,
                format!("bytes={}-{}", fetch.byte_start, fetch.byte_end),
            )
            .header(header::ACCEPT_ENCODING, "identity")
            .send()
            .await
            .map_err(|e| network(&url, e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(status_error(&url, status, response.headers()));
        }
        Ok(response)
    }
}

async fn read_bounded(
    mut response: reqwest::Response,
    most: u64,
    url: &Url,
) -> Result<Vec<u8>, CasError> {
    let mut body = Vec::new();
    while let Some(piece) = response.chunk().await.map_err(|e| network(url, e))? {
        body.extend_from_slice(&piece);
        if body.len() as u64 > most {
            return Err(CasError::RangeLength {
                url: redact(url),
                expected: most,
                actual: body.len() as u64,
            });
        }
    }
    Ok(body)
}

/// The URL of a fetch range without its query (for messages).
pub fn shown_url(fetch: &FetchRange) -> String {
    Url::parse(&fetch.url).map_or_else(|_| "a xorb URL".to_owned(), |u| redact(&u))
}
