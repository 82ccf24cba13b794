//! Writing segments: from the documents of a [`MemIndex`], or by merging segments. Only the
//! documents in `keep` are written (replaced and removed ones are left out). The files go into a
//! temporary directory that is synced and then renamed to `dir`, so a segment is either whole or
//! absent.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use roaring::RoaringBitmap;

use super::format::{self, DATE, NUMBER, PAIR, TERM, at, date_bytes, key_prefix, one, uuid_prefix};
use super::table::{Cursor, TableWriter};
use super::{Segment, SegmentMeta};
use crate::index::{FieldIndex, MemIndex, SortKey};
use crate::source::Post;
use crate::terms::TermDict;

/// Writes the files of one segment.
struct Builder<'k> {
    tmp: std::path::PathBuf,
    keep: &'k RoaringBitmap,
    terms: TableWriter<BufWriter<File>>,
    post: BufWriter<File>,
    post_len: u64,
    fields: BufWriter<File>,
    /// The document table's columns, written as documents come (in ordinal order) and joined
    /// at the end: ordinals, uuid prefixes, offsets of the keys, the keys.
    ords: BufWriter<File>,
    prefixes: BufWriter<File>,
    offsets: BufWriter<File>,
    keys: BufWriter<File>,
    keys_len: u64,
    n: u32,
    ids: TableWriter<BufWriter<File>>,
}

impl<'k> Builder<'k> {
    fn new(dir: &Path, keep: &'k RoaringBitmap) -> io::Result<Self> {
        let tmp = dir.with_extension("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        let create = |name: &str| File::create(tmp.join(name)).map(BufWriter::new);
        Ok(Self {
            terms: TableWriter::new(create(format::TERMS)?),
            post: create(format::POST)?,
            post_len: 0,
            fields: create(format::FIELDS)?,
            ords: create("ords")?,
            prefixes: create("prefixes")?,
            offsets: create("offsets")?,
            keys: create("keys")?,
            keys_len: 0,
            n: 0,
            ids: TableWriter::new(create(format::IDS)?),
            keep,
            tmp,
        })
    }

    /// The value of a key held by `docs` (kept ones only), `None` when none is kept.
    fn encode(&mut self, mut docs: RoaringBitmap) -> io::Result<Option<u64>> {
        docs &= self.keep;
        match docs.len() {
            0 => Ok(None),
            1 => Ok(docs.min().map(one)),
            _ => {
                let offset = self.post_len;
                docs.serialize_into(&mut self.post)?;
                self.post_len += docs.serialized_size() as u64;
                Ok(Some(at(offset)))
            }
        }
    }

    fn key(&mut self, key: &[u8], docs: RoaringBitmap) -> io::Result<()> {
        if let Some(v) = self.encode(docs)? {
            self.terms.insert(key, v)?;
        }
        Ok(())
    }

    fn field(&mut self, name: &str, text: bool, exists: RoaringBitmap) -> io::Result<()> {
        let Some(v) = self.encode(exists)? else {
            return Ok(());
        };
        let len = u32::try_from(name.len()).map_err(io::Error::other)?;
        self.fields.write_all(&len.to_le_bytes())?;
        self.fields.write_all(name.as_bytes())?;
        self.fields.write_all(&[u8::from(text)])?;
        self.fields.write_all(&v.to_le_bytes())?;
        Ok(())
    }

    /// Adds a document's row to the table (documents come in ordinal order).
    fn doc(&mut self, ord: u32, key: &SortKey) -> io::Result<()> {
        if !self.keep.contains(ord) {
            return Ok(());
        }
        self.ords.write_all(&ord.to_le_bytes())?;
        self.prefixes
            .write_all(&uuid_prefix(&key.uuid).to_le_bytes())?;
        self.offsets.write_all(&self.keys_len.to_le_bytes())?;
        for s in [Some(&key.uuid), key.version.as_ref(), Some(&key.id)] {
            match s {
                Some(s) => {
                    let len = u32::try_from(s.len()).map_err(io::Error::other)?;
                    self.keys.write_all(&len.to_le_bytes())?;
                    self.keys.write_all(s.as_bytes())?;
                    self.keys_len += 4 + u64::from(len);
                }
                None => {
                    self.keys.write_all(&u32::MAX.to_le_bytes())?;
                    self.keys_len += 4;
                }
            }
        }
        self.n += 1;
        Ok(())
    }

    /// Maps a document id to its ordinal (ids come in order).
    fn id(&mut self, id: &[u8], ord: u32) -> io::Result<()> {
        self.ids.insert(id, u64::from(ord))
    }

    /// Writes the document table, syncs everything and renames the directory to `dir`.
    fn finish(mut self, dir: &Path, first: u32, last: u32) -> io::Result<Segment> {
        let n = self.n;
        self.offsets.write_all(&self.keys_len.to_le_bytes())?;
        let mut out = BufWriter::new(File::create(self.tmp.join(format::DOCS))?);
        out.write_all(&n.to_le_bytes())?;
        for (w, name) in [
            (self.ords, "ords"),
            (self.prefixes, "prefixes"),
            (self.offsets, "offsets"),
            (self.keys, "keys"),
        ] {
            drop(w.into_inner().map_err(|e| e.into_error())?);
            let path = self.tmp.join(name);
            io::copy(&mut File::open(&path)?, &mut out)?;
            std::fs::remove_file(path)?;
        }
        sync(out)?;
        sync(self.ids.finish()?)?;
        sync(self.terms.finish()?)?;
        sync(self.post)?;
        sync(self.fields)?;
        let meta = SegmentMeta {
            documents: u64::from(n),
            first,
            last,
        };
        let text = serde_json::json!({"format": format::FORMAT, "documents": meta.documents,
            "first": first, "last": last})
        .to_string();
        let mut m = File::create(self.tmp.join(format::META))?;
        m.write_all(text.as_bytes())?;
        m.sync_all()?;
        sync_dir(&self.tmp)?;
        std::fs::rename(&self.tmp, dir)?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        Segment::open(dir)
    }
}

fn sync(w: BufWriter<File>) -> io::Result<()> {
    w.into_inner().map_err(|e| e.into_error())?.sync_all()
}

/// Makes a directory's entries durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn sorted_terms(d: &TermDict) -> Vec<&str> {
    let mut t: Vec<&str> = d.terms().collect();
    t.sort_unstable();
    t
}

