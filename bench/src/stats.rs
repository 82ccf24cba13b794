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

/// `p50 … ms, p99 … ms` of latencies (sorted in place).
pub fn p50_p99(lat: &mut [Duration]) -> String {
    lat.sort();
    format!(
        "p50 {:.2} ms, p99 {:.2} ms",
        ms(percentile(lat, 0.5)),
        ms(percentile(lat, 0.99))
    )
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
