//! The events journal in the shared database.
//!
//! Writers of one replica serialise on its row in `journal_heads`, which holds the last
//! sequence number and timestamp: each writing transaction locks it, appends after it and
//! moves it on, so sequence numbers and timestamps are handed out in commit order. A reader
//! paging by time therefore never skips an event that commits later: a later commit always
//! carries a later timestamp. (A bigserial or a clock read outside the lock would not hold
//! this; the cost is one writer at a time per replica.)
//!
//! Within a process, concurrent `record` calls are group-committed: a writer task takes every
//! request waiting at that moment into one transaction (heads locked in replica order, so two
//! processes' batches never deadlock). A batch that fails is retried request by request, so one
//! bad request fails alone.

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Pool};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Failure, col};
use crate::pool::{query, query_opt};
use dss_core::clock::SharedClock;
use dss_core::model::DssVersion;
use dss_core::ports::journal::{EventInfo, EventJournal, EventKind, JournalError, NewEvent};

/// One `record` call waiting for the writer.
struct Request {
    replica: String,
    events: Vec<NewEvent>,
    done: oneshot::Sender<Result<usize, Failure>>,
}

/// Requests one transaction takes at most.
const BATCH: usize = 64;

/// The PostgreSQL [`EventJournal`].
#[derive(Debug, Clone)]
pub struct PgJournal {
    pool: Pool,
    writer: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("replica", &self.replica)
            .field("events", &self.events.len())
            .finish()
    }
}

impl PgJournal {
    /// The journal over `pool`; starts its writer task on the current runtime.
    pub(crate) fn new(pool: Pool, clock: SharedClock) -> Self {
        let (writer, requests) = mpsc::channel(1024);
        tokio::spawn(write(pool.clone(), clock, requests));
        Self { pool, writer }
    }
}

/// The writer task: every request waiting at that moment, in one transaction.
async fn write(pool: Pool, clock: SharedClock, mut requests: mpsc::Receiver<Request>) {
    while let Some(first) = requests.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match requests.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        batch.sort_by(|a, b| a.replica.cmp(&b.replica));
        let parts: Vec<(&str, &[NewEvent])> = batch
            .iter()
            .map(|r| (r.replica.as_str(), r.events.as_slice()))
            .collect();
        match commit(&pool, &clock, &parts).await {
            Ok(counts) => {
                for (r, n) in batch.into_iter().zip(counts) {
                    let _ = r.done.send(Ok(n));
                }
            }
            Err(e) if batch.len() == 1 => {
                let _ = batch.pop().map(|r| r.done.send(Err(e)));
            }
            Err(_) => {
                for r in batch {
                    let one = [(r.replica.as_str(), r.events.as_slice())];
                    let result = commit(&pool, &clock, &one).await.map(|n| n[0]);
                    let _ = r.done.send(result);
                }
            }
        }
    }
}

/// Appends each `(replica, events)` in one transaction (parts sorted by replica); how many
/// were new in each.
async fn commit(
    pool: &Pool,
    clock: &SharedClock,
    parts: &[(&str, &[NewEvent])],
) -> Result<Vec<usize>, Failure> {
    let mut c = pool.get().await?;
    let tx = c.transaction().await?;
    let mut counts = Vec::with_capacity(parts.len());
    for group in parts.chunk_by(|a, b| a.0 == b.0) {
        let lists: Vec<&[NewEvent]> = group.iter().map(|p| p.1).collect();
        counts.extend(append(&tx, clock, group[0].0, &lists).await?);
    }
    tx.commit().await?;
    Ok(counts)
}

