//! The notify daemon: webhooks for bundle events.
//!
//! Two workers share the process:
//! * **matching** reads the bucket events of every replica (queue `notify`), matches each bundle
//!   CREATE / TOMBSTONE / DELETE against the replica's subscriptions (Elasticsearch queries over
//!   the search document, JMESPath over the event document) and writes one delivery per match
//!   to the durable outbox before enqueueing its first attempt;
//! * **delivery** reads due attempts (queue `notify-deliveries`), sends signed requests, logs
//!   every attempt, retries on the configured schedule with delayed messages, and dead-letters a
//!   delivery whose schedule ran out (an operator can resend it).
//!
//! A periodic task forgets the log and finished deliveries after `notify.log_retention_secs`.

pub mod client;
pub mod deliver;
pub mod documents;
pub mod endpoints;
pub mod events;
pub mod matching;
pub mod outbox;
pub mod payload;
pub mod request;
pub mod schedule;
pub mod signature;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dss_core::clock::millis;
use dss_core::names::{DELIVERY_QUEUE, NOTIFY_QUEUE};
use dss_core::ports::{DeliveryState, Queue};
use dss_runtime::daemon::{Daemon, DaemonError, Pass, PassResult, Periodic, Task};
use dss_runtime::deployment::Deployment;
use dss_runtime::worker::WorkerConfig;
use tokio_util::sync::CancellationToken;

pub use client::Client;
pub use deliver::Deliverer;
pub use events::EventHandler;

/// Errors starting the daemon.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// How often the delivery log is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The delivery handler of a deployment, sending its next attempts to `queue`.
pub fn deliverer(deployment: &Deployment, queue: Arc<dyn Queue>) -> Result<Deliverer, NotifyError> {
    let cfg = &deployment.config.notify;
    Ok(Deliverer {
        subscriptions: deployment.subscriptions.clone(),
        deliveries: deployment.deliveries.clone(),
        queue,
        client: Client::new(cfg)?,
        endpoints: endpoints::Endpoints::from(cfg),
        schedule: schedule::Schedule::from(cfg),
        allow: cfg.allowed_nets(),
        clock: deployment.clock.clone(),
        claim_for: Duration::from_millis(cfg.connect_timeout_ms + cfg.timeout_ms)
            + Duration::from_secs(30),
        outcomes: deployment.metrics.outcomes(
            "dss_notify_deliveries",
            "Webhook delivery attempts and give-ups, by outcome (delivered, retrying, dead, cancelled).",
            &["delivered", "retrying", "dead", "cancelled"],
        ),
    })
}

/// Starts a new round of attempts for a dead delivery; `false` if it is not dead.
pub async fn resend(deployment: &Deployment, id: &str) -> Result<bool, ResendError> {
    let now = deployment.clock.now_ms();
    let Some(d) = deployment.deliveries.resend(id, now).await? else {
        return Ok(false);
    };
    debug_assert_eq!(d.state, DeliveryState::Pending);
    let queue = deployment.queue(DELIVERY_QUEUE).await?;
    outbox::send(
        &*queue,
        &[outbox::Due {
            delivery: &d.new.id,
            attempts: d.attempts,
            due_ms: now,
        }],
        now,
    )
    .await?;
    Ok(true)
}

/// Why a resend failed.
#[derive(Debug, thiserror::Error)]
pub enum ResendError {
    /// The outbox failed.
    #[error(transparent)]
    Deliveries(#[from] dss_core::ports::DeliveryError),
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] dss_core::ports::QueueError),
}

/// The notify daemon: bundle events → webhook deliveries in the outbox → signed callbacks.
#[derive(Debug, Default)]
pub struct NotifyDaemon;

#[async_trait]
impl Daemon for NotifyDaemon {
    fn name(&self) -> &'static str {
        "notify"
    }

    fn about(&self) -> &'static str {
        "webhook matching and deliveries"
    }

    async fn tasks(&self, deployment: &Deployment) -> Result<Vec<Task>, DaemonError> {
        let cfg = &deployment.config.notify;
        let deliveries: Arc<dyn Queue> = deployment.queue(DELIVERY_QUEUE).await?;
        let visibility = Duration::from_secs(cfg.visibility_secs);
        let mut match_cfg = WorkerConfig::named("notify-match");
        match_cfg.visibility = visibility;
        let events = deployment
            .worker(
                NOTIFY_QUEUE,
                Arc::new(EventHandler::new(deployment, deliveries.clone())),
                match_cfg,
            )
            .await?;
        let mut delivery_cfg = WorkerConfig::named("notify-deliver");
        delivery_cfg.concurrency = cfg.concurrency;
        delivery_cfg.batch_size = cfg.concurrency.min(100);
        delivery_cfg.visibility =
            (Duration::from_millis(cfg.timeout_ms + cfg.connect_timeout_ms) * 2).max(visibility);
        let delivery = deployment
            .worker(
                DELIVERY_QUEUE,
                Arc::new(deliverer(deployment, deliveries)?),
                delivery_cfg,
            )
            .await?;
        Ok(vec![
            Task::Worker(events),
            Task::Worker(delivery),
            Task::Periodic(Periodic {
                name: "notify-prune",
                first: Duration::ZERO,
                every: PRUNE_EVERY,
                pass: Box::new(Prune(deployment.clone())),
            }),
        ])
    }
}

/// Runs the notify daemon until `shutdown`.
pub async fn run(deployment: &Deployment, shutdown: CancellationToken) -> Result<(), DaemonError> {
    dss_runtime::daemon::run(&NotifyDaemon, deployment, shutdown).await
}

/// Forgets the delivery log and finished deliveries older than `notify.log_retention_secs`.
struct Prune(Deployment);

#[async_trait]
impl Pass for Prune {
    async fn run(&self) -> PassResult {
        let keep = Duration::from_secs(self.0.config.notify.log_retention_secs);
        let before = self.0.clock.now_ms() - millis(keep);
        let n = self.0.deliveries.prune(before).await?;
        Ok((n > 0).then(|| format!("pruned {n} rows of the delivery log")))
    }
}
