//! Read queries over repos, commits, refs and trees: plain synchronous functions over a read
//! [`Connection`], wrapped into async methods by [`Registry`](crate::Registry).
//!
//! "Held" is always derived here, never stored: a file is held when its sha256 is known and a
//! `blobs` row exists for it. A ref's current target is its latest observation (highest id).

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use crate::digest::{CommitId, Sha256};
use crate::snapshot::{CARD_SOURCE, set_card_field};
use crate::types::{
    BlobUse, CommitDetail, FileRow, LicenceFields, RefObservation, RepoKind, RepoSummary,
    RevisionSummary,
};
use crate::validate::is_git_sha;

/// `(ref, sha)` of the latest observation of every ref; `?1` filters by repo id unless NULL.
const LATEST_REFS: &str = "
    SELECT o.repo_id, o.ref, o.sha FROM ref_observations o
    WHERE (?1 IS NULL OR o.repo_id = ?1)
      AND o.id = (SELECT max(id) FROM ref_observations
                  WHERE repo_id = o.repo_id AND ref = o.ref)
    ORDER BY o.ref";

/// The repo's row id.
pub(crate) fn repo_id(
    conn: &Connection,
    kind: RepoKind,
    name: &str,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT id FROM repos WHERE kind = ?1 AND name = ?2")?
        .query_row(params![kind, name], |row| row.get(0))
        .optional()
}

/// A held commit's sha, or the sha a ref last pointed at.
pub(crate) fn resolve(
    conn: &Connection,
    kind: RepoKind,
    name: &str,
    revision: &str,
) -> rusqlite::Result<Option<CommitId>> {
    let Some(repo_id) = repo_id(conn, kind, name)? else {
        return Ok(None);
    };
    if is_git_sha(revision) {
        let held: Option<CommitId> = conn
            .prepare_cached("SELECT sha FROM commits WHERE repo_id = ?1 AND sha = ?2")?
            .query_row(params![repo_id, revision], |row| row.get(0))
            .optional()?;
        if held.is_some() {
            return Ok(held);
        }
        // Not a held commit; it might still be a (strangely named) ref.
    }
    conn.prepare_cached(
        "SELECT sha FROM ref_observations WHERE repo_id = ?1 AND ref = ?2
         ORDER BY id DESC LIMIT 1",
    )?
    .query_row(params![repo_id, revision], |row| row.get(0))
    .optional()
}

/// The card licence fields of every commit with any (or of one commit, when `commit_id` is set).
fn card_licences(
    conn: &Connection,
    commit_id: Option<i64>,
) -> rusqlite::Result<HashMap<i64, LicenceFields>> {
    let mut statement = conn.prepare_cached(
        "SELECT commit_id, detail, value FROM licence_signals
         WHERE source = ?1 AND (?2 IS NULL OR commit_id = ?2) AND detail IS NOT NULL",
    )?;
    let mut rows = statement.query(params![CARD_SOURCE, commit_id])?;
    let mut licences: HashMap<i64, LicenceFields> = HashMap::new();
    while let Some(row) = rows.next()? {
        let field: String = row.get(1)?;
        set_card_field(
            licences.entry(row.get(0)?).or_default(),
            &field,
            row.get(2)?,
        );
    }
    Ok(licences)
}

