//! The `DeliveryStore` port: the durable outbox of webhook deliveries and the log of their
//! attempts.
//!
//! A delivery is one (subscription, event) pair. It is written before its first attempt, so a
//! crash never loses it; its id is the `transaction_id` the receiver sees on every attempt.

use async_trait::async_trait;
use serde_json::Value;

use super::subscriptions::SubscriptionKind;

/// Errors of a delivery store.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The backend failed; may succeed on retry.
    #[error("delivery store backend error: {0}")]
    Backend(String),
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt of the retry schedule failed; an operator may resend it.
    Dead,
    /// Its subscription was deleted before it was delivered.
    Cancelled,
}

impl DeliveryState {
    /// The state's name in logs and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
            DeliveryState::Cancelled => "cancelled",
        }
    }

    /// Parses a state name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(DeliveryState::Pending),
            "delivered" => Some(DeliveryState::Delivered),
            "dead" => Some(DeliveryState::Dead),
            "cancelled" => Some(DeliveryState::Cancelled),
            _ => None,
        }
    }
}

/// A delivery to write to the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// Its id, the `transaction_id` of every attempt.
    pub id: String,
    /// The subscription's uuid.
    pub subscription: String,
    /// The replica of the event and the subscription.
    pub replica: String,
    /// The subscription's kind.
    pub kind: SubscriptionKind,
    /// The subscription's owner.
    pub owner: String,
    /// What makes the event unique for the subscription (e.g. `CREATE bundles/{uuid}.{version}`):
    /// a second delivery for the same key is not written.
    pub event_key: String,
    /// `CREATE`, `TOMBSTONE` or `DELETE`.
    pub event_type: String,
    /// The bundle.
    pub bundle_uuid: String,
    /// The bundle version (`None` for a whole-bundle tombstone without versions).
    pub bundle_version: Option<String>,
    /// The request payload as fixed when the event matched.
    pub payload: Value,
}

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// What was written.
    pub new: NewDelivery,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// Attempts made before the current round (an operator's resend starts a new round).
    pub round_start: u32,
    /// When the current round started (ms since the epoch).
    pub round_started_ms: i64,
    /// When it was written (ms since the epoch).
    pub created_ms: i64,
    /// When it last changed (ms since the epoch).
    pub updated_ms: i64,
    /// HTTP status of the last attempt, if it got one.
    pub last_status: Option<u16>,
    /// Error of the last failed attempt.
    pub last_error: Option<String>,
}

impl Delivery {
    /// Attempts made in the current round.
    pub fn round_attempts(&self) -> u32 {
        self.attempts.saturating_sub(self.round_start)
    }
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The delivery.
    pub delivery: String,
    /// Its subscription.
    pub subscription: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When it was made (ms since the epoch).
    pub at_ms: i64,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Time to the answer or the failure.
    pub latency_ms: u64,
    /// Why it failed.
    pub error: Option<String>,
    /// The delivery's state after it.
    pub outcome: DeliveryState,
}

/// The answer to a claim of a delivery's next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Claimed: send it, then settle.
    Claimed,
    /// Another worker holds the claim until then (ms since the epoch): do not send.
    Busy(i64),
    /// The delivery is no longer pending at that attempt: nothing to send.
    Gone,
}

/// The outbox and its attempt log.
#[async_trait]
pub trait DeliveryStore: Send + Sync + std::fmt::Debug {
    /// Writes the deliveries not written before (same subscription and event key) and returns,
    /// for each given delivery in order, the stored one (the existing one if it was there).
    async fn add(
        &self,
        deliveries: &[NewDelivery],
        now_ms: i64,
    ) -> Result<Vec<Delivery>, DeliveryError>;

    /// One delivery.
    async fn get(&self, id: &str) -> Result<Option<Delivery>, DeliveryError>;

    /// Claims the next attempt of a pending delivery that has made exactly `attempts_before`
    /// attempts, until `until_ms`: while the claim holds, no other claim of that attempt
    /// succeeds, so two copies of a due message never send it at once. Settling ends the claim;
    /// a claimer that died loses it when it expires.
    async fn claim(
        &self,
        id: &str,
        attempts_before: u32,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Claim, DeliveryError>;

    /// Moves a pending delivery that has made exactly `attempts_before` attempts to `state`,
    /// logging `attempt` (which counts as one more attempt) if given. `false` when the delivery
    /// is no longer in that position (another worker got there first): nothing is changed.
    async fn settle(
        &self,
        id: &str,
        attempts_before: u32,
        attempt: Option<&Attempt>,
        state: DeliveryState,
        now_ms: i64,
    ) -> Result<bool, DeliveryError>;

    /// The subscription's most recent attempts, newest first.
    async fn attempts(
        &self,
        subscription: &str,
        limit: usize,
    ) -> Result<Vec<Attempt>, DeliveryError>;

    /// The subscription's deliveries, newest first, optionally only those in `state`.
    async fn list(
        &self,
        subscription: &str,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> Result<Vec<Delivery>, DeliveryError>;

    /// Starts a new round of attempts for a dead delivery; `None` if it is not dead.
    async fn resend(&self, id: &str, now_ms: i64) -> Result<Option<Delivery>, DeliveryError>;

    /// Forgets attempts, and deliveries that are no longer pending, last changed before
    /// `before_ms`; returns how many rows went.
    async fn prune(&self, before_ms: i64) -> Result<u64, DeliveryError>;
}
