//! A binary snapshot of a [`MemIndex`], so a process can start from it instead of re-analysing
//! every document. Little-endian; strings and bitmaps are length-prefixed; a magic header and a
//! trailing marker reject other or truncated files.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::Arc;

use roaring::RoaringBitmap;

use super::{FieldIndex, MemIndex, SortKey};
use crate::terms::{Postings, TermDict};

const MAGIC: &[u8; 8] = b"DSSIDX01";
const END: &[u8; 4] = b"END.";

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("search snapshot: {what}"),
    )
}

struct W<'a, T: Write>(&'a mut T);

impl<T: Write> W<'_, T> {
    fn u8(&mut self, v: u8) -> io::Result<()> {
        self.0.write_all(&[v])
    }
    fn u32(&mut self, v: u32) -> io::Result<()> {
        self.0.write_all(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> io::Result<()> {
        self.0.write_all(&v.to_le_bytes())
    }
    fn len(&mut self, n: usize) -> io::Result<()> {
        self.u32(u32::try_from(n).map_err(|_| bad("too large"))?)
    }
    fn str(&mut self, s: &str) -> io::Result<()> {
        self.len(s.len())?;
        self.0.write_all(s.as_bytes())
    }
    fn opt_str(&mut self, s: Option<&str>) -> io::Result<()> {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1)?;
                self.str(s)
            }
        }
    }
    fn bitmap(&mut self, b: &RoaringBitmap) -> io::Result<()> {
        self.len(b.serialized_size())?;
        b.serialize_into(&mut *self.0)
    }
    fn postings(&mut self, p: &Postings) -> io::Result<()> {
        match p {
            Postings::One(d) => {
                self.u8(0)?;
                self.u32(*d)
            }
            Postings::Many(b) => {
                self.u8(1)?;
                self.bitmap(b)
            }
        }
    }
    fn dict(&mut self, d: &TermDict) -> io::Result<()> {
        self.len(d.len())?;
        for (t, p) in d.entries() {
            self.str(t)?;
            self.postings(p)?;
        }
        Ok(())
    }
}

struct R<'a, T: Read>(&'a mut T);

impl<T: Read> R<'_, T> {
    fn bytes<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.0.read_exact(&mut b)?;
        Ok(b)
    }
    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.bytes::<1>()?[0])
    }
    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
    fn len(&mut self) -> io::Result<usize> {
        Ok(self.u32()? as usize)
    }
    fn string(&mut self) -> io::Result<String> {
        let n = self.len()?;
        let mut v = vec![0u8; n];
        self.0.read_exact(&mut v)?;
        String::from_utf8(v).map_err(|_| bad("invalid UTF-8"))
    }
    fn opt_string(&mut self) -> io::Result<Option<String>> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.string().map(Some),
            _ => Err(bad("bad option tag")),
        }
    }
    fn bitmap(&mut self) -> io::Result<RoaringBitmap> {
        let n = self.len()?;
        let mut v = vec![0u8; n];
        self.0.read_exact(&mut v)?;
        RoaringBitmap::deserialize_from(&v[..])
    }
    fn postings(&mut self) -> io::Result<Postings> {
        match self.u8()? {
            0 => Ok(Postings::One(self.u32()?)),
            1 => Ok(Postings::Many(Box::new(self.bitmap()?))),
            _ => Err(bad("bad postings tag")),
        }
    }
    fn dict(&mut self) -> io::Result<TermDict> {
        let n = self.len()?;
        let mut d = TermDict::default();
        d.reserve(n);
        for _ in 0..n {
            let t = self.string()?;
            let p = self.postings()?;
            d.restore(&t, p);
        }
        Ok(d)
    }
}

impl MemIndex {
    /// Writes the index and `seq` (the change it includes) to `out`.
    pub fn write_snapshot(&self, seq: i64, out: &mut impl Write) -> io::Result<()> {
        let mut w = W(out);
        w.0.write_all(MAGIC)?;
        w.u64(seq as u64)?;
        w.len(self.keys.len())?;
        for k in &self.keys {
            match k {
                None => w.u8(0)?,
                Some(k) => {
                    w.u8(1)?;
                    w.str(&k.id)?;
                    w.str(&k.uuid)?;
                    w.opt_str(k.version.as_deref())?;
                }
            }
        }
        w.bitmap(&self.live)?;
        w.len(self.fields.len())?;
        for (name, f) in &self.fields {
            w.str(name)?;
            w.u8(u8::from(f.text))?;
            w.dict(&f.terms)?;
            w.dict(&f.pairs)?;
            w.len(f.numbers.len())?;
            for (k, p) in &f.numbers {
                w.u64(*k)?;
                w.postings(p)?;
            }
            w.len(f.dates.len())?;
            for (k, p) in &f.dates {
                w.u64(*k as u64)?;
                w.postings(p)?;
            }
            w.bitmap(&f.exists)?;
        }
        w.0.write_all(END)
    }

