//! Object keys, versions, uuids and fully qualified ids: what parses prints back to itself.
#![no_main]

use dss_core::model::{DssVersion, Fqid, ObjectKey, ObjectUuid};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    if let Some(k) = ObjectKey::parse(s) {
        assert_eq!(k.to_string(), s);
    }
    if let Ok(v) = DssVersion::parse(s) {
        assert_eq!(DssVersion::parse(v.as_str()), Ok(v));
    }
    if let Ok(u) = ObjectUuid::parse(s) {
        assert_eq!(u.as_str(), s.to_ascii_lowercase());
    }
    if let Ok(f) = Fqid::parse(s) {
        assert_eq!(Fqid::parse(&f.to_string()), Ok(f));
    }
});
