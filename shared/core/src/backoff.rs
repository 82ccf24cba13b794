//! Exponential backoff with jitter: the worker runtime's retries, and the cloud adapters' retries
//! of requests (with full jitter).

use std::time::Duration;

/// `delay(n) = min(max, base × 2^(n−1))`, then scaled by a random factor in `[1 − jitter, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub base: Duration,
    /// Upper bound.
    pub max: Duration,
    /// Fraction of the delay that is randomised (0 = none, 1 = full jitter).
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// The upper bound of the delay after `attempt` failures (1-based), before jitter.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(32);
        self.base.saturating_mul(1u32 << exp.min(31)).min(self.max)
    }

    /// The delay after `attempt` failures (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let top = self.ceiling(attempt);
        let jitter = self.jitter.clamp(0.0, 1.0);
        let factor = 1.0 - jitter * rand::random::<f64>();
        top.mul_f64(factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_bounds() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
            jitter: 0.5,
        };
        assert_eq!(b.ceiling(1), Duration::from_millis(100));
        assert_eq!(b.ceiling(3), Duration::from_millis(400));
        assert_eq!(b.ceiling(10), Duration::from_secs(2));
        assert_eq!(b.ceiling(100), Duration::from_secs(2));
        for attempt in 1..8 {
            for _ in 0..50 {
                let d = b.delay(attempt);
                assert!(
                    d <= b.ceiling(attempt) && d >= b.ceiling(attempt) / 2,
                    "{attempt}: {d:?}"
                );
            }
        }
        let exact = Backoff { jitter: 0.0, ..b };
        assert_eq!(exact.delay(2), Duration::from_millis(200));
    }
}
