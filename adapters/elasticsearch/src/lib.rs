//! The `SearchIndex` port on Elasticsearch (7, 8) or OpenSearch (1–3), over their REST API with
//! plain `application/json` (OpenSearch refuses the ES-8 compatibility media type).
//!
//! Layout as the original: per replica, one index per bundle *shape*
//! (`{prefix}-{replica}-docs-{sha1(shape_descriptor)}`, so schema versions with conflicting field
//! types never share a mapping) under the alias `{prefix}-{replica}-docs-alias`, which searches
//! read. Each index gets the original mapping: strings are lower-cased keywords with an analysed
//! `.text` sub-field, dates are detected. A document lives in exactly one index of the alias;
//! writes are optimistic (`if_seq_no`/`if_primary_term`, or create-only) and skipped when
//! unchanged.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dss_core::ports::search::{Hit, SearchError, SearchIndex, SearchPage, SearchRequest};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

/// Attempts of a write that loses an optimistic-concurrency race.
const WRITE_ATTEMPTS: usize = 5;

/// An Elasticsearch / OpenSearch cluster.
#[derive(Debug, Clone)]
pub struct ElasticsearchIndex {
    http: reqwest::Client,
    base: String,
    prefix: String,
    /// Indices this process has created (or found) and aliased: writes skip that step then.
    prepared: Arc<Mutex<HashSet<String>>>,
}

/// One stored copy of a document.
struct Copy {
    index: String,
    seq_no: u64,
    primary_term: u64,
    source: Value,
}

fn unavailable(e: reqwest::Error) -> SearchError {
    SearchError::Unavailable(e.to_string())
}

/// The reason ES gave, from its error body.
fn reason(body: &Value) -> String {
    let e = &body["error"];
    match (e["type"].as_str(), e["reason"].as_str()) {
        (Some(t), Some(r)) => {
            let cause = e["caused_by"]["reason"]
                .as_str()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default();
            format!("{t}: {r}{cause}")
        }
        _ => body.to_string(),
    }
}

/// The original DSS index settings and mapping (ES 5 mapping types dropped): the body that
/// creates a docs index.
pub fn index_definition() -> Value {
    json!({
        "settings": {"analysis": {"normalizer": {"keyword_lowercase": {"type": "custom", "filter": ["lowercase"]}}}},
        "mappings": {
            "date_detection": true,
            "dynamic_date_formats": ["yyyy-MM-dd HH:mm:ss", "strict_date_optional_time"],
            "dynamic_templates": [{"strings": {"match_mapping_type": "string", "mapping": {
                "type": "keyword", "normalizer": "keyword_lowercase", "ignore_above": 256,
                "fields": {"text": {"type": "text"}}}}}],
            "properties": {"uuid": {"type": "keyword"}, "manifest": {"properties": {"version": {"type": "keyword"}}}}
        }
    })
}

