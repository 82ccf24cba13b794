//! A field's term dictionary: exact lookups through a hash map; ordered scans (ranges, prefixes,
//! wildcards) through a sorted list of the terms built the first time a field is scanned, then
//! kept current: new terms wait in a small unsorted list that is merged in when it fills. Fields
//! never scanned in order (most of them) pay only a hash insert per new term.

use super::limits::Budget;
use std::ops::Bound;
use std::sync::OnceLock;

use compact_str::CompactString;

use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;

/// Recent terms kept unsorted before a merge, at least; large dictionaries keep more (a merge
/// moves the whole sorted list, so its cost is spread over `8·√n` new terms).
const PENDING: usize = 1024;

/// Postings of one term: most terms (identifiers, checksums) occur in one document, so the
/// common case is a bare document number (the enum is 16 bytes).
#[derive(Debug, Clone)]
pub(crate) enum Postings {
    One(u32),
    Many(Box<RoaringBitmap>),
}

impl Postings {
    pub(crate) fn add(&mut self, doc: u32) {
        match self {
            Postings::One(d) if *d == doc => {}
            Postings::One(d) => {
                *self = Postings::Many(Box::new(RoaringBitmap::from_iter([*d, doc])))
            }
            Postings::Many(b) => {
                // Documents arrive in increasing order: appending is the common case.
                if b.try_push(doc).is_err() {
                    b.insert(doc);
                }
            }
        }
    }

    /// Removes `dead` documents; `false` when none is left.
    pub(crate) fn remove_all(&mut self, dead: &RoaringBitmap) -> bool {
        match self {
            Postings::One(d) => !dead.contains(*d),
            Postings::Many(b) => {
                **b -= dead;
                !b.is_empty()
            }
        }
    }

    pub(crate) fn or_into(&self, out: &mut RoaringBitmap) {
        match self {
            Postings::One(d) => {
                out.insert(*d);
            }
            Postings::Many(b) => *out |= &**b,
        }
    }

    pub(crate) fn bitmap(&self) -> RoaringBitmap {
        let mut b = RoaringBitmap::new();
        self.or_into(&mut b);
        b
    }
}

/// The terms of a field in order: a sorted list and recent additions.
#[derive(Debug, Default)]
struct Sorted {
    terms: Vec<CompactString>,
    pending: Vec<CompactString>,
}

impl Sorted {
    fn add(&mut self, term: CompactString) {
        self.pending.push(term);
        let limit = PENDING.max(8 * (self.terms.len() as f64).sqrt() as usize);
        if self.pending.len() >= limit {
            self.merge();
        }
    }

    fn merge(&mut self) {
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_unstable();
        let old = std::mem::take(&mut self.terms);
        let mut merged = Vec::with_capacity(old.len() + pending.len());
        let mut rest = old.into_iter();
        for p in pending {
            // A binary search per new term; the old terms in between move as a block.
            let i = rest.as_slice().partition_point(|t| *t < p);
            merged.extend(rest.by_ref().take(i));
            merged.push(p);
        }
        merged.extend(rest);
        self.terms = merged;
    }
}

/// Terms of one field and their postings. Terms up to 24 bytes (most tokens, UUIDs' fragments)
/// are stored inline in the map's entries.
#[derive(Debug, Default)]
pub(crate) struct TermDict {
    postings: FxHashMap<CompactString, Postings>,
    sorted: OnceLock<Sorted>,
}

fn within(t: &str, lo: Bound<&str>, hi: Bound<&str>) -> bool {
    let above = match lo {
        Bound::Included(l) => t >= l,
        Bound::Excluded(l) => t > l,
        Bound::Unbounded => true,
    };
    let below = match hi {
        Bound::Included(h) => t <= h,
        Bound::Excluded(h) => t < h,
        Bound::Unbounded => true,
    };
    above && below
}

impl TermDict {
    /// Records that `doc` holds `term`.
    pub(crate) fn add(&mut self, term: &str, doc: u32) {
        if let Some(p) = self.postings.get_mut(term) {
            p.add(doc);
            return;
        }
        let key = CompactString::from(term);
        if let Some(sorted) = self.sorted.get_mut() {
            sorted.add(key.clone());
        }
        self.postings.insert(key, Postings::One(doc));
    }

    fn sorted(&self) -> &Sorted {
        self.sorted.get_or_init(|| {
            let mut terms: Vec<CompactString> = self.postings.keys().cloned().collect();
            terms.sort_unstable();
            Sorted {
                terms,
                pending: Vec::new(),
            }
        })
    }

