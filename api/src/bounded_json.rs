//! JSON parsed into a generic value with a cap on how many values it may hold: a parsed
//! value takes several times its text's size, so the cap (with the body's size limit) bounds
//! the memory one request can make the API spend.

use std::cell::Cell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses `bytes` as one JSON value of at most `max_values` values (each object, array,
/// string, number, boolean, null and object key counts one).
pub fn parse(bytes: &[u8], max_values: usize) -> serde_json::Result<Value> {
    let left = Cell::new(max_values);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Counted {
        left: &left,
        max: max_values,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

#[derive(Clone, Copy)]
struct Counted<'a> {
    left: &'a Cell<usize>,
    max: usize,
}

impl Counted<'_> {
    fn take<E: serde::de::Error>(&self) -> Result<(), E> {
        match self.left.get().checked_sub(1) {
            Some(n) => {
                self.left.set(n);
                Ok(())
            }
            None => Err(E::custom(format!(
                "the body holds more than {} JSON values",
                self.max
            ))),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Counted<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Counted<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Value, E> {
        self.take()?;
        Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Value, E> {
        self.take()?;
        Ok(Value::String(s.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Value, E> {
        self.take()?;
        Ok(Value::String(s))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.take()?;
        Ok(Value::Null)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.take()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.take()?;
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            self.take::<A::Error>()?;
            let v = map.next_value_seed(self)?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_parse_as_serde_json_does_within_the_cap() {
        let text = r#"{"a": [1, -2, 3.5, "x", null, true, {"b": {}}], "c": "é\n"}"#;
        let want: Value = serde_json::from_str(text).unwrap();
        assert_eq!(parse(text.as_bytes(), 100).unwrap(), want);
        assert_eq!(parse(b" 7 ", 1).unwrap(), json!(7));
        assert!(parse(b"[1] x", 100).is_err(), "trailing characters");
        assert!(parse(b"{\"a\":", 100).is_err());
    }

    proptest::proptest! {
        /// On any bytes: the same value as serde_json within the cap, an error beyond it or on
        /// malformed text, never a panic.
        #[test]
        fn agrees_with_serde_json(text in proptest::prelude::any::<String>(), cap in 0usize..50) {
            let ours = parse(text.as_bytes(), cap);
            match serde_json::from_str::<Value>(&text) {
                Ok(v) if count(&v) <= cap => proptest::prop_assert_eq!(ours.ok(), Some(v)),
                _ => proptest::prop_assert!(ours.is_err()),
            }
        }

        #[test]
        fn generated_json_round_trips(v in json_value()) {
            let text = v.to_string();
            proptest::prop_assert_eq!(parse(text.as_bytes(), count(&v)).ok(), Some(v.clone()));
            if count(&v) > 0 {
                proptest::prop_assert!(parse(text.as_bytes(), count(&v) - 1).is_err());
            }
        }
    }

    /// Values as the cap counts them.
    fn count(v: &Value) -> usize {
        1 + match v {
            Value::Array(a) => a.iter().map(count).sum(),
            Value::Object(m) => m.values().map(|x| 1 + count(x)).sum(),
            _ => 0,
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((any::<String>(), inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn a_body_with_more_values_than_the_cap_is_refused() {
        let many = format!("[{}0]", "0,".repeat(1000));
        let e = parse(many.as_bytes(), 500).unwrap_err();
        assert!(e.to_string().contains("more than 500 JSON values"), "{e}");
        assert!(parse(many.as_bytes(), 1002).is_ok());
        // Keys count too.
        assert!(parse(br#"{"a": 1, "b": 2}"#, 4).is_err());
        assert!(parse(br#"{"a": 1, "b": 2}"#, 5).is_ok());
    }
}
