//! How many requests a pull keeps in flight: an adaptive limit between one and the connection
//! budget, raised while requests succeed and the upstream keeps pace, lowered when it pushes
//! back.
//!
//! Every request for file bytes (a small file's one request, each ranged request of a large
//! file) holds a [`RequestPermit`] while it waits for the response head. The limit moves like
//! TCP's congestion window (additive increase, multiplicative decrease), counted in requests:
//! - it starts at [`INITIAL_LIMIT`] and grows by one per successful request while no push-back
//!   was seen ("slow start": it doubles per round of requests), then by one per round;
//! - it grows only while requests are actually queued behind it (an idle limit proves
//!   nothing);
//! - a `429 Too Many Requests` or `503 Service Unavailable` halves it; a time to response head
//!   well above the best seen (the upstream queueing our requests) cuts it by a fifth;
//! - one cut per round: a request started before the last cut does not cut again, so a burst
//!   of 429s answering one round of requests halves the limit once, not down to one.
//!
//! Waiting for the retry itself (`Retry-After`, back-off) is the transfer's business; this
//! only decides how many requests are out at once.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Requests in flight at the start of a pull (what `hf download` runs with).
pub const INITIAL_LIMIT: usize = 8;
/// The time to response head counts as risen when it exceeds this many times the best seen...
const LATENCY_RISE_FACTOR: f64 = 3.0;
/// ...and the best seen by at least this much (on loopback the best is well under a
/// millisecond, where a busy CPU alone triples it).
const LATENCY_RISE_FLOOR: Duration = Duration::from_millis(25);
/// Weight of a new sample in the smoothed time to response head.
const SMOOTHING: f64 = 0.2;

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// The response head arrived (any success) after this long.
    Answered(Duration),
    /// The upstream said to slow down (429 or 503).
    Throttled,
    /// Anything else (a cut connection, a stall, an error): no signal either way.
    Other,
}

/// The adaptive limit shared by every transfer of a pull.
#[derive(Debug)]
pub struct AdaptiveLimit {
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Debug)]
struct State {
    limit: usize,
    cap: usize,
    in_flight: usize,
    waiting: usize,
    /// Increases to wait for before the next `+1` after slow start.
    credit: usize,
    slow_start: bool,
    /// Bumped at every cut; a permit from an older round cannot cut again.
    round: u64,
    best: Option<Duration>,
    smoothed: Option<Duration>,
    peak: usize,
}

impl AdaptiveLimit {
    /// A limit starting at [`INITIAL_LIMIT`] (or `cap` if lower), never above `cap`.
    pub fn new(cap: usize) -> Arc<Self> {
        let cap = cap.max(1);
        Arc::new(AdaptiveLimit {
            state: Mutex::new(State {
                limit: INITIAL_LIMIT.min(cap),
                cap,
                in_flight: 0,
                waiting: 0,
                credit: 0,
                slow_start: true,
                round: 0,
                best: None,
                smoothed: None,
                peak: 0,
            }),
            changed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.lock().limit
    }

    /// The most requests that were in flight at once.
    pub fn peak(&self) -> usize {
        self.lock().peak
    }

    /// Wait until a request may start.
    pub async fn acquire(self: &Arc<Self>) -> RequestPermit {
        let mut queued = false;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.lock();
                if state.in_flight < state.limit {
                    state.in_flight += 1;
                    state.peak = state.peak.max(state.in_flight);
                    if queued {
                        state.waiting -= 1;
                    }
                    return RequestPermit {
                        limit: self.clone(),
                        round: state.round,
                        started: Instant::now(),
                        outcome: RequestOutcome::Other,
                    };
                }
                if !queued {
                    state.waiting += 1;
                    queued = true;
                }
            }
            notified.await;
        }
    }

    fn finish(&self, round: u64, outcome: RequestOutcome) {
        let mut state = self.lock();
        state.in_flight -= 1;
        let before = state.limit;
        match outcome {
            RequestOutcome::Answered(latency) => {
                let best = state.best.map_or(latency, |b| b.min(latency));
                state.best = Some(best);
                let smoothed = state.smoothed.map_or(latency, |s| {
                    s.mul_f64(1.0 - SMOOTHING) + latency.mul_f64(SMOOTHING)
                });
                state.smoothed = Some(smoothed);
                let risen = smoothed > best.mul_f64(LATENCY_RISE_FACTOR)
                    && smoothed > best + LATENCY_RISE_FLOOR;
                if risen {
                    state.cut(round, 0.8);
                } else if state.waiting > 0 || state.in_flight + 1 >= state.limit {
                    state.grow();
                }
            }
            RequestOutcome::Throttled => state.cut(round, 0.5),
            RequestOutcome::Other => {}
        }
        // Wake one waiter per slot that opened: the one released, and one more if the limit
        // grew (a woken waiter that finds no slot waits again, so none is lost).
        let opened = 1 + state.limit.saturating_sub(before);
        drop(state);
        for _ in 0..opened {
            self.changed.notify_one();
        }
    }
}

