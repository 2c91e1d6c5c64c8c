//! Stopping a long operation on request: `pull`, `convert`, `export` and `import` take a
//! [`CancellationToken`] (the one type the daemon already cancels its jobs with), and once it
//! is cancelled they stop at the next safe point, keep or remove what they had written, and
//! fail with an [`Interrupted`] saying what was kept.
//!
//! The library never installs signal handlers and never prints: the CLI cancels the token on
//! SIGINT or SIGTERM and renders the [`Interrupted`] it gets back.

pub use tokio_util::sync::CancellationToken;

use serde::Serialize;

use crate::failure::{Classify, FailureKind};

/// An operation stopped because its token was cancelled, and what it kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("interrupted: kept {kept} of {total} bytes")]
pub struct Interrupted {
    /// Bytes of the work that are on disk and will not be done again: published blobs, and
    /// the recorded ranges of resumable parts (a pull), or blobs placed (an export).
    pub kept: u64,
    /// Bytes the operation set out to write.
    pub total: u64,
}

impl Classify for Interrupted {
    fn failure_kind(&self) -> FailureKind {
        FailureKind::Other
    }
}

/// Run `work` unless `cancel` is cancelled first; dropping `work` must lose nothing (use this
/// only around steps that write nothing, or whose writes are atomic).
pub async fn unless_cancelled<T, E>(
    cancel: &CancellationToken,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E>
where
    E: From<Interrupted>,
{
    tokio::select! {
        biased;
        () = cancel.cancelled() => Err(Interrupted::default().into()),
        result = work => result,
    }
}
