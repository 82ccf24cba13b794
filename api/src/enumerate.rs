//! `GET /v1/bundles/all` — enumerate live bundles in key order.
//!
//! Keys under `bundles/` are read in pages and grouped by UUID; a group's live versions are
//! known once its last key (a whole-bundle tombstone sorts last) has been seen. The cursor
//! `search_after` is the key of the last bundle returned, so a page may end in the middle of a
//! UUID's versions without skipping any (a fix of the original, which dropped them).

use axum::extract::{RawQuery, State};
use axum::response::Response;
use dss_core::model::keys::Kind;
use dss_core::model::{DssVersion, ObjectKey, ObjectUuid};
use dss_core::ports::{BlobStore, listing};
use futures::TryStreamExt;
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::paging;
use crate::state::Shared;

/// Keys read per storage page.
const LIST_PAGE: usize = 1000;

#[derive(Default)]
struct Group {
    uuid: Option<ObjectUuid>,
    versions: Vec<DssVersion>,
    dead: Vec<DssVersion>,
    all_dead: bool,
}

impl Group {
    fn live(self) -> Vec<(ObjectUuid, DssVersion)> {
        let Some(uuid) = self.uuid else {
            return Vec::new();
        };
        if self.all_dead {
            return Vec::new();
        }
        let dead = self.dead;
        self.versions
            .into_iter()
            .filter(|v| !dead.contains(v))
            .map(|v| (uuid.clone(), v))
            .collect()
    }
}

/// Collects up to `want` live bundles after `after` (a bundle key), in key order.
async fn live_bundles(
    store: &dyn BlobStore,
    prefix: &str,
    after: Option<&str>,
    want: usize,
) -> ApiResult<(Vec<(ObjectUuid, DssVersion)>, bool)> {
    let mut out = Vec::with_capacity(want);
    let mut group = Group::default();
    let mut listed = std::pin::pin!(listing::objects(
        store,
        prefix,
        after.map(str::to_string),
        LIST_PAGE
    ));
    while let Some(o) = listed.try_next().await? {
        let (uuid, kind) = match ObjectKey::parse(&o.key) {
            Some(ObjectKey::Versioned(Kind::Bundle, u, v)) => (u, Some((v, false))),
            Some(ObjectKey::VersionTombstone(Kind::Bundle, u, v)) => (u, Some((v, true))),
            Some(ObjectKey::Tombstone(Kind::Bundle, u)) => (u, None),
            // Keys outside the layout are skipped rather than failing enumeration.
            _ => continue,
        };
        if group.uuid.as_ref() != Some(&uuid) {
            out.extend(std::mem::take(&mut group).live());
            if out.len() >= want {
                out.truncate(want);
                return Ok((out, true));
            }
            group.uuid = Some(uuid);
        }
        match kind {
            Some((v, false)) => group.versions.push(v),
            Some((v, true)) => group.dead.push(v),
            None => group.all_dead = true,
        }
    }
    out.extend(group.live());
    let more = out.len() > want;
    out.truncate(want);
    Ok((out, more))
}

/// `GET /v1/bundles/all?replica=[&prefix][&per_page][&search_after]`.
pub async fn enumerate(
    State(state): State<Shared>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let cx = state.open_request("enumerateBundles", raw.as_deref())?;
    let q = &cx.query;
    let replica = cx.replica()?;
    let prefix = q
        .get("prefix")
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let per_page = q.int("per_page")? as usize;
    let search_prefix = format!("bundles/{prefix}");
    let after = q.get("search_after").filter(|s| !s.is_empty());
    if let Some(a) = after
        && !a.starts_with("bundles/")
    {
        return Err(ApiError::illegal_arguments(format!(
            "search_after '{a}' is not a bundle key"
        )));
    }
    let (bundles, more) = live_bundles(&*replica.store, &search_prefix, after, per_page).await?;
    let now = DssVersion::from_datetime(state.deployment.clock.now());
    let items: Vec<_> = bundles
        .iter()
        .map(|(u, v)| json!({"uuid": u.as_str(), "version": v.as_str()}))
        .collect();
    let mut body = json!({
        "dss_api": state.deployment.config.public_url(),
        "object": "list",
        "per_page": per_page,
        "search_prefix": search_prefix,
        "event_timestamp": now.as_str(),
        "bundles": items,
        "page_count": bundles.len(),
        "has_more": more,
    });
    let mut link = None;
    if more && let Some((u, v)) = bundles.last() {
        let cursor = ObjectKey::bundle(u, v);
        let next = state.url(
            "/v1/bundles/all",
            &q.with(&[("search_after", cursor.clone()), ("token", String::new())]),
        );
        body["token"] = json!("");
        body["search_after"] = json!(cursor);
        body["link"] = json!(next);
        link = Some(next);
    }
    paging::page(body, "bundles", link)
}
