//! Schema migrations: the numbered `.sql` files of `registry/migrations/`, embedded in the
//! binary and applied in order at open.
//!
//! The schema version is `PRAGMA user_version`. Each migration runs in its own `BEGIN IMMEDIATE`
//! transaction together with the version bump, so a crash or error leaves the database at the
//! previous version, and two processes opening the same database at once cannot both apply one.
//! A database whose version is newer than [`LATEST`] is refused with
//! [`RegistryError::SchemaTooNew`] rather than touched.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::RegistryError;

/// One embedded migration.
pub(crate) struct Migration {
    /// The schema version after it is applied (its file's number).
    pub(crate) version: i64,
    /// The file name without `.sql`.
    pub(crate) name: &'static str,
    /// The SQL, run as one batch.
    pub(crate) sql: &'static str,
}

/// All migrations, in order. Versions are 1, 2, 3, ... with no gaps (checked by a test).
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_initial",
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "0002_licence_detections",
        sql: include_str!("../migrations/0002_licence_detections.sql"),
    },
    Migration {
        version: 3,
        name: "0003_daemon",
        sql: include_str!("../migrations/0003_daemon.sql"),
    },
    Migration {
        version: 4,
        name: "0004_job_error_kind",
        sql: include_str!("../migrations/0004_job_error_kind.sql"),
    },
    Migration {
        version: 5,
        name: "0005_xet_chunks",
        sql: include_str!("../migrations/0005_xet_chunks.sql"),
    },
    Migration {
        version: 6,
        name: "0006_xet_terms",
        sql: include_str!("../migrations/0006_xet_terms.sql"),
    },
    Migration {
        version: 7,
        name: "0007_xet_mirror",
        sql: include_str!("../migrations/0007_xet_mirror.sql"),
    },
    Migration {
        version: 8,
        name: "0008_upstream_fidelity",
        sql: include_str!("../migrations/0008_upstream_fidelity.sql"),
    },
    Migration {
        version: 9,
        name: "0009_blob_stamps",
        sql: include_str!("../migrations/0009_blob_stamps.sql"),
    },
    Migration {
        version: 10,
        name: "0010_traffic",
        sql: include_str!("../migrations/0010_traffic.sql"),
    },
];

/// The schema version this binary migrates to.
pub const LATEST: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// Brings the database up to [`LATEST`], applying each missing migration in its own transaction.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), RegistryError> {
    let found = ensure_supported(conn, path)?;
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        let applied = apply(conn, migration).map_err(|source| RegistryError::Migrate {
            path: path.to_owned(),
            version: migration.version,
            name: migration.name,
            source,
        })?;
        match applied {
            Applied::Now => {
                tracing::info!(
                    version = migration.version,
                    name = migration.name,
                    "migrated registry"
                )
            }
            Applied::Already => {}
            Applied::TooNew(found) => check_not_too_new(found)?,
        }
    }
    Ok(())
}

enum Applied {
    Now,
    /// Another connection applied it between our first look and our transaction.
    Already,
    /// Another process migrated past what we know meanwhile.
    TooNew(i64),
}

fn apply(conn: &mut Connection, migration: &Migration) -> rusqlite::Result<Applied> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current = user_version(&tx)?;
    if current > LATEST {
        return Ok(Applied::TooNew(current));
    }
    if current >= migration.version {
        return Ok(Applied::Already);
    }
    tx.execute_batch(migration.sql)?;
    tx.pragma_update(None, "user_version", migration.version)?;
    tx.commit()?;
    Ok(Applied::Now)
}

/// Fails with [`RegistryError::SchemaTooNew`] if the database is newer than this binary;
/// returns its version otherwise. Reads only.
pub(crate) fn ensure_supported(conn: &Connection, path: &Path) -> Result<i64, RegistryError> {
    let found = user_version(conn).map_err(|source| RegistryError::Configure {
        path: path.to_owned(),
        source,
    })?;
    check_not_too_new(found)?;
    Ok(found)
}

fn check_not_too_new(found: i64) -> Result<(), RegistryError> {
    if found > LATEST {
        return Err(RegistryError::SchemaTooNew {
            found,
            supported: LATEST,
        });
    }
    Ok(())
}

/// Reads `PRAGMA user_version`.
pub(crate) fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_contiguous_and_match_file_names() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            let expected = i64::try_from(index).unwrap() + 1;
            assert_eq!(migration.version, expected, "{}", migration.name);
            assert!(
                migration.name.starts_with(&format!("{expected:04}_")),
                "{} should be numbered {expected:04}",
                migration.name
            );
        }
        assert_eq!(LATEST, MIGRATIONS.last().unwrap().version);
    }

    #[test]
    fn every_migration_applies_to_an_empty_database_with_valid_foreign_keys() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        migrate(&mut conn, Path::new(":memory:")).unwrap();
        assert_eq!(user_version(&conn).unwrap(), LATEST);
        let problems: Vec<String> = conn
            .prepare("PRAGMA foreign_key_check")
            .unwrap()
            .query_map([], |row| row.get::<_, String>(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        // Every foreign key must point at a table and columns that exist (SQLite only checks
        // that lazily): preparing a join across each one fails otherwise.
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for table in &tables {
            let keys: Vec<(String, String, String)> = conn
                .prepare(&format!("PRAGMA foreign_key_list({table})"))
                .unwrap()
                .query_map([], |row| Ok((row.get(2)?, row.get(3)?, row.get(4)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            for (parent, from, to) in keys {
                conn.prepare(&format!(
                    "SELECT 1 FROM {table} c JOIN {parent} p ON c.{from} = p.{to}"
                ))
                .unwrap_or_else(|err| panic!("{table}.{from} -> {parent}.{to}: {err}"));
            }
        }
    }
}
