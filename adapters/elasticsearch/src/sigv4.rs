//! AWS Signature Version 4 for Amazon OpenSearch Service (`es`) and OpenSearch Serverless
//! (`aoss`), with the credentials of the chain the S3 adapter uses, kept until shortly before
//! they expire.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;

use crate::transport::Body;

/// Credentials fetched again this long before they expire.
const REFRESH_BEFORE: Duration = Duration::from_secs(300);

/// Signs requests for one region and service.
#[derive(Debug)]
pub struct AwsSigning {
    provider: SharedCredentialsProvider,
    region: String,
    service: String,
    cached: tokio::sync::Mutex<Option<Credentials>>,
}

impl AwsSigning {
    /// Signing with `provider`'s credentials for `service` (`es` or `aoss`) in `region`.
    pub fn new(provider: SharedCredentialsProvider, region: &str, service: &str) -> Self {
        Self {
            provider,
            region: region.to_string(),
            service: service.to_string(),
            cached: tokio::sync::Mutex::new(None),
        }
    }

    async fn credentials(&self) -> Result<Credentials, String> {
        let mut cached = self.cached.lock().await;
        let fresh = |c: &Credentials| {
            c.expiry()
                .is_none_or(|t| t > SystemTime::now() + REFRESH_BEFORE)
        };
        if let Some(c) = cached.as_ref().filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        let c = self
            .provider
            .provide_credentials()
            .await
            .map_err(|e| format!("AWS credentials for signing search requests: {e}"))?;
        *cached = Some(c.clone());
        Ok(c)
    }

    /// The headers that sign `method url` with `body` now: `authorization`, `x-amz-date`,
    /// `x-amz-content-sha256` and, with temporary credentials, `x-amz-security-token`.
    pub async fn sign(
        &self,
        method: &str,
        url: &str,
        body: Option<&Body>,
    ) -> Result<Vec<(&'static str, String)>, String> {
        let identity = self.credentials().await?.into();
        let mut settings = SigningSettings::default();
        // OpenSearch Serverless requires the payload hash as a header; domains accept it.
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| format!("signing parameters: {e}"))?
            .into();
        let content_type = body.map(|b| ("content-type", b.content_type()));
        let request = SignableRequest::new(
            method,
            url,
            content_type.into_iter(),
            SignableBody::Bytes(body.map_or(&[][..], Body::bytes)),
        )
        .map_err(|e| format!("signing {method} {url}: {e}"))?;
        let (instructions, _) = sign(request, &params)
            .map_err(|e| format!("signing {method} {url}: {e}"))?
            .into_parts();
        Ok(instructions
            .into_parts()
            .0
            .into_iter()
            .map(|h| (h.name(), h.value().to_string()))
            .collect())
    }
}
