//! `larder serve`: a Hub-compatible mirror over the store and registry.
//!
//! Every request goes through one fallback handler that parses the *raw* path itself
//! ([`paths`]): axum's decoded path parameters would turn `refs%2Fpr%2F1` into three segments
//! and cannot express one-or-two-segment repo ids followed by a revision with slashes. The
//! handlers live in [`hub_api`] (repo info, tree, paths-info) and [`resolve`] (file metadata
//! and bytes, with Range); [`errors`] renders the Hub's error shapes; [`pull_through`] fetches
//! what the store lacks from an upstream, once, while clients stream it.
//!
//! Connections are Larder's own ([`conn`]): the router answers, and a held file's body leaves by
//! `sendfile` ([`body::Segments`], [`zero_copy`]).
//!
//! The mirror serves Xet itself ([`xet`]): LFS files are advertised with the Hub's Xet headers,
//! `xet-read-token` hands out the mirror's own CAS tokens, and the CAS read API is answered from
//! the store, so Xet clients stay on the mirror too. With `xet` off it emits no Xet headers and
//! answers `xet-read-token` with 404, so every client uses plain HTTP (hub-protocol.md §9). It
//! redirects only where the Hub does for API and download paths: an old name of a renamed repo
//! gets a relative `307` to the same path under the name now ([`renamed`]). [`raw`] serves git
//! content (LFS pointers), and [`info`] passes through the upstream's repo info around the
//! fields the mirror owns.

pub mod access;
pub mod actions;
pub mod admin;
pub mod api_error;
pub mod body;
pub mod cache;
pub mod conn;
pub mod errors;
pub mod events;
pub mod expand;
mod gate;
pub mod html;
pub mod http1;
pub mod hub_api;
pub mod info;
pub mod integrity;
pub mod limit;
pub mod lineage;
pub mod metrics;
pub mod paths;
pub mod pull_through;
pub mod range;
pub mod raw;
pub mod renamed;
pub mod repo_detail;
pub mod repo_page;
pub mod repos;
pub mod resolve;
mod revisions;
pub mod routes;
pub mod served;
pub mod storage;
pub mod ui;
pub mod xet;
pub mod zero_copy;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use axum::response::Response;

use crate::Larder;
use crate::daemon::{Daemon, DaemonOptions};
use crate::registry::{CommitDetail, RepoKind};
use cache::{RepoItemKey, TtlCache};
use pull_through::PullThrough;
pub use routes::router;

/// How long a commit's detail (tree, gate) is reused between requests. Trees never change;
/// what is held does, and a stale "not held" is re-checked against the registry.
const DETAIL_TTL: Duration = Duration::from_secs(30);
/// Most details cached at once.
const DETAIL_CACHE_MAX: usize = 256;

/// How long a commit's licence verdict is reused.
const LICENCE_VERDICT_TTL: Duration = Duration::from_secs(60);
/// Largest request body accepted (paths-info).
const MAX_BODY: usize = 8 << 20;

/// How to run the mirror.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The origin clients reach the mirror at, when behind a reverse proxy
    /// (used for absolute `Link` headers); default: `http://<Host header>`.
    pub public_url: Option<String>,
    /// Fetch what the store lacks from the Larder's upstream client; `false` = offline.
    pub pull_through: bool,
    /// Tree page size (the Hub's is 1000).
    pub page_size: usize,
    /// The job queue's workers; jobs run only with pull-through (an offline mirror refuses
    /// new jobs).
    pub jobs: DaemonOptions,
    /// How often the times commits were served are written to the registry.
    pub served_flush_every: Duration,
    /// Client connections open at once; more wait in the listen backlog (`None`: no limit).
    pub max_connections: Option<usize>,
    /// Licence policy applied to file content served (and so pulled through): a repo whose
    /// licence the policy denies (and that no `--accept-licence` in the audit log covers) gets
    /// 451 with the reason.
    pub policy: Option<Arc<larder_licence::Policy>>,
    /// Access tokens for the mirror and admin tokens for `/v1` changes.
    pub access: access::AccessRules,
    /// With a shared object store: answer a content `GET` with a `302` to a presigned URL of
    /// the blob (all Hub headers on the redirect) instead of streaming it through the mirror.
    pub redirect_to_store: bool,
    /// With a shared object store: re-read its manifests this often, to pick up revisions other
    /// nodes recorded (`None`: only on a miss).
    pub rescan_every: Option<Duration>,
    /// Serve Xet: advertise it, hand out CAS tokens, answer reconstructions and xorb ranges
    /// (`false`: hide Xet so that every client uses plain HTTP).
    pub xet: bool,
    /// The key that signs Xet tokens and xorb URLs, shared by the nodes behind one address
    /// (`[serve] xet_key_file`); `None`: a key of this run's own.
    pub xet_key: Option<xet::grant::XetKey>,
    /// Pull-through fetches files the upstream stores in Xet over its Xet storage (`[pull] xet`;
    /// `false`: always over plain HTTP).
    pub pull_xet: bool,
    /// How long clients may stay silent, or take over a request (slowloris clients).
    pub client_timeouts: conn::ClientTimeouts,
    /// Re-hash the store's blobs in the background at this many bytes per second (`None`:
    /// no scrub; `[serve] scrub_rate`, 16 MiB/s by default from the command line).
    pub scrub_rate: Option<u64>,
}

