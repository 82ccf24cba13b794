//! Where a resumable scan (an operator command over many keys) got to: the last key done, in a
//! small JSON document, with the scope it belongs to so a run with other options starts afresh.
//!
//! Operator commands keep it in the replica's checkout bucket (`ops/checkpoints/…`), which every
//! host of the deployment reaches, so a run interrupted on one host resumes on another; with a
//! lease ([`Checkpoint::exclusive`]) only one run at a time moves it.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use dss_core::ports::{BlobError, BlobStore, PutOptions};
use serde::{Deserialize, Serialize};

use crate::daemon::LeaseHolder;

/// The checkpoint could not be read or written, or another run holds it.
#[derive(Debug, thiserror::Error)]
#[error("checkpoint {at}: {message}")]
pub struct CheckpointError {
    /// Where it is kept.
    pub at: String,
    /// What went wrong.
    pub message: String,
}

#[derive(Serialize, Deserialize)]
struct Content {
    scope: String,
    after: String,
}

/// Where a checkpoint is kept.
#[derive(Debug, Clone)]
enum Place {
    File(PathBuf),
    Object {
        store: Arc<dyn BlobStore>,
        key: String,
    },
}

/// A checkpoint.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    place: Place,
    lease: Option<LeaseHolder>,
}

impl Checkpoint {
    /// The checkpoint kept in `file` (created with its directory on the first write).
    pub fn new(file: PathBuf) -> Self {
        Self {
            place: Place::File(file),
            lease: None,
        }
    }

    /// The checkpoint kept as object `key` of `store`.
    pub fn in_bucket(store: Arc<dyn BlobStore>, key: String) -> Self {
        Self {
            place: Place::Object { store, key },
            lease: None,
        }
    }

    /// Only the run holding `lease`'s lease on this checkpoint may read or move it; reads and
    /// writes take or renew it, clearing gives it up.
    pub fn exclusive(mut self, lease: LeaseHolder) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Where it is kept, for messages.
    pub fn location(&self) -> String {
        match &self.place {
            Place::File(f) => f.display().to_string(),
            Place::Object { store, key } => format!("{}/{key}", store.bucket()),
        }
    }

    fn lease_name(&self) -> String {
        format!("checkpoint/{}", self.location())
    }

    fn error(&self, e: impl std::fmt::Display) -> CheckpointError {
        CheckpointError {
            at: self.location(),
            message: e.to_string(),
        }
    }

    /// Takes or renews the lease, if any.
    async fn hold(&self) -> Result<(), CheckpointError> {
        match &self.lease {
            Some(l) if !l.hold(&self.lease_name()).await => Err(self.error(format!(
                "another run holds it (or the lease store failed); a run that died lets go within {} s",
                l.ttl.as_secs()
            ))),
            _ => Ok(()),
        }
    }

    /// The last key done by a run of `scope`; `None` when there is none (or it was another
    /// scope's).
    pub async fn read(&self, scope: &str) -> Result<Option<String>, CheckpointError> {
        self.hold().await?;
        let text = match &self.place {
            Place::File(f) => match std::fs::read(f) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(self.error(e)),
            },
            Place::Object { store, key } => match store.get_bytes(key).await {
                Ok(b) => b.to_vec(),
                Err(BlobError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(self.error(e)),
            },
        };
        let c: Content = serde_json::from_slice(&text).map_err(|e| self.error(e))?;
        Ok((c.scope == scope).then_some(c.after))
    }

