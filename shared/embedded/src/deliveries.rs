//! The webhook outbox and attempt log in the embedded database. `settle` calls (one per delivery
//! attempt) are group-committed with the process's other writes (`Db::grouped`).

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::db::{Db, DbError};
use dss_core::ports::deliveries::{
    Attempt, Claim, Delivery, DeliveryError, DeliveryState, DeliveryStore, NewDelivery,
};
use dss_core::ports::subscriptions::SubscriptionKind;

impl From<DbError> for DeliveryError {
    fn from(e: DbError) -> Self {
        DeliveryError::Backend(e.to_string())
    }
}

/// What one `settle` call asks for.
struct SettleWork {
    id: String,
    attempts_before: u32,
    attempt: Option<Attempt>,
    state: DeliveryState,
    now_ms: i64,
}

/// The embedded [`DeliveryStore`].
#[derive(Debug, Clone)]
pub struct EmbeddedDeliveries {
    db: Db,
}

impl EmbeddedDeliveries {
    /// The store in `db`.
    pub fn new(db: &Db) -> Self {
        Self { db: db.clone() }
    }
}

/// Applies one `settle` inside the caller's transaction.
fn settle_in(tx: &Connection, w: &SettleWork) -> rusqlite::Result<bool> {
    let made = u32::from(w.attempt.is_some());
    let (status, error) = w
        .attempt
        .as_ref()
        .map(|a| (a.status, a.error.clone()))
        .unwrap_or_default();
    let n = tx
        .prepare_cached(
            "UPDATE webhook_deliveries SET state = ?3, attempts = attempts + ?4, updated_ms = ?5,
             claimed_until_ms = NULL,
             last_status = CASE WHEN ?4 = 1 THEN ?6 ELSE last_status END,
             last_error = CASE WHEN ?4 = 1 THEN ?7 ELSE last_error END
             WHERE id = ?1 AND attempts = ?2 AND state = 'pending'",
        )?
        .execute(params![
            w.id,
            w.attempts_before,
            w.state.as_str(),
            made,
            w.now_ms,
            status,
            error
        ])?;
    if n == 0 {
        return Ok(false);
    }
    if let Some(a) = &w.attempt {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO webhook_attempts (subscription, delivery, attempt, at_ms, status,
             latency_ms, error, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            a.subscription,
            a.delivery,
            a.attempt,
            a.at_ms,
            a.status,
            i64::try_from(a.latency_ms).unwrap_or(i64::MAX),
            a.error,
            a.outcome.as_str()
        ])?;
    }
    Ok(true)
}

const COLUMNS: &str = "id, subscription, replica, kind, owner, event_key, event_type, bundle_uuid,
    bundle_version, payload, state, attempts, round_start, round_started_ms, created_ms,
    updated_ms, last_status, last_error";

fn delivery(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    let kind: String = r.get(3)?;
    let payload: String = r.get(9)?;
    let state: String = r.get(10)?;
    Ok(Delivery {
        new: NewDelivery {
            id: r.get(0)?,
            subscription: r.get(1)?,
            replica: r.get(2)?,
            kind: SubscriptionKind::parse(&kind).unwrap_or(SubscriptionKind::Jmespath),
            owner: r.get(4)?,
            event_key: r.get(5)?,
            event_type: r.get(6)?,
            bundle_uuid: r.get(7)?,
            bundle_version: r.get(8)?,
            payload: serde_json::from_str(&payload).unwrap_or_default(),
        },
        state: DeliveryState::parse(&state).unwrap_or(DeliveryState::Pending),
        attempts: r.get(11)?,
        round_start: r.get(12)?,
        round_started_ms: r.get(13)?,
        created_ms: r.get(14)?,
        updated_ms: r.get(15)?,
        last_status: r.get(16)?,
        last_error: r.get(17)?,
    })
}

fn attempt(r: &Row<'_>) -> rusqlite::Result<Attempt> {
    let outcome: String = r.get(7)?;
    Ok(Attempt {
        delivery: r.get(0)?,
        subscription: r.get(1)?,
        attempt: r.get(2)?,
        at_ms: r.get(3)?,
        status: r.get(4)?,
        latency_ms: r.get::<_, i64>(5)?.max(0) as u64,
        error: r.get(6)?,
        outcome: DeliveryState::parse(&outcome).unwrap_or(DeliveryState::Pending),
    })
}

fn get(c: &Connection, id: &str) -> rusqlite::Result<Option<Delivery>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM webhook_deliveries WHERE id = ?1"
    ))?
    .query_row(params![id], delivery)
    .optional()
}

