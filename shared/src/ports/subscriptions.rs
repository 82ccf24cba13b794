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

    /// Removes a subscription; `false` if there was none.
    async fn delete(
        &self,
        replica: &str,
        kind: SubscriptionKind,
        uuid: &str,
    ) -> Result<bool, SubscriptionError>;
}
