//! The Hub client: repo info, the paginated tree listing and ranged file requests.
//!
//! Redirects are followed by hand so that the token is only ever sent to the endpoint's own
//! origin (signed CDN URLs get no `Authorization`), and so that the CDN location of a file can
//! be remembered and shared by all the connections fetching that file.

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use super::error::{HubError, UpstreamReply};
use super::info::{FetchedInfo, keep_upstream_info};
use super::redirect::{MAX_API_REDIRECTS, api_redirect_target, canonical_repo, is_api_redirect};
use super::retry::{RetryPolicy, retry};
use super::types::{
    RawTreeEntry, RepoFile, RepoId, RepoInfo, RepoType, Revision, check_tree_entry,
    finish_tree_files, validate_repo_path,
};

use crate::registry::CommitId;

/// Everything except RFC 3986 unreserved characters gets percent-encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// Largest JSON document we read from upstream (one tree page or repo info).
const MAX_JSON_BYTES: usize = 64 << 20;
/// Largest number of tree pages we follow (the Hub sends 1000 entries a page).
const MAX_TREE_PAGES: usize = 10_000;
/// Largest number of tree entries (files and directories) we accept for one commit.
const MAX_TREE_ENTRIES: usize = 2_000_000;
/// Empty pages in a row we tolerate before calling a listing endless.
const MAX_EMPTY_PAGES: usize = 3;
/// Most bytes of an error answer we read (for its message); the rest is dropped unread.
pub const MAX_ERROR_BODY: usize = 64 << 10;
/// The fields the Hub adds to tree and paths-info entries asked with `expand=true`.
pub const EXPANDED_FIELDS: [&str; 2] = ["lastCommit", "securityFileStatus"];
/// Largest expanded fields of one entry that are kept.
pub const MAX_EXPANDED_FIELDS_BYTES: usize = 64 << 10;
/// Most redirects we follow for one request.
const MAX_REDIRECTS: usize = 10;

/// Settings for [`HubClient::new`].
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Base URL, e.g. `https://huggingface.co`.
    pub endpoint: String,
    /// Bearer token sent to the endpoint's origin only.
    pub token: Option<String>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Longest silence on a metadata call (waiting for the headers or the next body bytes).
    pub stall_timeout: Duration,
    /// Longest one metadata exchange (request to the last byte of the answer) may take.
    pub metadata_timeout: Duration,
    /// Retry policy for metadata calls.
    pub retry: RetryPolicy,
    /// `User-Agent`.
    pub user_agent: String,
}

