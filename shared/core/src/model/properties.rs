//! Properties of the identifier parsers over any text: no panic, and what parses prints back
//! to itself (up to the case of hex digits) and parses again to the same value.

use proptest::prelude::*;

use super::{DssVersion, ObjectKey, ObjectUuid};
use crate::model::ids::Fqid;

/// Text that is often close to an identifier: a real one with a character changed, cut or
/// added, or anything.
fn near(real: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        (prop::sample::select(real), any::<usize>(), any::<char>()).prop_map(|(r, i, c)| {
            let mut chars: Vec<char> = r.chars().collect();
            let at = i % (chars.len() + 1);
            match i % 4 {
                0 if at < chars.len() => chars[at] = c,
                // Two characters for one, so that a two-byte one keeps the byte length.
                3 if at + 1 < chars.len() => {
                    chars.splice(at..at + 2, [c]);
                }
                1 if at < chars.len() => {
                    chars.truncate(at);
                }
                _ => chars.insert(at, c),
            }
            chars.into_iter().collect()
        }),
        prop::sample::select(real).prop_map(str::to_string),
        any::<String>(),
    ]
}

const KEYS: &[&str] = &[
    "files/ce55fd51-7833-469b-be0b-5da88ebebfcd.2017-06-16T193604.240704Z",
    "bundles/ce55fd51-7833-469b-be0b-5da88ebebfcd.2017-06-16T193604.240704Z.dead",
    "bundles/ce55fd51-7833-469b-be0b-5da88ebebfcd.dead",
    "collections/ce55fd51-7833-469b-be0b-5da88ebebfcd.2017-06-16T193604.240704Z",
    "blobs/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08.a94a8fe5ccb19ba61c4c0873d391e987982fbbd3.098f6bcd4621d373cade4e832627b4f6.c6b4e0f6",
];
const VERSIONS: &[&str] = &["2017-06-16T193604.240704Z", "2019-01-01T000000.000000Z"];
const UUIDS: &[&str] = &[
    "ce55fd51-7833-469b-be0b-5da88ebebfcd",
    "XXXXXXXX-0000-4000-8000-000000000001",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn keys_parse_and_print_back(s in near(KEYS)) {
        if let Some(k) = ObjectKey::parse(&s) {
            // Hex digits of checksums print lower-cased; everything else as given.
            prop_assert!(k.to_string().eq_ignore_ascii_case(&s), "{} from {}", k, s);
            prop_assert_eq!(ObjectKey::parse(&k.to_string()), Some(k));
        }
    }

    #[test]
    fn versions_parse_and_print_back(s in near(VERSIONS)) {
        if let Ok(v) = DssVersion::parse(&s) {
            prop_assert_eq!(DssVersion::parse(v.as_str()), Ok(v.clone()));
        }
    }

    #[test]
    fn uuids_and_fqids_parse_and_print_back(s in near(UUIDS), v in near(VERSIONS)) {
        if let Ok(u) = ObjectUuid::parse(&s) {
            prop_assert_eq!(u.as_str(), s.to_ascii_lowercase());
            prop_assert_eq!(ObjectUuid::parse(u.as_str()), Ok(u));
        }
        let fq = format!("{s}.{v}");
        if let Ok(f) = Fqid::parse(&fq) {
            prop_assert_eq!(Fqid::parse(&f.to_string()), Ok(f));
        }
    }
}
