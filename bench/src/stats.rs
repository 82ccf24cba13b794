//! Summaries of measurements, shared by the bench's rows and the search A/B (which includes this
//! file).

use std::time::Duration;

/// The `p` quantile (0–1) of sorted values, by nearest rank.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Durations in seconds.
pub fn secs(v: &[Duration]) -> Vec<f64> {
    v.iter().map(Duration::as_secs_f64).collect()
}

/// The median of `v`.
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `min / median / max` of `v` with `unit`, `digits` after the point.
pub fn mmm(mut v: Vec<f64>, digits: usize, unit: &str) -> String {
    v.sort_by(f64::total_cmp);
    format!(
        "{:.*} / {:.*} / {:.*}{unit}",
        digits,
        v[0],
        digits,
        v[v.len() / 2],
        digits,
        v[v.len() - 1]
    )
}

/// Latencies measured in rounds: each round's p50 and p99, summarised over the rounds.
#[derive(Default)]
pub struct LatencyRounds {
    p50: Vec<f64>,
    p99: Vec<f64>,
}

impl LatencyRounds {
    /// Adds one round's latencies (sorted in place).
    pub fn push(&mut self, lat: &mut [Duration]) {
        lat.sort();
        self.p50.push(ms(percentile(lat, 0.5)));
        self.p99.push(ms(percentile(lat, 0.99)));
    }

    /// `p50 min / median / max ms, p99 min / median / max ms` over the rounds.
    pub fn summary(&self) -> String {
        format!(
            "p50 {}, p99 {}",
            mmm(self.p50.clone(), 2, " ms"),
            mmm(self.p99.clone(), 2, " ms")
        )
    }
}

/// Rounds of every row that measures in rounds.
pub const ROUNDS: usize = 5;
