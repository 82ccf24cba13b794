//! The Elasticsearch query DSL subset DSS users send, parsed into a [`Query`] tree.
//!
//! Parsing is strict: an unknown query name, an unknown parameter or a malformed clause is a
//! [`QueryError`] whose text says what is wrong (the API answers 400 `elasticsearch_bad_request`).

use serde_json::{Map, Value};

use crate::ast::{BoolQuery, MinimumShouldMatch, Operator, Query, QueryError, RangeBounds, Scalar};

fn err<T>(msg: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError(msg.into()))
}

fn operator(v: &Value) -> Result<Operator, QueryError> {
    match v.as_str().map(str::to_ascii_lowercase).as_deref() {
        Some("or") => Ok(Operator::Or),
        Some("and") => Ok(Operator::And),
        _ => err(format!("operator must be `and` or `or`, got {v}")),
    }
}

/// Top-level keys a search body may carry besides `query` (the server decides paging and sort).
const BODY_KEYS: &[&str] = &[
    "query",
    "_source",
    "sort",
    "size",
    "from",
    "search_after",
    "track_total_hits",
    "timeout",
    "version",
    "explain",
    "stored_fields",
    "docvalue_fields",
    "min_score",
];

/// Parses a search body (`{"query": …}`); no `query` means `match_all`.
pub fn parse_body(body: &Value) -> Result<Query, QueryError> {
    let Value::Object(map) = body else {
        return err("the search body must be a JSON object");
    };
    for k in map.keys() {
        if !BODY_KEYS.contains(&k.as_str()) {
            return err(format!("Unknown key for a START_OBJECT in [{k}]."));
        }
    }
    match map.get("query") {
        None => Ok(Query::MatchAll),
        Some(q) => parse(q),
    }
}

/// Parses one query clause (`{"match": {…}}`).
pub fn parse(v: &Value) -> Result<Query, QueryError> {
    let Value::Object(map) = v else {
        return err(format!(
            "query malformed, must start with start_object, got {v}"
        ));
    };
    let mut it = map.iter();
    let Some((name, body)) = it.next() else {
        return err("query malformed, empty clause found");
    };
    if let Some((next, _)) = it.next() {
        return err(format!(
            "[{name}] malformed query, expected [END_OBJECT] but found [FIELD_NAME] ({next})"
        ));
    }
    let Value::Object(params) = body else {
        return err(format!(
            "[{name}] query malformed, no start_object after query name"
        ));
    };
    match name.as_str() {
        "match_all" => only(name, params, &["boost"]).map(|_| Query::MatchAll),
        "match_none" => only(name, params, &["boost"]).map(|_| Query::MatchNone),
        "bool" => parse_bool(params),
        "term" => parse_term(params),
        "terms" => parse_terms(params),
        "match" => parse_match(params),
        "match_phrase" => parse_match_phrase(params),
        "multi_match" => parse_multi_match(params),
        "range" => parse_range(params),
        "exists" => {
            only(name, params, &["field", "boost"])?;
            let field = str_param(name, params, "field")?;
            Ok(Query::Exists {
                fields: vec![field],
            })
        }
        "prefix" => {
            let (field, value) = single_field_value(name, params, &["value"])?;
            Ok(Query::Prefix {
                fields: vec![field],
                value,
            })
        }
        "wildcard" => {
            let (field, pattern) = single_field_value(name, params, &["value", "wildcard"])?;
            Ok(Query::Wildcard {
                fields: vec![field],
                pattern,
            })
        }
        "ids" => {
            only(name, params, &["values", "type", "boost"])?;
            let Some(Value::Array(vals)) = params.get("values") else {
                return err("[ids] requires an array [values]");
            };
            let ids = vals
                .iter()
                .map(|v| Scalar::from_json(v, "ids").map(|s| s.text()))
                .collect::<Result<_, _>>()?;
            Ok(Query::Ids(ids))
        }
        "nested" => {
            only(
                name,
                params,
                &["path", "query", "score_mode", "ignore_unmapped", "boost"],
            )?;
            let path = str_param(name, params, "path")?;
            let Some(q) = params.get("query") else {
                return err("[nested] requires 'query' field");
            };
            Ok(Query::Nested {
                path,
                query: Box::new(parse(q)?),
            })
        }
        "constant_score" => {
            only(name, params, &["filter", "boost"])?;
            match params.get("filter") {
                Some(f) => parse(f),
                None => err("[constant_score] requires a 'filter' element"),
            }
        }
        "query_string" => super::query_string::parse(params),
        other => err(format!("no [query] registered for [{other}]")),
    }
}

