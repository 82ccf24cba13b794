//! The webhook outbox and attempt log in the shared database. Every change of a delivery is a
//! conditional update on its attempt count and state (a compare-and-set), so two processes
//! holding copies of one due message never both claim, or both settle, the same attempt.

use async_trait::async_trait;
use deadpool_postgres::Pool;
use tokio_postgres::Row;

use crate::error::{Failure, col, free_text};
use crate::pool::{Params, query, query_opt};
use dss_core::ports::deliveries::{
    Attempt, Claim, Delivery, DeliveryError, DeliveryState, DeliveryStore, NewDelivery,
};
use dss_core::ports::subscriptions::SubscriptionKind;

/// The PostgreSQL [`DeliveryStore`].
#[derive(Debug, Clone)]
pub struct PgDeliveries {
    pool: Pool,
}

impl PgDeliveries {
    pub(crate) fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

const COLUMNS: &str = "id, subscription, replica, kind, owner, event_key, event_type, bundle_uuid,
    bundle_version, payload, state, attempts, round_start, round_started_ms, created_ms,
    updated_ms, last_status, last_error";

/// A count stored as `integer`.
fn count(r: &Row, i: usize) -> Result<u32, Failure> {
    Ok(u32::try_from(col::<i32>(r, i)?).unwrap_or(0))
}

/// An HTTP status stored as `integer`.
fn status(r: &Row, i: usize) -> Result<Option<u16>, Failure> {
    Ok(col::<Option<i32>>(r, i)?.and_then(|s| u16::try_from(s).ok()))
}

fn delivery(r: &Row) -> Result<Delivery, Failure> {
    let kind: String = col(r, 3)?;
    let payload: String = col(r, 9)?;
    let state: String = col(r, 10)?;
    Ok(Delivery {
        new: NewDelivery {
            id: col(r, 0)?,
            subscription: col(r, 1)?,
            replica: col(r, 2)?,
            kind: SubscriptionKind::parse(&kind).unwrap_or(SubscriptionKind::Jmespath),
            owner: col(r, 4)?,
            event_key: col(r, 5)?,
            event_type: col(r, 6)?,
            bundle_uuid: col(r, 7)?,
            bundle_version: col(r, 8)?,
            payload: serde_json::from_str(&payload).unwrap_or_default(),
        },
        state: DeliveryState::parse(&state).unwrap_or(DeliveryState::Pending),
        attempts: count(r, 11)?,
        round_start: count(r, 12)?,
        round_started_ms: col(r, 13)?,
        created_ms: col(r, 14)?,
        updated_ms: col(r, 15)?,
        last_status: status(r, 16)?,
        last_error: col(r, 17)?,
    })
}

fn attempt(r: &Row) -> Result<Attempt, Failure> {
    let outcome: String = col(r, 7)?;
    Ok(Attempt {
        delivery: col(r, 0)?,
        subscription: col(r, 1)?,
        attempt: count(r, 2)?,
        at_ms: col(r, 3)?,
        status: status(r, 4)?,
        latency_ms: col::<i64>(r, 5)?.max(0) as u64,
        error: col(r, 6)?,
        outcome: DeliveryState::parse(&outcome).unwrap_or(DeliveryState::Pending),
    })
}

/// An attempt count as stored.
fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl PgDeliveries {
    /// Writes the batch in one statement (arrays unnested), then reads the stored rows in one:
    /// two round trips however many subscriptions an event matched.
    async fn add_in(
        &self,
        deliveries: &[NewDelivery],
        now_ms: i64,
    ) -> Result<Vec<Delivery>, Failure> {
        if deliveries.is_empty() {
            return Ok(Vec::new());
        }
        // One array per column, borrowed from the batch.
        let column =
            |f: fn(&NewDelivery) -> &str| -> Vec<&str> { deliveries.iter().map(f).collect() };
        let ids = column(|d| &d.id);
        let subs = column(|d| &d.subscription);
        let replicas = column(|d| &d.replica);
        let kinds = column(|d| d.kind.as_str());
        let owners = column(|d| &d.owner);
        let keys = column(|d| &d.event_key);
        let types = column(|d| &d.event_type);
        let bundles = column(|d| &d.bundle_uuid);
        let versions: Vec<Option<&str>> = deliveries
            .iter()
            .map(|d| d.bundle_version.as_deref())
            .collect();
        let payloads: Vec<String> = deliveries.iter().map(|d| d.payload.to_string()).collect();
        let c = self.pool.get().await?;
        let insert = c
            .prepare_cached(
                "INSERT INTO webhook_deliveries (id, subscription, replica, kind, owner, event_key,
                 event_type, bundle_uuid, bundle_version, payload, state, attempts, round_start,
                 round_started_ms, created_ms, updated_ms)
                 SELECT id, subscription, replica, kind, owner, event_key, event_type, bundle_uuid,
                 bundle_version, payload, 'pending', 0, 0, $11, $11, $11
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                             $7::text[], $8::text[], $9::text[], $10::text[])
                      AS n(id, subscription, replica, kind, owner, event_key, event_type,
                           bundle_uuid, bundle_version, payload)
                 ON CONFLICT DO NOTHING",
            )
            .await?;
        c.execute(
            &insert,
            &[
                &ids, &subs, &replicas, &kinds, &owners, &keys, &types, &bundles, &versions,
                &payloads, &now_ms,
            ],
        )
        .await?;
        let stored = c
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM webhook_deliveries
                 WHERE (subscription, event_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
            ))
            .await?;
        let rows = c.query(&stored, &[&subs, &keys]).await?;
        let mut by_key = std::collections::HashMap::with_capacity(rows.len());
        for r in &rows {
            let d = delivery(r)?;
            by_key.insert((d.new.subscription.clone(), d.new.event_key.clone()), d);
        }
        deliveries
            .iter()
            .map(|d| {
                by_key
                    .get(&(d.subscription.clone(), d.event_key.clone()))
                    .cloned()
                    .ok_or_else(|| {
                        Failure(format!(
                            "delivery id {} is taken by another (subscription, event)",
                            d.id
                        ))
                    })
            })
            .collect()
    }

    async fn one(&self, sql: &str, params: Params<'_>) -> Result<Option<Delivery>, Failure> {
        match query_opt(&self.pool, sql, params).await? {
            Some(r) => Ok(Some(delivery(&r)?)),
            None => Ok(None),
        }
    }

    async fn claim_in(
        &self,
        id: &str,
        attempts_before: u32,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Claim, Failure> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached(
                "UPDATE webhook_deliveries SET claimed_until_ms = $4
                 WHERE id = $1 AND attempts = $2 AND state = 'pending'
                 AND (claimed_until_ms IS NULL OR claimed_until_ms <= $3)",
            )
            .await?;
        let before = int(attempts_before);
        if c.execute(&st, &[&id, &before, &now_ms, &until_ms]).await? == 1 {
            return Ok(Claim::Claimed);
        }
        let held = c
            .prepare_cached(
                "SELECT claimed_until_ms FROM webhook_deliveries
                 WHERE id = $1 AND attempts = $2 AND state = 'pending'",
            )
            .await?;
        Ok(match c.query_opt(&held, &[&id, &before]).await? {
            Some(r) => match col::<Option<i64>>(&r, 0)? {
                Some(until) => Claim::Busy(until),
                // Settled and claimable again between the two statements: a newer claimer
                // will take it.
                None => Claim::Gone,
            },
            None => Claim::Gone,
        })
    }

    /// One statement (so one round trip, committed on its own): the conditional move, and the
    /// attempt logged only if it moved.
    async fn settle_in(
        &self,
        id: &str,
        attempts_before: u32,
        attempt: Option<&Attempt>,
        state: DeliveryState,
        now_ms: i64,
    ) -> Result<bool, Failure> {
        let c = self.pool.get().await?;
        let made = i32::from(attempt.is_some());
        let error = attempt.and_then(|a| a.error.as_deref().map(free_text));
        let st = c
            .prepare_cached(
                "WITH moved AS (
                     UPDATE webhook_deliveries SET state = $3, attempts = attempts + $4,
                     updated_ms = $5, claimed_until_ms = NULL,
                     last_status = CASE WHEN $4 = 1 THEN $6 ELSE last_status END,
                     last_error = CASE WHEN $4 = 1 THEN $7 ELSE last_error END
                     WHERE id = $1 AND attempts = $2 AND state = 'pending'
                     RETURNING id
                 ), logged AS (
                     INSERT INTO webhook_attempts (subscription, delivery, attempt, at_ms, status,
                     latency_ms, error, outcome)
                     SELECT $8::text, $9::text, $10::integer, $11::bigint, $6, $12::bigint, $7, $13::text
                     FROM moved WHERE $4 = 1
                     ON CONFLICT (delivery, attempt) DO UPDATE SET
                     subscription = excluded.subscription, at_ms = excluded.at_ms,
                     status = excluded.status, latency_ms = excluded.latency_ms,
                     error = excluded.error, outcome = excluded.outcome
                 )
                 SELECT count(*) FROM moved",
            )
            .await?;
        let moved: i64 = col(
            &c.query_one(
                &st,
                &[
                    &id,
                    &int(attempts_before),
                    &state.as_str(),
                    &made,
                    &now_ms,
                    &attempt.and_then(|a| a.status.map(i32::from)),
                    &error,
                    &attempt.map(|a| a.subscription.as_str()),
                    &attempt.map(|a| a.delivery.as_str()),
                    &attempt.map(|a| int(a.attempt)),
                    &attempt.map(|a| a.at_ms),
                    &attempt.map(|a| i64::try_from(a.latency_ms).unwrap_or(i64::MAX)),
                    &attempt.map(|a| a.outcome.as_str()),
                ],
            )
            .await?,
            0,
        )?;
        Ok(moved == 1)
    }

    async fn attempts_in(&self, subscription: &str, limit: usize) -> Result<Vec<Attempt>, Failure> {
        let sql =
            "SELECT delivery, subscription, attempt, at_ms, status, latency_ms, error, outcome
                   FROM webhook_attempts WHERE subscription = $1
                   ORDER BY at_ms DESC, delivery DESC, attempt DESC LIMIT $2";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        query(&self.pool, sql, &[&subscription, &limit])
            .await?
            .iter()
            .map(attempt)
            .collect()
    }

    async fn list_in(
        &self,
        subscription: &str,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> Result<Vec<Delivery>, Failure> {
        let sql = format!(
            "SELECT {COLUMNS} FROM webhook_deliveries
             WHERE subscription = $1 AND ($2::text IS NULL OR state = $2)
             ORDER BY created_ms DESC, id DESC LIMIT $3"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let state = state.map(DeliveryState::as_str);
        query(&self.pool, &sql, &[&subscription, &state, &limit])
            .await?
            .iter()
            .map(delivery)
            .collect()
    }

    async fn prune_in(&self, before_ms: i64) -> Result<u64, Failure> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let a = tx
            .execute(
                "DELETE FROM webhook_attempts WHERE at_ms < $1",
                &[&before_ms],
            )
            .await?;
        let d = tx
            .execute(
                "DELETE FROM webhook_deliveries WHERE updated_ms < $1 AND state <> 'pending'",
                &[&before_ms],
            )
            .await?;
        tx.commit().await?;
        Ok(a + d)
    }
}

