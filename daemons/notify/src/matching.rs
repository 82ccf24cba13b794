//! Matching an event against every subscription of its replica. The compiled subscriptions of a
//! replica are kept in memory and reloaded only when the store's revision for that replica
//! changes, so an event costs one revision read plus the evaluation, never a scan of the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use dss_shared::ports::{
    EventKind, Subscription, SubscriptionError, SubscriptionKind, SubscriptionStore,
};
use dss_shared::search::{Query, SingleDoc, parse_body};
use jmespath::Expression;
use serde_json::Value;
use time::OffsetDateTime;

use crate::documents::Target;
use crate::payload::{Attachments, attachments, compile_attachments, search, truthy, variable};

/// How subscriptions select events.
enum Filter {
    /// An Elasticsearch query over the search document.
    Query(Box<Query>),
    /// A JMESPath expression over the metadata document; none = every event.
    Jmespath(Option<Expression<'static>>),
    /// A stored query that no longer compiles; matches nothing.
    Invalid,
}

/// A subscription ready to be matched.
pub struct Compiled {
    /// The stored subscription.
    pub sub: Subscription,
    attachments: Option<Attachments>,
}

/// One distinct filter and the subscriptions that use it (many subscribers share filters, and
/// each distinct one is evaluated once per event).
struct Group {
    filter: Filter,
    members: Vec<Arc<Compiled>>,
}

fn compile(sub: &Subscription) -> (String, Filter) {
    match sub.kind {
        SubscriptionKind::Elasticsearch => {
            let body = sub.document.get("es_query");
            let key = body.map(Value::to_string).unwrap_or_default();
            let filter = match body.map(parse_body) {
                Some(Ok(q)) => Filter::Query(Box::new(q)),
                Some(Err(e)) => invalid(sub, &e.to_string()),
                None => invalid(sub, "no es_query"),
            };
            (key, filter)
        }
        SubscriptionKind::Jmespath => {
            match sub.document.get("jmespath_query").and_then(Value::as_str) {
                None | Some("") => (String::new(), Filter::Jmespath(None)),
                Some(q) => {
                    let filter = match jmespath::compile(q) {
                        Ok(e) => Filter::Jmespath(Some(e)),
                        Err(e) => invalid(sub, &e.to_string()),
                    };
                    (q.to_string(), filter)
                }
            }
        }
    }
}

fn invalid(sub: &Subscription, why: &str) -> Filter {
    tracing::error!(subscription = %sub.uuid, replica = %sub.replica, why, "stored subscription query does not compile; it matches nothing");
    Filter::Invalid
}

/// A subscription that matched, with its attachments when it has any for this event.
pub struct Match {
    /// The subscription.
    pub compiled: Arc<Compiled>,
    /// Its attachments object.
    pub attachments: Option<Value>,
}

/// Filters evaluated per thread at least; smaller sets are matched on the calling thread.
const PER_THREAD: usize = 1024;

/// The compiled subscriptions of one replica at one revision.
pub struct SubscriptionSet {
    revision: u64,
    queries: Vec<Group>,
    jmespath: Vec<Group>,
    len: usize,
}

fn group(subs: Vec<(String, Filter, Arc<Compiled>)>) -> Vec<Group> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Group> = Vec::new();
    for (key, filter, c) in subs {
        match index.get(&key) {
            Some(&i) if !matches!(filter, Filter::Invalid) => out[i].members.push(c),
            _ => {
                index.insert(key, out.len());
                out.push(Group {
                    filter,
                    members: vec![c],
                });
            }
        }
    }
    out
}

impl SubscriptionSet {
    /// Compiles `subs`, read at `revision`.
    pub fn new(revision: u64, subs: Vec<Subscription>) -> Self {
        let len = subs.len();
        let (mut queries, mut jmespath) = (Vec::new(), Vec::new());
        for sub in subs {
            let (key, filter) = compile(&sub);
            let kind = sub.kind;
            let c = Arc::new(Compiled {
                attachments: compile_attachments(&sub.document),
                sub,
            });
            match kind {
                SubscriptionKind::Elasticsearch => queries.push((key, filter, c)),
                SubscriptionKind::Jmespath => jmespath.push((key, filter, c)),
            }
        }
        Self {
            revision,
            queries: group(queries),
            jmespath: group(jmespath),
            len,
        }
    }

