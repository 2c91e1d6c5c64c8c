//! When each commit was last served, for quota eviction (least recently served goes first).
//!
//! Requests only note the commit in memory; a background task writes the notes in one registry
//! transaction every few seconds (and once more at shutdown), so serving never waits on, nor
//! floods, the registry writer.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::registry::{CommitId, Registry, RepoKind, Served};

/// Commits served since the last flush.
#[derive(Debug, Default)]
pub struct ServedLog {
    pending: Mutex<HashSet<Served>>,
}

impl ServedLog {
    /// Note that a commit was served now.
    pub fn note(&self, kind: RepoKind, name: &str, sha: &CommitId) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(Served {
                kind,
                name: name.to_owned(),
                sha: sha.to_owned(),
            });
        }
    }

    /// Write what was noted, in one transaction.
    pub async fn flush(&self, registry: &Registry) {
        let batch: Vec<Served> = match self.pending.lock() {
            Ok(mut pending) => pending.drain().collect(),
            Err(_) => return,
        };
        if batch.is_empty() {
            return;
        }
        let n = batch.len();
        if let Err(error) = registry.record_served(batch, crate::now_unix()).await {
            tracing::warn!(%error, "could not record when {n} commits were served");
        }
    }

    /// Flush every `every` until the last other holder of `log` is gone, then once more.
    pub(crate) fn spawn_flusher(log: Arc<ServedLog>, registry: Registry, every: Duration) {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                log.flush(&registry).await;
                if Arc::strong_count(&log) == 1 {
                    break;
                }
            }
        });
    }
}
