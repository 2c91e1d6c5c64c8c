//! Provenance of derived artifacts: which commit was made from which, by what tool, how.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::digest::CommitId;
use crate::error::{RegistryError, read_error, write_error};
use crate::registry::Registry;
use crate::types::RepoKind;

/// One side of a derivation: a commit of a repo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRef {
    /// Repo kind.
    pub kind: RepoKind,
    /// `org/name`.
    pub name: String,
    /// 40-hex commit.
    pub sha: CommitId,
}

/// A derived commit and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Derivation {
    /// The derived commit.
    pub derived: CommitRef,
    /// The commit it was made from.
    pub source: CommitRef,
    /// The tool, e.g. `larder convert`.
    pub tool: String,
    /// The exact parameters, as JSON.
    pub params: serde_json::Value,
    /// The tool's version.
    pub tool_version: String,
    /// Unix seconds.
    pub created_at: i64,
}

fn commit_id(conn: &rusqlite::Connection, commit: &CommitRef) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT c.id FROM commits c JOIN repos r ON r.id = c.repo_id
         WHERE r.kind = ?1 AND r.name = ?2 AND c.sha = ?3",
        params![commit.kind.as_str(), commit.name, commit.sha],
        |row| row.get(0),
    )
    .optional()
}

impl Registry {
    /// Record that `derivation.derived` was made from `derivation.source`. Both commits must
    /// be recorded already (record the derived snapshot first). Recording it again replaces it.
    pub async fn record_derivation(&self, derivation: Derivation) -> Result<(), RegistryError> {
        self.write(move |conn| {
            let failed = write_error(|| {
                format!(
                    "record that {}@{} derives from {}@{}",
                    derivation.derived.name,
                    derivation.derived.sha,
                    derivation.source.name,
                    derivation.source.sha
                )
            });
            let ids = (|| {
                Ok::<_, rusqlite::Error>((
                    commit_id(conn, &derivation.derived)?,
                    commit_id(conn, &derivation.source)?,
                ))
            })();
            let (Some(derived), Some(source)) = ids.map_err(failed)? else {
                return Err(RegistryError::UnknownCommit {
                    kind: derivation.derived.kind,
                    name: derivation.derived.name.clone(),
                    sha: derivation.derived.sha,
                });
            };
            conn.execute(
                "INSERT INTO derivations
                   (derived_commit_id, source_commit_id, tool, params_json, tool_version, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (derived_commit_id, source_commit_id) DO UPDATE SET
                   tool = excluded.tool, params_json = excluded.params_json,
                   tool_version = excluded.tool_version, created_at = excluded.created_at",
                params![
                    derived,
                    source,
                    derivation.tool,
                    derivation.params.to_string(),
                    derivation.tool_version,
                    derivation.created_at
                ],
            )
            .map_err(write_error(|| "record a derivation".to_owned()))?;
            Ok(())
        })
        .await
    }

    /// The derivations whose derived commit is `kind name@sha`.
    pub async fn derivations_of(
        &self,
        kind: RepoKind,
        name: &str,
        sha: &CommitId,
    ) -> Result<Vec<Derivation>, RegistryError> {
        let (name, sha) = (name.to_owned(), sha.to_owned());
        self.read(move |conn| {
            let query = || -> rusqlite::Result<Vec<Derivation>> {
                let mut statement = conn.prepare(
                    "SELECT sr.kind, sr.name, sc.sha, d.tool, d.params_json, d.tool_version, d.created_at
                     FROM derivations d
                     JOIN commits dc ON dc.id = d.derived_commit_id
                     JOIN repos dr ON dr.id = dc.repo_id
                     JOIN commits sc ON sc.id = d.source_commit_id
                     JOIN repos sr ON sr.id = sc.repo_id
                     WHERE dr.kind = ?1 AND dr.name = ?2 AND dc.sha = ?3
                     ORDER BY d.id",
                )?;
                let rows = statement.query_map(params![kind.as_str(), name, sha], |row| {
                    let source_kind: String = row.get(0)?;
                    let params_json: String = row.get(4)?;
                    Ok(Derivation {
                        derived: CommitRef {
                            kind,
                            name: name.clone(),
                            sha,
                        },
                        source: CommitRef {
                            kind: source_kind.parse().unwrap_or(RepoKind::Model),
                            name: row.get(1)?,
                            sha: row.get(2)?,
                        },
                        tool: row.get(3)?,
                        params: serde_json::from_str(&params_json)
                            .unwrap_or(serde_json::Value::Null),
                        tool_version: row.get(5)?,
                        created_at: row.get(6)?,
                    })
                })?;
                rows.collect()
            };
            query().map_err(read_error(|| "read derivations".to_owned()))
        })
        .await
    }

    /// The derivations made from any held commit of the repo `kind name` (its conversions),
    /// oldest first.
    pub async fn derivations_from(
        &self,
        kind: RepoKind,
        name: &str,
    ) -> Result<Vec<Derivation>, RegistryError> {
        let name = name.to_owned();
        self.read(move |conn| {
            let query = || -> rusqlite::Result<Vec<Derivation>> {
                let mut statement = conn.prepare(
                    "SELECT dr.kind, dr.name, dc.sha, sc.sha, d.tool, d.params_json,
                            d.tool_version, d.created_at
                     FROM derivations d
                     JOIN commits dc ON dc.id = d.derived_commit_id
                     JOIN repos dr ON dr.id = dc.repo_id
                     JOIN commits sc ON sc.id = d.source_commit_id
                     JOIN repos sr ON sr.id = sc.repo_id
                     WHERE sr.kind = ?1 AND sr.name = ?2
                     ORDER BY d.id",
                )?;
                let rows = statement.query_map(params![kind.as_str(), name], |row| {
                    let derived_kind: String = row.get(0)?;
                    let params_json: String = row.get(5)?;
                    Ok(Derivation {
                        derived: CommitRef {
                            kind: derived_kind.parse().unwrap_or(RepoKind::Model),
                            name: row.get(1)?,
                            sha: row.get(2)?,
                        },
                        source: CommitRef {
                            kind,
                            name: name.clone(),
                            sha: row.get(3)?,
                        },
                        tool: row.get(4)?,
                        params: serde_json::from_str(&params_json)
                            .unwrap_or(serde_json::Value::Null),
                        tool_version: row.get(6)?,
                        created_at: row.get(7)?,
                    })
                })?;
                rows.collect()
            };
            query().map_err(read_error(|| "read derivations".to_owned()))
        })
        .await
    }
}
