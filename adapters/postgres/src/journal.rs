//! The events journal in the shared database.
//!
//! Writers of one replica serialise on its row in `journal_heads`, which holds the last
//! sequence number and timestamp: each writing transaction locks it, appends after it and
//! moves it on, so sequence numbers and timestamps are handed out in commit order. A reader
//! paging by time therefore never skips an event that commits later: a later commit always
//! carries a later timestamp. (A bigserial or a clock read outside the lock would not hold
//! this; the cost is one writer at a time per replica.)

use async_trait::async_trait;
use deadpool_postgres::Pool;

use crate::error::{Failure, col};
use dss_core::clock::SharedClock;
use dss_core::model::DssVersion;
use dss_core::ports::journal::{EventInfo, EventJournal, EventKind, JournalError, NewEvent};

/// The PostgreSQL [`EventJournal`].
#[derive(Debug, Clone)]
pub struct PgJournal {
    pool: Pool,
    clock: SharedClock,
}

impl PgJournal {
    pub(crate) fn new(pool: Pool, clock: SharedClock) -> Self {
        Self { pool, clock }
    }

    async fn record_in(&self, replica: &str, events: &[NewEvent]) -> Result<usize, Failure> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "INSERT INTO journal_heads (replica, seq, ts) VALUES ($1, 0, '') ON CONFLICT DO NOTHING",
            &[&replica],
        )
        .await?;
        let head = tx
            .query_one(
                "SELECT seq, ts FROM journal_heads WHERE replica = $1 FOR UPDATE",
                &[&replica],
            )
            .await?;
        let (mut seq, last): (i64, String) = (col(&head, 0)?, col(&head, 1)?);
        // Read under the lock: later than every timestamp handed out before.
        let now = self.clock.now();
        let mut ts = DssVersion::parse(&last)
            .map(|v| v.to_datetime())
            .unwrap_or(now - time::Duration::microseconds(1));
        let insert = tx
            .prepare_cached(
                "INSERT INTO journal (replica, seq, kind, event_id, ts, body)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (replica, event_id, kind) DO NOTHING",
            )
            .await?;
        let mut added = 0;
        for e in events {
            let next_ts = now.max(ts + time::Duration::microseconds(1));
            let stamp = DssVersion::from_datetime(next_ts);
            let n = tx
                .execute(
                    &insert,
                    &[
                        &replica,
                        &(seq + 1),
                        &e.kind.as_str(),
                        &e.event_id,
                        &stamp.as_str(),
                        &e.body.as_bytes(),
                    ],
                )
                .await?;
            if n == 1 {
                seq += 1;
                ts = next_ts;
                added += 1;
            }
        }
        if added > 0 {
            let stamp = DssVersion::from_datetime(ts);
            tx.execute(
                "UPDATE journal_heads SET seq = $2, ts = $3 WHERE replica = $1",
                &[&replica, &seq, &stamp.as_str()],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(added)
    }

    async fn list_in(
        &self,
        replica: &str,
        from: &str,
        to: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EventInfo>, Failure> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached(
                "SELECT seq, event_id, kind, ts, length(body) FROM journal
                 WHERE replica = $1 AND ts >= $2 AND ($3::text IS NULL OR ts < $3)
                 ORDER BY ts LIMIT $4",
            )
            .await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        c.query(&st, &[&replica, &from, &to, &limit])
            .await?
            .iter()
            .map(|r| {
                let kind: String = col(r, 2)?;
                Ok(EventInfo {
                    seq: col::<i64>(r, 0)?.max(0) as u64,
                    event_id: col(r, 1)?,
                    kind: EventKind::parse(&kind).unwrap_or(EventKind::Create),
                    timestamp: col(r, 3)?,
                    size: col::<i32>(r, 4)?.max(0) as u64,
                })
            })
            .collect()
    }

    async fn read_in(&self, replica: &str, first: u64, last: u64) -> Result<Vec<u8>, Failure> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached(
                "SELECT body FROM journal WHERE replica = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq",
            )
            .await?;
        let (first, last) = (
            i64::try_from(first).unwrap_or(i64::MAX),
            i64::try_from(last).unwrap_or(i64::MAX),
        );
        let mut out = Vec::new();
        for r in c.query(&st, &[&replica, &first, &last]).await? {
            out.extend_from_slice(col::<&[u8]>(&r, 0)?);
        }
        Ok(out)
    }

    async fn find_in(
        &self,
        replica: &str,
        event_id: &str,
        kind: EventKind,
    ) -> Result<Option<String>, Failure> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached(
                "SELECT body FROM journal WHERE replica = $1 AND event_id = $2 AND kind = $3",
            )
            .await?;
        Ok(
            match c
                .query_opt(&st, &[&replica, &event_id, &kind.as_str()])
                .await?
            {
                Some(r) => Some(String::from_utf8_lossy(col::<&[u8]>(&r, 0)?).into_owned()),
                None => None,
            },
        )
    }
}

#[async_trait]
impl EventJournal for PgJournal {
    async fn record(&self, replica: &str, events: Vec<NewEvent>) -> Result<usize, JournalError> {
        if events.is_empty() {
            return Ok(0);
        }
        Ok(self.record_in(replica, &events).await?)
    }

    async fn list(
        &self,
        replica: &str,
        from: Option<&str>,
        to: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EventInfo>, JournalError> {
        Ok(self.list_in(replica, from.unwrap_or(""), to, limit).await?)
    }

    async fn read(&self, replica: &str, first: u64, last: u64) -> Result<Vec<u8>, JournalError> {
        Ok(self.read_in(replica, first, last).await?)
    }

    async fn find(
        &self,
        replica: &str,
        event_id: &str,
        kind: EventKind,
    ) -> Result<Option<String>, JournalError> {
        Ok(self.find_in(replica, event_id, kind).await?)
    }
}
