//! `/v1/subscriptions` — webhook subscriptions, owned by the caller's e-mail, per replica.
//!
//! A body with a non-empty `es_query` makes an Elasticsearch subscription (validated by the
//! search engine's query parser); otherwise it is a JMESPath one (`jmespath_query` must compile).
//! Callback URLs must be `http(s)` and must not reach internal addresses unless
//! `notify.callback_allow` permits them. `hmac_secret_key` is stored but never returned.
//! `GET /v1/subscriptions/{uuid}/deliveries` (an extension) shows the webhook delivery log.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dss_config::LimitsConfig;
use dss_core::model::DssVersion;
use dss_core::ports::{Attempt, Delivery, DeliveryState, Subscription, SubscriptionKind};
use dss_search::jmespath_limits;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::params::{Query, parse_uuid};
use crate::state::Shared;

/// Body keys a subscription may have.
const FIELDS: &[&str] = &[
    "callback_url",
    "es_query",
    "jmespath_query",
    "method",
    "encoding",
    "form_fields",
    "payload_form_field",
    "hmac_secret_key",
    "hmac_key_id",
    "attachments",
];

fn bad(code: &'static str, title: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, title)
}

fn store_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::metadata("subscription store", e)
}

fn kind_of(q: &Query) -> ApiResult<SubscriptionKind> {
    let raw = q.get("subscription_type").unwrap_or("jmespath");
    SubscriptionKind::parse(raw).ok_or_else(|| {
        ApiError::illegal_arguments(format!(
            "'{raw}' is not one of ['elasticsearch', 'jmespath']"
        ))
    })
}

/// The document as returned: without the secret.
fn public(s: &Subscription) -> Value {
    let mut d = s.document.clone();
    if let Some(m) = d.as_object_mut() {
        m.remove("hmac_secret_key");
    }
    d
}

fn string_field(m: &Map<String, Value>, key: &str) -> ApiResult<Option<String>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(ApiError::illegal_arguments(format!(
            "{v} is not of type 'string'"
        ))),
    }
}

/// Validates the body's shape and values, as the original's schema and checks did, and the
/// filter and attachments against the deployment's limits.
fn validate(m: &Map<String, Value>, limits: &LimitsConfig) -> ApiResult<SubscriptionKind> {
    if let Some(extra) = m.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ApiError::illegal_arguments(format!(
            "Additional properties are not allowed ('{extra}' was unexpected)"
        )));
    }
    let callback = string_field(m, "callback_url")?
        .ok_or_else(|| ApiError::illegal_arguments("'callback_url' is a required property"))?;
    if !(callback.starts_with("http://") || callback.starts_with("https://")) {
        return Err(ApiError::illegal_arguments(format!(
            "'{callback}' does not match 'https?://'"
        )));
    }
    if let Some(method) = string_field(m, "method")?
        && !matches!(method.as_str(), "POST" | "PUT")
    {
        return Err(ApiError::illegal_arguments(format!(
            "'{method}' is not one of ['POST', 'PUT']"
        )));
    }
    if let Some(enc) = string_field(m, "encoding")?
        && !matches!(enc.as_str(), "application/json" | "multipart/form-data")
    {
        return Err(ApiError::illegal_arguments(format!(
            "'{enc}' is not one of ['application/json', 'multipart/form-data']"
        )));
    }
    for key in [
        "payload_form_field",
        "hmac_secret_key",
        "hmac_key_id",
        "jmespath_query",
    ] {
        string_field(m, key)?;
    }
    match m.get("form_fields") {
        None | Some(Value::Null) => {}
        Some(Value::Object(f)) => {
            if let Some((k, v)) = f.iter().find(|(_, v)| !v.is_string()) {
                return Err(ApiError::illegal_arguments(format!(
                    "form field '{k}': {v} is not of type 'string'"
                )));
            }
        }
        Some(v) => {
            return Err(ApiError::illegal_arguments(format!(
                "{v} is not of type 'object'"
            )));
        }
    }
    match m.get("attachments") {
        None | Some(Value::Null) => {}
        Some(Value::Object(a)) => {
            for (name, spec) in a {
                let (Some("jmespath"), Some(expr)) = (
                    spec.get("type").and_then(Value::as_str),
                    spec.get("expression").and_then(Value::as_str),
                ) else {
                    return Err(ApiError::illegal_arguments(format!(
                        "attachment '{name}' must be {{\"type\": \"jmespath\", \"expression\": <string>}}"
                    )));
                };
                if name.starts_with('_') {
                    return Err(bad(
                        "invalid_attachment_name",
                        format!("Attachment names must not start with an underscore ({name})"),
                    ));
                }
                if expr.is_empty() {
                    return Err(bad(
                        "invalid_attachment_expression",
                        format!("Unable to compile JMESPath expression for attachment {name}"),
                    ));
                }
                if let Err(e) = jmespath_limits::compile(expr, &limits.jmespath()) {
                    return Err(bad(
                        "invalid_attachment_expression",
                        format!("Unable to compile JMESPath expression for attachment {name}: {e}"),
                    ));
                }
            }
        }
        Some(v) => {
            return Err(ApiError::illegal_arguments(format!(
                "{v} is not of type 'object'"
            )));
        }
    }
    let es_query = match m.get("es_query") {
        None | Some(Value::Null) => None,
        Some(Value::Object(q)) if q.is_empty() => None,
        Some(q @ Value::Object(_)) => Some(q),
        Some(v) => {
            return Err(ApiError::illegal_arguments(format!(
                "{v} is not of type 'object'"
            )));
        }
    };
    if let Some(q) = es_query {
        filter_check(SubscriptionKind::Elasticsearch, q, limits)
            .map_err(|e| bad("elasticsearch_bad_request", e))?;
        return Ok(SubscriptionKind::Elasticsearch);
    }
    if let Some(expr) = m
        .get("jmespath_query")
        .filter(|v| !v.is_null() && v.as_str() != Some(""))
    {
        filter_check(SubscriptionKind::Jmespath, expr, limits)
            .map_err(|e| bad("invalid_jmespath", e))?;
    }
    Ok(SubscriptionKind::Jmespath)
}

