//! The connections to Pub/Sub: gRPC channels opened on first use, in plain text to an emulator
//! (anonymous, with `gcp.pubsub_endpoint`) or over TLS to Google with the credentials of
//! `google-cloud-auth`.

use std::sync::Arc;

use async_trait::async_trait;
use dss_core::ports::QueueError;
use gcloud_gax::conn::{ConnectionOptions, Environment};
use gcloud_pubsub::apiv1::conn_pool::PUBSUB;
use gcloud_pubsub::apiv1::subscriber_client::SubscriberClient;
use gcloud_pubsub::client::{Client, ClientConfig};
use gcloud_pubsub::publisher::{Publisher, PublisherConfig};
use token_source::{TokenSource, TokenSourceProvider};
use tokio::sync::OnceCell;

use crate::GcpOptions;
use crate::auth::{Auth, PUBSUB_SCOPE};

/// Channels per client.
const POOL: usize = 4;

/// Where the channels go.
#[derive(Debug, Clone)]
enum Target {
    /// An emulator at `host:port`, in plain text, without credentials.
    Emulator(String),
    /// Google's service at `domain`, with credentials.
    Google { domain: String, auth: Arc<Auth> },
}

/// The client of one project, connected on first use.
#[derive(Debug)]
pub struct Rpc {
    target: Target,
    project: String,
    options: ConnectionOptions,
    client: OnceCell<Client>,
}

impl Rpc {
    /// The clients `options` describe (nothing is connected yet).
    pub fn new(options: &GcpOptions, project: &str) -> Result<Self, QueueError> {
        let endpoint = options.pubsub_endpoint.as_deref().map(|e| {
            e.trim_start_matches("http://")
                .trim_start_matches("https://")
                .trim_end_matches('/')
                .to_string()
        });
        let target = match (options.anonymous, endpoint) {
            (true, Some(host)) => Target::Emulator(host),
            (true, None) => {
                return Err(QueueError::Backend(
                    "gcp.anonymous reaches an emulator only: set gcp.pubsub_endpoint".into(),
                ));
            }
            (false, domain) => Target::Google {
                domain: domain.unwrap_or_else(|| PUBSUB.to_string()),
                auth: Arc::new(Auth::new(false, PUBSUB_SCOPE).map_err(QueueError::Backend)?),
            },
        };
        let options = ConnectionOptions {
            connect_timeout: Some(options.requests.connect_timeout),
            // Long-lived pulls wait for messages; every other call answers at once.
            timeout: Some(std::time::Duration::from_secs(120)),
            ..ConnectionOptions::default()
        };
        Ok(Self {
            target,
            project: project.to_string(),
            options,
            client: OnceCell::new(),
        })
    }

    fn environment(&self) -> Environment {
        match &self.target {
            Target::Emulator(host) => Environment::Emulator(host.clone()),
            Target::Google { auth, .. } => {
                Environment::GoogleCloud(Box::new(Tokens(Arc::new(Bearer(auth.clone())))))
            }
        }
    }

    fn domain(&self) -> &str {
        match &self.target {
            Target::Emulator(host) => host,
            Target::Google { domain, .. } => domain,
        }
    }

    /// The connected client.
    pub async fn client(&self) -> Result<&Client, QueueError> {
        self.client
            .get_or_try_init(|| async {
                let config = ClientConfig {
                    pool_size: POOL,
                    project_id: Some(self.project.clone()),
                    environment: self.environment(),
                    endpoint: self.domain().to_string(),
                    connection_option: self.options.clone(),
                };
                Client::new(config).await.map_err(|e| {
                    QueueError::Backend(format!("connecting to Pub/Sub at {}: {e}", self.domain()))
                })
            })
            .await
    }

    /// The subscriber (and subscription administration) RPCs.
    pub async fn subscriber(&self) -> Result<SubscriberClient, QueueError> {
        Ok(self.client().await?.subscription("-").get_client())
    }

    /// A publisher to the topic `name` that sends each call's messages at once (no batching
    /// tasks of its own).
    pub async fn publisher(&self, name: &str) -> Result<Publisher, QueueError> {
        let config = PublisherConfig {
            workers: 0,
            ..PublisherConfig::default()
        };
        Ok(self.client().await?.topic(name).new_publisher(Some(config)))
    }
}

/// `Authorization` header values from `google-cloud-auth`.
#[derive(Debug)]
struct Bearer(Arc<Auth>);

#[async_trait]
impl TokenSource for Bearer {
    async fn token(&self) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        let headers = self.0.headers().await?;
        let value = headers
            .get(http::header::AUTHORIZATION)
            .ok_or("Google credentials gave no authorization header")?;
        Ok(value.to_str()?.to_string())
    }
}

#[derive(Debug)]
struct Tokens(Arc<Bearer>);

impl TokenSourceProvider for Tokens {
    fn token_source(&self) -> Arc<dyn TokenSource> {
        self.0.clone()
    }
}
