//! Segments: immutable, memory-mapped parts of an index on disk ([`format`]), written from a
//! [`crate::MemIndex`] or merged from other segments ([`write`]), read by the same evaluator.
//! A process that searches keeps only what the pages it touches hold; the operating system
//! shares and evicts them.

pub mod format;
pub mod keyed;
pub mod table;
pub mod write;

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::ops::{Bound, Range};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use memmap2::Mmap;
use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;
use serde_json::Value;

use crate::index::{SortKey, TopK};
use crate::source::{Post, Source};
use format::{field_bounds, uuid_prefix};
use keyed::{Keyed, KeyedField};
use table::Table;

pub use write::{merge, write_from_memory};

/// The bytes of one file: memory-mapped, or read when small.
#[derive(Debug)]
pub(crate) enum Bytes {
    Mapped(Mmap),
    Read(Vec<u8>),
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Read(v) => v,
        }
    }
}

impl Bytes {
    /// Lets go of the resident pages of `..upto` (a merge reads each file once, front to back:
    /// what it has read need not count in the process's memory). Pages are read again from the
    /// page cache if anything touches them later.
    pub(crate) fn release(&self, upto: usize) {
        if let Bytes::Mapped(m) = self {
            let len = upto.min(m.len());
            if len == 0 {
                return;
            }
            #[expect(
                unsafe_code,
                reason = "MADV_DONTNEED on a read-only file mapping only drops page-table entries;                           the file's contents are what any later access reads"
            )]
            // Best effort: a refused hint leaves the pages resident, nothing more.
            let _ = unsafe { m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, 0, len) };
        }
    }

    fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        if len < 64 * 1024 {
            return Ok(Bytes::Read(std::fs::read(path)?));
        }
        #[expect(
            unsafe_code,
            reason = "mapping a file: sound while nobody changes it, and segment files are never \
                      changed after they are renamed into place (only deleted)"
        )]
        let map = unsafe { Mmap::map(&file)? };
        Ok(Bytes::Mapped(map))
    }
}

fn damaged(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("damaged segment: {what}"),
    )
}

/// What `meta.json` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentMeta {
    /// Documents in the segment.
    pub documents: u64,
    /// The lowest ordinal the segment covers.
    pub first: u32,
    /// The highest ordinal the segment covers.
    pub last: u32,
}

#[derive(Debug)]
struct FieldMeta {
    text: bool,
    exists: u64,
    /// The blocks of `terms` holding the field's keys, found at its first lookup.
    blocks: OnceLock<Range<usize>>,
}

