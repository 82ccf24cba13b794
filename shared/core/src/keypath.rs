//! Safe mapping from object keys to relative file paths.
//!
//! Each `/`-separated component is percent-encoded with a strict allow-list (`A–Z a–z 0–9 - _ .`,
//! and `.` never first), so no component can be `.`, `..`, hidden, or contain a separator; data
//! files get a trailing `=` (which encoding never produces), so the key `a` and the key `a/b` can
//! both exist. Keys are refused when empty, longer than 1024 bytes, absolute, holding control
//! characters, or holding empty components other than a trailing one.

use std::fmt::Write;
use std::path::PathBuf;

/// Why a key cannot be stored.
pub fn validate(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("empty key");
    }
    if key.len() > 1024 {
        return Err("key longer than 1024 bytes");
    }
    if key.starts_with('/') {
        return Err("absolute key");
    }
    if key.chars().any(char::is_control) {
        return Err("control character in key");
    }
    let comps: Vec<&str> = key.split('/').collect();
    if comps[..comps.len() - 1].iter().any(|c| c.is_empty()) {
        return Err("empty path component in key");
    }
    if comps.iter().any(|c| *c == "." || *c == "..") {
        return Err("'.' or '..' path component in key");
    }
    Ok(())
}

fn encode_component(out: &mut String, comp: &str) {
    for (i, b) in comp.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if plain {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// The relative path of the data file of `key`.
pub fn to_path(key: &str) -> Result<PathBuf, &'static str> {
    validate(key)?;
    let mut path = PathBuf::new();
    let comps: Vec<&str> = key.split('/').collect();
    let last = comps.len() - 1;
    for (i, comp) in comps.iter().enumerate() {
        let mut s = String::with_capacity(comp.len() + 1);
        encode_component(&mut s, comp);
        if i == last {
            s.push('=');
        }
        path.push(s);
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_confined_and_distinct() {
        assert_eq!(
            to_path("files/abc.2017").unwrap(),
            PathBuf::from("files/abc.2017=")
        );
        assert_eq!(to_path("a").unwrap(), PathBuf::from("a="));
        assert_eq!(to_path("a/b").unwrap(), PathBuf::from("a/b="));
        assert_eq!(
            to_path("bundles/x/path.json2/").unwrap(),
            PathBuf::from("bundles/x/path.json2/=")
        );
        assert_eq!(
            to_path(".hidden/~x y").unwrap(),
            PathBuf::from("%2Ehidden/%7Ex%20y=")
        );
        assert_eq!(to_path("a/...").unwrap(), PathBuf::from("a/%2E..="));
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a/./b",
            "a//b",
            "a\nb",
            "..",
            ".",
        ] {
            assert!(to_path(bad).is_err(), "{bad:?}");
        }
        assert!(to_path(&"k".repeat(1025)).is_err());
        for p in [to_path("a%2F..").unwrap(), to_path("a\\..\\b").unwrap()] {
            assert_eq!(p.components().count(), 1, "{p:?}");
        }
    }
}
