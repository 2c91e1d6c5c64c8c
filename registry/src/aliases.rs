//! What the upstream says of a repo beyond its files, on the [`Registry`]: the old names it
//! redirects to a repo (`repo_aliases`), its info JSON per commit (`upstream_info`) and the
//! expanded fields of tree entries (`upstream_path_info`), all from migration 0008.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use crate::digest::CommitId;
use crate::error::{RegistryError, read_error, write_error};
use crate::queries::repo_id;
use crate::registry::Registry;
use crate::types::RepoKind;
use crate::validate;

/// Largest info JSON kept per commit (the schema's CHECK says the same).
pub const MAX_UPSTREAM_INFO_BYTES: usize = 1 << 20;
/// Largest expanded fields kept per path (the schema's CHECK says the same).
pub const MAX_UPSTREAM_PATH_INFO_BYTES: usize = 64 << 10;

fn commit_row(
    conn: &rusqlite::Connection,
    kind: RepoKind,
    name: &str,
    commit: &CommitId,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT c.id FROM commits c JOIN repos r ON r.id = c.repo_id
         WHERE r.kind = ?1 AND r.name = ?2 AND c.sha = ?3",
    )?
    .query_row(params![kind, name, commit], |row| row.get(0))
    .optional()
}

impl Registry {
    /// Records that the upstream redirects `old` to the recorded repo `canonical`. Fails with
    /// [`RegistryError::UnknownRepo`] when `canonical` is not recorded.
    pub async fn record_alias(
        &self,
        kind: RepoKind,
        old: &str,
        canonical: &str,
        at: i64,
    ) -> Result<(), RegistryError> {
        validate::repo_name(old)?;
        validate::repo_name(canonical)?;
        if old == canonical {
            return Ok(());
        }
        let (old, canonical) = (old.to_owned(), canonical.to_owned());
        self.write(move |conn| {
            let Some(target) = repo_id(conn, kind, &canonical)
                .map_err(write_error(|| format!("find repo {canonical}")))?
            else {
                return Err(RegistryError::UnknownRepo {
                    kind,
                    name: canonical,
                });
            };
            conn.prepare_cached(
                "INSERT INTO repo_aliases (kind, name, repo_id, seen_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kind, name) DO UPDATE SET repo_id = ?3, seen_at = ?4",
            )
            .and_then(|mut s| s.execute(params![kind, old, target, at]))
            .map(|_| ())
            .map_err(write_error(|| format!("record alias {old} of {canonical}")))
        })
        .await
    }

