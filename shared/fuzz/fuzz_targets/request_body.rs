//! JSON request bodies: the counted parser agrees with serde_json within its cap, and a parsed
//! search body goes through the query parser and the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ours = dss_api::bounded_json::parse(data, 1_000);
    match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(v) => {
            if let Ok(o) = &ours {
                assert_eq!(o, &v);
            }
            if let Some(q) = v.get("es_query")
                && let Ok(parsed) = dss_search::parse_body(q)
            {
                let _ = dss_search::limits::check(&parsed, &Default::default());
            }
        }
        Err(_) => assert!(ours.is_err()),
    }
});