impl State {
    fn grow(&mut self) {
        if self.limit >= self.cap {
            return;
        }
        if self.slow_start {
            self.limit += 1;
            return;
        }
        self.credit += 1;
        if self.credit >= self.limit {
            self.credit = 0;
            self.limit += 1;
        }
    }

    fn cut(&mut self, round: u64, factor: f64) {
        if round != self.round {
            return;
        }
        self.round += 1;
        self.slow_start = false;
        self.credit = 0;
        self.limit = ((self.limit as f64 * factor) as usize).max(1);
        // The queueing that raised the latency drains with the cut; judge afresh.
        self.smoothed = None;
    }
}

/// Leave to run one request; tell it how the request went ([`RequestPermit::answered`],
/// [`RequestPermit::throttled`]) before dropping it.
#[derive(Debug)]
pub struct RequestPermit {
    limit: Arc<AdaptiveLimit>,
    round: u64,
    started: Instant,
    outcome: RequestOutcome,
}

impl RequestPermit {
    /// The response head arrived now.
    pub fn answered(&mut self) {
        self.outcome = RequestOutcome::Answered(self.started.elapsed());
    }

    /// The upstream answered 429 or 503.
    pub fn throttled(&mut self) {
        self.outcome = RequestOutcome::Throttled;
    }
}

impl Drop for RequestPermit {
    fn drop(&mut self) {
        self.limit.finish(self.round, self.outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(limit: &Arc<AdaptiveLimit>, n: usize, outcome: RequestOutcome) {
        let permits: Vec<_> = futures::future::join_all((0..n).map(|_| limit.acquire())).await;
        for mut permit in permits {
            permit.outcome = outcome;
            drop(permit);
        }
    }

    #[tokio::test]
    async fn grows_while_busy_halves_once_per_round_and_respects_the_cap() {
        let limit = AdaptiveLimit::new(64);
        assert_eq!(limit.limit(), INITIAL_LIMIT);
        // Slow start: a full round of successes with more queued doubles the limit.
        let held: Vec<_> = futures::future::join_all((0..8).map(|_| limit.acquire())).await;
        let queued = tokio::spawn({
            let limit = limit.clone();
            async move { limit.acquire().await }
        });
        tokio::task::yield_now().await;
        for mut permit in held {
            permit.answered();
        }
        drop(queued.await.unwrap());
        assert!(limit.limit() >= 15, "limit {}", limit.limit());
        // A burst of 429s from one round halves it once.
        let before = limit.limit();
        run(&limit, before, RequestOutcome::Throttled).await;
        assert_eq!(limit.limit(), before / 2);
        // Nothing grows past the cap.
        let capped = AdaptiveLimit::new(3);
        assert_eq!(capped.limit(), 3);
        run(
            &capped,
            3,
            RequestOutcome::Answered(Duration::from_millis(1)),
        )
        .await;
        assert_eq!(capped.limit(), 3);
    }

    #[tokio::test]
    async fn never_lets_more_than_the_limit_run_and_never_drops_below_one() {
        let limit = AdaptiveLimit::new(8);
        for _ in 0..10 {
            run(&limit, limit.limit(), RequestOutcome::Throttled).await;
        }
        assert_eq!(limit.limit(), 1);
        let first = limit.acquire().await;
        let second = tokio::time::timeout(Duration::from_millis(50), limit.acquire()).await;
        assert!(second.is_err(), "a second request must wait at limit 1");
        drop(first);
        let _second = tokio::time::timeout(Duration::from_millis(50), limit.acquire())
            .await
            .expect("released");
        assert_eq!(limit.peak(), 8, "the first round ran 8 at once");
    }

    #[tokio::test]
    async fn rising_latency_cuts_the_limit() {
        let limit = AdaptiveLimit::new(64);
        run(
            &limit,
            1,
            RequestOutcome::Answered(Duration::from_millis(20)),
        )
        .await;
        let before = limit.limit();
        for _ in 0..20 {
            run(
                &limit,
                1,
                RequestOutcome::Answered(Duration::from_millis(200)),
            )
            .await;
        }
        assert!(limit.limit() < before, "{} !< {before}", limit.limit());
    }
}