fn only(name: &str, params: &Map<String, Value>, allowed: &[&str]) -> Result<(), QueryError> {
    for k in params.keys() {
        if !allowed.contains(&k.as_str()) {
            return err(format!("[{name}] query does not support [{k}]"));
        }
    }
    Ok(())
}

fn str_param(name: &str, params: &Map<String, Value>, key: &str) -> Result<String, QueryError> {
    match params.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => err(format!("[{name}] [{key}] must be a string, got {other}")),
        None => err(format!("[{name}] requires [{key}]")),
    }
}

fn clauses(v: &Value) -> Result<Vec<Query>, QueryError> {
    match v {
        Value::Array(items) => items.iter().map(parse).collect(),
        Value::Object(_) => Ok(vec![parse(v)?]),
        other => err(format!(
            "[bool] clauses must be objects or arrays, got {other}"
        )),
    }
}

fn parse_bool(params: &Map<String, Value>) -> Result<Query, QueryError> {
    let mut b = BoolQuery::default();
    for (k, v) in params {
        match k.as_str() {
            "must" | "filter" => b.must.extend(clauses(v)?),
            "should" => b.should.extend(clauses(v)?),
            "must_not" => b.must_not.extend(clauses(v)?),
            "minimum_should_match" => b.minimum_should_match = Some(MinimumShouldMatch::parse(v)?),
            "boost" | "adjust_pure_negative" | "_name" => {}
            other => return err(format!("[bool] query does not support [{other}]")),
        }
    }
    Ok(Query::Bool(Box::new(b)))
}

/// `{"field": value}` or `{"field": {"value": value, …}}`, with exactly one field.
fn single_field<'a>(
    name: &str,
    params: &'a Map<String, Value>,
) -> Result<(String, &'a Value), QueryError> {
    let mut fields = params.iter().filter(|(k, _)| k.as_str() != "boost");
    let Some((field, v)) = fields.next() else {
        return err(format!("[{name}] query requires a field"));
    };
    if let Some((other, _)) = fields.next() {
        return err(format!(
            "[{name}] query doesn't support multiple fields, found [{field}] and [{other}]"
        ));
    }
    Ok((field.clone(), v))
}

fn single_field_value(
    name: &str,
    params: &Map<String, Value>,
    value_keys: &[&str],
) -> Result<(String, String), QueryError> {
    let (field, v) = single_field(name, params)?;
    let value = match v {
        Value::Object(inner) => {
            let mut value = None;
            for (k, x) in inner {
                if value_keys.contains(&k.as_str()) {
                    value = Some(x);
                } else if !matches!(
                    k.as_str(),
                    "boost" | "rewrite" | "case_insensitive" | "_name"
                ) {
                    return err(format!("[{name}] query does not support [{k}]"));
                }
            }
            match value {
                Some(x) => x,
                None => return err(format!("[{name}] requires a value for field [{field}]")),
            }
        }
        other => other,
    };
    Ok((field, Scalar::from_json(value, name)?.text()))
}

fn parse_term(params: &Map<String, Value>) -> Result<Query, QueryError> {
    let (field, v) = single_field("term", params)?;
    let value = match v {
        Value::Object(inner) => {
            for k in inner.keys() {
                if !matches!(k.as_str(), "value" | "boost" | "case_insensitive" | "_name") {
                    return err(format!("[term] query does not support [{k}]"));
                }
            }
            match inner.get("value") {
                Some(x) => x,
                None => return err(format!("[term] requires a value for field [{field}]")),
            }
        }
        other => other,
    };
    Ok(Query::Term {
        fields: vec![field],
        values: vec![Scalar::from_json(value, "term")?],
    })
}

fn parse_terms(params: &Map<String, Value>) -> Result<Query, QueryError> {
    let (field, v) = single_field("terms", params)?;
    let Value::Array(items) = v else {
        return err(format!(
            "[terms] query does not support [{field}] without an array of values (terms lookup is not supported)"
        ));
    };
    Ok(Query::Term {
        fields: vec![field],
        values: items
            .iter()
            .map(|x| Scalar::from_json(x, "terms"))
            .collect::<Result<_, _>>()?,
    })
}

