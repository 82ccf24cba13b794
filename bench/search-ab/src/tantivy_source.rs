//! The evaluator's [`Source`] over a tantivy index holding the same keys as one of our segments:
//! one indexed bytes field `k` with every (field, kind, value) key of a document, the exists keys
//! (kind 0) included, and the document id in `id`. Postings are decoded into bitmaps on demand.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;

use anyhow::{Context, Result, bail};
use dss_search::Segment;
use dss_search::segment::format::key_prefix;
use dss_search::segment::keyed::{Keyed, KeyedField};
use dss_search::source::{Post, Source};
use roaring::RoaringBitmap;
use tantivy::schema::{BytesOptions, Field, STRING, Schema};
use tantivy::{DocSet, Index, IndexReader, InvertedIndexReader, TERMINATED, TantivyDocument};

/// The kind byte of a field's exists key (below every value kind).
const EXISTS: u8 = 0;

fn schema() -> (Schema, Field, Field) {
    let mut b = Schema::builder();
    let k = b.add_bytes_field("k", BytesOptions::default().set_indexed());
    let id = b.add_text_field("id", STRING);
    (b.build(), k, id)
}

/// Writes `seg`'s documents into a new tantivy index in `dir`, in ordinal order, `chunk`
/// documents' keys gathered at a time; returns the seconds tantivy took (adding and committing).
pub fn build(seg: &Segment, dir: &Path, chunk: u32) -> Result<f64> {
    let (schema, k, id) = schema();
    std::fs::create_dir_all(dir)?;
    let index = Index::create_in_dir(dir, schema)?;
    let mut writer = index.writer_with_num_threads::<TantivyDocument>(1, 1_000_000_000)?;
    let ords: Vec<u32> = seg.ordinals().iter().collect();
    let mut fields = HashMap::new();
    for (name, text, _) in seg.fields() {
        fields.insert(name.to_string(), text);
    }
    let mut spent = 0.0;
    for block in ords.chunks(chunk as usize) {
        let (lo, hi) = (block[0], block[block.len() - 1]);
        // Each document's keys, by inverting the segment's postings over this block.
        let mut keys: HashMap<u32, Vec<Vec<u8>>> = HashMap::new();
        let mut gather = |key: Vec<u8>, p: Post<'_>| {
            for d in p.bitmap().range(lo..=hi) {
                keys.entry(d).or_default().push(key.clone());
            }
        };
        seg.for_each_key(|key, p| gather(key.to_vec(), p));
        for (name, _, p) in seg.fields() {
            gather(key_prefix(name, EXISTS), p);
        }
        let t = std::time::Instant::now();
        for &ord in block {
            let mut doc = TantivyDocument::new();
            for key in keys.get(&ord).into_iter().flatten() {
                doc.add_bytes(k, key);
            }
            let key = seg.key(ord).context("sort key")?;
            doc.add_text(id, &key.id);
            writer.add_document(doc)?;
        }
        spent += t.elapsed().as_secs_f64();
    }
    let t = std::time::Instant::now();
    writer.commit()?;
    writer.wait_merging_threads()?;
    spent += t.elapsed().as_secs_f64();
    std::fs::write(dir.join("fields.json"), serde_json::to_vec(&fields)?)?;
    std::fs::write(
        dir.join("base"),
        ords.first().copied().unwrap_or(0).to_string(),
    )?;
    Ok(spent)
}

/// A tantivy index written by [`build`], open for the evaluator.
pub struct Tantivy {
    _reader: IndexReader,
    keys: std::sync::Arc<InvertedIndexReader>,
    ids: std::sync::Arc<InvertedIndexReader>,
    fields: HashMap<String, bool>,
    universe: RoaringBitmap,
    base: u32,
}

