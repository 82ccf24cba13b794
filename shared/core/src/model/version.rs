//! DSS version strings: `YYYY-MM-DDTHHMMSS.ffffffZ` (UTC, exactly six fractional digits).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Why a version string was refused; the messages are the original API's titles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// Not a timestamp at all.
    #[error("version should be an RFC3339 compliant timestamp")]
    NotTimestamp,
    /// A timestamp, but not in the canonical DSS form.
    #[error("version should be a DSS_VERSION with the format 'YYYY-MM-DDTHHmmSS.zzzzzzZ'")]
    NotCanonical,
}

/// A validated DSS version; lexicographic order equals chronological order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DssVersion(String);

impl DssVersion {
    /// Parses a version, accepting only the canonical form with a valid calendar date and time.
    pub fn parse(s: &str) -> Result<Self, VersionError> {
        match parse_canonical(s) {
            Some(_) => Ok(Self(s.to_string())),
            None if looks_like_timestamp(s) => Err(VersionError::NotCanonical),
            None => Err(VersionError::NotTimestamp),
        }
    }

    /// Formats a point in time (converted to UTC) as a version.
    pub fn from_datetime(t: OffsetDateTime) -> Self {
        let t = t.to_offset(UtcOffset::UTC);
        Self(format!(
            "{:04}-{:02}-{:02}T{:02}{:02}{:02}.{:06}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.microsecond()
        ))
    }

    /// The point in time this version names.
    pub fn to_datetime(&self) -> OffsetDateTime {
        // Only validated strings are ever constructed.
        parse_canonical(&self.0).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn digits(s: &str) -> Option<u32> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

fn parse_canonical(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    // ASCII only: the fields below are sliced by byte position.
    if !s.is_ascii()
        || b.len() != 25
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[17] != b'.'
        || b[24] != b'Z'
    {
        return None;
    }
    let year = digits(&s[0..4])? as i32;
    let month = Month::try_from(digits(&s[5..7])? as u8).ok()?;
    let day = digits(&s[8..10])? as u8;
    let hour = digits(&s[11..13])? as u8;
    let minute = digits(&s[13..15])? as u8;
    let second = digits(&s[15..17])? as u8;
    let micro = digits(&s[18..24])?;
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms_micro(hour, minute, second, micro).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

/// A loose ISO 8601 check deciding which of the two error titles applies.
fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
}

impl fmt::Display for DssVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DssVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for DssVersion {
    type Error = VersionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<DssVersion> for String {
    fn from(v: DssVersion) -> String {
        v.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn canonical_versions_parse_and_round_trip() {
        let v = DssVersion::parse("2017-06-16T193604.240704Z").unwrap();
        assert_eq!(v.to_datetime(), datetime!(2017-06-16 19:36:04.240704 UTC));
        assert_eq!(DssVersion::from_datetime(v.to_datetime()), v);
        assert!(DssVersion::parse("2020-02-29T235959.999999Z").is_ok());
    }

    #[test]
    fn malformed_versions_get_the_original_titles() {
        for s in ["", "ABCD", "2017", "hello-world"] {
            assert_eq!(DssVersion::parse(s), Err(VersionError::NotTimestamp), "{s}");
        }
        for s in [
            "2017-06-16T19:36:04.240704Z",
            "2017-06-16T193604.24070Z",
            "2017-06-16T193604.2407040Z",
            "2017-06-16T193604.240704z",
            "2017-06-16T193604.240704+00:00",
            "2017-13-16T193604.240704Z",
            "2019-02-29T193604.240704Z",
            "2017-06-16T243604.240704Z",
            "2017-06-16 193604.240704Z",
            // 25 bytes with a two-byte character where two digits were (found by fuzzing: it
            // was sliced inside the character).
            "2017-04-16T120Ͽ4.240704Z",
        ] {
            assert_eq!(DssVersion::parse(s), Err(VersionError::NotCanonical), "{s}");
        }
    }

    #[test]
    fn order_is_chronological() {
        let a = DssVersion::parse("2017-06-16T193604.240704Z").unwrap();
        let b = DssVersion::parse("2017-06-16T193604.240705Z").unwrap();
        assert!(a < b);
    }

    #[test]
    fn formats_other_offsets_in_utc() {
        let t = datetime!(2020-01-01 01:00:00.5 +01:00);
        assert_eq!(
            DssVersion::from_datetime(t).as_str(),
            "2020-01-01T000000.500000Z"
        );
    }
}
