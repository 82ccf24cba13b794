//! Adapters for AWS and servers speaking its protocols: `BlobStore` on S3 ([`S3BlobStore`]),
//! `Queue` on SQS ([`SqsQueue`]) and `Topic` on SNS ([`SnsTopic`]), on the official SDK with
//! lean features (no legacy HTTP stack, no SigV4a).

mod options;
pub mod s3;
pub mod sns;
pub mod sqs;

pub use options::AwsOptions;
pub use s3::S3BlobStore;
pub use sns::SnsTopic;
pub use sqs::SqsQueue;