impl ElasticsearchIndex {
    /// A client for the cluster at `url` (`http://host:9200`), naming its indices `{prefix}-…`.
    pub fn new(url: &str, prefix: &str) -> Result<Self, SearchError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| SearchError::Backend(e.to_string()))?;
        Ok(Self {
            http,
            base: url.trim_end_matches('/').to_string(),
            prefix: prefix.to_string(),
            prepared: Arc::default(),
        })
    }

    fn alias(&self, replica: &str) -> String {
        format!("{}-{replica}-docs-alias", self.prefix)
    }

    fn shape_index(&self, replica: &str, shape: &str) -> String {
        let digest = hex::encode(Sha1::digest(shape.as_bytes()));
        format!("{}-{replica}-docs-{digest}", self.prefix)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), SearchError> {
        let mut r = self.http.request(method, format!("{}/{path}", self.base));
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let res = r.send().await.map_err(unavailable)?;
        let status = res.status();
        let text = res.text().await.map_err(unavailable)?;
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        // Overload and a cluster or proxy that cannot serve now: the backend is unavailable.
        if matches!(status.as_u16(), 429 | 502 | 503 | 504) {
            return Err(SearchError::Unavailable(format!(
                "{status}: {}",
                reason(&v)
            )));
        }
        if status.is_server_error() {
            return Err(SearchError::Backend(format!("{status}: {}", reason(&v))));
        }
        Ok((status, v))
    }

    /// Every copy of `id` under the replica's alias.
    async fn copies(&self, replica: &str, id: &str) -> Result<Vec<Copy>, SearchError> {
        let body =
            json!({"query": {"ids": {"values": [id]}}, "seq_no_primary_term": true, "size": 10});
        let (status, v) = self
            .call(
                reqwest::Method::POST,
                &format!("{}/_search", self.alias(replica)),
                Some(&body),
            )
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if !status.is_success() {
            return Err(SearchError::Backend(format!("{status}: {}", reason(&v))));
        }
        Ok(v["hits"]["hits"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|h| Copy {
                index: h["_index"].as_str().unwrap_or_default().to_string(),
                seq_no: h["_seq_no"].as_u64().unwrap_or(0),
                primary_term: h["_primary_term"].as_u64().unwrap_or(1),
                source: h["_source"].clone(),
            })
            .collect())
    }

    /// Creates `index` with the mapping (if missing) and adds it to the replica's alias, once per
    /// process and index.
    async fn prepare(&self, replica: &str, index: &str) -> Result<(), SearchError> {
        if self.is_prepared(index) {
            return Ok(());
        }
        let (status, v) = self
            .call(reqwest::Method::PUT, index, Some(&index_definition()))
            .await?;
        let exists = v["error"]["type"] == "resource_already_exists_exception";
        if !status.is_success() && !exists {
            return Err(SearchError::Backend(format!(
                "creating {index}: {}",
                reason(&v)
            )));
        }
        let actions = json!({"actions": [{"add": {"index": index, "alias": self.alias(replica)}}]});
        let (status, v) = self
            .call(reqwest::Method::POST, "_aliases", Some(&actions))
            .await?;
        if !status.is_success() {
            return Err(SearchError::Backend(format!(
                "aliasing {index}: {}",
                reason(&v)
            )));
        }
        self.prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(index.to_string());
        Ok(())
    }

    fn is_prepared(&self, index: &str) -> bool {
        self.prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(index)
    }

    async fn delete_copy(&self, c: &Copy, id: &str) -> Result<(), SearchError> {
        let path = format!(
            "{}/_doc/{}?refresh=wait_for&if_seq_no={}&if_primary_term={}",
            c.index,
            urlencode(id),
            c.seq_no,
            c.primary_term
        );
        let (status, v) = self.call(reqwest::Method::DELETE, &path, None).await?;
        if status.is_success() || status == StatusCode::NOT_FOUND || status == StatusCode::CONFLICT
        {
            Ok(())
        } else {
            Err(SearchError::Backend(format!("{status}: {}", reason(&v))))
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[async_trait]
impl SearchIndex for ElasticsearchIndex {
    async fn put(&self, replica: &str, id: &str, doc: &Value) -> Result<bool, SearchError> {
        for _ in 0..WRITE_ATTEMPTS {
            let copies = self.copies(replica, id).await?;
            // Tombstone documents carry no shape: they replace the bundle's document in place.
            let target = match doc["shape_descriptor"].as_str() {
                Some(shape) => self.shape_index(replica, shape),
                None => match copies.first() {
                    Some(c) => c.index.clone(),
                    None => self.shape_index(replica, "None"),
                },
            };
            let current = copies.iter().find(|c| c.index == target);
            if copies.len() == 1 && current.is_some_and(|c| &c.source == doc) {
                return Ok(false);
            }
            for stale in copies.iter().filter(|c| c.index != target) {
                tracing::info!(id, index = %stale.index, "removing a stale copy of the document");
                self.delete_copy(stale, id).await?;
            }
            self.prepare(replica, &target).await?;
            let path = match current {
                Some(c) => format!(
                    "{target}/_doc/{}?refresh=wait_for&if_seq_no={}&if_primary_term={}",
                    urlencode(id),
                    c.seq_no,
                    c.primary_term
                ),
                None => format!("{target}/_create/{}?refresh=wait_for", urlencode(id)),
            };
            let (status, v) = self.call(reqwest::Method::PUT, &path, Some(doc)).await?;
            if status.is_success() {
                return Ok(true);
            }
            if status != StatusCode::CONFLICT {
                return Err(SearchError::Backend(format!(
                    "indexing {id}: {}",
                    reason(&v)
                )));
            }
            // Someone wrote in between: look again.
        }
        Err(SearchError::Backend(format!(
            "indexing {id}: kept losing write races"
        )))
    }

    async fn get(&self, replica: &str, id: &str) -> Result<Option<Value>, SearchError> {
        Ok(self
            .copies(replica, id)
            .await?
            .into_iter()
            .next()
            .map(|c| c.source))
    }

    async fn delete(&self, replica: &str, id: &str) -> Result<bool, SearchError> {
        let copies = self.copies(replica, id).await?;
        for c in &copies {
            self.delete_copy(c, id).await?;
        }
        Ok(!copies.is_empty())
    }

    async fn search(&self, replica: &str, req: &SearchRequest) -> Result<SearchPage, SearchError> {
        let mut body = match &req.body {
            Value::Object(m) => Value::Object(m.clone()),
            _ => {
                return Err(SearchError::BadQuery(
                    "the search body must be a JSON object".into(),
                ));
            }
        };
        body["size"] = json!(req.size);
        body["_source"] = json!(req.with_source);
        body["track_total_hits"] = json!(true);
        body["sort"] = json!([{"uuid": {"order": "desc"}}, {"manifest.version": {"missing": "_last", "order": "desc"}}]);
        if let Some(obj) = body.as_object_mut() {
            obj.remove("from");
            obj.remove("search_after");
        }
        if let Some(after) = &req.after {
            let values: Value = serde_json::from_str(after).map_err(|_| {
                SearchError::BadQuery(format!("malformed search_after cursor {after:?}"))
            })?;
            body["search_after"] = values;
        }
        let (status, v) = self
            .call(
                reqwest::Method::POST,
                &format!("{}/_search", self.alias(replica)),
                Some(&body),
            )
            .await?;
        if status == StatusCode::NOT_FOUND && v["error"]["type"] == "index_not_found_exception" {
            return Ok(SearchPage {
                total: 0,
                hits: Vec::new(),
            });
        }
        if status == StatusCode::BAD_REQUEST {
            return Err(SearchError::BadQuery(reason(&v)));
        }
        if !status.is_success() {
            return Err(SearchError::Backend(format!("{status}: {}", reason(&v))));
        }
        let failed = v["_shards"]["failed"].as_u64().unwrap_or(0);
        if failed > 0 {
            return Err(SearchError::Backend(format!(
                "Elasticsearch: {failed} of {} shards failed.",
                v["_shards"]["total"]
            )));
        }
        let total = v["hits"]["total"]["value"]
            .as_u64()
            .or_else(|| v["hits"]["total"].as_u64())
            .unwrap_or(0);
        let hits = v["hits"]["hits"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|h| Hit {
                id: h["_id"].as_str().unwrap_or_default().to_string(),
                cursor: h["sort"].to_string(),
                source: req.with_source.then(|| h["_source"].clone()),
            })
            .collect();
        Ok(SearchPage { total, hits })
    }
}
