//! The daemon's job queue: rows of the `jobs` table, claimed by workers in creation order.
//!
//! A job's `spec` and `progress` are JSON owned by the daemon; the registry only stores them and
//! moves jobs between states. Every transition is one statement on the writer thread, so two
//! workers never claim the same job and a cancellation never races a claim.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, read_error, write_error};
use crate::registry::Registry;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// A worker is running it.
    Running,
    /// Finished successfully.
    Done,
    /// Finished with an error.
    Failed,
    /// Cancelled by a user.
    Cancelled,
}

impl JobState {
    /// Every state, in display order.
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Done,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The name stored in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job can no longer change.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a job state.
#[derive(Debug, thiserror::Error)]
#[error("unknown job state `{0}`")]
pub struct ParseJobStateError(String);

impl FromStr for JobState {
    type Err = ParseJobStateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| ParseJobStateError(s.to_owned()))
    }
}

/// One row of the `jobs` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Id.
    pub id: i64,
    /// What kind of work, e.g. `pull`.
    pub kind: String,
    /// The job's parameters.
    pub spec: serde_json::Value,
    /// Its state.
    pub state: JobState,
    /// The latest progress, if any was recorded.
    pub progress: Option<serde_json::Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// Why it failed, as a short machine-readable kind chosen by the daemon; `None` while it has
    /// not failed, and for jobs that failed before the column existed.
    pub error_kind: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

const COLUMNS: &str =
    "id, kind, spec_json, state, progress_json, error, created_at, updated_at, error_kind";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn job_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobRecord> {
    let spec: String = row.get(2)?;
    let state: String = row.get(3)?;
    let progress: Option<String> = row.get(4)?;
    Ok(JobRecord {
        id: row.get(0)?,
        kind: row.get(1)?,
        spec: serde_json::from_str(&spec).unwrap_or(serde_json::Value::Null),
        // A state this version does not know is shown as failed rather than hidden.
        state: state.parse().unwrap_or(JobState::Failed),
        progress: progress.and_then(|p| serde_json::from_str(&p).ok()),
        error: row.get(5)?,
        error_kind: row.get(8)?,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
    })
}

fn select_job(conn: &rusqlite::Connection, id: i64) -> rusqlite::Result<Option<JobRecord>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
        params![id],
        job_row,
    )
    .optional()
}

impl Registry {
    /// Queue a new job; returns its id.
    pub async fn add_job(
        &self,
        kind: &str,
        spec: &serde_json::Value,
    ) -> Result<i64, RegistryError> {
        let (kind, spec) = (kind.to_owned(), spec.to_string());
        self.write(move |conn| {
            let at = now();
            conn.execute(
                "INSERT INTO jobs (kind, spec_json, state, created_at, updated_at)
                 VALUES (?1, ?2, 'queued', ?3, ?3)",
                params![kind, spec, at],
            )
            .map_err(write_error(|| format!("queue a {kind} job")))?;
            Ok(conn.last_insert_rowid())
        })
        .await
    }

    /// One job.
    pub async fn job(&self, id: i64) -> Result<Option<JobRecord>, RegistryError> {
        self.read(move |conn| select_job(conn, id).map_err(read_error(|| format!("read job {id}"))))
            .await
    }

    /// Every job, oldest first.
    pub async fn jobs(&self) -> Result<Vec<JobRecord>, RegistryError> {
        self.read(|conn| {
            let query = || -> rusqlite::Result<Vec<JobRecord>> {
                let mut statement =
                    conn.prepare(&format!("SELECT {COLUMNS} FROM jobs ORDER BY id"))?;
                let rows = statement.query_map([], job_row)?;
                rows.collect()
            };
            query().map_err(read_error(|| "list jobs".to_owned()))
        })
        .await
    }

