//! `query_string` in its simple form: terms, `field:value`, `"phrases"`, `*`/`?` wildcards,
//! `[a TO b]` / `{a TO b}` / `>=a` ranges, `_exists_:field`, `AND` / `OR` / `NOT` / `&&` / `||` /
//! `!`, `+` / `-` and parentheses, combined the way Lucene's classic query parser does.

use serde_json::{Map, Value};

use crate::ast::{BoolQuery, Operator, Query, QueryError, RangeBounds, Scalar};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    And,
    Or,
    Not,
    Plus,
    Minus,
    /// A term; `true` when it held an unescaped wildcard.
    Term(String, bool),
    /// `field:` prefix.
    Field(String),
    Phrase(String),
    /// `[a TO b]` (`true` = inclusive ends).
    Range(String, String, bool, bool),
    /// `>`, `>=`, `<`, `<=` followed by a value.
    Cmp(&'static str, String),
}

/// A query as quoted in an error: its first 200 characters.
fn shown(s: &str) -> String {
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn lex(s: &str) -> Result<Vec<Tok>, QueryError> {
    let bad = |m: String| QueryError(format!("Failed to parse query [{}]: {m}", shown(s)));
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let special = |c: char| "()\":[]{}".contains(c) || c.is_whitespace();
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1
            }
            ')' => {
                out.push(Tok::Close);
                i += 1
            }
            '+' => {
                out.push(Tok::Plus);
                i += 1
            }
            '-' => {
                out.push(Tok::Minus);
                i += 1
            }
            '!' => {
                out.push(Tok::Not);
                i += 1
            }
            '&' if chars.get(i + 1) == Some(&'&') => {
                out.push(Tok::And);
                i += 2
            }
            '|' if chars.get(i + 1) == Some(&'|') => {
                out.push(Tok::Or);
                i += 2
            }
            '"' => {
                let mut p = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(bad("unterminated phrase".into())),
                        Some('"') => break,
                        Some('\\') => {
                            p.extend(chars.get(i + 1));
                            i += 2;
                        }
                        Some(ch) => {
                            p.push(*ch);
                            i += 1
                        }
                    }
                }
                i += 1;
                out.push(Tok::Phrase(p));
            }
            '[' | '{' => {
                let close = chars[i + 1..]
                    .iter()
                    .position(|ch| *ch == ']' || *ch == '}')
                    .ok_or_else(|| bad("unterminated range".into()))?
                    + i
                    + 1;
                let inner: String = chars[i + 1..close].iter().collect();
                let parts: Vec<&str> = inner.split_whitespace().collect();
                let [lo, to, hi] = parts[..] else {
                    return Err(bad(format!("malformed range [{inner}]")));
                };
                if to != "TO" {
                    return Err(bad(format!("malformed range [{inner}]")));
                }
                out.push(Tok::Range(
                    lo.to_string(),
                    hi.to_string(),
                    c == '[',
                    chars[close] == ']',
                ));
                i = close + 1;
            }
            '>' | '<' => {
                let op = match (c, chars.get(i + 1)) {
                    ('>', Some('=')) => ">=",
                    ('<', Some('=')) => "<=",
                    ('>', _) => ">",
                    _ => "<",
                };
                i += op.len();
                let start = i;
                while i < chars.len() && !special(chars[i]) {
                    i += 1;
                }
                out.push(Tok::Cmp(op, chars[start..i].iter().collect()));
            }
            // A closing bracket outside a range (the other special characters have arms).
            ']' | '}' => return Err(bad(format!("unexpected '{c}'"))),
            _ => {
                let mut t = String::new();
                let mut wild = false;
                while i < chars.len() && !special(chars[i]) {
                    match chars[i] {
                        '\\' => {
                            t.extend(chars.get(i + 1));
                            i += 2;
                            continue;
                        }
                        '*' | '?' => {
                            wild = true;
                            t.push(chars[i])
                        }
                        ch => t.push(ch),
                    }
                    i += 1;
                }
                if chars.get(i) == Some(&':') {
                    i += 1;
                    out.push(Tok::Field(t));
                } else {
                    out.push(match t.as_str() {
                        "AND" => Tok::And,
                        "OR" => Tok::Or,
                        "NOT" => Tok::Not,
                        _ => Tok::Term(t, wild),
                    });
                }
            }
        }
    }
    Ok(out)
}

#[derive(Clone, Copy, PartialEq)]
enum Occur {
    Must,
    Should,
    MustNot,
}

/// Groups and `field:` prefixes nested in each other at most (the parser recurses per level).
const MAX_NESTING: usize = 32;

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    /// Current nesting of groups and field prefixes.
    depth: usize,
    default_fields: Vec<String>,
    default_op: Operator,
    source: String,
}

