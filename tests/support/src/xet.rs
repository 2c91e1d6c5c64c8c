//! Xet storage for the stand-in (`../shared/docs/xet.md`): xet-core's reference CAS server
//! (`xet_client::cas_client::LocalServer`) runs in-process, filled with real xorbs and shards by
//! xet-core's own upload client (`xet_data::processing::FileUploadSession`), behind a proxy that
//! logs every request and can rewrite answers into hostile ones ([`XetFault`]).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use hub_standin::{Hub, RepoKind, StandIn, XetCas};
//! let cas = XetCas::start().await?;
//! let data = vec![7u8; 1 << 20];
//! let xet_hash = cas.upload(&data).await?;
//! let hub = Hub::new();
//! hub.repo(RepoKind::Model, "acme/tiny").xet_file("model.bin", data, &xet_hash).commit("main");
//! let server = StandIn::start(hub).await?;
//! server.attach_xet(&cas);
//! # Ok(()) }
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use xet_client::cas_client::{LocalServer, LocalServerConfig};
use xet_data::processing::configurations::TranslatorConfig;
use xet_data::processing::{FileUploadSession, Sha256Policy};
use xet_runtime::core::XetContext;

/// The access token the stand-in's token route hands out.
pub const XET_ACCESS_TOKEN: &str = "xet-standin-access-token";

/// Which Xet request a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XetRoute {
    /// `GET /api/{type}s/{repo}/xet-read-token/{rev}` on the Hub API.
    Token,
    /// `GET /v1/reconstructions/{hash}` on the CAS.
    ReconstructionV1,
    /// `GET /v2/reconstructions/{hash}` on the CAS.
    ReconstructionV2,
    /// A xorb range (`/v1/fetch_term`).
    Xorb,
    /// Anything else on the CAS.
    Other,
}

impl XetRoute {
    fn of_cas_path(path: &str) -> XetRoute {
        if path.starts_with("/v1/reconstructions/") {
            XetRoute::ReconstructionV1
        } else if path.starts_with("/v2/reconstructions/") {
            XetRoute::ReconstructionV2
        } else if path.starts_with("/v1/fetch_term") {
            XetRoute::Xorb
        } else {
            XetRoute::Other
        }
    }
}

/// A rewrite of a JSON answer.
pub type JsonRewrite = Arc<dyn Fn(&mut Value) + Send + Sync>;
/// A rewrite of a body.
pub type BodyRewrite = Arc<dyn Fn(Bytes) -> Bytes + Send + Sync>;

/// What goes wrong on the Xet path.
#[derive(Clone)]
pub enum XetFault {
    /// The route answers this status instead.
    Status(XetRoute, u16),
    /// The token route answers 200 with this body.
    TokenBody(String),
    /// The token route names this CAS URL.
    TokenCasUrl(String),
    /// The token route says the token expires this many seconds from now.
    TokenTtl(u64),
    /// Reconstruction answers (v1 and v2) are rewritten.
    Reconstruction(JsonRewrite),
    /// Xorb range bodies are rewritten.
    XorbBody(BodyRewrite),
    /// Xorb range answers wait this long before the body.
    XorbDelay(Duration),
    /// Xorb range answers send this many bytes of the body, then the connection breaks.
    XorbCut(usize),
}

impl std::fmt::Debug for XetFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            XetFault::Status(route, status) => write!(f, "Status({route:?}, {status})"),
            XetFault::TokenBody(body) => write!(f, "TokenBody({body:?})"),
            XetFault::TokenCasUrl(url) => write!(f, "TokenCasUrl({url:?})"),
            XetFault::TokenTtl(ttl) => write!(f, "TokenTtl({ttl})"),
            XetFault::Reconstruction(_) => f.write_str("Reconstruction(..)"),
            XetFault::XorbBody(_) => f.write_str("XorbBody(..)"),
            XetFault::XorbDelay(delay) => write!(f, "XorbDelay({delay:?})"),
            XetFault::XorbCut(bytes) => write!(f, "XorbCut({bytes})"),
        }
    }
}

