//! `query_string` text: lexed, parsed, checked, evaluated.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    let body = serde_json::json!({"query": {"query_string": {"query": s}}});
    let Ok(q) = dss_search::parse_body(&body) else {
        return;
    };
    if dss_search::limits::check(&q, &Default::default()).is_ok() {
        dss_fuzz::evaluate(&q);
    }
});
