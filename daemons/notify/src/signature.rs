//! HMAC request signing compatible with the original (draft-cavage HTTP Signatures, as
//! `requests-http-signature` 0.1.0 writes them): a `Date` header, a `Digest: SHA-256=…` header
//! over the body, and `Authorization: Signature keyId="…",algorithm="hmac-sha256",
//! headers="date digest",signature="…"` over the lines `date: …` and `digest: …`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;

/// The signing headers of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `Date`, RFC 1123 in GMT.
    pub date: String,
    /// `Digest`: `SHA-256=` and the base64 SHA-256 of the body.
    pub digest: String,
    /// `Authorization`: the signature.
    pub authorization: String,
}

/// `Tue, 24 Mar 2020 17:02:03 GMT`.
pub fn http_date(t: OffsetDateTime) -> String {
    let fmt = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

/// Signs `body` sent at `now` with `secret` under `key_id`.
pub fn sign(key_id: &str, secret: &[u8], body: &[u8], now: OffsetDateTime) -> SignedHeaders {
    let date = http_date(now);
    let digest = format!("SHA-256={}", STANDARD.encode(Sha256::digest(body)));
    let to_sign = format!("date: {date}\ndigest: {digest}");
    // HMAC takes keys of any length (long ones are hashed), so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(to_sign.as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    let authorization = format!(
        "Signature keyId=\"{key_id}\",algorithm=\"hmac-sha256\",headers=\"date digest\",signature=\"{signature}\""
    );
    SignedHeaders {
        date,
        digest,
        authorization,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn dates_are_rfc1123_gmt() {
        assert_eq!(
            http_date(datetime!(2020-03-24 17:02:03 UTC)),
            "Tue, 24 Mar 2020 17:02:03 GMT"
        );
        assert_eq!(
            http_date(datetime!(2021-01-05 01:02:03 +02:00)),
            "Mon, 04 Jan 2021 23:02:03 GMT"
        );
    }

    #[test]
    fn signature_matches_a_known_vector() {
        // Computed with Python: hmac.new(b"secret", b"date: …\ndigest: …", sha256).
        let s = sign(
            "hca-dss:abc",
            b"secret",
            b"{\"a\": 1}",
            datetime!(2020-03-24 17:02:03 UTC),
        );
        assert_eq!(s.date, "Tue, 24 Mar 2020 17:02:03 GMT");
        assert_eq!(
            s.digest,
            "SHA-256=+dhgKMbg1k4iUYb5astpM4ssWXZN95FiEH9cS7NNExA="
        );
        assert!(s.authorization.starts_with(
            "Signature keyId=\"hca-dss:abc\",algorithm=\"hmac-sha256\",headers=\"date digest\",signature=\""
        ));
        assert_eq!(
            s.authorization.rsplit("signature=\"").next(),
            Some("6RWLPN4K65n41tNi9ajJrB0tSo/L7eVjGo2gOQAvFkA=\"")
        );
    }
}
