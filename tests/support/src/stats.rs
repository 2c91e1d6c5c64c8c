//! Counters and the request log, so tests can assert on traffic.

use crate::faults::Route;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One request as the stand-in saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// What kind of request it was.
    pub route: Route,
    /// `GET`, `HEAD`, `POST`, ….
    pub method: String,
    /// The raw path and query, exactly as received.
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// Whether an `Authorization` header was present.
    pub authorization: bool,
    /// The status code answered.
    pub status: u16,
    /// True for requests to the CDN listener.
    pub cdn: bool,
}

#[derive(Debug, Default)]
struct Counters {
    bytes_by_path: HashMap<String, u64>,
    bytes_by_sha256: HashMap<String, u64>,
    total_bytes: u64,
    requests: Vec<RequestRecord>,
}

/// Traffic counters of one stand-in; shared by both listeners.
#[derive(Debug, Default)]
pub struct Stats {
    counters: Mutex<Counters>,
    /// Requests being answered right now (both listeners).
    in_flight: AtomicUsize,
    /// The most requests answered at once since the last reset.
    peak: AtomicUsize,
}

/// Counts one request as in flight until dropped (see [`Stats::peak_concurrency`]).
pub(crate) struct InFlight<'a>(&'a Stats);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Stats {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn add_bytes(&self, paths: &[String], sha256: Option<&str>, bytes: u64) {
        let mut counters = self.lock();
        counters.total_bytes += bytes;
        for path in paths {
            *counters.bytes_by_path.entry(path.clone()).or_default() += bytes;
        }
        if let Some(sha256) = sha256 {
            *counters
                .bytes_by_sha256
                .entry(sha256.to_owned())
                .or_default() += bytes;
        }
    }

    /// Counts a request as in flight from now until the guard is dropped.
    pub(crate) fn enter(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        InFlight(self)
    }

    /// The most requests the stand-in was answering at once (from arrival, through any
    /// configured latency, until the response head was ready) since it started or since
    /// [`Stats::reset_peak_concurrency`].
    pub fn peak_concurrency(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Requests being answered right now.
    pub fn concurrency(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Starts measuring [`Stats::peak_concurrency`] afresh (from the requests in flight now).
    pub fn reset_peak_concurrency(&self) {
        self.peak
            .store(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// Number of requests answered with `status`.
    pub fn count_status(&self, status: u16) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|record| record.status == status)
            .count()
    }

    pub(crate) fn record(&self, record: RequestRecord) {
        self.lock().requests.push(record);
    }

    /// File body bytes served for `path` (directly or via the CDN; CDN bytes
    /// count for every path that content appears under).
    pub fn bytes_for_path(&self, path: &str) -> u64 {
        self.lock()
            .bytes_by_path
            .get(path.trim_matches('/'))
            .copied()
            .unwrap_or(0)
    }

    /// Body bytes served for the LFS content with this SHA-256.
    pub fn bytes_for_sha256(&self, sha256: &str) -> u64 {
        self.lock()
            .bytes_by_sha256
            .get(sha256)
            .copied()
            .unwrap_or(0)
    }

    /// All file body bytes served.
    pub fn total_bytes(&self) -> u64 {
        self.lock().total_bytes
    }

    /// Number of requests seen on `route`.
    pub fn count(&self, route: Route) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|record| record.route == route)
            .count()
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().requests.clone()
    }

    /// Forgets all counters and the log (and restarts the peak concurrency).
    pub fn reset(&self) {
        *self.lock() = Counters::default();
        self.reset_peak_concurrency();
    }
}
