//! The in-memory inverted index and the query evaluator over it.
//!
//! A document's flattened values go into per-field dictionaries: keywords (lower-cased) and
//! tokens of `.text` sub-fields in ordered term maps, numbers and dates in ordered value maps,
//! plus an `exists` set per path and ancestor path. A query is answered by set algebra on
//! those postings, never by visiting every document; only `match_phrase` and `nested` re-read
//! the documents that the postings already narrowed down. The same evaluator answers "does this
//! one document match?" by indexing that document alone ([`matches`]).

use std::collections::{BTreeMap, BinaryHeap, HashMap};

use rustc_hash::{FxBuildHasher, FxHashMap};

/// Fields by name; looked up by `&str` without allocating.
type Fields = hashbrown::HashMap<String, FieldIndex, FxBuildHasher>;
use std::ops::Bound;
use std::sync::Arc;

use roaring::RoaringBitmap;
use serde_json::Value;
use time::OffsetDateTime;

use super::analyze::{self, TEXT_SUFFIX};
use super::ast::{Operator, Query, QueryError, RangeBounds, Scalar};
use super::dates::{self, Millis, Rounding};
use super::flatten::{Leaf, for_each_leaf, objects_at};
use super::limits::{Budget, DOC_COST};
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

fn union_range<K: Ord>(
    map: &BTreeMap<K, Postings>,
    lo: Bound<K>,
    hi: Bound<K>,
    budget: &Budget,
) -> RoaringBitmap {
    let mut out = RoaringBitmap::new();
    if let (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) =
        (&lo, &hi)
        && a > b
    {
        return out;
    }
    for (_, p) in map.range((lo, hi)) {
        if !budget.spend(1) {
            break;
        }
        p.or_into(&mut out);
    }
    out
}

