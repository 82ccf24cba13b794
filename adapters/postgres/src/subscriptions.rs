//! Webhook subscriptions in the shared database, keyed by (replica, kind, uuid) and listed by
//! owner. The per-owner limit holds across processes: creations for one owner take a
//! transaction-scoped advisory lock on that owner before counting.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use deadpool_postgres::Pool;
use tokio_postgres::Row;

use crate::error::{Failure, col, free_text};
use crate::pool::{Params, query, query_opt};
use dss_core::ports::subscriptions::{
    FailureRecord, FilterFailure, Subscription, SubscriptionError, SubscriptionKind,
    SubscriptionStore,
};

/// The PostgreSQL [`SubscriptionStore`].
#[derive(Debug, Clone)]
pub struct PgSubscriptions {
    pool: Pool,
}

impl PgSubscriptions {
    pub(crate) fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

fn subscription(r: &Row, kind: Option<SubscriptionKind>) -> Result<Subscription, Failure> {
    let text: String = col(r, 3)?;
    let kind = match kind {
        Some(k) => k,
        None => {
            let k: String = col(r, 4)?;
            SubscriptionKind::parse(&k).unwrap_or(SubscriptionKind::Jmespath)
        }
    };
    Ok(Subscription {
        uuid: col(r, 0)?,
        replica: col(r, 1)?,
        owner: col(r, 2)?,
        kind,
        document: serde_json::from_str(&text).unwrap_or_default(),
    })
}

/// Moves the replica's revision on, inside the caller's transaction.
async fn bump(c: &impl GenericClient, replica: &str) -> Result<(), Failure> {
    c.execute(
        "INSERT INTO webhook_revisions (replica, revision) VALUES ($1, 1)
         ON CONFLICT (replica) DO UPDATE SET revision = webhook_revisions.revision + 1",
        &[&replica],
    )
    .await?;
    Ok(())
}

impl PgSubscriptions {
    async fn create_in(&self, s: &Subscription, limit: usize) -> Result<bool, Failure> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let kind = s.kind.as_str();
        // One lock per (replica, kind, owner), named unambiguously.
        let lock = serde_json::json!(["subscription-limit", s.replica, kind, s.owner]).to_string();
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&lock],
        )
        .await?;
        let n: i64 = col(
            &tx.query_one(
                "SELECT count(*) FROM webhook_subscriptions
                 WHERE replica = $1 AND kind = $2 AND owner = $3",
                &[&s.replica, &kind, &s.owner],
            )
            .await?,
            0,
        )?;
        if usize::try_from(n).unwrap_or(usize::MAX) > limit {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO webhook_subscriptions (replica, kind, uuid, owner, document)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &s.replica,
                &kind,
                &s.uuid,
                &s.owner,
                &s.document.to_string(),
            ],
        )
        .await?;
        bump(&tx, &s.replica).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn query(
        &self,
        sql: &str,
        params: Params<'_>,
        kind: Option<SubscriptionKind>,
    ) -> Result<Vec<Subscription>, Failure> {
        query(&self.pool, sql, params)
            .await?
            .iter()
            .map(|r| subscription(r, kind))
            .collect()
    }

    async fn record_in(&self, failures: &[FilterFailure], at_ms: i64) -> Result<(), Failure> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let st = tx
            .prepare_cached(
                "INSERT INTO webhook_filter_failures (replica, kind, uuid, failures, last_error, last_ms)
                 VALUES ($1, $2, $3, 1, $4, $5)
                 ON CONFLICT (replica, kind, uuid) DO UPDATE SET
                 failures = webhook_filter_failures.failures + 1,
                 last_error = excluded.last_error, last_ms = excluded.last_ms",
            )
            .await?;
        for f in failures {
            tx.execute(
                &st,
                &[
                    &f.replica,
                    &f.kind.as_str(),
                    &f.uuid,
                    &free_text(&f.reason),
                    &at_ms,
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete_in(
        &self,
        replica: &str,
        kind: SubscriptionKind,
        uuid: &str,
    ) -> Result<bool, Failure> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let key: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&replica, &kind.as_str(), &uuid];
        let n = tx
            .execute(
                "DELETE FROM webhook_subscriptions WHERE replica = $1 AND kind = $2 AND uuid = $3",
                &key,
            )
            .await?;
        if n > 0 {
            bump(&tx, replica).await?;
        }
        tx.execute(
            "DELETE FROM webhook_filter_failures WHERE replica = $1 AND kind = $2 AND uuid = $3",
            &key,
        )
        .await?;
        tx.commit().await?;
        Ok(n > 0)
    }
}

#[async_trait]
impl SubscriptionStore for PgSubscriptions {
    async fn create(&self, s: &Subscription, limit: usize) -> Result<bool, SubscriptionError> {
        Ok(self.create_in(s, limit).await?)
    }

    async fn get(
        &self,
        replica: &str,
        kind: SubscriptionKind,
        uuid: &str,
    ) -> Result<Option<Subscription>, SubscriptionError> {
        Ok(self
            .query(
                "SELECT uuid, replica, owner, document FROM webhook_subscriptions
                 WHERE replica = $1 AND kind = $2 AND uuid = $3",
                &[&replica, &kind.as_str(), &uuid],
                Some(kind),
            )
            .await?
            .pop())
    }

    async fn list_owned(
        &self,
        replica: &str,
        kind: SubscriptionKind,
        owner: &str,
    ) -> Result<Vec<Subscription>, SubscriptionError> {
        Ok(self
            .query(
                "SELECT uuid, replica, owner, document FROM webhook_subscriptions
                 WHERE replica = $1 AND kind = $2 AND owner = $3 ORDER BY uuid DESC",
                &[&replica, &kind.as_str(), &owner],
                Some(kind),
            )
            .await?)
    }

    async fn list_replica(&self, replica: &str) -> Result<Vec<Subscription>, SubscriptionError> {
        Ok(self
            .query(
                "SELECT uuid, replica, owner, document, kind FROM webhook_subscriptions
                 WHERE replica = $1 ORDER BY kind, uuid",
                &[&replica],
                None,
            )
            .await?)
    }

    async fn revision(&self, replica: &str) -> Result<u64, SubscriptionError> {
        let sql = "SELECT revision FROM webhook_revisions WHERE replica = $1";
        Ok(match query_opt(&self.pool, sql, &[&replica]).await? {
            Some(r) => col::<i64>(&r, 0)?.max(0) as u64,
            None => 0,
        })
    }

    async fn record_failures(
        &self,
        failures: &[FilterFailure],
        at_ms: i64,
    ) -> Result<(), SubscriptionError> {
        if failures.is_empty() {
            return Ok(());
        }
        Ok(self.record_in(failures, at_ms).await?)
    }

    async fn failures(
        &self,
        replica: &str,
        kind: SubscriptionKind,
        uuid: &str,
    ) -> Result<Option<FailureRecord>, SubscriptionError> {
        let sql = "SELECT failures, last_error, last_ms FROM webhook_filter_failures
                   WHERE replica = $1 AND kind = $2 AND uuid = $3";
        Ok(
            match query_opt(&self.pool, sql, &[&replica, &kind.as_str(), &uuid]).await? {
                Some(r) => Some(FailureRecord {
                    count: col::<i64>(&r, 0)?.max(0) as u64,
                    last_error: col(&r, 1)?,
                    last_ms: col(&r, 2)?,
                }),
                None => None,
            },
        )
    }

    async fn delete(
        &self,
        replica: &str,
        kind: SubscriptionKind,
        uuid: &str,
    ) -> Result<bool, SubscriptionError> {
        Ok(self.delete_in(replica, kind, uuid).await?)
    }
}
