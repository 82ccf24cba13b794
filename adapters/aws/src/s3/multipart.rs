//! Multipart uploads and server-side copies.

use std::collections::{HashMap, VecDeque};

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::upload_part::builders::UploadPartFluentBuilder;
use aws_sdk_s3::primitives::{ByteStream as S3Body, Length};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, MetadataDirective,
};
use bytes::Bytes;
use dss_core::checksum::Checksums;
use dss_core::ports::{BlobError, ByteStream, LocalFile, PutOptions};
use futures::{StreamExt, TryStreamExt};
use tokio::task::JoinHandle;

use dss_core::upload::{Hashing, fill, hash, hash_file, read_file, verify};

use super::{backend, metadata, percent_encode, wire_crc32c};

/// S3's smallest part (all but the last).
pub const MIN_PART: u64 = 5 * 1024 * 1024;
/// The largest object one `CopyObject` copies.
const MAX_SINGLE_COPY: u64 = 5 * 1024 * 1024 * 1024;
/// Part size of copies above [`MAX_SINGLE_COPY`].
const COPY_PART: u64 = 512 * 1024 * 1024;
/// Parts uploaded at once while the next one is read.
const PARTS_IN_FLIGHT: usize = 2;
/// Read size of parts sent from a local file.
const FILE_READ: usize = 256 * 1024;

/// Sends `req`, part `number` of its upload, with `body` and its CRC-32C `crc` for S3 to check.
async fn send(
    req: UploadPartFluentBuilder,
    number: i32,
    crc: u32,
    body: S3Body,
) -> Result<CompletedPart, BlobError> {
    let crc = wire_crc32c(crc);
    let out = req
        .checksum_algorithm(ChecksumAlgorithm::Crc32C)
        .checksum_crc32_c(&crc)
        .body(body)
        .send()
        .await
        .map_err(backend)?;
    Ok(CompletedPart::builder()
        .set_e_tag(out.e_tag().map(str::to_string))
        .checksum_crc32_c(crc)
        .part_number(number)
        .build())
}

/// Starts a multipart upload of `key` with the user metadata `user`, whose parts each carry a
/// checksum of `checksum` if given; returns its id.
async fn create(
    client: &Client,
    bucket: &str,
    key: &str,
    content_type: &str,
    user: HashMap<String, String>,
    checksum: Option<ChecksumAlgorithm>,
) -> Result<String, BlobError> {
    let created = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .set_metadata(Some(user))
        .set_checksum_algorithm(checksum)
        .send()
        .await
        .map_err(backend)?;
    created
        .upload_id()
        .map(str::to_string)
        .ok_or_else(|| BlobError::Backend("no upload id".into()))
}

/// Aborts a failed multipart upload (its parts are freed); a failure is logged.
async fn abort(client: &Client, bucket: &str, key: &str, id: &str) {
    let aborted = client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .send()
        .await;
    if let Err(e) = aborted {
        tracing::warn!(bucket, key, error = %backend(e), "aborting a failed multipart upload failed; a lifecycle rule must remove it");
    }
}

/// A key percent-encoded for `x-amz-copy-source` (`/` kept).
fn encode_key(key: &str) -> String {
    percent_encode(key, b"/")
}

/// One multipart upload of a streamed body.
pub struct Upload<'a> {
    /// The client.
    pub client: &'a Client,
    /// The bucket.
    pub bucket: &'a str,
    /// The key.
    pub key: &'a str,
    /// The media type.
    pub content_type: &'a str,
    /// What the put expects.
    pub opts: &'a PutOptions,
}