impl XetFault {
    fn route(&self) -> XetRoute {
        match self {
            XetFault::Status(route, _) => *route,
            XetFault::TokenBody(_) | XetFault::TokenCasUrl(_) | XetFault::TokenTtl(_) => {
                XetRoute::Token
            }
            XetFault::Reconstruction(_) => XetRoute::ReconstructionV1,
            XetFault::XorbBody(_) | XetFault::XorbDelay(_) | XetFault::XorbCut(_) => XetRoute::Xorb,
        }
    }

    fn hits(&self, route: XetRoute) -> bool {
        match self {
            XetFault::Reconstruction(_) => {
                matches!(
                    route,
                    XetRoute::ReconstructionV1 | XetRoute::ReconstructionV2
                )
            }
            _ => self.route() == route,
        }
    }
}

/// Armed Xet faults, each with a number of remaining hits.
#[derive(Debug, Default)]
pub struct XetFaults {
    armed: Mutex<Vec<(XetFault, usize)>>,
    /// When the last access token the token route handed out expires (unix seconds; 0: none
    /// handed out yet). The CAS refuses reconstructions with 401 from then on, as the Hub's
    /// does, until a fresh token is asked for.
    token_exp: AtomicU64,
}

impl XetFaults {
    /// Arms `fault` for the next `times` matching requests (`usize::MAX`: forever).
    pub fn add(&self, fault: XetFault, times: usize) {
        self.lock().push((fault, times));
    }

    /// Disarms everything.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(XetFault, usize)>> {
        self.armed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the current access token has expired.
    fn token_expired(&self) -> bool {
        let exp = self.token_exp.load(Ordering::SeqCst);
        exp != 0 && crate::resolve::unix_now() >= exp
    }

    /// Takes one use of every fault that hits `route`.
    pub(crate) fn take(&self, route: XetRoute) -> Vec<XetFault> {
        let mut armed = self.lock();
        let mut taken = Vec::new();
        for (fault, left) in armed.iter_mut() {
            if *left > 0 && fault.hits(route) {
                if *left != usize::MAX {
                    *left -= 1;
                }
                taken.push(fault.clone());
            }
        }
        armed.retain(|(_, left)| *left > 0);
        taken
    }
}

/// One request the CAS proxy saw.
#[derive(Debug, Clone)]
pub struct CasRequest {
    /// What it was.
    pub route: XetRoute,
    /// Path and query.
    pub path: String,
    /// Its `Authorization` header, verbatim.
    pub authorization: Option<String>,
    /// Its `Range` header.
    pub range: Option<String>,
    /// The status answered.
    pub status: u16,
}

struct ProxyState {
    upstream: String,
    own_url: String,
    client: reqwest::Client,
    faults: Arc<XetFaults>,
    log: Mutex<Vec<CasRequest>>,
    xorb_bytes: AtomicU64,
}

