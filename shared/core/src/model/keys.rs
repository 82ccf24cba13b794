//! The bucket key layout shared by every replica.
//!
//! ```text
//! blobs/{sha256}.{sha1}.{s3_etag}.{crc32c}
//! files/{uuid}.{version}
//! bundles/{uuid}.{version}        bundles/{uuid}.{version}.dead        bundles/{uuid}.dead
//! collections/{uuid}.{version}    collections/{uuid}.dead
//! ```

use std::fmt;

use crate::checksum::Checksums;

use super::ids::ObjectUuid;
use super::version::DssVersion;

/// The kind of a versioned DSS object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `files/…`
    File,
    /// `bundles/…`
    Bundle,
    /// `collections/…`
    Collection,
}

impl Kind {
    /// The key prefix directory of this kind.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::File => "files/",
            Kind::Bundle => "bundles/",
            Kind::Collection => "collections/",
        }
    }
}

/// A parsed main-bucket key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ObjectKey {
    /// Content-addressed bytes.
    Blob(Checksums),
    /// A versioned document (file metadata, bundle manifest, collection).
    Versioned(Kind, ObjectUuid, DssVersion),
    /// A tombstone of one version.
    VersionTombstone(Kind, ObjectUuid, DssVersion),
    /// A tombstone of every version of an object.
    Tombstone(Kind, ObjectUuid),
}

impl ObjectKey {
    /// Key of a file metadata document.
    pub fn file(uuid: &ObjectUuid, version: &DssVersion) -> String {
        format!("files/{uuid}.{version}")
    }

    /// Key of a bundle manifest.
    pub fn bundle(uuid: &ObjectUuid, version: &DssVersion) -> String {
        format!("bundles/{uuid}.{version}")
    }

    /// Key of a bundle tombstone, of one version or of the whole bundle.
    pub fn bundle_tombstone(uuid: &ObjectUuid, version: Option<&DssVersion>) -> String {
        match version {
            Some(v) => format!("bundles/{uuid}.{v}.dead"),
            None => format!("bundles/{uuid}.dead"),
        }
    }

    /// Key of a collection document.
    pub fn collection(uuid: &ObjectUuid, version: &DssVersion) -> String {
        format!("collections/{uuid}.{version}")
    }

    /// Key of a blob.
    pub fn blob(c: &Checksums) -> String {
        format!("blobs/{}.{}.{}.{}", c.sha256, c.sha1, c.s3_etag, c.crc32c)
    }

    /// The listing prefix holding every version of an object: `kind/uuid.`.
    pub fn versions_prefix(kind: Kind, uuid: &ObjectUuid) -> String {
        format!("{}{uuid}.", kind.prefix())
    }

    /// Parses a main-bucket key; `None` for keys outside the layout.
    pub fn parse(key: &str) -> Option<Self> {
        if let Some(rest) = key.strip_prefix("blobs/") {
            let mut it = rest.split('.');
            let (sha256, sha1, s3_etag, crc32c) = (it.next()?, it.next()?, it.next()?, it.next()?);
            if it.next().is_some() {
                return None;
            }
            return Checksums::new(sha256, sha1, s3_etag, crc32c)
                .ok()
                .map(ObjectKey::Blob);
        }
        let (kind, rest) = [Kind::File, Kind::Bundle, Kind::Collection]
            .into_iter()
            .find_map(|k| key.strip_prefix(k.prefix()).map(|r| (k, r)))?;
        if rest.len() < 37 || rest.as_bytes()[36] != b'.' {
            return None;
        }
        let uuid = ObjectUuid::parse(&rest[..36])
            .ok()
            .filter(|u| u.as_str() == &rest[..36])?;
        let tail = &rest[37..];
        if tail == "dead" {
            return (kind != Kind::File).then_some(ObjectKey::Tombstone(kind, uuid));
        }
        if let Some(v) = tail.strip_suffix(".dead") {
            let v = DssVersion::parse(v).ok()?;
            return (kind == Kind::Bundle).then_some(ObjectKey::VersionTombstone(kind, uuid, v));
        }
        DssVersion::parse(tail)
            .ok()
            .map(|v| ObjectKey::Versioned(kind, uuid, v))
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectKey::Blob(c) => f.write_str(&Self::blob(c)),
            ObjectKey::Versioned(k, u, v) => write!(f, "{}{u}.{v}", k.prefix()),
            ObjectKey::VersionTombstone(k, u, v) => write!(f, "{}{u}.{v}.dead", k.prefix()),
            ObjectKey::Tombstone(k, u) => write!(f, "{}{u}.dead", k.prefix()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "ce55fd51-7833-469b-be0b-5da88ebebfcd";
    const V: &str = "2017-06-16T193604.240704Z";

    #[test]
    fn every_key_kind_round_trips() {
        let blob = "blobs/cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30.2b8b815229aa8a61e483fb4ba0588b8b6c491890.3b83ef96387f14655fc854ddc3c6bd57.e16e07b9";
        for k in [
            blob.to_string(),
            format!("files/{U}.{V}"),
            format!("bundles/{U}.{V}"),
            format!("bundles/{U}.{V}.dead"),
            format!("bundles/{U}.dead"),
            format!("collections/{U}.{V}"),
            format!("collections/{U}.dead"),
        ] {
            let parsed = ObjectKey::parse(&k).unwrap_or_else(|| panic!("{k}"));
            assert_eq!(parsed.to_string(), k);
        }
    }

    #[test]
    fn keys_outside_the_layout_are_refused() {
        for k in [
            format!("files/{U}.dead"),
            format!("files/{U}.{V}.dead"),
            format!("bundles/{}.{V}", U.to_uppercase()),
            format!("bundles/{U}.2017.dead"),
            format!("bundles/{U}"),
            format!("other/{U}.{V}"),
            "blobs/abc".to_string(),
            format!("bundles/{U}.{V}/name"),
        ] {
            assert_eq!(ObjectKey::parse(&k), None, "{k}");
        }
    }

    #[test]
    fn tombstones_sort_after_versions() {
        assert!(format!("bundles/{U}.dead") > format!("bundles/{U}.{V}.dead"));
        assert!(format!("bundles/{U}.{V}.dead") > format!("bundles/{U}.{V}"));
    }
}
