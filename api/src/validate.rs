//! Query parameters validated against the served API document: required parameters, types,
//! bounds, enums, patterns and the `DSS_VERSION` format, with the document's defaults applied.
//! Messages are the original's (connexion's). Handlers call [`ParamRules::check`] where the
//! original validated parameters: after authentication and the body.

use std::collections::HashMap;

use regex::Regex;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::params::{Query, parse_version};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Integer,
    Boolean,
}

#[derive(Debug)]
struct Rule {
    name: String,
    required: bool,
    kind: Kind,
    minimum: Option<i64>,
    maximum: Option<i64>,
    choices: Option<Vec<String>>,
    pattern: Option<(String, Regex)>,
    dss_version: bool,
    default: Option<String>,
}

/// The query-parameter rules of every operation in the document, by `operationId`.
#[derive(Debug)]
pub struct ParamRules {
    ops: HashMap<String, Vec<Rule>>,
}

fn rule(p: &Value) -> Result<Rule, String> {
    let name = p["name"]
        .as_str()
        .ok_or("parameter without a name")?
        .to_string();
    let schema = &p["schema"];
    let kind = match schema["type"].as_str().unwrap_or("string") {
        "integer" => Kind::Integer,
        "boolean" => Kind::Boolean,
        _ => Kind::String,
    };
    let pattern = match schema["pattern"].as_str() {
        Some(s) => Some((
            s.to_string(),
            Regex::new(s).map_err(|e| format!("{name}: {e}"))?,
        )),
        None => None,
    };
    let default = match &schema["default"] {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    };
    Ok(Rule {
        required: p["required"].as_bool().unwrap_or(false),
        kind,
        minimum: schema["minimum"].as_i64(),
        maximum: schema["maximum"].as_i64(),
        choices: schema["enum"].as_array().map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        }),
        pattern,
        dss_version: schema["format"].as_str() == Some("DSS_VERSION"),
        default,
        name,
    })
}

impl ParamRules {
    /// Reads the rules from an OpenAPI 3 document.
    pub fn from_document(doc: &Value) -> Result<Self, String> {
        let mut ops = HashMap::new();
        for (path, methods) in doc["paths"].as_object().ok_or("document without paths")? {
            for (method, op) in methods.as_object().ok_or("malformed path item")? {
                let id = op["operationId"]
                    .as_str()
                    .ok_or_else(|| format!("{method} {path} has no operationId"))?;
                let params = op["parameters"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let rules = params
                    .iter()
                    .filter(|p| p["in"] == "query")
                    .map(rule)
                    .collect::<Result<Vec<_>, _>>()?;
                ops.insert(id.to_string(), rules);
            }
        }
        Ok(Self { ops })
    }

    /// Validates the raw query string of operation `op` and returns it with defaults applied.
    pub fn check(&self, op: &str, raw: Option<&str>) -> ApiResult<Query> {
        let mut q = Query::parse(raw);
        let rules = self
            .ops
            .get(op)
            .ok_or_else(|| ApiError::internal("validation", format!("unknown operation {op}")))?;
        for r in rules {
            let Some(v) = q.get(&r.name).map(str::to_string) else {
                if r.required {
                    return Err(ApiError::illegal_arguments(format!(
                        "Missing query parameter '{}'",
                        r.name
                    )));
                }
                if let Some(d) = &r.default {
                    q.set(&r.name, d.clone());
                }
                continue;
            };
            match r.kind {
                Kind::Integer => {
                    let n: i64 = v.trim().parse().map_err(|_| {
                        ApiError::illegal_arguments(format!(
                            "Wrong type, expected 'integer' for query parameter '{}'",
                            r.name
                        ))
                    })?;
                    if let Some(min) = r.minimum.filter(|m| n < *m) {
                        return Err(ApiError::illegal_arguments(format!(
                            "{n} is less than the minimum of {min}"
                        )));
                    }
                    if let Some(max) = r.maximum.filter(|m| n > *m) {
                        return Err(ApiError::illegal_arguments(format!(
                            "{n} is greater than the maximum of {max}"
                        )));
                    }
                }
                Kind::Boolean
                    if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") =>
                {
                    return Err(ApiError::illegal_arguments(format!(
                        "Wrong type, expected 'boolean' for query parameter '{}'",
                        r.name
                    )));
                }
                Kind::Boolean | Kind::String => {}
            }
            if let Some(choices) = r.choices.as_ref().filter(|c| !c.contains(&v)) {
                let list: Vec<String> = choices.iter().map(|c| format!("'{c}'")).collect();
                return Err(ApiError::illegal_arguments(format!(
                    "'{v}' is not one of [{}]",
                    list.join(", ")
                )));
            }
            if let Some((text, _)) = r.pattern.as_ref().filter(|(_, re)| !re.is_match(&v)) {
                return Err(ApiError::illegal_arguments(format!(
                    "'{v}' does not match '{text}'"
                )));
            }
            if r.dss_version {
                parse_version(&v)?;
            }
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> ParamRules {
        ParamRules::from_document(
            &serde_json::from_str(crate::openapi::DOCUMENT).expect("document"),
        )
        .expect("rules")
    }

    #[test]
    fn the_document_drives_validation_and_defaults() {
        let r = rules();
        let q = r.check("getBundle", Some("replica=aws")).unwrap();
        assert_eq!(
            (q.get("per_page"), q.get("start_at")),
            (Some("500"), Some("0")),
            "defaults from the document"
        );
        let e = |op: &str, raw: &str| r.check(op, Some(raw)).unwrap_err();
        assert_eq!(
            e("getBundle", "per_page=20").title,
            "Missing query parameter 'replica'"
        );
        assert_eq!(
            e("getBundle", "replica=aws&per_page=9").title,
            "9 is less than the minimum of 10"
        );
        assert_eq!(
            e("getBundle", "replica=aws&per_page=501").title,
            "501 is greater than the maximum of 500"
        );
        assert_eq!(
            e("getBundle", "replica=aws&per_page=x").title,
            "Wrong type, expected 'integer' for query parameter 'per_page'"
        );
        assert_eq!(
            e("getBundle", "replica=aws&directurls=yes").title,
            "Wrong type, expected 'boolean' for query parameter 'directurls'"
        );
        assert_eq!(
            e("enumerateBundles", "replica=aws&prefix=!@").title,
            "'!@' does not match '^[a-zA-Z0-9][a-zA-Z0-9-]*$'"
        );
        assert_eq!(
            e("putBundle", "replica=aws&version=2017").code,
            "illegal_version"
        );
        assert_eq!(
            r.check("enumerateBundles", Some("replica=aws"))
                .unwrap()
                .get("per_page"),
            Some("100")
        );
        assert!(r.check("nope", None).is_err());
    }
}
