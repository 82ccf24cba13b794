//! Local buckets as sibling directories of one parent directory (the local "account"): bucket
//! `name` is the directory `{parent}/{name}`, and exists when that directory does.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::clock::SharedClock;
use crate::ports::blob::{BlobError, BlobStore};
use crate::ports::buckets::{Buckets, valid_bucket_name};
use crate::signing::UrlSigner;

use super::db::Db;
use super::local_blob::LocalBlobStore;

/// The local buckets under one directory. Each bucket is opened once per process (and shares
/// its writer between every user of it).
#[derive(Debug, Clone)]
pub struct LocalBuckets {
    db: Db,
    parent: PathBuf,
    signer: Option<UrlSigner>,
    clock: SharedClock,
    fsync: bool,
    opened: Arc<Mutex<HashMap<String, LocalBlobStore>>>,
}

impl LocalBuckets {
    /// The buckets under `parent`; opened buckets sign URLs with `signer` and fsync their
    /// writes when `fsync` is set.
    pub fn new(
        db: &Db,
        parent: PathBuf,
        signer: Option<UrlSigner>,
        clock: SharedClock,
        fsync: bool,
    ) -> Self {
        Self {
            db: db.clone(),
            parent,
            signer,
            clock,
            fsync,
            opened: Arc::default(),
        }
    }

    /// Creates bucket `name` if it does not exist, and opens it.
    pub fn create(&self, name: &str) -> Result<LocalBlobStore, BlobError> {
        self.check(name)?;
        if let Some(b) = self.lock().get(name) {
            return Ok(b.clone());
        }
        let bucket = LocalBlobStore::open(
            &self.db,
            name,
            &self.parent.join(name),
            None,
            self.signer.clone(),
            self.clock.clone(),
        )?
        .with_fsync(self.fsync);
        Ok(self
            .lock()
            .entry(name.to_string())
            .or_insert(bucket)
            .clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LocalBlobStore>> {
        self.opened.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check(&self, name: &str) -> Result<(), BlobError> {
        if valid_bucket_name(name) {
            Ok(())
        } else {
            Err(BlobError::InvalidKey {
                key: name.to_string(),
                reason: "not a bucket name",
            })
        }
    }
}

#[async_trait]
impl Buckets for LocalBuckets {
    async fn open(&self, name: &str) -> Result<Option<Arc<dyn BlobStore>>, BlobError> {
        self.check(name)?;
        let dir = self.parent.join(name);
        match tokio::fs::metadata(&dir).await {
            Ok(m) if m.is_dir() => Ok(Some(Arc::new(self.create(name)?))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Removed by the operator: open it afresh if it comes back.
                self.lock().remove(name);
                Ok(None)
            }
            Err(e) => Err(BlobError::Backend(format!("{}: {e}", dir.display()))),
        }
    }

    fn location(&self, name: &str, prefix: &str) -> String {
        format!("file://{}/{name}/{prefix}", self.parent.display())
    }
}
