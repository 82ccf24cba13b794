//! The middleware of private deployments: a request for an operation that `auth.require`
//! names (see [`crate::private`]) is refused without a valid token.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::Shared;

/// Refuses a request without a valid token when its operation needs one.
pub async fn require_token(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    if let Some(route) = route
        && state.required.needs_token(req.method().as_str(), &route)
        && let Err(e) = state.auth.authenticate(req.headers()).await
    {
        return e.into_response();
    }
    next.run(req).await
}
