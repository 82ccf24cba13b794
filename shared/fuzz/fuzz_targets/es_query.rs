//! Search bodies as bytes: parsed, checked against the limits, evaluated.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(q) = dss_search::parse_body(&body) else {
        return;
    };
    if dss_search::limits::check(&q, &Default::default()).is_ok() {
        dss_fuzz::evaluate(&q);
    }
});