/// A total order on finite floats as unsigned keys.
fn num_key(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

#[derive(Debug, Default)]
struct FieldIndex {
    /// Keywords (lower-cased) or, for `.text` fields, tokens.
    terms: TermDict,
    /// For `.text` fields: adjacent token pairs (`a\0b`), which answer two-word phrases and
    /// narrow down longer ones.
    pairs: TermDict,
    numbers: BTreeMap<u64, Postings>,
    dates: BTreeMap<Millis, Postings>,
    exists: RoaringBitmap,
    text: bool,
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

/// An inverted index over documents numbered by insertion.
#[derive(Debug, Default)]
pub struct MemIndex {
    keys: Vec<Option<SortKey>>,
    by_id: FxHashMap<Arc<str>, u32>,
    live: RoaringBitmap,
    fields: Fields,
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

    /// Documents removed or replaced whose entries are still in the postings.
    pub fn garbage(&self) -> u64 {
        self.keys.len() as u64 - self.live.len() - self.purged
    }

    /// Drops removed and replaced documents from every posting list (their ordinals stay used).
    pub fn purge(&mut self) {
        let mut dead = RoaringBitmap::new();
        dead.insert_range(0..self.keys.len() as u32);
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
        self.keys.get(doc as usize)?.as_ref().map(|k| k.id.as_str())
    }

    /// The sort key of a live ordinal.
    pub fn key(&self, doc: u32) -> Option<&SortKey> {
        self.keys.get(doc as usize)?.as_ref()
    }

    /// Removes a document; `false` if it was not there.
    pub fn remove(&mut self, id: &str) -> bool {
        match self.by_id.remove(id) {
            Some(ord) => {
                self.live.remove(ord);
                self.keys[ord as usize] = None;
                true
            }
            None => false,
        }
    }

    /// Adds (or replaces) a document and returns its ordinal.
    pub fn insert(&mut self, id: &str, doc: &Value) -> u32 {
        self.remove(id);
        let ord = self.keys.len() as u32;
        self.keys.push(Some(SortKey::of(id, doc)));
        let id: Arc<str> = id.into();
        self.by_id.insert(id, ord);
        self.live.insert(ord);
        let fields = &mut self.fields;
        for_each_leaf(doc, "", &mut |path, leaf| {
            index_leaf(fields, path, leaf, ord)
        });
        ord
    }

    fn field(&self, name: &str) -> Option<&FieldIndex> {
        self.fields.get(name)
    }

    /// Field names matching a pattern (`*` and `?`), one unit of `budget` per name scanned;
    /// a plain name is itself (without allocating: most queries name their fields).
    fn expand<'a>(
        &'a self,
        pattern: &'a str,
        budget: &'a Budget,
    ) -> impl Iterator<Item = &'a str> + 'a {
        let wild = pattern.contains(['*', '?']);
        let plain = (!wild).then_some(pattern);
        let matching = wild
            .then(|| self.fields.keys())
            .into_iter()
            .flatten()
            .map(|k| &**k)
            .take_while(move |_| budget.spend(1))
            .filter(move |k| glob(pattern, k));
        plain.into_iter().chain(matching)
    }

    /// Documents matching `q` (live only); an error when the evaluation ran out of budget.
    pub fn search(&self, q: &Query, ctx: &EvalContext<'_>) -> Result<RoaringBitmap, QueryError> {
        let mut r = self.eval(q, ctx, None);
        if ctx.budget.exceeded() {
            return Err(ctx.budget.error());
        }
        r &= &self.live;
        Ok(r)
    }

    /// The first `size` hits after `after` in sort order.
    pub fn top(&self, hits: &RoaringBitmap, after: Option<&SortKey>, size: usize) -> Vec<u32> {
        let mut heap: BinaryHeap<(&SortKey, u32)> = BinaryHeap::with_capacity(size + 1);
        if size == 0 {
            return Vec::new();
        }
        for doc in hits {
            let Some(k) = self.key(doc) else { continue };
            if after.is_some_and(|a| k <= a) {
                continue;
            }
            if heap.len() < size {
                heap.push((k, doc));
            } else if heap.peek().is_some_and(|(top, _)| k < *top) {
                heap.pop();
                heap.push((k, doc));
            }
        }
        let mut out = heap.into_vec();
        out.sort();
        out.into_iter().map(|(_, d)| d).collect()
    }

    /// Documents matching `q`. `within`, when given, are the only documents the caller will keep:
    /// clauses that verify candidates against stored documents check only those.
    fn eval(
        &self,
        q: &Query,
        ctx: &EvalContext<'_>,
        within: Option<&RoaringBitmap>,
    ) -> RoaringBitmap {
        match q {
            Query::MatchAll => self.live.clone(),
            Query::MatchNone => RoaringBitmap::new(),
            Query::Bool(b) => {
                // Cheap clauses first; their result narrows what costly ones verify.
                let mut must: Vec<&Query> = b.must.iter().collect();
                if must.len() > 1 {
                    must.sort_by_cached_key(|m| costly(m));
                }
                let mut acc: Option<RoaringBitmap> = within.cloned();
                for m in must {
                    let r = self.eval(m, ctx, acc.as_ref());
                    acc = Some(match acc {
                        None => r,
                        Some(a) => a & r,
                    });
                    if acc.as_ref().is_some_and(RoaringBitmap::is_empty) {
                        return RoaringBitmap::new();
                    }
                }
                let need = b.required_should();
                if need > 0 {
                    let sets: Vec<RoaringBitmap> = b
                        .should
                        .iter()
                        .map(|s| self.eval(s, ctx, acc.as_ref()))
                        .collect();
                    let s = at_least(&sets, need);
                    acc = Some(match acc {
                        None => s,
                        Some(a) => a & s,
                    });
                }
                let mut base = acc.unwrap_or_else(|| self.live.clone());
                for n in &b.must_not {
                    if base.is_empty() {
                        break;
                    }
                    let excluded = self.eval(n, ctx, Some(&base));
                    base -= excluded;
                }
                base
            }
            Query::Term { fields, values } => self.each_field(fields, ctx, |f, _| {
                let mut out = RoaringBitmap::new();
                for v in values {
                    self.term(f, v, &mut out);
                }
                out
            }),
            Query::Match {
                fields,
                text,
                operator,
                minimum_should_match,
            } => self.each_field(fields, ctx, |f, _| {
                if !f.text {
                    let mut out = RoaringBitmap::new();
                    self.term(f, &Scalar::Str(text.clone()), &mut out);
                    return out;
                }
                let sets: Vec<RoaringBitmap> = analyze::tokens(text)
                    .iter()
                    .map(|t| f.terms.get(t).map(Postings::bitmap).unwrap_or_default())
                    .collect();
                let need = match (operator, minimum_should_match) {
                    (Operator::And, _) => sets.len(),
                    (Operator::Or, Some(m)) => m.required(sets.len()).max(1),
                    (Operator::Or, None) => 1,
                };
                at_least(&sets, need)
            }),
            Query::MatchPhrase { fields, text } => self.phrase(fields, text, ctx, within),
            Query::Range { fields, bounds } => {
                self.each_field(fields, ctx, |f, _| range(f, bounds, ctx))
            }
            Query::Exists { fields } => self.each_field(fields, ctx, |f, _| f.exists.clone()),
            Query::Prefix { fields, value } => self.each_field(fields, ctx, |f, _| {
                let p = value.to_lowercase();
                let mut out = RoaringBitmap::new();
                for (_, post) in f.terms.with_prefix(&p) {
                    if !ctx.budget.spend(1) {
                        break;
                    }
                    post.or_into(&mut out);
                }
                out
            }),
            Query::Wildcard { fields, pattern } => self.each_field(fields, ctx, |f, _| {
                let p = pattern.to_lowercase();
                let literal: String = p.chars().take_while(|c| *c != '*' && *c != '?').collect();
                let mut out = RoaringBitmap::new();
                for (t, post) in f.terms.with_prefix(&literal) {
                    if !ctx.budget.spend(1) {
                        break;
                    }
                    if glob(&p, t) {
                        post.or_into(&mut out);
                    }
                }
                out
            }),
            Query::Ids(ids) => ids
                .iter()
                .filter_map(|i| self.by_id.get(i.as_str()).copied())
                .collect(),
            Query::Nested { path, query } => {
                let mut candidates = self.eval(query, ctx, within);
                candidates &= self
                    .field(path)
                    .map(|f| f.exists.clone())
                    .unwrap_or_default();
                if let Some(w) = within {
                    candidates &= w;
                }
                candidates
                    .into_iter()
                    .take_while(|_| ctx.budget.spend(DOC_COST))
                    .filter(|d| {
                        ctx.loader.load(*d).is_some_and(|doc| {
                            objects_at(&doc, path).into_iter().any(|element| {
                                // Each element is indexed on its own: as costly as a re-read.
                                if !ctx.budget.spend(DOC_COST) {
                                    return false;
                                }
                                let wrapped = wrap(path, element.clone());
                                SingleDoc::new("", &wrapped, ctx.now)
                                    .matches(query, ctx.budget)
                                    .unwrap_or(false)
                            })
                        })
                    })
                    .collect()
            }
        }
    }

    /// `match_phrase`: token pairs answer two words; longer phrases are verified on the documents
    /// all of whose pairs match (each loaded once, whatever the number of fields).
    fn phrase(
        &self,
        fields: &[String],
        text: &str,
        ctx: &EvalContext<'_>,
        within: Option<&RoaringBitmap>,
    ) -> RoaringBitmap {
        let toks = analyze::tokens(text);
        let mut exact = RoaringBitmap::new();
        let mut to_verify: Vec<(&str, RoaringBitmap)> = Vec::new();
        for pattern in fields {
            for name in self.expand(pattern, ctx.budget) {
                let Some(f) = self.field(name) else { continue };
                if !f.text {
                    self.term(f, &Scalar::Str(text.to_string()), &mut exact);
                    continue;
                }
                let token = |t: &str| f.terms.get(t).map(Postings::bitmap).unwrap_or_default();
                let sets: Vec<RoaringBitmap> = if toks.len() < 2 {
                    toks.iter().map(|t| token(t)).collect()
                } else {
                    toks.windows(2)
                        .map(|w| {
                            if pair_indexed(&w[0], &w[1]) {
                                f.pairs
                                    .get(&pair(&w[0], &w[1]))
                                    .map(Postings::bitmap)
                                    .unwrap_or_default()
                            } else {
                                token(&w[0]) & token(&w[1])
                            }
                        })
                        .collect()
                };
                let mut candidates = at_least(&sets, sets.len());
                if toks.len() < 2 || (toks.len() == 2 && pair_indexed(&toks[0], &toks[1])) {
                    exact |= candidates;
                } else {
                    if let Some(w) = within {
                        candidates &= w;
                    }
                    candidates -= &exact;
                    if !candidates.is_empty() {
                        to_verify
                            .push((name.strip_suffix(TEXT_SUFFIX).unwrap_or(name), candidates));
                    }
                }
            }
        }
        let mut all = RoaringBitmap::new();
        for (_, c) in &to_verify {
            all |= c;
        }
        all -= &exact;
        for d in &all {
            if !ctx.budget.spend(DOC_COST) {
                break;
            }
            let Some(doc) = ctx.loader.load(d) else {
                continue;
            };
            if to_verify
                .iter()
                .any(|(path, c)| c.contains(d) && has_phrase(&doc, path, &toks))
            {
                exact.insert(d);
            }
        }
        exact
    }

    fn each_field(
        &self,
        fields: &[String],
        ctx: &EvalContext<'_>,
        mut f: impl FnMut(&FieldIndex, &str) -> RoaringBitmap,
    ) -> RoaringBitmap {
        let mut out = RoaringBitmap::new();
        for pattern in fields {
            for name in self.expand(pattern, ctx.budget) {
                if let Some(fi) = self.field(name) {
                    out |= f(fi, name);
                }
            }
        }
        out
    }

    fn term(&self, f: &FieldIndex, v: &Scalar, out: &mut RoaringBitmap) {
        if f.text {
            if let Some(p) = f.terms.get(v.text().as_str()) {
                p.or_into(out);
            }
            return;
        }
        if let Some(p) = f.terms.get(v.text().to_lowercase().as_str()) {
            p.or_into(out);
        }
        if let Some(x) = v.number()
            && let Some(p) = f.numbers.get(&num_key(x))
        {
            p.or_into(out);
        }
        if let Scalar::Str(s) = v
            && let Some(p) = dates::detect(s).and_then(|ms| f.dates.get(&ms))
        {
            p.or_into(out);
        }
    }
}

fn entry<'a>(fields: &'a mut Fields, name: &str, text: bool, ord: u32) -> &'a mut FieldIndex {
    let f = fields.entry_ref(name).or_default();
    f.text |= text;
    if f.exists.max() != Some(ord) && f.exists.try_push(ord).is_err() {
        f.exists.insert(ord);
    }
    f
}

