//! Tracked refs: repos whose branch or tag the daemon re-resolves on a schedule, pulling each new
//! commit it finds. One row per `(kind, name, ref)`; the daemon's scheduler owns the columns
//! after `added_at`.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::digest::CommitId;
use crate::error::{RegistryError, read_error, write_error};
use crate::registry::Registry;
use crate::types::RepoKind;
use crate::validate;

/// One tracked ref.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackedRef {
    /// Model or dataset.
    pub kind: RepoKind,
    /// `org/name`.
    pub name: String,
    /// The branch or tag followed.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Seconds between checks.
    pub every: i64,
    /// When tracking started (unix seconds).
    pub added_at: i64,
    /// When the upstream was last asked, if ever.
    pub last_checked: Option<i64>,
    /// Where the ref pointed upstream at the last check.
    pub upstream_commit: Option<CommitId>,
    /// The commit held before the pull of `upstream_commit` (the old side of the change).
    pub base_commit: Option<CommitId>,
    /// The pull job submitted for `upstream_commit`, while it has not been settled.
    pub pending_job: Option<i64>,
    /// Why the last check or pull failed.
    pub last_error: Option<String>,
}

const COLUMNS: &str = "kind, name, ref, every, added_at, last_checked, upstream_commit, \
                       base_commit, pending_job, last_error";

fn tracked_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TrackedRef> {
    Ok(TrackedRef {
        kind: row.get(0)?,
        name: row.get(1)?,
        reference: row.get(2)?,
        every: row.get(3)?,
        added_at: row.get(4)?,
        last_checked: row.get(5)?,
        upstream_commit: row.get(6)?,
        base_commit: row.get(7)?,
        pending_job: row.get(8)?,
        last_error: row.get(9)?,
    })
}

/// What a check of a tracked ref found, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackCheck {
    /// When the check ran.
    pub at: i64,
    /// Where the ref points upstream (`None` when the check failed).
    pub upstream_commit: Option<CommitId>,
    /// The commit held before the pull submitted now (if one is).
    pub base_commit: Option<CommitId>,
    /// The pull submitted now, if any; `None` keeps the one pending.
    pub pending_job: Option<i64>,
    /// Why the check failed.
    pub error: Option<String>,
}

impl Registry {
    /// Track `reference` of a repo, checked every `every` seconds. Tracking it again changes
    /// only the interval. Returns whether it was newly tracked.
    pub async fn track(
        &self,
        kind: RepoKind,
        name: &str,
        reference: &str,
        every: i64,
        at: i64,
    ) -> Result<bool, RegistryError> {
        validate::repo_name(name)?;
        validate::reference(reference)?;
        if every <= 0 {
            return Err(RegistryError::InvalidInput {
                field: "every",
                value: every.to_string(),
                reason: "the interval must be at least one second",
            });
        }
        let (name, reference) = (name.to_owned(), reference.to_owned());
        self.write(move |conn| {
            let run = || -> rusqlite::Result<bool> {
                let updated = conn.execute(
                    "UPDATE tracked SET every = ?4 WHERE kind = ?1 AND name = ?2 AND ref = ?3",
                    params![kind, name, reference, every],
                )?;
                if updated > 0 {
                    return Ok(false);
                }
                conn.execute(
                    "INSERT INTO tracked (kind, name, ref, every, added_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![kind, name, reference, every, at],
                )?;
                Ok(true)
            };
            run().map_err(write_error(|| format!("track {kind} {name}@{reference}")))
        })
        .await
    }

