//! Opening, migrating and reopening databases.

use larder_registry::{Registry, RegistryError, SCHEMA_VERSION};
use rusqlite::Connection;

use crate::{open, sha, snapshot};

const TABLES: [&str; 12] = [
    "repos",
    "commits",
    "ref_observations",
    "files",
    "blobs",
    "licence_signals",
    "licence_resolutions",
    "derivations",
    "jobs",
    "pins",
    "tracked",
    "audit_log",
];

fn tables(conn: &Connection) -> Vec<String> {
    conn.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test]
async fn a_new_database_gets_the_whole_schema_in_wal_mode() {
    let (dir, registry) = open();
    let conn = Connection::open(registry.path()).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let found = tables(&conn);
    for table in TABLES {
        assert!(
            found.iter().any(|t| t == table),
            "missing table {table} in {found:?}"
        );
    }
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert!(dir.path().join("registry.db").exists());
}

#[tokio::test]
async fn reopening_is_idempotent_and_keeps_the_data() {
    let (dir, registry) = open();
    let path = registry.path().to_owned();
    registry
        .record_snapshot(snapshot("org/a", &sha(1), &["main"], 10, vec![]))
        .await
        .unwrap();
    let before = registry.list_repos().await.unwrap();
    drop(registry);

    for _ in 0..2 {
        let registry = Registry::open(&path).unwrap();
        assert_eq!(registry.list_repos().await.unwrap(), before);
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }
    assert_eq!(before.len(), 1);
    drop(dir);
}

#[test]
fn a_database_from_a_newer_larder_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let err = Registry::open(&path).unwrap_err();
    match &err {
        RegistryError::SchemaTooNew { found, supported } => {
            assert_eq!(*found, SCHEMA_VERSION + 1);
            assert_eq!(*supported, SCHEMA_VERSION);
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    // The advice is the CLI's to give (a `hint:` line), not part of the message.
    assert!(!err.to_string().contains("hint:"), "{err}");
    let conn = Connection::open(&path).unwrap();
    assert!(
        tables(&conn).is_empty(),
        "a newer database must not be migrated"
    );
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(
        mode, "delete",
        "a newer database must not be switched to WAL"
    );
}

#[test]
fn opening_in_a_missing_directory_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope").join("registry.db");
    let err = Registry::open(&path).unwrap_err();
    assert!(matches!(err, RegistryError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn many_openers_of_a_new_database_all_succeed() {
    // Two `larder` processes started together both create and migrate the same new file.
    for _ in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.db");
        let openers: Vec<_> = (0..6)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || larder_registry::Registry::open(&path).map(|_| ()))
            })
            .collect();
        for opener in openers {
            opener
                .join()
                .unwrap()
                .expect("every concurrent open succeeds");
        }
    }
}

#[tokio::test]
async fn a_job_that_failed_before_0004_still_reads_without_a_kind() {
    // A registry as Larder left it at schema 3: the first three migrations, then a failed job.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    {
        let conn = Connection::open(&path).unwrap();
        for sql in [
            include_str!("../../migrations/0001_initial.sql"),
            include_str!("../../migrations/0002_licence_detections.sql"),
            include_str!("../../migrations/0003_daemon.sql"),
        ] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.execute(
            "INSERT INTO jobs (kind, spec_json, state, error, created_at, updated_at)
             VALUES ('pull', '{\"repo\":\"acme/old\"}', 'failed', 'it broke', 10, 11)",
            [],
        )
        .unwrap();
    }
    let registry = Registry::open(&path).unwrap();
    let job = registry.job(1).await.unwrap().expect("the old job");
    assert_eq!(job.state, larder_registry::JobState::Failed);
    assert_eq!(job.error.as_deref(), Some("it broke"));
    assert_eq!(job.error_kind, None);
    assert_eq!(job.spec, serde_json::json!({"repo": "acme/old"}));
    assert_eq!(registry.jobs().await.unwrap(), vec![job]);
    let conn = Connection::open(&path).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}
