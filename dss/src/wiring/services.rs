//! External services that replace embedded defaults: a search cluster (`search.url`) for the
//! search documents, an SMTP server (`mail.smtp_host`) for e-mail.

use std::sync::Arc;

use anyhow::Context;
use dss_runtime::deployment::Deployment;

/// Puts the configured search cluster and SMTP server in place.
pub fn wire(d: &mut Deployment) -> anyhow::Result<()> {
    let config = d.config.clone();
    if let Some(url) = &config.search.url {
        d.search = Arc::new(
            dss_elasticsearch::ElasticsearchIndex::new(url, &config.search.index_prefix)
                .context("search.url")?,
        );
        tracing::info!(url = %crate::effective_config::without_credentials(url).unwrap_or_else(|| url.clone()), "search documents live in Elasticsearch/OpenSearch");
    }
    if config.mail.smtp_host.is_some() {
        let mailer = dss_smtp::SmtpMailer::new(&config.mail).context("mail.smtp_host")?;
        tracing::info!(?mailer, "e-mail goes out over SMTP");
        d.mailer = Arc::new(mailer);
    }
    Ok(())
}
