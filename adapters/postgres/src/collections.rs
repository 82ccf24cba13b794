//! The collection owner index in the shared database.

use async_trait::async_trait;
use deadpool_postgres::Pool;

use crate::error::{Failure, col};
use crate::pool::execute;
use dss_core::ports::collections::{CollectionIndex, CollectionIndexError};

/// The PostgreSQL [`CollectionIndex`].
#[derive(Debug, Clone)]
pub struct PgCollections {
    pool: Pool,
}

impl PgCollections {
    pub(crate) fn new(pool: Pool) -> Self {
        Self { pool }
    }

    async fn list_in(
        &self,
        owner: &str,
        start: usize,
        limit: usize,
    ) -> Result<(Vec<(String, String)>, usize), Failure> {
        let c = self.pool.get().await?;
        let count = c
            .prepare_cached("SELECT count(*) FROM collection_owners WHERE owner = $1")
            .await?;
        let page = c
            .prepare_cached(
                "SELECT uuid, version FROM collection_owners WHERE owner = $1
                 ORDER BY uuid DESC, version DESC LIMIT $2 OFFSET $3",
            )
            .await?;
        let total: i64 = col(&c.query_one(&count, &[&owner]).await?, 0)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let start = i64::try_from(start).unwrap_or(i64::MAX);
        let rows = c
            .query(&page, &[&owner, &limit, &start])
            .await?
            .iter()
            .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
            .collect::<Result<_, Failure>>()?;
        Ok((rows, usize::try_from(total).unwrap_or(0)))
    }
}

#[async_trait]
impl CollectionIndex for PgCollections {
    async fn add(
        &self,
        owner: &str,
        uuid: &str,
        version: &str,
    ) -> Result<(), CollectionIndexError> {
        let sql = "INSERT INTO collection_owners (owner, uuid, version) VALUES ($1, $2, $3)
                   ON CONFLICT DO NOTHING";
        execute(&self.pool, sql, &[&owner, &uuid, &version]).await?;
        Ok(())
    }

    async fn list(
        &self,
        owner: &str,
        start: usize,
        limit: usize,
    ) -> Result<(Vec<(String, String)>, usize), CollectionIndexError> {
        Ok(self.list_in(owner, start, limit).await?)
    }

    async fn remove(&self, owner: &str, uuid: &str) -> Result<(), CollectionIndexError> {
        let sql = "DELETE FROM collection_owners WHERE owner = $1 AND uuid = $2";
        execute(&self.pool, sql, &[&owner, &uuid]).await?;
        Ok(())
    }
}
