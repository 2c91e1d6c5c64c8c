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
pub mod served;
pub mod storage;
pub mod ui;
pub mod xet;
pub mod zero_copy;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};

use crate::Larder;
use crate::daemon::{Daemon, DaemonOptions};
use crate::registry::{CommitDetail, RepoKind};
use cache::{RepoItemKey, TtlCache};
use errors::{ServeError, internal};
use paths::{ApiAction, PathError, RevisionTail, Route, UrlRepoType};
use pull_through::PullThrough;

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
        xet: xet_on.then(xet::XetServe::default),
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

/// The mirror's router: the web page, the management API, health and metrics, one handler for
/// every Hub route, plus the access log.
pub fn router(mirror: Arc<Mirror>) -> Router {
    Router::new()
        .route("/healthz", axum::routing::get(metrics::healthz))
        .route("/metrics", axum::routing::get(metrics::metrics))
        .merge(admin::routes())
        .merge(actions::routes())
        .route("/v1/events", axum::routing::get(events::stream))
        .route("/v1/storage", axum::routing::get(storage::get))
        .route(
            "/-/repo/{kind}/{org}/{name}",
            axum::routing::get(repo_page::page),
        )
        .route(
            "/v1/repos/{kind}/{org}/{name}",
            axum::routing::get(repo_detail::get),
        )
        .merge(ui::routes())
        .route(
            "/v1/reconstructions/{hash}",
            axum::routing::get(xet::reconstruction_route),
        )
        .route(
            "/v2/reconstructions/{hash}",
            axum::routing::get(xet::reconstruction_v2_route),
        )
        .route(
            "/xet/xorbs/{xorb}/{blob}/{first}",
            axum::routing::get(xet::xorb_route),
        )
        .fallback(dispatch)
        .layer(axum::middleware::from_fn_with_state(
            mirror.clone(),
            access::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            mirror.clone(),
            access_log,
        ))
        .with_state(mirror)
}

