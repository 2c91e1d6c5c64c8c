//! Storage as the console shows it (`GET /v1/storage`): bytes held against the quota, the
//! pinned revisions, and what the cache saved: file bytes served to clients against bytes
//! fetched from the upstream (pull-through and jobs), over time.
//!
//! The mirror's counters only grow. A sample of them is taken every [`SAMPLE_EVERY`] and the
//! last [`MAX_SAMPLES`] are kept in memory; one every [`PERSIST_EVERY`] goes to the registry
//! (`traffic`, migration 0010), where [`HISTORY`] of them are kept. The registry's series is
//! cumulative across restarts: a restarted mirror adds its counters to the last recorded row
//! (what it served in the last minute before a crash is not counted). The chart shows the
//! recorded history followed by the recent samples.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::Mirror;
use super::api_error::ApiError;
use crate::registry::{CommitId, RepoKind, TrafficRow};

/// How often the counters are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Samples kept in memory (two hours at one per ten seconds), and points of recorded history
/// shown at most.
pub const MAX_SAMPLES: usize = 720;
/// How often a sample is recorded in the registry.
pub const PERSIST_EVERY: Duration = Duration::from_secs(60);
/// How much recorded history is kept.
pub const HISTORY: Duration = Duration::from_secs(30 * 24 * 3600);

/// The counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// Unix seconds.
    pub at: i64,
    /// File bytes sent to clients, in all (carried across restarts).
    pub served: u64,
    /// Bytes received from the upstream, in all (carried across restarts).
    pub fetched: u64,
}

/// The series.
#[derive(Debug, Default)]
pub struct Traffic {
    samples: Mutex<VecDeque<Sample>>,
    /// The recorded totals this mirror started from: (served, fetched).
    base: Mutex<(u64, u64)>,
}

impl Traffic {
    /// Add a sample, dropping the oldest beyond [`MAX_SAMPLES`].
    pub fn push(&self, sample: Sample) {
        if let Ok(mut samples) = self.samples.lock() {
            if samples.len() == MAX_SAMPLES {
                samples.pop_front();
            }
            samples.push_back(sample);
        }
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// The counters now, added to the totals recorded before this mirror started.
fn sample(mirror: &Mirror) -> Sample {
    let (served, fetched) = mirror.traffic.base.lock().map_or((0, 0), |b| *b);
    let jobs: u64 = mirror.daemon.as_ref().map_or(0, |daemon| {
        RepoKind::ALL
            .iter()
            .map(|kind| daemon.fetched_bytes(*kind))
            .sum()
    });
    Sample {
        at: crate::now_unix(),
        served: served.saturating_add(mirror.metrics.file_bytes_served()),
        fetched: fetched.saturating_add(mirror.metrics.upstream_total() + jobs),
    }
}

/// Sample the counters every [`SAMPLE_EVERY`] until the mirror is gone, recording one every
/// [`PERSIST_EVERY`]; the series continues from the last recorded totals.
pub fn spawn_sampler(mirror: Weak<Mirror>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Some(mirror) = mirror.upgrade() {
            match mirror.larder.registry.latest_traffic().await {
                Ok(Some(last)) => {
                    if let Ok(mut base) = mirror.traffic.base.lock() {
                        *base = (last.served, last.fetched);
                    }
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "could not read the recorded traffic"),
            }
        }
        let every = (PERSIST_EVERY.as_secs() / SAMPLE_EVERY.as_secs()).max(1);
        for tick in 0u64.. {
            {
                let Some(mirror) = mirror.upgrade() else {
                    return;
                };
                let now = sample(&mirror);
                mirror.traffic.push(now);
                if tick % every == 0 {
                    record_now(&mirror).await;
                }
            }
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
    })
}

/// Record the counters now (a stopping mirror's last sample).
pub async fn record_now(mirror: &Mirror) {
    let now = sample(mirror);
    let row = TrafficRow {
        at: now.at,
        served: now.served,
        fetched: now.fetched,
    };
    let keep_after = now.at - HISTORY.as_secs() as i64;
    if let Err(error) = mirror.larder.registry.record_traffic(row, keep_after).await {
        tracing::warn!(%error, "could not record the traffic");
    }
}

/// A pinned revision.
#[derive(Debug, Clone, Serialize)]
pub struct Pinned {
    /// `model` or `dataset`.
    pub kind: RepoKind,
    /// `org/name`.
    pub repo: String,
    /// The commit.
    pub commit: CommitId,
    /// Refs at it.
    pub refs: Vec<String>,
    /// Bytes held.
    pub bytes: u64,
}

/// What `GET /v1/storage` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Storage {
    /// Bytes of blobs held.
    pub used: u64,
    /// The quota, if one is set.
    pub quota: Option<u64>,
    /// Pinned revisions of public repos.
    pub pinned: Vec<Pinned>,
    /// Served vs fetched over time, oldest first, ending with now: the recorded history (up to
    /// 30 days, thinned), then the recent samples.
    pub traffic: Vec<Sample>,
    /// Seconds between samples.
    pub sample_every: u64,
}

/// The storage view.
pub async fn storage(mirror: &Mirror) -> Result<Storage, crate::registry::RegistryError> {
    let registry = &mirror.larder.registry;
    let used = registry.blob_bytes().await?;
    let mut pinned = Vec::new();
    for repo in registry
        .list_repos()
        .await?
        .into_iter()
        .filter(|r| !r.private)
    {
        for revision in repo.revisions.iter().filter(|r| r.pinned) {
            pinned.push(Pinned {
                kind: repo.kind,
                repo: repo.name.clone(),
                commit: revision.sha,
                refs: revision.refs.clone(),
                bytes: revision.bytes_held,
            });
        }
    }
    let recent = mirror.traffic.samples();
    let now = sample(mirror);
    let recent_from = recent.first().map_or(now.at, |s| s.at);
    let mut traffic: Vec<Sample> = registry
        .traffic_since(now.at - HISTORY.as_secs() as i64, MAX_SAMPLES)
        .await?
        .into_iter()
        .filter(|row| row.at < recent_from)
        .map(|row| Sample {
            at: row.at,
            served: row.served,
            fetched: row.fetched,
        })
        .collect();
    traffic.extend(recent);
    traffic.push(now);
    Ok(Storage {
        used,
        quota: mirror.options.jobs.quota,
        pinned,
        traffic,
        sample_every: SAMPLE_EVERY.as_secs(),
    })
}

/// `GET /v1/storage`.
pub async fn get(State(mirror): State<Arc<Mirror>>) -> Result<Response, ApiError> {
    storage(&mirror)
        .await
        .map(|s| axum::Json(s).into_response())
        .map_err(|e| ApiError::internal("reading storage", &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_series_is_bounded() {
        let traffic = Traffic::default();
        for at in 0..(MAX_SAMPLES as i64 + 5) {
            traffic.push(Sample {
                at,
                served: 0,
                fetched: 0,
            });
        }
        let samples = traffic.samples();
        assert_eq!(samples.len(), MAX_SAMPLES);
        assert_eq!(samples[0].at, 5);
    }
}
