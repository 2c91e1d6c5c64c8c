//! One shape for what a long operation tells its caller while it runs.
//!
//! Pulls ([`crate::fetch::progress::PullEvent`]), exports and imports
//! ([`crate::bundle::BundleEvent`]), conversions ([`crate::convert::ConvertEvent`]) and store
//! verification ([`crate::verify::BlobCheck`]) each define their event type and take a
//! `dyn Reporter<ThatEvent>`. The library never draws: the CLI turns events into progress bars,
//! log lines or JSON lines, the daemon into a job's progress. A closure `Fn(&E)` is a reporter,
//! and [`Silent`] drops everything.
//!
//! Reporters are called from transfer tasks and worker threads, often many times a second, so
//! they must return quickly and never block; events borrow or share their strings rather than
//! allocate per call.

/// Receives the events of one kind of operation.
pub trait Reporter<E>: Send + Sync {
    /// Called for every event; must return quickly.
    fn report(&self, event: &E);
}

impl<E, F> Reporter<E> for F
where
    F: Fn(&E) + Send + Sync,
{
    fn report(&self, event: &E) {
        self(event)
    }
}

/// A reporter that drops every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl<E> Reporter<E> for Silent {
    fn report(&self, _event: &E) {}
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    fn drive(reporter: &dyn Reporter<u64>) {
        for n in 1..=4 {
            reporter.report(&n);
        }
    }

    #[test]
    fn closures_and_silent_are_reporters() {
        let sum = AtomicU64::new(0);
        drive(&|n: &u64| {
            sum.fetch_add(*n, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 10);
        drive(&Silent);
    }
}