impl Tantivy {
    /// Opens the index in `dir` (one segment, documents in ordinal order).
    pub fn open(dir: &Path) -> Result<Self> {
        let index = Index::open_in_dir(dir)?;
        let (_, k, id) = schema();
        let reader = index.reader()?;
        let searcher = reader.searcher();
        if searcher.segment_readers().len() != 1 {
            bail!(
                "expected one segment, found {}",
                searcher.segment_readers().len()
            );
        }
        let seg = &searcher.segment_readers()[0];
        let base: u32 = std::fs::read_to_string(dir.join("base"))?.trim().parse()?;
        let fields = serde_json::from_slice(&std::fs::read(dir.join("fields.json"))?)?;
        let n = seg.num_docs();
        Ok(Self {
            keys: seg.inverted_index(k)?,
            ids: seg.inverted_index(id)?,
            fields,
            universe: (base..base + n).collect(),
            base,
            _reader: reader,
        })
    }

    fn decode(
        inv: &InvertedIndexReader,
        ti: &tantivy::postings::TermInfo,
        base: u32,
    ) -> Post<'static> {
        if ti.doc_freq == 1
            && let Ok(p) =
                inv.read_postings_from_terminfo(ti, tantivy::schema::IndexRecordOption::Basic)
        {
            return Post::One(p.doc() + base);
        }
        let mut out = RoaringBitmap::new();
        if let Ok(mut p) =
            inv.read_postings_from_terminfo(ti, tantivy::schema::IndexRecordOption::Basic)
        {
            let mut d = p.doc();
            while d != TERMINATED {
                let _ = out.try_push(d + base);
                d = p.advance();
            }
        }
        Post::Owned(out)
    }

    fn get(&self, key: &[u8]) -> Option<Post<'static>> {
        let ti = self.keys.terms().get(key).ok()??;
        Some(Self::decode(&self.keys, &ti, self.base))
    }
}

impl Source for Tantivy {
    type Field<'a> = Keyed<TField<'a>>;

    fn universe(&self) -> Cow<'_, RoaringBitmap> {
        Cow::Borrowed(&self.universe)
    }

    fn field(&self, name: &str) -> Option<Keyed<TField<'_>>> {
        let text = *self.fields.get(name)?;
        Some(Keyed(TField {
            t: self,
            name: name.to_string(),
            text,
        }))
    }

    fn field_names(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        Box::new(self.fields.keys().map(String::as_str))
    }

    fn ord_of(&self, id: &str) -> Option<u32> {
        let ti = self.ids.terms().get(id.as_bytes()).ok()??;
        match Self::decode(&self.ids, &ti, self.base) {
            Post::One(d) => Some(d),
            other => other.bitmap().min(),
        }
    }
}

/// A field of a [`Tantivy`] index.
pub struct TField<'a> {
    t: &'a Tantivy,
    name: String,
    text: bool,
}

impl<'a> KeyedField<'a> for TField<'a> {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_text(&self) -> bool {
        self.text
    }

    fn exists(&self) -> RoaringBitmap {
        self.t
            .get(&key_prefix(&self.name, EXISTS))
            .map(|p| p.bitmap())
            .unwrap_or_default()
    }

    fn get(&self, key: &[u8]) -> Option<Post<'a>> {
        self.t.get(key)
    }

    fn scan(
        &self,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        visit: &mut dyn FnMut(&[u8], Post<'a>) -> bool,
    ) {
        let terms = self.t.keys.terms();
        let mut range = terms.range();
        range = match lo {
            Bound::Included(k) => range.ge(k),
            Bound::Excluded(k) => range.gt(k),
            Bound::Unbounded => range,
        };
        range = match hi {
            Bound::Included(k) => range.le(k),
            Bound::Excluded(k) => range.lt(k),
            Bound::Unbounded => range,
        };
        let Ok(mut stream) = range.into_stream() else {
            return;
        };
        while let Some((k, ti)) = stream.next() {
            let key = k.to_vec();
            if !visit(&key, Tantivy::decode(&self.t.keys, ti, self.t.base)) {
                break;
            }
        }
    }
}
