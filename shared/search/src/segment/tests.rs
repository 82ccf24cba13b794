//! Segments written from memory and merged: what they hold, their sort keys and paging, and
//! damaged files refused.

use roaring::RoaringBitmap;
use serde_json::json;

use super::write::ids;
use super::*;
use crate::MemIndex;
use crate::source::FieldSource;

fn index(n: u32, first: u32) -> MemIndex {
    let mut m = MemIndex::new();
    for i in 0..n {
        let doc = json!({"uuid": format!("{:08x}-u", (i * 7919) % 1000), "n": i,
            "manifest": {"version": format!("v{}", i % 3)}, "tag": if i % 2 == 0 { "even" } else { "odd" }});
        m.insert_at(&format!("d{i}"), &doc, first + i);
    }
    m
}

#[test]
fn a_segment_holds_the_kept_documents_with_their_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = index(50, 100);
    let mut keep = m.live().clone();
    keep.remove(105);
    let seg = write_from_memory(&m, &keep, &dir.path().join("s"), 100, 149).expect("write");
    assert_eq!(
        seg.meta(),
        SegmentMeta {
            documents: 49,
            first: 100,
            last: 149
        }
    );
    assert_eq!(seg.ordinals(), &keep);
    assert_eq!(seg.ord_of("d7"), Some(107));
    assert_eq!(seg.ord_of("d5"), None, "left out");
    assert_eq!(seg.key(107), m.key(107).cloned());
    assert_eq!(seg.key(105), None);
    assert_eq!(ids(&seg).len(), 49);
    // The even documents, through the field's term.
    let even = seg
        .field("tag")
        .and_then(|f| f.term("even"))
        .map(|p| p.bitmap());
    assert_eq!(even.map(|b| b.len()), Some(25));
    // Reopened from disk, it is the same.
    let again = Segment::open(&dir.path().join("s")).expect("open");
    assert_eq!(again.ordinals(), seg.ordinals());
}

#[test]
fn paging_over_a_segment_matches_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = index(300, 1);
    let seg = write_from_memory(&m, m.live(), &dir.path().join("s"), 1, 300).expect("write");
    let hits: RoaringBitmap = (1..=300).filter(|o| o % 3 != 0).collect();
    let mut after: Option<SortKey> = None;
    let mut seen = 0;
    loop {
        let expected = m.top(&hits, after.as_ref(), 17);
        let mut top = TopK::new(after.as_ref(), 17);
        seg.offer(&hits, &mut top);
        let got: Vec<u32> = top.into_sorted().into_iter().map(|(_, d)| d).collect();
        assert_eq!(got, expected);
        let Some(last) = got.last() else { break };
        seen += got.len();
        after = m.key(*last).cloned();
    }
    assert_eq!(seen, 200);
}

#[test]
fn a_merge_leaves_out_what_is_no_longer_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = index(40, 0);
    let mut low = m.live().clone();
    low.remove_range(20..);
    let mut high = m.live().clone();
    high.remove_range(..20);
    let a = write_from_memory(&m, &low, &dir.path().join("a"), 0, 19).expect("a");
    let b = write_from_memory(&m, &high, &dir.path().join("b"), 20, 39).expect("b");
    let mut keep = m.live().clone();
    keep.remove_range(10..30);
    let merged = merge(&[&a, &b], &keep, &dir.path().join("m")).expect("merge");
    assert_eq!(
        merged.meta(),
        SegmentMeta {
            documents: 20,
            first: 0,
            last: 39
        }
    );
    assert_eq!(merged.ordinals(), &keep);
    let odd = merged
        .field("tag")
        .and_then(|f| f.term("odd"))
        .map(|p| p.bitmap());
    assert_eq!(odd.map(|b| b.len()), Some(10));
    assert_eq!(merged.field("n").map(|f| f.exists().len()), Some(20));
}

#[test]
fn damaged_segments_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = index(10, 0);
    let path = dir.path().join("s");
    write_from_memory(&m, m.live(), &path, 0, 9).expect("write");
    std::fs::write(path.join(format::DOCS), b"\x05\0\0\0").expect("truncate");
    assert!(Segment::open(&path).is_err());
    std::fs::write(path.join(format::META), b"{\"format\": 99}").expect("meta");
    assert!(Segment::open(&path).is_err());
    std::fs::remove_file(path.join(format::META)).expect("rm");
    assert!(
        Segment::open(&path).is_err(),
        "a segment without meta.json is incomplete"
    );
}
