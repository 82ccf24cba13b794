//! The on-disk layout of a segment: a directory of immutable files, written once and renamed
//! into place, then memory-mapped by every process that searches.
//!
//! * `terms` — every (field, kind, value) key of the segment, in byte order, mapped to its
//!   postings: a key is the field name (its NUL bytes escaped as `00 FF`), `00`, a kind byte and
//!   the value (a term's UTF-8, a pair `a\0b`, a number's order key or a date, big-endian).
//! * `post` — the postings of keys held by more than one document, as serialized roaring bitmaps;
//!   a key held by one document keeps that document in its value instead ([`one`]).
//! * `fields` — every field: its name, whether it is analysed, and the documents holding it.
//! * `docs` — per document, in ordinal order: its ordinal, an order prefix of its `uuid`, and its
//!   sort key (`uuid`, `manifest.version`, id).
//! * `ids` — document id → ordinal.
//!
//! `terms` and `ids` are sorted tables ([`super::table`]).
//! * `meta.json` — format, document count and ordinal range; written last.

use crate::dates::Millis;

/// The format written; segments of another format are not read.
pub const FORMAT: u32 = 2;

pub(crate) const TERMS: &str = "terms";
pub(crate) const POST: &str = "post";
pub(crate) const FIELDS: &str = "fields";
pub(crate) const DOCS: &str = "docs";
pub(crate) const IDS: &str = "ids";
pub(crate) const META: &str = "meta.json";

/// A keyword, or a token of a `.text` field.
pub const TERM: u8 = 1;
/// Two adjacent tokens.
pub const PAIR: u8 = 2;
/// A number (its order key).
pub const NUMBER: u8 = 3;
/// A date.
pub const DATE: u8 = 4;

/// The value of a key: its only document (`ord << 1 | 1`), or the offset of its postings in
/// `post` (`offset << 1`); small numbers, as the tables store them in few bytes.
pub(crate) fn one(ord: u32) -> u64 {
    u64::from(ord) << 1 | 1
}

/// The value of a key whose postings are at `offset` in `post`.
pub(crate) fn at(offset: u64) -> u64 {
    offset << 1
}

/// The start of every key of `field` of `kind`.
pub fn key_prefix(field: &str, kind: u8) -> Vec<u8> {
    key(field, kind, &[])
}

/// The key of `value` of `kind` in `field` (allocated once, at its size).
pub fn key(field: &str, kind: u8, value: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(field.len() + 2 + value.len());
    for &b in field.as_bytes() {
        k.push(b);
        if b == 0 {
            k.push(0xFF);
        }
    }
    k.push(0);
    k.push(kind);
    k.extend_from_slice(value);
    k
}

/// Bounds `[lo, hi)` of every key of `field`.
pub(crate) fn field_bounds(field: &str) -> (Vec<u8>, Vec<u8>) {
    (key_prefix(field, TERM), key_prefix(field, DATE + 1))
}

/// A date as bytes that order as the dates do.
pub fn date_bytes(ms: Millis) -> [u8; 8] {
    ((ms as u64) ^ (1 << 63)).to_be_bytes()
}

/// An order prefix of a `uuid`: its first 8 bytes, big-endian, zero-padded. Keys whose prefixes
/// differ compare as their prefixes do.
pub(crate) fn uuid_prefix(uuid: &str) -> u64 {
    let mut b = [0u8; 8];
    let n = uuid.len().min(8);
    b[..n].copy_from_slice(&uuid.as_bytes()[..n]);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_a_field_are_contiguous_and_ordered_by_name() {
        let a = key_prefix("a", TERM);
        let a_nul = key_prefix("a\0b", TERM);
        let ab = key_prefix("ab", TERM);
        assert!(a < a_nul && a_nul < ab);
        // No key of "a" (kind TERM, any value) sorts at or after the keys of another field.
        let mut last_a = a.clone();
        last_a.extend_from_slice(&[0xFF; 8]);
        assert!(last_a < a_nul);
        assert!(key_prefix("a", DATE) < a_nul);
    }

    #[test]
    fn dates_and_uuid_prefixes_order() {
        assert!(date_bytes(-5) < date_bytes(0) && date_bytes(0) < date_bytes(7));
        assert!(uuid_prefix("ab") < uuid_prefix("abc"));
        assert!(uuid_prefix("0fffffff-") < uuid_prefix("1"));
        assert_eq!(uuid_prefix(""), 0);
    }
}