/// xet-core's reference CAS server behind a fault-injecting proxy.
pub struct XetCas {
    ctx: XetContext,
    server_url: String,
    proxy: Arc<ProxyState>,
    upload_dir: tempfile::TempDir,
    _data_dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl XetCas {
    /// Starts the CAS (data in a temporary directory) and its proxy on loopback ports.
    pub async fn start() -> anyhow::Result<XetCas> {
        let ctx = XetContext::default()?;
        let data_dir = tempfile::tempdir()?;
        let upload_dir = tempfile::tempdir()?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let server_addr = listener.local_addr()?;
        let server = LocalServer::new(
            ctx.clone(),
            LocalServerConfig {
                data_directory: data_dir.path().to_path_buf(),
                host: server_addr.ip().to_string(),
                port: server_addr.port(),
                in_memory: false,
            },
        )
        .await?;
        let (shutdown, stopped) = oneshot::channel();
        let mut tasks = vec![tokio::spawn(async move {
            if let Err(error) = server.serve_until_stopped(listener, stopped).await {
                tracing::error!(%error, "reference CAS server stopped");
            }
        })];

        let proxy_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let proxy_addr: SocketAddr = proxy_listener.local_addr()?;
        let proxy = Arc::new(ProxyState {
            upstream: format!("http://{server_addr}"),
            own_url: format!("http://{proxy_addr}"),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            faults: Arc::default(),
            log: Mutex::default(),
            xorb_bytes: AtomicU64::new(0),
        });
        let router = Router::new()
            .fallback(proxy_entry)
            .with_state(proxy.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(error) = axum::serve(proxy_listener, router).await {
                tracing::error!(%error, "CAS proxy stopped");
            }
        }));
        Ok(XetCas {
            ctx,
            server_url: format!("http://{server_addr}"),
            proxy,
            upload_dir,
            _data_dir: data_dir,
            shutdown: Some(shutdown),
            tasks,
        })
    }

    /// The CAS URL clients are given (the proxy).
    pub fn url(&self) -> String {
        self.proxy.own_url.clone()
    }

    /// Uploads `data` with xet-core's client (chunked, deduplicated against every earlier
    /// upload to this CAS, packed into xorbs, registered in a shard) and returns its Xet hash.
    pub async fn upload(&self, data: &[u8]) -> anyhow::Result<String> {
        let session = self.session().await?;
        let (_id, mut cleaner) =
            session.start_clean(None, Some(data.len() as u64), Sha256Policy::Compute)?;
        cleaner.add_data(data).await?;
        let (info, _metrics) = cleaner.finish().await?;
        session.finalize().await?;
        Ok(info.hash().to_owned())
    }

    /// Uploads a file from disk (streamed) and returns its Xet hash.
    pub async fn upload_file(&self, path: &std::path::Path) -> anyhow::Result<String> {
        use tokio::io::AsyncReadExt;
        let session = self.session().await?;
        let size = std::fs::metadata(path)?.len();
        let (_id, mut cleaner) = session.start_clean(None, Some(size), Sha256Policy::Compute)?;
        let mut file = tokio::fs::File::open(path).await?;
        let mut buffer = vec![0u8; 8 << 20];
        loop {
            let n = file.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            cleaner.add_data(&buffer[..n]).await?;
        }
        let (info, _metrics) = cleaner.finish().await?;
        session.finalize().await?;
        Ok(info.hash().to_owned())
    }

    async fn session(&self) -> anyhow::Result<Arc<FileUploadSession>> {
        // One shard cache for every upload, so later uploads deduplicate against earlier ones
        // the way the Hub's clients do.
        let config = TranslatorConfig::test_server_config(
            &self.ctx,
            &self.server_url,
            self.upload_dir.path(),
        )?;
        Ok(FileUploadSession::new(Arc::new(config)).await?)
    }

    /// The reference server's own URL, behind no proxy: its xorb ranges stream straight from
    /// xet-core's server, but nothing is logged and no fault can be injected on the CAS (the
    /// token route's faults still apply). For benchmarks, where the proxy's buffering of each
    /// whole range would be measured as part of every client's time.
    pub fn direct_url(&self) -> String {
        self.server_url.clone()
    }

    /// Armed faults (shared with the stand-in's token route once attached).
    pub fn faults(&self) -> Arc<XetFaults> {
        self.proxy.faults.clone()
    }

    /// Arms `fault` for the next `times` matching requests.
    pub fn inject(&self, fault: XetFault, times: usize) {
        self.proxy.faults.add(fault, times);
    }

    /// Every request the proxy saw.
    pub fn requests(&self) -> Vec<CasRequest> {
        self.proxy
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Xorb bytes served so far.
    pub fn xorb_bytes(&self) -> u64 {
        self.proxy.xorb_bytes.load(Ordering::SeqCst)
    }

    /// Forgets the request log and the byte counter.
    pub fn reset_stats(&self) {
        self.proxy
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        self.proxy.xorb_bytes.store(0, Ordering::SeqCst);
    }
}

