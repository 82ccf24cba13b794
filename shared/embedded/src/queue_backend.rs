//! The embedded [`QueueBackend`]: queues and the bucket events topic in the embedded database.

use std::sync::Arc;

use async_trait::async_trait;

use super::queue::{EmbeddedQueue, EmbeddedTopic, QueueConfig};
use crate::Db;
use dss_core::clock::SharedClock;
use dss_core::ports::{Queue, QueueBackend, QueueError, QueueSpec, Topic};

/// Queues of the embedded database.
#[derive(Debug, Clone)]
pub struct EmbeddedQueues {
    db: Db,
    clock: SharedClock,
}

impl EmbeddedQueues {
    /// Queues in `db`.
    pub fn new(db: &Db, clock: SharedClock) -> Self {
        Self {
            db: db.clone(),
            clock,
        }
    }
}

#[async_trait]
impl QueueBackend for EmbeddedQueues {
    async fn queue(&self, spec: &QueueSpec) -> Result<Arc<dyn Queue>, QueueError> {
        let cfg = QueueConfig {
            max_receive_count: spec.max_receive_count,
            dead_letter: None,
        };
        let q = EmbeddedQueue::declare(&self.db, &spec.name, cfg, self.clock.clone()).await?;
        Ok(Arc::new(q))
    }

    async fn declare(&self, topic: &str, specs: &[QueueSpec]) -> Result<(), QueueError> {
        let topic = EmbeddedTopic::new(&self.db, topic, self.clock.clone());
        for spec in specs {
            self.queue(spec).await?;
            match spec.bucket_events {
                true => topic.subscribe(&spec.name).await?,
                false => topic.unsubscribe(&spec.name).await?,
            }
        }
        Ok(())
    }

    async fn topic(&self, topic: &str) -> Result<Arc<dyn Topic>, QueueError> {
        Ok(Arc::new(EmbeddedTopic::new(
            &self.db,
            topic,
            self.clock.clone(),
        )))
    }

    fn declares_at_start(&self) -> bool {
        true
    }
}
