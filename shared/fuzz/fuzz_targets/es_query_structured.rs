//! Queries built from a small syntax tree, so that inputs get past the JSON parser and into
//! the evaluator (date math, patterns, bool logic, nested).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

#[derive(Debug, Arbitrary)]
enum Field {
    Uuid,
    Age,
    Name,
    NameText,
    When,
    Tags,
    TagsText,
    AnyFile,
    Any,
    Other(String),
}

impl Field {
    fn name(&self) -> String {
        match self {
            Field::Uuid => "uuid".into(),
            Field::Age => "files.donor.age".into(),
            Field::Name => "files.donor.name".into(),
            Field::NameText => "files.donor.name.text".into(),
            Field::When => "files.donor.when".into(),
            Field::Tags => "files.tags".into(),
            Field::TagsText => "files.tags.text".into(),
            Field::AnyFile => "files.*".into(),
            Field::Any => "*".into(),
            Field::Other(s) => s.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Bound {
    Int(i64),
    Float(f64),
    Text(String),
    Now { plus: i64, unit: u8, round: bool },
}

impl Bound {
    fn json(&self) -> Value {
        match self {
            Bound::Int(n) => json!(n),
            Bound::Float(x) => json!(x),
            Bound::Text(s) => json!(s),
            Bound::Now { plus, unit, round } => {
                let u = b"yMwdhHms"[*unit as usize % 8] as char;
                let r = if *round {
                    format!("/{u}")
                } else {
                    String::new()
                };
                json!(format!("now{plus:+}{u}{r}"))
            }
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Q {
    All,
    Term(Field, String),
    Terms(Field, Vec<String>),
    Match(Field, String, bool),
    Phrase(Field, String),
    Range(Field, Option<Bound>, Option<Bound>),
    Exists(Field),
    Prefix(Field, String),
    Wildcard(Field, String),
    Ids(Vec<String>),
    QueryString(String),
    Bool(Vec<Q>, Vec<Q>, Vec<Q>, Option<i8>),
    Nested(Box<Q>),
}

impl Q {
    fn json(&self) -> Value {
        match self {
            Q::All => json!({"match_all": {}}),
            Q::Term(f, v) => json!({"term": {f.name(): v}}),
            Q::Terms(f, v) => json!({"terms": {f.name(): v}}),
            Q::Match(f, v, and) => {
                json!({"match": {f.name(): {"query": v, "operator": if *and { "and" } else { "or" }}}})
            }
            Q::Phrase(f, v) => json!({"match_phrase": {f.name(): v}}),
            Q::Range(f, lo, hi) => {
                let mut b = json!({});
                if let Some(l) = lo {
                    b["gte"] = l.json();
                }
                if let Some(h) = hi {
                    b["lt"] = h.json();
                }
                json!({"range": {f.name(): b}})
            }
            Q::Exists(f) => json!({"exists": {"field": f.name()}}),
            Q::Prefix(f, v) => json!({"prefix": {f.name(): v}}),
            Q::Wildcard(f, v) => json!({"wildcard": {f.name(): v}}),
            Q::Ids(ids) => json!({"ids": {"values": ids}}),
            Q::QueryString(s) => json!({"query_string": {"query": s}}),
            Q::Bool(must, should, not, msm) => {
                let j = |v: &Vec<Q>| v.iter().map(Q::json).collect::<Vec<_>>();
                let mut b = json!({"must": j(must), "should": j(should), "must_not": j(not)});
                if let Some(m) = msm {
                    b["minimum_should_match"] = json!(m);
                }
                json!({"bool": b})
            }
            Q::Nested(q) => json!({"nested": {"path": "files.donor", "query": q.json()}}),
        }
    }
}

fuzz_target!(|q: Q| {
    let Ok(parsed) = dss_search::parse_body(&json!({"query": q.json()})) else {
        return;
    };
    if dss_search::limits::check(&parsed, &Default::default()).is_ok() {
        dss_fuzz::evaluate(&parsed);
    }
});
