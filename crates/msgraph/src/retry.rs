//! The one retry policy every Graph call goes through: how long to wait after a 429/503/504 or a
//! network failure, and how often to try.
//!
//! `Retry-After` is honoured when present (seconds, possibly fractional, or an HTTP date);
//! otherwise capped exponential backoff with full jitter spreads retries out. The decision of
//! *whether* to retry lives in [`crate::client`]; this module only computes delays and must never
//! sleep by itself (sleeping goes through [`Sleeper`] so tests stay instant).

use std::fmt;
use std::time::Duration;

use rand::Rng;
use time::OffsetDateTime;

/// Limits for retrying one Graph call.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total attempts for one call, the first one included (`1` = never retry).
    pub max_attempts: u32,
    /// Backoff ceiling for the first retry when no `Retry-After` is given; doubles each time.
    pub base_delay: Duration,
    /// Cap for a computed backoff.
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is not waited out inside the call: the call fails with
    /// `Error::Throttled` so the caller can schedule the chat later instead of blocking.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The ceiling for retry number `retry` (0-based): `min(max_delay, base_delay * 2^retry)`.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.checked_pow(retry.min(30)).unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// Full jitter: a uniformly random delay in `[0, backoff_ceiling(retry)]`.
    pub fn backoff_delay(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.backoff_ceiling(retry);
        let ceiling_micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rng.random_range(0..=ceiling_micros))
    }
}

/// Reads a `Retry-After` value: a (possibly fractional) number of seconds, or an HTTP date
/// relative to `now`. Unreadable or negative values give `None` (then backoff applies).
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let date = OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let wait = date - now;
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// Waits between retries. Injected so tests can record waits instead of sleeping.
#[async_trait::async_trait]
pub trait Sleeper: Send + Sync + fmt::Debug {
    async fn sleep(&self, duration: Duration);
}

/// The real sleeper (tokio timer).
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioSleeper;

#[async_trait::async_trait]
impl Sleeper for TokioSleeper {
    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn fractional_seconds_are_honoured() {
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(
            parse_retry_after("2.128", now),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(
            parse_retry_after(" 10 ", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn http_dates_are_relative_to_now() {
        let now = time::macros::datetime!(2015-10-21 07:27:50 UTC);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        // A date in the past means "now".
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn backoff_is_capped_and_jittered_within_the_ceiling() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(5),
        };
        assert_eq!(policy.backoff_ceiling(0), Duration::from_millis(100));
        assert_eq!(policy.backoff_ceiling(2), Duration::from_millis(400));
        assert_eq!(policy.backoff_ceiling(10), Duration::from_secs(1));
        assert_eq!(policy.backoff_ceiling(u32::MAX), Duration::from_secs(1));
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let delays: Vec<_> = (0..50).map(|_| policy.backoff_delay(3, &mut rng)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(800)));
        // Full jitter: not all the same value.
        assert!(delays.iter().any(|d| *d != delays[0]));
    }
}
