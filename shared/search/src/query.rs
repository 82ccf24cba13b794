//! The Elasticsearch query DSL subset DSS users send, parsed into a [`Query`] tree.
//!
//! Parsing is strict: an unknown query name, an unknown parameter or a malformed clause is a
//! [`QueryError`] whose text says what is wrong (the API answers 400 `elasticsearch_bad_request`).

use serde_json::{Map, Value};

/// A query that cannot be parsed; the text is the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError(msg.into()))
}

/// A value in a term-level query.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A string.
    Str(String),
    /// A number.
    Num(f64),
    /// A boolean.
    Bool(bool),
}

impl Scalar {
    fn from_json(v: &Value, what: &str) -> Result<Self, QueryError> {
        match v {
            Value::String(s) => Ok(Scalar::Str(s.clone())),
            Value::Number(n) => Ok(Scalar::Num(n.as_f64().unwrap_or(f64::NAN))),
            Value::Bool(b) => Ok(Scalar::Bool(*b)),
            other => err(format!(
                "[{what}] expects a string, number or boolean, got {other}"
            )),
        }
    }

    /// The value as text (numbers in their canonical keyword form).
    pub fn text(&self) -> String {
        match self {
            Scalar::Str(s) => s.clone(),
            Scalar::Num(n) => super::flatten::number_keyword(*n),
            Scalar::Bool(b) => b.to_string(),
        }
    }

    /// The value as a number, if it is one or a string that parses as one.
    pub fn number(&self) -> Option<f64> {
        match self {
            Scalar::Num(n) => Some(*n),
            Scalar::Str(s) => s.trim().parse().ok().filter(|x: &f64| x.is_finite()),
            Scalar::Bool(_) => None,
        }
    }
}

/// How the analysed terms of a `match` combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// Any term.
    Or,
    /// Every term.
    And,
}

fn operator(v: &Value) -> Result<Operator, QueryError> {
    match v.as_str().map(str::to_ascii_lowercase).as_deref() {
        Some("or") => Ok(Operator::Or),
        Some("and") => Ok(Operator::And),
        _ => err(format!("operator must be `and` or `or`, got {v}")),
    }
}

/// `minimum_should_match`: a count or a percentage, negative meaning "all but".
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MinimumShouldMatch {
    /// `3`, `-1`.
    Count(i64),
    /// `75%`, `-25%`.
    Percent(f64),
}

impl MinimumShouldMatch {
    fn parse(v: &Value) -> Result<Self, QueryError> {
        let bad = || QueryError(format!("unsupported minimum_should_match {v}"));
        match v {
            Value::Number(n) => n.as_i64().map(Self::Count).ok_or_else(bad),
            Value::String(s) => {
                let s = s.trim();
                if let Some(p) = s.strip_suffix('%') {
                    p.parse().map(Self::Percent).map_err(|_| bad())
                } else {
                    s.parse().map(Self::Count).map_err(|_| bad())
                }
            }
            _ => Err(bad()),
        }
    }

    /// How many of `n` optional clauses must match.
    pub fn required(&self, n: usize) -> usize {
        let n_i = n as i64;
        let k = match *self {
            Self::Count(c) if c < 0 => n_i + c,
            Self::Count(c) => c,
            Self::Percent(p) if p < 0.0 => n_i - ((-p / 100.0) * n as f64).floor() as i64,
            Self::Percent(p) => ((p / 100.0) * n as f64).floor() as i64,
        };
        k.clamp(0, n_i) as usize
    }
}

/// The clauses of a `bool` query.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BoolQuery {
    /// All must match (`must` and `filter`).
    pub must: Vec<Query>,
    /// Optional clauses.
    pub should: Vec<Query>,
    /// None may match.
    pub must_not: Vec<Query>,
    /// How many `should` clauses must match (default: 1 when there is no `must`, else 0).
    pub minimum_should_match: Option<MinimumShouldMatch>,
}

impl BoolQuery {
    /// The number of `should` clauses a document must match.
    pub fn required_should(&self) -> usize {
        match &self.minimum_should_match {
            Some(m) => m.required(self.should.len()),
            None if self.must.is_empty() && !self.should.is_empty() => 1,
            None => 0,
        }
    }
}

/// Range bounds as given.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RangeBounds {
    /// Greater than.
    pub gt: Option<Scalar>,
    /// Greater than or equal.
    pub gte: Option<Scalar>,
    /// Less than.
    pub lt: Option<Scalar>,
    /// Less than or equal.
    pub lte: Option<Scalar>,
}

/// A parsed query. Field lists may hold `*` patterns (from `multi_match` and `query_string`);
/// a document matches a leaf when any listed field matches.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// Every document.
    MatchAll,
    /// No document.
    MatchNone,
    /// Boolean combination.
    Bool(Box<BoolQuery>),
    /// Exact value (keywords compare lower-cased; numbers numerically; dates as instants).
    Term {
        /// Fields.
        fields: Vec<String>,
        /// Any of these values.
        values: Vec<Scalar>,
    },
    /// Analysed full-text match on `.text` fields; whole-value match on keyword fields.
    Match {
        /// Fields.
        fields: Vec<String>,
        /// The query text.
        text: String,
        /// How its terms combine.
        operator: Operator,
        /// Terms that must match with `or`.
        minimum_should_match: Option<MinimumShouldMatch>,
    },
    /// Consecutive terms on `.text` fields; whole-value match on keyword fields.
    MatchPhrase {
        /// Fields.
        fields: Vec<String>,
        /// The phrase.
        text: String,
    },
    /// Numbers, dates (with date math) or strings within bounds.
    Range {
        /// Fields.
        fields: Vec<String>,
        /// Bounds.
        bounds: RangeBounds,
    },
    /// The field has a non-null value (for an object: any sub-field has).
    Exists {
        /// Fields.
        fields: Vec<String>,
    },
    /// Keyword (or token) starts with the value.
    Prefix {
        /// Fields.
        fields: Vec<String>,
        /// Prefix.
        value: String,
    },
    /// Keyword (or token) matches a `*`/`?` pattern.
    Wildcard {
        /// Fields.
        fields: Vec<String>,
        /// Pattern.
        pattern: String,
    },
    /// Document ids.
    Ids(Vec<String>),
    /// The inner query must match within one object of the array at `path`.
    Nested {
        /// Path of the objects.
        path: String,
        /// Query over full field paths.
        query: Box<Query>,
    },
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
                    text: t,
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
