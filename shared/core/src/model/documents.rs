//! The JSON documents stored in a main bucket, with the original's field names and key order.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::checksum::Checksums;

use super::ids::ObjectUuid;
use super::pyjson;
use super::version::DssVersion;

/// Format marker written into new file metadata documents.
pub const FILE_FORMAT: &str = "0.0.4";
/// Format marker written into new bundle manifests.
pub const BUNDLE_FORMAT: &str = "0.0.1";

/// `files/{uuid}.{version}`: what a file version is. Readers rely on these nine keys only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMetadata {
    /// Format marker; not interpreted on read.
    pub format: String,
    /// Opaque creator id supplied by the uploader.
    pub creator_uid: i64,
    /// The file version.
    pub version: DssVersion,
    /// Media type of the content.
    #[serde(rename = "content-type")]
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// CRC-32C, 8 hex digits.
    pub crc32c: String,
    /// S3-style ETag.
    #[serde(rename = "s3-etag")]
    pub s3_etag: String,
    /// SHA-1, 40 hex digits.
    pub sha1: String,
    /// SHA-256, 64 hex digits.
    pub sha256: String,
}

impl FileMetadata {
    /// A new document in the current format.
    pub fn new(
        creator_uid: i64,
        version: DssVersion,
        content_type: String,
        size: u64,
        c: &Checksums,
    ) -> Self {
        Self {
            format: FILE_FORMAT.to_string(),
            creator_uid,
            version,
            content_type,
            size,
            crc32c: c.crc32c.clone(),
            s3_etag: c.s3_etag.clone(),
            sha1: c.sha1.clone(),
            sha256: c.sha256.clone(),
        }
    }

    /// The four checksums, which also name the blob.
    pub fn checksums(&self) -> Checksums {
        Checksums {
            sha256: self.sha256.clone(),
            sha1: self.sha1.clone(),
            s3_etag: self.s3_etag.clone(),
            crc32c: self.crc32c.clone(),
        }
    }

    /// The stored bytes (Python `json.dumps` form).
    pub fn to_json_text(&self) -> String {
        pyjson::to_string(&serde_json::to_value(self).unwrap_or(Value::Null))
    }

    /// True when two documents describe the same file version (the format marker is not compared).
    pub fn same_meaning(&self, other: &FileMetadata) -> bool {
        FileMetadata {
            format: String::new(),
            ..self.clone()
        } == FileMetadata {
            format: String::new(),
            ..other.clone()
        }
    }
}

/// One entry of a bundle manifest's `files` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFileEntry {
    /// Name of the file within the bundle.
    pub name: String,
    /// File UUID.
    pub uuid: ObjectUuid,
    /// File version.
    pub version: DssVersion,
    /// Media type.
    #[serde(rename = "content-type")]
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Whether the indexer should parse this file as metadata.
    pub indexed: bool,
    /// CRC-32C.
    pub crc32c: String,
    /// S3-style ETag.
    #[serde(rename = "s3-etag")]
    pub s3_etag: String,
    /// SHA-1.
    pub sha1: String,
    /// SHA-256.
    pub sha256: String,
}

/// Checks a file name: relative, no `.`/`..` segments, no hidden segments, no backslashes,
/// no control characters, not empty.
pub fn valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains("./")
        && !name.contains('\\')
        && !name.contains("/.")
        && !name.starts_with('/')
        && !name.starts_with("~/")
        && name != ".."
        && name != "."
        && !name.chars().any(char::is_control)
}

impl BundleFileEntry {
    /// A manifest entry from the request's fields and the file's metadata document.
    pub fn from_metadata(
        name: String,
        uuid: ObjectUuid,
        indexed: bool,
        meta: &FileMetadata,
    ) -> Self {
        Self {
            name,
            uuid,
            version: meta.version.clone(),
            content_type: meta.content_type.clone(),
            size: meta.size,
            indexed,
            crc32c: meta.crc32c.clone(),
            s3_etag: meta.s3_etag.clone(),
            sha1: meta.sha1.clone(),
            sha256: meta.sha256.clone(),
        }
    }

    /// The four checksums, which also name the blob.
    pub fn checksums(&self) -> Checksums {
        Checksums {
            sha256: self.sha256.clone(),
            sha1: self.sha1.clone(),
            s3_etag: self.s3_etag.clone(),
            crc32c: self.crc32c.clone(),
        }
    }

