//! The JSON API's object resource, and the checksums and origin DSS keeps in its metadata.

use std::collections::HashMap;

use base64::Engine;
use dss_core::checksum::Checksums;
use dss_core::ports::{BlobError, ObjectMeta};
use serde::Deserialize;
use time::OffsetDateTime;

/// Custom metadata names.
pub const META_SHA256: &str = "dss-sha256";
pub const META_SHA1: &str = "dss-sha1";
pub const META_S3_ETAG: &str = "dss-s3-etag";
pub const META_CRC32C: &str = "dss-crc32c";
pub const META_ORIGIN: &str = "dss-origin";
/// Who wrote the object.
pub const META_CREATOR: &str = "dss-creator";
/// The correlation id of the request whose work wrote the object.
pub const META_CORRELATION: &str = "dss-correlation-id";
/// The `traceparent` of the span whose work wrote the object.
pub const META_TRACEPARENT: &str = "dss-traceparent";

/// An object resource (the fields DSS reads).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Object {
    /// The key.
    pub name: String,
    /// Size in bytes, as a decimal string.
    pub size: String,
    /// Media type.
    #[serde(default)]
    pub content_type: Option<String>,
    /// Base64 MD5 (absent for composite objects).
    #[serde(default)]
    pub md5_hash: Option<String>,
    /// Base64 big-endian CRC-32C.
    #[serde(default)]
    pub crc32c: Option<String>,
    /// Generation (a decimal string).
    #[serde(default)]
    pub generation: Option<String>,
    /// When it was created (RFC 3339).
    #[serde(default)]
    pub time_created: Option<String>,
    /// Custom metadata.
    #[serde(default)]
    pub metadata: HashMap<String, String>,
}

/// A page of `objects.list`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Objects {
    /// Objects in name order.
    #[serde(default)]
    pub items: Vec<Object>,
    /// The next page, if any.
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// A `rewrite` answer: done with the object, or a token to continue.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rewrite {
    /// Whether the copy is complete.
    pub done: bool,
    /// Continue with this token.
    #[serde(default)]
    pub rewrite_token: Option<String>,
    /// The new object, when done.
    #[serde(default)]
    pub resource: Option<Object>,
}

/// The custom metadata recording `sums`, `origin`, `creator` and the calling task's
/// correlation id and `traceparent`.
pub fn metadata(
    sums: Option<&Checksums>,
    origin: Option<&str>,
    creator: Option<&str>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    if let Some(s) = sums {
        m.insert(META_SHA256.into(), s.sha256.clone().into());
        m.insert(META_SHA1.into(), s.sha1.clone().into());
        m.insert(META_S3_ETAG.into(), s.s3_etag.clone().into());
        m.insert(META_CRC32C.into(), s.crc32c.clone().into());
    }
    if let Some(o) = origin {
        m.insert(META_ORIGIN.into(), o.to_string().into());
    }
    if let Some(c) = creator {
        m.insert(META_CREATOR.into(), c.to_string().into());
    }
    if let Some(id) = dss_core::correlation::current() {
        m.insert(META_CORRELATION.into(), id.into());
    }
    if let Some(tp) = dss_core::correlation::traceparent() {
        m.insert(META_TRACEPARENT.into(), tp.into());
    }
    m
}

/// Hex of a base64 hash as the JSON API gives it.
pub fn hex_of(b64: &str) -> Option<String> {
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .ok()
        .map(hex::encode)
}

impl Object {
    /// The correlation id recorded with it, when valid.
    pub fn correlation_id(&self) -> Option<String> {
        self.metadata
            .get(META_CORRELATION)
            .filter(|id| dss_core::correlation::valid(id))
            .cloned()
    }

    /// The `traceparent` recorded with it, when valid.
    pub fn traceparent(&self) -> Option<String> {
        self.metadata
            .get(META_TRACEPARENT)
            .filter(|tp| dss_core::correlation::valid_traceparent(tp))
            .cloned()
    }

    /// The size.
    pub fn size(&self) -> Result<u64, BlobError> {
        self.size.parse().map_err(|_| {
            BlobError::Backend(format!("object {} has size {:?}", self.name, self.size))
        })
    }

    /// The four checksums recorded in its metadata, if all are there and well formed.
    pub fn checksums(&self) -> Option<Checksums> {
        let m = &self.metadata;
        Checksums::new(
            m.get(META_SHA256)?,
            m.get(META_SHA1)?,
            m.get(META_S3_ETAG)?,
            m.get(META_CRC32C)?,
        )
        .ok()
    }

    /// What DSS knows of it. The ETag is the S3-style one: the recorded `s3_etag`, else the
    /// MD5 (what S3 reports for a single-part object).
    pub fn meta(&self) -> Result<ObjectMeta, BlobError> {
        let checksums = self.checksums();
        let etag = match &checksums {
            Some(c) => c.s3_etag.clone(),
            None => self
                .md5_hash
                .as_deref()
                .and_then(hex_of)
                .unwrap_or_default(),
        };
        let created = self
            .time_created
            .as_deref()
            .and_then(|t| {
                OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Ok(ObjectMeta {
            key: self.name.clone(),
            size: self.size()?,
            etag,
            content_type: self.content_type.clone().unwrap_or_default(),
            created,
            checksums,
            origin: self.metadata.get(META_ORIGIN).cloned(),
            correlation_id: self.correlation_id(),
            traceparent: self.traceparent(),
            creator: self.metadata.get(META_CREATOR).cloned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dss_core::checksum::checksums_of;

    #[test]
    fn objects_read_back_the_checksums_they_were_written_with() {
        let sums = checksums_of(b"hello");
        let meta = metadata(Some(&sums), Some("aws"), Some("a@example.org"));
        let o: Object = serde_json::from_value(serde_json::json!({
            "name": "blobs/x", "size": "5", "contentType": "text/plain",
            "md5Hash": "XUFAKrxLKna5cZ2REBfFkg==", "crc32c": "mnG7TA==",
            "timeCreated": "2026-12-02T06:04:29.341422Z", "metadata": meta,
        }))
        .unwrap();
        let m = o.meta().unwrap();
        assert_eq!(m.checksums, Some(sums.clone()));
        assert_eq!(m.etag, sums.s3_etag);
        assert_eq!(m.origin.as_deref(), Some("aws"));
        assert_eq!(m.creator.as_deref(), Some("a@example.org"));
        assert_eq!(m.size, 5);
        assert_eq!(
            hex_of("XUFAKrxLKna5cZ2REBfFkg==").unwrap(),
            "5d41402abc4b2a76b9719d911017c592"
        );
        assert_eq!(hex_of("mnG7TA==").unwrap(), sums.crc32c);
    }
}
