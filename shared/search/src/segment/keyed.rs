//! Fields stored as one ordered key space — the keys of [`super::format`] — as the evaluator reads
//! them. A store of such keys (a segment; tantivy in the A/B) provides a lookup and an ordered
//! scan of full keys ([`KeyedField`]); [`Keyed`] turns that into a [`FieldSource`], building the
//! keys of terms, pairs, numbers and dates and the bounds of range scans in one place.

use std::ops::Bound;

use roaring::RoaringBitmap;

use super::format::{DATE, NUMBER, PAIR, TERM, date_bytes, key, key_prefix};
use crate::dates::Millis;
use crate::source::{FieldSource, Post};

/// One field of a store of full keys.
pub trait KeyedField<'a> {
    /// The field's path.
    fn name(&self) -> &str;
    /// Whether it is an analysed (`.text`) field.
    fn is_text(&self) -> bool;
    /// Documents with a value in it.
    fn exists(&self) -> RoaringBitmap;
    /// The documents of a full key.
    fn get(&self, key: &[u8]) -> Option<Post<'a>>;
    /// Full keys within bounds, in order, until `visit` answers `false`.
    fn scan(
        &self,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        visit: &mut dyn FnMut(&[u8], Post<'a>) -> bool,
    );
}

/// A [`KeyedField`] as a [`FieldSource`].
pub struct Keyed<F>(pub F);

impl<'a, F: KeyedField<'a>> Keyed<F> {
    fn get(&self, kind: u8, value: &[u8]) -> Option<Post<'a>> {
        self.0.get(&key(self.0.name(), kind, value))
    }

    /// Visits the values of `kind` within bounds (on the value bytes) in order.
    fn values(
        &self,
        kind: u8,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        visit: &mut dyn FnMut(&[u8], Post<'a>) -> bool,
    ) {
        let prefix = key_prefix(self.0.name(), kind);
        let full = |v: &[u8]| key(self.0.name(), kind, v);
        // Unbounded ends are the ends of this field's keys of this kind.
        let lo_key = match lo {
            Bound::Included(v) | Bound::Excluded(v) => full(v),
            Bound::Unbounded => prefix.clone(),
        };
        let hi_key = match hi {
            Bound::Included(v) | Bound::Excluded(v) => full(v),
            Bound::Unbounded => key_prefix(self.0.name(), kind + 1),
        };
        let lo = match lo {
            Bound::Excluded(_) => Bound::Excluded(&lo_key[..]),
            _ => Bound::Included(&lo_key[..]),
        };
        let hi = match hi {
            Bound::Included(_) => Bound::Included(&hi_key[..]),
            _ => Bound::Excluded(&hi_key[..]),
        };
        self.0
            .scan(lo, hi, &mut |k, p| match k.get(prefix.len()..) {
                Some(value) => visit(value, p),
                None => true,
            });
    }

    fn fixed(
        &self,
        kind: u8,
        lo: Bound<[u8; 8]>,
        hi: Bound<[u8; 8]>,
        visit: &mut dyn FnMut(Post<'a>) -> bool,
    ) {
        let (lo, hi) = (lo.as_ref().map(|a| &a[..]), hi.as_ref().map(|a| &a[..]));
        self.values(kind, lo, hi, &mut |_, p| visit(p));
    }
}

impl<'a, F: KeyedField<'a>> FieldSource<'a> for Keyed<F> {
    fn is_text(&self) -> bool {
        self.0.is_text()
    }

    fn exists(&self) -> RoaringBitmap {
        self.0.exists()
    }

    fn term(&self, term: &str) -> Option<Post<'a>> {
        self.get(TERM, term.as_bytes())
    }

    fn pair(&self, key: &str) -> Option<Post<'a>> {
        self.get(PAIR, key.as_bytes())
    }

    fn terms_in(
        &self,
        lo: Bound<&str>,
        hi: Bound<&str>,
        visit: &mut dyn FnMut(&str, Post<'a>) -> bool,
    ) {
        let (lo, hi) = (lo.map(str::as_bytes), hi.map(str::as_bytes));
        self.values(TERM, lo, hi, &mut |v, p| match std::str::from_utf8(v) {
            Ok(t) => visit(t, p),
            Err(_) => true,
        });
    }

    fn number(&self, key: u64) -> Option<Post<'a>> {
        self.get(NUMBER, &key.to_be_bytes())
    }

    fn numbers_in(&self, lo: Bound<u64>, hi: Bound<u64>, visit: &mut dyn FnMut(Post<'a>) -> bool) {
        self.fixed(
            NUMBER,
            lo.map(u64::to_be_bytes),
            hi.map(u64::to_be_bytes),
            visit,
        );
    }

    fn date(&self, ms: Millis) -> Option<Post<'a>> {
        self.get(DATE, &date_bytes(ms))
    }

    fn dates_in(
        &self,
        lo: Bound<Millis>,
        hi: Bound<Millis>,
        visit: &mut dyn FnMut(Post<'a>) -> bool,
    ) {
        self.fixed(DATE, lo.map(date_bytes), hi.map(date_bytes), visit);
    }
}