fn write_field(b: &mut Builder<'_>, name: &str, f: &FieldIndex) -> io::Result<()> {
    let key = |b: &mut Builder<'_>, kind: u8, value: &[u8], p: Post<'_>| {
        b.key(&format::key(name, kind, value), p.bitmap())
    };
    for t in sorted_terms(&f.terms) {
        if let Some(p) = f.terms.get(t) {
            key(b, TERM, t.as_bytes(), p.post())?;
        }
    }
    for t in sorted_terms(&f.pairs) {
        if let Some(p) = f.pairs.get(t) {
            key(b, PAIR, t.as_bytes(), p.post())?;
        }
    }
    for (n, p) in &f.numbers {
        key(b, NUMBER, &n.to_be_bytes(), p.post())?;
    }
    for (ms, p) in &f.dates {
        key(b, DATE, &date_bytes(*ms), p.post())?;
    }
    b.field(name, f.text, f.exists.clone())
}

/// Writes the documents of `mem` that are in `keep` as the segment `dir`, covering ordinals
/// `first..=last`.
pub fn write_from_memory(
    mem: &MemIndex,
    keep: &RoaringBitmap,
    dir: &Path,
    first: u32,
    last: u32,
) -> io::Result<Segment> {
    let mut b = Builder::new(dir, keep)?;
    // Fields in the order of their keys (the escaped name, which orders as the name does).
    let mut names: Vec<(&String, &FieldIndex)> = mem.fields.iter().collect();
    names.sort_by_cached_key(|(name, _)| key_prefix(name, 0));
    for (name, f) in names {
        write_field(&mut b, name, f)?;
    }
    let mut ids = Vec::new();
    for (ord, key) in mem.documents() {
        b.doc(ord, key)?;
        if keep.contains(ord) {
            ids.push((key.id.as_str(), ord));
        }
    }
    ids.sort_unstable();
    for (id, ord) in ids {
        b.id(id.as_bytes(), ord)?;
    }
    b.finish(dir, first, last)
}

