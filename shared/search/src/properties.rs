//! Properties of the query language over generated queries and documents: nothing a user can
//! send panics (parsing, checking, evaluating, date math), and searching many documents
//! agrees with matching each one alone.

use proptest::prelude::*;
use serde_json::{Value, json};
use time::macros::datetime;

use roaring::RoaringBitmap;

use super::ast::QueryError;
use super::dates::{Rounding, parse_bound};
use super::eval::evaluate;
use super::index::{EvalContext, MemIndex, SingleDoc};
use super::limits::{Budget, QueryLimits, check};
use super::parse_body;
use super::segment::{merge, write_from_memory};

const FIELDS: &[&str] = &[
    "uuid",
    "files.donor.age",
    "files.donor.name",
    "files.donor.name.text",
    "files.donor.when",
    "files.tags",
    "files.tags.text",
    "files.*",
    "*",
    "missing",
];

const WORDS: &[&str] = &[
    "kidney",
    "Homo",
    "sapiens",
    "brain",
    "a-1",
    "38",
    "2020-01-05",
    "",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(WORDS).prop_map(str::to_string),
        any::<String>(),
    ]
}

fn field() -> impl Strategy<Value = String> {
    prop::sample::select(FIELDS).prop_map(str::to_string)
}

/// Range bounds: numbers, dates, date math (including far beyond the representable years),
/// and anything.
fn bound() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|x| json!(x)),
        prop::sample::select(
            &[
                "2020-01-01",
                "2019||+1M/d",
                "now-1d/d",
                "now+99999999d",
                "now-9223372036854775807y",
                "2020-02-30",
            ][..]
        )
        .prop_map(|s| json!(s)),
        word().prop_map(|s| json!(s)),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        (field(), word()).prop_map(|(f, w)| json!({"term": {f: w}})),
        (field(), prop::collection::vec(word(), 0..4))
            .prop_map(|(f, ws)| json!({"terms": {f: ws}})),
        (field(), word(), any::<bool>()).prop_map(|(f, w, and)| {
            json!({"match": {f: {"query": w, "operator": if and { "and" } else { "or" }}}})
        }),
        (field(), word()).prop_map(|(f, w)| json!({"match_phrase": {f: w}})),
        (field(), bound(), bound())
            .prop_map(|(f, a, b)| json!({"range": {f: {"gte": a, "lt": b}}})),
        field().prop_map(|f| json!({"exists": {"field": f}})),
        (field(), word()).prop_map(|(f, w)| json!({"prefix": {f: w}})),
        (field(), word()).prop_map(|(f, w)| json!({"wildcard": {f: format!("{w}*")}})),
        prop::collection::vec(prop::sample::select(&["d0", "d1", "d2", "x"][..]), 0..3)
            .prop_map(|ids| json!({"ids": {"values": ids}})),
        any::<String>().prop_map(|q| json!({"query_string": {"query": q}})),
        Just(json!({"match_all": {}})),
    ]
}

fn query() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            (
                prop::collection::vec(inner.clone(), 0..3),
                prop::collection::vec(inner.clone(), 0..3),
                prop::collection::vec(inner.clone(), 0..2),
                prop::option::of(-2i64..3),
            )
                .prop_map(|(must, should, not, msm)| {
                    let mut b = json!({"must": must, "should": should, "must_not": not});
                    if let Some(m) = msm {
                        b["minimum_should_match"] = json!(m);
                    }
                    json!({"bool": b})
                }),
            inner
                .clone()
                .prop_map(|q| json!({"nested": {"path": "files.donor", "query": q}})),
            inner.prop_map(|q| json!({"constant_score": {"filter": q}})),
        ]
    })
}

fn doc() -> impl Strategy<Value = Value> {
    (
        prop::option::of(any::<i32>()),
        prop::collection::vec(word(), 0..3),
        prop::option::of(prop::sample::select(&["2020-01-05", "2019-12-31T23:59:59Z"][..])),
        prop::collection::vec(word(), 0..3),
    )
        .prop_map(|(age, name, when, tags)| {
            json!({"uuid": format!("u{}", age.unwrap_or(0)),
                "files": {"donor": [{"age": age, "name": name.join(" "), "when": when}], "tags": tags}})
        })
}

