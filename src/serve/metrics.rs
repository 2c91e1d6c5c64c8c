//! `GET /metrics` (Prometheus text exposition, version 0.0.4) and `GET /healthz`.
//!
//! Counters live in [`Metrics`] as atomics: the access log counts every request (bytes served,
//! status class, the error kind a [`ServeError`](super::errors::ServeError) carries), `/resolve`
//! counts cache hits and misses, pull-through counts the bytes it receives, its transfers in
//! flight and its failures; the daemon counts what its jobs receive. Gauges that the registry
//! knows (jobs by state, store size) are read at scrape time.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Mirror;
use super::errors::{ErrorKind, internal};
use crate::registry::RepoKind;

/// What a request's bytes are counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServedKind {
    /// Model repo routes.
    Model,
    /// Dataset repo routes.
    Dataset,
    /// The management API, the web page, metrics and health checks.
    Other,
}

impl ServedKind {
    const ALL: [ServedKind; 3] = [ServedKind::Model, ServedKind::Dataset, ServedKind::Other];

    fn label(self) -> &'static str {
        match self {
            ServedKind::Model => "model",
            ServedKind::Dataset => "dataset",
            ServedKind::Other => "other",
        }
    }

    /// Classify a request path.
    pub fn of_path(path: &str) -> ServedKind {
        if path.starts_with("/datasets/") || path.starts_with("/api/datasets/") {
            ServedKind::Dataset
        } else if path.starts_with("/v1/")
            || path == "/"
            || path.starts_with("/-/")
            || path == "/metrics"
            || path == "/healthz"
            || path.starts_with("/spaces/")
            || path.starts_with("/api/spaces/")
        {
            ServedKind::Other
        } else {
            ServedKind::Model
        }
    }
}

/// Counters of the mirror since it started.
#[derive(Debug, Default)]
pub struct Metrics {
    bytes: [AtomicU64; 3],
    /// Requests by status class, 1xx..5xx.
    requests: [AtomicU64; 5],
    /// Bytes pull-through received from the upstream, by repo type.
    upstream_bytes: [AtomicU64; 2],
    /// File requests answered from the store, by repo type.
    hits: [AtomicU64; 2],
    /// File requests whose content had to come from the upstream, by repo type.
    misses: [AtomicU64; 2],
    /// By [`ErrorKind`].
    errors: [AtomicU64; ErrorKind::ALL.len()],
    /// Pull-through transfers in flight.
    pull_through_active: AtomicI64,
    /// Xet reconstructions answered.
    xet_reconstructions: AtomicU64,
    /// Xorb bytes sent (the Xet path).
    xet_bytes: AtomicU64,
    /// File bytes sent by `/resolve` (the plain HTTP path).
    http_file_bytes: AtomicU64,
    /// File bytes pull-through over Xet copied from held blobs instead of fetching them.
    pull_through_reused: AtomicU64,
}

