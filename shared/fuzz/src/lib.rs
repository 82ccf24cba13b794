//! What the fuzz targets share: documents to evaluate queries on, and the check that searching
//! them agrees with matching each one alone.

use std::sync::OnceLock;

use dss_search::{Budget, EvalContext, MemIndex, Query, QueryLimits, SingleDoc};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// `now` of date math.
pub const NOW: OffsetDateTime = time::macros::datetime!(2020-07-01 12:00 UTC);

/// A few search documents of the shapes DSS indexes.
pub fn documents() -> &'static [Value] {
    static DOCS: OnceLock<Vec<Value>> = OnceLock::new();
    DOCS.get_or_init(|| {
        vec![
            json!({"uuid": "a", "files": {"donor": [{"age": 38, "name": "Homo sapiens",
                "when": "2019-01-05T10:00:00Z"}], "tags": ["kidney", "Alpha beta"]}}),
            json!({"uuid": "b", "files": {"donor": [{"age": 2, "name": "Mus musculus"},
                {"age": 70, "name": "Homo sapiens"}], "tags": []}, "admin_deleted": true}),
            json!({"uuid": "c", "manifest": {"version": null}, "reason": "consent withdrawn"}),
        ]
    })
}

/// Evaluates `q` (already within the limits) on [`documents`]: no panic, and search agrees
/// with single-document matching whenever the budget was enough.
pub fn evaluate(q: &Query) {
    let docs = documents();
    let mut idx = MemIndex::new();
    let ids: Vec<String> = (0..docs.len()).map(|i| format!("d{i}")).collect();
    for (id, d) in ids.iter().zip(docs) {
        idx.insert(id, d);
    }
    let loader = |ord: u32| docs.get(ord as usize).cloned();
    let budget = Budget::new(QueryLimits::default().max_cost);
    let ctx = EvalContext {
        now: NOW,
        loader: &loader,
        budget: &budget,
    };
    let Ok(hits) = idx.search(q, &ctx) else {
        return;
    };
    for (i, (id, d)) in ids.iter().zip(docs).enumerate() {
        let one = SingleDoc::new(id, d, NOW)
            .matches(q, &Budget::new(QueryLimits::default().max_cost))
            .unwrap_or(hits.contains(i as u32));
        assert_eq!(one, hits.contains(i as u32), "{q:?} on {d}");
    }
}
