//! The `SubscriptionStore` port: webhook subscriptions per replica, owned by an e-mail address.

use async_trait::async_trait;
use serde_json::Value;

/// Errors of a subscription store.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    /// The backend failed; may succeed on retry.
    #[error("subscription store backend error: {0}")]
    Backend(String),
}

/// Which matching a subscription uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionKind {
    /// An Elasticsearch query over the bundle's search document (the original "v1").
    Elasticsearch,
    /// A JMESPath expression over the bundle's event document (the original "v2").
    Jmespath,
}

impl SubscriptionKind {
    /// The API's `subscription_type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionKind::Elasticsearch => "elasticsearch",
            SubscriptionKind::Jmespath => "jmespath",
        }
    }

    /// Parses a `subscription_type` value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "elasticsearch" => Some(SubscriptionKind::Elasticsearch),
            "jmespath" => Some(SubscriptionKind::Jmespath),
            _ => None,
        }
    }
}

/// A stored subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// Its id.
    pub uuid: String,
    /// The replica whose events it follows.
    pub replica: String,
    /// Owner's e-mail.
    pub owner: String,
    /// Matching kind.
    pub kind: SubscriptionKind,
    /// The whole document (callback, query, encoding, secret, attachments, owner, uuid, replica).
    pub document: Value,
}

/// A subscription whose filter could not be evaluated on an event (it ran out of budget, erred
/// or failed); it is skipped for that event, every other subscription is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterFailure {
    /// The subscription's replica.
    pub replica: String,
    /// Its kind.
    pub kind: SubscriptionKind,
    /// Its id.
    pub uuid: String,
    /// What went wrong.
    pub reason: String,
}

/// The failures recorded for one subscription's filter, shown to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRecord {
    /// Events its filter failed on.
    pub count: u64,
    /// Why it failed last.
    pub last_error: String,
    /// When it failed last (ms since the epoch).
    pub last_ms: i64,
}

/// Subscriptions of every replica, looked up by replica and kind, never by scanning all.
#[async_trait]
pub trait SubscriptionStore: Send + Sync + std::fmt::Debug {
    /// Stores `s` unless its owner already has more than `limit` subscriptions of its kind in its
    /// replica; `false` when refused for that reason.
    async fn create(&self, s: &Subscription, limit: usize) -> Result<bool, SubscriptionError>;

    /// One subscription.
    async fn get(
        &self,
        replica: &str,
        kind: SubscriptionKind,
        uuid: &str,
    ) -> Result<Option<Subscription>, SubscriptionError>;

    /// An owner's subscriptions of one kind in one replica, newest id first.
    async fn list_owned(
        &self,
        replica: &str,
        kind: SubscriptionKind,
        owner: &str,
    ) -> Result<Vec<Subscription>, SubscriptionError>;

    /// Every subscription of a replica (both kinds), for matching.
    async fn list_replica(&self, replica: &str) -> Result<Vec<Subscription>, SubscriptionError>;

    /// A number that changes whenever a subscription of `replica` is created or deleted, so that
    /// matchers reload their compiled set only then.
    async fn revision(&self, replica: &str) -> Result<u64, SubscriptionError>;

    /// Counts a failure of each listed subscription's filter at `at_ms`, keeping the last
    /// reason; the revision does not change.
    async fn record_failures(
        &self,
        failures: &[FilterFailure],
        at_ms: i64,
    ) -> Result<(), SubscriptionError>;

    /// The failures recorded for a subscription's filter, if any.
    async fn failures(
        &self,
        replica: &str,
        kind: SubscriptionKind,
        uuid: &str,
    ) -> Result<Option<FailureRecord>, SubscriptionError>;

    /// Removes a subscription (and its failure record); `false` if there was none.
    async fn delete(
        &self,
        replica: &str,
        kind: SubscriptionKind,
        uuid: &str,
    ) -> Result<bool, SubscriptionError>;
}
