//! Leases in the shared database, timed by the database's clock (`now()`), never a host's.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;

use crate::error::Failure;
use crate::pool::execute;
use dss_core::ports::leases::{LeaseError, Leases};

/// The PostgreSQL [`Leases`].
#[derive(Debug, Clone)]
pub struct PgLeases {
    pool: Pool,
}

impl PgLeases {
    pub(crate) fn new(pool: Pool) -> Self {
        Self { pool }
    }

    async fn acquire_in(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, Failure> {
        let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let sql = "INSERT INTO leases (name, holder, until)
                   VALUES ($1, $2, now() + $3::bigint * interval '1 millisecond')
                   ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
                   WHERE leases.until <= now() OR leases.holder = excluded.holder";
        Ok(execute(&self.pool, sql, &[&name, &holder, &ms]).await? == 1)
    }

    async fn release_in(&self, name: &str, holder: &str) -> Result<(), Failure> {
        let sql = "DELETE FROM leases WHERE name = $1 AND holder = $2";
        execute(&self.pool, sql, &[&name, &holder]).await?;
        Ok(())
    }
}

#[async_trait]
impl Leases for PgLeases {
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, LeaseError> {
        Ok(self.acquire_in(name, holder, ttl).await?)
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), LeaseError> {
        Ok(self.release_in(name, holder).await?)
    }
}