impl ServeOptions {
    /// Offline defaults on `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        ServeOptions {
            addr,
            public_url: None,
            pull_through: false,
            page_size: 1000,
            policy: None,
            jobs: DaemonOptions::default(),
            served_flush_every: Duration::from_secs(5),
            max_connections: None,
            access: access::AccessRules::default(),
            redirect_to_store: false,
            rescan_every: None,
            xet: true,
            xet_key: None,
            pull_xet: true,
            client_timeouts: conn::ClientTimeouts::default(),
            scrub_rate: None,
        }
    }
}

/// Shared state of the mirror.
pub struct Mirror {
    larder: Larder,
    options: ServeOptions,
    local_addr: SocketAddr,
    /// Commit details by commit, briefly.
    details: TtlCache<RepoItemKey, Arc<CommitDetail>>,
    /// The upstream's kept info by commit, briefly.
    upstream_info: info::UpstreamInfoCache,
    pull: Option<PullThrough>,
    /// The job queue, when online.
    daemon: Option<Daemon>,
    /// Request and byte counters for `/metrics`.
    metrics: Arc<metrics::Metrics>,
    /// Licence verdicts per commit (`Some(reason)` = denied), with when they were computed.
    licence_verdicts: TtlCache<RepoItemKey, Option<String>>,
    /// Licence verdicts shown on the web page and `/v1/repos`.
    verdicts: repos::Verdicts,
    /// Commits served since the last write of their served times.
    served: Arc<served::ServedLog>,
    /// Xet tokens, layouts and hashes, when the mirror serves Xet (`[serve] xet`).
    xet: Option<xet::XetServe>,
    /// Live updates for `/v1/events`.
    events: events::Events,
    /// Bytes served vs fetched over time, for the console's storage chart.
    traffic: storage::Traffic,
    /// Which held blobs' files are known good, and what the scrub found.
    integrity: Arc<integrity::Integrity>,
}

/// What the access log records about a request, set by handlers on the response.
#[derive(Debug, Clone, Default)]
pub struct AccessNote {
    /// `org/name`.
    pub repo: String,
    /// The revision as asked.
    pub revision: String,
    /// The file path.
    pub path: String,
}

/// A running mirror.
pub struct RunningMirror {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    daemon: Option<Daemon>,
    mirror: Arc<Mirror>,
    registry: crate::registry::Registry,
    rescan: Option<tokio::task::JoinHandle<()>>,
}

impl RunningMirror {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop the job workers (running jobs are re-queued at the next start), stop accepting,
    /// finish in-flight requests, and wait.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(rescan) = self.rescan.take() {
            rescan.abort();
        }
        if let Some(daemon) = self.daemon.take() {
            daemon.stop().await;
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let result = match (&mut self.task).await {
            Ok(result) => result,
            Err(join) => Err(std::io::Error::other(join)),
        };
        closing(&self.mirror, &self.registry).await;
        result
    }
}

/// What a stopping mirror writes down: the served log and the last traffic sample.
async fn closing(mirror: &Mirror, registry: &crate::registry::Registry) {
    mirror.served.flush(registry).await;
    storage::record_now(mirror).await;
}

/// Bind and start the mirror in the background.
pub async fn start(larder: Larder, options: ServeOptions) -> std::io::Result<RunningMirror> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let registry = larder.registry.clone();
    let rescan = options
        .rescan_every
        .map(|every| crate::manifest::spawn_rescan(larder.clone(), every));
    let (addr, daemon, mirror, fut) = bind(larder, options, async {
        let _ = rx.await;
    })
    .await?;
    let task = tokio::spawn(fut);
    Ok(RunningMirror {
        addr,
        shutdown: Some(tx),
        task,
        daemon,
        mirror,
        registry,
        rescan,
    })
}

