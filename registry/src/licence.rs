//! Licence records: per-commit detections (signals and resolution), the licence history of a
//! repo, and the audit log of licence decisions (accepted licences).
//!
//! The detection itself is computed by `larder-licence`; this module only stores and reads it.
//! A commit's detection signals are the `licence_signals` rows whose source is not `card`
//! (those belong to [`record_snapshot`](crate::Registry::record_snapshot)); they are replaced
//! together with the `licence_resolutions` row in one transaction.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use crate::digest::CommitId;
use crate::error::RegistryError;
use crate::snapshot::CARD_SOURCE;
use crate::types::RepoKind;

/// One licence signal as stored: where it was found, what, and details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenceSignalRecord {
    /// The signal kind, e.g. `licence_file`, `card_license`, `tag`, `gate`, `base_model`
    /// (or `card` for the card fields recorded with the snapshot).
    pub source: String,
    /// What was found.
    pub value: String,
    /// Details (for detection signals: JSON with the path, the resolved key and notes).
    pub detail: Option<String>,
}

/// A commit's licence detection, as written by [`Registry::record_licence`](crate::Registry::record_licence).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LicenceRecord {
    /// The resolved catalog key, `unknown` when nothing resolved.
    pub licence_key: String,
    /// The catalog key the card declares, if it resolves.
    pub declared: Option<String>,
    /// Detection confidence (`none`, `low`, `medium`, `high`).
    pub confidence: String,
    /// The conflicts found, as JSON.
    pub conflicts: serde_json::Value,
    /// The whole detection, as JSON.
    pub detection: serde_json::Value,
    /// Every signal found.
    pub signals: Vec<LicenceSignalRecord>,
    /// When it was resolved (unix seconds).
    pub resolved_at: i64,
}

/// A held commit and its licence resolution, if one was recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitLicence {
    /// The commit.
    pub sha: CommitId,
    /// When the commit was last pulled.
    pub fetched_at: i64,
    /// The resolved catalog key (`unknown` when unresolved); `None` if never detected.
    pub licence_key: Option<String>,
    /// The card's declared catalog key.
    pub declared: Option<String>,
    /// Detection confidence.
    pub confidence: Option<String>,
    /// Conflicts, as JSON (`[]` when none).
    pub conflicts: serde_json::Value,
    /// The whole detection, as JSON.
    pub detection: Option<serde_json::Value>,
    /// When it was resolved.
    pub resolved_at: Option<i64>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Row id (`0` when writing).
    pub id: i64,
    /// When (unix seconds).
    pub at: i64,
    /// Who (the OS user).
    pub actor: String,
    /// What, e.g. `accept_licence`.
    pub action: String,
    /// The repo it concerns, as `kind:org/name`.
    pub repo: Option<String>,
    /// Details.
    pub detail: Option<serde_json::Value>,
}

fn commit_id(
    conn: &Connection,
    kind: RepoKind,
    name: &str,
    sha: &CommitId,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT c.id FROM commits c JOIN repos r ON r.id = c.repo_id
         WHERE r.kind = ?1 AND r.name = ?2 AND c.sha = ?3",
    )?
    .query_row(params![kind, name, sha], |row| row.get(0))
    .optional()
}

/// Replaces the commit's detection; `Ok(false)` if the commit is not held.
pub(crate) fn record(
    conn: &mut Connection,
    kind: RepoKind,
    name: &str,
    sha: &CommitId,
    record: &LicenceRecord,
) -> rusqlite::Result<bool> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some(commit_id) = commit_id(&tx, kind, name, sha)? else {
        return Ok(false);
    };
    tx.prepare_cached("DELETE FROM licence_signals WHERE commit_id = ?1 AND source <> ?2")?
        .execute(params![commit_id, CARD_SOURCE])?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO licence_signals (commit_id, source, value, detail) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for signal in record.signals.iter().filter(|s| s.source != CARD_SOURCE) {
            insert.execute(params![
                commit_id,
                signal.source,
                signal.value,
                signal.detail
            ])?;
        }
    }
    tx.prepare_cached(
        "INSERT INTO licence_resolutions
             (commit_id, licence_key, confidence, conflicts_json, resolved_at, declared, detection_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (commit_id) DO UPDATE SET
             licence_key = excluded.licence_key,
             confidence = excluded.confidence,
             conflicts_json = excluded.conflicts_json,
             resolved_at = excluded.resolved_at,
             declared = excluded.declared,
             detection_json = excluded.detection_json",
    )?
    .execute(params![
        commit_id,
        record.licence_key,
        record.confidence,
        record.conflicts.to_string(),
        record.resolved_at,
        record.declared,
        record.detection.to_string()
    ])?;
    tx.commit()?;
    Ok(true)
}