/// Why a filter would be refused under `limits` (stored ones are checked again when shown:
/// limits may have changed since).
fn filter_check(
    kind: SubscriptionKind,
    filter: &Value,
    limits: &LimitsConfig,
) -> Result<(), String> {
    match kind {
        SubscriptionKind::Elasticsearch => dss_search::parse_body(filter)
            .and_then(|q| dss_search::limits::check(&q, &limits.query()))
            .map_err(|e| format!("Invalid Elasticsearch query was received: {e}")),
        SubscriptionKind::Jmespath => {
            let expr = filter.as_str().unwrap_or_default();
            jmespath_limits::compile(expr, &limits.jmespath())
                .map(drop)
                .map_err(|e| format!("Unable to compile JMESPath expression: {e}"))
        }
    }
}

/// How the subscription's filter fares: refused by the current limits, or failing on events
/// (an extension of the original's document, for its owner).
async fn status(state: &Shared, s: &Subscription) -> ApiResult<Value> {
    let key = match s.kind {
        SubscriptionKind::Elasticsearch => "es_query",
        SubscriptionKind::Jmespath => "jmespath_query",
    };
    let filter = s
        .document
        .get(key)
        .filter(|v| !v.is_null() && v.as_str() != Some(""));
    let refused =
        filter.and_then(|f| filter_check(s.kind, f, &state.deployment.config.limits).err());
    let failures = state
        .deployment
        .subscriptions
        .failures(&s.replica, s.kind, &s.uuid)
        .await
        .map_err(store_error)?;
    let mut out = json!({"filter": if refused.is_some() { "refused" } else { "ok" }});
    if let Some(why) = refused {
        out["reason"] = why.into();
    }
    if let Some(f) = failures {
        out["evaluation_failures"] = f.count.into();
        out["last_failure"] = f.last_error.into();
        out["last_failure_time"] = rfc3339_ms(f.last_ms).into();
    }
    Ok(out)
}

/// `PUT /v1/subscriptions?replica=`.
pub async fn put(
    State(state): State<Shared>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let caller = state.auth.authenticate(&headers).await?;
    let mut m = state.json_body(&headers, body).await?;
    let kind = validate(&m, &state.deployment.config.limits)?;
    let cx = state.request_of(caller, "putSubscription", raw.as_deref())?;
    let replica = cx.replica()?.name.clone();
    state.writable()?;
    cx.member()?;
    let owner = cx.owner()?.to_string();
    let notify = &state.deployment.config.notify;
    let callback = m["callback_url"].as_str().unwrap_or_default().to_string();
    dss_core::callback::check(&callback, &notify.allowed_nets())
        .await
        .map_err(|why| bad("invalid_callback_url", why))?;
    let uuid = uuid::Uuid::new_v4().to_string();
    m.insert("owner".into(), owner.clone().into());
    m.insert("uuid".into(), uuid.clone().into());
    m.insert("replica".into(), replica.clone().into());
    let sub = Subscription {
        uuid: uuid.clone(),
        replica,
        owner,
        kind,
        document: Value::Object(m),
    };
    let created = state
        .deployment
        .subscriptions
        .create(&sub, notify.max_subscriptions_per_owner)
        .await
        .map_err(store_error)?;
    if !created {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            format!(
                "Users cannot exceed {} subscriptions!",
                notify.max_subscriptions_per_owner
            ),
        ));
    }
    let body = match kind {
        SubscriptionKind::Elasticsearch => json!({"uuid": uuid}),
        SubscriptionKind::Jmespath => public(&sub),
    };
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

