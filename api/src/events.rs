//! `GET /v1/events` and `GET /v1/events/{uuid}` — the replica's bundle events journal.
//!
//! Events are served as *event streams*: consecutive events grouped in blocks of
//! [`STREAM_EVENTS`] by journal position, each with the offset and size of every event's
//! document in the stream's bytes, which a signed `stream_url` serves (with `Range`). Pages
//! hold `per_page` streams; the next page's `token` is the first time of the following stream.
//! `from_date` is inclusive, `to_date` exclusive, as in the original.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dss_core::model::DssVersion;
use dss_core::ports::{EventInfo, EventKind};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::paging;
use crate::params::parse_uuid;
use crate::state::Shared;

/// Events per stream (the original compacted journals of 1000 events).
pub const STREAM_EVENTS: u64 = 1000;

/// The signed-URL "bucket" of a replica's journal streams.
pub fn stream_bucket(replica: &str) -> String {
    format!("journal/{replica}")
}

fn date(q: &crate::params::Query, name: &str) -> ApiResult<Option<String>> {
    match q.get(name).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => DssVersion::parse(s)
            .map(|v| Some(v.as_str().to_string()))
            .map_err(|_| {
                ApiError::illegal_arguments(format!(
                    "{name} '{s}' is not a DSS_VERSION timestamp (YYYY-MM-DDTHHMMSS.ffffffZ)"
                ))
            }),
    }
}

fn stream(state: &Shared, replica: &str, events: &[EventInfo]) -> Value {
    let (first, last) = (&events[0], &events[events.len() - 1]);
    let mut offset = 0u64;
    let listed: Vec<Value> = events
        .iter()
        .map(|e| {
            let v = json!({"event_id": e.event_id, "timestamp": e.timestamp, "offset": offset, "size": e.size});
            offset += e.size;
            v
        })
        .collect();
    let ttl = state.deployment.config.api.download_url_ttl_secs as i64;
    let expires = state.deployment.clock.now().unix_timestamp() + ttl;
    let url = state.deployment.signer.sign(
        &stream_bucket(replica),
        &format!("{}-{}", first.seq, last.seq),
        expires,
        None,
    );
    json!({
        "journal_id": format!("{}--{}--{replica}-{}-{}", first.timestamp, last.timestamp, first.seq, last.seq),
        "from_date": first.timestamp,
        "to_date": last.timestamp,
        "size": offset,
        "events": listed,
        "stream_url": url,
    })
}

/// `GET /v1/events?replica=[&from_date][&to_date][&per_page][&token]`.
pub async fn list(State(state): State<Shared>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let cx = state.open_request("listEvents", raw.as_deref())?;
    let q = &cx.query;
    let replica = cx.replica()?.name.clone();
    let from = match date(q, "token")? {
        Some(t) => Some(t),
        None => date(q, "from_date")?,
    };
    let to = date(q, "to_date")?;
    if let (Some(f), Some(t)) = (&from, &to)
        && f > t
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "to_date must be greater than from_date",
        ));
    }
    let per_page = q.int("per_page")? as u64;
    let events = state
        .deployment
        .journal
        .list(
            &replica,
            from.as_deref(),
            to.as_deref(),
            ((per_page + 1) * STREAM_EVENTS) as usize,
        )
        .await
        .map_err(|e| ApiError::metadata("events journal", e))?;
    let mut streams: Vec<&[EventInfo]> = Vec::new();
    let mut rest = &events[..];
    while let Some(first) = rest.first() {
        if streams.len() as u64 > per_page {
            break;
        }
        let block = (first.seq - 1) / STREAM_EVENTS;
        let n = rest
            .iter()
            .take_while(|e| (e.seq - 1) / STREAM_EVENTS == block)
            .count();
        streams.push(&rest[..n]);
        rest = &rest[n..];
    }
    let next = (streams.len() as u64 > per_page).then(|| {
        let token = streams[per_page as usize][0].timestamp.clone();
        state.url("/v1/events", &q.with(&[("token", token)]))
    });
    streams.truncate(per_page as usize);
    let body = json!({
        "event_streams": streams.iter().map(|s| stream(&state, &replica, s)).collect::<Vec<_>>(),
    });
    paging::page(body, "event_streams", next)
}

/// `GET /v1/events/{uuid}?replica=&version=`: the bundle version's CREATE document, unless the
/// bundle has been tombstoned since.
pub async fn get(
    State(state): State<Shared>,
    Path(uuid): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let cx = state.open_request("getEvent", raw.as_deref())?;
    let q = &cx.query;
    let uuid = parse_uuid(&uuid)?;
    let replica = cx.replica()?.name.clone();
    let version = q.required("version")?.to_string();
    let not_found = || ApiError::not_found("Cannot find event!");
    let Some(doc) = find(
        &state,
        &replica,
        &format!("{uuid}.{version}"),
        EventKind::Create,
    )
    .await?
    else {
        return Err(not_found());
    };
    for dead in [format!("{uuid}.{version}.dead"), format!("{uuid}.dead")] {
        if find(&state, &replica, &dead, EventKind::Tombstone)
            .await?
            .is_some()
        {
            return Err(not_found());
        }
    }
    let doc: Value =
        serde_json::from_str(&doc).map_err(|e| ApiError::internal("stored event", e))?;
    Ok(axum::Json(doc).into_response())
}

async fn find(
    state: &Shared,
    replica: &str,
    id: &str,
    kind: EventKind,
) -> ApiResult<Option<String>> {
    state
        .deployment
        .journal
        .find(replica, id, kind)
        .await
        .map_err(|e| ApiError::metadata("events journal", e))
}