impl ClientSettings {
    /// Defaults for `endpoint`.
    pub fn new(endpoint: impl Into<String>) -> Self {
        ClientSettings {
            endpoint: endpoint.into(),
            token: None,
            connect_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(30),
            metadata_timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            user_agent: format!("larder/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// A client of one Hub endpoint.
#[derive(Debug, Clone)]
pub struct HubClient {
    http: reqwest::Client,
    endpoint: Url,
    token: Option<String>,
    retry: RetryPolicy,
    stall: Duration,
    deadline: Duration,
}

impl HubClient {
    /// Build a client.
    pub fn new(settings: ClientSettings) -> Result<Self, HubError> {
        let trimmed = settings.endpoint.trim_end_matches('/');
        let endpoint = Url::parse(&format!("{trimmed}/"))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| HubError::Endpoint(settings.endpoint.clone()))?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.connect_timeout)
            .user_agent(settings.user_agent)
            .tcp_nodelay(true)
            .pool_max_idle_per_host(64)
            .build()
            .map_err(HubError::Client)?;
        Ok(HubClient {
            http,
            endpoint,
            token: settings.token.filter(|t| !t.is_empty()),
            retry: settings.retry,
            stall: settings.stall_timeout,
            deadline: settings.metadata_timeout,
        })
    }

    /// The endpoint, without a trailing slash.
    pub fn endpoint(&self) -> String {
        self.endpoint.as_str().trim_end_matches('/').to_owned()
    }

    /// Whether a token is configured.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    fn join(&self, path: &str) -> Result<Url, HubError> {
        self.endpoint
            .join(path)
            .map_err(|_| HubError::Endpoint(format!("{}{path}", self.endpoint)))
    }

    fn same_origin(&self, url: &Url) -> bool {
        url.origin() == self.endpoint.origin()
    }

    /// `/api/{type}s/{repo}/revision/{rev}`: resolve a revision and read the card.
    pub async fn repo_info(
        &self,
        kind: RepoType,
        repo: &RepoId,
        revision: &Revision,
    ) -> Result<RepoInfo, HubError> {
        Ok(self.repo_info_fetched(kind, repo, revision).await?.info)
    }

    /// [`HubClient::repo_info`], also telling under which name the repo lives now (the Hub
    /// redirects renamed repos) and keeping the info JSON as sent ([`keep_upstream_info`]).
    /// `HEAD` as the revision names the default branch, as on the Hub.
    pub async fn repo_info_fetched(
        &self,
        kind: RepoType,
        repo: &RepoId,
        revision: &Revision,
    ) -> Result<FetchedInfo, HubError> {
        let url = self.join(&format!(
            "api/{}/{}/revision/{}",
            kind.api_segment(),
            repo,
            encode_component(revision.as_str())
        ))?;
        let (info, body, last): (RepoInfo, Vec<u8>, Url) = retry(&self.retry, || {
            self.metadata(&url, async {
                let response = self.send_metadata(Method::GET, &url).await?;
                let last = response.url().clone();
                let response = check_status(
                    response,
                    kind,
                    repo.as_str(),
                    Some(revision.as_str()),
                    None,
                    self,
                )
                .await?;
                let body = read_body(response, self.stall).await?;
                let info = serde_json::from_slice(&body).map_err(|source| HubError::Json {
                    url: redact(&last),
                    source,
                })?;
                Ok((info, body, last))
            })
        })
        .await?;
        let Some(commit) = info
            .sha
            .as_deref()
            .and_then(|sha| CommitId::parse(sha).ok())
        else {
            return Err(HubError::MissingCommit {
                repo: repo.to_string(),
            });
        };
        let canonical = if last == url {
            repo.clone()
        } else {
            let canonical = canonical_repo(&last, &self.endpoint).ok_or(HubError::Redirect {
                url: redact(&url),
                why: "redirected to a URL that names no valid repo",
            })?;
            tracing::info!(asked = %repo, now = %canonical, "the upstream redirected the repo");
            canonical
        };
        let upstream_json = keep_upstream_info(&body);
        if upstream_json.is_none() {
            tracing::warn!(
                repo = %canonical,
                bytes = body.len(),
                "the upstream's repo info is too large (or not an object) to keep; serving Larder's own"
            );
        }
        Ok(FetchedInfo {
            info,
            commit,
            canonical,
            upstream_json,
        })
    }

    /// The complete file list of a revision (a commit id, or a branch or tag name), following
    /// `Link: rel="next"` pages.
    pub async fn list_files(
        &self,
        kind: RepoType,
        repo: &RepoId,
        revision: &str,
    ) -> Result<Vec<RepoFile>, HubError> {
        let mut next = Some(self.join(&format!(
            "api/{}/{}/tree/{}?recursive=true&expand=false",
            kind.api_segment(),
            repo,
            encode_component(revision)
        ))?);
        let mut files = Vec::new();
        let mut bounds = ListingBounds::default();
        while let Some(url) = next.take() {
            bounds.page(&url)?;
            let (entries, link): (Vec<RawTreeEntry>, Option<Url>) = retry(&self.retry, || {
                self.metadata(&url, async {
                    let response = self.send_metadata(Method::GET, &url).await?;
                    let response =
                        check_status(response, kind, repo.as_str(), None, None, self).await?;
                    let link = next_link(response.headers(), response.url());
                    Ok((read_json(response, self.stall).await?, link))
                })
            })
            .await?;
            bounds.entries(&url, entries.len(), link.is_some())?;
            for raw in entries {
                if let Some(file) = check_tree_entry(raw).map_err(|source| HubError::TreeEntry {
                    repo: repo.to_string(),
                    source,
                })? {
                    files.push(file);
                }
            }
            next = link;
        }
        finish_tree_files(files).map_err(|source| HubError::TreeEntry {
            repo: repo.to_string(),
            source,
        })
    }

    /// `POST /api/{type}s/{repo}/paths-info/{revision}` with `expand=true`: the fields the
    /// upstream adds to the entries of `paths` ([`EXPANDED_FIELDS`]), by path, kept as sent.
    /// Paths it does not list are left out; an entry's fields over
    /// [`MAX_EXPANDED_FIELDS_BYTES`] are dropped.
    pub async fn expanded_fields(
        &self,
        kind: RepoType,
        repo: &RepoId,
        revision: &str,
        paths: &[String],
    ) -> Result<Vec<(String, String)>, HubError> {
        let url = self.join(&format!(
            "api/{}/{}/paths-info/{}",
            kind.api_segment(),
            repo,
            encode_component(revision)
        ))?;
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for path in paths {
                form.append_pair("paths", path);
            }
            form.append_pair("expand", "true");
            form.finish()
        };
        let entries: Vec<serde_json::Map<String, serde_json::Value>> = retry(&self.retry, || {
            self.metadata(&url, async {
                let mut headers = HeaderMap::new();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
                let mut request = self.http.post(url.clone()).headers(headers);
                if let Some(token) = &self.token
                    && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
                {
                    request = request.header(header::AUTHORIZATION, value);
                }
                let response = tokio::time::timeout(self.stall, request.body(body.clone()).send())
                    .await
                    .map_err(|_| HubError::Timeout {
                        url: redact(&url),
                        what: "answer",
                        after: self.stall,
                    })?
                    .map_err(|source| HubError::Network {
                        url: redact(&url),
                        source,
                    })?;
                let response =
                    check_status(response, kind, repo.as_str(), Some(revision), None, self).await?;
                read_json(response, self.stall).await
            })
        })
        .await?;
        Ok(expanded_fields_of(entries))
    }