impl Upload<'_> {
    /// Uploads `first` and the rest of `body` (after `carry`) in parts of `part` bytes, each
    /// hashed while it is sent and carrying its CRC-32C (which S3 checks); completes the
    /// upload only if size and checksums verify, else aborts it. Returns (size, checksums,
    /// ETag).
    pub async fn run(
        self,
        first: Bytes,
        body: ByteStream,
        carry: Bytes,
        part: usize,
        hasher: Hashing,
    ) -> Result<(u64, Checksums, String), BlobError> {
        let id = self.start().await?;
        let result = self.parts(&id, first, body, carry, part, hasher).await;
        self.finish(&id, result).await
    }

    /// Uploads the local file `file` in parts of `part` bytes, each read from the file by the
    /// SDK (which reads it again to retry) and carrying its CRC-32C, while one pass over the
    /// file computes its checksums; nothing is held in memory. Completes the upload only if
    /// size and checksums verify and the file did not change meanwhile, else aborts it.
    /// Returns (size, checksums, ETag).
    pub async fn send_file(
        self,
        file: &LocalFile<'_>,
        part: u64,
    ) -> Result<(u64, Checksums, String), BlobError> {
        let before = file.listed().await?;
        let id = self.start().await?;
        let result = match self.file_parts(&id, file, part).await {
            Ok(done) => file.unchanged(&before).await.map(|()| done),
            failed => failed,
        };
        self.finish(&id, result).await
    }

    /// Starts the multipart upload, its parts each carrying a CRC-32C; returns its id.
    async fn start(&self) -> Result<String, BlobError> {
        let user = metadata(self.opts.expected.as_ref(), self.opts);
        let crc = Some(ChecksumAlgorithm::Crc32C);
        create(
            self.client,
            self.bucket,
            self.key,
            self.content_type,
            user,
            crc,
        )
        .await
    }

    /// Completes upload `id` if its parts were sent and verify, else aborts it.
    async fn finish(
        &self,
        id: &str,
        sent: Result<(Vec<CompletedPart>, u64, Checksums), BlobError>,
    ) -> Result<(u64, Checksums, String), BlobError> {
        let finished = match sent {
            Ok((parts, size, sums)) => match verify(self.opts, size, &sums) {
                Ok(()) => self
                    .complete(id, parts)
                    .await
                    .map(|etag| (size, sums, etag)),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if finished.is_err() {
            abort(self.client, self.bucket, self.key, id).await;
        }
        finished
    }

    async fn file_parts(
        &self,
        id: &str,
        file: &LocalFile<'_>,
        part: u64,
    ) -> Result<(Vec<CompletedPart>, u64, Checksums), BlobError> {
        let hashing = hash_file(file.path, file.size, Hashing::for_put(self.opts));
        let parts = futures::stream::iter(0..file.size.div_ceil(part))
            .map(|index| self.file_part(id, file, index, part))
            .buffered(PARTS_IN_FLIGHT)
            .try_collect::<Vec<_>>()
            .await;
        // A failed part fails the upload at once; the hashing pass then ends on its own.
        let parts = parts?;
        let hasher = hashing.await?;
        Ok((parts, hasher.hashed(), hasher.finish()))
    }

    /// Sends part `index` (of `part` bytes) of `file`.
    async fn file_part(
        &self,
        id: &str,
        file: &LocalFile<'_>,
        index: u64,
        part: u64,
    ) -> Result<CompletedPart, BlobError> {
        let offset = index * part;
        let len = part.min(file.size - offset);
        let number = i32::try_from(index + 1)
            .map_err(|_| BlobError::Backend(format!("part {index} is past S3's last part")))?;
        let path = file.path.to_path_buf();
        let crc = tokio::task::spawn_blocking(move || {
            let mut crc = 0;
            read_file(&path, offset, Some(len), |c| {
                crc = crc32c::crc32c_append(crc, &c)
            })
            .map(|()| crc)
        })
        .await
        .map_err(|e| BlobError::Backend(format!("hashing failed: {e}")))??;
        let body = S3Body::read_from()
            .path(file.path)
            .offset(offset)
            .length(Length::Exact(len))
            .buffer_size(FILE_READ)
            .build()
            .await
            .map_err(|e| BlobError::Body(std::io::Error::other(e)))?;
        let req = self.part(id, number).content_length(len as i64);
        let done = send(req, number, crc, body).await?;
        (file.sent)(len);
        Ok(done)
    }

    fn send_part(
        &self,
        id: &str,
        number: i32,
        data: Bytes,
    ) -> JoinHandle<Result<CompletedPart, BlobError>> {
        let req = self.part(id, number);
        // Hardware CRC-32C: milliseconds for a part.
        tokio::spawn(async move { send(req, number, crc32c::crc32c(&data), data.into()).await })
    }

    /// The request for part `number` of upload `id`.
    fn part(&self, id: &str, number: i32) -> UploadPartFluentBuilder {
        self.client
            .upload_part()
            .bucket(self.bucket)
            .key(self.key)
            .upload_id(id)
            .part_number(number)
    }

    async fn parts(
        &self,
        id: &str,
        first: Bytes,
        mut body: ByteStream,
        mut carry: Bytes,
        part: usize,
        mut hasher: Hashing,
    ) -> Result<(Vec<CompletedPart>, u64, Checksums), BlobError> {
        let mut in_flight: VecDeque<JoinHandle<Result<CompletedPart, BlobError>>> = VecDeque::new();
        let mut done = Vec::new();
        let mut number = 1;
        let mut next = first;
        let outcome = loop {
            in_flight.push_back(self.send_part(id, number, next.clone()));
            // Fails only if hashing panicked; the caller aborts the upload.
            hasher = hash(hasher, next).await?;
            if in_flight.len() >= PARTS_IN_FLIGHT
                && let Some(h) = in_flight.pop_front()
            {
                match h.await {
                    Ok(Ok(p)) => done.push(p),
                    Ok(Err(e)) => break Err(e),
                    Err(e) => break Err(BlobError::Backend(e.to_string())),
                }
            }
            match fill(&mut body, part, &mut carry).await {
                Ok(b) if b.is_empty() => break Ok(()),
                Ok(b) => {
                    next = b;
                    number += 1;
                }
                Err(e) => break Err(e),
            }
        };
        for h in in_flight {
            match (h.await, &outcome) {
                (Ok(Ok(p)), _) => done.push(p),
                (Ok(Err(e)), Ok(())) => return Err(e),
                (Err(e), Ok(())) => return Err(BlobError::Backend(e.to_string())),
                _ => {}
            }
        }
        outcome?;
        let size = hasher.hashed();
        Ok((done, size, hasher.finish()))
    }

    async fn complete(&self, id: &str, parts: Vec<CompletedPart>) -> Result<String, BlobError> {
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(self.bucket)
            .key(self.key)
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(backend)?;
        Ok(out
            .e_tag()
            .unwrap_or_default()
            .trim_matches('"')
            .to_string())
    }
}

/// Records checksums learnt after an upload, by copying the object onto itself with the new
/// metadata (objects above 5 GiB keep none; their S3 ETag, computed with the DSS part size,
/// still identifies their content).
pub async fn record(
    client: &Client,
    bucket: &str,
    key: &str,
    size: u64,
    content_type: &str,
    sums: &Checksums,
    opts: &PutOptions,
) -> Result<(), BlobError> {
    if size > MAX_SINGLE_COPY {
        tracing::info!(
            bucket,
            key,
            size,
            "object too large to record its checksums as metadata"
        );
        return Ok(());
    }
    let copy = ServerCopy {
        client,
        from: (bucket, key),
        to: (bucket, key),
        size,
        content_type,
    };
    copy.run(metadata(Some(sums), opts), None).await.map(|_| ())
}

/// A copy made by the server, from one bucket and key to another of the same service.
pub struct ServerCopy<'a> {
    /// The client.
    pub client: &'a Client,
    /// Source bucket and key.
    pub from: (&'a str, &'a str),
    /// Destination bucket and key.
    pub to: (&'a str, &'a str),
    /// The object's size.
    pub size: u64,
    /// The media type to record.
    pub content_type: &'a str,
}

