//! Signed, expiring download URLs for objects in local-disk buckets, served by the API.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Path (under the API's base URL) that serves signed blob downloads.
pub const BLOB_ROUTE: &str = "/internal/blob";

/// Why a signed request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A parameter is missing or malformed.
    #[error("malformed signed URL: {0}")]
    Malformed(&'static str),
    /// The signature does not match.
    #[error("signature does not match")]
    BadSignature,
    /// The URL has expired.
    #[error("signed URL expired")]
    Expired,
}

/// A verified download request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBlob {
    /// The bucket.
    pub bucket: String,
    /// The object key.
    pub key: String,
    /// `Content-Disposition` to answer with, if requested when signing.
    pub content_disposition: Option<String>,
}

/// Signs and verifies download URLs with an HMAC-SHA256 key.
#[derive(Clone)]
pub struct UrlSigner {
    base_url: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSigner")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl UrlSigner {
    /// A signer producing URLs under `base_url` (no trailing slash needed).
    pub fn new(base_url: &str, key: Vec<u8>) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            key,
        }
    }

    fn mac(&self, bucket: &str, key: &str, expires: i64, disposition: &str) -> Hmac<Sha256> {
        // HMAC takes keys of any length (long ones are hashed), so this cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        for part in [
            bucket,
            "\n",
            key,
            "\n",
            &expires.to_string(),
            "\n",
            disposition,
        ] {
            mac.update(part.as_bytes());
        }
        mac
    }

    /// A URL for `bucket`/`key` valid until `expires` (Unix seconds).
    pub fn sign(
        &self,
        bucket: &str,
        key: &str,
        expires: i64,
        content_disposition: Option<&str>,
    ) -> String {
        let disposition = content_disposition.unwrap_or("");
        let sig = hex::encode(
            self.mac(bucket, key, expires, disposition)
                .finalize()
                .into_bytes(),
        );
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("bucket", bucket)
            .append_pair("key", key)
            .append_pair("expires", &expires.to_string());
        if let Some(d) = content_disposition {
            q.append_pair("disposition", d);
        }
        q.append_pair("signature", &sig);
        format!("{}{}?{}", self.base_url, BLOB_ROUTE, q.finish())
    }

    /// Verifies the query string of a signed URL at time `now` (Unix seconds).
    pub fn verify(&self, query: &str, now: i64) -> Result<SignedBlob, SignatureError> {
        let (mut bucket, mut key, mut expires, mut disposition, mut sig) =
            (None, None, None, None, None);
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "bucket" => bucket = Some(v.into_owned()),
                "key" => key = Some(v.into_owned()),
                "expires" => expires = Some(v.into_owned()),
                "disposition" => disposition = Some(v.into_owned()),
                "signature" => sig = Some(v.into_owned()),
                _ => {}
            }
        }
        let bucket = bucket.ok_or(SignatureError::Malformed("bucket"))?;
        let key = key.ok_or(SignatureError::Malformed("key"))?;
        let expires: i64 = expires
            .and_then(|e| e.parse().ok())
            .ok_or(SignatureError::Malformed("expires"))?;
        let sig = sig
            .and_then(|s| hex::decode(s).ok())
            .ok_or(SignatureError::Malformed("signature"))?;
        self.mac(&bucket, &key, expires, disposition.as_deref().unwrap_or(""))
            .verify_slice(&sig)
            .map_err(|_| SignatureError::BadSignature)?;
        if now > expires {
            return Err(SignatureError::Expired);
        }
        Ok(SignedBlob {
            bucket,
            key,
            content_disposition: disposition,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_urls_verify_and_expire() {
        let s = UrlSigner::new("http://127.0.0.1:1/", b"secret".to_vec());
        let url = s.sign("aws", "blobs/a b", 100, Some("attachment; filename=x"));
        let query = url.split_once('?').unwrap().1;
        assert!(url.starts_with("http://127.0.0.1:1/internal/blob?"));
        let ok = s.verify(query, 100).unwrap();
        assert_eq!((ok.bucket.as_str(), ok.key.as_str()), ("aws", "blobs/a b"));
        assert_eq!(
            ok.content_disposition.as_deref(),
            Some("attachment; filename=x")
        );
        assert_eq!(s.verify(query, 101), Err(SignatureError::Expired));
        let tampered = query.replace("blobs%2Fa", "blobs%2Fb");
        assert_eq!(s.verify(&tampered, 0), Err(SignatureError::BadSignature));
        let other = UrlSigner::new("http://x", b"other".to_vec());
        assert_eq!(other.verify(query, 0), Err(SignatureError::BadSignature));
        assert_eq!(
            s.verify("bucket=a", 0),
            Err(SignatureError::Malformed("key"))
        );
    }
}
