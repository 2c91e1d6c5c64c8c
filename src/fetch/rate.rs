//! A global download rate limit: a token bucket shared by every connection of every transfer.
//!
//! Connections take tokens for the bytes they receive and sleep when the bucket is in debt, so
//! TCP backpressure slows the sender; the burst is a tenth of a second's worth.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Bytes per second shared by all transfers.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    bucket: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// A limiter of `bytes_per_second` (at least 1 KiB/s).
    pub fn new(bytes_per_second: u64) -> Self {
        let rate = bytes_per_second.max(1024) as f64;
        let burst = (rate / 10.0).max(64.0 * 1024.0);
        RateLimiter {
            rate,
            burst,
            bucket: Mutex::new((burst, Instant::now())),
        }
    }

    /// The configured rate.
    pub fn bytes_per_second(&self) -> u64 {
        self.rate as u64
    }

    /// Account for `bytes` just received, sleeping as long as the bucket is in debt.
    pub async fn take(&self, bytes: usize) {
        let wait = {
            let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let refill = now.duration_since(bucket.1).as_secs_f64() * self.rate;
            bucket.0 = (bucket.0 + refill).min(self.burst) - bytes as f64;
            bucket.1 = now;
            if bucket.0 >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-bucket.0 / self.rate)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Parse a rate such as `100MB/s`, `50MiB`, `1.5G/s`, `800k` or a plain number of bytes/s
/// (the units of [`crate::units::parse_size`], with an optional `/s` or `ps`).
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let body = trimmed
        .strip_suffix("/s")
        .or_else(|| trimmed.strip_suffix("ps"))
        .unwrap_or(trimmed);
    crate::units::parse_size(body)
        .map_err(|_| format!("`{text}` is not a rate: use e.g. 100MB/s, 50MiB/s or 800k"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates() {
        assert_eq!(parse_rate("100MB/s"), Ok(100_000_000));
        assert_eq!(parse_rate("50MiB"), Ok(50 << 20));
        assert_eq!(parse_rate("1.5G/s"), Ok(1_500_000_000));
        assert_eq!(parse_rate("800k"), Ok(800_000));
        assert_eq!(parse_rate("4096"), Ok(4096));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("10 parsecs").is_err());
        assert!(parse_rate("0").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn holds_the_rate() {
        let limiter = RateLimiter::new(1_000_000);
        let start = tokio::time::Instant::now();
        for _ in 0..100 {
            limiter.take(50_000).await;
        }
        // 5 MB at 1 MB/s, less the initial burst of 0.1 MB.
        let elapsed = start.elapsed().as_secs_f64();
        assert!((4.8..=5.0).contains(&elapsed), "{elapsed}");
    }
}
