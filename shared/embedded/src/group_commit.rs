//! Group commit: concurrent writes of one kind queue for a writer task, and one transaction
//! takes every write waiting at that moment, so a burst costs one commit instead of one each.

use std::sync::Arc;

use rusqlite::{Transaction, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::db::{Db, DbError};

/// Most writes one transaction takes.
const MAX_GROUP: usize = 512;

type Reply<R> = oneshot::Sender<Result<R, DbError>>;

/// A writer task applying writes of type `W` (each answering an `R`) in group transactions.
pub(crate) struct GroupCommit<W, R> {
    queue: mpsc::UnboundedSender<(W, Reply<R>)>,
}

impl<W, R> std::fmt::Debug for GroupCommit<W, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl<W, R> Clone for GroupCommit<W, R> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<W: Send + 'static, R: Send + 'static> GroupCommit<W, R> {
    /// Starts the writer on the current runtime; `apply` performs one write inside the group's
    /// transaction. If any write of a group fails, the whole group fails.
    pub(crate) fn start<F>(db: &Db, apply: F) -> Self
    where
        F: Fn(&Transaction<'_>, W) -> Result<R, DbError> + Send + Sync + 'static,
    {
        let (queue, mut pending) = mpsc::unbounded_channel::<(W, Reply<R>)>();
        let (db, apply) = (db.clone(), Arc::new(apply));
        tokio::spawn(async move {
            let mut group = Vec::with_capacity(MAX_GROUP);
            while pending.recv_many(&mut group, MAX_GROUP).await > 0 {
                let (work, replies): (Vec<W>, Vec<Reply<R>>) = group.drain(..).unzip();
                let apply = apply.clone();
                let result = db
                    .write(move |c| {
                        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                        let out = work
                            .into_iter()
                            .map(|w| apply(&tx, w))
                            .collect::<Result<Vec<R>, DbError>>()?;
                        tx.commit()?;
                        Ok(out)
                    })
                    .await;
                match result {
                    Ok(out) => {
                        for (reply, r) in replies.into_iter().zip(out) {
                            let _ = reply.send(Ok(r));
                        }
                    }
                    Err(e) => {
                        for reply in replies {
                            let _ = reply.send(Err(DbError::Task(e.to_string())));
                        }
                    }
                }
            }
        });
        Self { queue }
    }

    /// Queues `work` and waits for its group to commit.
    pub(crate) async fn submit(&self, work: W) -> Result<R, DbError> {
        let (reply, answer) = oneshot::channel();
        self.queue.send((work, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Queues every write of `works` at once (so they share a group, up to [`MAX_GROUP`]) and
    /// waits for them; one answer per write, in order.
    pub(crate) async fn submit_all(&self, works: Vec<W>) -> Vec<Result<R, DbError>> {
        let answers: Vec<_> = works
            .into_iter()
            .map(|work| {
                let (reply, answer) = oneshot::channel();
                self.queue.send((work, reply)).ok().map(|()| answer)
            })
            .collect();
        let mut out = Vec::with_capacity(answers.len());
        for answer in answers {
            out.push(match answer {
                Some(a) => a.await.unwrap_or_else(|_| Err(stopped())),
                None => Err(stopped()),
            });
        }
        out
    }
}

fn stopped() -> DbError {
    DbError::Task("the group-commit writer stopped".into())
}