    /// How many jobs are in each state.
    pub async fn job_counts(&self) -> Result<Vec<(JobState, u64)>, RegistryError> {
        self.read(|conn| {
            let query = || -> rusqlite::Result<Vec<(String, i64)>> {
                let mut statement =
                    conn.prepare("SELECT state, count(*) FROM jobs GROUP BY state")?;
                let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
                rows.collect()
            };
            let rows = query().map_err(read_error(|| "count jobs".to_owned()))?;
            Ok(JobState::ALL
                .into_iter()
                .map(|state| {
                    let n = rows
                        .iter()
                        .filter(|(s, _)| s == state.as_str())
                        .map(|(_, n)| u64::try_from(*n).unwrap_or(0))
                        .sum();
                    (state, n)
                })
                .collect())
        })
        .await
    }

    /// Take the oldest queued job and mark it running.
    pub async fn claim_job(&self) -> Result<Option<JobRecord>, RegistryError> {
        self.write(|conn| {
            let claim = || -> rusqlite::Result<Option<JobRecord>> {
                let id: Option<i64> = conn
                    .query_row(
                        "UPDATE jobs SET state = 'running', updated_at = ?1
                         WHERE id = (SELECT id FROM jobs WHERE state = 'queued'
                                     ORDER BY created_at, id LIMIT 1)
                         RETURNING id",
                        params![now()],
                        |row| row.get(0),
                    )
                    .optional()?;
                match id {
                    Some(id) => select_job(conn, id),
                    None => Ok(None),
                }
            };
            claim().map_err(write_error(|| "claim a queued job".to_owned()))
        })
        .await
    }

    /// Record a running job's progress. Returns `false` when the job is no longer running.
    pub async fn set_job_progress(
        &self,
        id: i64,
        progress: &serde_json::Value,
    ) -> Result<bool, RegistryError> {
        let progress = progress.to_string();
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE jobs SET progress_json = ?2, updated_at = ?3
                     WHERE id = ?1 AND state = 'running'",
                    params![id, progress, now()],
                )
                .map_err(write_error(|| format!("record progress of job {id}")))?;
            Ok(n > 0)
        })
        .await
    }

    /// Finish a running job as `state` (done or failed), with the error and its kind if it
    /// failed. A job cancelled meanwhile stays cancelled; returns whether the job was updated.
    pub async fn finish_job(
        &self,
        id: i64,
        state: JobState,
        error: Option<String>,
        error_kind: Option<&str>,
    ) -> Result<bool, RegistryError> {
        let error_kind = error_kind.map(str::to_owned);
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE jobs SET state = ?2, error = ?3, error_kind = ?4, updated_at = ?5
                     WHERE id = ?1 AND state = 'running'",
                    params![id, state.as_str(), error, error_kind, now()],
                )
                .map_err(write_error(|| format!("finish job {id}")))?;
            Ok(n > 0)
        })
        .await
    }

    /// Cancel a queued or running job. Returns the job as it is afterwards, or `None` if there
    /// is no such job (a finished job is returned unchanged).
    pub async fn cancel_job(&self, id: i64) -> Result<Option<JobRecord>, RegistryError> {
        self.write(move |conn| {
            let cancel = || -> rusqlite::Result<Option<JobRecord>> {
                conn.execute(
                    "UPDATE jobs SET state = 'cancelled', updated_at = ?2
                     WHERE id = ?1 AND state IN ('queued', 'running')",
                    params![id, now()],
                )?;
                select_job(conn, id)
            };
            cancel().map_err(write_error(|| format!("cancel job {id}")))
        })
        .await
    }

    /// Put jobs left `running` (by a daemon that stopped without finishing them) back in the
    /// queue. Returns how many.
    pub async fn requeue_running_jobs(&self) -> Result<usize, RegistryError> {
        self.write(|conn| {
            conn.execute(
                "UPDATE jobs SET state = 'queued', updated_at = ?1 WHERE state = 'running'",
                params![now()],
            )
            .map_err(write_error(|| "requeue interrupted jobs".to_owned()))
        })
        .await
    }
}