/// One segment, open for reading.
#[derive(Debug)]
pub struct Segment {
    dir: PathBuf,
    meta: SegmentMeta,
    terms: Table<Bytes>,
    ids: Table<Bytes>,
    post: Bytes,
    docs: Bytes,
    n: usize,
    fields: FxHashMap<String, FieldMeta>,
    universe: RoaringBitmap,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl Segment {
    /// Opens the segment in `dir`.
    pub fn open(dir: &Path) -> io::Result<Self> {
        let meta: Value =
            serde_json::from_slice(&std::fs::read(dir.join(format::META))?).map_err(damaged)?;
        if meta["format"].as_u64() != Some(u64::from(format::FORMAT)) {
            return Err(damaged(format!("format {}", meta["format"])));
        }
        let num = |k: &str| meta[k].as_u64().ok_or_else(|| damaged(format!("meta {k}")));
        let meta = SegmentMeta {
            documents: num("documents")?,
            first: u32::try_from(num("first")?).map_err(damaged)?,
            last: u32::try_from(num("last")?).map_err(damaged)?,
        };
        let terms =
            Table::new(Bytes::open(&dir.join(format::TERMS))?).ok_or_else(|| damaged("terms"))?;
        let ids = Table::new(Bytes::open(&dir.join(format::IDS))?).ok_or_else(|| damaged("ids"))?;
        let post = Bytes::open(&dir.join(format::POST))?;
        let docs = Bytes::open(&dir.join(format::DOCS))?;
        let n = u32_at(docs.as_ref(), 0).ok_or_else(|| damaged("docs"))? as usize;
        if n as u64 != meta.documents || docs.as_ref().len() < 4 + n * 20 + 8 {
            return Err(damaged("docs size"));
        }
        let mut fields = FxHashMap::default();
        let raw = std::fs::read(dir.join(format::FIELDS))?;
        let mut at = 0;
        while at < raw.len() {
            let len = u32_at(&raw, at).ok_or_else(|| damaged("fields"))? as usize;
            let name = raw
                .get(at + 4..at + 4 + len)
                .and_then(|b| std::str::from_utf8(b).ok())
                .ok_or_else(|| damaged("field name"))?;
            let text = *raw.get(at + 4 + len).ok_or_else(|| damaged("fields"))? == 1;
            let exists = u64_at(&raw, at + 5 + len).ok_or_else(|| damaged("fields"))?;
            let blocks = OnceLock::new();
            fields.insert(
                name.to_string(),
                FieldMeta {
                    text,
                    exists,
                    blocks,
                },
            );
            at += 13 + len;
        }
        let mut seg = Self {
            dir: dir.to_path_buf(),
            meta,
            terms,
            ids,
            post,
            docs,
            n,
            fields,
            universe: RoaringBitmap::new(),
        };
        seg.universe = RoaringBitmap::from_sorted_iter((0..n).filter_map(|i| seg.ord_at(i)))
            .map_err(|_| damaged("ordinals out of order"))?;
        Ok(seg)
    }

    /// Where the segment is.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What its `meta.json` says.
    pub fn meta(&self) -> SegmentMeta {
        self.meta
    }

    /// Its documents' ordinals.
    pub fn ordinals(&self) -> &RoaringBitmap {
        &self.universe
    }

    fn value(&self, v: u64) -> Post<'_> {
        if v & 1 == 1 {
            return Post::One((v >> 1) as u32);
        }
        Post::Serialized(
            self.post
                .as_ref()
                .get((v >> 1) as usize..)
                .unwrap_or_default(),
        )
    }

    fn ord_at(&self, i: usize) -> Option<u32> {
        u32_at(self.docs.as_ref(), 4 + i * 4)
    }

    fn prefix_at(&self, i: usize) -> Option<u64> {
        u64_at(self.docs.as_ref(), 4 + self.n * 4 + i * 8)
    }

    /// The sort key of the `i`-th document.
    fn key_at(&self, i: usize) -> Option<SortKey> {
        let d = self.docs.as_ref();
        let offsets = 4 + self.n * 12;
        let blob = offsets + (self.n + 1) * 8;
        let start = blob + u64_at(d, offsets + i * 8)? as usize;
        let mut at = start;
        let mut next = |none_ok: bool| -> Option<Option<String>> {
            let len = u32_at(d, at)?;
            at += 4;
            if none_ok && len == u32::MAX {
                return Some(None);
            }
            let s = std::str::from_utf8(d.get(at..at + len as usize)?).ok()?;
            at += len as usize;
            Some(Some(s.to_string()))
        };
        Some(SortKey {
            uuid: next(false)??,
            version: next(true)?,
            id: next(false)??,
        })
    }

    /// The position of ordinal `ord` in the document table, searching from `from` on (ordinals
    /// are visited in increasing order, so each search gallops from the last position).
    fn position(&self, ord: u32, from: usize) -> Option<usize> {
        let at = |i: usize| self.ord_at(i).unwrap_or(u32::MAX);
        let (mut lo, mut step) = (from, 1);
        while lo + step < self.n && at(lo + step) <= ord {
            lo += step;
            step *= 2;
        }
        // The first position at or after `lo` whose ordinal is not below `ord`.
        let (mut a, mut b) = (lo, (lo + step + 1).min(self.n));
        while a < b {
            let m = a + (b - a) / 2;
            if at(m) < ord {
                a = m + 1;
            } else {
                b = m;
            }
        }
        (a < self.n && at(a) == ord).then_some(a)
    }

