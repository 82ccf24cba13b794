//! The durable embedded queue and topic, stored in the embedded SQLite database.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, params};
use time::OffsetDateTime;

use dss_core::clock::{SharedClock, millis};
use dss_core::ports::queue::{Message, OutgoingMessage, Queue, QueueError, QueueStats, Topic};

use super::db::{Db, DbError};

/// How often a receiver re-checks the database for messages sent by other processes.
const CROSS_PROCESS_POLL: Duration = Duration::from_millis(50);

impl From<DbError> for QueueError {
    fn from(e: DbError) -> Self {
        QueueError::Backend(e.to_string())
    }
}

/// Redrive settings of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Deliveries after which a message moves to the dead-letter queue (0 = never).
    pub max_receive_count: u32,
    /// Name of the dead-letter queue (default `{name}-dlq`).
    pub dead_letter: Option<String>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_receive_count: 10,
            dead_letter: None,
        }
    }
}

/// A queue in the embedded database.
#[derive(Debug, Clone)]
pub struct EmbeddedQueue {
    db: Db,
    name: String,
    dead_letter: String,
    max_receive: u32,
    clock: SharedClock,
}

impl EmbeddedQueue {
    /// Declares (or updates) a queue and its dead-letter queue, and returns a handle to it.
    pub async fn declare(
        db: &Db,
        name: &str,
        cfg: QueueConfig,
        clock: SharedClock,
    ) -> Result<Self, QueueError> {
        let dead_letter = cfg
            .dead_letter
            .clone()
            .unwrap_or_else(|| format!("{name}-dlq"));
        let (n, d, max) = (name.to_string(), dead_letter.clone(), cfg.max_receive_count);
        db.write(move |c| {
            c.execute(
                "INSERT INTO queues (name, max_receive, dead_letter) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET max_receive = ?2, dead_letter = ?3",
                params![n, max, d],
            )?;
            c.execute("INSERT OR IGNORE INTO queues (name, max_receive, dead_letter) VALUES (?1, 0, NULL)", params![d])?;
            Ok(())
        })
        .await?;
        Ok(Self {
            db: db.clone(),
            name: name.to_string(),
            dead_letter,
            max_receive: cfg.max_receive_count,
            clock,
        })
    }

    /// The dead-letter queue's name.
    pub fn dead_letter_name(&self) -> &str {
        &self.dead_letter
    }

    fn try_receive(
        tx: &Transaction<'_>,
        queue: &str,
        dlq: &str,
        max_receive: u32,
        max: usize,
        now: i64,
        visibility: i64,
    ) -> Result<Vec<Message>, DbError> {
        let mut out = Vec::with_capacity(max);
        {
            let mut select = tx.prepare_cached(
                "SELECT id, body, receive_count, sent_ms FROM messages
                 WHERE queue = ?1 AND visible_ms <= ?2 ORDER BY visible_ms, id LIMIT ?3",
            )?;
            let mut deliver = tx.prepare_cached(
                "UPDATE messages SET visible_ms = ?2, receive_count = receive_count + 1, receipt = ?3 WHERE id = ?1",
            )?;
            let mut redrive = tx.prepare_cached(
                "UPDATE messages SET queue = ?2, visible_ms = ?3, receive_count = 0, receipt = NULL,
                 dead_reason = 'exceeded the maximum receive count' WHERE id = ?1",
            )?;
            loop {
                let rows: Vec<(i64, String, u32, i64)> = select
                    .query_map(params![queue, now, (max - out.len()) as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })?
                    .collect::<Result<_, _>>()?;
                if rows.is_empty() {
                    break;
                }
                for (id, body, count, sent_ms) in rows {
                    if max_receive > 0 && count >= max_receive {
                        redrive.execute(params![id, dlq, now])?;
                        continue;
                    }
                    let receipt = format!("{id}:{:016x}", rand::random::<u64>());
                    deliver.execute(params![id, now + visibility, receipt])?;
                    out.push(Message {
                        id: id.to_string(),
                        receipt,
                        body,
                        receive_count: count + 1,
                        sent_at: OffsetDateTime::from_unix_timestamp_nanos(
                            i128::from(sent_ms) * 1_000_000,
                        )
                        .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                    });
                }
                if out.len() >= max {
                    break;
                }
            }
        }
        Ok(out)
    }
}

