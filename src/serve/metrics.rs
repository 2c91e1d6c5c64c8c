//! `GET /metrics` (Prometheus text exposition, version 0.0.4) and `GET /healthz`.
//!
//! Counters live in [`Metrics`], bumped by the access log for every request; gauges that the
//! registry knows (jobs by state, store size) are read at scrape time.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Mirror;
use super::errors::internal;

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
}

/// `GET /healthz`.
pub async fn healthz() -> &'static str {
    "ok"
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
    let active = mirror.daemon.as_ref().map_or(0, |d| d.active_transfers());
    let mut out = String::new();
    family(
        &mut out,
        "larder_served_bytes_total",
        "counter",
        "Response body bytes sent, by repo type.",
    );
    for (kind, bytes) in ServedKind::ALL.iter().zip(&mirror.metrics.bytes) {
        let _ = writeln!(
            out,
            "larder_served_bytes_total{{repo_type=\"{}\"}} {}",
            kind.label(),
            bytes.load(Ordering::Relaxed)
        );
    }
    family(
        &mut out,
        "larder_http_requests_total",
        "counter",
        "Requests answered, by status class.",
    );
    for (class, n) in mirror.metrics.requests.iter().enumerate() {
        let _ = writeln!(
            out,
            "larder_http_requests_total{{status=\"{}xx\"}} {}",
            class + 1,
            n.load(Ordering::Relaxed)
        );
    }
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
    family(
        &mut out,
        "larder_active_transfers",
        "gauge",
        "Files being downloaded by jobs right now.",
    );
    let _ = writeln!(out, "larder_active_transfers {active}");
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
