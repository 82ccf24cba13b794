//! The in-memory inverted index: a document's flattened values go into per-field dictionaries:
//! keywords (lower-cased) and tokens of `.text` sub-fields in term dictionaries, adjacent token
//! pairs, numbers and dates in ordered value maps, plus an `exists` set per path and ancestor
//! path. Queries are answered by the evaluator ([`crate::eval`]) over it, and by the same
//! evaluator over the segments on disk ([`crate::segment`]); "does this one document match?" is
//! answered by indexing that document alone ([`SingleDoc`]).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use rustc_hash::{FxBuildHasher, FxHashMap};

/// Fields by name; looked up by `&str` without allocating.
type Fields = hashbrown::HashMap<String, FieldIndex, FxBuildHasher>;

use roaring::RoaringBitmap;
use serde_json::Value;
use time::OffsetDateTime;

use super::analyze::{self, TEXT_SUFFIX};
use super::ast::{Query, QueryError};
use super::dates::{self, Millis};
use super::eval::{evaluate, num_key, pair_indexed, pair_into};
use super::flatten::{Leaf, for_each_leaf};
use super::limits::Budget;
use super::source::{FieldSource, Post, Source};
use super::terms::{Postings, TermDict};

fn add<K: Ord>(map: &mut BTreeMap<K, Postings>, key: K, doc: u32) {
    match map.get_mut(&key) {
        Some(p) => p.add(doc),
        None => {
            map.insert(key, Postings::One(doc));
        }
    }
}

/// Drops `dead` documents from the postings of an ordered value map.
fn purge_map<K: Ord>(m: &mut BTreeMap<K, Postings>, dead: &RoaringBitmap) {
    m.retain(|_, p| p.remove_all(dead));
}

fn values_in<'a, K: Ord + Copy>(
    map: &'a BTreeMap<K, Postings>,
    lo: Bound<K>,
    hi: Bound<K>,
    visit: &mut dyn FnMut(Post<'a>) -> bool,
) {
    for p in map.range((lo, hi)).map(|(_, p)| p) {
        if !visit(p.post()) {
            break;
        }
    }
}

/// The dictionaries of one field of a [`MemIndex`].
#[derive(Debug, Default)]
pub struct FieldIndex {
    /// Keywords (lower-cased) or, for `.text` fields, tokens.
    pub(crate) terms: TermDict,
    /// For `.text` fields: adjacent token pairs (`a\0b`), which answer two-word phrases and
    /// narrow down longer ones.
    pub(crate) pairs: TermDict,
    pub(crate) numbers: BTreeMap<u64, Postings>,
    pub(crate) dates: BTreeMap<Millis, Postings>,
    pub(crate) exists: RoaringBitmap,
    pub(crate) text: bool,
}

impl<'a> FieldSource<'a> for &'a FieldIndex {
    fn is_text(&self) -> bool {
        self.text
    }
    fn exists(&self) -> RoaringBitmap {
        self.exists.clone()
    }
    fn term(&self, term: &str) -> Option<Post<'a>> {
        self.terms.get(term).map(Postings::post)
    }
    fn pair(&self, key: &str) -> Option<Post<'a>> {
        self.pairs.get(key).map(Postings::post)
    }
    fn terms_in(
        &self,
        lo: Bound<&str>,
        hi: Bound<&str>,
        visit: &mut dyn FnMut(&str, Post<'a>) -> bool,
    ) {
        for (t, p) in self.terms.range(lo, hi) {
            if !visit(t, p.post()) {
                break;
            }
        }
    }
    fn number(&self, key: u64) -> Option<Post<'a>> {
        self.numbers.get(&key).map(Postings::post)
    }
    fn numbers_in(&self, lo: Bound<u64>, hi: Bound<u64>, visit: &mut dyn FnMut(Post<'a>) -> bool) {
        values_in(&self.numbers, lo, hi, visit)
    }
    fn date(&self, ms: Millis) -> Option<Post<'a>> {
        self.dates.get(&ms).map(Postings::post)
    }
    fn dates_in(
        &self,
        lo: Bound<Millis>,
        hi: Bound<Millis>,
        visit: &mut dyn FnMut(Post<'a>) -> bool,
    ) {
        values_in(&self.dates, lo, hi, visit)
    }
}

/// The sort key of a hit: `uuid` descending, `manifest.version` descending (missing last), then
/// the document id descending so that ties page deterministically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// The document's `uuid` field.
    pub uuid: String,
    /// Its `manifest.version` field.
    pub version: Option<String>,
    /// The document id.
    pub id: String,
}

