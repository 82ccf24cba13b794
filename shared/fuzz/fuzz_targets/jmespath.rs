//! JMESPath filters and attachments: compiled under the default limits, and what compiles is
//! evaluated on a document (within its bound by construction).
#![no_main]

use dss_search::jmespath_limits::{JmespathLimits, compile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    let Ok(e) = compile(s, &JmespathLimits::default()) else {
        return;
    };
    let doc = r#"{"event_type": "CREATE", "files": {"donor": [{"age": 38, "name": "x"}, {"age": 2}]},
        "a": [1, 2, [3, 4]], "b": {"c": "d"}}"#;
    if let Ok(data) = jmespath::Variable::from_json(doc) {
        let _ = e.search(data);
    }
});
