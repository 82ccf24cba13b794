//! Delivering one due attempt: check the delivery is still pending and its subscription still
//! exists, respect the endpoint's limits, send the signed request (no redirects, timeouts,
//! callback address re-checked), log the attempt, and schedule the next one or give up.
//!
//! Order of effects: the next attempt is enqueued before the delivery is updated, and the
//! message is acked only after both, so a crash at any point repeats an attempt at worst.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dss_core::callback::AllowedNet;
use dss_core::clock::{SharedClock, millis};
use dss_core::ports::{
    Attempt, Claim, Delivery, DeliveryState, DeliveryStore, Message, Queue, SubscriptionStore,
};
use dss_runtime::worker::{Handler, HandlerError, Outcome};

use crate::client::Client;
use crate::endpoints::{Admission, Endpoints, endpoint_of};
use crate::outbox::{self, Due};
use crate::request;
use crate::schedule::Schedule;

/// The handler of the delivery queue.
pub struct Deliverer {
    /// Subscriptions (a deleted one cancels its deliveries).
    pub subscriptions: Arc<dyn SubscriptionStore>,
    /// The outbox.
    pub deliveries: Arc<dyn DeliveryStore>,
    /// The delivery queue (for the next attempts).
    pub queue: Arc<dyn Queue>,
    /// Sends requests.
    pub client: Client,
    /// Per-endpoint limits and breakers.
    pub endpoints: Endpoints,
    /// When to retry.
    pub schedule: Schedule,
    /// Internal networks callbacks may reach.
    pub allow: Vec<AllowedNet>,
    /// The clock.
    pub clock: SharedClock,
    /// Attempts and give-ups by outcome (`dss_notify_deliveries_total`).
    pub outcomes: dss_runtime::metrics::Outcomes,
    /// How long a claim of an attempt holds (longer than an attempt can take).
    pub claim_for: Duration,
}

/// How an attempt ended.
struct Sent {
    status: Option<u16>,
    error: Option<String>,
    latency: Duration,
}

impl Deliverer {
    async fn requeue(&self, due: Due<'_>) -> Result<Outcome, HandlerError> {
        outbox::send(&*self.queue, &[due], self.clock.now_ms())
            .await
            .map_err(HandlerError::unavailable)?;
        Ok(Outcome::Done)
    }

    /// Gives a delivery up without an attempt (its round ran out while its endpoint was held).
    async fn give_up(&self, d: &Delivery, why: &str) -> Result<Outcome, HandlerError> {
        let now = self.clock.now_ms();
        self.deliveries
            .settle(&d.new.id, d.attempts, None, DeliveryState::Dead, now)
            .await
            .map_err(HandlerError::unavailable)?;
        self.outcomes.inc("dead");
        Err(HandlerError::Permanent(format!(
            "delivery {} given up: {why}",
            d.new.id
        )))
    }

    async fn attempt(&self, d: &Delivery, sub: &serde_json::Value) -> Sent {
        let started = Instant::now();
        let fail = |error: String| Sent {
            status: None,
            error: Some(error),
            latency: started.elapsed(),
        };
        let req = match request::build(sub, d, self.clock.now()) {
            Ok(r) => r,
            Err(e) => return fail(e),
        };
        match self.client.send(req, &self.allow).await {
            Ok(status) => Sent {
                status: Some(status),
                error: (!(200..300).contains(&status)).then(|| format!("HTTP {status}")),
                latency: started.elapsed(),
            },
            Err(e) => fail(e),
        }
    }
}

