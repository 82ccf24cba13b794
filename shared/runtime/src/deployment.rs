//! Wires a configuration into live adapters: the embedded database, one bucket per replica
//! (emitting bucket events onto the `bucket-events` topic), the search index, the events
//! journal and the URL signer; and declares the queues the daemons consume.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use dss_config::Durability;
use dss_config::{Config, DownloadMode, ReplicaLocation, replica_location};
use dss_core::clock::SharedClock;
use dss_core::names::*;
use dss_core::ports::{
    BlobStore, Buckets, CollectionIndex, DeliveryStore, EventJournal, Leases, Mailer, Queue,
    QueueBackend, QueueError, QueueSpec, SearchIndex, Staging, SubscriptionStore,
};
use dss_core::signing::UrlSigner;
use dss_embedded::{
    Db, EmbeddedCollections, EmbeddedDeliveries, EmbeddedJournal, EmbeddedLeases, EmbeddedQueues,
    EmbeddedSearch, EmbeddedSubscriptions, FileMailer, LocalBlobStore, LocalBuckets, QueueConfig,
};

/// Queues subscribed to the bucket events topic, one per consuming daemon (and [`SYNC_QUEUE`]
/// when there is more than one replica).
const BUCKET_EVENT_QUEUES: &[&str] = &[INDEX_QUEUE, NOTIFY_QUEUE];

/// Errors while opening a deployment.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// The embedded database could not be opened.
    #[error("opening the embedded database: {0}")]
    Db(#[from] dss_embedded::DbError),
    /// A bucket could not be opened.
    #[error("opening replica `{replica}`: {message}")]
    Replica {
        /// Replica name.
        replica: String,
        /// What failed.
        message: String,
    },
    /// Key material could not be read or created.
    #[error("key file {path}: {source}")]
    Key {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// One named replica.
#[derive(Debug, Clone)]
pub struct Replica {
    /// Its name (`aws`, `gcp`, …).
    pub name: String,
    /// Its main bucket.
    pub store: Arc<dyn BlobStore>,
    /// Its checkout bucket: checkout job status documents, and the default checkout destination.
    pub checkout: Arc<dyn BlobStore>,
    /// The buckets of its storage account (checkout destinations).
    pub buckets: Arc<dyn Buckets>,
    /// How downloads are served.
    pub download: DownloadMode,
}

/// Live adapters of a deployment.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The configuration it was built from.
    pub config: Config,
    /// The embedded database.
    pub db: Db,
    /// Replicas by name.
    pub replicas: BTreeMap<String, Replica>,
    /// Bundle documents for search.
    pub search: Arc<dyn SearchIndex>,
    /// Bundle events journal.
    pub journal: Arc<dyn EventJournal>,
    /// Webhook subscriptions.
    pub subscriptions: Arc<dyn SubscriptionStore>,
    /// The webhook outbox and delivery log.
    pub deliveries: Arc<dyn DeliveryStore>,
    /// Which collections each owner created.
    pub collections: Arc<dyn CollectionIndex>,
    /// Leases of work that runs once per deployment.
    pub leases: Arc<dyn Leases>,
    /// This process among the deployment's (`{host}/{pid}/{random}`): the holder of its leases.
    pub instance: String,
    /// Outgoing e-mail (the file mailer unless an SMTP adapter is put in place).
    pub mailer: Arc<dyn Mailer>,
    /// Signs download URLs served by the API.
    pub signer: UrlSigner,
    /// Where the daemons' queues live.
    pub queues: Arc<dyn QueueBackend>,
    /// The process's metrics (served at `/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Queues opened so far, by name (opening a cloud queue takes requests).
    opened: Arc<std::sync::Mutex<BTreeMap<String, Arc<dyn Queue>>>>,
    /// Cloud staging sources of `PUT /files` by URL scheme (`s3`, `gs`); `file://` sources
    /// are read from the staging directory.
    pub staging: BTreeMap<String, Arc<dyn Staging>>,
    /// Directory names of the local main buckets (never checkout destinations).
    main_dirs: Vec<String>,
    /// The clock.
    pub clock: SharedClock,
}

/// Reads the key file at `path`; on first use creates it from `generate`, atomically and
/// readable by the owner only (a temp file of this process, fsynced, then linked into place
/// only if no other process got there first). Processes starting together on a new data
/// directory all end up with the one key that was linked.
pub fn read_or_create_key(
    path: &std::path::Path,
    generate: impl FnOnce() -> std::io::Result<Vec<u8>>,
) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::read(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        other => return other,
    }
    if let Some(dir) = path.parent() {
        dss_core::private_files::create_dir(dir)?;
    }
    let key = generate()?;
    let tmp = path.with_extension(format!(
        "tmp.{}.{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&key)?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(path),
        Err(e) => Err(e),
    }
}

/// A name of this process unique in the deployment: its host, its pid and a random part (a pid
/// is reused after a restart).
fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!(
        "{host}/{}/{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Reads a 32-byte secret from `path`, creating a random one on first use.
pub fn load_or_create_secret(path: &std::path::Path) -> Result<Vec<u8>, DeploymentError> {
    let key_err = |source| DeploymentError::Key {
        path: path.to_path_buf(),
        source,
    };
    let key =
        read_or_create_key(path, || Ok(rand::random::<[u8; 32]>().to_vec())).map_err(key_err)?;
    if key.len() < 32 {
        return Err(key_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "shorter than 32 bytes",
        )));
    }
    Ok(key)
}

