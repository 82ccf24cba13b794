//! External services that replace embedded defaults: a search cluster (`search.url`) for the
//! search documents, an SMTP server (`mail.smtp_host`) for e-mail.

use std::sync::Arc;

use anyhow::Context;
use dss_config::Config;
use dss_elasticsearch::{AwsSigning, ElasticsearchIndex};
use dss_runtime::deployment::Deployment;

/// Puts the configured search cluster and SMTP server in place.
pub async fn wire(d: &mut Deployment) -> anyhow::Result<()> {
    let config = d.config.clone();
    if config.search.is_cluster() {
        let signing = match config.search.aws_sigv4 {
            true => Some(aws_signing(&config).await?),
            false => None,
        };
        d.search =
            Arc::new(ElasticsearchIndex::connect(&config.search, signing).context("search.url")?);
        tracing::info!(nodes = ?config.search.nodes(), "search documents live in Elasticsearch/OpenSearch");
    }
    if config.mail.smtp_host.is_some() {
        let mailer = dss_smtp::SmtpMailer::new(&config.mail).context("mail.smtp_host")?;
        tracing::info!(?mailer, "e-mail goes out over SMTP");
        d.mailer = Arc::new(mailer);
    }
    Ok(())
}

/// SigV4 signing for OpenSearch Service with the credentials and region the S3 clients use.
async fn aws_signing(config: &Config) -> anyhow::Result<AwsSigning> {
    let (credentials, region) = super::aws::options(config).credentials_and_region().await;
    let credentials = credentials.context(
        "search.aws_sigv4: no AWS credentials found (aws.access_key_id, the environment, a profile or an instance role)",
    )?;
    let region = region.context("search.aws_sigv4: no AWS region (aws.region or AWS_REGION)")?;
    Ok(AwsSigning::new(
        credentials,
        &region,
        &config.search.aws_service,
    ))
}