async fn access_log(
    State(mirror): State<Arc<Mirror>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let method = request.method().clone();
    let uri = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let note = response
        .extensions()
        .get::<AccessNote>()
        .cloned()
        .unwrap_or_default();
    let bytes = if method == Method::HEAD {
        0
    } else {
        response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .or_else(|| axum::body::HttpBody::size_hint(response.body()).exact())
            .unwrap_or(0)
    };
    mirror
        .metrics
        .record(metrics::ServedKind::of_path(&uri), response.status(), bytes);
    if let Some(kind) = response.extensions().get::<errors::ErrorKind>() {
        mirror.metrics.error(*kind);
    }
    tracing::info!(
        target: "larder::access",
        client,
        %method,
        uri,
        repo = note.repo,
        revision = note.revision,
        path = note.path,
        bytes,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

async fn dispatch(State(mirror): State<Arc<Mirror>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let method = parts.method.clone();
    let route = match paths::parse(parts.uri.path()) {
        Ok(route) => route,
        Err(PathError::Encoding) => {
            return ServeError::BadRequest(PathError::Encoding.to_string()).into_response();
        }
        Err(PathError::NoRoute) => return ServeError::NotFound.into_response(),
    };
    let query = parts.uri.query().unwrap_or("").to_owned();
    let fallback_note = match &route {
        Route::Api { repo, action, .. } => AccessNote {
            repo: repo.clone(),
            revision: match action {
                ApiAction::Revision(t) | ApiAction::PathsInfo(t) => t.whole(),
                ApiAction::Tree(t) => t.likely(false).0,
                ApiAction::XetReadToken(t) => t.whole(),
                ApiAction::Info | ApiAction::XetWriteToken => String::new(),
            },
            path: String::new(),
        },
        Route::Resolve { repo, tail, .. } | Route::Raw { repo, tail, .. } => {
            let (revision, path) = tail.likely(true);
            AccessNote {
                repo: repo.clone(),
                revision,
                path,
            }
        }
    };
    let headers = parts.headers;
    let (moved_type, moved_repo) = renamed::route_repo(&route);
    let moved_repo = moved_repo.to_owned();
    let result = match (route, &method) {
        (
            Route::Raw {
                repo_type,
                repo,
                tail,
            },
            &Method::GET | &Method::HEAD,
        ) => {
            raw::handle(
                &mirror,
                repo_type,
                &repo,
                &tail,
                &headers,
                method == Method::HEAD,
            )
            .await
        }
        (
            Route::Resolve {
                repo_type,
                repo,
                tail,
            },
            &Method::GET | &Method::HEAD,
        ) => {
            resolve::handle(
                &mirror,
                repo_type,
                &repo,
                &tail,
                &headers,
                method == Method::HEAD,
            )
            .await
        }
        (
            Route::Api {
                repo_type,
                repo,
                action: ApiAction::XetReadToken(tail),
            },
            &Method::GET,
        ) => xet::read_token(&mirror, repo_type, &repo, &tail, &headers).await,
        (
            Route::Api {
                action: ApiAction::XetReadToken(_) | ApiAction::XetWriteToken,
                ..
            },
            _,
        ) => Err(ServeError::NotFound),
        (
            Route::Api {
                repo_type,
                repo,
                action: ApiAction::PathsInfo(tail),
            },
            &Method::POST,
        ) => match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(bytes) => {
                hub_api::paths_info(&mirror, repo_type, &repo, &tail, &headers, &bytes).await
            }
            Err(_) => Err(ServeError::BadRequest(
                "request body too large or unreadable".into(),
            )),
        },
        (
            Route::Api {
                repo_type,
                repo,
                action,
            },
            &Method::GET | &Method::HEAD,
        ) => match action {
            ApiAction::Info => {
                hub_api::info(&mirror, repo_type, &repo, None, &query, &headers).await
            }
            ApiAction::Revision(tail) => {
                hub_api::info(&mirror, repo_type, &repo, Some(&tail), &query, &headers).await
            }
            ApiAction::Tree(tail) => {
                hub_api::tree(&mirror, repo_type, &repo, &tail, &query, &headers).await
            }
            _ => Err(ServeError::NotFound),
        },
        _ => Err(ServeError::NotFound),
    };
    let response = result.unwrap_or_else(IntoResponse::into_response);
    let response =
        renamed::redirect_if_moved(&mirror, moved_type, &moved_repo, &parts.uri, response).await;
    if response.extensions().get::<AccessNote>().is_some() {
        response
    } else {
        noted(response, fallback_note)
    }
}

/// A request's repo after the checks every handler needs.
pub struct Target {
    kind: RepoKind,
    repo: String,
}

impl Mirror {
    /// Check the repo type and id.
    pub(crate) fn target(
        &self,
        repo_type: UrlRepoType,
        repo: &str,
        headers: &HeaderMap,
    ) -> Result<Target, ServeError> {
        let not_found = || ServeError::RepoNotFound {
            authenticated: authorization(headers).is_some(),
        };
        let kind = repo_type.kind().ok_or_else(not_found)?;
        crate::hub::RepoId::parse(repo).map_err(|_| not_found())?;
        Ok(Target {
            kind,
            repo: repo.to_owned(),
        })
    }

    /// The commit a revision names, from the registry (then a shared store's manifests, and,
    /// with pull-through, the upstream).
    pub(crate) async fn commit_for(
        &self,
        target: &Target,
        revision: &str,
        headers: &HeaderMap,
    ) -> Result<Option<String>, ServeError> {
        // Another node sharing the store may have recorded it: ask the store before the upstream.
        if self.larder.blobs.is_shared()
            && matches!(
                self.larder
                    .registry
                    .resolve(target.kind, &target.repo, revision)
                    .await,
                Ok(None)
            )
            && let Some(sha) = self.commit_in_store(target, revision).await
        {
            return Ok(Some(sha));
        }
        if let Some(pull) = &self.pull
            && let Some(sha) = pull
                .resolve(self, target.kind, &target.repo, revision, headers)
                .await?
        {
            return Ok(Some(sha));
        }
        self.larder
            .registry
            .resolve(target.kind, &target.repo, revision)
            .await
            .map_err(|e| internal("resolving a revision failed", &e))
    }

    /// The commit a revision names ([`Mirror::commit_for`]), or the error saying why there is
    /// none ([`Mirror::unknown_revision`]).
    pub(crate) async fn commit_named(
        &self,
        target: &Target,
        revision: &str,
        headers: &HeaderMap,
    ) -> Result<String, ServeError> {
        match self.commit_for(target, revision, headers).await? {
            Some(sha) => Ok(sha),
            None => Err(self.unknown_revision(target, revision, headers).await),
        }
    }

    /// The error for a revision that resolved to nothing: the repo or the revision is unknown.
    pub(crate) async fn unknown_revision(
        &self,
        target: &Target,
        revision: &str,
        headers: &HeaderMap,
    ) -> ServeError {
        if self.is_disabled(target) {
            return ServeError::Disabled;
        }
        match self
            .larder
            .registry
            .ref_history(target.kind, &target.repo)
            .await
        {
            Ok(_) => ServeError::RevisionNotFound {
                revision: revision.to_owned(),
            },
            Err(crate::registry::RegistryError::UnknownRepo { .. }) => ServeError::RepoNotFound {
                authenticated: authorization(headers).is_some(),
            },
            Err(e) => internal("reading the ref history failed", &e),
        }
    }

    /// Resolve the revision at the head of `tail`, trying each way to split it. Returns
    /// `(revision, rest, commit)`.
    pub(crate) async fn resolve_tail(
        &self,
        target: &Target,
        tail: &RevisionTail,
        need_path: bool,
        headers: &HeaderMap,
    ) -> Result<(String, String, String), ServeError> {
        let splits = tail.splits(need_path);
        // Local first for every split (cheap), then the upstream for the likely one only.
        for (revision, rest) in &splits {
            if let Some(sha) = self
                .larder
                .registry
                .resolve(target.kind, &target.repo, revision)
                .await
                .map_err(|e| internal("resolving a revision failed", &e))?
            {
                // A branch re-resolves upstream now and then; the local answer is the fallback.
                if self.pull.is_some()
                    && !crate::hub::is_commit_sha(revision)
                    && let Some(fresh) = self.commit_for(target, revision, headers).await?
                {
                    return Ok((revision.clone(), rest.clone(), fresh));
                }
                return Ok((revision.clone(), rest.clone(), sha));
            }
        }
        let (revision, rest) = tail.likely(need_path);
        if (self.pull.is_some() || self.larder.blobs.is_shared())
            && let Some(sha) = self.commit_for(target, &revision, headers).await?
        {
            return Ok((revision, rest, sha));
        }
        Err(self.unknown_revision(target, &revision, headers).await)
    }

    /// Whether the upstream has disabled the repo (known only with pull-through).
    pub(crate) fn is_disabled(&self, target: &Target) -> bool {
        self.pull
            .as_ref()
            .is_some_and(|pull| pull.is_disabled(target.kind, &target.repo))
    }

    /// Refuse a disabled repo's files and listings as the Hub does (403, no error code).
    pub(crate) fn refuse_disabled(&self, target: &Target) -> Result<(), ServeError> {
        if self.is_disabled(target) {
            Err(ServeError::Disabled)
        } else {
            Ok(())
        }
    }

    /// The commit `revision` names according to the shared store's manifests, recorded
    /// locally; `None` with the default store or when the store does not know it.
    pub(crate) async fn commit_in_store(&self, target: &Target, revision: &str) -> Option<String> {
        if !self.larder.blobs.is_shared() {
            return None;
        }
        let found = if crate::hub::is_commit_sha(revision) {
            crate::manifest::lookup_commit(&self.larder, target.kind, &target.repo, revision)
                .await
                .map(|found| found.then(|| revision.to_owned()))
        } else {
            crate::manifest::lookup_ref(&self.larder, target.kind, &target.repo, revision).await
        };
        match found {
            Ok(Some(sha)) => {
                tracing::info!(
                    repo = target.repo,
                    revision,
                    sha,
                    "revision found in the store"
                );
                self.forget(target.kind, &target.repo);
                Some(sha)
            }
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(
                    repo = target.repo, revision,
                    error = %crate::fetch::transfer::error_chain(&error),
                    "looking up a revision in the store failed"
                );
                None
            }
        }
    }

    /// A commit's detail, cached briefly.
    pub(crate) async fn detail(
        &self,
        target: &Target,
        sha: &str,
        headers: &HeaderMap,
    ) -> Result<Arc<CommitDetail>, ServeError> {
        let key = RepoItemKey::new(target.kind, &target.repo, sha);
        if let Some(detail) = self.details.get(&key) {
            return Ok(detail);
        }
        let found = self
            .larder
            .registry
            .commit_detail(target.kind, &target.repo, sha)
            .await
            .map_err(|e| internal("reading a commit failed", &e))?;
        let detail = match found {
            Some(detail) => Arc::new(detail),
            None => {
                return Err(ServeError::RevisionNotFound {
                    revision: sha.to_owned(),
                });
            }
        };
        let _ = headers;
        self.details.insert(key, detail.clone());
        Ok(detail)
    }

    /// Forget cached details of a repo (after pull-through recorded something new).
    /// Whether the repo is private as last seen (unknown repos and registry failures count as
    /// private, so nothing leaks).
    pub(crate) async fn is_private(&self, kind: RepoKind, repo: &str) -> bool {
        match self.larder.registry.list_repos().await {
            Ok(repos) => repos
                .iter()
                .any(|r| r.kind == kind && r.name == repo && r.private),
            Err(_) => true,
        }
    }

    pub(crate) fn forget(&self, kind: RepoKind, repo: &str) {
        self.details
            .forget(|key| key.kind == kind && key.repo == repo);
        self.upstream_info.forget(kind, repo);
    }

    /// May this request see the repo (`content`: its files' bytes, not only its metadata)?
    ///
    /// Public repos: always. Gated repos: metadata always (as on the Hub), content only with an
    /// `Authorization` the upstream accepted for this repo. Private repos: nothing without such
    /// an `Authorization`. Offline, nothing can be confirmed, so gated content and private repos
    /// are refused.
    pub(crate) async fn authorize(
        &self,
        target: &Target,
        detail: &CommitDetail,
        headers: &HeaderMap,
        content: bool,
    ) -> Result<(), ServeError> {
        if content {
            self.check_licence(target, detail).await?;
        }
        let gated = detail.gated.is_some();
        if !(detail.private || gated && content) {
            return Ok(());
        }
        let auth = authorization(headers);
        let refuse = |authenticated| {
            if detail.private {
                ServeError::RepoNotFound { authenticated }
            } else {
                ServeError::Gated {
                    repo: target.repo.clone(),
                    authenticated,
                }
            }
        };
        let Some(auth) = auth else {
            return Err(refuse(false));
        };
        match &self.pull {
            Some(pull)
                if pull
                    .check_access(target.kind, &target.repo, &detail.sha, auth)
                    .await =>
            {
                Ok(())
            }
            _ => Err(refuse(true)),
        }
    }

    /// Apply the licence policy to a commit whose files are about to be served. Verdicts are
    /// cached per commit for a minute (policy and audit-log acceptances change rarely).
    async fn check_licence(
        &self,
        target: &Target,
        detail: &CommitDetail,
    ) -> Result<(), ServeError> {
        let Some(policy) = &self.options.policy else {
            return Ok(());
        };
        let key = RepoItemKey::new(target.kind, &target.repo, &detail.sha);
        if let Some(denial) = self.licence_verdicts.get(&key) {
            return match denial {
                Some(reason) => Err(ServeError::LicenceDenied {
                    repo: target.repo.clone(),
                    reason: reason.clone(),
                }),
                None => Ok(()),
            };
        }
        let audited = crate::licence::audit(
            &self.larder,
            target.kind,
            &[(target.repo.clone(), Some(detail.sha.clone()))],
            policy,
        )
        .await;
        let denial = match audited {
            Ok(rows) => rows.first().and_then(|audited| {
                (audited.row.verdict == larder_licence::VerdictKind::Deny.as_str()).then(|| {
                    format!(
                        "licence `{}` ({})",
                        audited.row.licence,
                        audited.row.reasons.join("; ")
                    )
                })
            }),
            Err(error) => {
                tracing::warn!(repo = %target.repo, %error, "licence check failed; denying");
                Some("its licence could not be determined".to_owned())
            }
        };
        self.licence_verdicts.insert(key, denial.clone());
        match denial {
            Some(reason) => Err(ServeError::LicenceDenied {
                repo: target.repo.clone(),
                reason,
            }),
            None => Ok(()),
        }
    }

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
