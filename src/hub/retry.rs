//! Capped exponential backoff with jitter, honouring `Retry-After`.
//!
//! Used both for metadata calls (through [`retry`]) and by the transfer engine, which drives
//! its own loop because a broken body must resume from the bytes already written rather than
//! restart the request.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use super::error::HubError;

/// The longest `Retry-After` we obey; a server asking for more gets retried after this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Retries for an endpoint that cannot be connected to at all.
pub const UNREACHABLE_RETRIES: u32 = 1;

/// How many times and how long to retry transient failures.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts after the first one.
    pub max_retries: u32,
    /// First delay.
    pub base: Duration,
    /// Largest delay between attempts of our own choosing.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 8,
            base: Duration::from_millis(250),
            cap: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `attempt` (1-based): the server's `Retry-After` when given
    /// (bounded by [`MAX_RETRY_AFTER`] against absurd values), otherwise `base * 2^(attempt-1)` capped, with "equal jitter" so that many
    /// clients retrying together spread out without ever retrying immediately.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(MAX_RETRY_AFTER);
        }
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.cap);
        let half = exp / 2;
        let jitter = rand::rng().random_range(0..=half.as_millis() as u64);
        half + Duration::from_millis(jitter)
    }
}

/// Run `operation` until it succeeds, fails permanently, or the policy is exhausted.
pub async fn retry<T, F, Fut>(policy: &RetryPolicy, mut operation: F) -> Result<T, HubError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, HubError>>,
{
    let mut attempt = 0;
    loop {
        match operation().await {
            Ok(value) => return Ok(value),
            // An endpoint that refuses connections or does not resolve gets one more try, not
            // the full policy: failing in seconds beats a minute of silent backoff.
            Err(error)
                if error.is_transient()
                    && attempt < policy.max_retries
                    && !(error.is_unreachable() && attempt >= UNREACHABLE_RETRIES) =>
            {
                attempt += 1;
                let wait = policy.delay(attempt, error.retry_after());
                tracing::warn!(%error, attempt, wait_ms = wait.as_millis() as u64, "retrying");
                tokio::time::sleep(wait).await;
            }
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_capped() {
        let policy = RetryPolicy {
            max_retries: 10,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
        };
        for attempt in 1..=20 {
            let d = policy.delay(attempt, None);
            let exp = (Duration::from_millis(100) * 2u32.pow((attempt - 1).min(16)))
                .min(Duration::from_secs(2));
            assert!(
                d >= exp / 2 && d <= exp,
                "attempt {attempt}: {d:?} vs {exp:?}"
            );
        }
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(60))),
            Duration::from_secs(60),
            "Retry-After is obeyed beyond our own cap"
        );
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(86_400))),
            MAX_RETRY_AFTER
        );
        assert_eq!(
            policy.delay(1, Some(Duration::from_millis(700))),
            Duration::from_millis(700)
        );
    }
}
