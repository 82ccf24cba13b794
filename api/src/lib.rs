//! The DSS HTTP API: files, bundles, search, events, subscriptions, signed downloads, the OpenAPI
//! document, version and health.

pub mod auth;
pub mod blob_route;
pub mod body;
pub mod body_timeout;
pub mod bounded_json;
pub mod bundles;
pub mod checkout;
pub mod collections;
pub mod connection;
pub mod context;
pub mod copies;
pub mod drs;
pub mod enumerate;
pub mod error;
pub mod events;
pub mod files;
pub mod health;
pub mod jwks_refresh;
pub mod misc;
pub mod openapi;
pub mod paging;
pub mod params;
pub mod private;
pub mod rate_limit;
pub mod search;
pub mod server;
pub mod shed;
pub mod state;
pub mod storage;
pub mod subscriptions;
pub mod token_gate;
pub mod ui;
pub mod validate;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, Uri, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use dss_core::correlation;
use dss_core::signing::BLOB_ROUTE;
use dss_runtime::deployment::Deployment;

pub use state::{AppState, Shared};

/// Builds the shared state from an opened deployment; `local` is trusted only when the local
/// issuer is enabled (`auth.local_issuer`, by default when no other issuer is configured).
pub fn state(deployment: Deployment, local: Option<&auth::LocalIssuer>) -> anyhow::Result<Shared> {
    let local = local.filter(|_| deployment.config.auth.local_issuer_enabled());
    let auth = auth::Auth::new(&deployment.config.auth, local)?;
    let staging = deployment.config.staging_dir();
    std::fs::create_dir_all(&staging)?;
    let staging_dir = staging.canonicalize()?;
    let mut document = openapi::document(&deployment.config.public_url())?;
    let required = private::apply(&deployment.config.auth.require, &mut document)
        .map_err(|e| anyhow::anyhow!("configuration key `auth.require`: {e}"))?;
    let params = validate::ParamRules::from_document(&document)
        .map_err(|e| anyhow::anyhow!("API document: {e}"))?;
    let file_wait = Duration::from_millis(deployment.config.api.bundle_file_wait_ms);
    Ok(Arc::new(AppState {
        deployment,
        auth,
        staging_dir,
        file_wait,
        api_document: serde_json::to_vec(&document)?.into(),
        manifests: storage::ManifestCache::new(1024, 1000),
        params,
        required,
    }))
}

/// The router with every route.
pub fn router(state: Shared) -> Router {
    let api = &state.deployment.config.api;
    let header = api.client_ip_header.as_deref().map(Arc::from);
    let limiter = |rate: f64, burst: u32| rate_limit::Limiter {
        limit: Arc::new(rate_limit::RateLimit::new(rate, burst)),
        header: header.clone(),
    };
    let search_limit = limiter(api.search_rate, api.search_burst);
    let checkout_limit = limiter(api.checkout_rate, api.checkout_burst);
    let in_flight = shed::InFlight::new(api.max_in_flight);
    let pause = Duration::from_secs(api.body_read_timeout_secs);
    Router::new()
        .route(
            "/v1/files/{uuid}",
            get(files::get).head(files::head).put(files::put),
        )
        .route(
            "/v1/files/{uuid}/content",
            axum::routing::put(files::upload),
        )
        .route("/v1/bundles/all", get(enumerate::enumerate))
        .route(
            "/v1/bundles/{uuid}",
            get(bundles::get)
                .put(bundles::put)
                .patch(bundles::patch)
                .delete(bundles::delete),
        )
        .route(
            "/v1/bundles/{uuid}/checkout",
            axum::routing::post(checkout::start).layer(middleware::from_fn_with_state(
                checkout_limit,
                rate_limit::limited,
            )),
        )
        .route(
            "/v1/bundles/checkout/{checkout_job_id}",
            get(checkout::status),
        )
        .route(
            "/v1/search",
            axum::routing::post(search::search).layer(middleware::from_fn_with_state(
                search_limit,
                rate_limit::limited,
            )),
        )
        .route("/v1/events", get(events::list))
        .route("/v1/events/{uuid}", get(events::get))
        .route(
            "/v1/subscriptions",
            get(subscriptions::list).put(subscriptions::put),
        )
        .route(
            "/v1/subscriptions/{uuid}",
            get(subscriptions::get).delete(subscriptions::delete),
        )
        .route(
            "/v1/subscriptions/{uuid}/deliveries",
            get(subscriptions::deliveries),
        )
        .route(
            "/v1/collections",
            get(collections::list).put(collections::put),
        )
        .route(
            "/v1/collections/{uuid}",
            get(collections::get)
                .patch(collections::patch)
                .delete(collections::delete),
        )
        .merge(drs_routes("/ga4gh/drs/v1"))
        // The original's path, listed in its API document.
        .merge(drs_routes("/v1/ga4gh/drs/v1"))
        .route("/v1/swagger.json", get(openapi::swagger))
        .route("/v1/ui", get(ui::redirect))
        .route(ui::PAGE, get(ui::index))
        .route("/v1/ui/{file}", get(ui::asset))
        .route("/version", get(misc::version))
        .route("/internal/health", get(health::health))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(misc::metrics))
        .route(BLOB_ROUTE, get(blob_route::download))
        .fallback(misc::not_found)
        .method_not_allowed_fallback(misc::method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            token_gate::require_token,
        ))
        .layer(middleware::from_fn(connection::close_when_body_unread))
        .layer(middleware::from_fn(move |req, next| {
            body_timeout::limit_pauses(pause, req, next)
        }))
        .layer(middleware::from_fn_with_state(in_flight, shed::shed))
        .layer(middleware::from_fn(common_headers))
        .layer(middleware::from_fn_with_state(state.clone(), count_request))
        // Liveness outside the layers: never shed, timed or counted, so a busy instance is not
        // restarted for being busy.
        .route("/healthz", get(health::healthz))
        .with_state(state)
}