#[async_trait]
impl Handler for Deliverer {
    async fn handle(&self, message: &Message) -> Result<Outcome, HandlerError> {
        let due: Due<'_> = serde_json::from_str(&message.body)
            .map_err(|e| HandlerError::Permanent(format!("not a delivery message: {e}")))?;
        let now = self.clock.now_ms();
        if due.due_ms > now {
            return self.requeue(due).await;
        }
        let Some(d) = self
            .deliveries
            .get(due.delivery)
            .await
            .map_err(HandlerError::unavailable)?
        else {
            return Ok(Outcome::Done);
        };
        if d.state != DeliveryState::Pending || d.attempts != due.attempts {
            return Ok(Outcome::Done);
        }
        let sub = self
            .subscriptions
            .get(&d.new.replica, d.new.kind, &d.new.subscription)
            .await
            .map_err(HandlerError::unavailable)?;
        let Some(sub) = sub else {
            self.deliveries
                .settle(&d.new.id, d.attempts, None, DeliveryState::Cancelled, now)
                .await
                .map_err(HandlerError::unavailable)?;
            self.outcomes.inc("cancelled");
            tracing::info!(delivery = %d.new.id, subscription = %d.new.subscription, "subscription deleted; delivery cancelled");
            return Ok(Outcome::Done);
        };
        let url = sub
            .document
            .get("callback_url")
            .and_then(serde_json::Value::as_str)
            .and_then(|u| url::Url::parse(u).ok());
        let endpoint = url.as_ref().map(endpoint_of).unwrap_or_default();
        let pass = match self.endpoints.admit(&endpoint, now).await {
            Admission::Go(p) => p,
            Admission::Wait(wait) => {
                if self.schedule.expired(d.round_started_ms, now) {
                    return self.give_up(&d, "its endpoint kept failing").await;
                }
                let later = now + millis(wait);
                return self
                    .requeue(Due {
                        due_ms: later,
                        ..due
                    })
                    .await;
            }
        };
        // Claim the attempt before sending: a second copy of this due message (queues deliver
        // at least once) must not send it at the same time.
        let until = now + millis(self.claim_for);
        match self
            .deliveries
            .claim(&d.new.id, d.attempts, now, until)
            .await
        {
            Ok(Claim::Claimed) => {}
            Ok(Claim::Gone) => {
                self.endpoints.release(pass);
                return Ok(Outcome::Done);
            }
            // Look again when the other claim ends: settled by then, or its claimer died.
            Ok(Claim::Busy(until_ms)) => {
                self.endpoints.release(pass);
                tracing::debug!(delivery = %d.new.id, "attempt claimed by another worker");
                return self
                    .requeue(Due {
                        due_ms: until_ms.max(now),
                        ..due
                    })
                    .await;
            }
            Err(e) => {
                self.endpoints.release(pass);
                return Err(HandlerError::unavailable(e));
            }
        }
        let sent = self.attempt(&d, &sub.document).await;
        let now = self.clock.now_ms();
        let ok = sent.error.is_none();
        self.endpoints.report(pass, ok, now);
        let made = d.round_attempts() + 1;
        let next = if ok {
            None
        } else {
            self.schedule.next(made, d.round_started_ms, now)
        };
        let state = match (ok, next) {
            (true, _) => DeliveryState::Delivered,
            (false, Some(_)) => DeliveryState::Pending,
            (false, None) => DeliveryState::Dead,
        };
        if let Some(wait) = next {
            let due_ms = now + millis(wait);
            outbox::send(
                &*self.queue,
                &[Due {
                    delivery: &d.new.id,
                    attempts: d.attempts + 1,
                    due_ms,
                }],
                now,
            )
            .await
            .map_err(HandlerError::unavailable)?;
        }
        let attempt = Attempt {
            delivery: d.new.id.clone(),
            subscription: d.new.subscription.clone(),
            attempt: d.attempts + 1,
            at_ms: now,
            status: sent.status,
            latency_ms: sent.latency.as_millis() as u64,
            error: sent.error.clone(),
            outcome: state,
        };
        let recorded = self
            .deliveries
            .settle(&d.new.id, d.attempts, Some(&attempt), state, now)
            .await
            .map_err(HandlerError::unavailable)?;
        self.outcomes.inc(match state {
            DeliveryState::Delivered => "delivered",
            DeliveryState::Pending => "retrying",
            _ => "dead",
        });
        let error = sent.error.unwrap_or_default();
        if ok {
            tracing::debug!(delivery = %d.new.id, subscription = %d.new.subscription, attempt = attempt.attempt,
                status = ?sent.status, latency_ms = attempt.latency_ms, recorded, "delivered");
        } else {
            tracing::info!(delivery = %d.new.id, subscription = %d.new.subscription, attempt = attempt.attempt,
                status = ?sent.status, latency_ms = attempt.latency_ms, state = state.as_str(), retry_in = ?next, error, recorded, "delivery attempt failed");
        }
        if state == DeliveryState::Dead && recorded {
            return Err(HandlerError::Permanent(format!(
                "delivery {} failed {} times; last error: {error}",
                d.new.id, attempt.attempt
            )));
        }
        Ok(Outcome::Done)
    }
}
