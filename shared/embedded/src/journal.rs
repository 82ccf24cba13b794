//! The embedded event journal: a table in the embedded database. `record` calls are
//! group-committed with the process's other writes (`Db::grouped`).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, params};

use super::db::{Db, DbError};
use dss_core::clock::SharedClock;
use dss_core::model::DssVersion;
use dss_core::ports::journal::{EventInfo, EventJournal, EventKind, JournalError, NewEvent};

impl From<DbError> for JournalError {
    fn from(e: DbError) -> Self {
        JournalError::Backend(e.to_string())
    }
}

/// The embedded [`EventJournal`].
#[derive(Debug, Clone)]
pub struct EmbeddedJournal {
    db: Db,
    clock: SharedClock,
}

impl EmbeddedJournal {
    /// The journal in `db`.
    pub fn new(db: &Db, clock: SharedClock) -> Self {
        Self {
            db: db.clone(),
            clock,
        }
    }
}

/// Appends `events` to `replica`'s journal inside `tx`; timestamps strictly increase.
fn append(
    tx: &Transaction<'_>,
    replica: &str,
    events: &[NewEvent],
    now: time::OffsetDateTime,
) -> Result<usize, DbError> {
    let last: Option<(i64, String)> = tx
        .prepare_cached("SELECT seq, ts FROM journal WHERE replica = ?1 ORDER BY seq DESC LIMIT 1")?
        .query_row(params![replica], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (mut seq, mut ts) = match last {
        Some((s, t)) => (
            s,
            DssVersion::parse(&t)
                .map(|v| v.to_datetime())
                .unwrap_or(now),
        ),
        None => (0, now - time::Duration::microseconds(1)),
    };
    let mut added = 0;
    let mut exists = tx.prepare_cached(
        "SELECT 1 FROM journal WHERE replica = ?1 AND event_id = ?2 AND kind = ?3",
    )?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO journal (replica, seq, kind, event_id, ts, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for e in events {
        if exists
            .query_row(params![replica, e.event_id, e.kind.as_str()], |_| Ok(()))
            .optional()?
            .is_some()
        {
            continue;
        }
        seq += 1;
        ts = now.max(ts + time::Duration::microseconds(1));
        let stamp = DssVersion::from_datetime(ts);
        insert.execute(params![
            replica,
            seq,
            e.kind.as_str(),
            e.event_id,
            stamp.as_str(),
            e.body.as_bytes()
        ])?;
        added += 1;
    }
    Ok(added)
}

#[async_trait]
impl EventJournal for EmbeddedJournal {
    async fn record(&self, replica: &str, events: Vec<NewEvent>) -> Result<usize, JournalError> {
        if events.is_empty() {
            return Ok(0);
        }
        let (replica, clock) = (replica.to_string(), self.clock.clone());
        Ok(self
            .db
            .grouped(move |tx| append(tx, &replica, &events, clock.now()))
            .await?)
    }

    async fn list(
        &self,
        replica: &str,
        from: Option<&str>,
        to: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EventInfo>, JournalError> {
        let (replica, from, to) = (
            replica.to_string(),
            from.unwrap_or("").to_string(),
            to.map(str::to_string),
        );
        Ok(self
            .db
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT seq, event_id, kind, ts, length(body) FROM journal
                     WHERE replica = ?1 AND ts >= ?2 AND (?3 IS NULL OR ts < ?3)
                     ORDER BY ts LIMIT ?4",
                )?;
                let rows = st
                    .query_map(params![replica, from, to, limit as i64], |r| {
                        let kind: String = r.get(2)?;
                        Ok(EventInfo {
                            seq: r.get::<_, i64>(0)? as u64,
                            event_id: r.get(1)?,
                            kind: EventKind::parse(&kind).unwrap_or(EventKind::Create),
                            timestamp: r.get(3)?,
                            size: r.get::<_, i64>(4)? as u64,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await?)
    }

    async fn read(&self, replica: &str, first: u64, last: u64) -> Result<Vec<u8>, JournalError> {
        let replica = replica.to_string();
        Ok(self
            .db
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT body FROM journal WHERE replica = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY seq",
                )?;
                let mut out = Vec::new();
                let mut rows = st.query(params![replica, first as i64, last as i64])?;
                while let Some(r) = rows.next()? {
                    out.extend_from_slice(&r.get::<_, Vec<u8>>(0)?);
                }
                Ok(out)
            })
            .await?)
    }

    async fn find(
        &self,
        replica: &str,
        event_id: &str,
        kind: EventKind,
    ) -> Result<Option<String>, JournalError> {
        let (replica, event_id) = (replica.to_string(), event_id.to_string());
        Ok(self
            .db
            .read(move |c| {
                let body: Option<Vec<u8>> = c
                    .prepare_cached(
                        "SELECT body FROM journal WHERE replica = ?1 AND event_id = ?2 AND kind = ?3",
                    )?
                    .query_row(params![replica, event_id, kind.as_str()], |r| r.get(0))
                    .optional()?;
                Ok(body.map(|b| String::from_utf8_lossy(&b).into_owned()))
            })
            .await?)
    }
}