impl Parser {
    fn bad(&self, m: &str) -> QueryError {
        QueryError(format!(
            "Failed to parse query [{}]: {m}",
            shown(&self.source)
        ))
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn query(&mut self, fields: &[String]) -> Result<Query, QueryError> {
        let mut clauses: Vec<(Occur, Query)> = Vec::new();
        loop {
            let conj = match self.peek() {
                None | Some(Tok::Close) => break,
                Some(Tok::And) => Some(Operator::And),
                Some(Tok::Or) => Some(Operator::Or),
                _ => None,
            };
            if conj.is_some() {
                self.next();
            }
            let modifier = match self.peek() {
                Some(Tok::Plus) => Some(Occur::Must),
                Some(Tok::Minus) | Some(Tok::Not) => Some(Occur::MustNot),
                _ => None,
            };
            if modifier.is_some() {
                self.next();
            }
            let clause = self.clause(fields)?;
            if let Some(prev) = clauses.last_mut() {
                if conj == Some(Operator::And) && prev.0 == Occur::Should {
                    prev.0 = Occur::Must;
                }
                if conj == Some(Operator::Or)
                    && self.default_op == Operator::And
                    && prev.0 == Occur::Must
                {
                    prev.0 = Occur::Should;
                }
            }
            let occur = modifier.unwrap_or(match conj {
                Some(Operator::And) => Occur::Must,
                Some(Operator::Or) => Occur::Should,
                None if self.default_op == Operator::And => Occur::Must,
                None => Occur::Should,
            });
            clauses.push((occur, clause));
        }
        if clauses.len() == 1 && clauses[0].0 != Occur::MustNot {
            return Ok(clauses.remove(0).1);
        }
        if clauses.is_empty() {
            return Err(self.bad("empty query"));
        }
        let mut b = BoolQuery::default();
        for (o, q) in clauses {
            match o {
                Occur::Must => b.must.push(q),
                Occur::Should => b.should.push(q),
                Occur::MustNot => b.must_not.push(q),
            }
        }
        Ok(Query::Bool(Box::new(b)))
    }

    fn clause(&mut self, fields: &[String]) -> Result<Query, QueryError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.bad(&format!(
                "groups nested more than {MAX_NESTING} levels deep"
            )));
        }
        let q = self.clause_at_depth(fields);
        self.depth -= 1;
        q
    }

    fn clause_at_depth(&mut self, fields: &[String]) -> Result<Query, QueryError> {
        match self.next() {
            Some(Tok::Open) => {
                let q = self.query(fields)?;
                match self.next() {
                    Some(Tok::Close) => Ok(q),
                    _ => Err(self.bad("missing `)`")),
                }
            }
            Some(Tok::Field(f)) if f == "_exists_" => match self.next() {
                Some(Tok::Term(field, false)) => Ok(Query::Exists {
                    fields: vec![field],
                }),
                _ => Err(self.bad("_exists_ needs a field name")),
            },
            Some(Tok::Field(f)) => {
                let fields = vec![f];
                self.clause(&fields)
            }
            Some(Tok::Phrase(p)) => Ok(Query::MatchPhrase {
                fields: fields.to_vec(),
                text: p,
            }),
            Some(Tok::Range(lo, hi, incl_lo, incl_hi)) => {
                let v = |s: String| (s != "*").then_some(Scalar::Str(s));
                let mut bounds = RangeBounds::default();
                if incl_lo {
                    bounds.gte = v(lo)
                } else {
                    bounds.gt = v(lo)
                }
                if incl_hi {
                    bounds.lte = v(hi)
                } else {
                    bounds.lt = v(hi)
                }
                Ok(Query::Range {
                    fields: fields.to_vec(),
                    bounds,
                })
            }
            Some(Tok::Cmp(op, v)) => {
                let mut bounds = RangeBounds::default();
                let v = Some(Scalar::Str(v));
                match op {
                    ">" => bounds.gt = v,
                    ">=" => bounds.gte = v,
                    "<" => bounds.lt = v,
                    _ => bounds.lte = v,
                }
                Ok(Query::Range {
                    fields: fields.to_vec(),
                    bounds,
                })
            }
            Some(Tok::Term(t, true)) if t == "*" => {
                if fields.iter().all(|f| f == "*") {
                    Ok(Query::MatchAll)
                } else {
                    Ok(Query::Exists {
                        fields: fields.to_vec(),
                    })
                }
            }
            Some(Tok::Term(t, true)) => {
                // `abc*` is a prefix (the last character may be any, of any width).
                if let Some(body) = t.strip_suffix('*').filter(|b| !b.contains(['*', '?'])) {
                    Ok(Query::Prefix {
                        fields: fields.to_vec(),
                        value: body.to_string(),
                    })
                } else {
                    Ok(Query::Wildcard {
                        fields: fields.to_vec(),
                        pattern: t,
                    })
                }
            }
            Some(Tok::Term(t, false)) => Ok(Query::Match {
                fields: fields.to_vec(),
                text: t,
                operator: Operator::Or,
                minimum_should_match: None,
            }),
            Some(other) => Err(self.bad(&format!("unexpected {other:?}"))),
            None => Err(self.bad("unexpected end of query")),
        }
    }
}