/// `GET /v1/subscriptions?replica=[&subscription_type]`.
pub async fn list(
    State(state): State<Shared>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let cx = state
        .request("listSubscriptions", &headers, raw.as_deref())
        .await?;
    let q = &cx.query;
    let replica = cx.replica()?.name.clone();
    let kind = kind_of(q)?;
    cx.member()?;
    let owner = cx.owner()?;
    let subs = state
        .deployment
        .subscriptions
        .list_owned(&replica, kind, owner)
        .await
        .map_err(store_error)?;
    let list: Vec<Value> = subs.iter().map(public).collect();
    Ok(axum::Json(json!({"subscriptions": list})).into_response())
}

/// Finds the caller's subscription, or answers 404 (403 for someone else's Elasticsearch one,
/// as the original).
async fn owned(state: &Shared, q: &Query, raw_uuid: &str, owner: &str) -> ApiResult<Subscription> {
    let uuid = parse_uuid(raw_uuid)?;
    let replica = state.replica(q)?.name.clone();
    let kind = kind_of(q)?;
    let found = state
        .deployment
        .subscriptions
        .get(&replica, kind, uuid.as_str())
        .await
        .map_err(store_error)?;
    match found {
        Some(s) if s.owner == owner => Ok(s),
        Some(_) if kind == SubscriptionKind::Elasticsearch => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Your credentials can't access this subscription!",
        )),
        _ => Err(ApiError::not_found("Cannot find subscription!")),
    }
}

/// `GET /v1/subscriptions/{uuid}?replica=[&subscription_type]`.
pub async fn get(
    State(state): State<Shared>,
    Path(raw_uuid): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let cx = state
        .request("getSubscription", &headers, raw.as_deref())
        .await?;
    let q = &cx.query;
    cx.member()?;
    let owner = cx.owner()?;
    let s = owned(&state, q, &raw_uuid, owner).await?;
    let mut doc = public(&s);
    doc["status"] = status(&state, &s).await?;
    Ok(axum::Json(doc).into_response())
}

/// `DELETE /v1/subscriptions/{uuid}?replica=[&subscription_type]` (ownership only; no group).
pub async fn delete(
    State(state): State<Shared>,
    Path(raw_uuid): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let cx = state
        .request("deleteSubscription", &headers, raw.as_deref())
        .await?;
    let q = &cx.query;
    let owner = cx.owner()?;
    let s = owned(&state, q, &raw_uuid, owner).await?;
    state.writable()?;
    if !state
        .deployment
        .subscriptions
        .delete(&s.replica, s.kind, &s.uuid)
        .await
        .map_err(store_error)?
    {
        return Err(ApiError::not_found("Cannot find subscription!"));
    }
    let now = DssVersion::from_datetime(state.deployment.clock.now());
    Ok(axum::Json(json!({"timeDeleted": now.as_str()})).into_response())
}

/// Milliseconds since the epoch as RFC 3339 UTC text with milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&fmt).unwrap_or_default()
}

/// One attempt of the delivery log.
pub fn attempt_json(a: &Attempt) -> Value {
    json!({
        "delivery": a.delivery,
        "attempt": a.attempt,
        "time": rfc3339_ms(a.at_ms),
        "status": a.status,
        "latency_ms": a.latency_ms,
        "error": a.error,
        "state": a.outcome.as_str(),
    })
}

/// One delivery of the outbox.
pub fn delivery_json(d: &Delivery) -> Value {
    json!({
        "delivery": d.new.id,
        "event_type": d.new.event_type,
        "bundle_uuid": d.new.bundle_uuid,
        "bundle_version": d.new.bundle_version,
        "state": d.state.as_str(),
        "attempts": d.attempts,
        "created": rfc3339_ms(d.created_ms),
        "updated": rfc3339_ms(d.updated_ms),
        "last_status": d.last_status,
        "last_error": d.last_error,
    })
}

/// `GET /v1/subscriptions/{uuid}/deliveries?replica=[&subscription_type][&state][&limit]` — the
/// delivery log (an extension).
pub async fn deliveries(
    State(state): State<Shared>,
    Path(raw_uuid): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let caller = state.auth.authenticate(&headers).await?;
    let cx = state.request_of(caller, "getSubscriptionDeliveries", raw.as_deref())?;
    let q = &cx.query;
    cx.member()?;
    let owner = cx.owner()?;
    let s = owned(&state, q, &raw_uuid, owner).await?;
    let limit = usize::try_from(q.int("limit")?).unwrap_or(100);
    let log = &state.deployment.deliveries;
    let body = match q.get("state") {
        None => {
            let attempts = log.attempts(&s.uuid, limit).await.map_err(store_error)?;
            json!({"attempts": attempts.iter().map(attempt_json).collect::<Vec<_>>()})
        }
        Some(raw_state) => {
            let st = DeliveryState::parse(raw_state).ok_or_else(|| {
                ApiError::illegal_arguments(format!("'{raw_state}' is not a delivery state"))
            })?;
            let list = log
                .list(&s.uuid, Some(st), limit)
                .await
                .map_err(store_error)?;
            json!({"deliveries": list.iter().map(delivery_json).collect::<Vec<_>>()})
        }
    };
    Ok(axum::Json(body).into_response())
}
