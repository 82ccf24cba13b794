//! How a JSON document becomes indexed fields: objects are flattened into dotted paths and
//! arrays are transparent, so a field holds every value found under its path (ES semantics:
//! a field matches when any of its values does). `null` is not indexed.

use serde_json::Value;

/// One indexed value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Leaf<'a> {
    /// A string (a keyword, an analysed text sub-field, and a date when it looks like one).
    Str(&'a str),
    /// A number.
    Num(f64),
    /// A boolean (indexed as the keywords `true` / `false`).
    Bool(bool),
}

/// Calls `f(path, leaf)` for every non-null scalar of `doc` below `prefix`, in document order.
pub fn for_each_leaf<'a>(doc: &'a Value, prefix: &str, f: &mut impl FnMut(&str, Leaf<'a>)) {
    let mut path = prefix.to_string();
    walk(doc, &mut path, f);
}

fn walk<'a>(v: &'a Value, path: &mut String, f: &mut impl FnMut(&str, Leaf<'a>)) {
    match v {
        Value::Null => {}
        Value::Bool(b) => f(path, Leaf::Bool(*b)),
        Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                f(path, Leaf::Num(x))
            }
        }
        Value::String(s) => f(path, Leaf::Str(s)),
        Value::Array(items) => items.iter().for_each(|i| walk(i, path, f)),
        Value::Object(map) => {
            for (k, child) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                walk(child, path, f);
                path.truncate(len);
            }
        }
    }
}

/// The objects found at `path` (arrays flattened), for `nested` queries.
pub fn objects_at<'a>(doc: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    collect(doc, &path.split('.').collect::<Vec<_>>(), &mut out);
    out
}

fn collect<'a>(v: &'a Value, rest: &[&str], out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| collect(i, rest, out)),
        Value::Object(map) => match rest.split_first() {
            None => out.push(v),
            Some((head, tail)) => {
                if let Some(child) = map.get(*head) {
                    collect(child, tail, out);
                }
            }
        },
        _ => {}
    }
}

/// The canonical keyword form of a number (`5` for 5.0, shortest round-trip otherwise).
pub fn number_keyword(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e16 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arrays_are_transparent_and_nulls_skipped() {
        let doc = json!({"a": [{"b": 1}, {"b": [2, null]}], "c": {"d": "x", "e": null}, "f": true});
        let mut seen = Vec::new();
        for_each_leaf(&doc, "", &mut |p, l| {
            seen.push((p.to_string(), l.clone_owned()))
        });
        assert_eq!(
            seen,
            [
                ("a.b".to_string(), Owned::Num(1.0)),
                ("a.b".to_string(), Owned::Num(2.0)),
                ("c.d".to_string(), Owned::Str("x".into())),
                ("f".to_string(), Owned::Bool(true)),
            ]
        );
        assert_eq!(objects_at(&doc, "a").len(), 2);
        assert_eq!(objects_at(&doc, "c").len(), 1);
        assert!(objects_at(&doc, "f").is_empty());
        assert_eq!(number_keyword(5.0), "5");
        assert_eq!(number_keyword(2.5), "2.5");
    }

    #[derive(Debug, PartialEq)]
    enum Owned {
        Str(String),
        Num(f64),
        Bool(bool),
    }

    impl Leaf<'_> {
        fn clone_owned(&self) -> Owned {
            match self {
                Leaf::Str(s) => Owned::Str(s.to_string()),
                Leaf::Num(n) => Owned::Num(*n),
                Leaf::Bool(b) => Owned::Bool(*b),
            }
        }
    }
}
