//! Range bounds with date math: a date or not one, never a panic.
#![no_main]

use dss_search::dates::{Rounding, detect, parse_bound};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    let _ = detect(s);
    for r in [Rounding::Up, Rounding::Down] {
        let _ = parse_bound(s, dss_fuzz::NOW, r);
    }
});
