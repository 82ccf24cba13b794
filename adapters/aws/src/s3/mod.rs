//! `BlobStore` on Amazon S3 or an S3-compatible server.
//!
//! * Puts stream: the body is hashed (all four checksums) as it arrives and sent in one
//!   `PutObject` when it fits in one part, else as a multipart upload whose parts are the DSS
//!   part size, so the object's S3 ETag equals the `s3_etag` checksum; each part is hashed
//!   while it is sent (parts stay invisible until the upload completes). Nothing becomes visible
//!   before the size and expected checksums are verified: a failed single put is never sent,
//!   a failed multipart upload is aborted.
//! * The checksums (and the sync origin) are recorded as user metadata (`x-amz-meta-dss-*`);
//!   when they are known only after a multipart upload, they are added by a server-side copy of
//!   the object onto itself. Listings carry no metadata: their objects have no checksums and an
//!   empty content type (a head has both).
//! * Copies within the bucket are server-side (`CopyObject`, or `UploadPartCopy` parts above
//!   5 GiB). Download URLs are presigned GETs.
//! * Keys follow the same rules as every other store (see `dss_core::keypath`), so
//!   every object can be replicated to every backend.

mod buckets;
mod multipart;
mod staging;

pub use buckets::S3Buckets;
pub use staging::S3Staging;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::ChecksumAlgorithm;
use bytes::Bytes;
use dss_core::checksum::{Checksums, declaration, s3_part_size};
use dss_core::keypath;
use dss_core::ports::{
    BlobError, BlobStore, ByteRange, ByteStream, CopyProgress, Declared, GetObject, ListPage,
    LocalFile, ObjectMeta, PutMode, PutOptions, Verify, stage_options,
};
use dss_core::upload::{Hashing, content_type, ended, fill, hash, verify};
use time::OffsetDateTime;

use crate::AwsOptions;

/// User metadata names (S3 lower-cases them).
const META_SHA256: &str = "dss-sha256";
const META_SHA1: &str = "dss-sha1";
const META_S3_ETAG: &str = "dss-s3-etag";
const META_CRC32C: &str = "dss-crc32c";
const META_ORIGIN: &str = "dss-origin";
const META_CORRELATION: &str = "dss-correlation-id";
/// The `traceparent` of the span that wrote the object.
const META_TRACEPARENT: &str = "dss-traceparent";
/// Who wrote the object, percent-encoded (metadata values travel as ASCII headers).
const META_CREATOR: &str = "dss-creator";

/// One bucket on S3.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    client: Client,
    bucket: String,
    /// Which service the client talks to (endpoint and region); buckets of one service copy
    /// between each other on the server. Empty when unknown.
    service: String,
}

/// A backend error with the SDK's whole error chain.
fn backend<E: std::error::Error + 'static, R: std::fmt::Debug>(e: SdkError<E, R>) -> BlobError {
    BlobError::Backend(DisplayErrorContext(e).to_string())
}

fn check_key(key: &str) -> Result<(), BlobError> {
    keypath::validate(key).map_err(|reason| BlobError::InvalidKey {
        key: key.to_string(),
        reason,
    })
}

fn to_time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> OffsetDateTime {
    t.and_then(|t| {
        OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(t.secs()) * 1_000_000_000 + i128::from(t.subsec_nanos()),
        )
        .ok()
    })
    .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// How a put records the checksums it computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record {
    /// In the object's user metadata; a multipart object put without expected checksums is
    /// copied onto itself for that.
    Metadata,
    /// Also as the `hca-dss-*` tags of a staging object: sent with a single put, set after a
    /// multipart upload completes (its metadata then holds no checksums).
    Tags,
}

/// `s` percent-encoded, keeping ASCII letters, digits, `-_.~` and the bytes of `keep`.
fn percent_encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A CRC-32C as S3's `x-amz-checksum-crc32c` carries it: the base64 of its four big-endian
/// bytes. S3 checks a put's or a part's bytes against it before storing them.
fn wire_crc32c(crc: u32) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
}

