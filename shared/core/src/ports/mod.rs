//! Ports: the traits every adapter (embedded or cloud) implements.

pub mod blob;
pub mod buckets;
pub mod collections;
pub mod deliveries;
pub mod journal;
pub mod leases;
pub mod listing;
pub mod mail;
pub mod queue;
pub mod search;
pub mod staging;
pub mod subscriptions;

pub use blob::{
    BatchCopy, BlobError, BlobStore, ByteRange, ByteStream, CopyProgress, GetObject, ListPage,
    ObjectMeta, PutMode, PutOptions, Verify,
};
pub use buckets::{Buckets, valid_bucket_name};
pub use collections::{CollectionIndex, CollectionIndexError};
pub use deliveries::{
    Attempt, Claim, Delivery, DeliveryError, DeliveryState, DeliveryStore, NewDelivery,
};
pub use journal::{EventInfo, EventJournal, EventKind, JournalError, NewEvent};
pub use leases::{LeaseError, Leases};
pub use mail::{Mail, MailError, Mailer};
pub use queue::{
    BucketEvent, BucketEventName, Message, OutgoingMessage, Queue, QueueBackend, QueueError,
    QueueSpec, QueueStats, Topic,
};
pub use search::{Hit, SearchError, SearchIndex, SearchPage, SearchRequest};
pub use staging::{Declared, FileStamp, LocalFile, Sent, Staging, stage_options, staged_checksums};
pub use subscriptions::{
    FailureRecord, FilterFailure, Subscription, SubscriptionError, SubscriptionKind,
    SubscriptionStore,
};
