//! From bucket events to deliveries: build the documents of the bundles an event concerns,
//! match them against the replica's subscriptions, write one delivery per match to the outbox
//! (a redelivered event maps to the deliveries it produced before) and enqueue their first
//! attempts. The event is acked only after that.

use std::sync::Arc;

use async_trait::async_trait;
use dss_core::ports::{BucketEvent, DeliveryState, FilterFailure, Message, NewDelivery, Queue};
use dss_runtime::bundle_reader::{Limits, LoadError};
use dss_runtime::deployment::Deployment;
use dss_runtime::worker::{Handler, HandlerError, Outcome};

use crate::documents;
use crate::matching::{FilterLimits, Matcher};
use crate::outbox::{self, Due};
use crate::payload;

/// The handler of the notify daemon's bucket-event queue.
pub struct EventHandler {
    deployment: Deployment,
    matcher: Matcher,
    limits: Limits,
    deliveries_queue: Arc<dyn Queue>,
    public_url: String,
    /// Filters that failed on an event, by subscription kind (`dss_notify_filter_failures_total`).
    failures: dss_runtime::metrics::Outcomes,
}

impl EventHandler {
    /// A handler over the deployment's replicas and subscriptions, sending due attempts to
    /// `deliveries_queue`.
    pub fn new(deployment: &Deployment, deliveries_queue: Arc<dyn Queue>) -> Self {
        Self {
            matcher: Matcher::new(FilterLimits::from(&deployment.config.limits)),
            failures: deployment.metrics.outcomes(
                "dss_notify_filter_failures",
                "Subscription filters that could not be evaluated on an event (over budget, an error or a panic), by kind; the event is still matched against every other subscription.",
                &["elasticsearch", "jmespath"],
            ),
            limits: Limits::from(&deployment.config.index),
            public_url: deployment
                .config
                .public_url()
                .trim_end_matches('/')
                .to_string(),
            deployment: deployment.clone(),
            deliveries_queue,
        }
    }
}

#[async_trait]
impl Handler for EventHandler {
    async fn handle(&self, message: &Message) -> Result<Outcome, HandlerError> {
        dss_runtime::bucket_events::handle_each(&message.body, |e| self.event(e)).await
    }
}

impl EventHandler {
    /// One bucket event.
    async fn event(&self, event: BucketEvent) -> Result<Outcome, HandlerError> {
        let Some(replica) = self.deployment.replica_of_bucket(&event.bucket) else {
            return Ok(Outcome::Done);
        };
        if !event.key.starts_with("bundles/") {
            return Ok(Outcome::Done);
        }
        let set = self
            .matcher
            .set(&*self.deployment.subscriptions, &replica.name)
            .await
            .map_err(HandlerError::unavailable)?;
        // Nobody to notify: the bundle's documents are not read.
        if set.is_empty() {
            return Ok(Outcome::Done);
        }
        let targets = match documents::targets(&replica.store, &event, &self.limits).await {
            Ok(t) => t,
            Err(LoadError::Corrupt(why)) => return Err(HandlerError::Permanent(why)),
            Err(e) => return Err(HandlerError::transient(e)),
        };
        if targets.is_empty() {
            return Ok(Outcome::Done);
        }
        let now = self.deployment.clock.now();
        let subscriptions = set.len();
        // Evaluating users' filters is CPU work of their choosing: off the async threads.
        let (matched, targets) = tokio::task::spawn_blocking(move || {
            let m: Vec<_> = targets.iter().map(|t| set.matches(t, now)).collect();
            (m, targets)
        })
        .await
        .map_err(HandlerError::transient)?;
        let mut new = Vec::new();
        let mut failed = Vec::new();
        for (target, matched) in targets.iter().zip(matched) {
            for f in matched.failures {
                let sub = &f.compiled.sub;
                tracing::warn!(subscription = %sub.uuid, replica = %sub.replica, bundle = %target.bundle_uuid,
                    reason = %f.reason, "subscription filter failed on the event; that subscription is skipped");
                self.failures.inc(sub.kind.as_str());
                failed.push(FilterFailure {
                    replica: sub.replica.clone(),
                    kind: sub.kind,
                    uuid: sub.uuid.clone(),
                    reason: format!("{}: {}", target.event_key, f.reason),
                });
            }
            for m in matched.matches {
                let sub = &m.compiled.sub;
                // Time-ordered, so the outbox's id index grows at its end.
                let id = uuid::Uuid::now_v7().to_string();
                new.push(NewDelivery {
                    payload: payload::payload(sub, &id, target, &self.public_url, m.attachments),
                    id,
                    subscription: sub.uuid.clone(),
                    replica: replica.name.clone(),
                    kind: sub.kind,
                    owner: sub.owner.clone(),
                    event_key: target.event_key.clone(),
                    event_type: target.event_type.as_str().to_string(),
                    bundle_uuid: target.bundle_uuid.clone(),
                    bundle_version: target.bundle_version.clone(),
                });
            }
        }
        tracing::info!(replica = %replica.name, key = %event.key, targets = targets.len(),
            subscriptions, matched = new.len(), failed = failed.len(), "matched event");
        // Shown to the owners: the failure of one filter is that subscription's alone.
        if let Err(e) = self
            .deployment
            .subscriptions
            .record_failures(&failed, self.deployment.clock.now_ms())
            .await
        {
            tracing::warn!(error = %e, failures = failed.len(), "could not record filter failures");
        }
        if new.is_empty() {
            return Ok(Outcome::Done);
        }
        let now_ms = self.deployment.clock.now_ms();
        let stored = self
            .deployment
            .deliveries
            .add(&new, now_ms)
            .await
            .map_err(HandlerError::unavailable)?;
        // Deliveries not yet attempted get their first attempt (again, if this event was
        // delivered before and the daemon stopped before enqueueing).
        let due: Vec<Due<'_>> = stored
            .iter()
            .filter(|d| d.state == DeliveryState::Pending && d.attempts == 0)
            .map(|d| Due {
                delivery: &d.new.id,
                attempts: 0,
                due_ms: now_ms,
            })
            .collect();
        outbox::send(&*self.deliveries_queue, &due, now_ms)
            .await
            .map_err(HandlerError::unavailable)?;
        Ok(Outcome::Done)
    }
}