    /// The entry as the API shows it: `s3_etag` instead of the stored `s3-etag`.
    pub fn to_api_json(&self) -> Value {
        let mut m = Map::with_capacity(10);
        m.insert("name".into(), self.name.clone().into());
        m.insert("content-type".into(), self.content_type.clone().into());
        m.insert("size".into(), self.size.into());
        m.insert("uuid".into(), self.uuid.as_str().into());
        m.insert("version".into(), self.version.as_str().into());
        m.insert("crc32c".into(), self.crc32c.clone().into());
        m.insert("s3_etag".into(), self.s3_etag.clone().into());
        m.insert("sha1".into(), self.sha1.clone().into());
        m.insert("sha256".into(), self.sha256.clone().into());
        m.insert("indexed".into(), self.indexed.into());
        Value::Object(m)
    }
}

/// `bundles/{uuid}.{version}`: the manifest of one bundle version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleManifest {
    /// Format marker; not interpreted on read.
    pub format: String,
    /// The bundle version.
    pub version: DssVersion,
    /// Files in request order.
    pub files: Vec<BundleFileEntry>,
    /// Opaque creator id.
    pub creator_uid: i64,
}

impl BundleManifest {
    /// The stored bytes (Python `json.dumps` form).
    pub fn to_json_text(&self) -> String {
        pyjson::to_string(&serde_json::to_value(self).unwrap_or(Value::Null))
    }

    /// True when two manifests have the same content (the format marker is not compared).
    pub fn same_meaning(&self, other: &BundleManifest) -> bool {
        self.version == other.version
            && self.files == other.files
            && self.creator_uid == other.creator_uid
    }
}

/// The body of a bundle tombstone written by DELETE; older tombstones may have other shapes.
pub fn bundle_tombstone(email: &str, reason: &str) -> Value {
    let mut m = Map::new();
    m.insert("email".into(), email.into());
    m.insert("reason".into(), reason.into());
    m.insert("details".into(), Value::Object(Map::new()));
    m.insert("admin_deleted".into(), true.into());
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums() -> Checksums {
        Checksums::new(
            "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30",
            "2b8b815229aa8a61e483fb4ba0588b8b6c491890",
            "3b83ef96387f14655fc854ddc3c6bd57",
            "e16e07b9",
        )
        .unwrap()
    }

    #[test]
    fn file_metadata_has_the_original_bytes() {
        let m = FileMetadata::new(
            12345,
            DssVersion::parse("2017-06-16T193604.240704Z").unwrap(),
            "text/plain".into(),
            11358,
            &sums(),
        );
        assert_eq!(
            m.to_json_text(),
            r#"{"format": "0.0.4", "creator_uid": 12345, "version": "2017-06-16T193604.240704Z", "content-type": "text/plain", "size": 11358, "crc32c": "e16e07b9", "s3-etag": "3b83ef96387f14655fc854ddc3c6bd57", "sha1": "2b8b815229aa8a61e483fb4ba0588b8b6c491890", "sha256": "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"}"#
        );
        let back: FileMetadata = serde_json::from_str(&m.to_json_text()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn manifest_reads_older_formats_and_extra_keys() {
        let text = r#"{"format": "0.0.2", "version": "2017-06-20T214506.766634Z", "files": [{"name": "LICENSE", "uuid": "ce55fd51-7833-469b-be0b-5da88ebebfcd", "version": "2017-06-16T193604.240704Z", "content-type": "text/plain", "size": 11358, "indexed": false, "crc32c": "e16e07b9", "s3-etag": "3b83ef96387f14655fc854ddc3c6bd57", "sha1": "2b8b815229aa8a61e483fb4ba0588b8b6c491890", "sha256": "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30", "extra": 1}], "creator_uid": 12345}"#;
        let m: BundleManifest = serde_json::from_str(text).unwrap();
        assert_eq!(m.files[0].name, "LICENSE");
        assert_eq!(
            m.files[0].to_api_json()["s3_etag"],
            "3b83ef96387f14655fc854ddc3c6bd57"
        );
        assert!(m.to_json_text().starts_with(r#"{"format": "0.0.2", "version": "2017-06-20T214506.766634Z", "files": [{"name": "LICENSE", "uuid""#));
    }
}

#[cfg(test)]
mod file_name_tests {
    use super::valid_file_name;

    #[test]
    fn file_names_follow_the_original_rules() {
        for ok in [
            "path",
            "good..path",
            "path.json2/",
            "a/2b/c/22d2",
            ".2bashrc",
            "~x",
        ] {
            assert!(valid_file_name(ok), "{ok}");
        }
        for bad in [
            ".",
            "..",
            "~/x",
            "./",
            "../path",
            "path/../path",
            "2path/..",
            "/path",
            "C:\\",
            "path\\path.json",
            "a/.hidden",
            "a./b",
            "",
            "a\nb",
            "tab\t",
        ] {
            assert!(!valid_file_name(bad), "{bad:?}");
        }
    }
}
