//! Credentials of requests (Application Default Credentials, or none for emulators) and the
//! signer of download URLs.

use google_cloud_auth::credentials::{self, CacheableResource, Credentials};
use google_cloud_auth::signer::Signer;
use http::HeaderMap;

/// The scope of Cloud Storage requests.
pub const STORAGE_SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";
/// The scope of Pub/Sub requests.
pub const PUBSUB_SCOPE: &str = "https://www.googleapis.com/auth/pubsub";
/// The scope of Cloud Monitoring reads (Pub/Sub's queue gauges).
pub const MONITORING_SCOPE: &str = "https://www.googleapis.com/auth/monitoring.read";

/// How requests are authorised.
#[derive(Debug, Clone)]
pub enum Auth {
    /// No credentials (emulators).
    Anonymous,
    /// Google credentials, with a signer when they can sign (service accounts, metadata server).
    Google {
        /// Request credentials.
        credentials: Credentials,
        /// Signs download URLs.
        signer: Option<Signer>,
    },
}

impl Auth {
    /// Application Default Credentials for `scope`, or none when `anonymous`.
    pub fn new(anonymous: bool, scope: &str) -> Result<Self, String> {
        if anonymous {
            return Ok(Auth::Anonymous);
        }
        let credentials = credentials::Builder::default()
            .with_scopes([scope])
            .build()
            .map_err(|e| format!("Google credentials: {e}"))?;
        let signer = credentials::Builder::default()
            .with_scopes([scope])
            .build_signer()
            .ok();
        Ok(Auth::Google {
            credentials,
            signer,
        })
    }

    /// The headers that authorise a request.
    pub async fn headers(&self) -> Result<HeaderMap, String> {
        match self {
            Auth::Anonymous => Ok(HeaderMap::new()),
            Auth::Google { credentials, .. } => {
                match credentials.headers(http::Extensions::new()).await {
                    Ok(CacheableResource::New { data, .. }) => Ok(data),
                    Ok(CacheableResource::NotModified) => {
                        Err("credentials answered 'not modified' to a fresh request".into())
                    }
                    Err(e) => Err(format!("Google credentials: {e}")),
                }
            }
        }
    }

    /// The signer, if these credentials can sign.
    pub fn signer(&self) -> Option<&Signer> {
        match self {
            Auth::Anonymous => None,
            Auth::Google { signer, .. } => signer.as_ref(),
        }
    }
}
