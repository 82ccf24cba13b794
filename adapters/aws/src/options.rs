//! How to reach AWS (or a local server speaking its protocols): endpoint, region, credentials
//! (else the SDK's default chain: environment, profile, container or instance role), and S3's
//! addressing style.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};

/// Connection settings of the AWS clients.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    /// Endpoint URL of a compatible server (default: AWS's own endpoints).
    pub endpoint: Option<String>,
    /// Region (default: the SDK's region chain).
    pub region: Option<String>,
    /// Path-style S3 addressing (`host/bucket/key`), which local servers need.
    pub path_style: bool,
    /// Static credentials (access key id, secret); default: the SDK's credentials chain.
    pub credentials: Option<(String, String)>,
}

impl AwsOptions {
    async fn sdk_config(&self) -> SdkConfig {
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
        loader.load().await
    }

    /// The credentials provider and region the clients use (for signing requests to other AWS
    /// services, such as OpenSearch Service); `None` where the chains found none.
    pub async fn credentials_and_region(
        &self,
    ) -> (
        Option<aws_credential_types::provider::SharedCredentialsProvider>,
        Option<String>,
    ) {
        let sdk = self.sdk_config().await;
        (
            sdk.credentials_provider(),
            sdk.region().map(|r| r.to_string()),
        )
    }

    /// An S3 client. Requests carry no checksum headers the server did not ask for: our own
    /// four checksums verify the bytes.
    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.sdk_config().await)
            .force_path_style(self.path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// An SQS client.
    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk_config().await)
    }

    /// An SNS client.
    pub async fn sns(&self) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::new(&self.sdk_config().await)
    }
}
