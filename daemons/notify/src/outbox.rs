//! Messages on the delivery queue: "attempt delivery D, which has made N attempts, at time T".
//! A message is acted on only if the delivery is still pending with exactly N attempts, so
//! duplicates and stale messages are harmless. Waits longer than the queue's longest delay are
//! made of several hops.

use std::time::Duration;

use dss_core::ports::{OutgoingMessage, Queue, QueueError};
use serde::{Deserialize, Serialize};

/// One due attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Due<'a> {
    /// The delivery's id.
    pub delivery: &'a str,
    /// Attempts it had made when this message was sent.
    pub attempts: u32,
    /// When the attempt is due (ms since the epoch).
    pub due_ms: i64,
}

impl Due<'_> {
    fn message(&self, queue: &dyn Queue, now_ms: i64) -> OutgoingMessage {
        let wait = Duration::from_millis(self.due_ms.saturating_sub(now_ms).max(0) as u64);
        OutgoingMessage {
            body: dss_core::correlation::body(self).unwrap_or_default(),
            delay: wait.min(queue.max_delay()),
        }
    }
}

/// Sends `due` attempts to the delivery queue, in one batch (adapters split it as their
/// backend requires).
pub async fn send(queue: &dyn Queue, due: &[Due<'_>], now_ms: i64) -> Result<(), QueueError> {
    if due.is_empty() {
        return Ok(());
    }
    let messages: Vec<_> = due.iter().map(|d| d.message(queue, now_ms)).collect();
    queue.send_batch(&messages).await
}
