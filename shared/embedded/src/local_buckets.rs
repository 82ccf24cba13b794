//! Local buckets as sibling directories of one parent directory (the local "account"): bucket
//! `name` is the directory `{parent}/{name}`, and exists when that directory does.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use dss_core::clock::SharedClock;
use dss_core::ports::blob::{BlobError, BlobStore};
use dss_core::ports::buckets::{Buckets, valid_bucket_name};
use dss_core::signing::UrlSigner;

use super::db::Db;
use super::local_blob::LocalBlobStore;

/// Which directory a bucket was opened in (inode numbers are reused, birth times are not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DirId {
    dev: u64,
    ino: u64,
    born: Option<std::time::SystemTime>,
}

/// The local buckets under one directory. Each bucket directory is opened once per process (and
/// shares its writer between every user of it); a directory removed and made again is opened
/// afresh.
#[derive(Debug, Clone)]
pub struct LocalBuckets {
    db: Db,
    parent: PathBuf,
    signer: Option<UrlSigner>,
    clock: SharedClock,
    fsync: bool,
    opened: Arc<Mutex<HashMap<String, (LocalBlobStore, DirId)>>>,
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
        let dir = self.parent.join(name);
        let seen = |d: &std::path::Path| {
            std::fs::metadata(d)
                .map(|m| DirId {
                    dev: m.dev(),
                    ino: m.ino(),
                    born: m.created().ok(),
                })
                .map_err(|e| BlobError::Backend(format!("{}: {e}", d.display())))
        };
        // The same directory as when it was opened (not one removed and made again, which a
        // reused inode number alone would not tell on file systems without birth times)?
        if let Ok(id) = seen(&dir)
            && let Some((b, _)) = self.lock().get(name).filter(|(_, was)| *was == id)
            && b.root().join(".tmp").is_dir()
        {
            return Ok(b.clone());
        }
        let bucket = LocalBlobStore::open(
            &self.db,
            name,
            &dir,
            None,
            self.signer.clone(),
            self.clock.clone(),
        )?
        .with_fsync(self.fsync);
        let id = seen(&dir)?;
        self.lock().insert(name.to_string(), (bucket.clone(), id));
        Ok(bucket)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (LocalBlobStore, DirId)>> {
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
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BlobError::Backend(format!("{}: {e}", dir.display()))),
        }
    }

    fn location(&self, name: &str, prefix: &str) -> String {
        format!("file://{}/{name}/{prefix}", self.parent.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bucket_removed_and_made_again_is_opened_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db"), dss_config::Durability::Process).unwrap();
        let buckets = LocalBuckets::new(
            &db,
            dir.path().to_path_buf(),
            None,
            dss_core::clock::system(),
            false,
        );
        let put = |b: Arc<dyn BlobStore>| async move {
            b.put_bytes("k", bytes::Bytes::from_static(b"v"), Default::default())
                .await
        };
        assert!(
            buckets.open("dest").await.unwrap().is_none(),
            "no such bucket"
        );
        std::fs::create_dir(dir.path().join("dest")).unwrap();
        put(buckets.open("dest").await.unwrap().unwrap())
            .await
            .unwrap();
        std::fs::remove_dir_all(dir.path().join("dest")).unwrap();
        assert!(buckets.open("dest").await.unwrap().is_none(), "removed");
        std::fs::create_dir(dir.path().join("dest")).unwrap();
        put(buckets.open("dest").await.unwrap().unwrap())
            .await
            .expect("the new directory is usable");
    }
}
