//! What a receiver gets: the payload of each kind of subscription, attachments (named JMESPath
//! expressions with per-attachment errors and the 128 KiB limit) and Python truthiness, which
//! decides whether a JMESPath filter matched.

use dss_core::model::pyjson;
use dss_core::ports::{Subscription, SubscriptionKind};
use dss_search::jmespath_limits::{self, JmespathLimits};
use jmespath::{Expression, Rcvar, Variable};
use serde_json::{Map, Value, json};

use crate::documents::Target;

/// Attachments larger than this (as Python's `json.dumps` writes them) are replaced by an error.
pub const MAX_ATTACHMENTS_BYTES: usize = 131_072;

/// The payload field set afresh on every attempt of a JMESPath subscription's delivery.
pub const EVENT_TIMESTAMP: &str = "event_timestamp";

/// Whether a JMESPath result counts as a match: Python's truthiness, so `false`, `null`, `0`,
/// `""`, `[]` and `{}` do not.
pub fn truthy(v: &Variable) -> bool {
    match v {
        Variable::Null => false,
        Variable::Bool(b) => *b,
        Variable::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Variable::String(s) => !s.is_empty(),
        Variable::Array(a) => !a.is_empty(),
        Variable::Object(o) => !o.is_empty(),
        Variable::Expref(_) => true,
    }
}

/// `doc` as a JMESPath value, converted once per event.
pub fn variable(doc: &Value) -> Rcvar {
    Rcvar::new(Variable::try_from(doc).unwrap_or(Variable::Null))
}

/// Evaluates `expr` on `data` without converting `data` again (`Expression::search` would
/// serialise it anew for every expression).
pub fn search(expr: &Expression<'static>, data: &Rcvar) -> jmespath::SearchResult {
    let mut ctx = jmespath::Context::new(expr.as_str(), &jmespath::DEFAULT_RUNTIME);
    jmespath::interpret(data, expr.as_ast(), &mut ctx)
}