/// `tags` as the `x-amz-tagging` header carries them (a URL-encoded query).
fn tagging_header(tags: &[(String, String)]) -> String {
    let enc = |s: &str| percent_encode(s, b"");
    tags.iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The metadata recording `sums`, the origin and creator in `opts`, and the calling task's
/// correlation id and `traceparent`.
fn metadata(sums: Option<&Checksums>, opts: &PutOptions) -> HashMap<String, String> {
    let mut m = HashMap::new();
    if let Some(s) = sums {
        m.insert(META_SHA256.into(), s.sha256.clone());
        m.insert(META_SHA1.into(), s.sha1.clone());
        m.insert(META_S3_ETAG.into(), s.s3_etag.clone());
        m.insert(META_CRC32C.into(), s.crc32c.clone());
    }
    if let Some(o) = &opts.origin {
        m.insert(META_ORIGIN.into(), o.clone());
    }
    if let Some(c) = &opts.creator {
        m.insert(META_CREATOR.into(), percent_encode(c, b"@.+-_"));
    }
    if let Some(id) = dss_core::correlation::current() {
        m.insert(META_CORRELATION.into(), id);
    }
    if let Some(tp) = dss_core::correlation::traceparent() {
        m.insert(META_TRACEPARENT.into(), tp);
    }
    m
}

/// The checksums recorded in user metadata, if all four are there and well formed.
fn recorded(m: Option<&HashMap<String, String>>) -> Option<Checksums> {
    let m = m?;
    Checksums::new(
        m.get(META_SHA256)?,
        m.get(META_SHA1)?,
        m.get(META_S3_ETAG)?,
        m.get(META_CRC32C)?,
    )
    .ok()
}

impl S3BlobStore {
    /// The bucket `bucket`, reached as `options` say.
    pub async fn connect(bucket: &str, options: &AwsOptions) -> Self {
        Self {
            service: format!(
                "{} {}",
                options.endpoint.as_deref().unwrap_or("aws"),
                options.region.as_deref().unwrap_or("")
            ),
            ..Self::with_client(options.s3().await, bucket)
        }
    }

    /// The bucket `bucket` through an existing client (of an unknown service: it copies from
    /// other buckets through streams).
    pub fn with_client(client: Client, bucket: &str) -> Self {
        Self {
            client,
            bucket: bucket.to_string(),
            service: String::new(),
        }
    }

    /// The bucket `bucket` of the same service, through the same client.
    pub fn sibling(&self, bucket: &str) -> Self {
        Self {
            bucket: bucket.to_string(),
            ..self.clone()
        }
    }

    /// Whether the bucket exists (and this client may see it).
    pub async fn exists(&self) -> Result<bool, BlobError> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }

    /// Creates the bucket unless it exists (for local servers and first deployments).
    pub async fn ensure_bucket(&self) -> Result<(), BlobError> {
        if self.exists().await? {
            return Ok(());
        }
        match self
            .client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()
                }) =>
            {
                Ok(())
            }
            Err(e) => Err(backend(e)),
        }
    }

    /// What a staging object declares about itself: its user metadata merged with its tags
    /// (tags win, as in the original), for [`dss_core::checksum::declared_checksums`]; with
    /// its size and content type. `None` if there is no such object.
    pub async fn declared(&self, key: &str) -> Result<Option<Declared>, BlobError> {
        let Some(head) = self.head_object(key).await? else {
            return Ok(None);
        };
        let mut values: std::collections::BTreeMap<String, String> = head
            .metadata()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let tags = self
            .client
            .get_object_tagging()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(backend)?;
        for t in tags.tag_set() {
            values.insert(t.key().to_ascii_lowercase(), t.value().to_string());
        }
        Ok(Some(Declared {
            size: u64::try_from(head.content_length().unwrap_or(0)).unwrap_or(0),
            content_type: head.content_type().unwrap_or_default().to_string(),
            etag: head.e_tag().map(|e| e.trim_matches('"').to_string()),
            values,
        }))
    }

    /// A put whose computed checksums are recorded as `record` says.
    pub(crate) async fn put_object(
        &self,
        key: &str,
        mut body: ByteStream,
        opts: PutOptions,
        record: Record,
    ) -> Result<ObjectMeta, BlobError> {
        check_key(key)?;
        if opts.mode == PutMode::Create && self.head(key).await?.is_some() {
            return Err(BlobError::AlreadyExists(key.to_string()));
        }
        let content_type = content_type(&opts);
        // The DSS part size: the multipart ETag then equals the object's `s3_etag`.
        let part = s3_part_size(opts.size.unwrap_or(0)).max(multipart::MIN_PART) as usize;
        let hasher = Hashing::for_put(&opts);
        let mut carry = Bytes::new();
        let first = fill(&mut body, part, &mut carry).await?;
        if first.len() < part || (carry.is_empty() && ended(&mut body, &mut carry).await?) {
            let hasher = hash(hasher, first.clone()).await?;
            let size = hasher.hashed();
            let sums = hasher.finish();
            verify(&opts, size, &sums)?;
            return self
                .put_single(key, first, sums, &opts, &content_type, record)
                .await;
        }
        let upload = multipart::Upload {
            client: &self.client,
            bucket: &self.bucket,
            key,
            content_type: &content_type,
            opts: &opts,
        };
        let (size, sums, etag) = upload.run(first, body, carry, part, hasher).await?;
        if record == Record::Tags {
            self.tag(key, &declaration(&sums)).await?;
        } else if opts.expected.is_none() {
            // The checksums were not known when the upload began: record them now.
            multipart::record(
                &self.client,
                &self.bucket,
                key,
                size,
                &content_type,
                &sums,
                &opts,
            )
            .await?;
        }
        Ok(ObjectMeta {
            key: key.to_string(),
            size,
            etag,
            content_type,
            created: OffsetDateTime::now_utc(),
            checksums: Some(sums),
            origin: opts.origin.clone(),
            correlation_id: dss_core::correlation::current(),
            traceparent: dss_core::correlation::traceparent(),
            creator: opts.creator.clone(),
        })
    }

    /// Stages the local file `file` as `key` with the `hca-dss-*` tags, in DSS parts sent from
    /// the file: its checksums.
    pub(crate) async fn put_file(
        &self,
        key: &str,
        file: &LocalFile<'_>,
    ) -> Result<Checksums, BlobError> {
        check_key(key)?;
        let part = s3_part_size(file.size).max(multipart::MIN_PART);
        let opts = stage_options(file.size, file.content_type);
        let upload = multipart::Upload {
            client: &self.client,
            bucket: &self.bucket,
            key,
            content_type: file.content_type,
            opts: &opts,
        };
        let (_, sums, _) = upload.send_file(file, part).await?;
        self.tag(key, &declaration(&sums)).await?;
        Ok(sums)
    }

    /// Replaces the tags of object `key` with `tags`.
    async fn tag(&self, key: &str, tags: &[(String, String)]) -> Result<(), BlobError> {
        use aws_sdk_s3::types::{Tag, Tagging};
        let set = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BlobError::Backend(e.to_string()))?;
        let tagging = Tagging::builder()
            .set_tag_set(Some(set))
            .build()
            .map_err(|e| BlobError::Backend(e.to_string()))?;
        self.client
            .put_object_tagging()
            .bucket(&self.bucket)
            .key(key)
            .tagging(tagging)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Sends the bucket's object creations and removals to the SNS topic `topic_arn` (S3 event
    /// notifications; the topic must let S3 publish, see `SnsTopic::allow_bucket`). Replaces the
    /// bucket's notification configuration.
    pub async fn publish_events_to(&self, topic_arn: &str) -> Result<(), BlobError> {
        use aws_sdk_s3::types::{Event, NotificationConfiguration, TopicConfiguration};
        let topic = TopicConfiguration::builder()
            .id("dss-bucket-events")
            .topic_arn(topic_arn)
            .events(Event::S3ObjectCreated)
            .events(Event::S3ObjectRemoved)
            .build()
            .map_err(|e| BlobError::Backend(e.to_string()))?;
        self.client
            .put_bucket_notification_configuration()
            .bucket(&self.bucket)
            .notification_configuration(
                NotificationConfiguration::builder()
                    .topic_configurations(topic)
                    .build(),
            )
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// `HeadObject`, `None` if there is no such object.
    async fn head_object(
        &self,
        key: &str,
    ) -> Result<Option<aws_sdk_s3::operation::head_object::HeadObjectOutput>, BlobError> {
        check_key(key)?;
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => Ok(Some(o)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    fn meta_of(
        &self,
        key: &str,
        size: u64,
        etag: Option<&str>,
        content_type: Option<&str>,
        modified: Option<&aws_sdk_s3::primitives::DateTime>,
        user: Option<&HashMap<String, String>>,
    ) -> ObjectMeta {
        ObjectMeta {
            key: key.to_string(),
            size,
            etag: etag.unwrap_or_default().trim_matches('"').to_string(),
            content_type: content_type.unwrap_or_default().to_string(),
            created: to_time(modified),
            checksums: recorded(user),
            origin: user.and_then(|m| m.get(META_ORIGIN).cloned()),
            correlation_id: user.and_then(|m| m.get(META_CORRELATION).cloned()),
            traceparent: user
                .and_then(|m| m.get(META_TRACEPARENT))
                .filter(|tp| dss_core::correlation::valid_traceparent(tp))
                .cloned(),
            creator: user
                .and_then(|m| m.get(META_CREATOR))
                .and_then(|c| percent_encoding::percent_decode_str(c).decode_utf8().ok())
                .map(|c| c.into_owned()),
        }
    }

    /// One `PutObject` of a body held in memory.
    async fn put_single(
        &self,
        key: &str,
        data: Bytes,
        sums: Checksums,
        opts: &PutOptions,
        content_type: &str,
        record: Record,
    ) -> Result<ObjectMeta, BlobError> {
        let size = data.len() as u64;
        let crc = u32::from_str_radix(&sums.crc32c, 16)
            .map_err(|_| BlobError::Backend(format!("{key}: computed CRC-32C is not hex")))?;
        let mut req = self
            .client
            .put_object()
            .checksum_algorithm(ChecksumAlgorithm::Crc32C)
            .checksum_crc32_c(wire_crc32c(crc))
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .set_metadata(Some(metadata(Some(&sums), opts)))
            .body(S3Body::from(data));
        if opts.mode == PutMode::Create {
            req = req.if_none_match("*");
        }
        if record == Record::Tags {
            req = req.tagging(tagging_header(&declaration(&sums)));
        }
        let out =
            req.send()
                .await
                .map_err(|e| match e.raw_response().map(|r| r.status().as_u16()) {
                    Some(412) => BlobError::AlreadyExists(key.to_string()),
                    _ => backend(e),
                })?;
        Ok(ObjectMeta {
            key: key.to_string(),
            size,
            etag: out
                .e_tag()
                .unwrap_or_default()
                .trim_matches('"')
                .to_string(),
            content_type: content_type.to_string(),
            created: OffsetDateTime::now_utc(),
            checksums: Some(sums),
            origin: opts.origin.clone(),
            correlation_id: dss_core::correlation::current(),
            traceparent: dss_core::correlation::traceparent(),
            creator: opts.creator.clone(),
        })
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn put(
        &self,
        key: &str,
        body: ByteStream,
        opts: PutOptions,
    ) -> Result<ObjectMeta, BlobError> {
        self.put_object(key, body, opts, Record::Metadata).await
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetObject, BlobError> {
        check_key(key)?;
        let mut req = self.client.get_object().bucket(&self.bucket).key(key);
        if let Some(r) = range {
            req = req.range(match r.end {
                Some(end) => format!("bytes={}-{end}", r.start),
                None => format!("bytes={}-", r.start),
            });
        }
        let out = match req.send().await {
            Ok(o) => o,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                return Err(BlobError::NotFound(key.to_string()));
            }
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => {
                return Err(BlobError::RangeNotSatisfiable);
            }
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                return Err(BlobError::NotFound(key.to_string()));
            }
            Err(e) => return Err(backend(e)),
        };
        let len = u64::try_from(out.content_length().unwrap_or(0)).unwrap_or(0);
        // `Content-Range: bytes a-b/total` gives the object's size for a ranged read.
        let (resolved, size) = match (range, out.content_range()) {
            (Some(_), Some(cr)) => {
                let (span, total) = cr
                    .trim_start_matches("bytes ")
                    .split_once('/')
                    .unwrap_or(("", ""));
                let start = span
                    .split('-')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                (Some((start, len)), total.parse().unwrap_or(len))
            }
            _ => (None, len),
        };
        let meta = self.meta_of(
            key,
            size,
            out.e_tag(),
            out.content_type(),
            out.last_modified(),
            out.metadata(),
        );
        let reader = out.body.into_async_read();
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, 1 << 20);
        Ok(GetObject {
            meta,
            range: resolved,
            body: Box::pin(stream),
        })
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, BlobError> {
        Ok(self.head_object(key).await?.map(|o| {
            self.meta_of(
                key,
                u64::try_from(o.content_length().unwrap_or(0)).unwrap_or(0),
                o.e_tag(),
                o.content_type(),
                o.last_modified(),
                o.metadata(),
            )
        }))
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, BlobError> {
        let limit = limit.clamp(1, 1000);
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_start_after(start_after.map(str::to_string))
            .max_keys(limit as i32)
            .send()
            .await
            .map_err(backend)?;
        let objects: Vec<ObjectMeta> = out
            .contents()
            .iter()
            .filter_map(|o| {
                let key = o.key()?;
                Some(self.meta_of(
                    key,
                    u64::try_from(o.size().unwrap_or(0)).unwrap_or(0),
                    o.e_tag(),
                    None,
                    o.last_modified(),
                    None,
                ))
            })
            .collect();
        let next_start_after = match out.is_truncated() {
            Some(true) => objects.last().map(|o| o.key.clone()),
            _ => None,
        };
        Ok(ListPage {
            objects,
            next_start_after,
        })
    }

    async fn copy(&self, from: &str, to: &str) -> Result<ObjectMeta, BlobError> {
        check_key(from)?;
        check_key(to)?;
        let src = self
            .head(from)
            .await?
            .ok_or_else(|| BlobError::NotFound(from.to_string()))?;
        // A copy is an object of its own here, not a sync copy: origin and creator are dropped.
        let user = metadata(src.checksums.as_ref(), &PutOptions::default());
        let copy = multipart::ServerCopy {
            client: &self.client,
            from: (&self.bucket, from),
            to: (&self.bucket, to),
            size: src.size,
            content_type: &src.content_type,
        };
        copy.run(user, None).await?;
        self.head(to)
            .await?
            .ok_or_else(|| BlobError::Backend(format!("{to} missing after its copy")))
    }

    async fn delete(&self, key: &str) -> Result<bool, BlobError> {
        check_key(key)?;
        if self.head(key).await?.is_none() {
            return Ok(false);
        }
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(backend)?;
        Ok(true)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    /// From another bucket of the same service, for copy puts ([`Verify::Copy`]): the server
    /// copies (in DSS-sized parts when the object's `s3_etag` is a multipart one) and the
    /// copy's ETag, computed by the server from the bytes written, must equal the expected
    /// `s3_etag`; a copy that does not match is deleted. Full verification needs the bytes:
    /// those puts stream.
    async fn copy_from(
        &self,
        src: &dyn BlobStore,
        src_key: &str,
        key: &str,
        opts: PutOptions,
        progress: Arc<CopyProgress>,
    ) -> Result<Option<ObjectMeta>, BlobError> {
        let Some(src) = src.as_any().downcast_ref::<S3BlobStore>() else {
            return Ok(None);
        };
        let (Verify::Copy, Some(expected)) = (opts.verify, &opts.expected) else {
            return Ok(None);
        };
        if self.service.is_empty() || src.service != self.service {
            return Ok(None);
        }
        check_key(key)?;
        let meta = src
            .head(src_key)
            .await?
            .ok_or_else(|| BlobError::NotFound(src_key.to_string()))?;
        if let Some(size) = opts.size
            && size != meta.size
        {
            return Err(BlobError::SizeMismatch {
                expected: size,
                got: meta.size,
            });
        }
        if opts.mode == PutMode::Create && self.head(key).await?.is_some() {
            return Err(BlobError::AlreadyExists(key.to_string()));
        }
        let content_type = content_type(&opts);
        let part = expected
            .s3_etag
            .contains('-')
            .then(|| s3_part_size(meta.size));
        let copy = multipart::ServerCopy {
            client: &self.client,
            from: (&src.bucket, src_key),
            to: (&self.bucket, key),
            size: meta.size,
            content_type: &content_type,
        };
        let etag = copy.run(metadata(Some(expected), &opts), part).await?;
        if etag != expected.s3_etag {
            let _ = self
                .client
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await;
            return Err(BlobError::ChecksumMismatch(vec!["s3_etag"]));
        }
        progress.add(meta.size);
        Ok(Some(ObjectMeta {
            key: key.to_string(),
            size: meta.size,
            etag,
            content_type,
            created: OffsetDateTime::now_utc(),
            checksums: Some(expected.clone()),
            origin: opts.origin.clone(),
            correlation_id: dss_core::correlation::current(),
            traceparent: dss_core::correlation::traceparent(),
            creator: opts.creator.clone(),
        }))
    }

    fn direct_url(&self, key: &str) -> Result<String, BlobError> {
        check_key(key)?;
        Ok(format!("s3://{}/{key}", self.bucket))
    }

    async fn download_url(
        &self,
        key: &str,
        ttl: Duration,
        content_disposition: Option<&str>,
    ) -> Result<String, BlobError> {
        check_key(key)?;
        let cfg =
            PresigningConfig::expires_in(ttl).map_err(|e| BlobError::Backend(e.to_string()))?;
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_response_content_disposition(content_disposition.map(str::to_string))
            .presigned(cfg)
            .await
            .map_err(backend)?;
        Ok(req.uri().to_string())
    }
}
