//! Query-string parsing with the original's validation messages.

use std::collections::HashMap;

use dss_core::model::{DssVersion, ObjectUuid};

use crate::error::{ApiError, ApiResult};

/// Query parameters; when a name repeats, the last value wins (as behind API Gateway).
#[derive(Debug, Default, Clone)]
pub struct Query(HashMap<String, String>);

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// An optional parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A required parameter.
    pub fn required(&self, name: &str) -> ApiResult<&str> {
        self.get(name)
            .ok_or_else(|| ApiError::illegal_arguments(format!("Missing query parameter '{name}'")))
    }

    /// A required `DSS_VERSION` parameter (400 `illegal_version` when malformed).
    pub fn version_required(&self, name: &str) -> ApiResult<DssVersion> {
        parse_version(self.required(name)?)
    }

    /// An optional `DSS_VERSION` parameter.
    pub fn version_optional(&self, name: &str) -> ApiResult<Option<DssVersion>> {
        self.get(name).map(parse_version).transpose()
    }

    /// An integer parameter (bounds and default come from the API document, see `validate`).
    pub fn int(&self, name: &str) -> ApiResult<i64> {
        self.required(name)?.trim().parse().map_err(|_| {
            ApiError::illegal_arguments(format!(
                "Wrong type, expected 'integer' for query parameter '{name}'"
            ))
        })
    }

    /// A boolean parameter already checked to be `true`/`false`; `false` when absent.
    pub fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// Sets a parameter (defaults from the API document).
    pub fn set(&mut self, name: &str, value: String) {
        self.0.insert(name.to_string(), value);
    }

    /// The query with `updates` replacing (and appended after) existing values, as a query string.
    pub fn with(&self, updates: &[(&str, String)]) -> String {
        let mut keys: Vec<&String> = self
            .0
            .keys()
            .filter(|k| !updates.iter().any(|(u, _)| u == *k))
            .collect();
        keys.sort();
        let mut s = form_urlencoded::Serializer::new(String::new());
        for k in keys {
            s.append_pair(k, &self.0[k]);
        }
        for (k, v) in updates {
            s.append_pair(k, v);
        }
        s.finish()
    }
}

/// Parses a version with the original's `illegal_version` error.
pub fn parse_version(raw: &str) -> ApiResult<DssVersion> {
    DssVersion::parse(raw).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "illegal_version",
            e.to_string(),
        )
    })
}

/// Parses a UUID path parameter (400 when malformed).
pub fn parse_uuid(raw: &str) -> ApiResult<ObjectUuid> {
    ObjectUuid::parse(raw).map_err(|_| {
        ApiError::illegal_arguments(format!(
            "'{raw}' does not match '^[A-Za-z0-9]{{8}}-[A-Za-z0-9]{{4}}-[A-Za-z0-9]{{4}}-[A-Za-z0-9]{{4}}-[A-Za-z0-9]{{12}}$'"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_and_link_queries() {
        let mut q = Query::parse(Some("per_page=9&x=1&x=2&b=TRUE&n=abc"));
        assert_eq!(q.get("x"), Some("2"), "the last value wins");
        assert_eq!(q.int("per_page").unwrap(), 9);
        assert_eq!(
            q.int("n").unwrap_err().title,
            "Wrong type, expected 'integer' for query parameter 'n'"
        );
        assert!(q.flag("b"));
        assert!(!q.flag("absent"));
        assert_eq!(
            q.required("replica").unwrap_err().title,
            "Missing query parameter 'replica'"
        );
        assert_eq!(parse_version("2017").unwrap_err().code, "illegal_version");
        q.set("n", "1".into());
        assert_eq!(q.with(&[("x", "3".into())]), "b=TRUE&n=1&per_page=9&x=3");
    }
}