    /// Reads a snapshot: the index and the change sequence it includes.
    pub fn read_snapshot(input: &mut impl Read) -> io::Result<(MemIndex, i64)> {
        let mut r = R(input);
        if &r.bytes::<8>()? != MAGIC {
            return Err(bad("not a snapshot of this version"));
        }
        let seq = r.u64()? as i64;
        let n = r.len()?;
        let mut idx = MemIndex::default();
        idx.keys.reserve(n);
        for ord in 0..n {
            let key = match r.u8()? {
                0 => None,
                1 => Some(SortKey {
                    id: r.string()?,
                    uuid: r.string()?,
                    version: r.opt_string()?,
                }),
                _ => return Err(bad("bad key tag")),
            };
            if let Some(k) = &key {
                idx.by_id.insert(Arc::from(k.id.as_str()), ord as u32);
            }
            idx.keys.push(key);
        }
        idx.live = r.bitmap()?;
        let fields = r.len()?;
        for _ in 0..fields {
            let name = r.string()?;
            let text = r.u8()? == 1;
            let terms = r.dict()?;
            let pairs = r.dict()?;
            let mut numbers = BTreeMap::new();
            for _ in 0..r.len()? {
                let k = r.u64()?;
                numbers.insert(k, r.postings()?);
            }
            let mut dates = BTreeMap::new();
            for _ in 0..r.len()? {
                let k = r.u64()? as i64;
                dates.insert(k, r.postings()?);
            }
            let exists = r.bitmap()?;
            idx.fields.insert(
                name,
                FieldIndex {
                    terms,
                    pairs,
                    numbers,
                    dates,
                    exists,
                    text,
                },
            );
        }
        if &r.bytes::<4>()? != END {
            return Err(bad("truncated"));
        }
        Ok((idx, seq))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{Budget, EvalContext, parse_body};

    #[test]
    fn a_snapshot_answers_like_the_index_it_was_taken_of() {
        let mut idx = MemIndex::new();
        for i in 0..300u32 {
            let doc = json!({"uuid": format!("{i:08}"), "manifest": {"version": if i % 3 == 0 { None } else { Some(format!("v{i}")) }},
                "n": i, "when": format!("2020-01-{:02}", 1 + i % 28), "t": format!("word{} common text", i % 7),
                "tags": ["x", format!("y{}", i % 2)], "flag": i % 2 == 0});
            idx.insert(&format!("d{i}"), &doc);
        }
        idx.remove("d5");
        idx.insert("d7", &json!({"uuid": "replaced", "n": 1}));
        let mut buf = Vec::new();
        idx.write_snapshot(42, &mut buf).expect("write");
        let (back, seq) = MemIndex::read_snapshot(&mut &buf[..]).expect("read");
        assert_eq!(seq, 42);
        let loader = |_: u32| None;
        let ctx = EvalContext {
            now: time::OffsetDateTime::UNIX_EPOCH,
            loader: &loader,
            budget: &Budget::new(u64::MAX),
        };
        for q in [
            json!({}),
            json!({"query": {"range": {"n": {"gte": 10, "lt": 20}}}}),
            json!({"query": {"range": {"when": {"gte": "2020-01-10"}}}}),
            json!({"query": {"match_phrase": {"t.text": "common text"}}}),
            json!({"query": {"prefix": {"uuid": "0000001"}}}),
            json!({"query": {"term": {"flag": true}}}),
            json!({"query": {"exists": {"field": "manifest.version"}}}),
            json!({"query": {"ids": {"values": ["d5", "d7", "d8"]}}}),
        ] {
            let q = parse_body(&q).expect("query");
            let (a, b) = (
                idx.search(&q, &ctx).unwrap(),
                back.search(&q, &ctx).unwrap(),
            );
            assert_eq!(a, b, "{q:?}");
            assert_eq!(idx.top(&a, None, 50), back.top(&b, None, 50));
        }
        // Writes continue on a restored index.
        let mut back = back;
        back.insert("d1000", &json!({"uuid": "new"}));
        assert_eq!(back.len(), idx.len() + 1);
        // Truncated and foreign files are refused.
        assert!(MemIndex::read_snapshot(&mut &buf[..buf.len() - 1]).is_err());
        assert!(MemIndex::read_snapshot(&mut &b"something else"[..]).is_err());
    }
}
