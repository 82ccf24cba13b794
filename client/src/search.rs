//! `POST /v1/search`, every page.

use reqwest::Method;
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::DssClient;
use crate::error::ClientError;

/// What a search is asked for.
pub struct SearchRequest<'a> {
    /// The replica to search.
    pub replica: &'a str,
    /// The Elasticsearch query (`{"query": …}` or `{}` for everything).
    pub es_query: &'a Value,
    /// `summary` (bundle FQIDs and URLs) or `raw` (also each bundle's metadata).
    pub output_format: &'a str,
    /// Stop after this many results.
    pub limit: Option<usize>,
    /// Results asked per page (the deployment may cap it).
    pub per_page: Option<usize>,
}

/// How a search went.
#[derive(Debug, Serialize)]
pub struct SearchSummary {
    /// Bundles the query matches, as the deployment counts them.
    pub total_hits: Option<u64>,
    /// Results passed on.
    pub returned: usize,
}

/// Runs the search page by page, passing each result (a JSON object with `bundle_fqid`,
/// `bundle_url`, and `metadata` for `raw`) to `on_result` in order.
pub async fn search(
    client: &DssClient,
    req: &SearchRequest<'_>,
    mut on_result: impl FnMut(Value),
) -> Result<SearchSummary, ClientError> {
    if !matches!(req.output_format, "summary" | "raw") {
        return Err(ClientError::Invalid(format!(
            "output format '{}' is not summary or raw",
            req.output_format
        )));
    }
    let per_page = req.per_page.map(|n| n.to_string());
    let mut query = vec![
        ("replica", req.replica),
        ("output_format", req.output_format),
    ];
    if let Some(n) = &per_page {
        query.push(("per_page", n));
    }
    let url = client.url("v1/search", &query)?;
    let body = json!({"es_query": req.es_query});
    let mut summary = SearchSummary {
        total_hits: None,
        returned: 0,
    };
    let limit = req.limit.unwrap_or(usize::MAX);
    client
        .each_page(Method::POST, url, Some(&body), |page, results| {
            if summary.total_hits.is_none() {
                summary.total_hits = page.get("total_hits").and_then(Value::as_u64);
            }
            for r in results {
                if summary.returned == limit {
                    return false;
                }
                summary.returned += 1;
                on_result(r);
            }
            summary.returned < limit
        })
        .await?;
    Ok(summary)
}