impl ServerCopy<'_> {
    /// Copies with the user metadata `user`: one `CopyObject` when `part` is `None` and the
    /// object is at most 5 GiB, else `UploadPartCopy` parts of `part` bytes (512 MiB by default;
    /// the DSS part size makes the ETag the `s3_etag`). Returns the copy's ETag.
    pub async fn run(
        &self,
        user: HashMap<String, String>,
        part: Option<u64>,
    ) -> Result<String, BlobError> {
        let (client, (to_bucket, to)) = (self.client, self.to);
        let source = format!("{}/{}", self.from.0, encode_key(self.from.1));
        if part.is_none() && self.size <= MAX_SINGLE_COPY {
            let out = client
                .copy_object()
                .bucket(to_bucket)
                .key(to)
                .copy_source(&source)
                .metadata_directive(MetadataDirective::Replace)
                .content_type(self.content_type)
                .set_metadata(Some(user))
                .send()
                .await
                .map_err(backend)?;
            let etag = out
                .copy_object_result()
                .and_then(|r| r.e_tag())
                .unwrap_or_default();
            return Ok(etag.trim_matches('"').to_string());
        }
        let part = part.unwrap_or(COPY_PART).max(MIN_PART);
        let id = create(client, to_bucket, to, self.content_type, user, None).await?;
        let parts = self.parts(&source, &id, part).await;
        let completed = match parts {
            Ok(parts) => client
                .complete_multipart_upload()
                .bucket(to_bucket)
                .key(to)
                .upload_id(&id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(backend),
            Err(e) => Err(e),
        };
        match completed {
            Ok(out) => Ok(out
                .e_tag()
                .unwrap_or_default()
                .trim_matches('"')
                .to_string()),
            Err(e) => {
                abort(client, to_bucket, to, &id).await;
                Err(e)
            }
        }
    }

    async fn parts(
        &self,
        source: &str,
        id: &str,
        part: u64,
    ) -> Result<Vec<CompletedPart>, BlobError> {
        let mut parts = Vec::new();
        let (mut start, mut number) = (0u64, 1);
        while start < self.size {
            let end = (start + part).min(self.size) - 1;
            let out = self
                .client
                .upload_part_copy()
                .bucket(self.to.0)
                .key(self.to.1)
                .upload_id(id)
                .part_number(number)
                .copy_source(source)
                .copy_source_range(format!("bytes={start}-{end}"))
                .send()
                .await
                .map_err(backend)?;
            parts.push(
                CompletedPart::builder()
                    .set_e_tag(
                        out.copy_part_result()
                            .and_then(|r| r.e_tag())
                            .map(str::to_string),
                    )
                    .part_number(number)
                    .build(),
            );
            start = end + 1;
            number += 1;
        }
        Ok(parts)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn copy_sources_are_percent_encoded() {
        assert_eq!(super::encode_key("blobs/a.b-c_d~e"), "blobs/a.b-c_d~e");
        assert_eq!(super::encode_key("x y/ü+"), "x%20y/%C3%BC%2B");
    }
}
