//! Webhook subscriptions in the embedded database, keyed by (replica, kind, uuid) and indexed by
//! owner.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::db::{Db, DbError};
use dss_core::ports::subscriptions::{
    FailureRecord, FilterFailure, Subscription, SubscriptionError, SubscriptionKind,
    SubscriptionStore,
};

impl From<DbError> for SubscriptionError {
    fn from(e: DbError) -> Self {
        SubscriptionError::Backend(e.to_string())
    }
}

/// The embedded [`SubscriptionStore`].
#[derive(Debug, Clone)]
pub struct EmbeddedSubscriptions {
    db: Db,
}

fn row(kind: SubscriptionKind, r: &Row<'_>) -> rusqlite::Result<Subscription> {
    let text: String = r.get(3)?;
    Ok(Subscription {
        uuid: r.get(0)?,
        replica: r.get(1)?,
        owner: r.get(2)?,
        kind,
        document: serde_json::from_str(&text).unwrap_or_default(),
    })
}

fn count(
    c: &Connection,
    replica: &str,
    kind: SubscriptionKind,
    owner: &str,
) -> Result<usize, DbError> {
    let n: i64 = c
        .prepare_cached(
            "SELECT COUNT(*) FROM webhook_subscriptions WHERE replica = ?1 AND kind = ?2 AND owner = ?3",
        )?
        .query_row(params![replica, kind.as_str(), owner], |r| r.get(0))?;
    Ok(n as usize)
}

/// Moves the replica's revision on, inside the caller's transaction.
fn bump(c: &Connection, replica: &str) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO webhook_revisions (replica, revision) VALUES (?1, 1)
         ON CONFLICT(replica) DO UPDATE SET revision = revision + 1",
    )?
    .execute(params![replica])?;
    Ok(())
}

impl EmbeddedSubscriptions {
    /// The store in `db`.
    pub fn new(db: &Db) -> Self {
        Self { db: db.clone() }
    }
}

#[async_trait]
impl SubscriptionStore for EmbeddedSubscriptions {
    async fn create(&self, s: &Subscription, limit: usize) -> Result<bool, SubscriptionError> {
        let s = s.clone();
        Ok(self
            .db
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if count(&tx, &s.replica, s.kind, &s.owner)? > limit {
                    return Ok(false);
                }
                tx.prepare_cached(
                    "INSERT INTO webhook_subscriptions (replica, kind, uuid, owner, document)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    s.replica,
                    s.kind.as_str(),
                    s.uuid,
                    s.owner,
                    s.document.to_string()
                ])?;
                bump(&tx, &s.replica)?;
                tx.commit()?;
                Ok(true)
            })
            .await?)
    }

    async fn get(
        &self,
        replica: &str,
        kind: SubscriptionKind,
        uuid: &str,
    ) -> Result<Option<Subscription>, SubscriptionError> {
        // A point lookup: on this thread, cheaper than a hop to the blocking pool.
        Ok(self.db.read_inline(|c| {
            Ok(c.prepare_cached(
                "SELECT uuid, replica, owner, document FROM webhook_subscriptions
                 WHERE replica = ?1 AND kind = ?2 AND uuid = ?3",
            )?
            .query_row(params![replica, kind.as_str(), uuid], |r| row(kind, r))
            .optional()?)
        })?)
    }

    async fn list_owned(
        &self,
        replica: &str,
        kind: SubscriptionKind,
        owner: &str,
    ) -> Result<Vec<Subscription>, SubscriptionError> {
        let (replica, owner) = (replica.to_string(), owner.to_string());
        Ok(self
            .db
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT uuid, replica, owner, document FROM webhook_subscriptions
                     WHERE replica = ?1 AND kind = ?2 AND owner = ?3 ORDER BY uuid DESC",
                )?;
                let rows = st
                    .query_map(params![replica, kind.as_str(), owner], |r| row(kind, r))?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await?)
    }

    async fn list_replica(&self, replica: &str) -> Result<Vec<Subscription>, SubscriptionError> {
        let replica = replica.to_string();
        Ok(self
            .db
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT uuid, replica, owner, document, kind FROM webhook_subscriptions
                     WHERE replica = ?1 ORDER BY kind, uuid",
                )?;
                let rows = st
                    .query_map(params![replica], |r| {
                        let kind: String = r.get(4)?;
                        let kind =
                            SubscriptionKind::parse(&kind).unwrap_or(SubscriptionKind::Jmespath);
                        row(kind, r)
                    })?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await?)
    }

    async fn revision(&self, replica: &str) -> Result<u64, SubscriptionError> {
        Ok(self.db.read_inline(|c| {
            let n: Option<i64> = c
                .prepare_cached("SELECT revision FROM webhook_revisions WHERE replica = ?1")?
                .query_row(params![replica], |r| r.get(0))
                .optional()?;
            Ok(n.unwrap_or(0) as u64)
        })?)
    }

    async fn record_failures(
        &self,
        failures: &[FilterFailure],
        at_ms: i64,
    ) -> Result<(), SubscriptionError> {
        if failures.is_empty() {
            return Ok(());
        }
        let failures = failures.to_vec();
        Ok(self
            .db
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                {
                    let mut up = tx.prepare_cached(
                        "INSERT INTO webhook_filter_failures (replica, kind, uuid, failures, last_error, last_ms)
                         VALUES (?1, ?2, ?3, 1, ?4, ?5)
                         ON CONFLICT (replica, kind, uuid) DO UPDATE SET failures = failures + 1,
                         last_error = excluded.last_error, last_ms = excluded.last_ms",
                    )?;
                    for f in &failures {
                        up.execute(params![f.replica, f.kind.as_str(), f.uuid, f.reason, at_ms])?;
                    }
                }
                tx.commit()?;
                Ok(())
            })
            .await?)
    }

    async fn failures(
        &self,
        replica: &str,
        kind: SubscriptionKind,
        uuid: &str,
    ) -> Result<Option<FailureRecord>, SubscriptionError> {
        Ok(self.db.read_inline(|c| {
            Ok(c.prepare_cached(
                "SELECT failures, last_error, last_ms FROM webhook_filter_failures
                 WHERE replica = ?1 AND kind = ?2 AND uuid = ?3",
            )?
            .query_row(params![replica, kind.as_str(), uuid], |r| {
                Ok(FailureRecord {
                    count: r.get::<_, i64>(0)?.max(0) as u64,
                    last_error: r.get(1)?,
                    last_ms: r.get(2)?,
                })
            })
            .optional()?)
        })?)
    }

    async fn delete(
        &self,
        replica: &str,
        kind: SubscriptionKind,
        uuid: &str,
    ) -> Result<bool, SubscriptionError> {
        let (replica, uuid) = (replica.to_string(), uuid.to_string());
        Ok(self
            .db
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let n = tx
                    .prepare_cached(
                        "DELETE FROM webhook_subscriptions WHERE replica = ?1 AND kind = ?2 AND uuid = ?3",
                    )?
                    .execute(params![replica, kind.as_str(), uuid])?;
                if n > 0 {
                    bump(&tx, &replica)?;
                }
                tx.prepare_cached(
                    "DELETE FROM webhook_filter_failures WHERE replica = ?1 AND kind = ?2 AND uuid = ?3",
                )?
                .execute(params![replica, kind.as_str(), uuid])?;
                tx.commit()?;
                Ok(n > 0)
            })
            .await?)
    }
}
