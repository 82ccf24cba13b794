//! The Elasticsearch adapter's writes (`--search-client-only`): HCA-shaped documents put 8 at a
//! time (the index daemon's concurrency) into an OpenSearch-API server, gathered into `_bulk`
//! requests against one document per request (`search.bulk_max_docs = 1`, the adapter's earlier
//! way: a lookup and a write per document), in the same run, five interleaved rounds.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use dss_config::SearchConfig;
use dss_core::ports::SearchIndex;
use dss_elasticsearch::ElasticsearchIndex;
use futures::{StreamExt, TryStreamExt};

use crate::Row;
use crate::stats::{ROUNDS, mmm};

/// Documents per round.
const DOCS: usize = 400;
/// Puts in flight, as `index.concurrency`.
const IN_FLIGHT: usize = 8;
/// Documents per second putting `DOCS` documents with at most `bulk_max_docs` per request.
async fn round(url: &str, bulk_max_docs: usize, offset: usize) -> Result<f64> {
    let cfg = SearchConfig {
        url: Some(url.to_string()),
        index_prefix: format!("bench-{}", uuid::Uuid::new_v4().simple()),
        bulk_max_docs,
        ..SearchConfig::default()
    };
    let index = Arc::new(ElasticsearchIndex::connect(&cfg, None)?);
    let t = Instant::now();
    futures::stream::iter(offset..offset + DOCS)
        .map(|i| {
            let index = index.clone();
            async move {
                let (id, doc) = crate::docgen::document(i, crate::V);
                index.put("aws", &id, &doc).await.context("put")
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(DOCS as f64 / t.elapsed().as_secs_f64())
}

/// The row.
pub async fn run() -> Result<Vec<Row>> {
    let url = std::env::var("DSS_BENCH_ES_URL")
        .context("DSS_BENCH_ES_URL (bench/run.sh starts osmem-server)")?;
    let (mut bulk, mut single) = (Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        eprintln!("search client round {}", r + 1);
        bulk.push(round(&url, 500, r * DOCS).await?);
        single.push(round(&url, 1, r * DOCS).await?);
    }
    Ok(vec![Row {
        name: format!(
            "Elasticsearch adapter writes: {DOCS} documents of ~8.7 KiB, {IN_FLIGHT} in flight, into osmem-server (min / median / max of {ROUNDS} rounds)"
        ),
        result: mmm(bulk, 0, " documents/s with _bulk"),
        goal: "(fewer requests per document)".into(),
        baseline: format!(
            "same run, one lookup and one write per document: {}",
            mmm(single, 0, " documents/s")
        ),
    }])
}
