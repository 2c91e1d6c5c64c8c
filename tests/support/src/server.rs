//! The two listeners (API and CDN) and the [`StandIn`] handle tests hold.
//!
//! Routing is done by hand in a fallback handler on the raw request path
//! (see [`crate::paths`]), because axum's router decodes `%2F` before
//! matching and would break `refs%2Fpr%2F1`.

use crate::context::{Incoming, Settings, Shared, incoming};
use crate::errors::HubError;
use crate::faults::{Fault, Faults, Route};
use crate::model::Hub;
use crate::paths::{self, Endpoint};
use crate::stats::{RequestRecord, Stats};
use crate::{api, cdn, renamed, resolve};
use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use http::Method;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

fn record(shared: &Shared, request: &Incoming, route: Route, response: &Response, cdn: bool) {
    let path = match &request.query {
        Some(query) => format!("{}?{query}", request.path),
        None => request.path.clone(),
    };
    shared.stats.record(RequestRecord {
        route,
        method: request.method.to_string(),
        path,
        range: request.header(http::header::RANGE).map(str::to_owned),
        authorization: request.headers.contains_key(http::header::AUTHORIZATION),
        status: response.status().as_u16(),
        cdn,
    });
}

/// Waits the configured per-request latency, if any.
async fn delay(shared: &Shared) {
    let latency = shared.settings().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
}

async fn api_entry(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let _in_flight = shared.stats.enter();
    delay(&shared).await;
    let request = incoming(request).await;
    let (endpoint, moved) = {
        let hub = shared.hub.read();
        let endpoint = paths::parse(&request.path, |kind, id| {
            let key = (kind, id.to_owned());
            hub.repos.contains_key(&key) || hub.renames.contains_key(&key)
        });
        let moved = match &endpoint {
            // A repo created under an old name since is answered itself.
            Endpoint::Api { kind, repo, .. } | Endpoint::Resolve { kind, repo, .. }
                if !hub.repos.contains_key(&(*kind, repo.clone())) =>
            {
                hub.renames
                    .get(&(*kind, repo.clone()))
                    .map(|new| (*kind, repo.clone(), new.clone()))
            }
            Endpoint::Api { .. } | Endpoint::Resolve { .. } => None,
            Endpoint::Unknown => None,
        };
        (endpoint, moved)
    };
    if let Some((kind, old, new)) = moved {
        let route = match (&endpoint, &request.method) {
            (Endpoint::Api { .. }, _) => Route::Api,
            (_, &Method::HEAD) => Route::ResolveHead,
            _ => Route::ResolveGet,
        };
        let response = renamed::redirect(&request, kind, &old, &new);
        record(&shared, &request, route, &response, false);
        return response;
    }
    let (route, response) = match endpoint {
        Endpoint::Api {
            kind,
            repo,
            op,
            rest,
        } => (
            Route::Api,
            api::handle(&shared, &request, kind, &repo, &op, &rest).await,
        ),
        Endpoint::Resolve { kind, repo, rest } => match request.method {
            Method::HEAD => (
                Route::ResolveHead,
                resolve::handle(&shared, &request, kind, &repo, &rest, true).await,
            ),
            Method::GET => (
                Route::ResolveGet,
                resolve::handle(&shared, &request, kind, &repo, &rest, false).await,
            ),
            _ => (Route::Other, HubError::not_found().into_response()),
        },
        Endpoint::Unknown => (Route::Other, HubError::not_found().into_response()),
    };
    record(&shared, &request, route, &response, false);
    response
}

async fn cdn_entry(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let _in_flight = shared.stats.enter();
    delay(&shared).await;
    let request = incoming(request).await;
    let route = match request.method {
        Method::GET => Route::CdnGet,
        Method::HEAD => Route::CdnHead,
        _ => Route::Other,
    };
    let response = cdn::handle(&shared, &request, route).await;
    record(&shared, &request, route, &response, true);
    response
}

/// Configures and starts a [`StandIn`].
#[must_use]
pub struct StandInBuilder {
    hub: Hub,
    settings: Settings,
    api_port: u16,
    cdn_port: u16,
}

impl StandInBuilder {
    /// Tree page size (default 1000).
    pub fn page_size(mut self, page_size: usize) -> Self {
        self.settings.page_size = page_size.max(1);
        self
    }

    /// Lifetime of signed CDN URLs (default one hour).
    pub fn cdn_ttl(mut self, ttl: Duration) -> Self {
        self.settings.cdn_ttl = ttl;
        self
    }

    /// Redirect LFS downloads to `{base}/{sha256}` (e.g. nginx) instead of the built-in CDN.
    pub fn cdn_base_override(mut self, base: impl Into<String>) -> Self {
        self.settings.cdn_base_override = Some(base.into().trim_end_matches('/').to_owned());
        self
    }

    /// Delay every request on both listeners by `latency` before answering (default none).
    pub fn latency(mut self, latency: Duration) -> Self {
        self.settings.latency = latency;
        self
    }