impl Drop for XetCas {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn plain(status: u16, text: &str) -> Response {
    let mut response = Response::new(Body::from(text.to_owned()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    response
}

async fn proxy_entry(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let route = XetRoute::of_cas_path(parts.uri.path());
    let header = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut record = CasRequest {
        route,
        path: path.clone(),
        authorization: header(header::AUTHORIZATION),
        range: header(header::RANGE),
        status: 0,
    };
    let response = forward(&state, route, parts, body, &path).await;
    record.status = response.status().as_u16();
    state
        .log
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(record);
    response
}

async fn forward(
    state: &ProxyState,
    route: XetRoute,
    parts: http::request::Parts,
    body: Body,
    path: &str,
) -> Response {
    let faults = state.faults.take(route);
    for fault in &faults {
        if let XetFault::Status(_, status) = fault {
            return plain(*status, "injected fault");
        }
    }
    if matches!(
        route,
        XetRoute::ReconstructionV1 | XetRoute::ReconstructionV2
    ) && state.faults.token_expired()
    {
        return plain(401, "the access token has expired");
    }
    let body = axum::body::to_bytes(body, 256 << 20)
        .await
        .unwrap_or_default();
    let mut upstream = state
        .client
        .request(parts.method, format!("{}{path}", state.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if name != header::HOST {
            upstream = upstream.header(name, value);
        }
    }
    let answer = match upstream.send().await {
        Ok(answer) => answer,
        Err(error) => return plain(502, &format!("CAS unreachable: {error}")),
    };
    let status = answer.status();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let mut cut = None;
    let mut bytes = match answer.bytes().await {
        Ok(bytes) => bytes,
        Err(error) => return plain(502, &format!("CAS answer broken: {error}")),
    };
    if status.is_success() {
        match route {
            XetRoute::ReconstructionV1 | XetRoute::ReconstructionV2 => {
                // Xorb URLs name the server; send clients through the proxy instead.
                let text = String::from_utf8_lossy(&bytes).replace(&state.upstream, &state.own_url);
                let mut json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                for fault in &faults {
                    if let XetFault::Reconstruction(rewrite) = fault {
                        rewrite(&mut json);
                    }
                }
                bytes = Bytes::from(serde_json::to_vec(&json).unwrap_or_default());
            }
            XetRoute::Xorb => {
                for fault in &faults {
                    match fault {
                        XetFault::XorbBody(rewrite) => bytes = rewrite(bytes),
                        XetFault::XorbDelay(delay) => tokio::time::sleep(*delay).await,
                        XetFault::XorbCut(at) => cut = Some(*at),
                        _ => {}
                    }
                }
                state
                    .xorb_bytes
                    .fetch_add(bytes.len() as u64, Ordering::SeqCst);
            }
            _ => {}
        }
    }
    let body = match cut {
        // The head, then a broken stream: the server aborts the connection mid-body.
        Some(at) => Body::from_stream(futures::stream::iter([
            Ok(bytes.slice(..at.min(bytes.len()))),
            Err(std::io::Error::other("injected fault: connection cut")),
        ])),
        None => Body::from(bytes),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response
}

/// What the stand-in's Hub API says about Xet once a CAS is attached.
#[derive(Debug, Clone)]
pub(crate) struct XetLink {
    pub(crate) cas_url: String,
    pub(crate) faults: Arc<XetFaults>,
}

impl XetLink {
    /// The token route's answer: `(status, headers, body)`.
    pub(crate) fn token_answer(&self) -> (u16, Vec<(&'static str, String)>, String) {
        let mut cas_url = self.cas_url.clone();
        let mut ttl = 3600;
        for fault in self.faults.take(XetRoute::Token) {
            match fault {
                XetFault::Status(_, status) => {
                    return (
                        status,
                        Vec::new(),
                        serde_json::json!({ "error": "Access to this resource is restricted" })
                            .to_string(),
                    );
                }
                XetFault::TokenBody(body) => return (200, Vec::new(), body),
                XetFault::TokenCasUrl(url) => cas_url = url,
                XetFault::TokenTtl(seconds) => ttl = seconds,
                _ => {}
            }
        }
        let exp = crate::resolve::unix_now() + ttl;
        self.faults.token_exp.store(exp, Ordering::SeqCst);
        let headers = vec![
            ("x-xet-cas-url", cas_url.clone()),
            ("x-xet-access-token", XET_ACCESS_TOKEN.to_owned()),
            ("x-xet-token-expiration", exp.to_string()),
        ];
        let body =
            serde_json::json!({ "accessToken": XET_ACCESS_TOKEN, "exp": exp, "casUrl": cas_url })
                .to_string();
        (200, headers, body)
    }
}

pub(crate) fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}
