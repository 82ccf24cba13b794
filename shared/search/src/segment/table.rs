//! A sorted table of byte keys to numbers, written in one pass and read in place: the term
//! dictionary and the id map of a segment.
//!
//! Keys go into blocks of [`BLOCK`] entries. In a block each key is stored as the length it
//! shares with the key before it and the rest (front coding: a field's keys share its name), then
//! its value; the first key of a block is stored whole. After the blocks come the first keys of
//! the blocks again, together (so that the binary search of a lookup touches only them and the
//! block it lands in, not a page of every block it probes), an index (per block: its offset and
//! the offset of its first key) and a footer (where the blocks end, the offset of the index, the
//! block count, the entry count). A range scan reads on from the block of its lower bound.
//! Writing costs a comparison of each key with the one before it: nothing like a minimal
//! automaton's node registry, which made writing the dominant cost of indexing.

use std::io::{self, Write};
use std::ops::{Bound, Range};

/// Entries per block.
const BLOCK: u64 = 32;
/// Bytes of the footer.
const FOOTER: usize = 32;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

/// The entry at `at` (moved past it): the length its key shares with the one before, the rest
/// of its key, its value.
fn entry<'b>(b: &'b [u8], at: &mut usize) -> Option<(usize, &'b [u8], u64)> {
    let shared = usize::try_from(varint(b, at)?).ok()?;
    let len = usize::try_from(varint(b, at)?).ok()?;
    let rest = b.get(*at..at.checked_add(len)?)?;
    *at += len;
    Some((shared, rest, varint(b, at)?))
}

/// Writes a table; keys must come in strictly increasing order.
pub struct TableWriter<W: Write> {
    out: W,
    written: u64,
    /// Per block: its offset and the offset of its first key in `firsts`.
    offsets: Vec<(u64, u64)>,
    firsts: Vec<u8>,
    last: Vec<u8>,
    entries: u64,
    buf: Vec<u8>,
}

impl<W: Write> TableWriter<W> {
    /// A table written to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            written: 0,
            offsets: Vec::new(),
            firsts: Vec::new(),
            last: Vec::new(),
            entries: 0,
            buf: Vec::new(),
        }
    }

    /// Adds `key` → `value`.
    pub fn insert(&mut self, key: &[u8], value: u64) -> io::Result<()> {
        if self.entries > 0 && key <= &self.last[..] {
            return Err(io::Error::other("table keys out of order"));
        }
        let shared = if self.entries.is_multiple_of(BLOCK) {
            self.offsets.push((self.written, self.firsts.len() as u64));
            put_varint(&mut self.firsts, key.len() as u64);
            self.firsts.extend_from_slice(key);
            0
        } else {
            key.iter()
                .zip(&self.last)
                .take_while(|(a, b)| a == b)
                .count()
        };
        self.buf.clear();
        put_varint(&mut self.buf, shared as u64);
        put_varint(&mut self.buf, (key.len() - shared) as u64);
        self.buf.extend_from_slice(&key[shared..]);
        put_varint(&mut self.buf, value);
        self.out.write_all(&self.buf)?;
        self.written += self.buf.len() as u64;
        self.last.clear();
        self.last.extend_from_slice(key);
        self.entries += 1;
        Ok(())
    }

    /// Writes the first keys, the index and the footer; returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        let data_end = self.written;
        self.out.write_all(&self.firsts)?;
        let index = data_end + self.firsts.len() as u64;
        for (block, first) in &self.offsets {
            self.out.write_all(&block.to_le_bytes())?;
            self.out.write_all(&(data_end + first).to_le_bytes())?;
        }
        self.out.write_all(&data_end.to_le_bytes())?;
        self.out.write_all(&index.to_le_bytes())?;
        self.out
            .write_all(&(self.offsets.len() as u64).to_le_bytes())?;
        self.out.write_all(&self.entries.to_le_bytes())?;
        Ok(self.out)
    }
}

