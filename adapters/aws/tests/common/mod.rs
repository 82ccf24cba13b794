//! What the AWS adapters' tests share: the server to talk to and unique names.

use dss_aws::AwsOptions;

/// Options for the AWS-protocol server named in `DSS_TEST_AWS_URL` (moto, started by
/// `infra/local/test.sh`).
pub fn options() -> AwsOptions {
    AwsOptions {
        endpoint: Some(std::env::var("DSS_TEST_AWS_URL").expect(
            "DSS_TEST_AWS_URL names an AWS-protocol server (infra/local/test.sh starts moto)",
        )),
        region: Some("us-east-1".into()),
        path_style: true,
        credentials: Some(("testing".into(), "testing".into())),
    }
}

/// `name` made unique per run: the server outlives test runs.
pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{name}-{nanos}")
}
