//! `Range` headers of signed downloads: parsed safely, and what resolves lies in the object.
#![no_main]

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, &[u8])| {
    let (size, raw) = (u64::from(input.0), input.1);
    let Ok(v) = HeaderValue::from_bytes(raw) else {
        return;
    };
    let mut h = HeaderMap::new();
    h.insert(header::RANGE, v);
    if let Ok(Some(r)) = dss_api::blob_route::parse_range(&h, size)
        && let Some((start, len)) = r.resolve(size)
    {
        assert!(len > 0 && start + len <= size);
    }
});
