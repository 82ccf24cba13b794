//! A field's term dictionary: exact lookups through a hash map; ordered scans (ranges, prefixes,
//! wildcards) through a sorted list of the terms built the first time a field is scanned, then
//! kept current: new terms wait in a small unsorted list that is merged in when it fills. Fields
//! never scanned in order (most of them) pay only a hash insert per new term.

use super::source::Post;
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
                // Not `try_push`: a bitmap container finds its maximum by scanning its words.
                b.insert(doc);
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

    #[cfg(test)]
    pub(crate) fn bitmap(&self) -> RoaringBitmap {
        self.post().bitmap()
    }

    /// The postings as the evaluator reads them.
    pub(crate) fn post(&self) -> Post<'_> {
        match self {
            Postings::One(d) => Post::One(*d),
            Postings::Many(b) => Post::Bitmap(b),
        }
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
        lo: Bound<&str>,
        hi: Bound<&str>,
    ) -> impl Iterator<Item = (&'a str, &'a Postings)> + use<'a> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    impl TermDict {
        fn with_prefix<'a>(
            &'a self,
            prefix: &'a str,
        ) -> impl Iterator<Item = (&'a str, &'a Postings)> + 'a {
            self.range(Bound::Included(prefix), Bound::Unbounded)
                .take_while(move |(t, _)| t.starts_with(prefix))
        }
    }

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
            d.range(Bound::Unbounded, Bound::Unbounded).count(),
            PENDING * 4 + 15
        );
        let all: Vec<&str> = d
            .range(Bound::Unbounded, Bound::Unbounded)
            .map(|(t, _)| t)
            .collect();
        assert!(all.windows(2).all(|w| w[0] < w[1]), "in order");
    }
}