/// Reads `{"field": text}` or `{"field": {"query": text, …}}` of `match` / `match_phrase`.
fn match_params(
    name: &str,
    params: &Map<String, Value>,
    allowed: &[&str],
) -> Result<(String, String, Map<String, Value>), QueryError> {
    let (field, v) = single_field(name, params)?;
    match v {
        Value::Object(inner) => {
            for k in inner.keys() {
                if !allowed.contains(&k.as_str()) {
                    return err(format!("[{name}] query does not support [{k}]"));
                }
            }
            let Some(q) = inner.get("query") else {
                return err(format!("[{name}] requires [query] for field [{field}]"));
            };
            Ok((field, Scalar::from_json(q, name)?.text(), inner.clone()))
        }
        Value::Array(_) | Value::Null => err(format!(
            "[{name}] unknown token [START_ARRAY] after [{field}]"
        )),
        other => Ok((field, Scalar::from_json(other, name)?.text(), Map::new())),
    }
}

fn parse_match(params: &Map<String, Value>) -> Result<Query, QueryError> {
    let allowed = [
        "query",
        "operator",
        "minimum_should_match",
        "boost",
        "lenient",
        "analyzer",
        "zero_terms_query",
        "auto_generate_synonyms_phrase_query",
        "_name",
    ];
    let (field, text, inner) = match_params("match", params, &allowed)?;
    Ok(Query::Match {
        fields: vec![field],
        text,
        operator: inner
            .get("operator")
            .map(operator)
            .transpose()?
            .unwrap_or(Operator::Or),
        minimum_should_match: inner
            .get("minimum_should_match")
            .map(MinimumShouldMatch::parse)
            .transpose()?,
    })
}

fn parse_match_phrase(params: &Map<String, Value>) -> Result<Query, QueryError> {
    let allowed = [
        "query",
        "slop",
        "boost",
        "analyzer",
        "zero_terms_query",
        "_name",
    ];
    let (field, text, inner) = match_params("match_phrase", params, &allowed)?;
    if inner.get("slop").is_some_and(|s| s.as_u64() != Some(0)) {
        return err("[match_phrase] only slop 0 is supported");
    }
    Ok(Query::MatchPhrase {
        fields: vec![field],
        text,
    })
}

fn field_list(v: Option<&Value>) -> Result<Vec<String>, QueryError> {
    let strip = |s: &str| s.split('^').next().unwrap_or(s).to_string();
    match v {
        None => Ok(vec!["*".to_string()]),
        Some(Value::String(s)) => Ok(vec![strip(s)]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(strip(s)),
                other => err(format!("[fields] must hold strings, got {other}")),
            })
            .collect(),
        Some(other) => err(format!("[fields] must be an array of strings, got {other}")),
    }
}

fn parse_multi_match(params: &Map<String, Value>) -> Result<Query, QueryError> {
    only(
        "multi_match",
        params,
        &[
            "query",
            "fields",
            "type",
            "operator",
            "minimum_should_match",
            "boost",
            "lenient",
            "tie_breaker",
            "analyzer",
            "zero_terms_query",
            "_name",
        ],
    )?;
    let Some(q) = params.get("query") else {
        return err("[multi_match] requires [query]");
    };
    let text = Scalar::from_json(q, "multi_match")?.text();
    let fields = field_list(params.get("fields"))?;
    let op = params
        .get("operator")
        .map(operator)
        .transpose()?
        .unwrap_or(Operator::Or);
    let msm = params
        .get("minimum_should_match")
        .map(MinimumShouldMatch::parse)
        .transpose()?;
    match params
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("best_fields")
    {
        "best_fields" | "most_fields" => Ok(Query::Match {
            fields,
            text,
            operator: op,
            minimum_should_match: msm,
        }),
        "phrase" => Ok(Query::MatchPhrase { fields, text }),
        "cross_fields" => {
            // Each term may come from any of the fields.
            let per_term: Vec<Query> = super::analyze::tokens(&text)
                .into_iter()
                .map(|t| Query::Match {
                    fields: fields.clone(),
                    text: t.into_owned(),
                    operator: Operator::Or,
                    minimum_should_match: None,
                })
                .collect();
            let mut b = BoolQuery::default();
            match op {
                Operator::And => b.must = per_term,
                Operator::Or => {
                    b.should = per_term;
                    b.minimum_should_match = msm;
                }
            }
            Ok(Query::Bool(Box::new(b)))
        }
        other => err(format!("[multi_match] type [{other}] is not supported")),
    }
}

