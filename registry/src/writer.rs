//! The single writer: one thread that owns the read-write [`Connection`] and runs every write,
//! one at a time, in the order they were sent.
//!
//! Writes are boxed closures sent over a std mpsc channel; each replies through a
//! `tokio::sync::oneshot`, so async callers await the result without blocking a runtime worker.
//! Serialising writes in-process means SQLite never sees two writers from this process (no
//! `SQLITE_BUSY` between our own tasks); the busy timeout only covers other processes.
//!
//! The thread ends when the last [`Writer`] handle is dropped, after finishing the writes already
//! queued. Dropping the future of a write that was already sent does not cancel it. A panic in a
//! write (a bug) is caught: its transaction rolls back as it unwinds, the caller gets
//! [`RegistryError::WriterGone`], and the thread carries on with the next write.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::thread;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::error::RegistryError;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A handle to the writer thread. Cheap to share behind an `Arc`; `Sync` because
/// [`mpsc::Sender`] is.
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread, handing it `conn`.
    pub(crate) fn spawn(mut conn: Connection) -> Result<Writer, RegistryError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("larder-registry-writer".to_owned())
            .spawn(move || {
                for job in queue {
                    if catch_unwind(AssertUnwindSafe(|| job(&mut conn))).is_err() {
                        tracing::error!("a registry write panicked; it was rolled back");
                    }
                }
                tracing::debug!("registry writer stopped");
            })
            .map_err(|source| RegistryError::SpawnWriter { source })?;
        Ok(Writer { jobs })
    }

    /// Runs `write` on the writer thread and returns its result.
    pub(crate) async fn call<R, F>(&self, write: F) -> Result<R, RegistryError>
    where
        F: FnOnce(&mut Connection) -> Result<R, RegistryError> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            // The caller may have stopped waiting; the write stands regardless.
            let _ = reply.send(write(conn));
        });
        self.jobs.send(job).map_err(|_| RegistryError::WriterGone)?;
        result.await.map_err(|_| RegistryError::WriterGone)?
    }
}
