//! Adapters for AWS and servers speaking its protocols: `BlobStore` on S3 ([`S3BlobStore`]),
//! `Queue` on SQS ([`SqsQueue`]) and `Topic` on SNS ([`SnsTopic`]), on the official SDK with
//! lean features (no legacy HTTP stack, no SigV4a); [`AwsQueues`] is a deployment's queue
//! backend on SQS and SNS and [`S3Buckets`] an S3 account's buckets.

mod options;
mod queues;
pub mod s3;
pub mod sns;
pub mod sqs;

pub use options::AwsOptions;
pub use queues::AwsQueues;
pub use s3::{S3BlobStore, S3Buckets, S3Staging};
pub use sns::SnsTopic;
pub use sqs::SqsQueue;