/// Parses the parameters of a `query_string` clause.
pub fn parse(params: &Map<String, Value>) -> Result<Query, QueryError> {
    const ALLOWED: &[&str] = &[
        "query",
        "default_field",
        "fields",
        "default_operator",
        "analyze_wildcard",
        "lenient",
        "boost",
        "allow_leading_wildcard",
        "analyzer",
        "_name",
    ];
    for k in params.keys() {
        if !ALLOWED.contains(&k.as_str()) {
            return Err(QueryError(format!(
                "[query_string] query does not support [{k}]"
            )));
        }
    }
    let Some(Value::String(source)) = params.get("query") else {
        return Err(QueryError(
            "[query_string] requires a string [query]".into(),
        ));
    };
    let default_fields = match (params.get("fields"), params.get("default_field")) {
        (Some(Value::Array(fs)), _) => fs
            .iter()
            .map(|f| {
                f.as_str()
                    .map(|s| s.split('^').next().unwrap_or(s).to_string())
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| QueryError("[query_string] [fields] must hold strings".into()))?,
        (_, Some(Value::String(f))) => vec![f.clone()],
        _ => vec!["*".to_string()],
    };
    let default_op = match params.get("default_operator").and_then(Value::as_str) {
        None => Operator::Or,
        Some(s) if s.eq_ignore_ascii_case("or") => Operator::Or,
        Some(s) if s.eq_ignore_ascii_case("and") => Operator::And,
        Some(s) => {
            return Err(QueryError(format!(
                "[query_string] default_operator must be AND or OR, got {s}"
            )));
        }
    };
    let mut p = Parser {
        toks: lex(source)?,
        pos: 0,
        depth: 0,
        default_fields: default_fields.clone(),
        default_op,
        source: source.clone(),
    };
    let fields = p.default_fields.clone();
    let q = p.query(&fields)?;
    if p.pos < p.toks.len() {
        return Err(p.bad("unbalanced `)`"));
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn qs(s: &str) -> Query {
        let Value::Object(m) = json!({"query": s, "default_field": "f"}) else {
            unreachable!()
        };
        parse(&m).unwrap()
    }

    #[test]
    fn operators_combine_like_lucene() {
        let Query::Bool(b) = qs("a AND b OR c") else {
            panic!()
        };
        assert_eq!((b.must.len(), b.should.len()), (2, 1));
        let Query::Bool(b) = qs("+a -b c") else {
            panic!()
        };
        assert_eq!((b.must.len(), b.must_not.len(), b.should.len()), (1, 1, 1));
        let Query::Bool(b) = qs("NOT a") else {
            panic!()
        };
        assert_eq!(b.must_not.len(), 1);
        assert!(matches!(qs("x:(a b)"), Query::Bool(_)));
        assert!(matches!(qs("x:\"a b\""), Query::MatchPhrase { .. }));
        assert!(matches!(qs("x:ab*"), Query::Prefix { .. }));
        assert!(matches!(qs("x:a?b"), Query::Wildcard { .. }));
        // A pattern ending in a wide character (it used to be cut inside it).
        assert!(matches!(qs("x:a?é"), Query::Wildcard { .. }));
        assert!(matches!(qs("x:é*"), Query::Prefix { .. }));
        assert!(matches!(qs("x:[1 TO 5}"), Query::Range { .. }));
        assert!(matches!(qs("x:>=5"), Query::Range { .. }));
        assert!(matches!(qs("_exists_:x"), Query::Exists { .. }));
        assert_eq!(qs("*:*"), Query::MatchAll);
        let Query::Match { fields, .. } = qs("a") else {
            panic!()
        };
        assert_eq!(fields, ["f"]);
    }

    #[test]
    fn deep_nesting_is_refused_not_recursed_into() {
        for deep in [
            format!("{}a{}", "(".repeat(100_000), ")".repeat(100_000)),
            "f:".repeat(100_000) + "a",
        ] {
            let Value::Object(m) = json!({"query": deep}) else {
                unreachable!()
            };
            let e = parse(&m).unwrap_err();
            assert!(e.0.contains("nested more than 32"), "{}", &e.0[..80]);
        }
        let Value::Object(m) = json!({"query": "((a OR (b AND c)))"}) else {
            unreachable!()
        };
        assert!(parse(&m).is_ok());
    }

    #[test]
    fn syntax_errors_are_reported() {
        // A stray `]` or `}` used to loop for ever, growing its token list until memory ran out.
        for bad in ["(a", "a)", "\"a", "x:[1 5]", "", "a ] b", "}", "x:]"] {
            let Value::Object(m) = json!({"query": bad}) else {
                unreachable!()
            };
            assert!(parse(&m).is_err(), "{bad}");
        }
    }
}