impl SortKey {
    /// The key of a document.
    pub fn of(id: &str, doc: &Value) -> Self {
        Self {
            uuid: doc
                .get("uuid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            version: doc
                .pointer("/manifest/version")
                .and_then(Value::as_str)
                .map(str::to_string),
            id: id.to_string(),
        }
    }

    /// The `search_after` cursor of this key: `uuid,version,id` (version empty when missing).
    pub fn cursor(&self) -> String {
        format!(
            "{},{},{}",
            self.uuid,
            self.version.as_deref().unwrap_or(""),
            self.id
        )
    }

    /// Parses a cursor; `uuid,version` (the original's two-value form) is accepted too.
    pub fn parse_cursor(s: &str) -> Option<Self> {
        let mut parts = s.splitn(3, ',');
        let uuid = parts.next()?.to_string();
        let version = parts.next()?;
        Some(Self {
            uuid,
            version: (!version.is_empty()).then(|| version.to_string()),
            id: parts.next().unwrap_or("").to_string(),
        })
    }
}

impl Ord for SortKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering::*;
        other
            .uuid
            .cmp(&self.uuid)
            .then_with(|| match (&self.version, &other.version) {
                (Some(a), Some(b)) => b.cmp(a),
                (Some(_), None) => Less,
                (None, Some(_)) => Greater,
                (None, None) => Equal,
            })
            .then_with(|| other.id.cmp(&self.id))
    }
}

impl PartialOrd for SortKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Re-reads a document by ordinal, for the few queries that verify candidates.
pub trait DocLoader {
    /// The document's JSON, `None` if it is gone.
    fn load(&self, doc: u32) -> Option<Value>;
}

impl<F: Fn(u32) -> Option<Value>> DocLoader for F {
    fn load(&self, doc: u32) -> Option<Value> {
        self(doc)
    }
}

/// What a query is evaluated against besides the index.
pub struct EvalContext<'a> {
    /// `now` of date math.
    pub now: OffsetDateTime,
    /// Loads candidates for `match_phrase` and `nested`.
    pub loader: &'a dyn DocLoader,
    /// The work the evaluation may do.
    pub budget: &'a Budget,
}

/// Sizes of a [`MemIndex`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Live documents.
    pub documents: u64,
    /// Field paths (including `.text` sub-fields and objects).
    pub fields: usize,
    /// Distinct (field, term) keywords and tokens.
    pub terms: usize,
    /// Distinct (field, adjacent word pair) entries.
    pub pairs: usize,
    /// Distinct (field, number or date) values.
    pub values: usize,
}

/// An inverted index in memory. Documents are numbered by their caller ([`MemIndex::insert_at`])
/// or by insertion ([`MemIndex::insert`]).
#[derive(Debug, Default)]
pub struct MemIndex {
    /// The ordinal of `keys[0]`.
    base: u32,
    keys: Vec<Option<SortKey>>,
    by_id: FxHashMap<Arc<str>, u32>,
    live: RoaringBitmap,
    pub(crate) fields: Fields,
    /// Dead ordinals already dropped from the postings by [`MemIndex::purge`].
    purged: u64,
}