/// A subscription's compiled attachments, in the order given.
pub type Attachments = Vec<(String, Result<Expression<'static>, String>)>;

/// Compiles a subscription's `attachments` property under `limits` (an expression over them
/// yields an error in `_errors`); `None` when it has none.
pub fn compile_attachments(doc: &Value, limits: &JmespathLimits) -> Option<Attachments> {
    let defs = doc.get("attachments")?.as_object()?;
    Some(
        defs.iter()
            .map(|(name, def)| {
                let expr = def
                    .get("expression")
                    .and_then(Value::as_str)
                    .ok_or_else(|| "no JMESPath expression".to_string())
                    .and_then(|e| jmespath_limits::compile(e, limits).map_err(|e| e.to_string()));
                (name.clone(), expr)
            })
            .collect(),
    )
}

/// The attachments object for `doc`: each name's result; failures under `_errors`; replaced by
/// `{"_errors": "Attachments too large (N > 131072)"}` when too large.
pub fn attachments(defs: &Attachments, doc: &Rcvar) -> Value {
    let mut out = Map::new();
    let mut errors = Map::new();
    for (name, expr) in defs {
        let result = match expr {
            Ok(e) => search(e, doc).map_err(|e| e.to_string()),
            Err(e) => Err(e.clone()),
        };
        match result.and_then(|v| serde_json::to_value(&*v).map_err(|e| e.to_string())) {
            Ok(v) => {
                out.insert(name.clone(), v);
            }
            Err(e) => {
                errors.insert(name.clone(), Value::String(e));
            }
        }
    }
    if !errors.is_empty() {
        out.insert("_errors".into(), Value::Object(errors));
    }
    let out = Value::Object(out);
    let size = pyjson::to_string(&out).len();
    if size > MAX_ATTACHMENTS_BYTES {
        return json!({
            "_errors": format!("Attachments too large ({size} > {MAX_ATTACHMENTS_BYTES})")
        });
    }
    out
}

/// The payload of one delivery. `transaction_id` is the delivery's id; a JMESPath
/// subscription's `event_timestamp` is filled in at each attempt.
pub fn payload(
    sub: &Subscription,
    delivery_id: &str,
    target: &Target,
    public_url: &str,
    attachments: Option<Value>,
) -> Value {
    let matched = json!({
        "bundle_uuid": target.bundle_uuid,
        "bundle_version": target.bundle_version,
    });
    let mut p = Map::new();
    match sub.kind {
        SubscriptionKind::Elasticsearch => {
            p.insert("transaction_id".into(), delivery_id.into());
            p.insert("subscription_id".into(), sub.uuid.clone().into());
            p.insert(
                "es_query".into(),
                sub.document.get("es_query").cloned().unwrap_or(Value::Null),
            );
            p.insert("match".into(), matched);
        }
        SubscriptionKind::Jmespath => {
            let version = target.bundle_version.as_deref().unwrap_or_default();
            p.insert(
                "bundle_url".into(),
                format!(
                    "{public_url}/v1/bundles/{}?version={version}",
                    target.bundle_uuid
                )
                .into(),
            );
            p.insert("dss_api".into(), public_url.into());
            p.insert("subscription_id".into(), sub.uuid.clone().into());
            p.insert(EVENT_TIMESTAMP.into(), Value::Null);
            p.insert("event_type".into(), target.event_type.as_str().into());
            p.insert("match".into(), matched);
            p.insert("transaction_id".into(), delivery_id.into());
            if let Some(q) = sub.document.get("jmespath_query").filter(|q| !q.is_null()) {
                p.insert("jmespath_query".into(), q.clone());
            }
        }
    }
    if let Some(a) = attachments {
        p.insert("attachments".into(), a);
    }
    Value::Object(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(v: Value) -> Rcvar {
        variable(&v)
    }

    #[test]
    fn python_truthiness() {
        for (v, t) in [
            (json!(null), false),
            (json!(false), false),
            (json!(0), false),
            (json!(0.0), false),
            (json!(""), false),
            (json!([]), false),
            (json!({}), false),
            (json!(true), true),
            (json!(2), true),
            (json!("x"), true),
            (json!([0]), true),
            (json!({"a": null}), true),
        ] {
            assert_eq!(truthy(&variable(&v)), t, "{v}");
        }
    }

    #[test]
    fn attachments_report_errors_per_name() {
        let defs = compile_attachments(
            &json!({"attachments": {
                "project": {"type": "jmespath", "expression": "files.project_json[0].title"},
                "missing": {"type": "jmespath", "expression": "nothing.here"},
                "bad": {"type": "jmespath", "expression": "abs(files)"},
            }}),
            &JmespathLimits::default(),
        )
        .expect("defined");
        let doc = var(json!({"files": {"project_json": [{"title": "Kidney"}]}}));
        let a = attachments(&defs, &doc);
        assert_eq!(a["project"], "Kidney");
        assert_eq!(a["missing"], Value::Null);
        assert!(
            a["_errors"]["bad"].as_str().is_some_and(|e| !e.is_empty()),
            "{a}"
        );
        assert!(
            compile_attachments(&json!({"callback_url": "x"}), &JmespathLimits::default())
                .is_none()
        );
    }

    #[test]
    fn attachments_over_128_kib_are_replaced_by_an_error() {
        // The original's pinned case: one 131072-character string literal named `foo`.
        let lit = "a".repeat(131_072);
        let defs = compile_attachments(
            &json!({"attachments": {
                "foo": {"type": "jmespath", "expression": format!("'{lit}'")},
            }}),
            // Longer than the default limit on expressions, which would refuse it first.
            &JmespathLimits {
                max_length: 200_000,
                ..JmespathLimits::default()
            },
        )
        .expect("defined");
        let a = attachments(&defs, &var(json!({})));
        assert_eq!(
            a,
            json!({"_errors": "Attachments too large (131083 > 131072)"})
        );
    }
}
