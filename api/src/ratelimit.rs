//! Request rate limits: fixed windows per key (a client address, a principal), as
//! GitHub's API counts them, so `X-RateLimit-Limit`, `-Remaining` and `-Reset` are exact.
//!
//! The clock is passed in, so the arithmetic is unit-tested without sleeping. The table
//! is bounded: expired windows are dropped whenever it grows past [`MAX_KEYS`], and a
//! key that cannot get a window because the table is full of live ones is refused (an
//! attacker spraying addresses cannot grow memory without bound).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use tributary_config::Rate;

/// Live windows kept at most.
pub const MAX_KEYS: usize = 100_000;

/// What a limit says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Until the window ends (and the count starts again).
    pub reset: Duration,
}

impl Verdict {
    /// Whole seconds until the window ends, at least 1 (for `Retry-After`).
    pub fn reset_secs(&self) -> u64 {
        self.reset.as_secs() + u64::from(self.reset.subsec_nanos() > 0)
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
}

/// Fixed-window counters by key.
#[derive(Default)]
pub struct Limiter {
    windows: Mutex<HashMap<String, Window>>,
}

impl Limiter {
    /// Counts one request against `key` and says whether it is within `rate`.
    pub fn hit(&self, key: &str, rate: Rate, now: Instant) -> Verdict {
        self.apply(key, rate, now, true)
    }

    /// What `key` stands at, without counting a request.
    pub fn peek(&self, key: &str, rate: Rate, now: Instant) -> Verdict {
        self.apply(key, rate, now, false)
    }

    fn apply(&self, key: &str, rate: Rate, now: Instant, count: bool) -> Verdict {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_KEYS && !windows.contains_key(key) {
            windows.retain(|_, w| now.duration_since(w.started) < rate.per);
            if windows.len() >= MAX_KEYS {
                return Verdict {
                    allowed: false,
                    limit: rate.count,
                    remaining: 0,
                    reset: rate.per,
                };
            }
        }
        let w = windows.entry(key.to_string()).or_insert(Window {
            started: now,
            count: 0,
        });
        if now.duration_since(w.started) >= rate.per {
            *w = Window {
                started: now,
                count: 0,
            };
        }
        let within = w.count < rate.count;
        if count && within {
            w.count += 1;
        }
        Verdict {
            allowed: if count { within } else { w.count < rate.count },
            limit: rate.count,
            remaining: rate.count - w.count,
            reset: rate.per.saturating_sub(now.duration_since(w.started)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(count: u32, secs: u64) -> Rate {
        Rate {
            count,
            per: Duration::from_secs(secs),
        }
    }

    #[test]
    fn a_window_allows_its_count_then_refuses_until_it_ends() {
        let l = Limiter::default();
        let t0 = Instant::now();
        let r = rate(3, 60);
        let seen: Vec<(bool, u32)> = (0..5)
            .map(|i| l.hit("a", r, t0 + Duration::from_secs(i)))
            .map(|v| (v.allowed, v.remaining))
            .collect();
        assert_eq!(
            seen,
            [(true, 2), (true, 1), (true, 0), (false, 0), (false, 0)]
        );
        let v = l.hit("a", r, t0 + Duration::from_millis(10_500));
        assert_eq!(v.reset, Duration::from_millis(49_500));
        assert_eq!(v.reset_secs(), 50);
        // another key has its own window
        assert!(l.hit("b", r, t0 + Duration::from_secs(5)).allowed);
        // the window ends 60 s after its first request
        let v = l.hit("a", r, t0 + Duration::from_secs(60));
        assert_eq!((v.allowed, v.remaining), (true, 2));
    }

    #[test]
    fn peek_does_not_count() {
        let l = Limiter::default();
        let t0 = Instant::now();
        let r = rate(1, 60);
        assert!(l.peek("a", r, t0).allowed);
        assert!(l.peek("a", r, t0).allowed);
        assert!(l.hit("a", r, t0).allowed);
        let v = l.peek("a", r, t0);
        assert!(!v.allowed);
        assert_eq!(v.remaining, 0);
    }

    #[test]
    fn a_full_table_drops_expired_windows_and_refuses_new_keys_while_all_are_live() {
        let l = Limiter::default();
        let t0 = Instant::now();
        let r = rate(5, 60);
        for i in 0..MAX_KEYS {
            l.hit(&format!("k{i}"), r, t0);
        }
        assert!(!l.hit("new", r, t0 + Duration::from_secs(1)).allowed);
        assert!(l.hit("k7", r, t0 + Duration::from_secs(1)).allowed);
        assert!(l.hit("new", r, t0 + Duration::from_secs(61)).allowed);
        assert_eq!(l.windows.lock().unwrap().len(), 1);
    }
}
