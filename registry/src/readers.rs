//! Read connections: a small pool of read-only [`Connection`]s, used from
//! `tokio::task::spawn_blocking` so SQLite's blocking I/O stays off the async workers.
//!
//! A read takes an idle connection from the pool or opens a new one, and gives it back
//! afterwards; at most [`MAX_IDLE`] idle connections are kept, so the pool grows to the number of
//! reads in flight (bounded by tokio's blocking pool) and shrinks back. In WAL mode each read
//! statement sees the latest committed state, so a reused connection never serves stale data.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use rusqlite::Connection;

use crate::connection::open_read;
use crate::error::RegistryError;

/// Idle read connections kept for reuse.
const MAX_IDLE: usize = 4;

/// The pool of read-only connections to one database file.
pub(crate) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(crate) fn new(path: PathBuf) -> Readers {
        Readers {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `read` on a read-only connection, blocking the calling thread.
    pub(crate) fn run<R>(
        &self,
        read: impl FnOnce(&Connection) -> Result<R, RegistryError>,
    ) -> Result<R, RegistryError> {
        let conn = match self.lock().pop() {
            Some(conn) => conn,
            None => open_read(&self.path)?,
        };
        let result = read(&conn);
        // A connection is left in no transaction by our reads, so it is safe to reuse.
        if conn.is_autocommit() {
            let mut idle = self.lock();
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // The Vec stays consistent even if a holder panicked: push and pop do not unwind midway.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
