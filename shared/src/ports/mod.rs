//! Ports: the traits every adapter (embedded or cloud) implements.

pub mod blob;
pub mod queue;

pub use blob::{
    BlobError, BlobStore, ByteRange, ByteStream, GetObject, ListPage, ObjectMeta, PutMode,
    PutOptions,
};
pub use queue::{
    BucketEvent, BucketEventName, Message, OutgoingMessage, Queue, QueueError, QueueStats, Topic,
};
