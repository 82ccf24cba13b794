//! Credentials of requests (Application Default Credentials, or none for emulators) and the
//! signer of download URLs.

use google_cloud_auth::credentials::{self, CacheableResource, Credentials};
use google_cloud_auth::signer::Signer;
use http::HeaderMap;

use dss_shared::ports::BlobError;

/// The scope the adapter needs.
const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";

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
    /// Application Default Credentials, or none when `anonymous`.
    pub fn new(anonymous: bool) -> Result<Self, BlobError> {
        if anonymous {
            return Ok(Auth::Anonymous);
        }
        let credentials = credentials::Builder::default()
            .with_scopes([SCOPE])
            .build()
            .map_err(|e| BlobError::Backend(format!("Google credentials: {e}")))?;
        let signer = credentials::Builder::default()
            .with_scopes([SCOPE])
            .build_signer()
            .ok();
        Ok(Auth::Google {
            credentials,
            signer,
        })
    }

    /// The headers that authorise a request.
    pub async fn headers(&self) -> Result<HeaderMap, BlobError> {
        match self {
            Auth::Anonymous => Ok(HeaderMap::new()),
            Auth::Google { credentials, .. } => {
                match credentials.headers(http::Extensions::new()).await {
                    Ok(CacheableResource::New { data, .. }) => Ok(data),
                    Ok(CacheableResource::NotModified) => Err(BlobError::Backend(
                        "credentials answered 'not modified' to a fresh request".into(),
                    )),
                    Err(e) => Err(BlobError::Backend(format!("Google credentials: {e}"))),
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
