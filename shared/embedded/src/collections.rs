//! The collection owner index in the embedded database.

use async_trait::async_trait;
use rusqlite::params;

use super::db::{Db, DbError};
use dss_core::ports::collections::{CollectionIndex, CollectionIndexError};

impl From<DbError> for CollectionIndexError {
    fn from(e: DbError) -> Self {
        CollectionIndexError::Backend(e.to_string())
    }
}

/// The embedded [`CollectionIndex`].
#[derive(Debug, Clone)]
pub struct EmbeddedCollections {
    db: Db,
}

impl EmbeddedCollections {
    /// The index in `db`.
    pub fn new(db: &Db) -> Self {
        Self { db: db.clone() }
    }
}

#[async_trait]
impl CollectionIndex for EmbeddedCollections {
    async fn add(
        &self,
        owner: &str,
        uuid: &str,
        version: &str,
    ) -> Result<(), CollectionIndexError> {
        let (owner, uuid, version) = (owner.to_string(), uuid.to_string(), version.to_string());
        Ok(self
            .db
            .write(move |c| {
                c.prepare_cached(
                    "INSERT OR IGNORE INTO collection_owners (owner, uuid, version) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![owner, uuid, version])?;
                Ok(())
            })
            .await?)
    }

    async fn list(
        &self,
        owner: &str,
        start: usize,
        limit: usize,
    ) -> Result<(Vec<(String, String)>, usize), CollectionIndexError> {
        let owner = owner.to_string();
        Ok(self
            .db
            .read(move |c| {
                let total: i64 = c
                    .prepare_cached("SELECT COUNT(*) FROM collection_owners WHERE owner = ?1")?
                    .query_row(params![owner], |r| r.get(0))?;
                let rows = c
                    .prepare_cached(
                        "SELECT uuid, version FROM collection_owners WHERE owner = ?1
                         ORDER BY uuid DESC, version DESC LIMIT ?2 OFFSET ?3",
                    )?
                    .query_map(
                        params![
                            owner,
                            i64::try_from(limit).unwrap_or(i64::MAX),
                            i64::try_from(start).unwrap_or(i64::MAX)
                        ],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )?
                    .collect::<Result<_, _>>()?;
                Ok((rows, total as usize))
            })
            .await?)
    }

    async fn remove(&self, owner: &str, uuid: &str) -> Result<(), CollectionIndexError> {
        let (owner, uuid) = (owner.to_string(), uuid.to_string());
        Ok(self
            .db
            .write(move |c| {
                c.prepare_cached("DELETE FROM collection_owners WHERE owner = ?1 AND uuid = ?2")?
                    .execute(params![owner, uuid])?;
                Ok(())
            })
            .await?)
    }
}
