//! Counters of the sync daemon and its reconciler, and the replication lag distribution.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

/// Upper bounds of the lag histogram's buckets, in milliseconds (the last bucket is unbounded).
pub const LAG_BUCKETS_MS: &[u64] = &[
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 300_000,
    900_000, 3_600_000,
];

/// Counters; shared, updated as the daemon works.
#[derive(Debug, Default)]
pub struct SyncMetrics {
    /// Objects copied and verified.
    pub copied: AtomicU64,
    /// Bytes of those objects.
    pub copied_bytes: AtomicU64,
    /// Copies found already in place (nothing to do).
    pub present: AtomicU64,
    /// Copies postponed because what the object refers to is not in the destination yet.
    pub waiting: AtomicU64,
    /// Metadata objects that differ between replicas (never overwritten; an operator decides).
    pub conflicts: AtomicU64,
    /// Destination blobs that did not match their key and were replaced.
    pub repaired: AtomicU64,
    /// Events of objects that arrived by sync (not replicated again).
    pub echoes: AtomicU64,
    /// Reconciler passes finished.
    pub reconcile_runs: AtomicU64,
    /// Keys the reconciler compared.
    pub reconcile_scanned: AtomicU64,
    /// Keys the reconciler found missing in a replica.
    pub reconcile_missing: AtomicU64,
    /// Keys the reconciler found different in a replica.
    pub reconcile_different: AtomicU64,
    /// Copy requests the reconciler queued.
    pub reconcile_enqueued: AtomicU64,
    lag: [AtomicU64; LAG_BUCKETS_MS.len() + 1],
    lag_sum_ms: AtomicU64,
}

impl SyncMetrics {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the time from an object's write to its verified copy.
    pub fn observe_lag(&self, lag: Duration) {
        let ms = u64::try_from(lag.as_millis()).unwrap_or(u64::MAX);
        let i = LAG_BUCKETS_MS.partition_point(|b| *b < ms);
        self.lag[i].fetch_add(1, Ordering::Relaxed);
        self.lag_sum_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Lags observed per bucket (the last one above every bound), and their sum in ms.
    pub fn lag_histogram(&self) -> (Vec<u64>, u64) {
        (
            self.lag.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
            self.lag_sum_ms.load(Ordering::Relaxed),
        )
    }

    /// The upper bound of the bucket holding quantile `q` (0..=1) of the observed lags; `None`
    /// before any, or when it lies above every bound.
    pub fn lag_quantile(&self, q: f64) -> Option<Duration> {
        let (counts, _) = self.lag_histogram();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return LAG_BUCKETS_MS.get(i).map(|ms| Duration::from_millis(*ms));
            }
        }
        None
    }
}

/// Reads a counter.
pub fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_quantiles_come_from_the_buckets() {
        let m = SyncMetrics::default();
        assert_eq!(m.lag_quantile(0.5), None);
        for ms in [0, 3, 3, 4, 40, 40, 40, 40, 40, 4_000_000] {
            m.observe_lag(Duration::from_millis(ms));
        }
        assert_eq!(m.lag_quantile(0.1), Some(Duration::from_millis(1)));
        assert_eq!(m.lag_quantile(0.3), Some(Duration::from_millis(5)));
        assert_eq!(m.lag_quantile(0.5), Some(Duration::from_millis(50)));
        assert_eq!(m.lag_quantile(0.9), Some(Duration::from_millis(50)));
        assert_eq!(m.lag_quantile(1.0), None, "above every bound");
        let (counts, sum) = m.lag_histogram();
        assert_eq!(counts.iter().sum::<u64>(), 10);
        assert_eq!(sum, 4_000_210);
    }
}

/// [`SyncMetrics`] as Prometheus metrics (`dss_sync_*`), for the process's `/metrics`.
#[derive(Debug)]
pub struct Exported(pub Arc<SyncMetrics>);

impl Collector for Exported {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.0;
        let counters: [(&str, &str, &AtomicU64); 12] = [
            ("dss_sync_copied", "Objects copied and verified.", &m.copied),
            (
                "dss_sync_copied_bytes",
                "Bytes of the objects copied.",
                &m.copied_bytes,
            ),
            (
                "dss_sync_present",
                "Copies found already in place.",
                &m.present,
            ),
            (
                "dss_sync_waiting",
                "Copies postponed until what the object refers to arrives.",
                &m.waiting,
            ),
            (
                "dss_sync_conflicts",
                "Documents that differ between replicas (left alone).",
                &m.conflicts,
            ),
            (
                "dss_sync_repaired",
                "Destination blobs that did not match their key, replaced.",
                &m.repaired,
            ),
            (
                "dss_sync_echoes",
                "Events of sync copies, not replicated again.",
                &m.echoes,
            ),
            (
                "dss_reconcile_runs",
                "Reconciler passes finished.",
                &m.reconcile_runs,
            ),
            (
                "dss_reconcile_scanned",
                "Keys the reconciler compared.",
                &m.reconcile_scanned,
            ),
            (
                "dss_reconcile_missing",
                "Keys the reconciler found missing in a replica.",
                &m.reconcile_missing,
            ),
            (
                "dss_reconcile_different",
                "Keys the reconciler found different in a replica.",
                &m.reconcile_different,
            ),
            (
                "dss_reconcile_enqueued",
                "Copy requests the reconciler queued.",
                &m.reconcile_enqueued,
            ),
        ];
        for (name, help, c) in counters {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(c.load(Ordering::Relaxed)).encode(metric)?;
        }
        let (counts, sum_ms) = m.lag_histogram();
        let buckets: Vec<(f64, u64)> = counts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let bound = LAG_BUCKETS_MS
                    .get(i)
                    .map_or(f64::MAX, |ms| *ms as f64 / 1000.0);
                (bound, *c)
            })
            .collect();
        let mut metric = encoder.encode_descriptor(
            "dss_sync_lag_seconds",
            "Time from an object's write to its verified copy in another replica.",
            None,
            MetricType::Histogram,
        )?;
        metric.encode_histogram::<NoLabelSet>(
            sum_ms as f64 / 1000.0,
            counts.iter().sum(),
            &buckets,
            None,
        )
    }
}