    /// The sort key of ordinal `ord`.
    pub fn key(&self, ord: u32) -> Option<SortKey> {
        self.key_at(self.position(ord, 0)?)
    }

    /// Offers the keys of `hits` held by this segment to `top`; full keys are read only for
    /// documents whose `uuid` prefix could enter it.
    pub fn offer(&self, hits: &RoaringBitmap, top: &mut TopK<'_>) {
        let after = top.after().map(|a| uuid_prefix(&a.uuid));
        let mut worst = top.threshold().map(|k| uuid_prefix(&k.uuid));
        let mut from = 0;
        for ord in hits {
            let Some(i) = self.position(ord, from) else {
                continue;
            };
            from = i;
            let Some(p) = self.prefix_at(i) else { continue };
            // Keys sort by uuid descending: a larger prefix comes first.
            if after.is_some_and(|a| p > a) || worst.is_some_and(|w| p < w) {
                continue;
            }
            if let Some(k) = self.key_at(i) {
                top.offer(k, ord);
                worst = top.threshold().map(|k| uuid_prefix(&k.uuid));
            }
        }
    }

    /// Every key of the segment with its documents, in key order (for tools that inspect or
    /// convert segments; keys as [`format`] describes).
    pub fn for_each_key(&self, mut f: impl FnMut(&[u8], Post<'_>)) {
        let mut c = self.terms.cursor();
        while let Some((k, v)) = c.next() {
            f(k, self.value(v));
        }
    }

    /// Every field: its name, whether it is analysed, and the documents holding it.
    pub fn fields(&self) -> impl Iterator<Item = (&str, bool, Post<'_>)> {
        self.fields
            .iter()
            .map(|(n, m)| (n.as_str(), m.text, self.value(m.exists)))
    }

    /// The ordinals of the documents, in order.
    fn ords(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.n).filter_map(|i| self.ord_at(i))
    }
}

impl Source for Segment {
    type Field<'a> = Keyed<SegField<'a>>;

    fn universe(&self) -> Cow<'_, RoaringBitmap> {
        Cow::Borrowed(&self.universe)
    }

    fn field(&self, name: &str) -> Option<Keyed<SegField<'_>>> {
        let (name, meta) = self.fields.get_key_value(name)?;
        Some(Keyed(SegField {
            seg: self,
            name,
            meta,
        }))
    }

    fn field_names(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        Box::new(self.fields.keys().map(String::as_str))
    }

    fn ord_of(&self, id: &str) -> Option<u32> {
        self.ids.get(id.as_bytes()).map(|v| v as u32)
    }
}

/// A field of a [`Segment`].
pub struct SegField<'a> {
    seg: &'a Segment,
    name: &'a str,
    meta: &'a FieldMeta,
}

impl<'a> KeyedField<'a> for SegField<'a> {
    fn name(&self) -> &str {
        self.name
    }

    fn is_text(&self) -> bool {
        self.meta.text
    }

    fn exists(&self) -> RoaringBitmap {
        self.seg.value(self.meta.exists).bitmap()
    }

    fn get(&self, key: &[u8]) -> Option<Post<'a>> {
        let seg = self.seg;
        seg.terms.get_in(key, self.blocks()).map(|v| seg.value(v))
    }

    fn scan(
        &self,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        visit: &mut dyn FnMut(&[u8], Post<'a>) -> bool,
    ) {
        let seg = self.seg;
        seg.terms
            .range(lo, hi, self.blocks(), &mut |k, v| visit(k, seg.value(v)));
    }
}

impl SegField<'_> {
    fn blocks(&self) -> &Range<usize> {
        self.meta.blocks.get_or_init(|| {
            let (lo, hi) = field_bounds(self.name);
            self.seg.terms.blocks_between(&lo, &hi)
        })
    }
}

#[cfg(test)]
mod tests;
