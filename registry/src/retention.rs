//! What decides which revisions stay when the store is over its quota: pins, the time each
//! commit was last served, and the removal of a commit (its files go with it; the blobs they
//! used become garbage for gc unless another commit uses them).

use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::digest::CommitId;
use crate::error::{RegistryError, read_error, write_error};
use crate::queries::repo_id;
use crate::registry::Registry;
use crate::types::RepoKind;

/// A held commit that quota eviction may remove: not pinned, not the source of a conversion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvictionCandidate {
    /// Model or dataset.
    pub kind: RepoKind,
    /// `org/name`.
    pub name: String,
    /// The commit.
    pub sha: CommitId,
    /// When it was last served, else when it was last pulled (unix seconds).
    pub last_used: i64,
}

/// One served commit, for [`Registry::record_served`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Served {
    /// Model or dataset.
    pub kind: RepoKind,
    /// `org/name`.
    pub name: String,
    /// The commit.
    pub sha: CommitId,
}

impl Registry {
    /// Pin a held commit so quota eviction never removes it. Returns whether it was newly
    /// pinned; [`RegistryError::UnknownCommit`] if the commit is not held.
    pub async fn pin(
        &self,
        kind: RepoKind,
        name: &str,
        sha: &CommitId,
    ) -> Result<bool, RegistryError> {
        let (name, sha) = (name.to_owned(), *sha);
        self.write(move |conn| {
            let run = || -> rusqlite::Result<Option<bool>> {
                let Some(repo) = repo_id(conn, kind, &name)? else {
                    return Ok(None);
                };
                let held: i64 = conn.query_row(
                    "SELECT count(*) FROM commits WHERE repo_id = ?1 AND sha = ?2",
                    params![repo, sha],
                    |row| row.get(0),
                )?;
                if held == 0 {
                    return Ok(None);
                }
                let n = conn.execute(
                    "INSERT OR IGNORE INTO pins (repo_id, sha) VALUES (?1, ?2)",
                    params![repo, sha],
                )?;
                Ok(Some(n > 0))
            };
            match run().map_err(write_error(|| format!("pin {kind} {name} at {sha}")))? {
                Some(new) => Ok(new),
                None => Err(RegistryError::UnknownCommit { kind, name, sha }),
            }
        })
        .await
    }

    /// Unpin a commit; returns whether it was pinned.
    pub async fn unpin(
        &self,
        kind: RepoKind,
        name: &str,
        sha: &CommitId,
    ) -> Result<bool, RegistryError> {
        let (name, sha) = (name.to_owned(), sha.to_owned());
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM pins WHERE sha = ?3
                 AND repo_id = (SELECT id FROM repos WHERE kind = ?1 AND name = ?2)",
                params![kind, name, sha],
            )
            .map(|n| n > 0)
            .map_err(write_error(|| format!("unpin {kind} {name} at {sha}")))
        })
        .await
    }

    /// Record that these commits were served at `at`, in one transaction (the mirror batches
    /// them; never one write per request). Unknown commits are skipped.
    pub async fn record_served(&self, served: Vec<Served>, at: i64) -> Result<(), RegistryError> {
        if served.is_empty() {
            return Ok(());
        }
        self.write(move |conn| {
            let mut run = || -> rusqlite::Result<()> {
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                {
                    let mut statement = tx.prepare_cached(
                        "UPDATE commits SET last_served = max(coalesce(last_served, 0), ?4)
                         WHERE sha = ?3
                         AND repo_id = (SELECT id FROM repos WHERE kind = ?1 AND name = ?2)",
                    )?;
                    for s in &served {
                        statement.execute(params![s.kind, s.name, s.sha, at])?;
                    }
                }
                tx.commit()
            };
            run().map_err(write_error(|| "record served commits".to_owned()))
        })
        .await
    }

    /// Commits quota eviction may remove, least recently used first: unpinned, and not the
    /// source of a recorded conversion (its provenance must stay).
    pub async fn eviction_candidates(&self) -> Result<Vec<EvictionCandidate>, RegistryError> {
        self.read(|conn| {
            let query = || -> rusqlite::Result<Vec<EvictionCandidate>> {
                let mut statement = conn.prepare_cached(
                    "SELECT r.kind, r.name, c.sha, coalesce(c.last_served, c.fetched_at) AS used
                     FROM commits c JOIN repos r ON r.id = c.repo_id
                     WHERE NOT EXISTS (SELECT 1 FROM pins p
                                       WHERE p.repo_id = c.repo_id AND p.sha = c.sha)
                     AND NOT EXISTS (SELECT 1 FROM derivations d WHERE d.source_commit_id = c.id)
                     ORDER BY used, c.id",
                )?;
                let rows = statement.query_map([], |row| {
                    Ok(EvictionCandidate {
                        kind: row.get(0)?,
                        name: row.get(1)?,
                        sha: row.get(2)?,
                        last_used: row.get(3)?,
                    })
                })?;
                rows.collect()
            };
            query().map_err(read_error(|| "list eviction candidates".to_owned()))
        })
        .await
    }

    /// Total size of the blobs some commit's file refers to (what the store keeps after gc).
    pub async fn referenced_blob_bytes(&self) -> Result<u64, RegistryError> {
        self.read(|conn| {
            conn.query_row(
                "SELECT CAST(total(b.size) AS INTEGER) FROM blobs b
                 WHERE EXISTS (SELECT 1 FROM files f WHERE f.sha256 = b.sha256)",
                [],
                |row| row.get::<_, i64>(0),
            )
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(read_error(|| "sum referenced blobs".to_owned()))
        })
        .await
    }

    /// Remove a held commit (its tree, licence records and pin go with it; the ref history
    /// stays). Returns whether it was held. Blobs are not touched: gc removes those no other
    /// commit uses.
    pub async fn remove_commit(
        &self,
        kind: RepoKind,
        name: &str,
        sha: &CommitId,
    ) -> Result<bool, RegistryError> {
        let (name, sha) = (name.to_owned(), sha.to_owned());
        self.write(move |conn| {
            let mut run = || -> rusqlite::Result<bool> {
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let Some(repo) = repo_id(&tx, kind, &name)? else {
                    return Ok(false);
                };
                tx.execute(
                    "DELETE FROM pins WHERE repo_id = ?1 AND sha = ?2",
                    params![repo, sha],
                )?;
                let n = tx.execute(
                    "DELETE FROM commits WHERE repo_id = ?1 AND sha = ?2",
                    params![repo, sha],
                )?;
                tx.commit()?;
                Ok(n > 0)
            };
            run().map_err(write_error(|| format!("remove {kind} {name} at {sha}")))
        })
        .await
    }
}