    /// Records that every key up to `after` is done (atomically: a temp file renamed, or one
    /// object put).
    pub async fn write(&self, scope: &str, after: &str) -> Result<(), CheckpointError> {
        self.hold().await?;
        let c = Content {
            scope: scope.to_string(),
            after: after.to_string(),
        };
        let body = serde_json::to_string(&c).map_err(|e| self.error(e))?;
        match &self.place {
            Place::File(f) => {
                if let Some(dir) = f.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| self.error(e))?;
                }
                let tmp = f.with_extension("tmp");
                std::fs::write(&tmp, body).map_err(|e| self.error(e))?;
                std::fs::rename(&tmp, f).map_err(|e| self.error(e))
            }
            Place::Object { store, key } => {
                let opts = PutOptions {
                    content_type: Some("application/json".into()),
                    ..PutOptions::default()
                };
                store
                    .put_bytes(key, Bytes::from(body), opts)
                    .await
                    .map(drop)
                    .map_err(|e| self.error(e))
            }
        }
    }

    /// Forgets the position (the run completed, or starts over) and gives the lease up.
    pub async fn clear(&self) -> Result<(), CheckpointError> {
        self.hold().await?;
        match &self.place {
            Place::File(f) => match std::fs::remove_file(f) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(self.error(e)),
                _ => {}
            },
            Place::Object { store, key } => {
                store.delete(key).await.map_err(|e| self.error(e))?;
            }
        }
        if let Some(l) = &self.lease
            && let Err(e) = l.leases.release(&self.lease_name(), &l.holder).await
        {
            tracing::warn!(checkpoint = %self.location(), error = %e, "cannot give the lease up; it lapses");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_checkpoint_belongs_to_its_scope_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let c = Checkpoint::new(dir.path().join("ops/run.json"));
        assert_eq!(c.read("bundles/").await.unwrap(), None);
        c.write("bundles/", "bundles/a").await.unwrap();
        c.write("bundles/", "bundles/b").await.unwrap();
        assert_eq!(
            c.read("bundles/").await.unwrap().as_deref(),
            Some("bundles/b")
        );
        assert_eq!(
            c.read("files/").await.unwrap(),
            None,
            "another scope's position"
        );
        c.clear().await.unwrap();
        c.clear().await.unwrap();
        assert_eq!(c.read("bundles/").await.unwrap(), None);
        std::fs::write(dir.path().join("ops/run.json"), "garbage").unwrap();
        assert!(
            c.read("bundles/")
                .await
                .unwrap_err()
                .to_string()
                .contains("run.json")
        );
    }

    #[tokio::test]
    async fn a_checkpoint_in_a_bucket_is_one_runs_at_a_time() {
        use dss_config::Durability;
        use dss_core::clock::system;
        use dss_embedded::{Db, EmbeddedLeases, LocalBlobStore};
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("d.db"), Durability::Process).unwrap();
        let store: Arc<dyn BlobStore> = Arc::new(
            LocalBlobStore::open(
                &db,
                "aws-checkout",
                &dir.path().join("b"),
                None,
                None,
                system(),
            )
            .unwrap(),
        );
        let lease = |holder: &str| LeaseHolder {
            leases: Arc::new(EmbeddedLeases::new(&db, system())),
            holder: holder.into(),
            ttl: std::time::Duration::from_secs(30),
        };
        let key = "ops/checkpoints/reindex-aws.json".to_string();
        let one = Checkpoint::in_bucket(store.clone(), key.clone()).exclusive(lease("one"));
        let two = Checkpoint::in_bucket(store.clone(), key).exclusive(lease("two"));
        assert_eq!(one.read("bundles/").await.unwrap(), None);
        one.write("bundles/", "bundles/a").await.unwrap();
        let refused = two.read("bundles/").await.unwrap_err().to_string();
        assert!(refused.contains("another run holds it"), "{refused}");
        one.clear().await.unwrap();
        assert_eq!(
            two.read("bundles/").await.unwrap(),
            None,
            "free once the first run is done"
        );
        two.write("bundles/", "bundles/b").await.unwrap();
        // Another host resumes where the run stopped (same bucket, its own lease once free).
        let again = Checkpoint::in_bucket(store, "ops/checkpoints/reindex-aws.json".into());
        assert_eq!(
            again.read("bundles/").await.unwrap().as_deref(),
            Some("bundles/b")
        );
    }
}
