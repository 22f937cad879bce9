//! Capped exponential backoff with full jitter for transient store errors.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use crate::StoreError;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1` (attempt counts from 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(
                1u32.checked_shl(attempt.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.cap);
        let jitter = rand::rng().random_range(0.5..=1.0);
        exp.mul_f64(jitter)
    }
}

/// Runs `op` until it succeeds, fails with a non-transient error, or `max_attempts` is
/// reached. `on_retry` is told about each retry (for metrics and logs).
pub async fn with_retry<T, F, Fut>(
    policy: RetryPolicy,
    mut on_retry: impl FnMut(u32, &StoreError),
    mut op: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && attempt < policy.max_attempts => {
                on_retry(attempt, &e);
                tokio::time::sleep(policy.delay(attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_capped() {
        let p = RetryPolicy::default();
        assert!(p.delay(1) <= Duration::from_millis(200));
        assert!(p.delay(1) >= Duration::from_millis(100));
        assert!(p.delay(4) >= Duration::from_millis(800));
        assert!(p.delay(30) <= Duration::from_secs(8));
    }
}