    /// How many subscriptions it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The subscriptions `target` matches. Large sets are split over the machine's cores.
    pub fn matches(&self, target: &Target, now: OffsetDateTime) -> Vec<Match> {
        let queries = target.search_doc.as_ref().map_or(0, |_| self.queries.len());
        let jmespath = target
            .metadata_doc
            .as_ref()
            .map_or(0, |_| self.jmespath.len());
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min((queries + jmespath) / PER_THREAD)
            .max(1);
        if threads == 1 {
            let mut out = self.match_queries(target, now, &self.queries);
            out.extend(self.match_jmespath(target, &self.jmespath));
            return out;
        }
        let q_chunk = queries.div_ceil(threads).max(1);
        let j_chunk = jmespath.div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let qs = self
                        .queries
                        .get(t * q_chunk..((t + 1) * q_chunk).min(queries));
                    let js = self
                        .jmespath
                        .get(t * j_chunk..((t + 1) * j_chunk).min(jmespath));
                    scope.spawn(move || {
                        let mut out = self.match_queries(target, now, qs.unwrap_or_default());
                        out.extend(self.match_jmespath(target, js.unwrap_or_default()));
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        })
    }

    fn match_queries(&self, target: &Target, now: OffsetDateTime, groups: &[Group]) -> Vec<Match> {
        let mut out = Vec::new();
        let Some(doc) = target.search_doc.as_ref().filter(|_| !groups.is_empty()) else {
            return out;
        };
        let id = format!(
            "{}.{}",
            target.bundle_uuid,
            target.bundle_version.as_deref().unwrap_or_default()
        );
        let one = SingleDoc::new(&id, doc, now);
        let mut var = None;
        for g in groups {
            if let Filter::Query(q) = &g.filter
                && one.matches(q)
            {
                for c in &g.members {
                    let attachments = c.attachments.as_ref().map(|a| {
                        let v = var.get_or_insert_with(|| variable(doc));
                        attachments(a, v)
                    });
                    out.push(Match {
                        compiled: c.clone(),
                        attachments,
                    });
                }
            }
        }
        out
    }

    fn match_jmespath(&self, target: &Target, groups: &[Group]) -> Vec<Match> {
        let mut out = Vec::new();
        let Some(doc) = target.metadata_doc.as_ref().filter(|_| !groups.is_empty()) else {
            return out;
        };
        let var = variable(doc);
        for g in groups {
            let hit = match &g.filter {
                Filter::Jmespath(None) => true,
                Filter::Jmespath(Some(e)) => match search(e, &var) {
                    Ok(v) => truthy(&v),
                    Err(err) => {
                        tracing::debug!(query = %e, error = %err, "jmespath_query failed on the event; not notified");
                        false
                    }
                },
                _ => false,
            };
            if !hit {
                continue;
            }
            for c in &g.members {
                let attachments = c
                    .attachments
                    .as_ref()
                    .filter(|_| target.event_type == EventKind::Create)
                    .map(|a| attachments(a, &var));
                out.push(Match {
                    compiled: c.clone(),
                    attachments,
                });
            }
        }
        out
    }
}

/// The compiled subscriptions of every replica, reloaded when they change.
#[derive(Default)]
pub struct Matcher {
    sets: Mutex<HashMap<String, Arc<SubscriptionSet>>>,
}

impl Matcher {
    /// The current subscriptions of `replica`.
    pub async fn set(
        &self,
        store: &dyn SubscriptionStore,
        replica: &str,
    ) -> Result<Arc<SubscriptionSet>, SubscriptionError> {
        let revision = store.revision(replica).await?;
        if let Some(s) = self.cached(replica)
            && s.revision == revision
        {
            return Ok(s);
        }
        let subs = store.list_replica(replica).await?;
        let set = Arc::new(SubscriptionSet::new(revision, subs));
        tracing::info!(
            replica,
            revision,
            subscriptions = set.len(),
            "loaded subscriptions"
        );
        self.sets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(replica.to_string(), set.clone());
        Ok(set)
    }

    fn cached(&self, replica: &str) -> Option<Arc<SubscriptionSet>> {
        self.sets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(replica)
            .cloned()
    }
}
