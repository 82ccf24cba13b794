//! The `Buckets` port: the buckets of one storage account (a directory of local buckets, an S3
//! endpoint, a GCS project), opened by name — where checkouts are written.

use std::sync::Arc;

use async_trait::async_trait;

use super::blob::{BlobError, BlobStore};

/// Opens buckets of one account by name.
#[async_trait]
pub trait Buckets: Send + Sync + std::fmt::Debug {
    /// The bucket `name`, or `None` when the account has no such bucket. Names that cannot be
    /// buckets are refused with [`BlobError::InvalidKey`].
    async fn open(&self, name: &str) -> Result<Option<Arc<dyn BlobStore>>, BlobError>;

    /// The account's address of `prefix` in bucket `name` (`file:///…/name/prefix`,
    /// `s3://name/prefix`, `gs://name/prefix`), as reported to users.
    fn location(&self, name: &str, prefix: &str) -> String;
}

/// Whether `name` can name a bucket anywhere: 1–222 characters of letters, digits, `.`, `-`
/// and `_`, starting and ending with a letter or digit, without `..` (S3 and GCS rules combined,
/// so it is also a safe directory name).
pub fn valid_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 222
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && !name.contains("..")
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b".-_".contains(c))
}

#[cfg(test)]
mod tests {
    use super::valid_bucket_name;

    #[test]
    fn bucket_names() {
        for ok in ["a", "my-bucket", "dss.checkout_1", "A1"] {
            assert!(valid_bucket_name(ok), "{ok}");
        }
        for bad in [
            "", ".", "..", "-a", "a-", "a/b", "a..b", ".hidden", "a b", "ü", "a\n",
        ] {
            assert!(!valid_bucket_name(bad), "{bad:?}");
        }
        assert!(!valid_bucket_name(&"a".repeat(223)));
    }
}