    /// Stop tracking; returns whether it was tracked.
    pub async fn untrack(
        &self,
        kind: RepoKind,
        name: &str,
        reference: &str,
    ) -> Result<bool, RegistryError> {
        let (name, reference) = (name.to_owned(), reference.to_owned());
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM tracked WHERE kind = ?1 AND name = ?2 AND ref = ?3",
                params![kind, name, reference],
            )
            .map(|n| n > 0)
            .map_err(write_error(|| format!("untrack {kind} {name}@{reference}")))
        })
        .await
    }

    /// Every tracked ref, by repo.
    pub async fn tracked(&self) -> Result<Vec<TrackedRef>, RegistryError> {
        self.read(|conn| {
            let query = || -> rusqlite::Result<Vec<TrackedRef>> {
                let mut statement = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM tracked ORDER BY kind, name, ref"
                ))?;
                let rows = statement.query_map([], tracked_row)?;
                rows.collect()
            };
            query().map_err(read_error(|| "list tracked refs".to_owned()))
        })
        .await
    }

    /// Tracked refs due for a check at `now` (never checked, or checked `every` seconds ago).
    pub async fn tracked_due(&self, now: i64) -> Result<Vec<TrackedRef>, RegistryError> {
        self.read(move |conn| {
            let query = || -> rusqlite::Result<Vec<TrackedRef>> {
                let mut statement = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM tracked
                     WHERE last_checked IS NULL OR last_checked + every <= ?1
                     ORDER BY coalesce(last_checked, 0), kind, name, ref"
                ))?;
                let rows = statement.query_map(params![now], tracked_row)?;
                rows.collect()
            };
            query().map_err(read_error(|| "list tracked refs due".to_owned()))
        })
        .await
    }

    /// Record a check. A failed check keeps the last known upstream commit.
    pub async fn record_track_check(
        &self,
        kind: RepoKind,
        name: &str,
        reference: &str,
        check: TrackCheck,
    ) -> Result<(), RegistryError> {
        let (name, reference) = (name.to_owned(), reference.to_owned());
        self.write(move |conn| {
            conn.execute(
                "UPDATE tracked SET last_checked = ?4,
                        upstream_commit = coalesce(?5, upstream_commit),
                        base_commit = CASE WHEN ?7 IS NULL THEN base_commit ELSE ?6 END,
                        pending_job = coalesce(?7, pending_job),
                        last_error = ?8
                 WHERE kind = ?1 AND name = ?2 AND ref = ?3",
                params![
                    kind,
                    name,
                    reference,
                    check.at,
                    check.upstream_commit,
                    check.base_commit,
                    check.pending_job,
                    check.error
                ],
            )
            .map(drop)
            .map_err(write_error(|| {
                format!("record a check of {kind} {name}@{reference}")
            }))
        })
        .await
    }

    /// Settle the pending pull of a tracked ref: clear it, and record its error if it failed.
    pub async fn settle_track_job(
        &self,
        kind: RepoKind,
        name: &str,
        reference: &str,
        job: i64,
        error: Option<String>,
    ) -> Result<(), RegistryError> {
        let (name, reference) = (name.to_owned(), reference.to_owned());
        self.write(move |conn| {
            conn.execute(
                "UPDATE tracked SET pending_job = NULL, last_error = ?5
                 WHERE kind = ?1 AND name = ?2 AND ref = ?3 AND pending_job = ?4",
                params![kind, name, reference, job, error],
            )
            .map(drop)
            .map_err(write_error(|| {
                format!("settle job {job} of {kind} {name}@{reference}")
            }))
        })
        .await
    }

    /// One tracked ref.
    pub async fn tracked_ref(
        &self,
        kind: RepoKind,
        name: &str,
        reference: &str,
    ) -> Result<Option<TrackedRef>, RegistryError> {
        let (name, reference) = (name.to_owned(), reference.to_owned());
        self.read(move |conn| {
            conn.query_row(
                &format!(
                    "SELECT {COLUMNS} FROM tracked WHERE kind = ?1 AND name = ?2 AND ref = ?3"
                ),
                params![kind, name, reference],
                tracked_row,
            )
            .optional()
            .map_err(read_error(|| {
                format!("read tracked {kind} {name}@{reference}")
            }))
        })
        .await
    }
}