fn parse_range(params: &Map<String, Value>) -> Result<Query, QueryError> {
    let (field, v) = single_field("range", params)?;
    let Value::Object(inner) = v else {
        return err(format!(
            "[range] query malformed, no start_object after field [{field}]"
        ));
    };
    let mut b = RangeBounds::default();
    let (mut from, mut to, mut incl_lower, mut incl_upper) = (None, None, true, true);
    for (k, x) in inner {
        let val = || -> Result<Option<Scalar>, QueryError> {
            if x.is_null() {
                Ok(None)
            } else {
                Scalar::from_json(x, "range").map(Some)
            }
        };
        match k.as_str() {
            "gt" => b.gt = val()?,
            "gte" => b.gte = val()?,
            "lt" => b.lt = val()?,
            "lte" => b.lte = val()?,
            "from" => from = val()?,
            "to" => to = val()?,
            "include_lower" => incl_lower = x.as_bool().unwrap_or(true),
            "include_upper" => incl_upper = x.as_bool().unwrap_or(true),
            "format" | "time_zone" | "boost" | "relation" | "_name" => {}
            other => return err(format!("[range] query does not support [{other}]")),
        }
    }
    if let Some(f) = from {
        if incl_lower {
            b.gte = Some(f)
        } else {
            b.gt = Some(f)
        }
    }
    if let Some(t) = to {
        if incl_upper {
            b.lte = Some(t)
        } else {
            b.lt = Some(t)
        }
    }
    Ok(Query::Range {
        fields: vec![field],
        bounds: b,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn clauses_parse_in_their_short_and_long_forms() {
        assert_eq!(
            parse(&json!({"term": {"a": "x"}})).unwrap(),
            parse(&json!({"term": {"a": {"value": "x", "boost": 2}}})).unwrap()
        );
        let q = parse(&json!({"match": {"a.text": {"query": "x y", "operator": "AND"}}})).unwrap();
        assert!(matches!(
            q,
            Query::Match {
                operator: Operator::And,
                ..
            }
        ));
        let q =
            parse(&json!({"range": {"n": {"from": 1, "to": 5, "include_upper": false}}})).unwrap();
        let Query::Range { bounds, .. } = q else {
            panic!()
        };
        assert_eq!(bounds.gte, Some(Scalar::Num(1.0)));
        assert_eq!(bounds.lt, Some(Scalar::Num(5.0)));
        let q = parse(
            &json!({"bool": {"must": {"match_all": {}}, "should": [{"exists": {"field": "a"}}]}}),
        )
        .unwrap();
        let Query::Bool(b) = q else { panic!() };
        assert_eq!(
            (b.must.len(), b.should.len(), b.required_should()),
            (1, 1, 0)
        );
        assert_eq!(parse_body(&json!({})).unwrap(), Query::MatchAll);
    }

    #[test]
    fn malformed_queries_say_why() {
        let reason = |v: Value| parse_body(&v).unwrap_err().0;
        assert!(
            reason(json!({"query": {"mtch": {"a": "b"}}}))
                .contains("no [query] registered for [mtch]")
        );
        assert!(reason(json!({"query": {"match": ["a"]}})).contains("no start_object"));
        assert!(reason(json!({"query": {"match": {"a": [1]}}})).contains("START_ARRAY"));
        assert!(reason(json!({"query": {"term": {"a": 1, "b": 2}}})).contains("multiple fields"));
        assert!(reason(json!({"query": {"match": {}, "term": {}}})).contains("END_OBJECT"));
        assert!(reason(json!({"qeury": {}})).contains("Unknown key"));
        assert!(reason(json!({"query": {"bool": {"must": 3}}})).contains("clauses"));
        assert!(reason(json!({"query": {"range": {"a": {"gt": [1]}}}})).contains("range"));
        assert!(reason(json!([])).contains("object"));
    }

    #[test]
    fn minimum_should_match_forms() {
        let m = |v: Value| MinimumShouldMatch::parse(&v).unwrap();
        assert_eq!(m(json!(2)).required(4), 2);
        assert_eq!(m(json!("-1")).required(4), 3);
        assert_eq!(m(json!("75%")).required(4), 3);
        assert_eq!(m(json!("-25%")).required(4), 3);
        assert_eq!(m(json!(9)).required(4), 4);
        assert!(MinimumShouldMatch::parse(&json!("3<90%")).is_err());
    }
}
