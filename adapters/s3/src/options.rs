//! How to reach S3: endpoint, region, addressing style and credentials (else the SDK's default
//! chain: environment, profile, container or instance role).

use aws_config::BehaviorVersion;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};

/// Connection settings of an S3 client.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// Endpoint URL of an S3-compatible server (default: AWS).
    pub endpoint: Option<String>,
    /// Region (default: the SDK's region chain).
    pub region: Option<String>,
    /// Path-style addressing (`host/bucket/key`), which local servers need.
    pub path_style: bool,
    /// Static credentials (access key id, secret); default: the SDK's credentials chain.
    pub credentials: Option<(String, String)>,
}

impl S3Options {
    /// A client with these settings. Requests carry no checksum headers the server did not ask
    /// for: our own four checksums verify the bytes.
    pub async fn client(&self) -> Client {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(r) = &self.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(e) = &self.endpoint {
            loader = loader.endpoint_url(e);
        }
        if let Some((id, secret)) = &self.credentials {
            loader =
                loader.credentials_provider(Credentials::new(id, secret, None, None, "dss-config"));
        }
        let shared = loader.load().await;
        let conf = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(self.path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Client::from_conf(conf)
    }
}
