//! A manifest entry of a bundle being downloaded: what one file must be, read from the server's
//! answer (only well-formed ids go into the URLs requested next).

use dss_core::model::{DssVersion, ObjectUuid};
use serde_json::Value;

use crate::error::ClientError;

/// A manifest entry: what a file must be.
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) uuid: String,
    pub(crate) version: String,
    pub(crate) size: u64,
    pub(crate) sha256: String,
    pub(crate) crc32c: String,
}

impl Entry {
    pub(crate) fn from_json(v: &Value) -> Result<Self, ClientError> {
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
                .ok_or_else(|| ClientError::Invalid(format!("a manifest entry has no '{k}': {v}")))
        };
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| ClientError::Invalid(format!("a manifest entry has no 'name': {v}")))?
            .to_string();
        let size = v
            .get("size")
            .and_then(Value::as_u64)
            .ok_or_else(|| ClientError::Invalid(format!("{name}: the manifest gives no size")))?;
        // The server's answer names what is requested next: only well-formed ids go into URLs.
        let uuid = s("uuid")?;
        ObjectUuid::parse(&uuid)
            .map_err(|e| ClientError::Invalid(format!("{name}: file uuid '{uuid}': {e}")))?;
        let version = v
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if !version.is_empty() {
            DssVersion::parse(&version).map_err(|e| {
                ClientError::Invalid(format!("{name}: file version '{version}': {e}"))
            })?;
        }
        Ok(Self {
            uuid,
            version,
            size,
            sha256: s("sha256")?,
            crc32c: s("crc32c")?,
            name,
        })
    }
}