    /// `/{prefix}{repo}/resolve/{revision}/{path}` for a file (the revision a commit id, or a
    /// branch or tag name).
    pub fn resolve_url(
        &self,
        kind: RepoType,
        repo: &RepoId,
        revision: &str,
        path: &str,
    ) -> Result<Url, HubError> {
        let encoded_path: Vec<String> = path.split('/').map(encode_component).collect();
        self.join(&format!(
            "{}{}/resolve/{}/{}",
            kind.url_prefix(),
            repo,
            encode_component(revision),
            encoded_path.join("/")
        ))
    }

    /// Run one metadata exchange under the overall deadline.
    async fn metadata<T>(
        &self,
        url: &Url,
        exchange: impl Future<Output = Result<T, HubError>>,
    ) -> Result<T, HubError> {
        tokio::time::timeout(self.deadline, exchange)
            .await
            .map_err(|_| HubError::Timeout {
                url: redact(url),
                what: "finish answering",
                after: self.deadline,
            })?
    }

    /// Send a metadata request, following the Hub's same-origin redirects (renamed repos, see
    /// [`super::redirect`]); each answer's headers must arrive within the stall timeout. The
    /// response's `url()` is the last one asked.
    async fn send_metadata(&self, method: Method, url: &Url) -> Result<Response, HubError> {
        let mut current = url.clone();
        for _ in 0..=MAX_API_REDIRECTS {
            let response = tokio::time::timeout(
                self.stall,
                self.send(method.clone(), current.clone(), HeaderMap::new()),
            )
            .await
            .map_err(|_| HubError::Timeout {
                url: redact(&current),
                what: "answer",
                after: self.stall,
            })??;
            if !is_api_redirect(response.status()) {
                return Ok(response);
            }
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok());
            current = api_redirect_target(&current, location, &self.endpoint).map_err(|why| {
                HubError::Redirect {
                    url: redact(&current),
                    why,
                }
            })?;
        }
        Err(HubError::Redirect {
            url: redact(url),
            why: "too many redirects",
        })
    }

    /// How long a metadata call may go without receiving anything.
    pub fn stall_timeout(&self) -> Duration {
        self.stall
    }

    /// Send one request, attaching the token only when `url` is on the endpoint's origin.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        mut headers: HeaderMap,
    ) -> Result<Response, HubError> {
        if let (Some(token), true) = (&self.token, self.same_origin(&url))
            && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
        {
            headers.insert(header::AUTHORIZATION, value);
        }
        self.http
            .request(method, url.clone())
            .headers(headers)
            .send()
            .await
            .map_err(|source| HubError::Network {
                url: redact(&url),
                source,
            })
    }

    /// GET `url` with `Range: bytes=start-end` (end inclusive), following redirects by hand.
    /// Returns the final response and the URL that produced it (a CDN location, typically),
    /// so later ranges can go there directly.
    pub async fn get_range(
        &self,
        url: Url,
        start: u64,
        end_inclusive: u64,
    ) -> Result<(Response, Url), HubError> {
        let mut url = url;
        for _ in 0..=MAX_REDIRECTS {
            let mut headers = HeaderMap::new();
            let range = format!("bytes={start}-{end_inclusive}");
            headers.insert(
                header::RANGE,
                HeaderValue::from_str(&range).map_err(|_| HubError::Redirect {
                    url: redact(&url),
                    why: "invalid range",
                })?,
            );
            headers.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
            let response = self.send(Method::GET, url.clone(), headers).await?;
            if response.status().is_redirection() {
                url = redirect_target(&response, &url)?;
                continue;
            }
            return Ok((response, url));
        }
        Err(HubError::Redirect {
            url: redact(&url),
            why: "too many redirects",
        })
    }
}

