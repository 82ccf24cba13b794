//! Writes that arrive together go out together: a task gathers every `put` waiting when it is
//! free (no added delay — while one `_bulk` request is on its way, the next batch forms), looks
//! up their stored copies with one search per replica, and sends one `_bulk` request with
//! `refresh=wait_for`. Each item's answer goes back to its caller alone: unchanged documents
//! are not sent, a conflict is retried through single-document requests, any other failure is
//! that document's error.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use dss_core::ports::SearchError;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::Cluster;
use crate::layout::{Copy, Plan, reason};
use crate::transport::Body;

/// One `put` waiting for its answer.
struct Put {
    replica: String,
    id: String,
    doc: Value,
    /// The document as sent.
    text: String,
    reply: oneshot::Sender<Result<bool, SearchError>>,
}

/// The handle `put` calls go through.
#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<Put>,
}

impl Writer {
    /// Starts the task writing to `cluster`, at most `max_docs` documents and `max_bytes` bytes
    /// of documents per request.
    pub(crate) fn spawn(cluster: Arc<Cluster>, max_docs: usize, max_bytes: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(cluster, rx, max_docs.max(1), max_bytes));
        Self { tx }
    }

    /// Stores `doc` under `id` in `replica`'s documents, with the writes waiting beside it.
    pub async fn put(&self, replica: &str, id: &str, doc: &Value) -> Result<bool, SearchError> {
        let (reply, answer) = oneshot::channel();
        let put = Put {
            replica: replica.to_string(),
            id: id.to_string(),
            doc: doc.clone(),
            text: doc.to_string(),
            reply,
        };
        let gone = || SearchError::Backend("the search index writer has stopped".into());
        self.tx.send(put).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// The writer's loop: a batch of what waits, then the next.
async fn run(
    cluster: Arc<Cluster>,
    mut rx: mpsc::UnboundedReceiver<Put>,
    max_docs: usize,
    max_bytes: usize,
) {
    let mut waiting: VecDeque<Put> = VecDeque::new();
    loop {
        if waiting.is_empty() {
            match rx.recv().await {
                Some(p) => waiting.push_back(p),
                None => return,
            }
        }
        while let Ok(p) = rx.try_recv() {
            waiting.push_back(p);
        }
        let batch = take_batch(&mut waiting, max_docs, max_bytes);
        write(&cluster, batch).await;
    }
}

/// The first puts of `waiting` within the limits, one per (replica, id): a later write of the
/// same document waits for the next batch, so writes of one document keep their order.
fn take_batch(waiting: &mut VecDeque<Put>, max_docs: usize, max_bytes: usize) -> Vec<Put> {
    let mut batch = Vec::new();
    let mut later = VecDeque::new();
    let mut seen = HashSet::new();
    let mut bytes = 0;
    while let Some(p) = waiting.pop_front() {
        let full =
            batch.len() >= max_docs || (!batch.is_empty() && bytes + p.text.len() > max_bytes);
        if full {
            waiting.push_front(p);
            break;
        }
        if seen.insert((p.replica.clone(), p.id.clone())) {
            bytes += p.text.len();
            batch.push(p);
        } else {
            later.push_back(p);
        }
    }
    later.append(waiting);
    *waiting = later;
    batch
}

/// What the bulk request does for one put.
struct Item {
    put: Put,
    /// Line numbers (of actions) of the stale copies' deletes.
    deletes: Vec<usize>,
    /// Line number of the write.
    write: usize,
}

/// Writes one batch and answers each put.
async fn write(cluster: &Cluster, batch: Vec<Put>) {
    let mut copies: HashMap<(String, String), Vec<Copy>> = HashMap::new();
    let mut by_replica: HashMap<&str, Vec<&str>> = HashMap::new();
    for p in &batch {
        by_replica.entry(&p.replica).or_default().push(&p.id);
    }
    let mut failed_replicas: HashMap<String, SearchError> = HashMap::new();
    for (replica, ids) in by_replica {
        match cluster.copies(replica, &ids).await {
            Ok(found) => {
                for (id, c) in found {
                    copies.entry((replica.to_string(), id)).or_default().push(c);
                }
            }
            Err(e) => {
                failed_replicas.insert(replica.to_string(), e);
            }
        }
    }
    let mut lines = Vec::new();
    let mut actions = 0;
    let mut plans = Vec::new();
    for put in batch {
        if let Some(e) = failed_replicas.get(&put.replica) {
            let _ = put.reply.send(Err(same(e)));
            continue;
        }
        let stored = copies
            .remove(&(put.replica.clone(), put.id.clone()))
            .unwrap_or_default();
        let Plan::Write {
            target,
            current,
            stale,
        } = cluster.names.plan(&put.replica, &put.doc, &stored)
        else {
            let _ = put.reply.send(Ok(false));
            continue;
        };
        if let Err(e) = cluster.prepare(&put.replica, &target).await {
            let _ = put.reply.send(Err(e));
            continue;
        }
        let mut deletes = Vec::new();
        for stale in stale {
            tracing::info!(id = %put.id, index = %stale.index, "removing a stale copy of the document");
            line(
                &mut lines,
                &json!({"delete": {"_index": stale.index, "_id": put.id,
                    "if_seq_no": stale.seq_no, "if_primary_term": stale.primary_term}}),
            );
            deletes.push(actions);
            actions += 1;
        }
        let action = match current {
            Some(c) => json!({"index": {"_index": target, "_id": put.id,
                "if_seq_no": c.seq_no, "if_primary_term": c.primary_term}}),
            None => json!({"create": {"_index": target, "_id": put.id}}),
        };
        line(&mut lines, &action);
        lines.extend_from_slice(put.text.as_bytes());
        lines.push(b'\n');
        plans.push(Item {
            put,
            deletes,
            write: actions,
        });
        actions += 1;
    }
    if plans.is_empty() {
        return;
    }
    let answer = cluster
        .call(
            Method::POST,
            "_bulk?refresh=wait_for",
            Some(&Body::ndjson(lines)),
        )
        .await;
    let items = match answer {
        Ok((status, v)) if status.is_success() => match v["items"].as_array() {
            Some(items) if items.len() == actions => items.clone(),
            _ => {
                let why = format!("_bulk answered without one item per action: {v}");
                return answer_all(plans, |_| SearchError::Backend(why.clone()));
            }
        },
        Ok((status, v)) => {
            let why = format!("_bulk: {status}: {}", reason(&v));
            return answer_all(plans, |_| SearchError::Backend(why.clone()));
        }
        Err(e) => return answer_all(plans, |_| same(&e)),
    };
    for plan in plans {
        let outcome = item_outcome(&items, &plan);
        let result = match outcome {
            Outcome::Written => Ok(true),
            // Lost a race, or the cluster shed this item: look again, one document at a time.
            Outcome::Again => {
                cluster
                    .put_one(&plan.put.replica, &plan.put.id, &plan.put.doc)
                    .await
            }
            Outcome::Failed(why) => Err(SearchError::Backend(format!(
                "indexing {}: {why}",
                plan.put.id
            ))),
        };
        let _ = plan.put.reply.send(result);
    }
}

/// What the items of one put say.
enum Outcome {
    Written,
    Again,
    Failed(String),
}

fn item_outcome(items: &[Value], plan: &Item) -> Outcome {
    let status = |i: usize| -> (u64, &Value) {
        let item = items[i]
            .as_object()
            .and_then(|o| o.values().next())
            .unwrap_or(&Value::Null);
        (item["status"].as_u64().unwrap_or(0), item)
    };
    for &d in &plan.deletes {
        match status(d) {
            (200..=299 | 404, _) => {}
            (409 | 429, _) => return Outcome::Again,
            (_, item) => {
                return Outcome::Failed(format!("removing a stale copy: {}", reason(item)));
            }
        }
    }
    match status(plan.write) {
        (200..=299, _) => Outcome::Written,
        (409 | 429 | 502..=504, _) => Outcome::Again,
        (_, item) => Outcome::Failed(reason(item)),
    }
}

fn answer_all(plans: Vec<Item>, error: impl Fn(&Item) -> SearchError) {
    for plan in plans {
        let e = error(&plan);
        let _ = plan.put.reply.send(Err(e));
    }
}

/// An error like `e`, for each of the puts it ends.
fn same(e: &SearchError) -> SearchError {
    match e {
        SearchError::BadQuery(why) => SearchError::BadQuery(why.clone()),
        SearchError::Unavailable(why) => SearchError::Unavailable(why.clone()),
        SearchError::Backend(why) => SearchError::Backend(why.clone()),
    }
}

fn line(out: &mut Vec<u8>, v: &Value) {
    out.extend_from_slice(v.to_string().as_bytes());
    out.push(b'\n');
}