#[async_trait]
impl DeliveryStore for PgDeliveries {
    async fn add(
        &self,
        deliveries: &[NewDelivery],
        now_ms: i64,
    ) -> Result<Vec<Delivery>, DeliveryError> {
        Ok(self.add_in(deliveries, now_ms).await?)
    }

    async fn get(&self, id: &str) -> Result<Option<Delivery>, DeliveryError> {
        Ok(self
            .one(
                &format!("SELECT {COLUMNS} FROM webhook_deliveries WHERE id = $1"),
                &[&id],
            )
            .await?)
    }

    async fn claim(
        &self,
        id: &str,
        attempts_before: u32,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Claim, DeliveryError> {
        Ok(self.claim_in(id, attempts_before, now_ms, until_ms).await?)
    }

    async fn settle(
        &self,
        id: &str,
        attempts_before: u32,
        attempt: Option<&Attempt>,
        state: DeliveryState,
        now_ms: i64,
    ) -> Result<bool, DeliveryError> {
        Ok(self
            .settle_in(id, attempts_before, attempt, state, now_ms)
            .await?)
    }

    async fn attempts(
        &self,
        subscription: &str,
        limit: usize,
    ) -> Result<Vec<Attempt>, DeliveryError> {
        Ok(self.attempts_in(subscription, limit).await?)
    }

    async fn list(
        &self,
        subscription: &str,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> Result<Vec<Delivery>, DeliveryError> {
        Ok(self.list_in(subscription, state, limit).await?)
    }

    async fn resend(&self, id: &str, now_ms: i64) -> Result<Option<Delivery>, DeliveryError> {
        Ok(self
            .one(
                &format!(
                    "UPDATE webhook_deliveries SET state = 'pending', round_start = attempts,
                     round_started_ms = $2, updated_ms = $2 WHERE id = $1 AND state = 'dead'
                     RETURNING {COLUMNS}"
                ),
                &[&id, &now_ms],
            )
            .await?)
    }

    async fn prune(&self, before_ms: i64) -> Result<u64, DeliveryError> {
        Ok(self.prune_in(before_ms).await?)
    }
}
