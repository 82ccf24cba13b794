//! The process's metrics in the Prometheus (OpenMetrics) text format, served at `/metrics`:
//! the API's requests by method, route and status with their latencies, and every worker's
//! counters and gauges — messages received, succeeded, retried and dead-lettered, handlers in
//! flight, queue depth and the oldest message's age — read at each scrape.

use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::worker::{MetricsSnapshot, WorkerMetrics};

/// The media type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// A counter by outcome (`dss_notify_deliveries_total{outcome="delivered"}`, …).
#[derive(Clone, Debug, Default)]
pub struct Outcomes(Family<OutcomeLabels, Counter>);

impl Outcomes {
    /// Counts one `outcome`.
    pub fn inc(&self, outcome: &str) {
        self.0
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// How many `outcome`s were counted.
    pub fn get(&self, outcome: &str) -> u64 {
        self.0
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .get()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

type Latencies = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every worker of the process, by name.
#[derive(Debug, Default)]
struct Workers(Mutex<Vec<(String, Arc<WorkerMetrics>)>>);

/// A worker metric: name, help, kind, and how to read it.
type WorkerMetric = (
    &'static str,
    &'static str,
    MetricType,
    fn(&MetricsSnapshot) -> f64,
);

const WORKER_METRICS: &[WorkerMetric] = &[
    (
        "dss_worker_received",
        "Messages received.",
        MetricType::Counter,
        |s| s.received as f64,
    ),
    (
        "dss_worker_succeeded",
        "Messages handled and acknowledged.",
        MetricType::Counter,
        |s| s.succeeded as f64,
    ),
    (
        "dss_worker_retried",
        "Deliveries rescheduled after a transient failure or a not-yet.",
        MetricType::Counter,
        |s| s.retried as f64,
    ),
    (
        "dss_worker_dead_lettered",
        "Messages moved to the dead-letter queue.",
        MetricType::Counter,
        |s| s.dead_lettered as f64,
    ),
    (
        "dss_worker_panicked",
        "Handler attempts that panicked (each a failed attempt of its message only).",
        MetricType::Counter,
        |s| s.panicked as f64,
    ),
    (
        "dss_worker_deferred",
        "Messages deferred while a service their handler needs was unavailable.",
        MetricType::Counter,
        |s| s.deferred as f64,
    ),
    (
        "dss_worker_in_flight",
        "Handlers running now.",
        MetricType::Gauge,
        |s| s.in_flight as f64,
    ),
    (
        "dss_queue_depth",
        "Messages in the worker's queue at the last refresh.",
        MetricType::Gauge,
        |s| s.queue_depth as f64,
    ),
    (
        "dss_queue_oldest_message_age_seconds",
        "Age of the queue's oldest message at the last refresh.",
        MetricType::Gauge,
        |s| s.oldest_age_ms as f64 / 1000.0,
    ),
    (
        "dss_dead_letter_queue_depth",
        "Letters in the worker's dead-letter queue at the last refresh.",
        MetricType::Gauge,
        |s| s.dead_letter_depth as f64,
    ),
];

impl Collector for Workers {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let workers: Vec<(String, MetricsSnapshot)> = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(n, m)| (n.clone(), m.snapshot()))
            .collect();
        if workers.is_empty() {
            return Ok(());
        }
        for (name, help, kind, read) in WORKER_METRICS {
            let mut metric = encoder.encode_descriptor(name, help, None, *kind)?;
            for (worker, snapshot) in &workers {
                let labels = vec![("worker", worker.as_str())];
                let family = metric.encode_family(&labels)?;
                let value = read(snapshot);
                match kind {
                    MetricType::Counter => ConstCounter::new(value as u64).encode(family)?,
                    _ => ConstGauge::new(value).encode(family)?,
                }
            }
        }
        Ok(())
    }
}

/// The metrics of one process.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Latencies,
    workers: Arc<Workers>,
    outcomes: Mutex<Vec<(&'static str, Outcomes)>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: Latencies = Family::new_with_constructor(latency_histogram);
        let workers = Arc::new(Workers::default());
        let mut registry = Registry::default();
        registry.register(
            "dss_http_requests",
            "HTTP requests answered, by method, route and status.",
            requests.clone(),
        );
        registry.register(
            "dss_http_request_duration_seconds",
            "Time to answer an HTTP request, by route (until the response head).",
            latency.clone(),
        );
        registry.register_collector(Box::new(workers.clone()));
        Self {
            registry: Mutex::new(registry),
            requests,
            latency,
            workers,
            outcomes: Mutex::default(),
        }
    }
}

impl Metrics {
    /// Counts one answered request; `route` is the matched route pattern (never the raw path,
    /// whose values are unbounded).
    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_string(),
                route: route.to_string(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .observe(seconds);
    }

    /// Reports `worker`'s counters under `name` from now on.
    pub fn track(&self, name: &str, worker: Arc<WorkerMetrics>) {
        self.workers
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name.to_string(), worker));
    }

    /// The counter by outcome `name` (registered on first use; later calls share it), with a
    /// zero series for each of the `expected` outcomes from the start (so rates and alerts see
    /// them before the first one happens).
    pub fn outcomes(&self, name: &'static str, help: &'static str, expected: &[&str]) -> Outcomes {
        let mut known = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, o)) = known.iter().find(|(n, _)| *n == name) {
            return o.clone();
        }
        let o = Outcomes::default();
        for outcome in expected {
            drop(o.0.get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            }));
        }
        self.registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .register(name, help, o.0.clone());
        known.push((name, o.clone()));
        o
    }

    /// Adds a daemon's own metrics (read at each scrape).
    pub fn register(&self, collector: Box<dyn Collector>) {
        self.registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .register_collector(collector);
    }

    /// Everything, in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Writing into a String does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_workers_are_rendered() {
        let m = Metrics::default();
        m.observe_request("GET", "/v1/files/{uuid}", 302, 0.002);
        m.observe_request("GET", "/v1/files/{uuid}", 302, 0.004);
        let w = Arc::new(WorkerMetrics::default());
        drop(w.start());
        m.track("index", w);
        let text = m.render();
        assert!(
            text.contains(
                r#"dss_http_requests_total{method="GET",route="/v1/files/{uuid}",status="302"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"dss_http_request_duration_seconds_count{route="/v1/files/{uuid}"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"dss_worker_received_total{worker="index"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"dss_worker_in_flight{worker="index"} 0"#),
            "{text}"
        );
        let jobs = m.outcomes(
            "dss_checkout_jobs",
            "Checkout jobs ended, by outcome.",
            &["succeeded", "failed"],
        );
        jobs.inc("succeeded");
        m.outcomes("dss_checkout_jobs", "again", &[])
            .inc("succeeded");
        let text = m.render();
        assert!(
            text.contains(r#"dss_checkout_jobs_total{outcome="succeeded"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"dss_checkout_jobs_total{outcome="failed"} 0"#),
            "an expected outcome has a series before it happens: {text}"
        );
        assert_eq!(
            text.matches("# TYPE dss_checkout_jobs counter").count(),
            1,
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
