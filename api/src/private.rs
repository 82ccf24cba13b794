//! Private deployments: `auth.require` names the operations open to anyone in the original
//! that need a token here (controlled-access data), or `all`. The API refuses them without a
//! valid token (`token_gate.rs`), and the API document marks them, so the official CLIs
//! send their token.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

/// The GA4GH DRS routes (at the root and under `/v1`) as one operation.
pub const DRS: &str = "drs";

/// The DRS operation of the API document (`/v1/ga4gh/drs/v1/objects/{object_id}`).
const DRS_OPERATION: &str = "getDrsObject";

/// Every DRS route that reads objects.
const DRS_ROUTES: [&str; 4] = [
    "/ga4gh/drs/v1/objects/{object_id}",
    "/ga4gh/drs/v1/objects/{object_id}/access/{access_id}",
    "/v1/ga4gh/drs/v1/objects/{object_id}",
    "/v1/ga4gh/drs/v1/objects/{object_id}/access/{access_id}",
];

/// Operations that need a token, by (method, route) as the router matches them.
#[derive(Debug, Default)]
pub struct Required {
    routes: HashSet<(String, String)>,
}

/// Reads `auth.require` against the document: every name must be an operation of it (or
/// `drs`, or `all`). Marks the required operations in `doc` and returns them by route.
pub fn apply(require: &[String], doc: &mut Value) -> Result<Required, String> {
    let all = require.iter().any(|r| r == "all");
    let drs = all || require.iter().any(|r| r == DRS || r == DRS_OPERATION);
    let mut by_id: HashMap<String, (String, String)> = HashMap::new();
    let mut routes = HashSet::new();
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, methods) in paths.iter_mut() {
            let Some(methods) = methods.as_object_mut() else {
                continue;
            };
            for (method, op) in methods.iter_mut() {
                let Some(id) = op["operationId"].as_str().map(str::to_string) else {
                    continue;
                };
                let route = (method.to_ascii_uppercase(), format!("/v1{path}"));
                if all || require.contains(&id) || (drs && id == DRS_OPERATION) {
                    op["security"] = json!([{"BearerAuth": []}]);
                    routes.insert(route.clone());
                }
                by_id.insert(id, route);
            }
        }
    }
    if let Some(unknown) = require
        .iter()
        .find(|r| *r != "all" && *r != DRS && !by_id.contains_key(*r))
    {
        return Err(format!(
            "'{unknown}' is not an operation of the API document (nor `drs` or `all`)"
        ));
    }
    if drs {
        for route in DRS_ROUTES {
            routes.insert(("GET".into(), route.into()));
        }
    }
    Ok(Required { routes })
}

impl Required {
    /// Whether `method` on `route` (as the router matched it) needs a token.
    pub fn needs_token(&self, method: &str, route: &str) -> bool {
        // HEAD is answered by the GET route.
        let method = if method == "HEAD" { "GET" } else { method };
        self.routes
            .contains(&(method.to_string(), route.to_string()))
            || (method == "GET" && self.routes.contains(&("HEAD".into(), route.into())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_operations_are_marked_and_unknown_names_refused() {
        let mut doc: Value = serde_json::from_str(crate::openapi::DOCUMENT).unwrap();
        let r = apply(&["getBundle".into(), "postSearch".into()], &mut doc).unwrap();
        assert_eq!(
            doc["paths"]["/bundles/{uuid}"]["get"]["security"],
            json!([{"BearerAuth": []}])
        );
        assert!(
            doc["paths"]["/files/{uuid}"]["get"]
                .get("security")
                .is_none()
        );
        assert!(r.needs_token("GET", "/v1/bundles/{uuid}"));
        assert!(r.needs_token("POST", "/v1/search"));
        assert!(!r.needs_token("GET", "/v1/files/{uuid}"));
        let mut doc: Value = serde_json::from_str(crate::openapi::DOCUMENT).unwrap();
        let all = apply(&["all".into()], &mut doc).unwrap();
        assert!(all.needs_token("HEAD", "/v1/files/{uuid}"));
        assert!(all.needs_token("GET", "/ga4gh/drs/v1/objects/{object_id}"));
        let mut doc: Value = serde_json::from_str(crate::openapi::DOCUMENT).unwrap();
        assert!(apply(&["getBundel".into()], &mut doc).is_err());
    }

    #[test]
    fn drs_is_required_under_both_of_its_paths() {
        for name in [DRS, DRS_OPERATION] {
            let mut doc: Value = serde_json::from_str(crate::openapi::DOCUMENT).unwrap();
            let r = apply(&[name.into()], &mut doc).unwrap();
            for route in DRS_ROUTES {
                assert!(r.needs_token("GET", route), "{name}: {route}");
            }
            assert_eq!(
                doc["paths"]["/ga4gh/drs/v1/objects/{object_id}"]["get"]["security"],
                json!([{"BearerAuth": []}]),
                "{name}"
            );
            assert!(!r.needs_token("GET", "/v1/bundles/{uuid}"));
        }
    }
}