/// A table read in place.
#[derive(Debug)]
pub struct Table<B> {
    bytes: B,
    data_end: usize,
    index: usize,
    blocks: usize,
    entries: u64,
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl<B: AsRef<[u8]>> Table<B> {
    /// Reads the footer; `None` if the bytes are not a table.
    pub fn new(bytes: B) -> Option<Self> {
        let b = bytes.as_ref();
        let end = b.len().checked_sub(FOOTER)?;
        let data_end = usize::try_from(u64_at(b, end)?).ok()?;
        let index = usize::try_from(u64_at(b, end + 8)?).ok()?;
        let blocks = usize::try_from(u64_at(b, end + 16)?).ok()?;
        let entries = u64_at(b, end + 24)?;
        if index.checked_add(blocks.checked_mul(16)?)? != end || data_end > index {
            return None;
        }
        Some(Self {
            bytes,
            data_end,
            index,
            blocks,
            entries,
        })
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.entries
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    fn block_start(&self, i: usize) -> Option<usize> {
        usize::try_from(u64_at(self.bytes.as_ref(), self.index + i * 16)?).ok()
    }

    /// The first key of block `i`, from the first keys stored together.
    fn first_key(&self, i: usize) -> Option<&[u8]> {
        let b = self.bytes.as_ref();
        let mut at = usize::try_from(u64_at(b, self.index + i * 16 + 8)?).ok()?;
        let len = usize::try_from(varint(b, &mut at)?).ok()?;
        b.get(at..at.checked_add(len)?)
    }

    /// The block that would hold `key`, among `blocks`: the last whose first key is not above
    /// it (the first of `blocks` if none).
    fn block_for(&self, key: &[u8], blocks: &Range<usize>) -> usize {
        let (mut lo, mut hi) = (blocks.start, blocks.end.min(self.blocks));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.first_key(mid) {
                Some(k) if k <= key => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo.saturating_sub(1).max(blocks.start)
    }

    /// Every block.
    fn all(&self) -> Range<usize> {
        0..self.blocks
    }

    /// The blocks that hold every key in `[lo, hi)`: a lookup or scan of such keys searches
    /// only them (a field's keys are a few blocks of a table of millions of keys).
    pub fn blocks_between(&self, lo: &[u8], hi: &[u8]) -> Range<usize> {
        let all = self.all();
        self.block_for(lo, &all)..(self.block_for(hi, &all) + 1).min(self.blocks)
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<u64> {
        self.get_in(key, &self.all())
    }

    /// The value of `key`, which is in `blocks` if anywhere ([`Self::blocks_between`]).
    ///
    /// Entries are compared without rebuilding them: `matched` bytes of the entry before agreed
    /// with `key` (and it was below it). An entry sharing more than that with the one before is
    /// below `key` too; one sharing less is above it (so is the first key of the next block,
    /// stored whole); only one sharing exactly that many is compared, from there on.
    pub fn get_in(&self, key: &[u8], blocks: &Range<usize>) -> Option<u64> {
        let b = self.bytes.as_ref();
        let b = &b[..self.data_end.min(b.len())];
        let mut at = self.block_start(self.block_for(key, blocks))?;
        let (mut matched, mut prev_len) = (0usize, 0usize);
        while at < b.len() {
            let (shared, rest, value) = entry(b, &mut at)?;
            if shared > prev_len {
                return None; // damaged
            }
            prev_len = shared + rest.len();
            if shared > matched {
                continue;
            }
            if shared < matched {
                return None;
            }
            let wanted = &key[matched..];
            let common = rest.iter().zip(wanted).take_while(|(a, b)| a == b).count();
            match (rest.get(common), wanted.get(common)) {
                (None, None) => return Some(value),
                (None, Some(_)) => matched += common,
                (Some(_), None) => return None,
                (Some(r), Some(w)) if r < w => matched += common,
                (Some(_), Some(_)) => return None,
            }
        }
        None
    }

    fn cursor_at(&self, block: usize) -> Cursor<'_> {
        let bytes = self.bytes.as_ref();
        Cursor {
            bytes: &bytes[..self.data_end.min(bytes.len())],
            at: self.block_start(block).unwrap_or(usize::MAX),
            key: Vec::new(),
        }
    }

    /// The bytes of the table.
    pub fn bytes(&self) -> &B {
        &self.bytes
    }

    /// Every entry in order.
    pub fn cursor(&self) -> Cursor<'_> {
        self.cursor_at(0)
    }

    /// Entries within bounds, in order, until `visit` answers `false`; the lower bound is in
    /// `blocks` if anywhere ([`Self::blocks_between`]).
    pub fn range(
        &self,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        blocks: &Range<usize>,
        visit: &mut dyn FnMut(&[u8], u64) -> bool,
    ) {
        let mut c = match lo {
            Bound::Included(k) | Bound::Excluded(k) => self.cursor_at(self.block_for(k, blocks)),
            Bound::Unbounded => self.cursor(),
        };
        while let Some((k, v)) = c.next() {
            let above = match lo {
                Bound::Included(l) => k >= l,
                Bound::Excluded(l) => k > l,
                Bound::Unbounded => true,
            };
            if !above {
                continue;
            }
            let below = match hi {
                Bound::Included(h) => k <= h,
                Bound::Excluded(h) => k < h,
                Bound::Unbounded => true,
            };
            if !below || !visit(k, v) {
                return;
            }
        }
    }
}

/// Reads entries in order from some block on.
pub struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    key: Vec<u8>,
}

impl Cursor<'_> {
    /// How far into the table's bytes the cursor has read.
    pub fn offset(&self) -> usize {
        self.at.min(self.bytes.len())
    }

