//! Recording a pull: [`record`] writes one [`SnapshotRecord`] (repo, commit, ref moves, tree and
//! card licence signals) in one transaction on the writer's connection.

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::digest::CommitId;
use crate::types::{BlobRecord, FileRecord, LicenceFields, SnapshotRecord};
use crate::{error::RegistryError, validate};

/// The `licence_signals.source` of fields taken from the model card.
pub(crate) const CARD_SOURCE: &str = "card";

/// Checks every value of `snapshot` before anything is written.
pub(crate) fn validate(snapshot: &SnapshotRecord) -> Result<(), RegistryError> {
    validate::repo_name(&snapshot.name)?;
    if let Some(gate) = &snapshot.gated {
        validate::gate(gate)?;
    }
    for reference in &snapshot.refs {
        validate::reference(reference)?;
    }
    for file in &snapshot.files {
        validate::file_path(&file.path)?;
        validate::git_sha("git oid", &file.git_oid)?;
    }
    Ok(())
}

/// Writes `snapshot` in one transaction and returns the commit's row id.
pub(crate) fn record(conn: &mut Connection, snapshot: &SnapshotRecord) -> rusqlite::Result<i64> {
    record_with_blobs(conn, snapshot, &[])
}

/// Writes the blob rows of `blobs`, then `snapshot`, in one transaction (an import: the blobs
/// were published to the store just before) and returns the commit's row id.
pub(crate) fn record_with_blobs(
    conn: &mut Connection,
    snapshot: &SnapshotRecord,
    blobs: &[BlobRecord],
) -> rusqlite::Result<i64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for blob in blobs {
        crate::blobs::upsert(&tx, blob)?;
    }
    let repo_id = upsert_repo(&tx, snapshot)?;
    let commit_id = upsert_commit(&tx, repo_id, snapshot)?;
    let mut refs: Vec<&str> = snapshot.refs.iter().map(String::as_str).collect();
    refs.sort_unstable();
    refs.dedup();
    for reference in refs {
        observe_ref(&tx, repo_id, reference, &snapshot.commit, snapshot.seen_at)?;
    }
    upsert_files(&tx, commit_id, &snapshot.files)?;
    replace_card_signals(&tx, commit_id, &snapshot.licence)?;
    tx.commit()?;
    Ok(commit_id)
}

fn upsert_repo(tx: &Transaction<'_>, s: &SnapshotRecord) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "INSERT INTO repos (kind, name, upstream, gated, private, first_seen)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (kind, name) DO UPDATE SET
             upstream = excluded.upstream,
             gated = excluded.gated,
             private = excluded.private,
             first_seen = min(first_seen, excluded.first_seen)
         RETURNING id",
    )?
    .query_row(
        params![s.kind, s.name, s.upstream, s.gated, s.private, s.seen_at],
        |row| row.get(0),
    )
}

fn upsert_commit(tx: &Transaction<'_>, repo_id: i64, s: &SnapshotRecord) -> rusqlite::Result<i64> {
    // `Some(null)` and `None` both mean "no card"; store SQL NULL for either.
    let card = s
        .card_json
        .as_ref()
        .filter(|card| !card.is_null())
        .map(ToString::to_string);
    tx.prepare_cached(
        "INSERT INTO commits (repo_id, sha, fetched_at, card_json) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (repo_id, sha) DO UPDATE SET
             fetched_at = excluded.fetched_at,
             card_json = excluded.card_json
         RETURNING id",
    )?
    .query_row(params![repo_id, s.commit, s.seen_at, card], |row| {
        row.get(0)
    })
}

/// Extends the ref's latest observation if it already points at `sha`, else starts a new one.
fn observe_ref(
    tx: &Transaction<'_>,
    repo_id: i64,
    reference: &str,
    sha: &CommitId,
    seen_at: i64,
) -> rusqlite::Result<()> {
    let latest: Option<(i64, CommitId)> = tx
        .prepare_cached(
            "SELECT id, sha FROM ref_observations WHERE repo_id = ?1 AND ref = ?2
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![repo_id, reference], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    match latest {
        Some((id, latest_sha)) if latest_sha == *sha => {
            tx.prepare_cached(
                "UPDATE ref_observations SET last_seen = max(last_seen, ?2) WHERE id = ?1",
            )?
            .execute(params![id, seen_at])?;
        }
        _ => {
            tx.prepare_cached(
                "INSERT INTO ref_observations (repo_id, ref, sha, first_seen, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
            )?
            .execute(params![repo_id, reference, sha, seen_at])?;
        }
    }
    Ok(())
}

/// Upserts the tree. A `None` sha256 never erases a known one, unless the file's git oid changed
/// (then the old digest describes other content).
fn upsert_files(
    tx: &Transaction<'_>,
    commit_id: i64,
    files: &[FileRecord],
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO files (commit_id, path, size, git_oid, sha256, lfs)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (commit_id, path) DO UPDATE SET
             size = excluded.size,
             sha256 = coalesce(
                 excluded.sha256,
                 CASE WHEN files.git_oid = excluded.git_oid THEN files.sha256 END
             ),
             git_oid = excluded.git_oid,
             lfs = excluded.lfs",
    )?;
    for file in files {
        insert.execute(params![
            commit_id,
            file.path,
            file.size,
            file.git_oid,
            file.sha256,
            file.lfs
        ])?;
    }
    Ok(())
}

fn replace_card_signals(
    tx: &Transaction<'_>,
    commit_id: i64,
    licence: &LicenceFields,
) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM licence_signals WHERE commit_id = ?1 AND source = ?2")?
        .execute(params![commit_id, CARD_SOURCE])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO licence_signals (commit_id, source, value, detail) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let fields = [
        ("license", &licence.license),
        ("license_name", &licence.license_name),
        ("license_link", &licence.license_link),
        ("gated", &licence.gated),
    ];
    for (field, value) in fields {
        if let Some(value) = value {
            insert.execute(params![commit_id, CARD_SOURCE, value, field])?;
        }
    }
    Ok(())
}

/// Sets one card field of `fields` from a `licence_signals` row (`detail` names the field).
pub(crate) fn set_card_field(fields: &mut LicenceFields, field: &str, value: String) {
    let slot = match field {
        "license" => &mut fields.license,
        "license_name" => &mut fields.license_name,
        "license_link" => &mut fields.license_link,
        "gated" => &mut fields.gated,
        _ => return,
    };
    *slot = Some(value);
}