#[async_trait]
impl DeliveryStore for EmbeddedDeliveries {
    async fn add(
        &self,
        deliveries: &[NewDelivery],
        now_ms: i64,
    ) -> Result<Vec<Delivery>, DeliveryError> {
        let deliveries = deliveries.to_vec();
        Ok(self
            .db
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut out = Vec::with_capacity(deliveries.len());
                {
                    let mut insert = tx.prepare_cached(
                        "INSERT OR IGNORE INTO webhook_deliveries (id, subscription, replica, kind,
                         owner, event_key, event_type, bundle_uuid, bundle_version, payload, state,
                         attempts, round_start, round_started_ms, created_ms, updated_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'pending', 0, 0, ?11, ?11, ?11)",
                    )?;
                    let mut existing = tx.prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM webhook_deliveries WHERE subscription = ?1 AND event_key = ?2"
                    ))?;
                    for d in &deliveries {
                        insert.execute(params![
                            d.id,
                            d.subscription,
                            d.replica,
                            d.kind.as_str(),
                            d.owner,
                            d.event_key,
                            d.event_type,
                            d.bundle_uuid,
                            d.bundle_version,
                            d.payload.to_string(),
                            now_ms
                        ])?;
                        out.push(
                            existing.query_row(params![d.subscription, d.event_key], delivery)?,
                        );
                    }
                }
                tx.commit()?;
                Ok(out)
            })
            .await?)
    }

    async fn get(&self, id: &str) -> Result<Option<Delivery>, DeliveryError> {
        // A point lookup: on this thread, cheaper than a hop to the blocking pool.
        Ok(self.db.read_inline(|c| Ok(get(c, id)?))?)
    }

    async fn claim(
        &self,
        id: &str,
        attempts_before: u32,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Claim, DeliveryError> {
        let id = id.to_string();
        Ok(self
            .db
            .write(move |c| {
                let n = c
                    .prepare_cached(
                        "UPDATE webhook_deliveries SET claimed_until_ms = ?4
                         WHERE id = ?1 AND attempts = ?2 AND state = 'pending'
                         AND (claimed_until_ms IS NULL OR claimed_until_ms <= ?3)",
                    )?
                    .execute(params![id, attempts_before, now_ms, until_ms])?;
                if n == 1 {
                    return Ok(Claim::Claimed);
                }
                let held: Option<Option<i64>> = c
                    .prepare_cached(
                        "SELECT claimed_until_ms FROM webhook_deliveries
                         WHERE id = ?1 AND attempts = ?2 AND state = 'pending'",
                    )?
                    .query_row(params![id, attempts_before], |r| r.get(0))
                    .optional()?;
                Ok(match held {
                    Some(Some(until)) => Claim::Busy(until),
                    _ => Claim::Gone,
                })
            })
            .await?)
    }

    async fn settle(
        &self,
        id: &str,
        attempts_before: u32,
        attempt: Option<&Attempt>,
        state: DeliveryState,
        now_ms: i64,
    ) -> Result<bool, DeliveryError> {
        let work = SettleWork {
            id: id.to_string(),
            attempts_before,
            attempt: attempt.cloned(),
            state,
            now_ms,
        };
        Ok(self.db.grouped(move |tx| Ok(settle_in(tx, &work)?)).await?)
    }

    async fn attempts(
        &self,
        subscription: &str,
        limit: usize,
    ) -> Result<Vec<Attempt>, DeliveryError> {
        let subscription = subscription.to_string();
        Ok(self
            .db
            .read(move |c| {
                let rows = c
                    .prepare_cached(
                        "SELECT delivery, subscription, attempt, at_ms, status, latency_ms, error,
                         outcome FROM webhook_attempts WHERE subscription = ?1
                         ORDER BY at_ms DESC, delivery DESC, attempt DESC LIMIT ?2",
                    )?
                    .query_map(params![subscription, limit as i64], attempt)?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await?)
    }

    async fn list(
        &self,
        subscription: &str,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> Result<Vec<Delivery>, DeliveryError> {
        let subscription = subscription.to_string();
        Ok(self
            .db
            .read(move |c| {
                let rows = c
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM webhook_deliveries
                         WHERE subscription = ?1 AND (?2 IS NULL OR state = ?2)
                         ORDER BY created_ms DESC, id DESC LIMIT ?3"
                    ))?
                    .query_map(
                        params![subscription, state.map(DeliveryState::as_str), limit as i64],
                        delivery,
                    )?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await?)
    }

    async fn resend(&self, id: &str, now_ms: i64) -> Result<Option<Delivery>, DeliveryError> {
        let id = id.to_string();
        Ok(self
            .db
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let n = tx
                    .prepare_cached(
                        "UPDATE webhook_deliveries SET state = 'pending', round_start = attempts,
                         round_started_ms = ?2, updated_ms = ?2 WHERE id = ?1 AND state = 'dead'",
                    )?
                    .execute(params![id, now_ms])?;
                let out = if n == 1 { get(&tx, &id)? } else { None };
                tx.commit()?;
                Ok(out)
            })
            .await?)
    }

    async fn prune(&self, before_ms: i64) -> Result<u64, DeliveryError> {
        Ok(self
            .db
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let a = tx
                    .prepare_cached("DELETE FROM webhook_attempts WHERE at_ms < ?1")?
                    .execute(params![before_ms])?;
                let d = tx
                    .prepare_cached(
                        "DELETE FROM webhook_deliveries WHERE updated_ms < ?1 AND state != 'pending'",
                    )?
                    .execute(params![before_ms])?;
                tx.commit()?;
                Ok((a + d) as u64)
            })
            .await?)
    }
}
