//! What the evaluator reads: one part of an index, in memory ([`crate::MemIndex`]) or a segment
//! on disk ([`crate::segment::Segment`]). Documents are numbered by ordinals that every part of
//! one index shares, so the answers of its parts combine by set union.

use std::borrow::Cow;
use std::ops::Bound;

use roaring::{MultiOps, RoaringBitmap};

use crate::dates::Millis;

/// The documents of one term as stored.
#[derive(Debug, Clone)]
pub enum Post<'a> {
    /// A single document (most terms: identifiers, checksums).
    One(u32),
    /// A bitmap in memory.
    Bitmap(&'a RoaringBitmap),
    /// A serialized bitmap (in a memory-mapped segment).
    Serialized(&'a [u8]),
    /// Decoded on demand (sources whose postings are in another form).
    Owned(RoaringBitmap),
}

impl Post<'_> {
    /// Adds the documents to `out`.
    pub fn or_into(&self, out: &mut RoaringBitmap) {
        match self {
            Post::One(d) => {
                out.insert(*d);
            }
            Post::Bitmap(b) => *out |= *b,
            Post::Serialized(bytes) => *out |= decode(bytes),
            Post::Owned(b) => *out |= b,
        }
    }

    /// The documents as a bitmap.
    pub fn bitmap(&self) -> RoaringBitmap {
        match self {
            Post::One(d) => RoaringBitmap::from_iter([*d]),
            Post::Bitmap(b) => (*b).clone(),
            Post::Serialized(bytes) => decode(bytes),
            Post::Owned(b) => b.clone(),
        }
    }
}

/// Many postings united at once: one pass over each container of the result, where adding them
/// one by one copies a growing array container for every posting (a range over many distinct
/// dates or numbers).
#[derive(Default)]
pub struct Union<'a> {
    borrowed: Vec<&'a RoaringBitmap>,
    owned: Vec<RoaringBitmap>,
    singles: Vec<u32>,
}

impl<'a> Union<'a> {
    /// Adds the documents of one posting.
    pub fn add(&mut self, p: Post<'a>) {
        match p {
            Post::One(d) => self.singles.push(d),
            Post::Bitmap(b) => self.borrowed.push(b),
            Post::Serialized(bytes) => self.owned.push(decode(bytes)),
            Post::Owned(b) => self.owned.push(b),
        }
    }

    /// The union of everything added.
    pub fn finish(mut self) -> RoaringBitmap {
        let mut out = self.owned.union();
        if !self.borrowed.is_empty() {
            out |= self.borrowed.union();
        }
        self.singles.sort_unstable();
        out.extend(self.singles);
        out
    }
}

/// A serialized bitmap; empty if the bytes are not one (a damaged segment answers nothing
/// rather than failing every query).
fn decode(bytes: &[u8]) -> RoaringBitmap {
    RoaringBitmap::deserialize_unchecked_from(bytes).unwrap_or_default()
}

/// One part of an index.
pub trait Source {
    /// A field of this part.
    type Field<'a>: FieldSource<'a>
    where
        Self: 'a;

    /// Every document of this part (before the index's own liveness is applied).
    fn universe(&self) -> Cow<'_, RoaringBitmap>;

    /// A field by its full path (`a.b`, `a.b.text`).
    fn field(&self, name: &str) -> Option<Self::Field<'_>>;

    /// Every field name, in no particular order.
    fn field_names(&self) -> Box<dyn Iterator<Item = &str> + '_>;

    /// The ordinal of the document with this id, if this part holds it.
    fn ord_of(&self, id: &str) -> Option<u32>;
}

/// The dictionaries of one field.
pub trait FieldSource<'a> {
    /// Whether it is an analysed (`.text`) field.
    fn is_text(&self) -> bool;
    /// Documents with a value in it.
    fn exists(&self) -> RoaringBitmap;
    /// A keyword (lower-cased) or, for `.text` fields, a token.
    fn term(&self, term: &str) -> Option<Post<'a>>;
    /// Two adjacent tokens of a `.text` field (`a\0b`).
    fn pair(&self, key: &str) -> Option<Post<'a>>;
    /// Terms within bounds, in order, until `visit` answers `false`.
    fn terms_in(
        &self,
        lo: Bound<&str>,
        hi: Bound<&str>,
        visit: &mut dyn FnMut(&str, Post<'a>) -> bool,
    );
    /// A number, by its order key.
    fn number(&self, key: u64) -> Option<Post<'a>>;
    /// Numbers within bounds (order keys), in order, until `visit` answers `false`.
    fn numbers_in(&self, lo: Bound<u64>, hi: Bound<u64>, visit: &mut dyn FnMut(Post<'a>) -> bool);
    /// A date.
    fn date(&self, ms: Millis) -> Option<Post<'a>>;
    /// Dates within bounds, in order, until `visit` answers `false`.
    fn dates_in(
        &self,
        lo: Bound<Millis>,
        hi: Bound<Millis>,
        visit: &mut dyn FnMut(Post<'a>) -> bool,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_union_of_every_kind_of_posting_is_their_set_union() {
        let borrowed = RoaringBitmap::from_iter([1, 70_000, 200_000]);
        let owned = RoaringBitmap::from_iter(0..5_000);
        let mut bytes = Vec::new();
        RoaringBitmap::from_iter([3, 65_536, 9_999_999])
            .serialize_into(&mut bytes)
            .expect("serialize");
        let mut u = Union::default();
        for p in [
            Post::One(42),
            Post::One(7),
            Post::Bitmap(&borrowed),
            Post::Serialized(&bytes),
            Post::Owned(owned.clone()),
            Post::One(4_000_000),
        ] {
            u.add(p);
        }
        let mut expected = owned;
        expected.extend([42, 7, 1, 70_000, 200_000, 3, 65_536, 9_999_999, 4_000_000]);
        assert_eq!(u.finish(), expected);
        assert!(Union::default().finish().is_empty());
    }
}
