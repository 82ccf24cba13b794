//! Injected time: every TTL, retry and schedule reads the clock through [`Clock`].

use std::sync::Arc;

use time::OffsetDateTime;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time (UTC).
    fn now(&self) -> OffsetDateTime;

    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64 {
        unix_ms(self.now())
    }
}

/// A time as milliseconds since the Unix epoch.
pub fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// A duration in milliseconds, for adding to [`Clock::now_ms`] (saturating far beyond any
/// real delay).
pub fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// Shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that follows tokio's time, so tests with `tokio::time::pause()` control it.
///
/// It reports `start + (tokio::time::Instant::now() - created)`.
#[derive(Debug, Clone)]
pub struct TokioClock {
    start: OffsetDateTime,
    created: tokio::time::Instant,
}

impl TokioClock {
    /// A clock that reads `start` now and advances with tokio's (possibly paused) time.
    pub fn starting_at(start: OffsetDateTime) -> Self {
        Self {
            start,
            created: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> OffsetDateTime {
        let elapsed = tokio::time::Instant::now().duration_since(self.created);
        self.start + elapsed
    }
}

/// A clock that moves only when told to, for tests of schedules that also do real I/O (where
/// tokio's paused time would fire I/O timeouts early).
#[derive(Debug)]
pub struct ManualClock {
    now: std::sync::Mutex<OffsetDateTime>,
}

impl ManualClock {
    /// A clock reading `start`.
    pub fn starting_at(start: OffsetDateTime) -> Self {
        Self {
            now: std::sync::Mutex::new(start),
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: std::time::Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The default clock for production use.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let start = OffsetDateTime::UNIX_EPOCH;
        let c = TokioClock::starting_at(start);
        assert_eq!(c.now(), start);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(c.now_ms(), 3_600_000);
    }
}