    /// Forgets that `name` is an old name (the upstream answered under it directly). Not an
    /// error when it was not one.
    pub async fn forget_alias(&self, kind: RepoKind, name: &str) -> Result<(), RegistryError> {
        let name = name.to_owned();
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM repo_aliases WHERE kind = ?1 AND name = ?2")
                .and_then(|mut s| s.execute(params![kind, name]))
                .map(|_| ())
                .map_err(write_error(|| format!("forget alias {name}")))
        })
        .await
    }

    /// The name the repo once called `name` lives under now, if `name` is a recorded old name.
    pub async fn alias(&self, kind: RepoKind, name: &str) -> Result<Option<String>, RegistryError> {
        let name = name.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT r.name FROM repo_aliases a JOIN repos r ON r.id = a.repo_id
                 WHERE a.kind = ?1 AND a.name = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![kind, name], |row| row.get(0))
                    .optional()
            })
            .map_err(read_error(|| format!("look up alias {name}")))
        })
        .await
    }

    /// The old names that lead to the recorded repo `name`, sorted.
    pub async fn aliases_of(
        &self,
        kind: RepoKind,
        name: &str,
    ) -> Result<Vec<String>, RegistryError> {
        let name = name.to_owned();
        self.read(move |conn| {
            let query = || -> rusqlite::Result<Vec<String>> {
                conn.prepare_cached(
                    "SELECT a.name FROM repo_aliases a JOIN repos r ON r.id = a.repo_id
                     WHERE r.kind = ?1 AND r.name = ?2 ORDER BY a.name",
                )?
                .query_map(params![kind, name], |row| row.get(0))?
                .collect()
            };
            query().map_err(read_error(|| format!("list the old names of {name}")))
        })
        .await
    }

    /// Keeps the upstream's info JSON (an object, at most [`MAX_UPSTREAM_INFO_BYTES`]) of a
    /// recorded commit, replacing an earlier one.
    pub async fn record_upstream_info(
        &self,
        kind: RepoKind,
        name: &str,
        commit: &CommitId,
        info_json: String,
        at: i64,
    ) -> Result<(), RegistryError> {
        if info_json.len() > MAX_UPSTREAM_INFO_BYTES
            || !matches!(
                serde_json::from_str::<serde_json::Value>(&info_json),
                Ok(serde_json::Value::Object(_))
            )
        {
            return Err(RegistryError::InvalidInput {
                field: "upstream info",
                value: format!("{} bytes", info_json.len()),
                reason: "expected a JSON object of at most 1 MiB",
            });
        }
        let (name, commit) = (name.to_owned(), commit.to_owned());
        self.write(move |conn| {
            let id = commit_row(conn, kind, &name, &commit)
                .map_err(write_error(|| format!("find commit {commit} of {name}")))?;
            let Some(id) = id else {
                return Err(RegistryError::UnknownRepo { kind, name });
            };
            conn.prepare_cached(
                "INSERT INTO upstream_info (commit_id, info_json, fetched_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (commit_id) DO UPDATE SET info_json = ?2, fetched_at = ?3",
            )
            .and_then(|mut s| s.execute(params![id, info_json, at]))
            .map(|_| ())
            .map_err(write_error(|| {
                format!("keep the upstream info of {name} at {commit}")
            }))
        })
        .await
    }

    /// The upstream's info JSON kept for a commit, if any.
    pub async fn upstream_info(
        &self,
        kind: RepoKind,
        name: &str,
        commit: &CommitId,
    ) -> Result<Option<String>, RegistryError> {
        let (name, commit) = (name.to_owned(), commit.to_owned());
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT u.info_json FROM upstream_info u
                 JOIN commits c ON c.id = u.commit_id JOIN repos r ON r.id = c.repo_id
                 WHERE r.kind = ?1 AND r.name = ?2 AND c.sha = ?3",
            )
            .and_then(|mut s| {
                s.query_row(params![kind, name, commit], |row| row.get(0))
                    .optional()
            })
            .map_err(read_error(|| {
                format!("read the upstream info of {name} at {commit}")
            }))
        })
        .await
    }

    /// Keeps the expanded tree fields of paths of a recorded commit (each a JSON object of at
    /// most [`MAX_UPSTREAM_PATH_INFO_BYTES`]; bigger or malformed ones are skipped), replacing
    /// earlier ones; one transaction.
    pub async fn record_path_info(
        &self,
        kind: RepoKind,
        name: &str,
        commit: &CommitId,
        entries: Vec<(String, String)>,
    ) -> Result<(), RegistryError> {
        let entries: Vec<(String, String)> = entries
            .into_iter()
            .filter(|(path, json)| {
                validate::file_path(path).is_ok()
                    && json.len() <= MAX_UPSTREAM_PATH_INFO_BYTES
                    && matches!(
                        serde_json::from_str::<serde_json::Value>(json),
                        Ok(serde_json::Value::Object(_))
                    )
            })
            .collect();
        let (name, commit) = (name.to_owned(), commit.to_owned());
        self.write(move |conn| {
            let run = |conn: &mut rusqlite::Connection| -> rusqlite::Result<bool> {
                let tx = conn.transaction()?;
                let Some(id) = commit_row(&tx, kind, &name, &commit)? else {
                    return Ok(false);
                };
                {
                    let mut insert = tx.prepare_cached(
                        "INSERT INTO upstream_path_info (commit_id, path, expand_json)
                         VALUES (?1, ?2, ?3)
                         ON CONFLICT (commit_id, path) DO UPDATE SET expand_json = ?3",
                    )?;
                    for (path, json) in &entries {
                        insert.execute(params![id, path, json])?;
                    }
                }
                tx.commit()?;
                Ok(true)
            };
            match run(conn).map_err(write_error(|| {
                format!("keep expanded tree fields of {name} at {commit}")
            }))? {
                true => Ok(()),
                false => Err(RegistryError::UnknownRepo { kind, name }),
            }
        })
        .await
    }

    /// The expanded tree fields kept for `paths` of a commit, by path (paths without any are
    /// left out).
    pub async fn path_info(
        &self,
        kind: RepoKind,
        name: &str,
        commit: &CommitId,
        paths: Vec<String>,
    ) -> Result<HashMap<String, String>, RegistryError> {
        let (name, commit) = (name.to_owned(), commit.to_owned());
        self.read(move |conn| {
            let query = || -> rusqlite::Result<HashMap<String, String>> {
                let mut found = HashMap::new();
                let Some(id) = commit_row(conn, kind, &name, &commit)? else {
                    return Ok(found);
                };
                let mut select = conn.prepare_cached(
                    "SELECT expand_json FROM upstream_path_info WHERE commit_id = ?1 AND path = ?2",
                )?;
                for path in paths {
                    if let Some(json) = select
                        .query_row(params![id, path], |row| row.get::<_, String>(0))
                        .optional()?
                    {
                        found.insert(path, json);
                    }
                }
                Ok(found)
            };
            query().map_err(read_error(|| {
                format!("read expanded tree fields of {name} at {commit}")
            }))
        })
        .await
    }
}
