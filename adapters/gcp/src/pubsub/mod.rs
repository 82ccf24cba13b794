//! `Queue` and `Topic` on Google Cloud Pub/Sub, over its REST API (v1).
//!
//! Why not the `google-cloud-pubsub` crate: its subscriber is a streaming pull that manages
//! leases itself; it exposes neither a pull of a bounded batch nor deadline changes of single
//! messages (`modifyAckDeadline` is private), which the `Queue` port needs (visibility timeouts,
//! delayed retries). The REST API has both, and credentials come from `google-cloud-auth`.
//!
//! A queue `N` is the subscription `N` of the topic `N` (what is sent to the queue is published
//! there), plus — for queues that read bucket events — the subscription `N-events` of the bucket
//! events topic; it pulls from both. Its dead-letter queue is the subscription `N-dlq` of the topic
//! `N-dlq`, the target of both subscriptions' dead-letter policies.

mod backend;
mod gauges;
mod queue;

use std::sync::Arc;

use base64::Engine;
use dss_core::ports::QueueError;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::GcpOptions;
use crate::auth::{Auth, PUBSUB_SCOPE};

pub use backend::PubSubQueues;
pub use queue::{PubSubQueue, PubSubTopic};

/// Publishes per request at most (the API's limit is 1,000 messages or 10 MB).
const PUBLISH_BATCH: usize = 500;

/// A Pub/Sub REST client for one project.
#[derive(Debug, Clone)]
pub struct PubSub {
    http: reqwest::Client,
    base: String,
    project: String,
    auth: Arc<Auth>,
    /// Where the queue gauges come from, if anywhere.
    gauges: Option<Arc<gauges::Gauges>>,
}

/// The outcome of a request whose "not found" is an answer.
enum Found<T> {
    Yes(T),
    No,
}

fn backend(e: impl std::fmt::Display) -> QueueError {
    QueueError::Backend(e.to_string())
}

impl PubSub {
    /// The Pub/Sub of `options.project`, reached as `options` say.
    pub fn connect(options: &GcpOptions) -> Result<Self, QueueError> {
        let project = options
            .project
            .clone()
            .ok_or_else(|| QueueError::Backend("Pub/Sub needs a project".into()))?;
        let http = reqwest::Client::builder().build().map_err(backend)?;
        let gauges = gauges::Gauges::connect(options, &project)?.map(Arc::new);
        Ok(Self {
            http,
            base: options.pubsub_base(),
            gauges,
            project,
            auth: Arc::new(
                Auth::new(options.anonymous, PUBSUB_SCOPE).map_err(QueueError::Backend)?,
            ),
        })
    }

    /// `projects/{p}/topics/{name}`.
    pub fn topic_path(&self, name: &str) -> String {
        format!("projects/{}/topics/{name}", self.project)
    }

    /// `projects/{p}/subscriptions/{name}`.
    pub fn subscription_path(&self, name: &str) -> String {
        format!("projects/{}/subscriptions/{name}", self.project)
    }

    /// Sends `method` to `{base}/v1/{path}` with `body`; the answer, or `No` on 404.
    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Found<T>, QueueError> {
        let headers = self.auth.headers().await.map_err(QueueError::Backend)?;
        let mut req = self
            .http
            .request(method, format!("{}/v1/{path}", self.base))
            .headers(headers);
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req
            .send()
            .await
            .map_err(|e| backend(format!("Pub/Sub request failed: {e}")))?;
        match r.status() {
            s if s.is_success() => {
                let text = r.text().await.map_err(backend)?;
                let text = if text.trim().is_empty() {
                    "{}"
                } else {
                    text.as_str()
                };
                serde_json::from_str(text)
                    .map(Found::Yes)
                    .map_err(|e| backend(format!("Pub/Sub answer {path}: {e}")))
            }
            StatusCode::NOT_FOUND => Ok(Found::No),
            s => {
                let body = r.text().await.unwrap_or_default();
                Err(backend(format!(
                    "Pub/Sub {path}: {s} {}",
                    body.chars().take(400).collect::<String>()
                )))
            }
        }
    }