impl MemIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Live documents.
    pub fn len(&self) -> u64 {
        self.live.len()
    }

    /// Whether no document is live.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The live documents.
    pub fn live(&self) -> &RoaringBitmap {
        &self.live
    }

    /// Documents removed or replaced whose entries are still in the postings.
    pub fn garbage(&self) -> u64 {
        self.keys.len() as u64 - self.live.len() - self.purged
    }

    /// The ordinal the next [`MemIndex::insert`] takes.
    pub fn next_ord(&self) -> u32 {
        self.base + self.keys.len() as u32
    }

    /// Drops removed and replaced documents from every posting list (their ordinals stay used).
    pub fn purge(&mut self) {
        let mut dead = RoaringBitmap::new();
        dead.insert_range(self.base..self.next_ord());
        dead -= &self.live;
        for f in self.fields.values_mut() {
            f.terms.purge(&dead);
            f.pairs.purge(&dead);
            purge_map(&mut f.numbers, &dead);
            purge_map(&mut f.dates, &dead);
            f.exists -= &dead;
        }
        self.fields.retain(|_, f| !f.exists.is_empty());
        self.purged = dead.len();
    }

    /// Sizes of the index, for logs and capacity planning.
    pub fn stats(&self) -> IndexStats {
        let mut st = IndexStats {
            documents: self.len(),
            fields: self.fields.len(),
            ..IndexStats::default()
        };
        for f in self.fields.values() {
            st.terms += f.terms.len();
            st.pairs += f.pairs.len();
            st.values += f.numbers.len() + f.dates.len();
        }
        st
    }

    /// The id of a live ordinal.
    pub fn id(&self, doc: u32) -> Option<&str> {
        self.key(doc).map(|k| k.id.as_str())
    }

    /// The sort key of a live ordinal.
    pub fn key(&self, doc: u32) -> Option<&SortKey> {
        self.keys
            .get(doc.checked_sub(self.base)? as usize)?
            .as_ref()
    }

    /// Removes a document; `false` if it was not there.
    pub fn remove(&mut self, id: &str) -> bool {
        match self.by_id.remove(id) {
            Some(ord) => {
                self.live.remove(ord);
                if let Some(k) = self.keys.get_mut((ord - self.base) as usize) {
                    *k = None;
                }
                true
            }
            None => false,
        }
    }

    /// Adds (or replaces) a document and returns its ordinal.
    pub fn insert(&mut self, id: &str, doc: &Value) -> u32 {
        let ord = self.next_ord();
        self.insert_at(id, doc, ord);
        ord
    }

    /// Adds (or replaces) a document under ordinal `ord`, which must not be below
    /// [`MemIndex::next_ord`] unless the index is empty (ordinals skipped stay unused).
    pub fn insert_at(&mut self, id: &str, doc: &Value, ord: u32) {
        self.remove(id);
        if self.keys.is_empty() {
            self.base = ord;
        }
        let Some(gap) = ord.checked_sub(self.next_ord()) else {
            debug_assert!(false, "ordinal {ord} below {}", self.next_ord());
            return;
        };
        self.keys.extend(std::iter::repeat_n(None, gap as usize));
        self.keys.push(Some(SortKey::of(id, doc)));
        let id: Arc<str> = id.into();
        self.by_id.insert(id, ord);
        self.live.insert(ord);
        let fields = &mut self.fields;
        let mut scratch = String::new();
        for_each_leaf(doc, "", &mut |path, leaf| {
            index_leaf(fields, path, leaf, ord, &mut scratch)
        });
    }

    /// Live documents with their ids, in ordinal order.
    pub fn documents(&self) -> impl Iterator<Item = (u32, &SortKey)> {
        self.live.iter().filter_map(|d| self.key(d).map(|k| (d, k)))
    }

    /// Documents matching `q` (live only); an error when the evaluation ran out of budget.
    pub fn search(&self, q: &Query, ctx: &EvalContext<'_>) -> Result<RoaringBitmap, QueryError> {
        evaluate(self, q, ctx)
    }

    /// The first `size` hits after `after` in sort order.
    pub fn top(&self, hits: &RoaringBitmap, after: Option<&SortKey>, size: usize) -> Vec<u32> {
        let mut top = TopK::new(after, size);
        for doc in hits {
            if let Some(k) = self.key(doc) {
                top.offer(k, doc);
            }
        }
        top.into_sorted().into_iter().map(|(_, d)| d).collect()
    }
}

impl Source for MemIndex {
    type Field<'a> = &'a FieldIndex;

    fn universe(&self) -> Cow<'_, RoaringBitmap> {
        Cow::Borrowed(&self.live)
    }

    fn field(&self, name: &str) -> Option<&FieldIndex> {
        self.fields.get(name)
    }

    fn field_names(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        Box::new(self.fields.keys().map(String::as_str))
    }

    fn ord_of(&self, id: &str) -> Option<u32> {
        self.by_id.get(id).copied()
    }
}

/// The first `size` sort keys after a cursor, offered in any order.
pub struct TopK<'a> {
    heap: std::collections::BinaryHeap<(Cow<'a, SortKey>, u32)>,
    after: Option<&'a SortKey>,
    size: usize,
}

impl<'a> TopK<'a> {
    /// Keeps the first `size` keys after `after`.
    pub fn new(after: Option<&'a SortKey>, size: usize) -> Self {
        Self {
            heap: std::collections::BinaryHeap::with_capacity(size + 1),
            after,
            size,
        }
    }

    /// The cursor keys must come after.
    pub fn after(&self) -> Option<&'a SortKey> {
        self.after
    }

    /// Whether a key would be kept now.
    fn wants(&self, k: &SortKey) -> bool {
        if self.size == 0 || self.after.is_some_and(|a| k <= a) {
            return false;
        }
        self.heap.len() < self.size || self.heap.peek().is_some_and(|(top, _)| k < &**top)
    }

    /// The worst key kept while full: keys after it are not wanted.
    pub fn threshold(&self) -> Option<&SortKey> {
        (self.heap.len() >= self.size).then(|| self.heap.peek().map(|(k, _)| &**k))?
    }

    /// Offers a document's key.
    pub fn offer(&mut self, k: impl Into<Cow<'a, SortKey>>, doc: u32) {
        let k = k.into();
        if !self.wants(&k) {
            return;
        }
        if self.heap.len() >= self.size {
            self.heap.pop();
        }
        self.heap.push((k, doc));
    }

    /// The kept keys in sort order.
    pub fn into_sorted(self) -> Vec<(Cow<'a, SortKey>, u32)> {
        let mut out = self.heap.into_vec();
        out.sort();
        out
    }
}