/// Indexes one leaf value.
fn index_leaf(fields: &mut Fields, path: &str, leaf: Leaf<'_>, ord: u32) {
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
                let text = format!("{path}{TEXT_SUFFIX}");
                let f = entry(fields, &text, true, ord);
                let toks = analyze::tokens(s);
                for t in &toks {
                    f.terms.add(t, ord);
                }
                for w in toks.windows(2) {
                    if pair_indexed(&w[0], &w[1]) {
                        f.pairs.add(&pair(&w[0], &w[1]), ord);
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
        if fields.get(p).is_some_and(|f| f.exists.max() == Some(ord)) {
            break;
        }
        entry(fields, p, false, ord);
    }
}

/// The key of two adjacent tokens (tokens never hold control characters).
fn pair(a: &str, b: &str) -> String {
    let mut k = String::with_capacity(a.len() + b.len() + 1);
    k.push_str(a);
    k.push('\0');
    k.push_str(b);
    k
}

/// Whether a pair of adjacent words is indexed: not when either holds a digit, which leaves out
/// the many unique pairs of identifiers (UUID and checksum fragments); phrases over such pairs
/// are verified on their documents instead.
fn pair_indexed(a: &str, b: &str) -> bool {
    !a.bytes().chain(b.bytes()).any(|c| c.is_ascii_digit())
}

/// Whether evaluating `q` may re-read stored documents (so it should run on few candidates).
fn costly(q: &Query) -> bool {
    match q {
        Query::Nested { .. } => true,
        Query::MatchPhrase { text, .. } => {
            let toks = analyze::tokens(text);
            toks.len() > 2 || (toks.len() == 2 && !pair_indexed(&toks[0], &toks[1]))
        }
        Query::Bool(b) => b
            .must
            .iter()
            .chain(&b.should)
            .chain(&b.must_not)
            .any(costly),
        _ => false,
    }
}

/// Documents present in at least `need` of `sets` (`need` 0 or more than the sets: none).
fn at_least(sets: &[RoaringBitmap], need: usize) -> RoaringBitmap {
    if need == 0 || need > sets.len() {
        return RoaringBitmap::new();
    }
    if need == 1 {
        return sets.iter().fold(RoaringBitmap::new(), |a, b| a | b);
    }
    if need == sets.len() {
        let mut it = sets.iter();
        let first = it.next().cloned().unwrap_or_default();
        return it.fold(first, |a, b| a & b);
    }
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for s in sets {
        for d in s {
            *counts.entry(d).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .filter(|(_, c)| *c >= need)
        .map(|(d, _)| d)
        .collect()
}

fn range(f: &FieldIndex, b: &RangeBounds, ctx: &EvalContext<'_>) -> RoaringBitmap {
    let (now, budget) = (ctx.now, ctx.budget);
    let given: Vec<&Scalar> = [&b.gt, &b.gte, &b.lt, &b.lte]
        .into_iter()
        .flatten()
        .collect();
    let mut out = RoaringBitmap::new();
    if given.is_empty() {
        return f.exists.clone();
    }
    // Each kind of value compares in its own domain: numbers with numeric bounds, dates with
    // date bounds (and date math), keywords with string bounds.
    if given.iter().all(|v| v.number().is_some()) {
        let lo = bound(&b.gt, &b.gte, |v| v.number().map(num_key));
        let hi = bound(&b.lt, &b.lte, |v| v.number().map(num_key));
        out |= union_range(&f.numbers, lo, hi, budget);
    }
    let date = |v: &Scalar, r| match v {
        Scalar::Str(s) => dates::parse_bound(s, now, r),
        _ => None,
    };
    if given.iter().all(|v| date(v, Rounding::Down).is_some()) {
        let lo = match (&b.gt, &b.gte) {
            (Some(v), _) => date(v, Rounding::Up).map_or(Bound::Unbounded, Bound::Excluded),
            (None, Some(v)) => date(v, Rounding::Down).map_or(Bound::Unbounded, Bound::Included),
            _ => Bound::Unbounded,
        };
        let hi = match (&b.lt, &b.lte) {
            (Some(v), _) => date(v, Rounding::Down).map_or(Bound::Unbounded, Bound::Excluded),
            (None, Some(v)) => date(v, Rounding::Up).map_or(Bound::Unbounded, Bound::Included),
            _ => Bound::Unbounded,
        };
        out |= union_range(&f.dates, lo, hi, budget);
    }
    if given.iter().all(|v| matches!(v, Scalar::Str(_))) {
        let key = |v: &Scalar| Some(v.text().to_lowercase());
        let lo = bound(&b.gt, &b.gte, key);
        let hi = bound(&b.lt, &b.lte, key);
        out |= f.terms.union_range(
            lo.as_ref().map(String::as_str),
            hi.as_ref().map(String::as_str),
            budget,
        );
    }
    out
}

fn bound<K>(
    strict: &Option<Scalar>,
    inclusive: &Option<Scalar>,
    key: impl Fn(&Scalar) -> Option<K>,
) -> Bound<K> {
    match (strict, inclusive) {
        (Some(v), _) => key(v).map_or(Bound::Unbounded, Bound::Excluded),
        (None, Some(v)) => key(v).map_or(Bound::Unbounded, Bound::Included),
        _ => Bound::Unbounded,
    }
}

/// Whether one string value under `path` holds `toks` consecutively.
fn has_phrase(doc: &Value, path: &str, toks: &[String]) -> bool {
    let mut found = false;
    for_each_leaf(doc, "", &mut |p, leaf| {
        if found || p != path {
            return;
        }
        if let Leaf::Str(s) = leaf {
            let words = analyze::tokens(s);
            found = words.windows(toks.len()).any(|w| w == toks);
        }
    });
    found
}

/// `element` placed back at `path` (`a.b` → `{"a": {"b": element}}`), so that the fields of a
/// nested object keep their full names.
fn wrap(path: &str, element: Value) -> Value {
    path.rsplit('.').fold(element, |inner, seg| {
        let mut m = serde_json::Map::new();
        m.insert(seg.to_string(), inner);
        Value::Object(m)
    })
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
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
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
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

mod snapshot;

#[cfg(test)]
mod tests;
