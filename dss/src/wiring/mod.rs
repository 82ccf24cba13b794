//! The one place that wires: a configuration becomes a [`Deployment`] here. The embedded parts
//! and local replicas come first (`dss-runtime`); then each backend's wiring adds what the
//! configuration asks of it — `s3://` replicas, SQS/SNS and `s3://` staging ([`aws`]),
//! `gs://` replicas, Pub/Sub and `gs://` staging ([`gcp`]) — and the external services
//! replace embedded defaults ([`services`]: a search cluster, an SMTP server; [`postgres`]: the
//! shared metadata database).

pub mod aws;
pub mod gcp;
pub mod postgres;
pub mod services;

use anyhow::Context;
use dss_config::Config;
use dss_runtime::deployment::Deployment;

/// Opens the deployment `config` describes, every backend wired.
pub async fn open(config: &Config) -> anyhow::Result<Deployment> {
    let mut deployment = Deployment::open_local_parts(config.clone(), dss_core::clock::system())
        .context("opening the deployment")?;
    aws::wire(&mut deployment).await?;
    gcp::wire(&mut deployment)?;
    services::wire(&mut deployment).await?;
    postgres::wire(&mut deployment).await?;
    Ok(deployment)
}

/// A cloud replica's checkout bucket when its main bucket is `bucket` (default
/// `{bucket}-checkout`: cloud bucket names are global).
fn checkout_bucket(config: &Config, name: &str, bucket: &str) -> String {
    config.replicas[name]
        .checkout_bucket
        .clone()
        .unwrap_or_else(|| format!("{bucket}-checkout"))
}
