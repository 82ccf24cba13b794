//! Queue gauges from Cloud Monitoring, where Pub/Sub reports them: a subscription's
//! `num_undelivered_messages` and `oldest_unacked_message_age` (sampled each minute; the
//! newest point of the last 10 minutes counts). A queue's depth is the sum over its
//! subscriptions, its oldest message the oldest of theirs. Emulators report none. Answers are
//! kept for a minute, the metrics' own sampling period, so workers refreshing their gauges every
//! few seconds cost Monitoring one read per queue a minute.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use dss_core::ports::{QueueError, QueueStats};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::GcpOptions;
use crate::auth::{Auth, MONITORING_SCOPE};

/// Google's own Cloud Monitoring endpoint.
const MONITORING_ENDPOINT: &str = "https://monitoring.googleapis.com";
/// How far back a sample counts.
const WINDOW: Duration = Duration::from_secs(600);
/// How long an answer is kept.
const KEEP: Duration = Duration::from_secs(60);

/// A Cloud Monitoring reader for one project.
#[derive(Debug)]
pub struct Gauges {
    http: reqwest::Client,
    base: String,
    project: String,
    auth: Arc<Auth>,
    /// Recent answers by queue (its subscriptions joined), with their time.
    kept: Mutex<HashMap<String, (Instant, QueueStats)>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Series {
    #[serde(default)]
    time_series: Vec<TimeSeries>,
}

#[derive(Debug, Deserialize)]
struct TimeSeries {
    #[serde(default)]
    points: Vec<Point>,
}

#[derive(Debug, Deserialize)]
struct Point {
    value: PointValue,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PointValue {
    /// Int64 values are JSON strings.
    int64_value: Option<String>,
}

impl Gauges {
    /// The reader `options` allow: none for an emulator (anonymous, without a
    /// `monitoring_endpoint`).
    pub fn connect(options: &GcpOptions, project: &str) -> Result<Option<Self>, QueueError> {
        if options.anonymous && options.monitoring_endpoint.is_none() {
            return Ok(None);
        }
        let http = options
            .requests
            .client()
            .map_err(|e| QueueError::Backend(format!("HTTP client: {e}")))?;
        Ok(Some(Self {
            http,
            base: options
                .monitoring_endpoint
                .as_deref()
                .unwrap_or(MONITORING_ENDPOINT)
                .trim_end_matches('/')
                .to_string(),
            project: project.to_string(),
            auth: Arc::new(
                Auth::new(options.anonymous, MONITORING_SCOPE).map_err(QueueError::Backend)?,
            ),
            kept: Mutex::default(),
        }))
    }

    /// The gauges of the queue made of `subscriptions`.
    pub async fn stats(&self, subscriptions: &[String]) -> Result<QueueStats, QueueError> {
        let key = subscriptions.join(",");
        let kept = self
            .kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .copied();
        if let Some((_, stats)) = kept.filter(|(at, _)| at.elapsed() < KEEP) {
            return Ok(stats);
        }
        let stats = self.read(subscriptions).await?;
        self.kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (Instant::now(), stats));
        Ok(stats)
    }

    async fn read(&self, subscriptions: &[String]) -> Result<QueueStats, QueueError> {
        let undelivered = self
            .newest("num_undelivered_messages", subscriptions)
            .await?;
        let ages = self
            .newest("oldest_unacked_message_age", subscriptions)
            .await?;
        Ok(QueueStats {
            visible: undelivered.iter().map(|n| *n as u64).sum(),
            in_flight: 0,
            delayed: 0,
            oldest_age: ages
                .into_iter()
                .max()
                .filter(|s| *s > 0)
                .map(|s| Duration::from_secs(s as u64)),
        })
    }

    /// The newest sample of `metric` of each of `subscriptions` that has one.
    async fn newest(&self, metric: &str, subscriptions: &[String]) -> Result<Vec<i64>, QueueError> {
        let ids = subscriptions
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let filter = format!(
            "metric.type = \"pubsub.googleapis.com/subscription/{metric}\" AND resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = one_of({ids})"
        );
        let end = OffsetDateTime::now_utc();
        let format = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
        let url = format!("{}/v3/projects/{}/timeSeries", self.base, self.project);
        let headers = self.auth.headers().await.map_err(QueueError::Backend)?;
        let r = self
            .http
            .get(url)
            .headers(headers)
            .query(&[
                ("filter", filter),
                ("interval.startTime", format(end - WINDOW)),
                ("interval.endTime", format(end)),
            ])
            .send()
            .await
            .map_err(|e| QueueError::Backend(format!("Cloud Monitoring: {e}")))?;
        let status = r.status();
        if !status.is_success() {
            let text = r.text().await.unwrap_or_default();
            return Err(QueueError::Backend(format!(
                "Cloud Monitoring: {status} {}",
                text.chars().take(300).collect::<String>()
            )));
        }
        let series: Series = r
            .json()
            .await
            .map_err(|e| QueueError::Backend(format!("Cloud Monitoring answer: {e}")))?;
        Ok(series
            .time_series
            .iter()
            .filter_map(|s| s.points.first()?.value.int64_value.as_ref()?.parse().ok())
            .collect())
    }
}