    /// Port of the API listener (default 0: any free port).
    pub fn api_port(mut self, port: u16) -> Self {
        self.api_port = port;
        self
    }

    /// Port of the CDN listener (default 0: any free port).
    pub fn cdn_port(mut self, port: u16) -> Self {
        self.cdn_port = port;
        self
    }

    /// Binds both listeners on 127.0.0.1 and starts serving.
    pub async fn start(self) -> std::io::Result<StandIn> {
        let api_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, self.api_port)).await?;
        let cdn_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, self.cdn_port)).await?;
        let api_addr = api_listener.local_addr()?;
        let cdn_addr = cdn_listener.local_addr()?;
        let seed = format!(
            "{:?}{api_addr}{cdn_addr}{}",
            std::time::SystemTime::now(),
            std::process::id()
        );
        let shared = Arc::new(Shared {
            hub: self.hub,
            faults: Arc::default(),
            stats: Arc::default(),
            settings: Mutex::new(self.settings),
            api_url: format!("http://{api_addr}"),
            cdn_url: format!("http://{cdn_addr}"),
            secret: crate::hash::sha256_hex(seed.as_bytes()),
            xet: Mutex::new(None),
        });
        let api = Router::new().fallback(api_entry).with_state(shared.clone());
        let cdn = Router::new().fallback(cdn_entry).with_state(shared.clone());
        let tasks = vec![
            tokio::spawn(async move {
                if let Err(error) = axum::serve(api_listener, api).await {
                    tracing::error!(%error, "hub stand-in API listener stopped");
                }
            }),
            tokio::spawn(async move {
                if let Err(error) = axum::serve(cdn_listener, cdn).await {
                    tracing::error!(%error, "hub stand-in CDN listener stopped");
                }
            }),
        ];
        Ok(StandIn {
            shared,
            api_addr,
            cdn_addr,
            tasks,
        })
    }
}

/// A running stand-in: the API on one port, the "CDN" on another.
///
/// Dropping it stops accepting connections.
pub struct StandIn {
    shared: Arc<Shared>,
    api_addr: SocketAddr,
    cdn_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl StandIn {
    /// Starts with default settings on free ports.
    pub async fn start(hub: Hub) -> std::io::Result<StandIn> {
        StandIn::builder(hub).start().await
    }

    /// Starts a configurable stand-in.
    pub fn builder(hub: Hub) -> StandInBuilder {
        StandInBuilder {
            hub,
            settings: Settings::default(),
            api_port: 0,
            cdn_port: 0,
        }
    }

    /// `http://127.0.0.1:PORT` of the API (what `HF_ENDPOINT` should be).
    pub fn url(&self) -> String {
        self.shared.api_url.clone()
    }

    /// `http://127.0.0.1:PORT` of the CDN listener.
    pub fn cdn_url(&self) -> String {
        self.shared.cdn_url.clone()
    }

    /// Address of the API listener.
    pub fn addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// Address of the CDN listener.
    pub fn cdn_addr(&self) -> SocketAddr {
        self.cdn_addr
    }

    /// The served hub; change it freely while running.
    pub fn hub(&self) -> &Hub {
        &self.shared.hub
    }

    /// Armed faults.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Shorthand for `faults().add(fault)`.
    pub fn inject(&self, fault: Fault) {
        self.shared.faults.add(fault);
    }

    /// Traffic counters and the request log.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// Current settings.
    pub fn settings(&self) -> Settings {
        self.shared.settings()
    }

    /// Changes settings while running.
    pub fn update_settings(&self, change: impl FnOnce(&mut Settings)) {
        change(
            &mut self
                .shared
                .settings
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
    }

    /// Advertises Xet for files added with [`crate::RepoBuilder::xet_file`]: `/resolve` sends
    /// `X-Xet-Hash` and the token route, which hands out `cas`'s URL; `cas`'s faults on the
    /// token route apply.
    pub fn attach_xet(&self, cas: &crate::XetCas) {
        self.attach_xet_url(cas.url(), cas.faults());
    }

    /// [`StandIn::attach_xet`] with an explicit CAS URL.
    pub fn attach_xet_url(&self, cas_url: String, faults: Arc<crate::XetFaults>) {
        *self
            .shared
            .xet
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(crate::xet::XetLink { cas_url, faults });
    }

    /// Stops advertising Xet.
    pub fn detach_xet(&self) {
        *self
            .shared
            .xet
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// Changes the tree page size.
    pub fn set_page_size(&self, page_size: usize) {
        self.update_settings(|settings| settings.page_size = page_size.max(1));
    }

    /// Changes the delay added to every request.
    pub fn set_latency(&self, latency: Duration) {
        self.update_settings(|settings| settings.latency = latency);
    }

    /// Changes the lifetime of newly signed CDN URLs.
    pub fn set_cdn_ttl(&self, ttl: Duration) {
        self.update_settings(|settings| settings.cdn_ttl = ttl);
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
