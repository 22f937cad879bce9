//! The one retry mechanism of the workspace: the object store, the SharePoint client
//! and the HTTP embedders retry through it.
//!
//! - [`RetryPolicy::delay`]: capped exponential backoff with *equal jitter* (a wait is
//!   drawn between half and all of `base × 2^(attempt−1)`, capped), so that clients that
//!   failed together do not come back together, and a wait never collapses to zero.
//! - [`retry_after`]: a server's `Retry-After` in seconds or as an HTTP date.
//! - [`with_retry`]: runs an operation until it succeeds, fails for good, or the
//!   attempts run out; a server-requested wait ([`Transient::retry_after`]) replaces
//!   the backoff, up to [`RetryPolicy::max_retry_after`].

use std::future::Future;
use std::time::{Duration, SystemTime};

use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The wait after the first failure (before jitter).
    pub base: Duration,
    /// The longest backoff.
    pub cap: Duration,
    /// The longest wait a server's `Retry-After` may impose.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The backoff before attempt `attempt + 1` (attempt counts from 1), with jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.ceiling(attempt)
            .mul_f64(rand::rng().random_range(0.5..=1.0))
    }

    /// The backoff before attempt `attempt + 1` without jitter: `base × 2^(attempt−1)`,
    /// at most `cap`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        self.base
            .saturating_mul(
                1u32.checked_shl(attempt.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.cap)
    }
}

/// How a failure is retried.
pub trait Transient {
    /// Worth another attempt (timeouts, resets, throttling, 5xx).
    fn is_transient(&self) -> bool;
    /// The wait the server asked for, if it did.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// Runs `op` until it succeeds, fails with an error that is not transient, or
/// `max_attempts` is reached. `on_retry` is told of each failed attempt and the wait
/// before the next (for metrics and logs).
pub async fn with_retry<T, E, F, Fut>(
    policy: RetryPolicy,
    mut on_retry: impl FnMut(u32, &E),
    mut op: F,
) -> Result<T, E>
where
    E: Transient,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && attempt < policy.max_attempts => {
                on_retry(attempt, &e);
                let wait = match e.retry_after() {
                    Some(w) => w.min(policy.max_retry_after),
                    None => policy.delay(attempt),
                };
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A `Retry-After` value: delay seconds (`120`) or an HTTP date
/// (`Sun, 06 Nov 1994 08:49:37 GMT`, and the obsolete forms RFC 9110 accepts), as the
/// wait from `now` (zero for a date in the past). `None` for anything else.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn delays_grow_and_are_capped_with_jitter_between_half_and_all() {
        let p = RetryPolicy::default();
        for attempt in 1..40 {
            let (d, c) = (p.delay(attempt), p.ceiling(attempt));
            assert!(d <= c && d >= c / 2, "{attempt}: {d:?} of {c:?}");
        }
        assert_eq!(p.ceiling(1), Duration::from_millis(200));
        assert_eq!(p.ceiling(4), Duration::from_millis(1600));
        assert_eq!(p.ceiling(30), Duration::from_secs(8));
        assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(8));
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Tue, 14 Nov 2023 22:13:00 GMT").unwrap();
        assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            retry_after("Tue, 14 Nov 2023 22:13:20 GMT", now),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            retry_after("Tuesday, 14-Nov-23 22:13:20 GMT", now),
            Some(Duration::from_secs(20)),
            "RFC 850 form"
        );
        assert_eq!(
            retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past: no wait"
        );
        for bad in ["soon", "-5", "1.5", "", "Tue, 99 Nov 2023 22:13:20 GMT"] {
            assert_eq!(retry_after(bad, now), None, "{bad}");
        }
    }

    #[derive(Debug)]
    struct Fail {
        transient: bool,
        after: Option<Duration>,
    }
    impl Transient for Fail {
        fn is_transient(&self) -> bool {
            self.transient
        }
        fn retry_after(&self) -> Option<Duration> {
            self.after
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_until_the_attempts_run_out() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy {
            max_attempts: 4,
            ..RetryPolicy::default()
        };
        let mut seen = Vec::new();
        let started = tokio::time::Instant::now();
        let r: Result<(), Fail> = with_retry(
            policy,
            |a, _| seen.push(a),
            || async {
                calls.fetch_add(1, Ordering::Relaxed);
                Err(Fail {
                    transient: true,
                    after: Some(Duration::from_secs(500)),
                })
            },
        )
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), 4);
        assert_eq!(seen, vec![1, 2, 3]);
        // three waits, each the server's, capped at max_retry_after
        assert_eq!(started.elapsed(), Duration::from_secs(3 * 120));
        // a permanent failure is not retried; a success ends the loop
        calls.store(0, Ordering::Relaxed);
        let r: Result<(), Fail> = with_retry(
            policy,
            |_, _| {},
            || async {
                calls.fetch_add(1, Ordering::Relaxed);
                Err(Fail {
                    transient: false,
                    after: None,
                })
            },
        )
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        let r: Result<u32, Fail> = with_retry(
            policy,
            |_, _| {},
            || async {
                match calls.fetch_add(1, Ordering::Relaxed) {
                    1 => Err(Fail {
                        transient: true,
                        after: None,
                    }),
                    _ => Ok(7),
                }
            },
        )
        .await;
        assert_eq!(r.unwrap(), 7);
    }
}
