//! The query evaluator: set algebra on the postings of one [`Source`], never a visit of every
//! document. Only `match_phrase` of three or more words (or with digits) and `nested` re-read
//! the documents that the postings and the cheaper clauses have narrowed down.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Bound;

use roaring::RoaringBitmap;
use serde_json::Value;

use super::analyze::{self, TEXT_SUFFIX};
use super::ast::{Operator, Query, QueryError, RangeBounds, Scalar};
use super::dates::{self, Millis, Rounding};
use super::flatten::{Leaf, for_each_leaf, objects_at};
use super::index::{EvalContext, SingleDoc, glob};
use super::limits::{Budget, DOC_COST};
use super::source::{FieldSource, Post, Source, Union};

/// Documents of `src` matching `q` (within its universe); an error when the evaluation ran out
/// of budget.
pub fn evaluate<S: Source>(
    src: &S,
    q: &Query,
    ctx: &EvalContext<'_>,
) -> Result<RoaringBitmap, QueryError> {
    let mut r = Eval { src, ctx }.eval(q, None);
    if ctx.budget.exceeded() {
        return Err(ctx.budget.error());
    }
    r &= &*src.universe();
    Ok(r)
}

/// A total order on finite floats as unsigned keys.
pub(crate) fn num_key(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// The key of two adjacent tokens (tokens never hold control characters).
pub(crate) fn pair(a: &str, b: &str) -> String {
    let mut k = String::with_capacity(a.len() + b.len() + 1);
    pair_into(a, b, &mut k);
    k
}

/// [`pair`] written into `k` (replacing what it held).
pub(crate) fn pair_into(a: &str, b: &str, k: &mut String) {
    k.clear();
    k.push_str(a);
    k.push('\0');
    k.push_str(b);
}

/// Whether a pair of adjacent words is indexed: not when either holds a digit, which leaves out
/// the many unique pairs of identifiers (UUID and checksum fragments); phrases over such pairs
/// are verified on their documents instead.
pub(crate) fn pair_indexed(a: &str, b: &str) -> bool {
    !a.bytes().chain(b.bytes()).any(|c| c.is_ascii_digit())
}

fn inverted<K: Ord>(lo: &Bound<K>, hi: &Bound<K>) -> bool {
    matches!(
        (lo, hi),
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) if a > b
    )
}

struct Eval<'s, 'c, S> {
    src: &'s S,
    ctx: &'s EvalContext<'c>,
}

