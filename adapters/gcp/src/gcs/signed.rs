//! V4 signed URLs (`GOOG4-RSA-SHA256`): a GET of one object that needs no further credentials.

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;

/// What stays unescaped in a URL component: the unreserved characters.
pub const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A key as the path of a URL: every component escaped, `/` kept.
pub fn path_of(key: &str) -> String {
    key.split('/')
        .map(|c| utf8_percent_encode(c, COMPONENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// The parts of a URL to sign: everything but the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsigned {
    /// The URL without the signature.
    pub url: String,
    /// The string whose RSA-SHA256 signature (hex) completes it as `X-Goog-Signature`.
    pub string_to_sign: String,
}

/// Prepares a V4 signed GET of `key` in `bucket` at `host` (`https://host`), valid for `ttl`
/// from `now`, signed by the service account `email`.
pub fn prepare(
    host: &str,
    bucket: &str,
    key: &str,
    email: &str,
    now: OffsetDateTime,
    ttl: Duration,
    content_disposition: Option<&str>,
) -> Unsigned {
    let now = now.to_offset(time::UtcOffset::UTC);
    let stamp = now
        .format(format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default();
    let date = &stamp[..8];
    let scope = format!("{date}/auto/storage/goog4_request");
    let enc = |s: &str| utf8_percent_encode(s, COMPONENT).to_string();
    let mut query = vec![
        (
            "X-Goog-Algorithm".to_string(),
            "GOOG4-RSA-SHA256".to_string(),
        ),
        ("X-Goog-Credential".to_string(), format!("{email}/{scope}")),
        ("X-Goog-Date".to_string(), stamp.clone()),
        (
            "X-Goog-Expires".to_string(),
            ttl.as_secs().clamp(1, 604_800).to_string(),
        ),
        ("X-Goog-SignedHeaders".to_string(), "host".to_string()),
    ];
    if let Some(d) = content_disposition {
        query.push(("response-content-disposition".to_string(), d.to_string()));
    }
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let path = format!("/{bucket}/{}", path_of(key));
    let canonical = format!("GET\n{path}\n{query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD");
    let hash = hex::encode(Sha256::digest(canonical.as_bytes()));
    Unsigned {
        url: format!("https://{host}{path}?{query}"),
        string_to_sign: format!("GOOG4-RSA-SHA256\n{stamp}\n{scope}\n{hash}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_urls_follow_the_v4_canonical_form() {
        let now = OffsetDateTime::from_unix_timestamp(1_764_655_200).unwrap(); // 2025-12-02T06:00:00Z
        let u = prepare(
            "storage.googleapis.com",
            "dss-gcp",
            "blobs/a b+c",
            "dss@p.iam.gserviceaccount.com",
            now,
            Duration::from_secs(3600),
            None,
        );
        assert_eq!(
            u.url,
            "https://storage.googleapis.com/dss-gcp/blobs/a%20b%2Bc?X-Goog-Algorithm=GOOG4-RSA-SHA256\
             &X-Goog-Credential=dss%40p.iam.gserviceaccount.com%2F20251202%2Fauto%2Fstorage%2Fgoog4_request\
             &X-Goog-Date=20251202T060000Z&X-Goog-Expires=3600&X-Goog-SignedHeaders=host"
        );
        let lines: Vec<&str> = u.string_to_sign.lines().collect();
        assert_eq!(
            lines[..3],
            [
                "GOOG4-RSA-SHA256",
                "20251202T060000Z",
                "20251202/auto/storage/goog4_request"
            ]
        );
        assert_eq!(lines[3].len(), 64);
        let d = prepare(
            "h",
            "b",
            "k",
            "e",
            now,
            Duration::from_secs(10),
            Some("attachment; filename=\"x\""),
        );
        assert!(
            d.url
                .ends_with("&response-content-disposition=attachment%3B%20filename%3D%22x%22"),
            "{}",
            d.url
        );
    }
}
