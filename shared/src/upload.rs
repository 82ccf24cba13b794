//! Helpers for stores that upload a put's body to a remote service in parts: reading the body
//! part by part, hashing off the request threads, and checking the result against the put's
//! expectations before anything becomes visible.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::checksum::{Checksums, MultiHasher};
use crate::ports::{BlobError, ByteStream, PutOptions, Verify};

/// Media type recorded when a put names none.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Reads `limit` bytes of `body` (fewer only at its end), starting with `carry` and leaving
/// in it what is read beyond.
pub async fn fill(
    body: &mut ByteStream,
    limit: usize,
    carry: &mut Bytes,
) -> Result<Bytes, BlobError> {
    let mut buf = BytesMut::new();
    loop {
        if carry.is_empty() {
            match body.next().await {
                None => return Ok(buf.freeze()),
                Some(Err(e)) => return Err(BlobError::Body(e)),
                Some(Ok(c)) => *carry = c,
            }
        }
        let want = limit - buf.len();
        if carry.len() > want {
            buf.extend_from_slice(&carry.split_to(want));
        } else {
            buf.extend_from_slice(carry);
            *carry = Bytes::new();
        }
        if buf.len() == limit {
            return Ok(buf.freeze());
        }
    }
}

/// Whether `body` has ended; a chunk read to find out is left in `carry`.
pub async fn ended(body: &mut ByteStream, carry: &mut Bytes) -> Result<bool, BlobError> {
    loop {
        match body.next().await {
            None => return Ok(true),
            Some(Err(e)) => return Err(BlobError::Body(e)),
            Some(Ok(c)) if c.is_empty() => continue,
            Some(Ok(c)) => {
                *carry = c;
                return Ok(false);
            }
        }
    }
}

/// Feeds `data` (up to a part, megabytes) to `hasher` on the blocking pool, off the threads
/// that serve requests.
pub async fn hash(mut hasher: MultiHasher, data: Bytes) -> Result<MultiHasher, BlobError> {
    tokio::task::spawn_blocking(move || {
        hasher.update(data);
        hasher
    })
    .await
    .map_err(|e| BlobError::Backend(format!("hashing failed: {e}")))
}

/// The media type a put records.
pub fn content_type(opts: &PutOptions) -> String {
    opts.content_type
        .clone()
        .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string())
}

/// Compares what was received with what the put expects.
pub fn verify(opts: &PutOptions, size: u64, sums: &Checksums) -> Result<(), BlobError> {
    if let Some(expected) = opts.size
        && expected != size
    {
        return Err(BlobError::SizeMismatch {
            expected,
            got: size,
        });
    }
    if opts.verify == Verify::Copy && opts.expected.is_none() {
        return Err(BlobError::Backend(
            "a copy put needs the expected checksums".into(),
        ));
    }
    if let Some(expected) = &opts.expected {
        let bad = expected.mismatches(sums);
        if !bad.is_empty() {
            return Err(BlobError::ChecksumMismatch(bad));
        }
    }
    Ok(())
}
