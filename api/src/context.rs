//! The one step before a handler's own work: the caller and the operation's checked query
//! parameters, in the original's order — the token first (connexion's security), then the
//! parameters (its validation) — and from them the replica, the group check and the owner,
//! which the handler asks for in the order the original's handler checked them.

use axum::http::HeaderMap;
use dss_runtime::deployment::Replica;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::params::Query;
use crate::state::AppState;

/// A request whose token and parameters were checked.
pub struct RequestContext<'a> {
    state: &'a AppState,
    caller: Option<Caller>,
    /// The operation's query parameters, validated, with their defaults.
    pub query: Query,
}

impl AppState {
    /// Checks the caller's token, then the query parameters of operation `op`.
    pub async fn request(
        &self,
        op: &str,
        headers: &HeaderMap,
        raw_query: Option<&str>,
    ) -> ApiResult<RequestContext<'_>> {
        let caller = self.auth.authenticate(headers).await?;
        let query = self.params.check(op, raw_query)?;
        Ok(RequestContext {
            state: self,
            caller: Some(caller),
            query,
        })
    }

    /// Checks the query parameters of operation `op` for a caller authenticated before (by
    /// handlers that read their body in between, as the original validated bodies first).
    pub fn request_of(
        &self,
        caller: Caller,
        op: &str,
        raw_query: Option<&str>,
    ) -> ApiResult<RequestContext<'_>> {
        Ok(RequestContext {
            state: self,
            caller: Some(caller),
            query: self.params.check(op, raw_query)?,
        })
    }

    /// Checks the query parameters of operation `op`, which anyone may call (a private
    /// deployment's `auth.require` is enforced before the handler).
    pub fn open_request(&self, op: &str, raw_query: Option<&str>) -> ApiResult<RequestContext<'_>> {
        Ok(RequestContext {
            state: self,
            caller: None,
            query: self.params.check(op, raw_query)?,
        })
    }
}

impl RequestContext<'_> {
    /// The replica the `replica` parameter names.
    pub fn replica(&self) -> ApiResult<&Replica> {
        self.state.replica(&self.query)
    }

    /// The authenticated caller.
    pub fn caller(&self) -> ApiResult<&Caller> {
        self.caller
            .as_ref()
            .ok_or_else(|| ApiError::internal("request context", "the operation takes no caller"))
    }

    /// Refuses a caller outside the writer groups (administrators pass).
    pub fn member(&self) -> ApiResult<()> {
        self.state.auth.require_group(self.caller()?)
    }

    /// The caller's e-mail: the owner of what it creates.
    pub fn owner(&self) -> ApiResult<&str> {
        self.state.auth.email(self.caller()?)
    }
}