/// Merges `parts` (in ordinal order, adjacent) into the segment `dir`, keeping the documents in
/// `keep`.
pub fn merge(parts: &[&Segment], keep: &RoaringBitmap, dir: &Path) -> io::Result<Segment> {
    let mut b = Builder::new(dir, keep)?;
    // Postings are stored in key order, so the parts' postings files are read front to back too.
    let mut post_seen = vec![0usize; parts.len()];
    let seen = std::cell::RefCell::new(&mut post_seen);
    union(
        parts.iter().map(|s| s.terms.cursor()).collect(),
        |key, values| {
            let mut docs = RoaringBitmap::new();
            for (i, v) in values {
                if let Some(s) = parts.get(*i) {
                    if v & 1 == 0 {
                        seen.borrow_mut()[*i] = (v >> 1) as usize;
                    }
                    s.value(*v).or_into(&mut docs);
                }
            }
            b.key(key, docs)
        },
        &mut |offsets| {
            for (i, s) in parts.iter().enumerate() {
                s.terms.bytes().release(offsets[i]);
                s.post.release(seen.borrow()[i]);
            }
        },
    )?;
    let mut names: Vec<&String> = parts.iter().flat_map(|s| s.fields.keys()).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let (mut text, mut exists) = (false, RoaringBitmap::new());
        for s in parts {
            if let Some(m) = s.fields.get(name) {
                text |= m.text;
                s.value(m.exists).or_into(&mut exists);
            }
        }
        b.field(name, text, exists)?;
    }
    for s in parts {
        for (i, ord) in s.ords().enumerate() {
            if let Some(k) = s.key_at(i) {
                b.doc(ord, &k)?;
            }
        }
        s.docs.release(usize::MAX);
    }
    // The ids of the parts in order; of an id in several parts, the kept document.
    union(
        parts.iter().map(|s| s.ids.cursor()).collect(),
        |id, values| {
            let kept = values
                .iter()
                .map(|(_, v)| *v as u32)
                .filter(|o| keep.contains(*o))
                .max();
            match kept {
                Some(ord) => b.id(id, ord),
                None => Ok(()),
            }
        },
        &mut |offsets| {
            for (i, s) in parts.iter().enumerate() {
                s.ids.bytes().release(offsets[i]);
            }
        },
    )?;
    let first = parts.iter().map(|s| s.meta.first).min().unwrap_or(0);
    let last = parts.iter().map(|s| s.meta.last).max().unwrap_or(0);
    b.finish(dir, first, last)
}

/// Keys between calls of a union's `read` (with how far each cursor has read).
const CHECKPOINT: usize = 1 << 16;

/// Visits the keys of sorted cursors in order, each with the values it has in which cursor;
/// every [`CHECKPOINT`] keys and at the end, tells `read` how far each cursor has read.
fn union(
    mut cursors: Vec<Cursor<'_>>,
    mut each: impl FnMut(&[u8], &[(usize, u64)]) -> io::Result<()>,
    read: &mut dyn FnMut(&[usize]),
) -> io::Result<()> {
    let mut visited = 0usize;
    let mut heads: Vec<Option<(Vec<u8>, u64)>> = cursors
        .iter_mut()
        .map(|c| c.next().map(|(k, v)| (k.to_vec(), v)))
        .collect();
    let mut values = Vec::with_capacity(cursors.len());
    loop {
        let Some(min) = heads.iter().flatten().map(|(k, _)| k).min().cloned() else {
            read(&vec![usize::MAX; cursors.len()]);
            return Ok(());
        };
        visited += 1;
        if visited.is_multiple_of(CHECKPOINT) {
            read(&cursors.iter().map(Cursor::offset).collect::<Vec<_>>());
        }
        values.clear();
        for (i, head) in heads.iter_mut().enumerate() {
            if head.as_ref().is_some_and(|(k, _)| *k == min) {
                if let Some((_, v)) = head.take() {
                    values.push((i, v));
                }
                *head = cursors[i].next().map(|(k, v)| (k.to_vec(), v));
            }
        }
        each(&min, &values)?;
    }
}

/// The ids a segment maps, for tests.
#[cfg(test)]
pub(crate) fn ids(seg: &Segment) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut c = seg.ids.cursor();
    while let Some((k, v)) = c.next() {
        out.push((String::from_utf8_lossy(k).into_owned(), v));
    }
    out
}
