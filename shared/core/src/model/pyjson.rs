//! JSON text in the form Python's `json.dumps` writes by default (`", "` and `": "` separators,
//! non-ASCII escaped as `\uXXXX`), so stored documents are byte-identical to the original's.

use serde_json::Value;

/// Serialises a value as Python's `json.dumps(value)` would.
pub fn to_string(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(out, k);
                out.push_str(": ");
                write_value(out, v);
            }
            out.push('}');
        }
    }
}

fn write_str(out: &mut String, s: &str) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_python_json_dumps() {
        // Expected strings produced by CPython 3.11 `json.dumps`.
        let v = json!({"format": "0.0.1", "files": [{"name": "a\u{e9}\u{1f600}", "indexed": true, "size": 11}], "x": null});
        assert_eq!(
            to_string(&v),
            r#"{"format": "0.0.1", "files": [{"name": "a\u00e9\ud83d\ude00", "indexed": true, "size": 11}], "x": null}"#
        );
        assert_eq!(
            to_string(&json!({"details": {}, "l": []})),
            r#"{"details": {}, "l": []}"#
        );
        assert_eq!(
            to_string(&json!("tab\there\u{7f}\"")),
            r#""tab\there\u007f\"""#
        );
    }
}