/// The GA4GH DRS routes under `base`.
fn drs_routes(base: &str) -> Router<Shared> {
    Router::new()
        .route(&format!("{base}/objects/{{object_id}}"), get(drs::object))
        .route(
            &format!("{base}/objects/{{object_id}}/access/{{access_id}}"),
            get(drs::access),
        )
        .route(&format!("{base}/service-info"), get(drs::service_info))
}

/// Counts every answered request by method, matched route and status, with its latency.
async fn count_request(
    axum::extract::State(state): axum::extract::State<Shared>,
    req: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let res = next.run(req).await;
    state.deployment.metrics.observe_request(
        &method,
        &route,
        res.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    res
}

/// Adds `Retry-After: 10` to 5xx answers of retryable requests (as the original did).
async fn common_headers(req: Request, next: Next) -> Response {
    let retryable = matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE
    ) || (req.method() == Method::POST && req.uri().path().contains("search"));
    // The request's correlation id: the caller's, when usable, else a new one. It is on every
    // log line of the request and travels with the work the request causes.
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| correlation::valid(v))
        .map_or_else(correlation::new_id, str::to_string);
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    // A caller's W3C trace continues in this request's span and in the work it causes.
    let traceparent = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut res = correlation::scope(
        id.clone(),
        dss_runtime::telemetry::in_span(span, traceparent.as_deref(), next.run(req)),
    )
    .await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    let s = res.status().as_u16();
    if retryable
        && matches!(s, 500 | 502 | 503 | 504 | 507)
        && !res.headers().contains_key(header::RETRY_AFTER)
    {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
    }
    res
}

/// The header carrying a request's correlation id, in and out.
const REQUEST_ID: &str = "x-request-id";

/// Drops one trailing `/` before routing (`/v1/collections/` is `/v1/collections`), except
/// from the user interface's page, whose relative asset links need it.
pub(crate) fn strip_trailing_slash(mut req: Request) -> Request {
    let path = req.uri().path();
    if path.len() > 1 && path.ends_with('/') && path != ui::PAGE {
        let trimmed = &path[..path.len() - 1];
        let pq = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_string(),
        };
        if let Ok(uri) = pq.parse::<Uri>() {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// Serves the API on `listener` until `shutdown` resolves; in-flight requests finish first
/// (within `api.shutdown_grace_secs`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Shared,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let api = &state.deployment.config.api;
    let limits = server::ServerLimits {
        max_connections: api.max_connections,
        header_read_timeout: Duration::from_secs(api.header_read_timeout_secs),
        shutdown_grace: Duration::from_secs(api.shutdown_grace_secs),
    };
    server::serve(listener, router(state), limits, shutdown).await
}

/// Serves `GET /metrics`, `/healthz` and `/readyz` of `deployment` on `listener` until
/// `shutdown` resolves (for processes that run daemons without the API).
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    deployment: dss_runtime::deployment::Deployment,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let metrics = deployment.metrics.clone();
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, dss_runtime::metrics::CONTENT_TYPE)],
                        metrics.render(),
                    )
                }
            }),
        )
        .route("/healthz", get(health::healthz))
        .route(
            "/readyz",
            get(move || {
                let deployment = deployment.clone();
                async move { health::readyz_of(&deployment).await }
            }),
        );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