type RawCommitLicence = (
    CommitId,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

/// Every held commit of the repo with its resolution, in the order first recorded.
pub(crate) fn history(
    conn: &Connection,
    kind: RepoKind,
    name: &str,
) -> Result<Vec<CommitLicence>, RegistryError> {
    let read = || -> rusqlite::Result<Vec<RawCommitLicence>> {
        conn.prepare_cached(
            "SELECT c.sha, c.fetched_at, l.licence_key, l.declared, l.confidence,
                    l.conflicts_json, l.detection_json, l.resolved_at
             FROM commits c JOIN repos r ON r.id = c.repo_id
             LEFT JOIN licence_resolutions l ON l.commit_id = c.id
             WHERE r.kind = ?1 AND r.name = ?2
             ORDER BY c.id",
        )?
        .query_map(params![kind, name], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
                row.get(7)?,
            ))
        })?
        .collect()
    };
    let rows = read().map_err(crate::error::read_error(|| {
        format!("read the licence history of {kind} {name}")
    }))?;
    let parse = |text: Option<String>, what: &str, sha: &CommitId| {
        text.map(|text| {
            serde_json::from_str(&text).map_err(|source| RegistryError::StoredJson {
                what: format!("{what} of {kind} {name} at {sha}"),
                source,
            })
        })
        .transpose()
    };
    rows.into_iter()
        .map(
            |(
                sha,
                fetched_at,
                licence_key,
                declared,
                confidence,
                conflicts,
                detection,
                resolved_at,
            )| {
                let conflicts = parse(conflicts, "licence conflicts", &sha)?
                    .unwrap_or_else(|| serde_json::json!([]));
                let detection = parse(detection, "licence detection", &sha)?;
                Ok(CommitLicence {
                    sha,
                    fetched_at,
                    licence_key,
                    declared,
                    confidence,
                    conflicts,
                    detection,
                    resolved_at,
                })
            },
        )
        .collect()
}

/// Every licence signal of a commit (card fields included), in the order recorded.
pub(crate) fn signals(
    conn: &Connection,
    kind: RepoKind,
    name: &str,
    sha: &CommitId,
) -> rusqlite::Result<Vec<LicenceSignalRecord>> {
    conn.prepare_cached(
        "SELECT s.source, s.value, s.detail FROM licence_signals s
         JOIN commits c ON c.id = s.commit_id JOIN repos r ON r.id = c.repo_id
         WHERE r.kind = ?1 AND r.name = ?2 AND c.sha = ?3 ORDER BY s.id",
    )?
    .query_map(params![kind, name, sha], |row| {
        Ok(LicenceSignalRecord {
            source: row.get(0)?,
            value: row.get(1)?,
            detail: row.get(2)?,
        })
    })?
    .collect()
}

/// Appends an audit log entry; returns its id.
pub(crate) fn log(conn: &Connection, entry: &AuditEntry) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO audit_log (at, actor, action, repo, detail_json) VALUES (?1, ?2, ?3, ?4, ?5)
         RETURNING id",
    )?
    .query_row(
        params![
            entry.at,
            entry.actor,
            entry.action,
            entry.repo,
            entry.detail.as_ref().map(ToString::to_string)
        ],
        |row| row.get(0),
    )
}

/// Audit log entries, oldest first; only those about `repo` when given.
pub(crate) fn audit_log(
    conn: &Connection,
    repo: Option<&str>,
) -> Result<Vec<AuditEntry>, RegistryError> {
    type Raw = (i64, i64, String, String, Option<String>, Option<String>);
    let rows: Vec<Raw> = (|| {
        conn.prepare_cached(
            "SELECT id, at, actor, action, repo, detail_json FROM audit_log
             WHERE (?1 IS NULL OR repo = ?1) ORDER BY id",
        )?
        .query_map([repo], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<Raw>>>()
    })()
    .map_err(crate::error::read_error(|| "read the audit log".to_owned()))?;
    rows.into_iter()
        .map(|(id, at, actor, action, repo, detail)| {
            let detail = detail
                .map(|text| {
                    serde_json::from_str(&text).map_err(|source| RegistryError::StoredJson {
                        what: format!("detail of audit log entry {id}"),
                        source,
                    })
                })
                .transpose()?;
            Ok(AuditEntry {
                id,
                at,
                actor,
                action,
                repo,
                detail,
            })
        })
        .collect()
}
