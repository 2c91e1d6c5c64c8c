//! Storage as the console shows it (`GET /v1/storage`): bytes held against the quota, the
//! pinned revisions, and what the cache saved: file bytes served to clients against bytes
//! fetched from the upstream (pull-through and jobs), over time.
//!
//! The mirror's counters only grow, so a small in-memory series of them is kept: a sample
//! every [`SAMPLE_EVERY`], the last [`MAX_SAMPLES`] of them (a fixed bound; it starts empty at
//! each start of the mirror, as `/metrics` does).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::Mirror;
use super::api_error::ApiError;
use crate::registry::RepoKind;

/// How often the counters are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Samples kept (two hours at one per ten seconds).
pub const MAX_SAMPLES: usize = 720;

/// The counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// Unix seconds.
    pub at: i64,
    /// File bytes sent to clients since the mirror started.
    pub served: u64,
    /// Bytes received from the upstream since the mirror started.
    pub fetched: u64,
}

/// The series.
#[derive(Debug, Default)]
pub struct Traffic {
    samples: Mutex<VecDeque<Sample>>,
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

/// The counters now.
fn sample(mirror: &Mirror) -> Sample {
    let jobs: u64 = mirror.daemon.as_ref().map_or(0, |daemon| {
        RepoKind::ALL
            .iter()
            .map(|kind| daemon.fetched_bytes(*kind))
            .sum()
    });
    Sample {
        at: crate::now_unix(),
        served: mirror.metrics.file_bytes_served(),
        fetched: mirror.metrics.upstream_total() + jobs,
    }
}

/// Sample the counters every [`SAMPLE_EVERY`] until the mirror is gone.
pub fn spawn_sampler(mirror: Weak<Mirror>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            {
                let Some(mirror) = mirror.upgrade() else {
                    return;
                };
                mirror.traffic.push(sample(&mirror));
            }
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
    })
}

/// A pinned revision.
#[derive(Debug, Clone, Serialize)]
pub struct Pinned {
    /// `model` or `dataset`.
    pub kind: RepoKind,
    /// `org/name`.
    pub repo: String,
    /// The commit.
    pub commit: String,
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
    /// Served vs fetched over time, oldest first, ending with now.
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
                commit: revision.sha.clone(),
                refs: revision.refs.clone(),
                bytes: revision.bytes_held,
            });
        }
    }
    let mut traffic = mirror.traffic.samples();
    traffic.push(sample(mirror));
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