    /// Every term with its postings, in no particular order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&str, &Postings)> {
        self.postings.iter().map(|(t, p)| (t.as_str(), p))
    }

    /// Number of terms.
    pub(crate) fn len(&self) -> usize {
        self.postings.len()
    }

    /// Drops `dead` documents from every posting list, and terms left without documents.
    pub(crate) fn purge(&mut self, dead: &RoaringBitmap) {
        self.postings.retain(|_, p| p.remove_all(dead));
        self.postings.shrink_to_fit();
        // The ordered view is rebuilt from the remaining terms when next needed.
        self.sorted = OnceLock::new();
    }

    /// Restores a term read back from a snapshot.
    pub(crate) fn restore(&mut self, term: &str, postings: Postings) {
        self.postings.insert(CompactString::from(term), postings);
    }

    /// Room for `n` more terms.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.postings.reserve(n);
    }

    /// Every term, in no particular order.
    pub(crate) fn terms(&self) -> impl Iterator<Item = &str> {
        self.postings.keys().map(|k| k.as_str())
    }

    /// The postings of one term.
    pub(crate) fn get(&self, term: &str) -> Option<&Postings> {
        self.postings.get(term)
    }

    /// Terms within bounds, in order, with their postings.
    pub(crate) fn range<'a>(
        &'a self,
        lo: Bound<&'a str>,
        hi: Bound<&'a str>,
    ) -> impl Iterator<Item = (&'a str, &'a Postings)> + 'a {
        let sorted = self.sorted();
        let start = match lo {
            Bound::Included(l) => sorted.terms.partition_point(|t| t.as_str() < l),
            Bound::Excluded(l) => sorted.terms.partition_point(|t| t.as_str() <= l),
            Bound::Unbounded => 0,
        };
        let end = match hi {
            Bound::Included(h) => sorted.terms.partition_point(|t| t.as_str() <= h),
            Bound::Excluded(h) => sorted.terms.partition_point(|t| t.as_str() < h),
            Bound::Unbounded => sorted.terms.len(),
        };
        let frozen = sorted.terms.get(start..end.max(start)).unwrap_or_default();
        let mut recent: Vec<&str> = sorted
            .pending
            .iter()
            .map(|t| t.as_str())
            .filter(|t| within(t, lo, hi))
            .collect();
        recent.sort_unstable();
        let mut a = frozen.iter().map(|t| t.as_str()).peekable();
        let mut b = recent.into_iter().peekable();
        std::iter::from_fn(move || {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x <= y => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, _) => b.next(),
            }?;
            self.postings.get(next).map(|p| (next, p))
        })
    }

    /// Terms starting with `prefix`, in order.
    pub(crate) fn with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Postings)> + 'a {
        self.range(Bound::Included(prefix), Bound::Unbounded)
            .take_while(move |(t, _)| t.starts_with(prefix))
    }

    /// Union of the postings of the terms within bounds, one unit of `budget` per term.
    pub(crate) fn union_range(
        &self,
        lo: Bound<&str>,
        hi: Bound<&str>,
        budget: &Budget,
    ) -> RoaringBitmap {
        let mut out = RoaringBitmap::new();
        if let (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) =
            (lo, hi)
            && a > b
        {
            return out;
        }
        for (_, p) in self.range(lo, hi) {
            if !budget.spend(1) {
                break;
            }
            p.or_into(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_scans_see_merged_and_recent_terms() {
        let mut d = TermDict::default();
        for i in 0..(PENDING * 2 + 10) {
            d.add(&format!("t{i:05}"), i as u32);
        }
        d.add("t00003", 99_999);
        assert!(
            d.sorted.get().is_none(),
            "no order is kept until a scan needs it"
        );
        assert_eq!(d.with_prefix("t0000").count(), 10);
        // From now on new terms are kept in order too, merged or pending.
        for i in (PENDING * 2 + 10)..(PENDING * 4 + 15) {
            d.add(&format!("t{i:05}"), i as u32);
        }
        let s = d.sorted.get().expect("sorted");
        assert!(!s.pending.is_empty() && s.terms.len() > PENDING * 3);
        let got: Vec<&str> = d
            .range(Bound::Included("t01020"), Bound::Excluded("t01030"))
            .map(|(t, _)| t)
            .collect();
        assert_eq!(
            got,
            (1020..1030).map(|i| format!("t{i:05}")).collect::<Vec<_>>()
        );
        let tail: Vec<&str> = d.with_prefix("t0205").map(|(t, _)| t).collect();
        assert_eq!(
            tail,
            (2050..2060).map(|i| format!("t{i:05}")).collect::<Vec<_>>()
        );
        assert_eq!(
            d.get("t00003").map(Postings::bitmap).map(|b| b.len()),
            Some(2)
        );
        assert_eq!(
            d.union_range(
                Bound::Included("z"),
                Bound::Included("a"),
                &Budget::new(100)
            )
            .len(),
            0
        );
        assert_eq!(
            d.union_range(Bound::Unbounded, Bound::Unbounded, &Budget::new(u64::MAX))
                .len(),
            (PENDING * 4 + 16) as u64
        );
        let all: Vec<&str> = d
            .range(Bound::Unbounded, Bound::Unbounded)
            .map(|(t, _)| t)
            .collect();
        assert!(all.windows(2).all(|w| w[0] < w[1]), "in order");
    }
}
