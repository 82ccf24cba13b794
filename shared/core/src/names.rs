//! The names of the deployment's queues and topics, shared by the code that declares them, the
//! daemons that consume them and the operator commands (Terraform's resources are held against
//! them by a test).

/// The topic every bucket publishes its events to.
pub const BUCKET_EVENTS_TOPIC: &str = "bucket-events";

/// The queue of the index daemon (subscribed to [`BUCKET_EVENTS_TOPIC`]).
pub const INDEX_QUEUE: &str = "index";

/// The bucket-event queue of the notify daemon (subscribed to [`BUCKET_EVENTS_TOPIC`]).
pub const NOTIFY_QUEUE: &str = "notify";

/// The notify daemon's queue of webhook deliveries due (one message per attempt).
pub const DELIVERY_QUEUE: &str = "notify-deliveries";

/// The checkout daemon's queue of bundle checkout jobs.
pub const CHECKOUT_QUEUE: &str = "checkout";

/// The checkout daemon's queue of e-mails to send (one message per e-mail).
pub const CHECKOUT_MAIL_QUEUE: &str = "checkout-mail";

/// The sync daemon's queue: bucket events (subscribed to [`BUCKET_EVENTS_TOPIC`] while the
/// deployment has more than one replica) and copy requests of the reconciler and operators.
pub const SYNC_QUEUE: &str = "sync";

/// The Pub/Sub topic the `gs://` main buckets notify (default name, behind the prefix).
pub const GCS_EVENTS_TOPIC: &str = "gcs-events";

/// The event relay's queue: its subscription to [`GCS_EVENTS_TOPIC`] (always on Pub/Sub).
pub const RELAY_QUEUE: &str = "event-relay";

/// Receives of one GCS notification before the relay dead-letters it.
pub const RELAY_MAX_RECEIVE: u32 = 10;

/// The API's queue of large files to copy in from cloud staging (`PUT /files` answered 202).
pub const INGEST_QUEUE: &str = "ingest";

/// Every daemon queue (each has a dead-letter queue `{name}-dlq`).
pub const DAEMON_QUEUES: &[&str] = &[
    INDEX_QUEUE,
    NOTIFY_QUEUE,
    DELIVERY_QUEUE,
    CHECKOUT_QUEUE,
    CHECKOUT_MAIL_QUEUE,
    SYNC_QUEUE,
    INGEST_QUEUE,
];
