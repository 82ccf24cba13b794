//! The `SearchIndex` port on Elasticsearch (7, 8) or OpenSearch (1–3), over their REST API with
//! plain `application/json` (OpenSearch refuses the ES-8 compatibility media type).
//!
//! Documents are laid out as the original did ([`layout`]). A document lives in exactly one
//! index of its replica's alias; writes are optimistic (`if_seq_no`/`if_primary_term`, or
//! create-only) and skipped when unchanged. Writes that arrive together — a reindex, a burst of
//! events — go out as one `_bulk` request ([`bulk`]). Requests go round the cluster's nodes,
//! authenticated and retried ([`transport`]).

mod bulk;
mod layout;
mod sigv4;
mod transport;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dss_config::SearchConfig;
use dss_core::ports::search::{Hit, SearchError, SearchIndex, SearchPage, SearchRequest};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub use layout::index_definition;
pub use sigv4::AwsSigning;

use layout::{Copy, Names, Plan, reason, urlencode};
use transport::{Auth, Body, Transport};

/// Attempts of a write that loses an optimistic-concurrency race.
const WRITE_ATTEMPTS: usize = 5;

/// An Elasticsearch / OpenSearch cluster.
#[derive(Debug, Clone)]
pub struct ElasticsearchIndex {
    cluster: Arc<Cluster>,
    writer: bulk::Writer,
}

/// What the port's methods and the bulk writer share.
#[derive(Debug)]
pub(crate) struct Cluster {
    transport: Transport,
    names: Names,
    /// Indices this process has created (or found) and aliased: writes skip that step then.
    prepared: Mutex<HashSet<String>>,
}

impl ElasticsearchIndex {
    /// A client for the cluster `cfg` names, signing requests with `aws` when
    /// `search.aws_sigv4` is set. Spawns the bulk writer: call within a Tokio runtime.
    pub fn connect(cfg: &SearchConfig, aws: Option<AwsSigning>) -> Result<Self, SearchError> {
        if cfg.aws_sigv4 && aws.is_none() {
            return Err(SearchError::Backend(
                "search.aws_sigv4 is set but no AWS credentials were given".into(),
            ));
        }
        let auth = Auth::from_config(cfg, aws.filter(|_| cfg.aws_sigv4))?;
        let cluster = Arc::new(Cluster {
            transport: Transport::new(cfg, auth)?,
            names: Names::new(&cfg.index_prefix),
            prepared: Mutex::default(),
        });
        let writer = bulk::Writer::spawn(cluster.clone(), cfg.bulk_max_docs, cfg.bulk_max_bytes);
        Ok(Self { cluster, writer })
    }

    /// A client for the open cluster at `url` with defaults otherwise, naming its indices
    /// `{prefix}-…`.
    pub fn new(url: &str, prefix: &str) -> Result<Self, SearchError> {
        Self::connect(
            &SearchConfig {
                url: Some(url.to_string()),
                index_prefix: prefix.to_string(),
                ..SearchConfig::default()
            },
            None,
        )
    }
}

impl Cluster {
    /// A request whose 5xx answers (beyond the retried ones) are backend errors.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Body>,
    ) -> Result<(StatusCode, Value), SearchError> {
        let (status, v) = self.transport.send(method, path, body).await?;
        if status.is_server_error() {
            return Err(SearchError::Backend(format!("{status}: {}", reason(&v))));
        }
        Ok((status, v))
    }

    /// Every copy of each of `ids` under the replica's alias.
    async fn copies(
        &self,
        replica: &str,
        ids: &[&str],
    ) -> Result<Vec<(String, Copy)>, SearchError> {
        let body = json!({
            "query": {"ids": {"values": ids}},
            "seq_no_primary_term": true,
            "size": ids.len() * 10,
        });
        let (status, v) = self
            .call(
                Method::POST,
                &format!("{}/_search", self.names.alias(replica)),
                Some(&Body::json(&body)),
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
            .map(|h| {
                let id = h["_id"].as_str().unwrap_or_default().to_string();
                (id, Copy::from_hit(h))
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
            .call(Method::PUT, index, Some(&Body::json(&index_definition())))
            .await?;
        let exists = v["error"]["type"] == "resource_already_exists_exception";
        if !status.is_success() && !exists {
            return Err(SearchError::Backend(format!(
                "creating {index}: {}",
                reason(&v)
            )));
        }
        let actions =
            json!({"actions": [{"add": {"index": index, "alias": self.names.alias(replica)}}]});
        let (status, v) = self
            .call(Method::POST, "_aliases", Some(&Body::json(&actions)))
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
        let (status, v) = self.call(Method::DELETE, &path, None).await?;
        if status.is_success() || status == StatusCode::NOT_FOUND || status == StatusCode::CONFLICT
        {
            Ok(())
        } else {
            Err(SearchError::Backend(format!("{status}: {}", reason(&v))))
        }
    }

    /// Stores one document with single-document requests, looking again after a lost race:
    /// the way of a write whose bulk item met a conflict.
    async fn put_one(&self, replica: &str, id: &str, doc: &Value) -> Result<bool, SearchError> {
        for _ in 0..WRITE_ATTEMPTS {
            let copies: Vec<Copy> = self
                .copies(replica, &[id])
                .await?
                .into_iter()
                .filter(|(i, _)| i == id)
                .map(|(_, c)| c)
                .collect();
            let Plan::Write {
                target,
                current,
                stale,
            } = self.names.plan(replica, doc, &copies)
            else {
                return Ok(false);
            };
            for stale in stale {
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
            let (status, v) = self
                .call(Method::PUT, &path, Some(&Body::json(doc)))
                .await?;
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
}

#[async_trait]
impl SearchIndex for ElasticsearchIndex {
    async fn put(&self, replica: &str, id: &str, doc: &Value) -> Result<bool, SearchError> {
        self.writer.put(replica, id, doc).await
    }

    async fn get(&self, replica: &str, id: &str) -> Result<Option<Value>, SearchError> {
        Ok(self
            .cluster
            .copies(replica, &[id])
            .await?
            .into_iter()
            .find(|(i, _)| i == id)
            .map(|(_, c)| c.source))
    }

    async fn delete(&self, replica: &str, id: &str) -> Result<bool, SearchError> {
        let copies = self.cluster.copies(replica, &[id]).await?;
        for (_, c) in &copies {
            self.cluster.delete_copy(c, id).await?;
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
            .cluster
            .call(
                Method::POST,
                &format!("{}/_search", self.cluster.names.alias(replica)),
                Some(&Body::json(&body)),
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
