//! The `blobs` table: what the content-addressed store holds. Writes run on the writer thread,
//! reads on a read connection; both are plain synchronous functions over a [`Connection`].

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::digest::Sha256;
use crate::types::BlobRecord;

/// Inserts or replaces the record of `blob` (the latest publication wins: location, size, times).
pub(crate) fn upsert(conn: &Connection, blob: &BlobRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO blobs (sha256, size, stored_at, verified_at, location)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (sha256) DO UPDATE SET
             size = excluded.size,
             stored_at = excluded.stored_at,
             verified_at = excluded.verified_at,
             location = excluded.location",
    )?
    .execute(params![
        blob.sha256,
        blob.size,
        blob.stored_at,
        blob.verified_at,
        blob.location
    ])?;
    Ok(())
}

/// Sets `verified_at`; returns whether the blob was recorded.
pub(crate) fn mark_verified(conn: &Connection, sha256: &Sha256, at: i64) -> rusqlite::Result<bool> {
    let changed = conn
        .prepare_cached("UPDATE blobs SET verified_at = ?2 WHERE sha256 = ?1")?
        .execute(params![sha256, at])?;
    Ok(changed > 0)
}

/// Records that `sha256`'s file matched its digest while it looked like `stamp`, now (`at`).
/// Returns whether the blob was recorded.
pub(crate) fn set_stamp(
    conn: &Connection,
    sha256: &Sha256,
    stamp: &str,
    at: i64,
) -> rusqlite::Result<bool> {
    if !mark_verified(conn, sha256, at)? {
        return Ok(false);
    }
    conn.prepare_cached(
        "INSERT INTO blob_stamps (sha256, stamp) VALUES (?1, ?2)
         ON CONFLICT (sha256) DO UPDATE SET stamp = excluded.stamp",
    )?
    .execute(params![sha256, stamp])?;
    Ok(true)
}

/// The stamp of `sha256`'s file when it was last found to match its digest.
pub(crate) fn stamp(conn: &Connection, sha256: &Sha256) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT stamp FROM blob_stamps WHERE sha256 = ?1")?
        .query_row([sha256], |row| row.get(0))
        .optional()
}

/// The first blob after `after` (in digest order) not verified in the `min_age` seconds before
/// `now`: the scrub's next one.
pub(crate) fn next_to_scrub(
    conn: &Connection,
    after: &str,
    now: i64,
    min_age: i64,
) -> rusqlite::Result<Option<Sha256>> {
    conn.prepare_cached(
        "SELECT sha256 FROM blobs
         WHERE sha256 > ?1 AND (verified_at IS NULL OR verified_at <= ?2)
         ORDER BY sha256 LIMIT 1",
    )?
    .query_row(params![after, now.saturating_sub(min_age)], |row| {
        row.get(0)
    })
    .optional()
}

/// The first held blob after `after` (in digest order) that some file names as LFS content and
/// that has no chunk index yet: the mirror's background indexer's next one.
pub(crate) fn next_unindexed(conn: &Connection, after: &str) -> rusqlite::Result<Option<Sha256>> {
    conn.prepare_cached(
        "SELECT b.sha256 FROM blobs b
         WHERE b.sha256 > ?1
           AND NOT EXISTS (SELECT 1 FROM xet_files x WHERE x.sha256 = b.sha256)
           AND EXISTS (SELECT 1 FROM files f WHERE f.sha256 = b.sha256 AND f.lfs = 1)
         ORDER BY b.sha256 LIMIT 1",
    )?
    .query_row([after], |row| row.get(0))
    .optional()
}

/// Forgets the blob and its chunk index rows; the `files` rows naming it stay and become
/// "not held".
pub(crate) fn remove(conn: &Connection, sha256: &Sha256) -> rusqlite::Result<()> {
    crate::chunk_index::remove(conn, sha256)?;
    conn.prepare_cached("DELETE FROM blob_stamps WHERE sha256 = ?1")?
        .execute([sha256])?;
    conn.prepare_cached("DELETE FROM blobs WHERE sha256 = ?1")?
        .execute([sha256])?;
    // Its Xet terms (learnt for deltas) go with it.
    conn.prepare_cached("DELETE FROM xet_terms WHERE blob = ?1")?
        .execute([sha256])?;
    Ok(())
}

const COLUMNS: &str = "sha256, size, location, stored_at, verified_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<BlobRecord> {
    Ok(BlobRecord {
        sha256: row.get(0)?,
        size: row.get(1)?,
        location: row.get(2)?,
        stored_at: row.get(3)?,
        verified_at: row.get(4)?,
    })
}

/// One blob by digest.
pub(crate) fn get(conn: &Connection, sha256: &Sha256) -> rusqlite::Result<Option<BlobRecord>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM blobs WHERE sha256 = ?1"))?
        .query_row([sha256], from_row)
        .optional()
}

/// Every blob, ordered by digest.
pub(crate) fn all(conn: &Connection) -> rusqlite::Result<Vec<BlobRecord>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM blobs ORDER BY sha256"))?
        .query_map([], from_row)?
        .collect()
}

/// The sha256 of content with this git blob id, if some commit's file has it and it is held.
pub(crate) fn sha256_for_git_oid(
    conn: &Connection,
    git_oid: &str,
) -> rusqlite::Result<Option<Sha256>> {
    conn.prepare_cached(
        "SELECT f.sha256 FROM files f JOIN blobs b ON b.sha256 = f.sha256
         WHERE f.git_oid = ?1 LIMIT 1",
    )?
    .query_row([git_oid], |row| row.get(0))
    .optional()
}