/// Bind and serve until `shutdown` resolves.
pub async fn serve(
    larder: Larder,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let registry = larder.registry.clone();
    let rescan = options
        .rescan_every
        .map(|every| crate::manifest::spawn_rescan(larder.clone(), every));
    let (addr, daemon, mirror, fut) = bind(larder, options, shutdown).await?;
    tracing::info!(%addr, "serving");
    let result = fut.await;
    if let Some(rescan) = rescan {
        rescan.abort();
    }
    if let Some(daemon) = daemon {
        daemon.stop().await;
    }
    closing(&mirror, &registry).await;
    result
}

async fn bind(
    larder: Larder,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(
    SocketAddr,
    Option<Daemon>,
    Arc<Mirror>,
    impl Future<Output = std::io::Result<()>> + Send + 'static,
)> {
    match limit::raise_fd_limit() {
        Ok((soft, _)) => tracing::info!(open_files = soft, "file-descriptor limit"),
        Err(error) => tracing::warn!(%error, "could not raise the file-descriptor limit"),
    }
    let listener = limit::listen(options.addr)?;
    let local_addr = listener.local_addr()?;
    let metrics = Arc::new(metrics::Metrics::default());
    let pull = options
        .pull_through
        .then(|| PullThrough::new(larder.clone(), metrics.clone()));
    let daemon = if options.pull_through {
        Some(
            Daemon::start(larder.clone(), options.jobs.clone())
                .await
                .map_err(std::io::Error::other)?,
        )
    } else {
        None
    };
    let served = Arc::new(served::ServedLog::default());
    served::ServedLog::spawn_flusher(
        served.clone(),
        larder.registry.clone(),
        options.served_flush_every,
    );
    // Xorb ranges are sent from local blob files; a mirror over a shared object store serves
    // plain HTTP only (for now).
    let xet_on = options.xet && !larder.blobs.is_shared();
    let xet_key = options.xet_key;
    if options.xet && larder.blobs.is_shared() {
        tracing::info!("Xet is not served from a shared object store; clients use plain HTTP");
    }
    let mirror = Arc::new(Mirror {
        larder,
        options,
        served: served.clone(),
        local_addr,
        details: TtlCache::new(DETAIL_TTL, DETAIL_CACHE_MAX),
        upstream_info: info::UpstreamInfoCache::default(),
        pull,
        daemon: daemon.clone(),
        metrics,
        licence_verdicts: TtlCache::new(LICENCE_VERDICT_TTL, DETAIL_CACHE_MAX),
        verdicts: repos::Verdicts::default(),
        xet: xet_on.then(|| xet::XetServe::new(xet_key)),
        events: events::Events::default(),
        traffic: storage::Traffic::default(),
        integrity: Arc::default(),
    });
    events::spawn_watcher(Arc::downgrade(&mirror));
    storage::spawn_sampler(Arc::downgrade(&mirror));
    if let Some(rate) = mirror.options.scrub_rate
        && !mirror.larder.blobs.is_shared()
    {
        integrity::spawn_scrub(Arc::downgrade(&mirror), rate);
    }
    if mirror.xet.is_some() && !mirror.larder.blobs.is_shared() {
        xet::backfill::spawn(Arc::downgrade(&mirror));
    }
    let slots = limit::slots(mirror.options.max_connections);
    let closing = mirror.events.closing();
    let shutdown = async move {
        shutdown.await;
        closing.cancel();
    };
    let timeouts = mirror.options.client_timeouts;
    let fut = conn::run(listener, router(mirror.clone()), slots, timeouts, shutdown);
    Ok((local_addr, daemon, mirror, fut))
}

/// A request's repo after the checks every handler needs.
pub struct Target {
    kind: RepoKind,
    repo: String,
}

impl Mirror {
    /// The origin for absolute links: `--public-url`, else the request's `Host`.
    pub(crate) fn origin(&self, headers: &HeaderMap) -> String {
        if let Some(url) = &self.options.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
            Some(host) if !host.is_empty() => format!("http://{host}"),
            _ => format!("http://{}", self.local_addr),
        }
    }
}

/// The request's `Authorization` value, if any.
pub(crate) fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
}

/// Attach the access-log note to a response.
pub(crate) fn noted(mut response: Response, note: AccessNote) -> Response {
    response.extensions_mut().insert(note);
    response
}

/// An empty body.
pub(crate) fn empty() -> Body {
    Body::empty()
}