/// The [`EXPANDED_FIELDS`] of each entry of a paths-info answer, by path, as JSON text. An
/// entry without a string `path`, with a path no repo file can have ([`validate_repo_path`]), or
/// whose kept fields are over [`MAX_EXPANDED_FIELDS_BYTES`] is left out.
pub fn expanded_fields_of(
    entries: Vec<serde_json::Map<String, serde_json::Value>>,
) -> Vec<(String, String)> {
    entries
        .into_iter()
        .filter_map(|mut entry| {
            let path = entry.remove("path")?.as_str()?.to_owned();
            validate_repo_path(&path).ok()?;
            let mut kept = serde_json::Map::new();
            for field in EXPANDED_FIELDS {
                if let Some(value) = entry.remove(field) {
                    kept.insert(field.to_owned(), value);
                }
            }
            let text = serde_json::Value::Object(kept).to_string();
            (text.len() <= MAX_EXPANDED_FIELDS_BYTES).then_some((path, text))
        })
        .collect()
}

/// Percent-encode one path component (revision, path segment).
pub fn encode_component(raw: &str) -> String {
    utf8_percent_encode(raw, COMPONENT).to_string()
}

/// A URL fit for logs and errors: no query string (signed URLs carry credentials there).
pub fn redact(url: &Url) -> String {
    let mut clean = url.clone();
    clean.set_query(None);
    clean.set_fragment(None);
    let _ = clean.set_password(None);
    clean.to_string()
}