    /// Like [`PubSub::call`], a 404 being an error naming `path`.
    async fn must<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, QueueError> {
        match self.call(method, path, body).await? {
            Found::Yes(v) => Ok(v),
            Found::No => Err(QueueError::NotFound(path.to_string())),
        }
    }

    /// Creates the topic `name` unless it exists.
    pub async fn ensure_topic(&self, name: &str) -> Result<(), QueueError> {
        let path = self.topic_path(name);
        if let Found::Yes(_) = self
            .call::<Value>(reqwest::Method::GET, &path, None)
            .await?
        {
            return Ok(());
        }
        self.create(&path, &json!({})).await
    }

    /// Creates the subscription `name` of topic `topic`, dead-lettering into topic `dead` after
    /// `max_attempts` deliveries (a backstop: queues dead-letter exactly at their own limit);
    /// updates the policy of an existing one.
    pub async fn ensure_subscription(
        &self,
        name: &str,
        topic: &str,
        dead: Option<(&str, u32)>,
    ) -> Result<(), QueueError> {
        let path = self.subscription_path(name);
        let mut body = json!({
            "topic": self.topic_path(topic),
            "ackDeadlineSeconds": 60,
            "messageRetentionDuration": "604800s",
        });
        if let Some((dead_topic, attempts)) = dead {
            body["deadLetterPolicy"] = json!({
                "deadLetterTopic": self.topic_path(dead_topic),
                "maxDeliveryAttempts": attempts.clamp(5, 100),
            });
        }
        match self
            .call::<Value>(reqwest::Method::GET, &path, None)
            .await?
        {
            Found::No => self.create(&path, &body).await,
            Found::Yes(_) if dead.is_some() => {
                let patch = json!({"subscription": body, "updateMask": "deadLetterPolicy"});
                self.must::<Value>(reqwest::Method::PATCH, &path, Some(&patch))
                    .await
                    .map(|_| ())
            }
            Found::Yes(_) => Ok(()),
        }
    }

    /// Deletes the subscription `name` if it exists.
    pub async fn delete_subscription(&self, name: &str) -> Result<(), QueueError> {
        let path = self.subscription_path(name);
        self.call::<Value>(reqwest::Method::DELETE, &path, None)
            .await
            .map(|_| ())
    }

    /// PUT of a new resource; one created meanwhile is fine.
    async fn create(&self, path: &str, body: &Value) -> Result<(), QueueError> {
        let headers = self.auth.headers().await.map_err(QueueError::Backend)?;
        let r = self
            .http
            .put(format!("{}/v1/{path}", self.base))
            .headers(headers)
            .json(body)
            .send()
            .await
            .map_err(|e| backend(format!("Pub/Sub request failed: {e}")))?;
        match r.status() {
            s if s.is_success() || s == StatusCode::CONFLICT => Ok(()),
            s => {
                let body = r.text().await.unwrap_or_default();
                Err(backend(format!("creating {path}: {s} {body}")))
            }
        }
    }

    /// Publishes `(body, attributes)` messages to topic `name`.
    pub async fn publish(
        &self,
        topic: &str,
        messages: &[(String, serde_json::Map<String, Value>)],
    ) -> Result<(), QueueError> {
        let path = format!("{}:publish", self.topic_path(topic));
        for chunk in messages.chunks(PUBLISH_BATCH) {
            let msgs: Vec<Value> = chunk
                .iter()
                .map(|(body, attrs)| {
                    let mut m =
                        json!({"data": base64::engine::general_purpose::STANDARD.encode(body)});
                    if !attrs.is_empty() {
                        m["attributes"] = Value::Object(attrs.clone());
                    }
                    m
                })
                .collect();
            self.must::<Value>(
                reqwest::Method::POST,
                &path,
                Some(&json!({"messages": msgs})),
            )
            .await?;
        }
        Ok(())
    }
}
