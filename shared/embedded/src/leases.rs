//! Leases in the embedded database: what the processes of one machine sharing a data directory
//! agree on, judged by the injected clock.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::params;

use super::db::{Db, DbError};
use dss_core::clock::SharedClock;
use dss_core::ports::leases::{LeaseError, Leases};

impl From<DbError> for LeaseError {
    fn from(e: DbError) -> Self {
        LeaseError::Backend(e.to_string())
    }
}

/// The embedded [`Leases`].
#[derive(Debug, Clone)]
pub struct EmbeddedLeases {
    db: Db,
    clock: SharedClock,
}

impl EmbeddedLeases {
    /// The leases in `db`, timed by `clock`.
    pub fn new(db: &Db, clock: SharedClock) -> Self {
        Self {
            db: db.clone(),
            clock,
        }
    }
}

#[async_trait]
impl Leases for EmbeddedLeases {
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, LeaseError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        let now = self.clock.now_ms();
        let until = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        Ok(self
            .db
            .write(move |c| {
                let n = c
                    .prepare_cached(
                        "INSERT INTO leases (name, holder, until_ms) VALUES (?1, ?2, ?3)
                         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
                         until_ms = excluded.until_ms
                         WHERE leases.until_ms <= ?4 OR leases.holder = excluded.holder",
                    )?
                    .execute(params![name, holder, until, now])?;
                Ok(n == 1)
            })
            .await?)
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), LeaseError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        Ok(self
            .db
            .write(move |c| {
                c.prepare_cached("DELETE FROM leases WHERE name = ?1 AND holder = ?2")?
                    .execute(params![name, holder])?;
                Ok(())
            })
            .await?)
    }
}
