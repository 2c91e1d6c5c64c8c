//! Opening and configuring SQLite connections: the one read-write connection the writer thread
//! owns, and the read-only connections queries run on.
//!
//! Every connection waits up to [`BUSY_TIMEOUT`] for a lock instead of failing at once, and
//! enforces foreign keys. The database runs in WAL mode (set once, on the write connection; it is
//! persistent), so readers never block the writer and see every committed write.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::RegistryError;

/// How long a connection waits on a lock held by another connection or process.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens (creating it if needed) the read-write connection and applies the per-connection
/// PRAGMAs; see [`enable_wal`] for the journal mode.
pub(crate) fn open_write(path: &Path) -> Result<Connection, RegistryError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|source| RegistryError::Open {
        path: path.to_owned(),
        source,
    })?;
    configure(&conn).map_err(|source| RegistryError::Configure {
        path: path.to_owned(),
        source,
    })?;
    Ok(conn)
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}

/// Switches the database to WAL mode (persistent: later connections inherit it). Done after the
/// schema version check, so a database this binary refuses is left exactly as it was.
///
/// When two processes open a new database at once, the switch can report `SQLITE_BUSY`
/// without going through the busy handler (SQLite does not wait on that lock upgrade), so it is
/// retried here until [`BUSY_TIMEOUT`]; a database already in WAL mode needs no switch.
pub(crate) fn enable_wal(conn: &Connection, path: &Path) -> Result<(), RegistryError> {
    let configure_error = |source| RegistryError::Configure {
        path: path.to_owned(),
        source,
    };
    let current: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .map_err(configure_error)?;
    if current.eq_ignore_ascii_case("wal") {
        return Ok(());
    }
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mode: String = loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)) {
            Ok(mode) => break mode,
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(source) => return Err(configure_error(source)),
        }
    };
    if !mode.eq_ignore_ascii_case("wal") {
        // e.g. a filesystem without shared memory: still correct, only less concurrent.
        tracing::warn!(journal_mode = %mode, "registry database is not in WAL mode");
    }
    Ok(())
}

/// Opens a read-only connection to an existing, already migrated database.
pub(crate) fn open_read(path: &Path) -> Result<Connection, RegistryError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|source| RegistryError::Open {
        path: path.to_owned(),
        source,
    })?;
    let configured = conn
        .busy_timeout(BUSY_TIMEOUT)
        .and_then(|()| conn.pragma_update(None, "foreign_keys", true));
    configured.map_err(|source| RegistryError::Configure {
        path: path.to_owned(),
        source,
    })?;
    Ok(conn)
}
