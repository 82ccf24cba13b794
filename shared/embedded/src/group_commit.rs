//! Group commit: the writes of every part of the process (queue receives and acks, search
//! documents, journal events, object placements, delivery outcomes) queue for one writer task,
//! and one transaction takes every write waiting at that moment. A burst costs one commit (and
//! one write of the pages its writes share) instead of one each. Each write runs in a savepoint
//! of its own, so a failing write fails alone; every write is answered after its group commits.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::db::{Db, DbError};

/// Most writes one transaction takes.
const MAX_GROUP: usize = 512;

/// One queued write.
pub(crate) trait Work: Send {
    /// Runs the write inside `tx`, in a savepoint of its own; `Err` only when the savepoint
    /// itself failed (the group's transaction is then unusable).
    fn apply(&mut self, tx: &Transaction<'_>) -> Result<(), DbError>;
    /// Answers the writer: the group's failure, or what the write produced.
    fn answer(self: Box<Self>, group: Result<(), &DbError>);
}

/// A write and the caller waiting for it.
struct Pending<F, R> {
    write: Option<F>,
    out: Option<Result<R, DbError>>,
    reply: oneshot::Sender<Result<R, DbError>>,
}

impl<F, R> Work for Pending<F, R>
where
    F: FnOnce(&Transaction<'_>) -> Result<R, DbError> + Send,
    R: Send,
{
    fn apply(&mut self, tx: &Transaction<'_>) -> Result<(), DbError> {
        let Some(write) = self.write.take() else {
            return Ok(());
        };
        tx.execute_batch("SAVEPOINT write")?;
        let out = std::panic::catch_unwind(AssertUnwindSafe(|| write(tx)))
            .unwrap_or_else(|_| Err(DbError::Task("a database write panicked".into())));
        if out.is_err() {
            tx.execute_batch("ROLLBACK TO write")?;
        }
        tx.execute_batch("RELEASE write")?;
        self.out = Some(out);
        Ok(())
    }

    fn answer(self: Box<Self>, group: Result<(), &DbError>) {
        let out = match group {
            Err(e) => Err(DbError::Task(format!("the group transaction failed: {e}"))),
            Ok(()) => self
                .out
                .unwrap_or_else(|| Err(DbError::Task("the write was not run".into()))),
        };
        let _ = self.reply.send(out);
    }
}

/// The queue of a database's grouped writes, and the writer connection they are applied with.
pub(crate) struct Writes {
    conn: Arc<Mutex<Connection>>,
    /// The writer task's queue; started on first use (and again if the runtime it ran on is
    /// gone).
    queue: Mutex<Option<mpsc::UnboundedSender<Box<dyn Work>>>>,
}

impl Writes {
    /// Grouped writes applied with `conn`.
    pub(crate) fn new(conn: Arc<Mutex<Connection>>) -> Self {
        Self {
            conn,
            queue: Mutex::new(None),
        }
    }

    /// Queues `work` for the writer task (started on the current runtime if there is none).
    fn send(&self, work: Box<dyn Work>) -> Result<(), DbError> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let work = match queue.as_ref() {
            Some(q) => match q.send(work) {
                Ok(()) => return Ok(()),
                // The runtime the writer ran on is gone.
                Err(mpsc::error::SendError(work)) => work,
            },
            None => work,
        };
        let started = start(self.conn.clone());
        started.send(work).map_err(|_| stopped())?;
        *queue = Some(started);
        Ok(())
    }
}

/// Starts the writer task: it waits for writes without holding a thread, and applies each group
/// on the blocking pool (which is also what keeps tokio's paused test clock from running ahead
/// of a commit).
fn start(conn: Arc<Mutex<Connection>>) -> mpsc::UnboundedSender<Box<dyn Work>> {
    let (queue, mut queued) = mpsc::unbounded_channel::<Box<dyn Work>>();
    tokio::spawn(async move {
        let mut group = Vec::with_capacity(MAX_GROUP);
        while queued.recv_many(&mut group, MAX_GROUP).await > 0 {
            let mut taken = std::mem::replace(&mut group, Vec::with_capacity(MAX_GROUP));
            let conn = conn.clone();
            // A write that panicked was caught in its savepoint; were this task to fail
            // anyway, the writes' callers would be told the writer stopped.
            let _ = tokio::task::spawn_blocking(move || {
                let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
                let result = commit(&mut c, &mut taken);
                drop(c);
                for w in taken {
                    w.answer(result.as_ref().map(|_| ()));
                }
            })
            .await;
        }
    });
    queue
}

/// Applies `group` in one transaction and commits it.
fn commit(conn: &mut Connection, group: &mut [Box<dyn Work>]) -> Result<(), DbError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for w in group.iter_mut() {
        w.apply(&tx)?;
    }
    tx.commit()?;
    Ok(())
}

impl Db {
    /// Runs `write` in the next group transaction of the writer task, in a savepoint of its own
    /// (its failure rolls back its changes alone), and answers once that transaction is
    /// committed. The write must be short: it holds up the rest of its group.
    pub(crate) async fn grouped<R, F>(&self, write: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<R, DbError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.writes().send(Box::new(Pending {
            write: Some(write),
            out: None,
            reply,
        }))?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> DbError {
    DbError::Task("the database writer stopped".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dss_config::Durability;
    use rusqlite::params;
    use std::time::Duration;

    fn insert(tx: &Transaction<'_>, v: i64) -> Result<i64, DbError> {
        tx.execute("INSERT INTO t (v) VALUES (?1)", params![v])?;
        Ok(v)
    }

    #[tokio::test]
    async fn a_failing_write_of_a_group_fails_alone_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("g.db"), Durability::Process).unwrap();
        db.grouped(|tx| Ok(tx.execute_batch("CREATE TABLE t (v INTEGER UNIQUE)")?))
            .await
            .unwrap();
        // The first write holds the writer while the others queue: they form one group.
        let first = db.grouped(|tx| {
            std::thread::sleep(Duration::from_millis(100));
            insert(tx, 1)
        });
        let (d2, d3, d4, d5) = (db.clone(), db.clone(), db.clone(), db.clone());
        let rest = async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let failing = d3.grouped(|tx| {
                insert(tx, 3)?;
                insert(tx, 2) // already there once the write before it ran: fails
            });
            let panicking = d4.grouped(|tx| -> Result<i64, DbError> {
                insert(tx, 4)?;
                panic!("a bug in one write")
            });
            futures::join!(
                d2.grouped(|tx| insert(tx, 2)),
                failing,
                panicking,
                d5.grouped(|tx| insert(tx, 5))
            )
        };
        let (first, (two, failing, panicking, five)) = futures::join!(first, rest);
        assert_eq!(first.unwrap(), 1);
        assert_eq!(two.unwrap(), 2);
        assert!(failing.is_err(), "the unique constraint fails that write");
        assert!(panicking.is_err(), "a panic is that write's failure");
        assert_eq!(five.unwrap(), 5);
        let kept: Vec<i64> = db
            .read_inline(|c| {
                let mut s = c.prepare("SELECT v FROM t ORDER BY v")?;
                let v = s.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
                Ok(v)
            })
            .unwrap();
        assert_eq!(
            kept,
            vec![1, 2, 5],
            "the failed writes' rows are rolled back"
        );
    }
}
