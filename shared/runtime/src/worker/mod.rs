//! The worker runtime every daemon runs on: receive a batch → run handlers with bounded
//! concurrency → ack only after the handler's effect is durable.
//!
//! Acks of finished messages are sent in batches (whatever finished while the previous batch
//! was being acked), which costs no latency when idle and one commit per batch under load.
//! Errors are classified by the handler: transient → the message becomes visible again after an
//! exponential backoff with jitter; permanent → it moves to the dead-letter queue with the reason.
//! Long handlers keep their message hidden by extending its visibility. Shutdown stops receiving,
//! lets in-flight handlers finish within a grace period, and returns.

mod defer;
mod metrics;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use dss_core::clock::{Clock, SystemClock};
use dss_core::ports::queue::{Message, OutgoingMessage, Queue};

pub use dss_core::backoff::Backoff;
pub use metrics::{MetricsSnapshot, WorkerMetrics};

/// What a handler did with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The effect is durable: ack.
    Done,
    /// Not yet possible (e.g. a dependency is missing): try again after the given delay, or the
    /// backoff delay when `None`.
    RetryLater(Option<Duration>),
}

/// A failed handling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// May succeed on retry (network, throttling, a peer down).
    #[error("transient: {0}")]
    Transient(String),
    /// Will never succeed (malformed message, violated invariant): dead-letter it.
    #[error("permanent: {0}")]
    Permanent(String),
    /// A service the handler needs (search, storage, a database) is unavailable; the message
    /// is not at fault. It is deferred without using up its receives, and the worker pauses.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl HandlerError {
    /// A transient failure described by `e` (for `map_err` on backend errors).
    pub fn transient(e: impl std::fmt::Display) -> Self {
        HandlerError::Transient(e.to_string())
    }

    /// An unavailable service described by `e` (for `map_err` on outages).
    pub fn unavailable(e: impl std::fmt::Display) -> Self {
        HandlerError::Unavailable(e.to_string())
    }
}

/// A daemon's job: handle one message.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Handles one message; must be idempotent (delivery is at-least-once).
    async fn handle(&self, message: &Message) -> Result<Outcome, HandlerError>;
}

/// Tuning of a worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Name for logs and metrics.
    pub name: String,
    /// Messages received per call.
    pub batch_size: usize,
    /// Handlers running at once.
    pub concurrency: usize,
    /// Visibility timeout of a received message (extended while its handler runs).
    pub visibility: Duration,
    /// Long-poll wait per receive.
    pub wait: Duration,
    /// Retry delays of transient failures.
    pub backoff: Backoff,
    /// How long shutdown waits for in-flight handlers.
    pub shutdown_grace: Duration,
    /// How often queue gauges (depth, oldest age) are refreshed.
    pub stats_every: Duration,
    /// How long a message is deferred while services its handler needs are unavailable
    /// before it is dead-lettered.
    pub outage_limit: Duration,
}

impl WorkerConfig {
    /// Defaults suited to a daemon named `name`.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_string(),
            batch_size: 10,
            concurrency: 8,
            visibility: Duration::from_secs(60),
            wait: Duration::from_secs(1),
            backoff: Backoff::default(),
            shutdown_grace: Duration::from_secs(30),
            stats_every: Duration::from_secs(10),
            outage_limit: Duration::from_secs(24 * 3600),
        }
    }
}

/// Runs a handler over a queue.
pub struct Worker {
    queue: Arc<dyn Queue>,
    dead_letters: Option<Arc<dyn Queue>>,
    handler: Arc<dyn Handler>,
    cfg: WorkerConfig,
    metrics: Arc<WorkerMetrics>,
    clock: Arc<dyn Clock>,
}

impl Worker {
    /// A worker for `handler` on `queue`.
    pub fn new(queue: Arc<dyn Queue>, handler: Arc<dyn Handler>, cfg: WorkerConfig) -> Self {
        Self {
            queue,
            dead_letters: None,
            handler,
            cfg,
            metrics: Arc::new(WorkerMetrics::default()),
            clock: Arc::new(SystemClock),
        }
    }

