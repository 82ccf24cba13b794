//! Counters and gauges of a worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Live counters of one worker.
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    received: AtomicU64,
    succeeded: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    panicked: AtomicU64,
    deferred: AtomicU64,
    in_flight: AtomicU64,
    queue_depth: AtomicU64,
    oldest_age_ms: AtomicU64,
    dead_letter_depth: AtomicU64,
}

/// A point-in-time copy of a worker's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct MetricsSnapshot {
    /// Messages received.
    pub received: u64,
    /// Messages handled and acked.
    pub succeeded: u64,
    /// Deliveries rescheduled after a transient failure or a "not yet".
    pub retried: u64,
    /// Messages moved to the dead-letter queue by a permanent failure.
    pub dead_lettered: u64,
    /// Handler attempts that panicked (each counted as a transient failure of its message).
    pub panicked: u64,
    /// Messages deferred while a service their handler needs was unavailable.
    pub deferred: u64,
    /// Handlers running now.
    pub in_flight: u64,
    /// Messages in the queue at the last refresh.
    pub queue_depth: u64,
    /// Age of the oldest message at the last refresh, in milliseconds.
    pub oldest_age_ms: u64,
    /// Letters in the dead-letter queue at the last refresh.
    pub dead_letter_depth: u64,
}

/// Decrements the in-flight gauge when dropped.
pub struct InFlight<'a>(&'a WorkerMetrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl WorkerMetrics {
    /// Counts a received message as in flight until the guard drops.
    pub fn start(&self) -> InFlight<'_> {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    pub(crate) fn succeeded(&self) {
        self.succeeded.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retried(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dead_lettered(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn panicked(&self) {
        self.panicked.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn deferred(&self) {
        self.deferred.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_queue(&self, depth: u64, oldest: Option<Duration>) {
        self.queue_depth.store(depth, Ordering::Relaxed);
        self.oldest_age_ms.store(
            oldest.map_or(0, |d| d.as_millis() as u64),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn set_dead_letters(&self, depth: u64) {
        self.dead_letter_depth.store(depth, Ordering::Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            received: self.received.load(Ordering::Relaxed),
            succeeded: self.succeeded.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            panicked: self.panicked.load(Ordering::Relaxed),
            deferred: self.deferred.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            queue_depth: self.queue_depth.load(Ordering::Relaxed),
            oldest_age_ms: self.oldest_age_ms.load(Ordering::Relaxed),
            dead_letter_depth: self.dead_letter_depth.load(Ordering::Relaxed),
        }
    }
}