/// Appends the event lists of one replica inside the caller's transaction, in five statements
/// however many events: lock the head, find which events are recorded already, insert the
/// others in one statement, move the head. Holding the head's lock, no other writer of the
/// replica can record the same event meanwhile. How many were new in each list.
async fn append(
    tx: &impl GenericClient,
    clock: &SharedClock,
    replica: &str,
    lists: &[&[NewEvent]],
) -> Result<Vec<usize>, Failure> {
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
    let ids: Vec<&str> = lists
        .iter()
        .flat_map(|l| l.iter().map(|e| e.event_id.as_str()))
        .collect();
    let kinds: Vec<&str> = lists
        .iter()
        .flat_map(|l| l.iter().map(|e| e.kind.as_str()))
        .collect();
    let existing = tx
        .prepare_cached(
            "SELECT event_id, kind FROM journal WHERE replica = $1
             AND (event_id, kind) IN (SELECT * FROM unnest($2::text[], $3::text[]))",
        )
        .await?;
    let mut seen: std::collections::HashSet<(String, String)> = tx
        .query(&existing, &[&replica, &ids, &kinds])
        .await?
        .iter()
        .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
        .collect::<Result<_, Failure>>()?;
    // Read under the lock: later than every timestamp handed out before.
    let now = clock.now();
    let mut ts = DssVersion::parse(&last)
        .map(|v| v.to_datetime())
        .unwrap_or(now - time::Duration::microseconds(1));
    let (mut seqs, mut new_kinds, mut new_ids, mut stamps, mut bodies) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut counts = Vec::with_capacity(lists.len());
    for list in lists {
        let mut added = 0;
        for e in *list {
            if !seen.insert((e.event_id.clone(), e.kind.as_str().to_string())) {
                continue;
            }
            seq += 1;
            ts = now.max(ts + time::Duration::microseconds(1));
            seqs.push(seq);
            new_kinds.push(e.kind.as_str());
            new_ids.push(e.event_id.as_str());
            stamps.push(DssVersion::from_datetime(ts).as_str().to_string());
            bodies.push(e.body.as_bytes());
            added += 1;
        }
        counts.push(added);
    }
    if seqs.is_empty() {
        return Ok(counts);
    }
    let insert = tx
        .prepare_cached(
            "INSERT INTO journal (replica, seq, kind, event_id, ts, body)
             SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::bytea[])",
        )
        .await?;
    tx.execute(
        &insert,
        &[&replica, &seqs, &new_kinds, &new_ids, &stamps, &bodies],
    )
    .await?;
    let stamp = DssVersion::from_datetime(ts);
    tx.execute(
        "UPDATE journal_heads SET seq = $2, ts = $3 WHERE replica = $1",
        &[&replica, &seq, &stamp.as_str()],
    )
    .await?;
    Ok(counts)
}

impl PgJournal {
    async fn list_in(
        &self,
        replica: &str,
        from: &str,
        to: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EventInfo>, Failure> {
        let sql = "SELECT seq, event_id, kind, ts, length(body) FROM journal
                   WHERE replica = $1 AND ts >= $2 AND ($3::text IS NULL OR ts < $3)
                   ORDER BY ts LIMIT $4";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        query(&self.pool, sql, &[&replica, &from, &to, &limit])
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
        let sql =
            "SELECT body FROM journal WHERE replica = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq";
        let (first, last) = (
            i64::try_from(first).unwrap_or(i64::MAX),
            i64::try_from(last).unwrap_or(i64::MAX),
        );
        let mut out = Vec::new();
        for r in query(&self.pool, sql, &[&replica, &first, &last]).await? {
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
        let sql = "SELECT body FROM journal WHERE replica = $1 AND event_id = $2 AND kind = $3";
        Ok(
            match query_opt(&self.pool, sql, &[&replica, &event_id, &kind.as_str()]).await? {
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
        let (done, answer) = oneshot::channel();
        let request = Request {
            replica: replica.to_string(),
            events,
            done,
        };
        let stopped = || JournalError::Backend("the journal's writer stopped".into());
        self.writer.send(request).await.map_err(|_| stopped())?;
        Ok(answer.await.map_err(|_| stopped())??)
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