const NOW: time::OffsetDateTime = datetime!(2020-07-01 12:00 UTC);

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Search over all documents and matching each one alone give the same answer, and no
    /// generated query panics on the way.
    #[test]
    fn search_agrees_with_single_document_matching(
        q in query(),
        docs in prop::collection::vec(doc(), 1..5),
    ) {
        let Ok(parsed) = parse_body(&json!({"query": q})) else { return Ok(()) };
        if check(&parsed, &QueryLimits::default()).is_err() {
            return Ok(());
        }
        let mut idx = MemIndex::new();
        let ids: Vec<String> = (0..docs.len()).map(|i| format!("d{i}")).collect();
        for (id, d) in ids.iter().zip(&docs) {
            idx.insert(id, d);
        }
        let loader = |ord: u32| docs.get(ord as usize).cloned();
        let budget = Budget::new(QueryLimits::default().max_cost);
        let ctx = EvalContext { now: NOW, loader: &loader, budget: &budget };
        let Ok(hits) = idx.search(&parsed, &ctx) else { return Ok(()) };
        for (i, (id, d)) in ids.iter().zip(&docs).enumerate() {
            let one = SingleDoc::new(id, d, NOW)
                .matches(&parsed, &Budget::new(u64::MAX))
                .expect("within an unlimited budget");
            prop_assert_eq!(one, hits.contains(i as u32), "{} on {}", q, d);
        }
    }

    /// Segments on disk answer as the index in memory they were written from, also after two
    /// of them were merged, with replaced documents left out.
    #[test]
    fn segments_answer_as_memory_does(
        q in query(),
        docs in prop::collection::vec(doc(), 1..6),
        replaced in prop::collection::vec(any::<bool>(), 6),
    ) {
        let Ok(parsed) = parse_body(&json!({"query": q})) else { return Ok(()) };
        if check(&parsed, &QueryLimits::default()).is_err() {
            return Ok(());
        }
        // Documents at ordinals 10, 11, …; some are then written again (replaced) at the end.
        let mut mem = MemIndex::new();
        let mut all: Vec<(u32, Value)> = Vec::new();
        for (i, d) in docs.iter().enumerate() {
            let ord = 10 + i as u32;
            mem.insert_at(&format!("d{i}"), d, ord);
            all.push((ord, d.clone()));
        }
        for (i, d) in docs.iter().enumerate() {
            if replaced[i] {
                let ord = mem.next_ord();
                mem.insert_at(&format!("d{i}"), d, ord);
                all.push((ord, d.clone()));
            }
        }
        let loader = |ord: u32| all.iter().find(|(o, _)| *o == ord).map(|(_, d)| d.clone());
        let eval = |src: &dyn Fn(&EvalContext<'_>) -> Result<RoaringBitmap, QueryError>| {
            let budget = Budget::new(u64::MAX);
            src(&EvalContext { now: NOW, loader: &loader, budget: &budget })
        };
        let expected = eval(&|ctx| mem.search(&parsed, ctx)).expect("unlimited");
        let dir = tempfile::tempdir().expect("tempdir");
        let live = mem.live().clone();
        let whole = write_from_memory(&mem, &live, &dir.path().join("whole"), 10, mem.next_ord() - 1)
            .expect("write");
        let got = eval(&|ctx| evaluate(&whole, &parsed, ctx)).expect("unlimited");
        prop_assert_eq!(&got, &expected, "{} on one segment", q);
        // Two segments split at the middle ordinal, then merged.
        let mid = 10 + docs.len() as u32 / 2;
        let (mut low, mut high) = (live.clone(), live.clone());
        low.remove_range(mid..);
        high.remove_range(..mid);
        let a = write_from_memory(&mem, &low, &dir.path().join("a"), 10, mid - 1).expect("a");
        let b = write_from_memory(&mem, &high, &dir.path().join("b"), mid, mem.next_ord() - 1)
            .expect("b");
        let mut both = eval(&|ctx| evaluate(&a, &parsed, ctx)).expect("unlimited");
        both |= eval(&|ctx| evaluate(&b, &parsed, ctx)).expect("unlimited");
        prop_assert_eq!(&both, &expected, "{} on two segments", q);
        let merged = merge(&[&a, &b], &live, &dir.path().join("m")).expect("merge");
        let got = eval(&|ctx| evaluate(&merged, &parsed, ctx)).expect("unlimited");
        prop_assert_eq!(&got, &expected, "{} on the merged segment", q);
    }

    /// Any JSON is parsed (or refused) without a panic.
    #[test]
    fn any_body_parses_or_is_refused(body in any::<String>()) {
        if let Ok(v) = serde_json::from_str::<Value>(&body) {
            let _ = parse_body(&v).map(|q| check(&q, &QueryLimits::default()));
        }
    }

    /// Date math on any text is a date or not one, never a panic.
    #[test]
    fn date_math_never_panics(s in any::<String>(), n in any::<i64>(), unit in prop::sample::select(&['y', 'M', 'w', 'd', 'h', 'H', 'm', 's', '/', 'x'][..])) {
        for text in [s.clone(), format!("now+{n}{unit}"), format!("now-{n}{unit}/{unit}"), format!("2020||{s}")] {
            for r in [Rounding::Up, Rounding::Down] {
                let _ = parse_bound(&text, NOW, r);
            }
        }
    }
}
