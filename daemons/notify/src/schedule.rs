//! The retry schedule of a delivery: the first attempt at once, then the configured waits (the
//! last one repeating), each spread by a random jitter, until the round's time is up.

use std::time::Duration;

use dss_config::NotifyConfig;
use dss_core::clock::millis;

/// When the next attempt of a failing delivery is due.
#[derive(Debug, Clone)]
pub struct Schedule {
    delays: Vec<Duration>,
    give_up_after: Duration,
    jitter: f64,
}

impl From<&NotifyConfig> for Schedule {
    fn from(c: &NotifyConfig) -> Self {
        Self {
            delays: c
                .retry_delays_secs
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            give_up_after: Duration::from_secs(c.retry_for_secs),
            jitter: c.retry_jitter,
        }
    }
}

impl Schedule {
    /// The planned wait after the `made`-th failed attempt of a round (1-based), before jitter.
    pub fn planned(&self, made: u32) -> Duration {
        let i = (made.max(1) as usize - 1).min(self.delays.len().saturating_sub(1));
        self.delays
            .get(i)
            .copied()
            .unwrap_or(Duration::from_secs(60))
    }

    /// The wait after the `made`-th failed attempt of a round that started at `round_started_ms`,
    /// jittered; `None` when the next attempt would fall after the round's deadline, i.e. the
    /// delivery is given up.
    pub fn next(&self, made: u32, round_started_ms: i64, now_ms: i64) -> Option<Duration> {
        let planned = self.planned(made).as_secs_f64();
        let spread = planned * self.jitter * (2.0 * rand::random::<f64>() - 1.0);
        let wait = Duration::from_secs_f64((planned + spread).max(0.0));
        let due = now_ms.saturating_add(millis(wait));
        (!self.expired(round_started_ms, due)).then_some(wait)
    }

    /// Whether a round that started at `round_started_ms` is over at `at_ms`.
    pub fn expired(&self, round_started_ms: i64, at_ms: i64) -> bool {
        let limit = millis(self.give_up_after);
        at_ms.saturating_sub(round_started_ms) > limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Schedule {
        Schedule::from(&NotifyConfig::default())
    }

    #[test]
    fn default_schedule_is_1m_10m_1h_then_every_6h_for_7_days() {
        let s = schedule();
        let planned: Vec<u64> = (1..=7).map(|n| s.planned(n).as_secs()).collect();
        assert_eq!(planned, [60, 600, 3600, 21600, 21600, 21600, 21600]);
        // Walk the schedule with its planned waits: attempts stop within 7 days.
        let (mut t, mut made) = (0i64, 0u32);
        loop {
            made += 1;
            let Some(w) = s.next(made, 0, t) else { break };
            let ms = w.as_millis() as i64;
            let p = s.planned(made).as_millis() as i64;
            assert!(
                (p * 9 / 10..=p * 11 / 10).contains(&ms),
                "jitter within ±10%: {ms} vs {p}"
            );
            t += ms;
        }
        assert!(t <= 7 * 24 * 3600 * 1000, "last attempt at {t} ms");
        assert!(
            t > 6 * 24 * 3600 * 1000,
            "attempts go on for about 7 days: {t} ms"
        );
        assert!((30..=32).contains(&made), "{made} attempts");
    }

    #[test]
    fn rounds_expire_after_the_configured_time() {
        let s = schedule();
        let week = 7 * 24 * 3600 * 1000;
        assert!(!s.expired(1000, 1000 + week));
        assert!(s.expired(1000, 1001 + week));
        assert!(
            s.next(1, 0, week - 1000).is_none(),
            "a wait past the deadline gives up"
        );
    }
}
