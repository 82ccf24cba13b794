//! Shared state of the API handlers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use dss_runtime::deployment::{Deployment, Replica};

use crate::auth::Auth;
use crate::body::BodyLimits;
use crate::error::{ApiError, ApiResult};
use crate::params::Query;

/// Everything a handler needs.
pub struct AppState {
    /// Adapters and configuration.
    pub deployment: Deployment,
    /// Token verification and authorisation rules.
    pub auth: Auth,
    /// Canonical staging directory for `file://` sources.
    pub staging_dir: PathBuf,
    /// How long PUT/PATCH bundle waits for files that are not there yet (replication lag).
    pub file_wait: Duration,
    /// The API document served at `/v1/swagger.json`, serialised once.
    pub api_document: bytes::Bytes,
    /// Query-parameter rules read from the API document.
    pub params: crate::validate::ParamRules,
    /// Parsed manifests of recently read bundles.
    pub manifests: crate::storage::ManifestCache,
    /// Operations that need a token in this deployment (`auth.require`).
    pub required: crate::private::Required,
}

/// Handle passed to every handler.
pub type Shared = Arc<AppState>;

impl AppState {
    /// The replica named by the required `replica` query parameter.
    pub fn replica(&self, q: &Query) -> ApiResult<&Replica> {
        let name = q.required("replica")?;
        self.replica_named(name)
    }

    /// A replica by name, with the original's enum message when unknown.
    pub fn replica_named(&self, name: &str) -> ApiResult<&Replica> {
        self.deployment.replicas.get(name).ok_or_else(|| {
            let names: Vec<String> = self
                .deployment
                .replicas
                .keys()
                .map(|k| format!("'{k}'"))
                .collect();
            ApiError::illegal_arguments(format!("'{name}' is not one of [{}]", names.join(", ")))
        })
    }

    /// What large JSON bodies may be: authenticated writes that need it (bundles, collections).
    pub fn large_body(&self) -> BodyLimits {
        let api = &self.deployment.config.api;
        BodyLimits {
            size: api.max_json_body,
            // About one value per 16 bytes of text: what a bundle of many files holds.
            values: (api.max_json_body / 16).max(api.max_small_json_values),
            time: Duration::from_secs(api.body_read_timeout_secs),
        }
    }

    /// What every other JSON body may be (routes open to anyone among them).
    pub fn small_body(&self) -> BodyLimits {
        let api = &self.deployment.config.api;
        BodyLimits {
            size: api.max_small_json_body,
            values: api.max_small_json_values,
            time: Duration::from_secs(api.body_read_timeout_secs),
        }
    }

    /// Reads a small JSON object request body (see [`AppState::small_body`]).
    pub async fn json_body(
        &self,
        headers: &axum::http::HeaderMap,
        body: axum::body::Body,
    ) -> ApiResult<serde_json::Map<String, serde_json::Value>> {
        crate::body::json_object(headers, body, self.small_body()).await
    }

    /// Reads an optional small JSON object body (an empty body is `{}`).
    pub async fn json_body_or_empty(
        &self,
        headers: &axum::http::HeaderMap,
        body: axum::body::Body,
    ) -> ApiResult<serde_json::Map<String, serde_json::Value>> {
        crate::body::json_object_or_empty(headers, body, self.small_body()).await
    }

    /// Reads a large JSON object request body (see [`AppState::large_body`]); only after the
    /// caller is authenticated.
    pub async fn large_json_body(
        &self,
        headers: &axum::http::HeaderMap,
        body: axum::body::Body,
    ) -> ApiResult<serde_json::Map<String, serde_json::Value>> {
        crate::body::json_object(headers, body, self.large_body()).await
    }

    /// Refuses writes in read-only mode.
    pub fn writable(&self) -> ApiResult<()> {
        if self.deployment.config.api.read_only {
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "read_only",
                "The DSS is currently read-only",
            ))
        } else {
            Ok(())
        }
    }

    /// Absolute URL for `path` and `query` on this deployment.
    pub fn url(&self, path: &str, query: &str) -> String {
        let base = self.deployment.config.public_url();
        if query.is_empty() {
            format!("{base}{path}")
        } else {
            format!("{base}{path}?{query}")
        }
    }
}