impl Metrics {
    /// Count one answered request.
    pub fn record(&self, kind: ServedKind, status: StatusCode, bytes: u64) {
        let index = ServedKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(ServedKind::ALL.len() - 1);
        self.bytes[index].fetch_add(bytes, Ordering::Relaxed);
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.requests[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Count an error.
    pub fn error(&self, kind: ErrorKind) {
        self.errors[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Count a file request answered from the store (`hit`) or not.
    pub fn lookup(&self, kind: RepoKind, hit: bool) {
        let counters = if hit { &self.hits } else { &self.misses };
        counters[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Count bytes pull-through received from the upstream.
    pub fn upstream_bytes(&self, kind: RepoKind, bytes: u64) {
        self.upstream_bytes[kind.index()].fetch_add(bytes, Ordering::Relaxed);
    }

    /// Count a Xet reconstruction answered.
    pub fn xet_reconstruction(&self) {
        self.xet_reconstructions.fetch_add(1, Ordering::Relaxed);
    }

    /// Count xorb bytes sent.
    pub fn xet_bytes(&self, bytes: u64) {
        self.xet_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Count file bytes a pull-through over Xet copied from held blobs.
    pub fn pull_through_reused(&self, bytes: u64) {
        self.pull_through_reused.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The transport counters, with `job_reused_bytes` from the job queue.
    pub fn transports(&self, job_reused_bytes: u64) -> super::repos::Transports {
        super::repos::Transports {
            reconstructions: load(&self.xet_reconstructions),
            xet_bytes: load(&self.xet_bytes),
            http_bytes: load(&self.http_file_bytes),
            reused_bytes: job_reused_bytes + load(&self.pull_through_reused),
        }
    }

    /// Bytes sent for model and dataset routes (files, mostly) since start.
    pub fn file_bytes_served(&self) -> u64 {
        load(&self.bytes[0]) + load(&self.bytes[1])
    }

    /// Bytes pull-through received from the upstream since start, both repo types.
    pub fn upstream_total(&self) -> u64 {
        self.upstream_bytes.iter().map(load).sum()
    }

    /// Count file bytes sent over plain HTTP (`/resolve`).
    pub fn http_file_bytes(&self, bytes: u64) {
        self.http_file_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A pull-through transfer started (`+1`) or ended (`-1`).
    pub fn pull_through_transfers(&self, delta: i64) {
        self.pull_through_active.fetch_add(delta, Ordering::Relaxed);
    }
}

/// `GET /healthz`.
pub async fn healthz() -> &'static str {
    "ok"
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// `GET /metrics`.
pub async fn metrics(State(mirror): State<Arc<Mirror>>) -> Response {
    let registry = &mirror.larder.registry;
    let jobs = match registry.job_counts().await {
        Ok(jobs) => jobs,
        Err(e) => return internal("counting jobs failed", &e).into_response(),
    };
    let store_bytes = match registry.blob_bytes().await {
        Ok(bytes) => bytes,
        Err(e) => return internal("summing blob sizes failed", &e).into_response(),
    };
    let m = &mirror.metrics;
    let daemon = mirror.daemon.as_ref();
    let mut out = String::new();
    family(
        &mut out,
        "larder_served_bytes_total",
        "counter",
        "Response body bytes sent, by repo type.",
    );
    for (kind, bytes) in ServedKind::ALL.iter().zip(&m.bytes) {
        let _ = writeln!(
            out,
            "larder_served_bytes_total{{repo_type=\"{}\"}} {}",
            kind.label(),
            load(bytes)
        );
    }
    family(
        &mut out,
        "larder_upstream_bytes_total",
        "counter",
        "Bytes received from the upstream, by repo type and by who fetched them.",
    );
    for kind in RepoKind::ALL {
        let i = kind.index();
        let jobs_bytes = daemon.map_or(0, |d| d.fetched_bytes(kind));
        let _ = writeln!(
            out,
            "larder_upstream_bytes_total{{repo_type=\"{kind}\",source=\"pull_through\"}} {}",
            load(&m.upstream_bytes[i])
        );
        let _ = writeln!(
            out,
            "larder_upstream_bytes_total{{repo_type=\"{kind}\",source=\"job\"}} {jobs_bytes}"
        );
    }
    family(
        &mut out,
        "larder_cache_hits_total",
        "counter",
        "File requests answered from the store, by repo type.",
    );
    for kind in RepoKind::ALL {
        let _ = writeln!(
            out,
            "larder_cache_hits_total{{repo_type=\"{kind}\"}} {}",
            load(&m.hits[kind.index()])
        );
    }
    family(
        &mut out,
        "larder_cache_misses_total",
        "counter",
        "File requests whose content the store lacked (fetched upstream, or refused offline), by repo type.",
    );
    for kind in RepoKind::ALL {
        let _ = writeln!(
            out,
            "larder_cache_misses_total{{repo_type=\"{kind}\"}} {}",
            load(&m.misses[kind.index()])
        );
    }
    family(
        &mut out,
        "larder_http_requests_total",
        "counter",
        "Requests answered, by status class.",
    );
    for (class, n) in m.requests.iter().enumerate() {
        let _ = writeln!(
            out,
            "larder_http_requests_total{{status=\"{}xx\"}} {}",
            class + 1,
            load(n)
        );
    }
    family(
        &mut out,
        "larder_errors_total",
        "counter",
        "Errors by kind: error answers (Hub error codes and others) and failures behind them.",
    );
    let job_mismatches = daemon.map_or(0, |d| d.verification_failures());
    for (kind, n) in ErrorKind::ALL.iter().zip(&m.errors) {
        let extra = if *kind == ErrorKind::VerificationFailed {
            job_mismatches
        } else {
            0
        };
        let _ = writeln!(
            out,
            "larder_errors_total{{kind=\"{}\"}} {}",
            kind.label(),
            load(n) + extra
        );
    }
    family(
        &mut out,
        "larder_quarantined_blobs_total",
        "counter",
        "Held blobs found not to match their digest and quarantined, by who found them.",
    );
    for by in super::integrity::FoundBy::ALL {
        let _ = writeln!(
            out,
            "larder_quarantined_blobs_total{{found_by=\"{}\"}} {}",
            by.label(),
            mirror.integrity.quarantined(by)
        );
    }
    family(
        &mut out,
        "larder_scrubbed_bytes_total",
        "counter",
        "Bytes of held blobs the background scrub has re-hashed.",
    );
    let _ = writeln!(
        out,
        "larder_scrubbed_bytes_total {}",
        mirror.integrity.scrubbed_bytes()
    );
    family(
        &mut out,
        "larder_jobs",
        "gauge",
        "Jobs in the queue, by state.",
    );
    for (state, n) in jobs {
        let _ = writeln!(out, "larder_jobs{{state=\"{state}\"}} {n}");
    }
    family(
        &mut out,
        "larder_store_bytes",
        "gauge",
        "Total size of the blobs the store holds.",
    );
    let _ = writeln!(out, "larder_store_bytes {store_bytes}");
    if let Some(quota) = mirror.options.jobs.quota {
        family(
            &mut out,
            "larder_store_quota_bytes",
            "gauge",
            "The store quota (--quota); above it, least recently served unpinned revisions are evicted.",
        );
        let _ = writeln!(out, "larder_store_quota_bytes {quota}");
    }
    family(
        &mut out,
        "larder_xet_reconstructions_total",
        "counter",
        "Xet reconstructions answered (clients fetching files over the CAS API).",
    );
    let _ = writeln!(
        out,
        "larder_xet_reconstructions_total {}",
        load(&m.xet_reconstructions)
    );
    family(
        &mut out,
        "larder_file_bytes_total",
        "counter",
        "File bytes sent, by transport: xorb ranges (xet) or /resolve bodies (http).",
    );
    let _ = writeln!(
        out,
        "larder_file_bytes_total{{transport=\"xet\"}} {}",
        load(&m.xet_bytes)
    );
    let _ = writeln!(
        out,
        "larder_file_bytes_total{{transport=\"http\"}} {}",
        load(&m.http_file_bytes)
    );
    family(
        &mut out,
        "larder_xet_reused_bytes_total",
        "counter",
        "File bytes pulls and pull-through over Xet copied from blobs already held instead of \
         fetching them (what a mirror chain saves).",
    );
    let _ = writeln!(
        out,
        "larder_xet_reused_bytes_total {}",
        daemon.map_or(0, |d| d.xet_reused_bytes()) + load(&m.pull_through_reused)
    );
    let job_transfers = daemon.map_or(0, |d| d.active_transfers());
    let pull_through = u64::try_from(m.pull_through_active.load(Ordering::Relaxed)).unwrap_or(0);
    family(
        &mut out,
        "larder_active_transfers",
        "gauge",
        "Files being downloaded from the upstream right now (jobs and pull-through).",
    );
    let _ = writeln!(
        out,
        "larder_active_transfers {}",
        job_transfers + pull_through
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}