impl<'a> From<&'a SortKey> for Cow<'a, SortKey> {
    fn from(k: &'a SortKey) -> Self {
        Cow::Borrowed(k)
    }
}

impl From<SortKey> for Cow<'_, SortKey> {
    fn from(k: SortKey) -> Self {
        Cow::Owned(k)
    }
}

fn entry<'a>(fields: &'a mut Fields, name: &str, text: bool, ord: u32) -> &'a mut FieldIndex {
    let f = fields.entry_ref(name).or_default();
    f.text |= text;
    // Not `max`/`try_push`: a bitmap container finds its maximum by scanning its words.
    f.exists.insert(ord);
    f
}

/// Indexes one leaf value (`scratch` is reused for the names and keys it builds).
fn index_leaf(fields: &mut Fields, path: &str, leaf: Leaf<'_>, ord: u32, scratch: &mut String) {
    match leaf {
        Leaf::Str(s) => {
            if let Some(ms) = dates::detect(s) {
                // Detected dates are mapped as `date`: no keyword, no text sub-field.
                add(&mut entry(fields, path, false, ord).dates, ms, ord);
            } else {
                let f = entry(fields, path, false, ord);
                if let Some(k) = analyze::keyword(s) {
                    f.terms.add(&k, ord);
                }
                scratch.clear();
                scratch.push_str(path);
                scratch.push_str(TEXT_SUFFIX);
                let f = entry(fields, scratch, true, ord);
                let toks = analyze::tokens(s);
                for t in &toks {
                    f.terms.add(t, ord);
                }
                for w in toks.windows(2) {
                    if pair_indexed(&w[0], &w[1]) {
                        pair_into(&w[0], &w[1], scratch);
                        f.pairs.add(scratch, ord);
                    }
                }
            }
        }
        Leaf::Num(x) => add(
            &mut entry(fields, path, false, ord).numbers,
            num_key(x),
            ord,
        ),
        Leaf::Bool(b) => entry(fields, path, false, ord)
            .terms
            .add(if b { "true" } else { "false" }, ord),
    }
    // Objects exist when any of their sub-fields does; once an ancestor is marked for this
    // document, so are all of its own (siblings share them).
    let mut p = path;
    while let Some(i) = p.rfind('.') {
        p = &p[..i];
        if fields.get(p).is_some_and(|f| f.exists.contains(ord)) {
            break;
        }
        entry(fields, p, false, ord);
    }
}

/// One document indexed alone, so that many stored queries can be tested against it (webhook
/// matching): the same evaluator as search, built once per document, not once per query.
pub struct SingleDoc<'a> {
    index: MemIndex,
    ord: u32,
    doc: &'a Value,
    now: OffsetDateTime,
}

impl<'a> SingleDoc<'a> {
    /// Indexes `doc` under `id`; date math in queries is relative to `now`.
    pub fn new(id: &str, doc: &'a Value, now: OffsetDateTime) -> Self {
        let mut index = MemIndex::new();
        let ord = index.insert(id, doc);
        Self {
            index,
            ord,
            doc,
            now,
        }
    }

    /// Whether the document has `field`, and if so whether it is an analysed (`.text`) field.
    /// With [`terms`](Self::terms), lets a caller with many term-level queries skip those that
    /// cannot match.
    pub fn field_is_text(&self, field: &str) -> Option<bool> {
        self.index.field(field).map(|f| f.text)
    }

    /// The terms `field` holds as indexed: lower-cased keywords, or the tokens of an analysed
    /// field.
    pub fn terms(&self, field: &str) -> impl Iterator<Item = &str> {
        self.index
            .field(field)
            .into_iter()
            .flat_map(|f| f.terms.terms())
    }

    /// Whether the document matches `q`, spending from `budget`; an error when it ran out.
    pub fn matches(&self, q: &Query, budget: &Budget) -> Result<bool, QueryError> {
        let loader = |_: u32| Some(self.doc.clone());
        let hits = self.index.search(
            q,
            &EvalContext {
                now: self.now,
                loader: &loader,
                budget,
            },
        )?;
        Ok(hits.contains(self.ord))
    }
}

/// `*` / `?` pattern match.
pub fn glob(pattern: &str, s: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if pattern.is_ascii() && s.is_ascii() {
        return glob_in(pattern.as_bytes(), s.as_bytes(), b'*', b'?');
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    glob_in(&p, &t, '*', '?')
}

/// [`glob`] over units (bytes of ASCII text, or characters), `many` and `one` its wildcards.
fn glob_in<T: PartialEq + Copy>(p: &[T], t: &[T], many: T, one: T) -> bool {
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == one || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == many {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == many {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests;