    /// Uses `clock` for the age of deferred messages.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Also reports the depth of `dlq`, the queue's dead-letter queue, with the queue gauges.
    pub fn with_dead_letters(mut self, dlq: Arc<dyn Queue>) -> Self {
        self.dead_letters = Some(dlq);
        self
    }

    /// The worker's counters (shared; read them while it runs).
    pub fn metrics(&self) -> Arc<WorkerMetrics> {
        self.metrics.clone()
    }

    /// Runs until `shutdown` is cancelled, then drains in-flight handlers.
    pub async fn run(self, shutdown: CancellationToken) {
        let permits = Arc::new(Semaphore::new(self.cfg.concurrency.max(1)));
        let refill = (self.cfg.batch_size.min(self.cfg.concurrency) / 2).max(1);
        let (acks, pending_acks) = tokio::sync::mpsc::unbounded_channel();
        let acker = tokio::spawn(ack_loop(
            self.queue.clone(),
            pending_acks,
            self.metrics.clone(),
            self.cfg.name.clone(),
        ));
        let mut tasks = JoinSet::new();
        let mut receive_failures = 0u32;
        let mut next_stats = tokio::time::Instant::now();
        let pause = Arc::new(defer::Pause::default());
        tracing::info!(worker = %self.cfg.name, queue = self.queue.name(), "worker started");
        loop {
            while tasks.try_join_next().is_some() {}
            if tokio::time::Instant::now() >= next_stats {
                self.refresh_gauges().await;
                next_stats = tokio::time::Instant::now() + self.cfg.stats_every;
            }
            // Receive in batches: while handlers run, wait until half a batch of slots is free
            // (one receive per message would cost a queue transaction per message).
            let free = permits.available_permits();
            if free == 0 || (free < refill && !tasks.is_empty()) {
                tokio::select! {
                    _ = tasks.join_next() => continue,
                    _ = shutdown.cancelled() => break,
                }
            }
            // A service the handlers need is unavailable: receive nothing more until the pause
            // ends (what is in flight goes on).
            if let Some(until) = pause.until() {
                tracing::debug!(worker = %self.cfg.name, "paused while a service is unavailable");
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => continue,
                    _ = shutdown.cancelled() => break,
                }
            }
            let want = free.min(self.cfg.batch_size.max(1));
            let received = tokio::select! {
                r = self.queue.receive(want, self.cfg.visibility, self.cfg.wait) => r,
                _ = shutdown.cancelled() => break,
            };
            let batch = match received {
                Ok(b) => {
                    receive_failures = 0;
                    b
                }
                Err(e) => {
                    receive_failures += 1;
                    let nap = self.cfg.backoff.delay(receive_failures);
                    tracing::warn!(worker = %self.cfg.name, error = %e, retry_in = ?nap, "receive failed");
                    tokio::select! {
                        _ = tokio::time::sleep(nap) => continue,
                        _ = shutdown.cancelled() => break,
                    }
                }
            };
            for message in batch {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let job = Job {
                    queue: self.queue.clone(),
                    handler: self.handler.clone(),
                    cfg: self.cfg.clone(),
                    metrics: self.metrics.clone(),
                    acks: acks.clone(),
                    pause: pause.clone(),
                    clock: self.clock.clone(),
                };
                tasks.spawn(async move {
                    job.process(message).await;
                    drop(permit);
                });
            }
        }
        tracing::info!(worker = %self.cfg.name, in_flight = tasks.len(), "worker stopping; draining in-flight handlers");
        let drained = tokio::time::timeout(self.cfg.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(worker = %self.cfg.name, abandoned = tasks.len(), "grace period over; unfinished messages will be redelivered");
            tasks.abort_all();
        }
        drop(acks);
        if let Err(e) = acker.await {
            tracing::warn!(worker = %self.cfg.name, error = %e, "ack task failed; unacked messages will be redelivered");
        }
        tracing::info!(worker = %self.cfg.name, "worker stopped");
    }

    async fn refresh_gauges(&self) {
        if !self.queue.reports_gauges() {
            return;
        }
        match self.queue.stats().await {
            Ok(s) => self.metrics.set_queue(s.depth(), s.oldest_age),
            Err(e) => tracing::warn!(worker = %self.cfg.name, error = %e, "queue stats failed"),
        }
        if let Some(dlq) = self.dead_letters.as_ref().filter(|q| q.reports_gauges()) {
            match dlq.stats().await {
                Ok(s) => self.metrics.set_dead_letters(s.depth()),
                Err(e) => {
                    tracing::warn!(worker = %self.cfg.name, error = %e, "dead-letter queue stats failed")
                }
            }
        }
    }
}

