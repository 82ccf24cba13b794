//! Query-string parsing with the original's validation messages.

use std::collections::HashMap;

use dss_shared::model::{DssVersion, ObjectUuid};

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

    /// An integer in `[min, max]`, `default` when absent.
    pub fn int_in(&self, name: &str, min: i64, max: i64, default: i64) -> ApiResult<i64> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        let v: i64 = raw.trim().parse().map_err(|_| {
            ApiError::illegal_arguments(format!(
                "Wrong type, expected 'integer' for query parameter '{name}'"
            ))
        })?;
        if v < min {
            return Err(ApiError::illegal_arguments(format!(
                "{v} is less than the minimum of {min}"
            )));
        }
        if v > max {
            return Err(ApiError::illegal_arguments(format!(
                "{v} is greater than the maximum of {max}"
            )));
        }
        Ok(v)
    }

    /// A boolean (`true`/`false`, any case), `false` when absent.
    pub fn flag(&self, name: &str) -> ApiResult<bool> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(false),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(_) => Err(ApiError::illegal_arguments(format!(
                "Wrong type, expected 'boolean' for query parameter '{name}'"
            ))),
        }
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
    fn validation_messages_match_the_original() {
        let q = Query::parse(Some("per_page=9&x=1&x=2&b=TRUE&n=abc"));
        assert_eq!(q.get("x"), Some("2"));
        assert_eq!(
            q.int_in("per_page", 10, 500, 100).unwrap_err().title,
            "9 is less than the minimum of 10"
        );
        assert_eq!(
            q.int_in("n", 10, 500, 100).unwrap_err().title,
            "Wrong type, expected 'integer' for query parameter 'n'"
        );
        assert_eq!(q.int_in("absent", 10, 500, 100).unwrap(), 100);
        assert!(q.flag("b").unwrap());
        assert_eq!(
            q.required("replica").unwrap_err().title,
            "Missing query parameter 'replica'"
        );
        assert_eq!(parse_version("2017").unwrap_err().code, "illegal_version");
        assert_eq!(q.with(&[("x", "3".into())]), "b=TRUE&n=abc&per_page=9&x=3");
    }
}