    /// The next entry (a damaged table ends early).
    #[expect(
        clippy::should_implement_trait,
        reason = "the key is lent from the cursor, which Iterator cannot express"
    )]
    pub fn next(&mut self) -> Option<(&[u8], u64)> {
        if self.at >= self.bytes.len() {
            return None;
        }
        let mut at = self.at;
        let (shared, rest, value) = entry(self.bytes, &mut at)?;
        if shared > self.key.len() {
            self.at = usize::MAX;
            return None;
        }
        self.key.truncate(shared);
        self.key.extend_from_slice(rest);
        self.at = at;
        Some((&self.key, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(keys: &[&[u8]]) -> Table<Vec<u8>> {
        let mut w = TableWriter::new(Vec::new());
        for (i, k) in keys.iter().enumerate() {
            w.insert(k, i as u64 * 1000).expect("insert");
        }
        Table::new(w.finish().expect("finish")).expect("table")
    }

    #[test]
    fn lookups_and_ranges_over_many_blocks() {
        let owned: Vec<Vec<u8>> = (0..1000)
            .map(|i| format!("field\0\x01term{i:05}").into_bytes())
            .collect();
        let keys: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        let t = table(&keys);
        assert_eq!(t.len(), 1000);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(t.get(k), Some(i as u64 * 1000), "{i}");
        }
        assert_eq!(t.get(b"field\0\x01term00010x"), None);
        assert_eq!(t.get(b"a"), None);
        assert_eq!(t.get(b"z"), None);
        let mut got = Vec::new();
        t.range(
            Bound::Excluded(b"field\0\x01term00030"),
            Bound::Included(b"field\0\x01term00040"),
            &t.all(),
            &mut |_, v| {
                got.push(v / 1000);
                true
            },
        );
        assert_eq!(got, (31..=40).collect::<Vec<_>>());
        let mut n = 0;
        let mut c = t.cursor();
        while c.next().is_some() {
            n += 1;
        }
        assert_eq!(n, 1000);
    }

    #[test]
    fn lookups_within_the_blocks_of_a_key_range_answer_as_over_all() {
        // Three "fields" of different sizes; each is looked up within its own blocks.
        let mut owned: Vec<Vec<u8>> = Vec::new();
        for (field, n) in [("a", 3), ("b", 500), ("c", 40)] {
            owned.extend((0..n).map(|i| format!("{field}\0\x01{i:05}").into_bytes()));
        }
        let keys: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        let t = table(&keys);
        for field in ["a", "b", "c", "d", ""] {
            let (lo, hi) = (format!("{field}\0\x01"), format!("{field}\0\x05"));
            let blocks = t.blocks_between(lo.as_bytes(), hi.as_bytes());
            assert!(blocks.start < blocks.end || t.is_empty());
            for i in [0, 1, 2, 3, 39, 40, 250, 499, 500] {
                let k = format!("{field}\0\x01{i:05}");
                assert_eq!(
                    t.get_in(k.as_bytes(), &blocks),
                    t.get(k.as_bytes()),
                    "{k:?}"
                );
            }
            let (mut within, mut all) = (Vec::new(), Vec::new());
            let (l, h) = (
                Bound::Included(lo.as_bytes()),
                Bound::Excluded(hi.as_bytes()),
            );
            t.range(l, h, &blocks, &mut |_, v| {
                within.push(v);
                true
            });
            t.range(l, h, &t.all(), &mut |_, v| {
                all.push(v);
                true
            });
            assert_eq!(within, all, "{field}");
        }
    }

    proptest::proptest! {
        /// Lookups answer as a map does, for keys that share prefixes and are prefixes of
        /// one another (a small alphabet), present or not, across block boundaries.
        #[test]
        fn lookups_answer_as_a_map_does(
            keys in proptest::collection::btree_set(proptest::collection::vec(0u8..4, 0..7), 0..200),
            probes in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..8), 0..50),
        ) {
            let keys: Vec<Vec<u8>> = keys.into_iter().collect();
            let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            let t = table(&refs);
            for (i, k) in keys.iter().enumerate() {
                proptest::prop_assert_eq!(t.get(k), Some(i as u64 * 1000));
            }
            for p in &probes {
                let want = keys.iter().position(|k| k == p).map(|i| i as u64 * 1000);
                proptest::prop_assert_eq!(t.get(p), want);
            }
        }
    }

    #[test]
    fn keys_out_of_order_and_damaged_tables_are_refused() {
        let mut w = TableWriter::new(Vec::new());
        w.insert(b"b", 1).expect("insert");
        assert!(w.insert(b"a", 2).is_err());
        assert!(w.insert(b"b", 2).is_err());
        assert!(Table::new(vec![1u8, 2, 3]).is_none());
        let t = table(&[b"a", b"b"]);
        let mut bytes = t.bytes.clone();
        bytes[0] = 0xff;
        if let Some(t) = Table::new(bytes) {
            // Whatever it answers, it answers without a panic.
            let _ = t.get(b"a");
        }
        let empty = table(&[]);
        assert!(empty.is_empty());
        assert_eq!(empty.get(b"a"), None);
    }
}
