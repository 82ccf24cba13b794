//! The API document (OpenAPI 3) served at `/v1/swagger.json`, with `servers[0].url` pointing at
//! this deployment so the official `hca`/`dbio` CLIs work over plain HTTP.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::state::Shared;

/// The document, without `servers`.
pub const DOCUMENT: &str = include_str!("../openapi.json");

/// The document with this deployment's server URL.
pub fn document(base_url: &str) -> serde_json::Result<Value> {
    let mut doc: Value = serde_json::from_str(DOCUMENT)?;
    doc["servers"] = json!([{"url": format!("{base_url}/v1")}]);
    Ok(doc)
}

/// `GET /v1/swagger.json`: the document rendered once at start.
pub async fn swagger(State(state): State<Shared>) -> Response {
    let mut r = state.api_document.clone().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_parses_and_names_every_operation() {
        let doc: serde_json::Value =
            serde_json::from_str(super::DOCUMENT).expect("openapi.json is JSON");
        assert!(
            doc["info"]["description"].is_string(),
            "the CLIs need info.description"
        );
        for (path, method) in [
            ("/files/{uuid}", "put"),
            ("/files/{uuid}", "get"),
            ("/files/{uuid}", "head"),
            ("/files/{uuid}/content", "put"),
            ("/bundles/all", "get"),
            ("/bundles/{uuid}", "get"),
            ("/bundles/{uuid}", "put"),
            ("/bundles/{uuid}", "patch"),
            ("/bundles/{uuid}", "delete"),
        ] {
            assert!(
                doc["paths"][path][method]["operationId"].is_string(),
                "{method} {path}"
            );
        }
    }
}