/// Every repo with its held revisions and what of each is held.
pub(crate) fn list_repos(conn: &Connection) -> rusqlite::Result<Vec<RepoSummary>> {
    let mut latest_refs: HashMap<(i64, CommitId), Vec<String>> = HashMap::new();
    {
        let mut statement = conn.prepare_cached(LATEST_REFS)?;
        let mut rows = statement.query([Option::<i64>::None])?;
        while let Some(row) = rows.next()? {
            latest_refs
                .entry((row.get(0)?, row.get(2)?))
                .or_default()
                .push(row.get(1)?);
        }
    }
    let mut licences = card_licences(conn, None)?;

    let mut revisions: HashMap<i64, Vec<RevisionSummary>> = HashMap::new();
    {
        // `total()` (a float) where `sum()` would fail the whole listing with "integer
        // overflow" because of one absurd row.
        let mut statement = conn.prepare_cached(
            "SELECT c.id, c.repo_id, c.sha, c.fetched_at,
                    count(f.path),
                    count(b.sha256),
                    max(CAST(total(f.size) AS INTEGER), 0),
                    max(CAST(total(CASE WHEN b.sha256 IS NOT NULL THEN f.size END) AS INTEGER), 0),
                    c.last_served,
                    EXISTS (SELECT 1 FROM pins p WHERE p.repo_id = c.repo_id AND p.sha = c.sha)
             FROM commits c
             LEFT JOIN files f ON f.commit_id = c.id
             LEFT JOIN blobs b ON b.sha256 = f.sha256
             GROUP BY c.id
             ORDER BY c.fetched_at DESC, c.id DESC",
        )?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let commit_id: i64 = row.get(0)?;
            let repo_id: i64 = row.get(1)?;
            let sha: CommitId = row.get(2)?;
            let refs = latest_refs.remove(&(repo_id, sha)).unwrap_or_default();
            revisions.entry(repo_id).or_default().push(RevisionSummary {
                sha,
                refs,
                fetched_at: row.get(3)?,
                files: row.get(4)?,
                files_held: row.get(5)?,
                bytes_total: row.get(6)?,
                bytes_held: row.get(7)?,
                last_served: row.get(8)?,
                pinned: row.get(9)?,
                licence: licences.remove(&commit_id).unwrap_or_default(),
            });
        }
    }

    let mut statement = conn.prepare_cached(
        "SELECT id, kind, name, gated, private, first_seen FROM repos
         ORDER BY CASE kind WHEN 'model' THEN 0 ELSE 1 END, name",
    )?;
    statement
        .query_map([], |row| {
            let repo_id: i64 = row.get(0)?;
            Ok(RepoSummary {
                kind: row.get(1)?,
                name: row.get(2)?,
                gated: row.get(3)?,
                private: row.get(4)?,
                first_seen: row.get(5)?,
                revisions: revisions.remove(&repo_id).unwrap_or_default(),
            })
        })?
        .collect()
}

/// Refs whose latest observation is `sha`, sorted.
fn refs_at(conn: &Connection, repo_id: i64, sha: &CommitId) -> rusqlite::Result<Vec<String>> {
    let mut statement = conn.prepare_cached(LATEST_REFS)?;
    let mut rows = statement.query([repo_id])?;
    let mut refs = Vec::new();
    while let Some(row) = rows.next()? {
        if sha == row.get_ref(2)?.as_str()? {
            refs.push(row.get(1)?);
        }
    }
    Ok(refs)
}

/// The columns of [`FileRow`], `held` derived; expects `files f LEFT JOIN blobs b`.
const FILE_ROW_COLUMNS: &str = "f.path, f.size, f.git_oid, f.sha256, f.lfs, b.sha256 IS NOT NULL";

fn file_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<FileRow> {
    Ok(FileRow {
        path: row.get(0)?,
        size: row.get(1)?,
        git_oid: row.get(2)?,
        sha256: row.get(3)?,
        lfs: row.get(4)?,
        held: row.get(5)?,
    })
}

/// A commit's detail with its card still as stored text; `Registry` parses it.
pub(crate) struct RawCommitDetail {
    pub(crate) detail: CommitDetail,
    pub(crate) card_text: Option<String>,
}