impl Deployment {
    /// Opens every adapter the configuration names; every replica must be local (`file://`)
    /// and the queues embedded (`dss` wires clouds: see [`Deployment::open_local_parts`]).
    /// Must run within a Tokio runtime (the journal starts its writer task).
    pub fn open(config: Config, clock: SharedClock) -> Result<Self, DeploymentError> {
        Self::open_local(config, clock, false)
    }

    /// Opens the embedded parts and the local replicas, leaving out cloud replicas (and the
    /// cloud queue backend and staging sources): the wiring of their backend adds them.
    pub fn open_local_parts(config: Config, clock: SharedClock) -> Result<Self, DeploymentError> {
        Self::open_local(config, clock, true)
    }

    /// Opens the embedded parts and the local replicas; cloud replicas are an error unless
    /// `skip_cloud` (then the caller opens them).
    fn open_local(
        config: Config,
        clock: SharedClock,
        skip_cloud: bool,
    ) -> Result<Self, DeploymentError> {
        let db = Db::open(&config.data_dir.join("dss.db"), config.embedded.durability)?;
        let secret = load_or_create_secret(&config.keys.url_signing(&config.data_dir))?;
        let signer = UrlSigner::new(&config.public_url(), secret);
        let mut replicas = BTreeMap::new();
        let mut main_dirs = Vec::new();
        for (name, r) in &config.replicas {
            let err = |message: String| DeploymentError::Replica {
                replica: name.clone(),
                message,
            };
            let dir = match replica_location(&r.url).map_err(err)? {
                ReplicaLocation::Local(dir) => dir,
                _ if skip_cloud => continue,
                _ => {
                    return Err(err(format!(
                        "'{}' is a cloud bucket; this component opens local replicas only",
                        r.url
                    )));
                }
            };
            let store = LocalBlobStore::open(
                &db,
                name,
                &dir,
                Some(BUCKET_EVENTS_TOPIC),
                Some(signer.clone()),
                clock.clone(),
            )
            .map_err(|e| err(e.to_string()))?;
            // The replica's account: the directory holding its bucket. Checkout copies can be
            // made again, so they are fsynced only when power-loss durability is asked for.
            let parent = store
                .root()
                .parent()
                .ok_or_else(|| err("the bucket directory has no parent".into()))?
                .to_path_buf();
            let buckets = LocalBuckets::new(
                &db,
                parent,
                Some(signer.clone()),
                clock.clone(),
                config.embedded.durability == Durability::Power,
            );
            main_dirs.extend(
                store
                    .root()
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned()),
            );
            let checkout_name = r.checkout_bucket_name(name);
            if main_dirs.contains(&checkout_name) || config.replicas.contains_key(&checkout_name) {
                return Err(err(format!(
                    "checkout bucket '{checkout_name}' is a main bucket"
                )));
            }
            let checkout = buckets
                .create(&checkout_name)
                .map_err(|e| err(format!("checkout bucket: {e}")))?;
            replicas.insert(
                name.clone(),
                Replica {
                    name: name.clone(),
                    store: Arc::new(store),
                    checkout: Arc::new(checkout),
                    buckets: Arc::new(buckets),
                    download: r.download,
                },
            );
        }
        Ok(Self {
            search: Arc::new(
                EmbeddedSearch::new(&db, clock.clone())
                    .with_segments(config.data_dir.join("search"))
                    .with_limits(config.limits.query()),
            ),
            journal: Arc::new(EmbeddedJournal::new(&db, clock.clone())),
            subscriptions: Arc::new(EmbeddedSubscriptions::new(&db)),
            deliveries: Arc::new(EmbeddedDeliveries::new(&db)),
            collections: Arc::new(EmbeddedCollections::new(&db)),
            leases: Arc::new(EmbeddedLeases::new(&db, clock.clone())),
            instance: instance_name(),
            queues: Arc::new(EmbeddedQueues::new(&db, clock.clone())),
            staging: BTreeMap::new(),
            metrics: Arc::default(),
            opened: Arc::default(),
            mailer: Arc::new(FileMailer::new(
                &config.mail.dir_in(&config.data_dir),
                &config.mail.sender,
                clock.clone(),
            )),
            config,
            db,
            replicas,
            signer,
            main_dirs,
            clock,
        })
    }

    /// Every daemon queue: its dead-letter threshold and whether it receives bucket events
    /// (sync only while there is more than one replica: with one there is nothing to copy).
    pub fn queue_specs(&self) -> Vec<QueueSpec> {
        DAEMON_QUEUES
            .iter()
            .map(|name| self.queue_spec(name))
            .collect()
    }

    /// The declaration of queue `name`: its dead-letter threshold and whether it reads bucket
    /// events.
    pub fn queue_spec(&self, name: &str) -> QueueSpec {
        let max_receive_count = match name {
            // A job marks itself FAILED after `max_attempts` failed tries; the margin lets a
            // job survive daemons killed under it.
            CHECKOUT_QUEUE => self.config.checkout.max_attempts + 10,
            CHECKOUT_MAIL_QUEUE => self.config.mail.max_attempts,
            SYNC_QUEUE => self.config.sync.max_attempts,
            // Dead letters stay until an operator redrives or purges them, however often
            // they are looked at.
            n if n.ends_with("-dlq") => u32::MAX,
            _ => QueueConfig::default().max_receive_count,
        };
        QueueSpec {
            name: name.to_string(),
            max_receive_count,
            bucket_events: BUCKET_EVENT_QUEUES.contains(&name)
                || (name == SYNC_QUEUE && self.replicas.len() > 1),
        }
    }

    /// Declares every daemon queue and its subscription to the bucket events, so that events
    /// are kept for a daemon even while it is not running. Idempotent; every component calls it
    /// at start. Cloud backends are declared by `dss infra local` or Terraform instead: here
    /// they are left alone.
    pub async fn declare_queues(&self) -> Result<(), QueueError> {
        match self.queues.declares_at_start() {
            true => self.declare_all_queues().await,
            false => Ok(()),
        }
    }

    /// Declares every daemon queue, the bucket events topic and its subscriptions on the
    /// queue backend, whatever its kind. Idempotent.
    pub async fn declare_all_queues(&self) -> Result<(), QueueError> {
        self.queues
            .declare(BUCKET_EVENTS_TOPIC, &self.queue_specs())
            .await
    }

    /// A daemon's queue (with its dead-letter queue `{name}-dlq`), or any other queue of the
    /// backend by name.
    /// Opened once per process and shared.
    pub async fn queue(&self, name: &str) -> Result<Arc<dyn Queue>, QueueError> {
        let opened = || self.opened.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(q) = opened().get(name) {
            return Ok(q.clone());
        }
        let q = self.queues.queue(&self.queue_spec(name)).await?;
        Ok(opened().entry(name.to_string()).or_insert(q).clone())
    }

    /// A worker running `handler` over daemon queue `queue`, reporting its counters and the
    /// depths of the queue and of its dead-letter queue under `cfg.name`.
    pub async fn worker(
        &self,
        queue: &str,
        handler: Arc<dyn crate::worker::Handler>,
        cfg: crate::worker::WorkerConfig,
    ) -> Result<crate::worker::Worker, QueueError> {
        let name = cfg.name.clone();
        let worker = crate::worker::Worker::new(self.queue(queue).await?, handler, cfg)
            .with_dead_letters(self.queue(&format!("{queue}-dlq")).await?)
            .with_clock(self.clock.clone());
        self.metrics.track(&name, worker.metrics());
        Ok(worker)
    }

    /// Whether `name` must not be a checkout destination: it names a replica's main bucket
    /// (or its directory), where checkout files would mix with the stored objects.
    pub fn is_main_bucket(&self, name: &str) -> bool {
        self.replicas.values().any(|r| r.store.bucket() == name)
            || self.main_dirs.iter().any(|d| d == name)
    }

    /// The replica whose main bucket is `bucket`.
    pub fn replica_of_bucket(&self, bucket: &str) -> Option<&Replica> {
        self.replicas.values().find(|r| r.store.bucket() == bucket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_starting_together_agree_on_one_new_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys/url-signing.key");
        let keys: Vec<Vec<u8>> = std::thread::scope(|s| {
            let racers: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_create_secret(&path).expect("key")))
                .collect();
            racers
                .into_iter()
                .map(|r| r.join().expect("thread"))
                .collect()
        });
        let on_disk = std::fs::read(&path).expect("key file");
        assert!(keys.iter().all(|k| k == &on_disk), "one key for all");
        let left: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left.len(), 1, "no temp files left: {left:?}");
    }

    /// `infra/resources.json` is what Terraform creates in production: its names must be the
    /// ones the components open, and its dead-letter thresholds the default configuration's.
    #[tokio::test]
    async fn the_database_and_keys_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg =
            Config::from_toml(&format!("data_dir = \"{}\"", dir.path().display())).expect("config");
        let d = Deployment::open(cfg, dss_core::clock::system()).expect("open");
        d.declare_queues().await.expect("queues");
        let mode = |p: &str| {
            std::fs::metadata(dir.path().join(p))
                .expect(p)
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("dss.db"), 0o600);
        assert_eq!(mode("dss.db-wal"), 0o600);
        assert_eq!(mode("keys"), 0o700);
        assert_eq!(mode("keys/url-signing.key"), 0o600);
    }

    #[test]
    fn the_infrastructure_description_names_every_queue() {
        let text = include_str!("../../../infra/resources.json");
        let d: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(d["bucket_events_topic"], BUCKET_EVENTS_TOPIC);
        assert_eq!(d["dead_letter_suffix"], "-dlq");
        assert_eq!(d["gcp"]["events_topic"], GCS_EVENTS_TOPIC);
        assert_eq!(d["gcp"]["relay_queue"], RELAY_QUEUE);
        assert_eq!(d["gcp"]["relay_max_receive_count"], RELAY_MAX_RECEIVE);
        let queues = d["queues"].as_array().unwrap();
        let names: Vec<&str> = queues.iter().filter_map(|q| q["name"].as_str()).collect();
        assert_eq!(names, DAEMON_QUEUES);

        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::from_toml("").unwrap();
        config.data_dir = dir.path().to_path_buf();
        config.replicas.values_mut().enumerate().for_each(|(i, r)| {
            r.url = format!("file://{}/b{i}", dir.path().display());
        });
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _guard = rt.enter();
        let d = Deployment::open(config, dss_core::clock::system()).unwrap();
        for (spec, q) in d.queue_specs().iter().zip(queues) {
            assert_eq!(q["bucket_events"], spec.bucket_events, "{}", spec.name);
            assert_eq!(
                q["max_receive_count"], spec.max_receive_count,
                "{}",
                spec.name
            );
        }
    }
}