fn redirect_target(response: &Response, from: &Url) -> Result<Url, HubError> {
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(HubError::Redirect {
            url: redact(from),
            why: "redirect without a Location",
        })?;
    let target = from.join(location).map_err(|_| HubError::Redirect {
        url: redact(from),
        why: "unparsable Location",
    })?;
    if !matches!(target.scheme(), "http" | "https") {
        return Err(HubError::Redirect {
            url: redact(from),
            why: "redirect to a non-HTTP URL",
        });
    }
    if from.scheme() == "https" && target.scheme() == "http" {
        return Err(HubError::Redirect {
            url: redact(from),
            why: "redirect downgrades https to http",
        });
    }
    Ok(target)
}

/// The `rel="next"` target of a `Link` header, resolved against the page URL.
fn next_link(headers: &HeaderMap, base: &Url) -> Option<Url> {
    for value in headers.get_all(header::LINK) {
        let Ok(text) = value.to_str() else { continue };
        for part in text.split(',') {
            let mut pieces = part.split(';');
            let target = pieces.next()?.trim();
            let is_next = pieces.any(|p| {
                let p = p.trim();
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next
                && let Some(inner) = target.strip_prefix('<').and_then(|t| t.strip_suffix('>'))
            {
                return base.join(inner).ok();
            }
        }
    }
    None
}

/// Guards one paginated listing: a page cap, an entry cap, no page fetched twice and no run of
/// empty pages that still point further.
#[derive(Default)]
struct ListingBounds {
    seen: std::collections::HashSet<String>,
    entries: usize,
    empty_run: usize,
}

impl ListingBounds {
    fn page(&mut self, url: &Url) -> Result<(), HubError> {
        let refuse = |why: String| HubError::Listing {
            url: redact(url),
            why,
        };
        if self.seen.len() >= MAX_TREE_PAGES {
            return Err(refuse(format!("more than {MAX_TREE_PAGES} pages")));
        }
        if !self.seen.insert(url.to_string()) {
            return Err(refuse("a `next` link points to a page already read".into()));
        }
        Ok(())
    }

    fn entries(&mut self, url: &Url, count: usize, more: bool) -> Result<(), HubError> {
        let refuse = |why: String| HubError::Listing {
            url: redact(url),
            why,
        };
        self.entries = self.entries.saturating_add(count);
        if self.entries > MAX_TREE_ENTRIES {
            return Err(refuse(format!("more than {MAX_TREE_ENTRIES} entries")));
        }
        self.empty_run = if count == 0 { self.empty_run + 1 } else { 0 };
        if more && self.empty_run >= MAX_EMPTY_PAGES {
            return Err(refuse(format!(
                "{MAX_EMPTY_PAGES} empty pages in a row, each pointing to another"
            )));
        }
        Ok(())
    }
}

/// Read at most `cap` bytes of a body, each chunk arriving within `stall`. `Ok(None)`: the
/// body is longer than `cap` (the rest is left unread and the connection dropped).
pub async fn read_capped(
    mut response: Response,
    cap: usize,
    stall: Duration,
) -> Result<Option<Vec<u8>>, HubError> {
    let url = redact(response.url());
    if response
        .content_length()
        .is_some_and(|len| len > cap as u64)
    {
        return Ok(None);
    }
    let mut body = Vec::new();
    loop {
        let chunk = tokio::time::timeout(stall, response.chunk())
            .await
            .map_err(|_| HubError::Timeout {
                url: url.clone(),
                what: "send its answer",
                after: stall,
            })?
            .map_err(|source| HubError::Network {
                url: url.clone(),
                source,
            })?;
        let Some(chunk) = chunk else {
            return Ok(Some(body));
        };
        if body.len() + chunk.len() > cap {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    response: Response,
    stall: Duration,
) -> Result<T, HubError> {
    let url = redact(response.url());
    let body = read_body(response, stall).await?;
    serde_json::from_slice(&body).map_err(|source| HubError::Json { url, source })
}

/// A JSON answer's bytes, at most [`MAX_JSON_BYTES`] of them.
async fn read_body(response: Response, stall: Duration) -> Result<Vec<u8>, HubError> {
    let url = redact(response.url());
    read_capped(response, MAX_JSON_BYTES, stall)
        .await?
        .ok_or(HubError::TooLarge {
            url,
            limit: MAX_JSON_BYTES,
        })
}

/// Turn an error status into the matching [`HubError`]; pass successes through.
pub async fn check_status(
    response: Response,
    kind: RepoType,
    repo: &str,
    revision: Option<&str>,
    path: Option<&str>,
    client: &HubClient,
) -> Result<Response, HubError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let headers = response.headers().clone();
    let header_text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let code = header_text("x-error-code");
    let message = header_text("x-error-message");
    let retry_after = header_text("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let url = redact(response.url());
    // The body's `error` field, if it is small JSON; a longer or slower body is dropped unread
    // (closing the connection) rather than buffered.
    let read = read_capped(response, MAX_ERROR_BODY, client.stall);
    let body_message = match tokio::time::timeout(client.stall, read).await {
        Ok(Ok(Some(bytes))) => serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned)),
        _ => None,
    };
    let repo_name = repo.to_owned();
    let reply = Box::new(UpstreamReply {
        status: status.as_u16(),
        code: code.clone(),
        message: message.clone().or_else(|| body_message.clone()),
    });
    let error = match code.as_deref() {
        Some("GatedRepo") => HubError::Gated {
            page: format!("{}/{}{}", client.endpoint(), kind.url_prefix(), repo),
            repo: repo_name,
            authenticated: client.has_token(),
            reply,
        },
        Some("RepoNotFound") => HubError::RepoNotFound {
            kind: kind.as_str(),
            repo: repo_name,
            endpoint: client.endpoint(),
            reply,
        },
        Some("RevisionNotFound") => HubError::RevisionNotFound {
            repo: repo_name,
            revision: revision.unwrap_or_default().to_owned(),
            reply,
        },
        Some("EntryNotFound") => HubError::EntryNotFound {
            repo: repo_name,
            path: path.unwrap_or_default().to_owned(),
            reply,
        },
        _ if status == StatusCode::FORBIDDEN
            && message.as_deref() == Some("Access to this resource is disabled.") =>
        {
            HubError::Disabled {
                repo: repo_name,
                reply,
            }
        }
        _ if status == StatusCode::UNAUTHORIZED => HubError::RepoNotFound {
            kind: kind.as_str(),
            repo: repo_name,
            endpoint: client.endpoint(),
            reply,
        },
        _ => HubError::Status {
            url,
            status: status.as_u16(),
            message: message.or(body_message),
            code,
            retry_after,
        },
    };
    Err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_revisions_and_paths() {
        assert_eq!(encode_component("refs/pr/1"), "refs%2Fpr%2F1");
        assert_eq!(encode_component("a b#?+"), "a%20b%23%3F%2B");
        assert_eq!(encode_component("v1.0-x_y~"), "v1.0-x_y~");
    }

    #[test]
    fn parses_link_headers() {
        let base = Url::parse("http://h/api/models/a/b/tree/main").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::LINK,
            HeaderValue::from_static("<http://h/api/x?cursor=abc>; rel=\"next\""),
        );
        assert_eq!(
            next_link(&headers, &base).unwrap().as_str(),
            "http://h/api/x?cursor=abc"
        );
        let mut relative = HeaderMap::new();
        relative.insert(
            header::LINK,
            HeaderValue::from_static("</api/y?cursor=2>; rel=\"next\", <http://h/z>; rel=\"prev\""),
        );
        assert_eq!(
            next_link(&relative, &base).unwrap().as_str(),
            "http://h/api/y?cursor=2"
        );
        assert!(next_link(&HeaderMap::new(), &base).is_none());
    }

    #[test]
    fn endpoint_validation() {
        assert!(HubClient::new(ClientSettings::new("ftp://x")).is_err());
        assert!(HubClient::new(ClientSettings::new("not a url")).is_err());
        let client = HubClient::new(ClientSettings::new("http://127.0.0.1:1/")).unwrap();
        assert_eq!(client.endpoint(), "http://127.0.0.1:1");
        let repo = RepoId::parse("a/b").unwrap();
        assert_eq!(
            client
                .resolve_url(RepoType::Dataset, &repo, "refs/pr/1", "d i/r#.bin")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:1/datasets/a/b/resolve/refs%2Fpr%2F1/d%20i/r%23.bin"
        );
    }
}

/// Property tests: hostile paths-info answers and `Link` headers (see `crate::fuzzing`).
#[cfg(test)]
mod fuzz {
    use super::*;
    use crate::fuzzing::{any_text, hostile_text, stays_inside};
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    fn paths_info_entry() -> impl Strategy<Value = Value> {
        let path = prop_oneof![
            4 => "[a-c]{1,3}(/[a-c]{1,3}){0,2}".prop_map(Value::from),
            2 => hostile_text(6).prop_map(Value::from),
            1 => Just(json!(5)),
            1 => Just(Value::Null),
        ];
        let commit = prop_oneof![
            Just(json!({"id": "a".repeat(40), "title": "x", "date": "2024-01-01T00:00:00.000Z"})),
            any_text(8).prop_map(|t| json!({"title": t})),
            (0usize..(MAX_EXPANDED_FIELDS_BYTES + 100)).prop_map(|n| json!("x".repeat(n))),
            Just(json!([1, [2, [3]]])),
        ];
        let scan = prop_oneof![
            Just(json!({"status": "safe"})),
            Just(Value::Null),
            any_text(4).prop_map(Value::from)
        ];
        (
            path,
            proptest::option::of(commit),
            proptest::option::of(scan),
            any_text(3),
        )
            .prop_map(|(path, commit, scan, other)| {
                let mut entry =
                    json!({"path": path, "type": "file", "oid": "0".repeat(40), "size": 3});
                if let Some(commit) = commit {
                    entry["lastCommit"] = commit;
                }
                if let Some(scan) = scan {
                    entry["securityFileStatus"] = scan;
                }
                entry[other] = json!(1);
                entry
            })
    }

    proptest! {
        /// What is kept of a paths-info answer: valid repo paths, only the expanded fields, each
        /// entry's within its cap.
        #[test]
        fn paths_info_hostile_answers(entries in proptest::collection::vec(paths_info_entry(), 0..6)) {
            let body = serde_json::to_vec(&entries).unwrap();
            let parsed: Vec<Map<String, Value>> = serde_json::from_slice(&body).unwrap();
            for (path, text) in expanded_fields_of(parsed) {
                prop_assert!(validate_repo_path(&path).is_ok() && stays_inside(&path));
                prop_assert!(text.len() <= MAX_EXPANDED_FIELDS_BYTES);
                let kept: Map<String, Value> = serde_json::from_str(&text).unwrap();
                prop_assert!(kept.keys().all(|k| EXPANDED_FIELDS.contains(&k.as_str())));
            }
        }

        /// Arbitrary bytes as a paths-info answer or a `Link` header: never a panic.
        #[test]
        fn paths_info_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300), link in any_text(12)) {
            if let Ok(parsed) = serde_json::from_slice::<Vec<Map<String, Value>>>(&bytes) {
                for (path, _) in expanded_fields_of(parsed) {
                    prop_assert!(validate_repo_path(&path).is_ok());
                }
            }
            let base = Url::parse("https://hub.example/api/models/a/b/tree/main?recursive=true").unwrap();
            let mut headers = HeaderMap::new();
            for value in [format!("<{link}>; rel=\"next\""), link.clone(), String::from_utf8_lossy(&bytes).into_owned()] {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.append(header::LINK, value);
                }
            }
            let _ = next_link(&headers, &base);
        }
    }
}
