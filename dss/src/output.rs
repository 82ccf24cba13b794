//! How operator commands print what they found: JSON lines with `--json` (for scripts), text
//! otherwise (for people).

use std::io::Write;

use serde_json::Value;

/// Writes `record` as one line: compact JSON with `json`, otherwise its fields as
/// `key=value` pairs (strings with spaces or quotes quoted, nested values as JSON, nulls left
/// out).
pub fn record(out: &mut impl Write, record: &Value, json: bool) -> std::io::Result<()> {
    if json {
        return writeln!(out, "{record}");
    }
    writeln!(out, "{}", text(record))
}

/// `record`'s fields as `key=value` pairs.
fn text(record: &Value) -> String {
    let Value::Object(fields) = record else {
        return record.to_string();
    };
    fields
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| format!("{k}={}", value(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One value of a `key=value` pair.
fn value(v: &Value) -> String {
    match v {
        Value::String(s) if s.is_empty() || s.contains([' ', '"', '=', '\n', '\t']) => {
            Value::String(s.clone()).to_string()
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(v: &Value, json: bool) -> String {
        let mut out = Vec::new();
        record(&mut out, v, json).expect("write");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn records_print_as_pairs_or_as_json() {
        let v = json!({"queue": "index", "receives": 5, "reason": "bad body: no key",
            "gone": null, "body": {"key": "x"}, "empty": ""});
        assert_eq!(
            line(&v, false),
            "queue=index receives=5 reason=\"bad body: no key\" body={\"key\":\"x\"} empty=\"\"\n"
        );
        let back: Value = serde_json::from_str(&line(&v, true)).expect("JSON");
        assert_eq!(back, v);
    }
}