/// Acks finished messages in batches until every sender is gone.
async fn ack_loop(
    queue: Arc<dyn Queue>,
    mut pending: tokio::sync::mpsc::UnboundedReceiver<Ack>,
    metrics: Arc<WorkerMetrics>,
    name: String,
) {
    let mut batch = Vec::with_capacity(ACK_BATCH);
    while pending.recv_many(&mut batch, ACK_BATCH).await > 0 {
        let receipts: Vec<String> = batch.iter().map(|a| a.receipt.clone()).collect();
        match queue.ack_batch(&receipts).await {
            Ok(()) => {
                for _ in batch.iter().filter(|a| a.handled) {
                    metrics.succeeded();
                }
            }
            Err(e) => {
                tracing::warn!(worker = %name, error = %e, messages = batch.len(), "ack failed; the messages will be redelivered")
            }
        }
        batch.clear();
    }
}

/// A delivery to ack: handled, or replaced by a deferred copy.
struct Ack {
    receipt: String,
    handled: bool,
}

/// Most receipts acked in one call.
const ACK_BATCH: usize = 100;

struct Job {
    queue: Arc<dyn Queue>,
    handler: Arc<dyn Handler>,
    cfg: WorkerConfig,
    metrics: Arc<WorkerMetrics>,
    acks: tokio::sync::mpsc::UnboundedSender<Ack>,
    pause: Arc<defer::Pause>,
    clock: Arc<dyn Clock>,
}

impl Job {
    async fn process(self, message: Message) {
        let (message, deferral) = defer::unwrap(message);
        let _in_flight = self.metrics.start();
        let span = tracing::info_span!("message", worker = %self.cfg.name, id = %message.id, attempt = message.receive_count, correlation_id = tracing::field::Empty);
        // The request (or message) that caused this one: logged, and passed on to what the
        // handler writes and sends.
        let dss_core::correlation::Carried {
            correlation_id: correlation,
            traceparent,
        } = dss_core::correlation::carried(&message.body);
        if let Some(id) = &correlation {
            span.record("correlation_id", tracing::field::display(id));
        }
        let result = {
            // A panic in the handler is a failed attempt of this message alone: the worker,
            // its other messages and the process go on. Its span continues the trace of what
            // caused the message.
            let handle = crate::telemetry::in_span(
                span.clone(),
                traceparent.as_deref(),
                AssertUnwindSafe(self.handler.handle(&message)).catch_unwind(),
            );
            let handle = match correlation {
                Some(id) => futures::future::Either::Left(dss_core::correlation::scope(id, handle)),
                None => futures::future::Either::Right(handle),
            };
            tokio::pin!(handle);
            let extend_every = self.cfg.visibility / 2;
            loop {
                tokio::select! {
                    r = &mut handle => break r,
                    _ = tokio::time::sleep(extend_every) => {
                        if let Err(e) = self.queue.change_visibility(&message.receipt, self.cfg.visibility).await {
                            tracing::warn!(parent: &span, error = %e, "could not extend visibility");
                        }
                    }
                }
            }
        };
        match result {
            Ok(Ok(Outcome::Done)) => {
                self.pause.clear();
                let ack = Ack {
                    receipt: message.receipt,
                    handled: true,
                };
                if self.acks.send(ack).is_err() {
                    tracing::warn!(parent: &span, "worker stopped before the ack; the message will be redelivered");
                }
            }
            Ok(Ok(Outcome::RetryLater(after))) => {
                let delay = after.unwrap_or_else(|| self.cfg.backoff.delay(message.receive_count));
                tracing::info!(parent: &span, retry_in = ?delay, "not ready; retrying later");
                self.retry(&message, delay, &span).await;
            }
            Err(panic) => {
                self.metrics.panicked();
                let delay = self.cfg.backoff.delay(message.receive_count);
                let what = panic_message(&*panic);
                tracing::error!(parent: &span, panic = what, retry_in = ?delay, "handler panicked; counted as a failed attempt");
                self.retry(&message, delay, &span).await;
            }
            Ok(Err(HandlerError::Transient(reason))) => {
                let delay = self.cfg.backoff.delay(message.receive_count);
                tracing::warn!(parent: &span, %reason, retry_in = ?delay, "transient failure");
                self.retry(&message, delay, &span).await;
            }
            Ok(Err(HandlerError::Unavailable(reason))) => {
                self.defer(&message, deferral, &reason, &span).await;
            }
            Ok(Err(HandlerError::Permanent(reason))) => {
                tracing::error!(parent: &span, %reason, "permanent failure; dead-lettering");
                match self.queue.dead_letter(&message, &reason).await {
                    Ok(()) => self.metrics.dead_lettered(),
                    Err(e) => {
                        tracing::error!(parent: &span, error = %e, "dead-lettering failed; the message will be redelivered")
                    }
                }
            }
        }
    }