pub(crate) fn commit_detail(
    conn: &Connection,
    kind: RepoKind,
    name: &str,
    sha: &CommitId,
) -> rusqlite::Result<Option<RawCommitDetail>> {
    let head = conn
        .prepare_cached(
            "SELECT r.id, r.upstream, r.gated, r.private, c.id, c.fetched_at, c.card_json
             FROM repos r JOIN commits c ON c.repo_id = r.id
             WHERE r.kind = ?1 AND r.name = ?2 AND c.sha = ?3",
        )?
        .query_row(params![kind, name, sha], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, bool>(3)?,
                row.get::<_, i64>(4)?,
                row.get::<_, i64>(5)?,
                row.get::<_, Option<String>>(6)?,
            ))
        })
        .optional()?;
    let Some((repo_id, upstream, gated, private, commit_id, fetched_at, card_text)) = head else {
        return Ok(None);
    };
    let files = conn
        .prepare_cached(&format!(
            "SELECT {FILE_ROW_COLUMNS} FROM files f LEFT JOIN blobs b ON b.sha256 = f.sha256
             WHERE f.commit_id = ?1 ORDER BY f.path"
        ))?
        .query_map([commit_id], file_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let licence = card_licences(conn, Some(commit_id))?
        .remove(&commit_id)
        .unwrap_or_default();
    Ok(Some(RawCommitDetail {
        detail: CommitDetail {
            kind,
            name: name.to_owned(),
            sha: sha.to_owned(),
            fetched_at,
            card_json: None,
            refs: refs_at(conn, repo_id, sha)?,
            files,
            licence,
            upstream,
            gated,
            private,
        },
        card_text,
    }))
}

/// One file of a held commit, or `None` when the commit or the path is unknown.
pub(crate) fn file(
    conn: &Connection,
    kind: RepoKind,
    name: &str,
    sha: &CommitId,
    path: &str,
) -> rusqlite::Result<Option<FileRow>> {
    conn.prepare_cached(&format!(
        "SELECT {FILE_ROW_COLUMNS}
         FROM repos r
         JOIN commits c ON c.repo_id = r.id
         JOIN files f ON f.commit_id = c.id
         LEFT JOIN blobs b ON b.sha256 = f.sha256
         WHERE r.kind = ?1 AND r.name = ?2 AND c.sha = ?3 AND f.path = ?4"
    ))?
    .query_row(params![kind, name, sha, path], file_row)
    .optional()
}

/// Every observation of every ref of the repo, oldest first (in the order they were recorded).
pub(crate) fn ref_history(
    conn: &Connection,
    repo_id: i64,
) -> rusqlite::Result<Vec<RefObservation>> {
    conn.prepare_cached(
        "SELECT ref, sha, first_seen, last_seen FROM ref_observations
         WHERE repo_id = ?1 ORDER BY id",
    )?
    .query_map([repo_id], |row| {
        Ok(RefObservation {
            reference: row.get(0)?,
            sha: row.get(1)?,
            first_seen: row.get(2)?,
            last_seen: row.get(3)?,
        })
    })?
    .collect()
}

/// Every (repo, commit, path) whose content has this sha256, held or not.
pub(crate) fn commits_using_blob(
    conn: &Connection,
    sha256: &Sha256,
) -> rusqlite::Result<Vec<BlobUse>> {
    conn.prepare_cached(
        "SELECT r.kind, r.name, c.sha, f.path
         FROM files f
         JOIN commits c ON c.id = f.commit_id
         JOIN repos r ON r.id = c.repo_id
         WHERE f.sha256 = ?1
         ORDER BY r.kind, r.name, c.fetched_at DESC, c.sha, f.path",
    )?
    .query_map([sha256], |row| {
        Ok(BlobUse {
            kind: row.get(0)?,
            name: row.get(1)?,
            commit: row.get(2)?,
            path: row.get(3)?,
        })
    })?
    .collect()
}

/// Whether the repo holds this commit.
pub(crate) fn commit_exists(
    conn: &Connection,
    repo_id: i64,
    sha: &CommitId,
) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM commits WHERE repo_id = ?1 AND sha = ?2")?
        .exists(params![repo_id, sha])
}
