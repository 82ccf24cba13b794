//! `POST /v1/search` — bundles whose indexed metadata matches an Elasticsearch query.
//!
//! Results are ordered by bundle uuid, then version, both descending (the original's fixed
//! sort); the cursor of the last hit pages on (`search_after`). A page is 206 only when more
//! hits follow, so a result set that fills its last page exactly does not end with an empty
//! page as the original's did.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use dss_core::ports::{SearchError, SearchRequest};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::files::require_fields;
use crate::paging;
use crate::state::Shared;

/// Page size of `output_format=raw`, whatever `per_page` says (as the original).
const RAW_PAGE: usize = 10;

/// The API error of a failed search.
pub fn search_error(e: SearchError) -> ApiError {
    match e {
        SearchError::BadQuery(reason) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "elasticsearch_bad_request",
            format!("Invalid Elasticsearch query was received: {reason}"),
        ),
        SearchError::Unavailable(m) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", m)
        }
        SearchError::Backend(m) => ApiError::internal("search", m),
    }
}

/// `POST /v1/search?replica=[&output_format][&per_page][&search_after]` with `{"es_query": …}`.
pub async fn search(
    State(state): State<Shared>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let body = state.json_body(&headers, body).await?;
    require_fields(&body, &["es_query"])?;
    let cx = state.open_request("postSearch", raw.as_deref())?;
    let q = &cx.query;
    let replica = cx.replica()?;
    let es_query = body.get("es_query").cloned().unwrap_or(Value::Null);
    if !es_query.is_object() {
        return Err(ApiError::illegal_arguments(format!(
            "{es_query} is not of type 'object'"
        )));
    }
    // The query is held to the deployment's limits whatever the backend, before any work.
    let limits = state.deployment.config.limits.query();
    dss_search::parse_body(&es_query)
        .and_then(|parsed| dss_search::limits::check(&parsed, &limits))
        .map_err(|e| search_error(SearchError::BadQuery(e.0)))?;
    let output_format = q.get("output_format").unwrap_or("summary").to_string();
    let raw_output = output_format == "raw";
    let per_page = if raw_output {
        RAW_PAGE
    } else {
        q.int("per_page")? as usize
    };
    let after = q
        .get("search_after")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let mut page = state
        .deployment
        .search
        .search(
            &replica.name,
            &SearchRequest {
                body: es_query.clone(),
                size: per_page + 1,
                after,
                with_source: raw_output,
            },
        )
        .await
        .map_err(search_error)?;
    let more = page.hits.len() > per_page;
    page.hits.truncate(per_page);
    let results: Vec<Value> = page
        .hits
        .iter()
        .map(|h| {
            let (uuid, version) = h.id.split_once('.').unwrap_or((&h.id, ""));
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("version", version)
                .append_pair("replica", &replica.name)
                .finish();
            let mut r = json!({
                "bundle_fqid": h.id,
                "bundle_url": state.url(&format!("/v1/bundles/{uuid}"), &query),
                "search_score": null,
            });
            if let Some(source) = &h.source {
                r["metadata"] = source.clone();
            }
            r
        })
        .collect();
    let next = match page.hits.last() {
        Some(last) if more => Some(state.url(
            "/v1/search",
            &q.with(&[
                ("per_page", per_page.to_string()),
                ("search_after", last.cursor.clone()),
                ("output_format", output_format.clone()),
            ]),
        )),
        _ => None,
    };
    let body = json!({
        "es_query": es_query,
        "results": results,
        "total_hits": page.total,
    });
    paging::page(body, "results", next)
}