fn receipt_id(receipt: &str) -> Result<i64, QueueError> {
    receipt
        .split_once(':')
        .and_then(|(id, _)| id.parse().ok())
        .ok_or_else(|| QueueError::StaleReceipt(receipt.to_string()))
}

/// Inserts a message into every queue subscribed to `topic`, inside the caller's transaction.
/// Returns the subscribed queues so the caller can wake their receivers after commit.
pub fn publish_in_tx(
    tx: &Transaction<'_>,
    topic: &str,
    body: &str,
    now_ms: i64,
) -> rusqlite::Result<Vec<String>> {
    let queues: Vec<String> = tx
        .prepare_cached("SELECT queue FROM subscriptions WHERE topic = ?1")?
        .query_map(params![topic], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO messages (queue, body, sent_ms, visible_ms) VALUES (?1, ?2, ?3, ?3)",
    )?;
    for q in &queues {
        insert.execute(params![q, body, now_ms])?;
    }
    Ok(queues)
}

#[async_trait]
impl Queue for EmbeddedQueue {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<(), QueueError> {
        let now = self.clock.now_ms();
        let rows: Vec<(String, i64)> = messages
            .iter()
            .map(|m| (m.body.clone(), now + millis(m.delay)))
            .collect();
        let name = self.name.clone();
        self.db
            .grouped(move |tx| {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO messages (queue, body, sent_ms, visible_ms) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (body, visible) in &rows {
                    insert.execute(params![name, body, now, visible])?;
                }
                Ok(())
            })
            .await?;
        self.db.waker(&self.name).notify_waiters();
        Ok(())
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Message>, QueueError> {
        let deadline = tokio::time::Instant::now() + wait;
        let waker = self.db.waker(&self.name);
        loop {
            let notified = waker.notified();
            let (q, d, mr, vis, now) = (
                self.name.clone(),
                self.dead_letter.clone(),
                self.max_receive,
                millis(visibility),
                self.clock.now_ms(),
            );
            // An empty queue is seen by a read (readers never wait for the writer); only a
            // queue with visible messages costs a write.
            let ready = self.db.read_inline(|c| {
                Ok(c.prepare_cached(
                    "SELECT 1 FROM messages WHERE queue = ?1 AND visible_ms <= ?2 LIMIT 1",
                )?
                .exists(params![q, now])?)
            })?;
            let got = if ready {
                self.db
                    .grouped(move |tx| Self::try_receive(tx, &q, &d, mr, max.max(1), now, vis))
                    .await?
            } else {
                Vec::new()
            };
            let now = tokio::time::Instant::now();
            if !got.is_empty() || now >= deadline {
                return Ok(got);
            }
            let nap = (deadline - now).min(CROSS_PROCESS_POLL);
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }

    async fn ack_batch(&self, receipts: &[String]) -> Result<(), QueueError> {
        let ids: Vec<(i64, String)> = receipts
            .iter()
            .map(|r| receipt_id(r).map(|id| (id, r.clone())))
            .collect::<Result<_, _>>()?;
        self.db
            .grouped(move |tx| {
                let mut del =
                    tx.prepare_cached("DELETE FROM messages WHERE id = ?1 AND receipt = ?2")?;
                for (id, receipt) in &ids {
                    del.execute(params![id, receipt])?;
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn change_visibility(&self, receipt: &str, timeout: Duration) -> Result<(), QueueError> {
        let id = receipt_id(receipt)?;
        let (r, visible) = (receipt.to_string(), self.clock.now_ms() + millis(timeout));
        let changed = self
            .db
            .grouped(move |tx| {
                Ok(tx.execute(
                    "UPDATE messages SET visible_ms = ?3 WHERE id = ?1 AND receipt = ?2",
                    params![id, r, visible],
                )?)
            })
            .await?;
        if changed == 0 {
            return Err(QueueError::StaleReceipt(receipt.to_string()));
        }
        if timeout.is_zero() {
            self.db.waker(&self.name).notify_waiters();
        }
        Ok(())
    }

    async fn dead_letter(&self, message: &Message, reason: &str) -> Result<(), QueueError> {
        let id = receipt_id(&message.receipt)?;
        let (r, dlq, reason, now, body) = (
            message.receipt.clone(),
            self.dead_letter.clone(),
            reason.to_string(),
            self.clock.now_ms(),
            message.body.clone(),
        );
        let changed = self
            .db
            .grouped(move |tx| {
                Ok(tx.execute(
                    "UPDATE messages SET queue = ?3, visible_ms = ?5, receive_count = 0, receipt = NULL, dead_reason = ?4, body = ?6
                     WHERE id = ?1 AND receipt = ?2",
                    params![id, r, dlq, reason, now, body],
                )?)
            })
            .await?;
        if changed == 0 {
            return Err(QueueError::StaleReceipt(message.receipt.clone()));
        }
        Ok(())
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        let (name, now) = (self.name.clone(), self.clock.now_ms());
        let (visible, in_flight, delayed, oldest): (i64, i64, i64, Option<i64>) = self
            .db
            .read(move |c| {
                Ok(c.query_row(
                    "SELECT
                       COALESCE(SUM(visible_ms <= ?2), 0),
                       COALESCE(SUM(visible_ms > ?2 AND receipt IS NOT NULL), 0),
                       COALESCE(SUM(visible_ms > ?2 AND receipt IS NULL), 0),
                       MIN(sent_ms)
                     FROM messages WHERE queue = ?1",
                    params![name, now],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )?)
            })
            .await?;
        Ok(QueueStats {
            visible: visible as u64,
            in_flight: in_flight as u64,
            delayed: delayed as u64,
            oldest_age: oldest.map(|t| Duration::from_millis(u64::try_from(now - t).unwrap_or(0))),
        })
    }
}

/// A fan-out topic in the embedded database.
#[derive(Debug, Clone)]
pub struct EmbeddedTopic {
    db: Db,
    name: String,
    clock: SharedClock,
}

impl EmbeddedTopic {
    /// A handle to a topic (topics need no declaration; they exist through their subscriptions).
    pub fn new(db: &Db, name: &str, clock: SharedClock) -> Self {
        Self {
            db: db.clone(),
            name: name.to_string(),
            clock,
        }
    }

    /// Subscribes a queue: every message published from now on is copied into it.
    pub async fn subscribe(&self, queue: &str) -> Result<(), QueueError> {
        let (t, q) = (self.name.clone(), queue.to_string());
        self.db
            .write(move |c| {
                c.execute(
                    "INSERT OR IGNORE INTO subscriptions (topic, queue) VALUES (?1, ?2)",
                    params![t, q],
                )?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// Unsubscribes a queue: it receives nothing published from now on (what it holds stays).
    pub async fn unsubscribe(&self, queue: &str) -> Result<(), QueueError> {
        let (t, q) = (self.name.clone(), queue.to_string());
        self.db
            .write(move |c| {
                c.execute(
                    "DELETE FROM subscriptions WHERE topic = ?1 AND queue = ?2",
                    params![t, q],
                )?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// The queues subscribed to this topic.
    pub async fn subscribers(&self) -> Result<Vec<String>, QueueError> {
        let t = self.name.clone();
        Ok(self
            .db
            .read(move |c| {
                let mut s =
                    c.prepare("SELECT queue FROM subscriptions WHERE topic = ?1 ORDER BY queue")?;
                let v = s
                    .query_map(params![t], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()?;
                Ok(v)
            })
            .await?)
    }
}

#[async_trait]
impl Topic for EmbeddedTopic {
    fn name(&self) -> &str {
        &self.name
    }

    async fn publish(&self, body: &str) -> Result<(), QueueError> {
        let (t, b, now) = (self.name.clone(), body.to_string(), self.clock.now_ms());
        let queues = self
            .db
            .grouped(move |tx| Ok(publish_in_tx(tx, &t, &b, now)?))
            .await?;
        for q in queues {
            self.db.waker(&q).notify_waiters();
        }
        Ok(())
    }
}

/// Reads the dead-letter reason recorded for a message id (for operators and tests).
pub async fn dead_letter_reason(db: &Db, id: &str) -> Result<Option<String>, QueueError> {
    let id: i64 = id
        .parse()
        .map_err(|_| QueueError::NotFound(id.to_string()))?;
    Ok(db
        .read(move |c| {
            Ok(c.query_row(
                "SELECT dead_reason FROM messages WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
        })
        .await?)
}
