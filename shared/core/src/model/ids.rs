//! Object UUIDs (lower-case 8-4-4-4-12) and fully qualified ids (`uuid.version`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::version::DssVersion;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not of the form 8-4-4-4-12 letters/digits.
    #[error("'{0}' is not a UUID of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")]
    BadUuid(String),
    /// Not of the form `uuid.version`.
    #[error("'{0}' is not a fully qualified id of the form <uuid>.<version>")]
    BadFqid(String),
}

/// A DSS object UUID, always stored lower-case.
///
/// Like the original, letters outside a–f are accepted (its tests use `xxxxxxxx-…` ids); unlike the
/// original, the match is anchored and every input is lower-cased, so `ABC…` and `abc…` are one object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectUuid(String);

impl ObjectUuid {
    /// Parses and lower-cases a UUID string.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let b = s.as_bytes();
        let ok = b.len() == 36
            && b.iter().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => *c == b'-',
                _ => c.is_ascii_alphanumeric(),
            });
        if ok {
            Ok(Self(s.to_ascii_lowercase()))
        } else {
            Err(IdError::BadUuid(s.to_string()))
        }
    }

    /// A new random (version 4) UUID.
    pub fn new_v4() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// The canonical lower-case text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ObjectUuid {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for ObjectUuid {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ObjectUuid> for String {
    fn from(u: ObjectUuid) -> String {
        u.0
    }
}

/// A fully qualified id: one version of one object, written `uuid.version`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fqid {
    /// The object's UUID.
    pub uuid: ObjectUuid,
    /// The object's version.
    pub version: DssVersion,
}

impl Fqid {
    /// Builds an FQID from its parts.
    pub fn new(uuid: ObjectUuid, version: DssVersion) -> Self {
        Self { uuid, version }
    }

    /// Parses `uuid.version`.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let bad = || IdError::BadFqid(s.to_string());
        let (u, v) = s.split_once('.').ok_or_else(bad)?;
        Ok(Self {
            uuid: ObjectUuid::parse(u).map_err(|_| bad())?,
            version: DssVersion::parse(v).map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for Fqid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.uuid, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_lower_cased_and_anchored() {
        let u = ObjectUuid::parse("ABCDEFGH-1234-5678-9ABC-DEF012345678").unwrap();
        assert_eq!(u.as_str(), "abcdefgh-1234-5678-9abc-def012345678");
        for bad in [
            "ABCD",
            "1234",
            "",
            "x0000000-0000-0000-0000-0000000000000",
            "00000000_0000-0000-0000-000000000000",
            "00000000-0000-0000-0000-00000000000/",
            " 0000000-0000-0000-0000-000000000000",
        ] {
            assert!(ObjectUuid::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(ObjectUuid::new_v4().as_str().len(), 36);
    }

    #[test]
    fn fqid_round_trips() {
        let f =
            Fqid::parse("011c7340-9b3c-4d62-bf49-090d79daf198.2017-06-20T214506.766634Z").unwrap();
        assert_eq!(
            f.to_string(),
            "011c7340-9b3c-4d62-bf49-090d79daf198.2017-06-20T214506.766634Z"
        );
        assert!(Fqid::parse("011c7340-9b3c-4d62-bf49-090d79daf198").is_err());
        assert!(Fqid::parse("011c7340-9b3c-4d62-bf49-090d79daf198.2017").is_err());
    }
}