    /// Sends a deferred copy of `message` (with one more deferral) and acks this delivery, or
    /// dead-letters it once it has been deferred for longer than the outage limit.
    async fn defer(
        &self,
        message: &Message,
        deferral: Option<defer::Deferral>,
        reason: &str,
        span: &tracing::Span,
    ) {
        let now_ms = self.clock.now_ms();
        let next = defer::Deferral {
            count: deferral.map_or(1, |d| d.count.saturating_add(1)),
            since_ms: deferral.map_or(now_ms, |d| d.since_ms),
        };
        let waited = Duration::from_millis(u64::try_from(now_ms - next.since_ms).unwrap_or(0));
        if waited > self.cfg.outage_limit {
            let why = format!("unavailable for {}s: {reason}", waited.as_secs());
            tracing::error!(parent: span, reason = why, "outage outlasted the limit; dead-lettering");
            match self.queue.dead_letter(message, &why).await {
                Ok(()) => self.metrics.dead_lettered(),
                Err(e) => {
                    tracing::error!(parent: span, error = %e, "dead-lettering failed; the message will be redelivered")
                }
            }
            return;
        }
        self.pause.unavailable(&self.cfg.backoff);
        let delay = self
            .cfg
            .backoff
            .delay(next.count)
            .min(self.queue.max_delay());
        tracing::warn!(parent: span, %reason, retry_in = ?delay, deferrals = next.count, "a service is unavailable; message deferred");
        let copy = OutgoingMessage {
            body: defer::wrap(&message.body, next),
            delay,
        };
        match self.queue.send_batch(&[copy]).await {
            Ok(()) => {
                self.metrics.deferred();
                let ack = Ack {
                    receipt: message.receipt.clone(),
                    handled: false,
                };
                if self.acks.send(ack).is_err() {
                    tracing::warn!(parent: span, "worker stopped before the ack; the message will be redelivered");
                }
            }
            // The queue is down too: fall back to a retry that uses up a receive.
            Err(e) => {
                tracing::warn!(parent: span, error = %e, "could not defer; retrying in place");
                self.retry(message, delay, span).await;
            }
        }
    }

    async fn retry(&self, message: &Message, delay: Duration, span: &tracing::Span) {
        match self.queue.change_visibility(&message.receipt, delay).await {
            Ok(()) => self.metrics.retried(),
            Err(e) => {
                tracing::warn!(parent: span, error = %e, "could not schedule retry; visibility timeout applies")
            }
        }
    }
}

/// The message of a caught panic.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests;
