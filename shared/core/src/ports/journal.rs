//! The `EventJournal` port: per replica, an append-only, ordered record of bundle events
//! (CREATE / TOMBSTONE / DELETE documents) that clients replay with `GET /v1/events`.

use async_trait::async_trait;

/// Errors of a journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The backend failed; may succeed on retry.
    #[error("event journal backend error: {0}")]
    Backend(String),
}

/// What happened to a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A bundle version was created.
    Create,
    /// A bundle (or one version) was tombstoned.
    Tombstone,
    /// A bundle object was removed from storage.
    Delete,
}

impl EventKind {
    /// The `event_type` of the document.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Create => "CREATE",
            EventKind::Tombstone => "TOMBSTONE",
            EventKind::Delete => "DELETE",
        }
    }

    /// Parses an `event_type`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "CREATE" => Some(EventKind::Create),
            "TOMBSTONE" => Some(EventKind::Tombstone),
            "DELETE" => Some(EventKind::Delete),
            _ => None,
        }
    }
}

/// An event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// `{uuid}.{version}`, or the tombstone's name (`{uuid}.{version}.dead`, `{uuid}.dead`).
    pub event_id: String,
    /// Kind.
    pub kind: EventKind,
    /// The document, JSON text.
    pub body: String,
}

/// A recorded event, without its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventInfo {
    /// Position in the replica's journal (1, 2, …).
    pub seq: u64,
    /// Event id.
    pub event_id: String,
    /// Kind.
    pub kind: EventKind,
    /// When it was recorded, as a DSS version string; strictly increasing with `seq`.
    pub timestamp: String,
    /// Size of the body in bytes.
    pub size: u64,
}

/// The journals of every replica.
#[async_trait]
pub trait EventJournal: Send + Sync + std::fmt::Debug {
    /// Appends the events not recorded before (an event is its replica, id and kind), in order;
    /// returns how many were new. Re-recording is a no-op, so redelivery is harmless.
    async fn record(&self, replica: &str, events: Vec<NewEvent>) -> Result<usize, JournalError>;

    /// Up to `limit` events with `from <= timestamp < to`, in journal order.
    async fn list(
        &self,
        replica: &str,
        from: Option<&str>,
        to: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EventInfo>, JournalError>;

    /// The bodies of events `first..=last`, concatenated in order.
    async fn read(&self, replica: &str, first: u64, last: u64) -> Result<Vec<u8>, JournalError>;

    /// The body of one event.
    async fn find(
        &self,
        replica: &str,
        event_id: &str,
        kind: EventKind,
    ) -> Result<Option<String>, JournalError>;
}
