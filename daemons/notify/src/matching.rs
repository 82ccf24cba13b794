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

/// How a subscription selects events.
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
    filter: Filter,
    attachments: Option<Attachments>,
}

impl Compiled {
    /// Compiles `sub`'s query and attachments; a query that does not compile is logged and
    /// matches nothing.
    pub fn new(sub: Subscription) -> Self {
        let filter = match sub.kind {
            SubscriptionKind::Elasticsearch => match sub.document.get("es_query").map(parse_body) {
                Some(Ok(q)) => Filter::Query(Box::new(q)),
                Some(Err(e)) => invalid(&sub, &e.to_string()),
                None => invalid(&sub, "no es_query"),
            },
            SubscriptionKind::Jmespath => {
                match sub.document.get("jmespath_query").and_then(Value::as_str) {
                    None | Some("") => Filter::Jmespath(None),
                    Some(q) => match jmespath::compile(q) {
                        Ok(e) => Filter::Jmespath(Some(e)),
                        Err(e) => invalid(&sub, &e.to_string()),
                    },
                }
            }
        };
        let attachments = compile_attachments(&sub.document);
        Self {
            sub,
            filter,
            attachments,
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

/// The compiled subscriptions of one replica at one revision.
pub struct SubscriptionSet {
    revision: u64,
    queries: Vec<Arc<Compiled>>,
    jmespath: Vec<Arc<Compiled>>,
}

impl SubscriptionSet {
    /// Compiles `subs`, read at `revision`.
    pub fn new(revision: u64, subs: Vec<Subscription>) -> Self {
        let (mut queries, mut jmespath) = (Vec::new(), Vec::new());
        for s in subs {
            let c = Arc::new(Compiled::new(s));
            match c.sub.kind {
                SubscriptionKind::Elasticsearch => queries.push(c),
                SubscriptionKind::Jmespath => jmespath.push(c),
            }
        }
        Self {
            revision,
            queries,
            jmespath,
        }
    }

    /// How many subscriptions it holds.
    pub fn len(&self) -> usize {
        self.queries.len() + self.jmespath.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The subscriptions `target` matches.
    pub fn matches(&self, target: &Target, now: OffsetDateTime) -> Vec<Match> {
        let mut out = Vec::new();
        if let Some(doc) = target
            .search_doc
            .as_ref()
            .filter(|_| !self.queries.is_empty())
        {
            let id = format!(
                "{}.{}",
                target.bundle_uuid,
                target.bundle_version.as_deref().unwrap_or_default()
            );
            let one = SingleDoc::new(&id, doc, now);
            let mut var = None;
            for c in &self.queries {
                if let Filter::Query(q) = &c.filter
                    && one.matches(q)
                {
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
        if let Some(doc) = target
            .metadata_doc
            .as_ref()
            .filter(|_| !self.jmespath.is_empty())
        {
            let var = variable(doc);
            for c in &self.jmespath {
                let hit = match &c.filter {
                    Filter::Jmespath(None) => true,
                    Filter::Jmespath(Some(e)) => match search(e, &var) {
                        Ok(v) => truthy(&v),
                        Err(err) => {
                            tracing::debug!(subscription = %c.sub.uuid, error = %err, "jmespath_query failed on the event; not notified");
                            false
                        }
                    },
                    _ => false,
                };
                if hit {
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