impl<'s, S: Source> Eval<'s, '_, S> {
    fn budget(&self) -> &Budget {
        self.ctx.budget
    }

    /// Field names matching a pattern (`*` and `?`), one unit of budget per name scanned; a
    /// plain name is itself (without allocating: most queries name their fields).
    fn expand<'a>(&'a self, pattern: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let wild = pattern.contains(['*', '?']);
        let plain = (!wild).then_some(pattern);
        let matching = wild
            .then(|| self.src.field_names())
            .into_iter()
            .flatten()
            .take_while(move |_| self.budget().spend(1))
            .filter(move |k| glob(pattern, k));
        plain.into_iter().chain(matching)
    }

    /// Documents matching `q`. `within`, when given, are the only documents the caller will keep:
    /// clauses that verify candidates against stored documents check only those.
    fn eval(&self, q: &Query, within: Option<&RoaringBitmap>) -> RoaringBitmap {
        let ctx = self.ctx;
        match q {
            Query::MatchAll => self.src.universe().into_owned(),
            Query::MatchNone => RoaringBitmap::new(),
            Query::Bool(b) => {
                // Cheap clauses first; their result narrows what costly ones verify.
                let mut must: Vec<&Query> = b.must.iter().collect();
                if must.len() > 1 {
                    must.sort_by_cached_key(|m| costly(m));
                }
                let mut acc: Option<RoaringBitmap> = within.cloned();
                for m in must {
                    let r = self.eval(m, acc.as_ref());
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
                        .map(|s| self.eval(s, acc.as_ref()))
                        .collect();
                    let s = at_least(&sets, need);
                    acc = Some(match acc {
                        None => s,
                        Some(a) => a & s,
                    });
                }
                let mut base = acc.unwrap_or_else(|| self.src.universe().into_owned());
                for n in &b.must_not {
                    if base.is_empty() {
                        break;
                    }
                    let excluded = self.eval(n, Some(&base));
                    base -= excluded;
                }
                base
            }
            Query::Term { fields, values } => self.each_field(fields, |f| {
                let mut out = RoaringBitmap::new();
                for v in values {
                    term(&f, v, &mut out);
                }
                out
            }),
            Query::Match {
                fields,
                text,
                operator,
                minimum_should_match,
            } => self.each_field(fields, |f| {
                if !f.is_text() {
                    let mut out = RoaringBitmap::new();
                    term(&f, &Scalar::Str(text.clone()), &mut out);
                    return out;
                }
                let sets: Vec<RoaringBitmap> = analyze::tokens(text)
                    .iter()
                    .map(|t| f.term(t).map(|p| p.bitmap()).unwrap_or_default())
                    .collect();
                let need = match (operator, minimum_should_match) {
                    (Operator::And, _) => sets.len(),
                    (Operator::Or, Some(m)) => m.required(sets.len()).max(1),
                    (Operator::Or, None) => 1,
                };
                at_least(&sets, need)
            }),
            Query::MatchPhrase { fields, text } => self.phrase(fields, text, within),
            Query::Range { fields, bounds } => self.each_field(fields, |f| range(&f, bounds, ctx)),
            Query::Exists { fields } => self.each_field(fields, |f| f.exists()),
            Query::Prefix { fields, value } => self.each_field(fields, |f| {
                let p = value.to_lowercase();
                let mut out = Union::default();
                f.terms_in(Bound::Included(&p), Bound::Unbounded, &mut |t, post| {
                    if !t.starts_with(&p) || !ctx.budget.spend(1) {
                        return false;
                    }
                    out.add(post);
                    true
                });
                out.finish()
            }),
            Query::Wildcard { fields, pattern } => self.each_field(fields, |f| {
                let p = pattern.to_lowercase();
                let literal: String = p.chars().take_while(|c| *c != '*' && *c != '?').collect();
                let mut out = Union::default();
                f.terms_in(
                    Bound::Included(&literal),
                    Bound::Unbounded,
                    &mut |t, post| {
                        if !t.starts_with(&literal) || !ctx.budget.spend(1) {
                            return false;
                        }
                        if glob(&p, t) {
                            out.add(post);
                        }
                        true
                    },
                );
                out.finish()
            }),
            Query::Ids(ids) => ids
                .iter()
                .filter_map(|i| self.src.ord_of(i.as_str()))
                .collect(),
            Query::Nested { path, query } => {
                let mut candidates = self.eval(query, within);
                candidates &= self.src.field(path).map(|f| f.exists()).unwrap_or_default();
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
        within: Option<&RoaringBitmap>,
    ) -> RoaringBitmap {
        let ctx = self.ctx;
        let toks = analyze::tokens(text);
        let mut exact = RoaringBitmap::new();
        let mut to_verify: Vec<(&str, RoaringBitmap)> = Vec::new();
        for pattern in fields {
            for name in self.expand(pattern) {
                let Some(f) = self.src.field(name) else {
                    continue;
                };
                if !f.is_text() {
                    term(&f, &Scalar::Str(text.to_string()), &mut exact);
                    continue;
                }
                // Every token (one word) or every adjacent pair must be there: the first one
                // missing ends the field's lookups (most fields of a `*` pattern hold none).
                let token = |t: &str| f.term(t).map(|p| p.bitmap());
                let window = |w: &[Cow<'_, str>]| {
                    if pair_indexed(&w[0], &w[1]) {
                        f.pair(&pair(&w[0], &w[1])).map(|p| p.bitmap())
                    } else {
                        Some(token(&w[0])? & token(&w[1])?)
                    }
                };
                let sets: Option<Vec<RoaringBitmap>> = if toks.len() < 2 {
                    toks.iter().map(|t| token(t)).collect()
                } else {
                    toks.windows(2).map(window).collect()
                };
                let Some(sets) = sets else {
                    continue;
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
                        let path = name.strip_suffix(TEXT_SUFFIX).unwrap_or(name);
                        to_verify.push((path, candidates));
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
        mut f: impl FnMut(S::Field<'s>) -> RoaringBitmap,
    ) -> RoaringBitmap {
        let mut out = RoaringBitmap::new();
        for pattern in fields {
            for name in self.expand(pattern) {
                if let Some(fi) = self.src.field(name) {
                    out |= f(fi);
                }
            }
        }
        out
    }
}

fn or_found(p: Option<Post<'_>>, out: &mut RoaringBitmap) {
    if let Some(p) = p {
        p.or_into(out);
    }
}

fn term<'a>(f: &impl FieldSource<'a>, v: &Scalar, out: &mut RoaringBitmap) {
    if f.is_text() {
        or_found(f.term(v.text().as_str()), out);
        return;
    }
    or_found(f.term(v.text().to_lowercase().as_str()), out);
    if let Some(x) = v.number() {
        or_found(f.number(num_key(x)), out);
    }
    if let Scalar::Str(s) = v
        && let Some(ms) = dates::detect(s)
    {
        or_found(f.date(ms), out);
    }
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

fn range<'a>(f: &impl FieldSource<'a>, b: &RangeBounds, ctx: &EvalContext<'_>) -> RoaringBitmap {
    let (now, budget) = (ctx.now, ctx.budget);
    let given: Vec<&Scalar> = [&b.gt, &b.gte, &b.lt, &b.lte]
        .into_iter()
        .flatten()
        .collect();
    if given.is_empty() {
        return f.exists();
    }
    let mut out = Union::default();
    let mut collect = |p: Post<'a>| {
        if !budget.spend(1) {
            return false;
        }
        out.add(p);
        true
    };
    // Each kind of value compares in its own domain: numbers with numeric bounds, dates with
    // date bounds (and date math), keywords with string bounds.
    if given.iter().all(|v| v.number().is_some()) {
        let lo = bound(&b.gt, &b.gte, |v| v.number().map(num_key));
        let hi = bound(&b.lt, &b.lte, |v| v.number().map(num_key));
        if !inverted(&lo, &hi) {
            f.numbers_in(lo, hi, &mut collect);
        }
    }
    let date = |v: &Scalar, r| match v {
        Scalar::Str(s) => dates::parse_bound(s, now, r),
        _ => None,
    };
    if given.iter().all(|v| date(v, Rounding::Down).is_some()) {
        let lo: Bound<Millis> = match (&b.gt, &b.gte) {
            (Some(v), _) => date(v, Rounding::Up).map_or(Bound::Unbounded, Bound::Excluded),
            (None, Some(v)) => date(v, Rounding::Down).map_or(Bound::Unbounded, Bound::Included),
            _ => Bound::Unbounded,
        };
        let hi = match (&b.lt, &b.lte) {
            (Some(v), _) => date(v, Rounding::Down).map_or(Bound::Unbounded, Bound::Excluded),
            (None, Some(v)) => date(v, Rounding::Up).map_or(Bound::Unbounded, Bound::Included),
            _ => Bound::Unbounded,
        };
        if !inverted(&lo, &hi) {
            f.dates_in(lo, hi, &mut collect);
        }
    }
    if given.iter().all(|v| matches!(v, Scalar::Str(_))) {
        let key = |v: &Scalar| Some(v.text().to_lowercase());
        let lo = bound(&b.gt, &b.gte, key);
        let hi = bound(&b.lt, &b.lte, key);
        if !inverted(&lo, &hi) {
            f.terms_in(
                lo.as_ref().map(String::as_str),
                hi.as_ref().map(String::as_str),
                &mut |_, p| collect(p),
            );
        }
    }
    out.finish()
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
fn has_phrase(doc: &Value, path: &str, toks: &[Cow<'_, str>]) -> bool {
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
