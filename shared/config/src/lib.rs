//! Configuration: one TOML file plus `DSS_*` environment overrides (`DSS_API__LISTEN=…` sets
//! `api.listen`), validated at start with messages that name the bad key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod limits;

pub use limits::LimitsConfig;

/// A configuration error naming the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be read or parsed.
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A value is present but invalid.
    #[error("configuration key `{key}`: {message}")]
    Invalid {
        /// Dotted key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// `name` as a lower-case header name, if it is one.
fn header_name(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    ok.then(|| name.to_ascii_lowercase())
}

/// How durable a commit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Survives a crash of the process (kill -9): SQLite `synchronous=NORMAL`.
    #[default]
    Process,
    /// Survives power loss too: `synchronous=FULL` and directory fsyncs after renames.
    Power,
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory for embedded state (database, local buckets, keys).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// HTTP API.
    #[serde(default)]
    pub api: ApiConfig,
    /// Named replicas and their backend URLs.
    #[serde(default)]
    pub replicas: BTreeMap<String, ReplicaConfig>,
    /// Staging area for `file://` sources of PUT /files.
    #[serde(default)]
    pub staging: StagingConfig,
    /// Authentication.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Embedded queue/database.
    #[serde(default)]
    pub embedded: EmbeddedConfig,
    /// The index daemon.
    #[serde(default)]
    pub index: IndexConfig,
    /// Where search documents live.
    #[serde(default)]
    pub search: SearchConfig,
    /// Webhook subscriptions and deliveries.
    #[serde(default)]
    pub notify: NotifyConfig,
    /// Bundle checkouts.
    #[serde(default)]
    pub checkout: CheckoutConfig,
    /// Outgoing e-mail.
    #[serde(default)]
    pub mail: MailConfig,
    /// Replication between replicas.
    #[serde(default)]
    pub sync: SyncConfig,
    /// Where the daemons' queues and the bucket events topic live.
    #[serde(default)]
    pub queues: QueuesConfig,
    /// How to reach AWS (or a server speaking its protocols) for `s3://` replicas and SQS/SNS.
    #[serde(default)]
    pub aws: AwsConfig,
    /// How to reach Google Cloud (or its emulators) for `gs://` replicas and Pub/Sub.
    #[serde(default)]
    pub gcp: GcpConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Metrics of processes without the API.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// What one request or subscription may ask of the service.
    #[serde(default)]
    pub limits: LimitsConfig,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./dss-data")
}

/// HTTP API settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to listen on.
    pub listen: String,
    /// Public base URL used in links and download URLs (default `http://{listen}`).
    pub public_url: Option<String>,
    /// Maximum size of a JSON request body in bytes.
    pub max_json_body: usize,
    /// Maximum size of a direct upload in bytes.
    pub max_upload: u64,
    /// Lifetime of signed download URLs in seconds.
    pub download_url_ttl_secs: u64,
    /// How long PUT/PATCH bundle wait for member files that are not there yet (replication lag),
    /// in milliseconds.
    pub bundle_file_wait_ms: u64,
    /// Reported by `GET /version`.
    pub deployment_version: Option<String>,
    /// Refuse every write with 503 `read_only`.
    pub read_only: bool,
    /// Maximum size of the JSON body of a request open to anyone (search, checkout) or that
    /// needs no more (subscriptions, file registrations, tombstones), in bytes; bundle and
    /// collection writes take up to `max_json_body`.
    pub max_small_json_body: usize,
    /// Values (objects, arrays, strings, numbers…) a small JSON body may hold: bounds the
    /// memory of parsing it.
    pub max_small_json_values: usize,
    /// Connections open at once; more are closed at once.
    pub max_connections: usize,
    /// Requests being handled at once; more are answered 503 with `Retry-After` at once.
    pub max_in_flight: usize,
    /// Time to read a request's head, and to wait for the next request on an idle
    /// connection, in seconds.
    pub header_read_timeout_secs: u64,
    /// Time to read a JSON body, and the longest pause within any request body (uploads), in
    /// seconds.
    pub body_read_timeout_secs: u64,
    /// How long shutdown waits for requests in flight, in seconds.
    pub shutdown_grace_secs: u64,
    /// Searches per second one client may make (a token bucket per client address).
    pub search_rate: f64,
    /// Searches one client may make in a burst.
    pub search_burst: u32,
    /// Checkouts per second one client may start.
    pub checkout_rate: f64,
    /// Checkouts one client may start in a burst.
    pub checkout_burst: u32,
    /// The header that carries the client's address when the API is behind a proxy or load
    /// balancer (its last address is taken: the one the proxy saw); unset means the peer.
    pub client_ip_header: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:5000".into(),
            public_url: None,
            max_json_body: 64 * 1024 * 1024,
            max_upload: 5 * 1024 * 1024 * 1024 * 1024,
            download_url_ttl_secs: 3600,
            bundle_file_wait_ms: 2000,
            deployment_version: None,
            read_only: false,
            max_small_json_body: 1024 * 1024,
            max_small_json_values: 100_000,
            max_connections: 4096,
            max_in_flight: 512,
            header_read_timeout_secs: 30,
            body_read_timeout_secs: 60,
            shutdown_grace_secs: 60,
            search_rate: 20.0,
            search_burst: 100,
            checkout_rate: 2.0,
            checkout_burst: 20,
            client_ip_header: None,
        }
    }
}

/// One replica.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaConfig {
    /// Backend URL of the main bucket: `file:///path` (embedded); cloud schemes come with their adapters.
    pub url: String,
    /// Name of the replica's checkout bucket, a bucket of the same account as the main bucket
    /// (for `file://` replicas, a sibling directory); default `{replica}-checkout`.
    #[serde(default)]
    pub checkout_bucket: Option<String>,
    /// How clients get a file's bytes: `direct` (a URL of the stored blob, at once) or
    /// `checkout` (from a copy in the checkout bucket, made on first demand, as the original).
    #[serde(default)]
    pub download: DownloadMode,
}

/// How downloads of a replica are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DownloadMode {
    /// URLs point at the replica's own objects: answered at once.
    #[default]
    Direct,
    /// URLs point at copies in the checkout bucket; a missing copy is made first (301 with
    /// `Retry-After` until it is there). For main buckets that must not be exposed.
    Checkout,
}

/// Files whose checkout copies are kept (not expired), as the original's
/// `CHECKOUT_CACHE_CRITERIA`: content type starting with `type`, size at most `max_size`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheRule {
    /// Content-type prefix.
    #[serde(rename = "type")]
    pub content_type: String,
    /// Largest size in bytes.
    pub max_size: u64,
}

impl ReplicaConfig {
    /// The checkout bucket's name for the replica called `replica`.
    pub fn checkout_bucket_name(&self, replica: &str) -> String {
        self.checkout_bucket
            .clone()
            .unwrap_or_else(|| format!("{replica}-checkout"))
    }
}

/// Staging area settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StagingConfig {
    /// Directory under which `file://` source URLs must lie (default `{data_dir}/staging`).
    pub dir: Option<PathBuf>,
}

/// A trusted token issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Exact `iss` claim.
    pub issuer: String,
    /// Accepted audiences (any match).
    pub audiences: Vec<String>,
    /// JWKS file.
    pub jwks_file: Option<PathBuf>,
    /// JWKS URL.
    pub jwks_url: Option<String>,
    /// PEM public key file (RSA or EC).
    pub pem_file: Option<PathBuf>,
}

/// Authentication and authorisation settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Generate a local signing key on first start and trust it (the embedded default).
    pub local_issuer: bool,
    /// Other trusted issuers.
    pub issuers: Vec<IssuerConfig>,
    /// Claim holding the caller's e-mail (falls back to `email`).
    pub email_claim: String,
    /// Claim holding the caller's group.
    pub group_claim: String,
    /// Groups allowed to write files.
    pub allowed_groups: Vec<String>,
    /// E-mails allowed to delete bundles (and bypass group checks).
    pub admin_emails: Vec<String>,
    /// Operations open to anyone in the original that need a token here (their
    /// `operationId`s, `drs` for the GA4GH DRS routes, or `all`): for controlled-access data.
    pub require: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            local_issuer: true,
            issuers: Vec::new(),
            email_claim: "email".into(),
            group_claim: "group".into(),
            allowed_groups: vec!["dbio".into()],
            admin_emails: Vec::new(),
            require: Vec::new(),
        }
    }
}

/// Embedded database settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedConfig {
    /// `process` (survives kill -9) or `power` (survives power loss; slower).
    pub durability: Durability,
}

/// Index daemon settings: what one bundle may put into its documents, and parallelism.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexConfig {
    /// JSON files larger than this (bytes) are left out of a bundle's documents.
    pub max_json_file_bytes: u64,
    /// Bytes of JSON read per bundle at most; further files are left out.
    pub max_json_bundle_bytes: u64,
    /// JSON files read per bundle at most.
    pub max_json_files: usize,
    /// Files of one bundle read at once.
    pub read_concurrency: usize,
    /// Events handled at once.
    pub concurrency: usize,
    /// How long a received event stays hidden from other index processes, in seconds
    /// (extended while it is handled); after a crash it is handled again this much later.
    pub visibility_secs: u64,
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            max_json_file_bytes: 16 * 1024 * 1024,
            max_json_bundle_bytes: 256 * 1024 * 1024,
            max_json_files: 10_000,
            read_concurrency: 8,
            concurrency: 8,
            visibility_secs: 60,
        }
    }
}

/// Search backend: the embedded engine, or an Elasticsearch / OpenSearch cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Base URL of an Elasticsearch 7/8 or OpenSearch 1–3 cluster; unset means the embedded engine.
    pub url: Option<String>,
    /// Prefix of the cluster's index and alias names (`{prefix}-{replica}-docs-…`).
    pub index_prefix: String,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            url: None,
            index_prefix: "dss".into(),
        }
    }
}

/// Webhook settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Internal networks callbacks may reach anyway (`127.0.0.1`, `10.0.0.0/8`); none by default.
    pub callback_allow: Vec<String>,
    /// Subscriptions one owner may hold per replica and kind (more than this are refused).
    pub max_subscriptions_per_owner: usize,
    /// Waits before the 2nd, 3rd, … attempt of a delivery, in seconds (the first is immediate);
    /// the last wait repeats until `retry_for_secs` is over.
    pub retry_delays_secs: Vec<u64>,
    /// How long after its first attempt a delivery is given up and dead-lettered.
    pub retry_for_secs: u64,
    /// Random spread of each wait, as a fraction (0.1 = ±10 %).
    pub retry_jitter: f64,
    /// Time to connect to a receiver, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Time for a receiver to answer, in milliseconds.
    pub timeout_ms: u64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Deliveries in flight at once to one endpoint (scheme, host and port).
    pub endpoint_concurrency: usize,
    /// Consecutive failures that open an endpoint's circuit (its deliveries then wait).
    pub breaker_failures: u32,
    /// How long an open circuit waits before one probe delivery, in seconds (doubles while the
    /// endpoint keeps failing, up to ten times this).
    pub breaker_cooldown_secs: u64,
    /// How long the delivery log and finished deliveries are kept, in seconds.
    pub log_retention_secs: u64,
    /// How long a received event or due delivery stays hidden from other notify processes, in
    /// seconds (extended while it is handled; a delivery's at least twice its timeouts); after a
    /// crash it is handled again this much later.
    pub visibility_secs: u64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            callback_allow: Vec::new(),
            max_subscriptions_per_owner: 100,
            retry_delays_secs: vec![60, 600, 3600, 21600],
            retry_for_secs: 7 * 24 * 3600,
            retry_jitter: 0.1,
            connect_timeout_ms: 5_000,
            timeout_ms: 30_000,
            concurrency: 64,
            endpoint_concurrency: 16,
            breaker_failures: 5,
            breaker_cooldown_secs: 30,
            log_retention_secs: 7 * 24 * 3600,
            visibility_secs: 60,
        }
    }
}

impl NotifyConfig {
    /// The parsed allow-list (validated at start).
    pub fn allowed_nets(&self) -> Vec<dss_core::callback::AllowedNet> {
        self.callback_allow
            .iter()
            .filter_map(|s| dss_core::callback::AllowedNet::parse(s).ok())
            .collect()
    }
}

/// Bundle checkout settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckoutConfig {
    /// Checkout jobs run at once.
    pub jobs: usize,
    /// Files of one job copied at once.
    pub concurrency: usize,
    /// How long a job's queue message stays hidden while the daemon works on it, in seconds
    /// (extended while it runs); a daemon that died is taken over after this.
    pub visibility_secs: u64,
    /// Attempts of a job that keeps failing transiently before it is marked FAILED.
    pub max_attempts: u32,
    /// How often a running job writes its progress into its status, in milliseconds.
    pub progress_every_ms: u64,
    /// Checkout copies in the replicas' checkout buckets are deleted this long after they were
    /// made, in seconds (except cached files); a copy is handed out only while it outlives the
    /// download URL.
    pub blob_ttl_secs: u64,
    /// Copies older than this are refreshed when handed out, in seconds.
    pub blob_public_ttl_secs: u64,
    /// Files whose copies are kept, and made as soon as the file is stored.
    pub cache_criteria: Vec<CacheRule>,
    /// How often expired copies are deleted, in seconds.
    pub sweep_every_secs: u64,
    /// Copy speed assumed for `Retry-After` before a copy has reported progress, in bytes/s.
    pub estimate_bytes_per_sec: u64,
    /// Buckets besides the replicas' checkout buckets that authenticated callers may name as
    /// a checkout `destination` (none by default: the service's credentials may write buckets
    /// that callers must not reach through it).
    pub allowed_destinations: Vec<String>,
}

impl CheckoutConfig {
    /// Whether copies of a file of this type and size are kept (and pre-made).
    pub fn cacheable(&self, content_type: &str, size: u64) -> bool {
        self.cache_criteria
            .iter()
            .any(|r| content_type.starts_with(&r.content_type) && size <= r.max_size)
    }
}

impl Default for CheckoutConfig {
    fn default() -> Self {
        Self {
            jobs: 4,
            concurrency: 8,
            visibility_secs: 30,
            max_attempts: 8,
            progress_every_ms: 1000,
            blob_ttl_secs: 14 * 24 * 3600,
            blob_public_ttl_secs: 7 * 24 * 3600,
            cache_criteria: vec![CacheRule {
                content_type: "application/json".into(),
                max_size: 12_314,
            }],
            sweep_every_secs: 3600,
            estimate_bytes_per_sec: 100 * 1024 * 1024,
            allowed_destinations: Vec::new(),
        }
    }
}

/// Replication settings (the sync daemon and its reconciler).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Objects copied at once (copies of small objects wait mostly on the disk, so many at
    /// once pay off even on two cores).
    pub concurrency: usize,
    /// Receives of one message before it is dead-lettered (an object waiting for what it
    /// refers to is retried with growing delays, capped at `retry_max_secs`).
    pub max_attempts: u32,
    /// Longest delay between two tries of an object that is not ready to copy, in seconds.
    pub retry_max_secs: u64,
    /// How long a message stays hidden while a copy runs, in seconds (extended while it
    /// runs); the copies of a sync process that died are taken over after this.
    pub visibility_secs: u64,
    /// How often the reconciler compares every replica, in seconds; 0 turns the scheduled
    /// run off (run it from one sync process only; `dss sync reconcile` runs it on demand).
    pub reconcile_every_secs: u64,
    /// Keys listed per page by the reconciler.
    pub reconcile_page: usize,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            concurrency: 32,
            max_attempts: 40,
            retry_max_secs: 300,
            visibility_secs: 60,
            reconcile_every_secs: 6 * 3600,
            reconcile_page: 1000,
        }
    }
}

/// Which service carries the queues and the bucket events topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueBackendKind {
    /// The embedded database (every component on one machine).
    #[default]
    Embedded,
    /// SQS queues and an SNS topic, fed by S3 bucket notifications.
    Aws,
    /// Pub/Sub subscriptions and topics.
    Pubsub,
}

/// Queue settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueuesConfig {
    /// `embedded` (default), `aws` or `pubsub`.
    pub backend: QueueBackendKind,
    /// Put before every queue and topic name in the cloud (a stage, e.g. `dss-dev-`), so that
    /// deployments can share an account.
    pub prefix: String,
}

/// AWS connection settings (the SDK's default chains where a value is absent).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsConfig {
    /// Endpoint URL of a compatible server (moto, MinIO, …); default: AWS itself.
    pub endpoint: Option<String>,
    /// Region; default: the SDK's region chain (`AWS_REGION`, profile, instance).
    pub region: Option<String>,
    /// Path-style S3 addressing (`host/bucket/key`), which local servers need.
    pub path_style: bool,
    /// Access key id; with `secret_access_key`. Default: the SDK's credentials chain.
    pub access_key_id: Option<String>,
    /// Secret access key; with `access_key_id`.
    pub secret_access_key: Option<String>,
}

/// Google Cloud connection settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcpConfig {
    /// Cloud Storage endpoint of a compatible server (fake-gcs-server); default Google's.
    pub storage_endpoint: Option<String>,
    /// Pub/Sub endpoint of a compatible server (the emulator); default Google's.
    pub pubsub_endpoint: Option<String>,
    /// Project of new buckets and of the Pub/Sub topics and subscriptions.
    pub project: Option<String>,
    /// Send no credentials (emulators); otherwise Application Default Credentials.
    pub anonymous: bool,
    /// The Pub/Sub topic the `gs://` main buckets notify, which the event relay reads;
    /// default `{queues.prefix}gcs-events`.
    pub events_topic: Option<String>,
}

/// Where a replica's main bucket is, from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaLocation {
    /// A directory on this machine (`file://`).
    Local(PathBuf),
    /// An S3 bucket (`s3://bucket`).
    S3(String),
    /// A GCS bucket (`gs://bucket`).
    Gcs(String),
}

/// Outgoing e-mail: SMTP when `smtp_host` is set, else files in `dir`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// From address.
    pub sender: String,
    /// SMTP server host; unset: mail is written to `dir` instead.
    pub smtp_host: Option<String>,
    /// SMTP port (default 25 for `none`, 587 for `starttls`, 465 for `tls`).
    pub smtp_port: Option<u16>,
    /// `none`, `starttls` or `tls`.
    pub smtp_security: String,
    /// SMTP user name (with `smtp_password`).
    pub smtp_username: Option<String>,
    /// SMTP password.
    pub smtp_password: Option<String>,
    /// Time for one SMTP conversation, in seconds.
    pub smtp_timeout_secs: u64,
    /// Directory for mail when no SMTP server is configured (default `{data_dir}/mail`).
    pub dir: Option<PathBuf>,
    /// Attempts to send one e-mail before it is dead-lettered.
    pub max_attempts: u32,
    /// Wait before the second attempt of an e-mail, in seconds (doubling, up to 10 minutes).
    pub retry_secs: u64,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            sender: "dss@localhost".into(),
            smtp_host: None,
            smtp_port: None,
            smtp_security: "starttls".into(),
            smtp_username: None,
            smtp_password: None,
            smtp_timeout_secs: 30,
            dir: None,
            max_attempts: 10,
            retry_secs: 5,
        }
    }
}

impl MailConfig {
    /// The directory of the file mailer.
    pub fn dir_in(&self, data_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data_dir.join("mail"))
    }
}

/// Where a process without the API serves `/metrics` (the API serves it on its own address).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the `/metrics` listener of `dss index`, `dss sync`, … (e.g.
    /// `127.0.0.1:9100`); unset: none.
    pub listen: Option<String>,
}

/// Log output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// Filter directive, e.g. `info` or `dss_api=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

impl Config {
    /// Loads `files` in order (a later file's keys override an earlier one's: a shared base, a
    /// per-stage file, a local file), then the `DSS_*` environment, then `overrides` (dotted
    /// key, value), applies defaults and validates.
    pub fn load(files: &[PathBuf], overrides: &[(&str, String)]) -> Result<Self, ConfigError> {
        let mut b = config::Config::builder();
        for f in files {
            b = b.add_source(config::File::from(f.as_path()).format(config::FileFormat::Toml));
        }
        b = b.add_source(
            config::Environment::with_prefix("DSS")
                .prefix_separator("_")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("auth.allowed_groups")
                .with_list_parse_key("auth.admin_emails")
                .with_list_parse_key("checkout.allowed_destinations")
                .with_list_parse_key("auth.require")
                .with_list_parse_key("notify.callback_allow")
                .with_list_parse_key("notify.retry_delays_secs")
                .try_parsing(true)
                .source(Some(config_env(std::env::vars()))),
        );
        for (k, v) in overrides {
            b = b.set_override(*k, v.clone())?;
        }
        let cfg: Config = b.build()?.try_deserialize()?;
        cfg.finish()
    }

    /// Parses a TOML string (no environment), applies defaults and validates.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let cfg: Config = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()?
            .try_deserialize()?;
        cfg.finish()
    }

    fn finish(mut self) -> Result<Self, ConfigError> {
        // A relative data directory is relative to the working directory at start; made
        // absolute once, so every path and `file://` URL derived from it is well formed.
        self.data_dir = std::path::absolute(&self.data_dir)
            .map_err(|e| invalid("data_dir", format!("'{}': {e}", self.data_dir.display())))?;
        if self.replicas.is_empty() {
            for name in ["aws", "gcp"] {
                let dir = self.data_dir.join("buckets").join(name);
                self.replicas.insert(
                    name.into(),
                    ReplicaConfig {
                        url: format!("file://{}", dir.display()),
                        checkout_bucket: None,
                        download: DownloadMode::Direct,
                    },
                );
            }
        }
        self.validate()?;
        Ok(self)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.api.listen.parse::<SocketAddr>().map_err(|e| {
            invalid(
                "api.listen",
                format!("'{}' is not a socket address: {e}", self.api.listen),
            )
        })?;
        if let Some(u) = &self.api.public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(invalid(
                "api.public_url",
                format!("'{u}' must start with http:// or https://"),
            ));
        }
        if let Some(l) = &self.metrics.listen {
            l.parse::<SocketAddr>().map_err(|e| {
                invalid(
                    "metrics.listen",
                    format!("'{l}' is not a socket address: {e}"),
                )
            })?;
        }
        self.limits.validate()?;
        for (key, v) in [
            ("api.max_json_body", self.api.max_json_body as u64),
            (
                "api.max_small_json_body",
                self.api.max_small_json_body as u64,
            ),
            (
                "api.max_small_json_values",
                self.api.max_small_json_values as u64,
            ),
            ("api.max_connections", self.api.max_connections as u64),
            ("api.max_in_flight", self.api.max_in_flight as u64),
            (
                "api.header_read_timeout_secs",
                self.api.header_read_timeout_secs,
            ),
            (
                "api.body_read_timeout_secs",
                self.api.body_read_timeout_secs,
            ),
            ("api.search_burst", u64::from(self.api.search_burst)),
            ("api.checkout_burst", u64::from(self.api.checkout_burst)),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        for (key, rate) in [
            ("api.search_rate", self.api.search_rate),
            ("api.checkout_rate", self.api.checkout_rate),
        ] {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(invalid(
                    key,
                    "must be a number of requests per second above 0",
                ));
            }
        }
        if let Some(h) = &self.api.client_ip_header
            && header_name(h).is_none()
        {
            return Err(invalid(
                "api.client_ip_header",
                format!("'{h}' is not a header name"),
            ));
        }
        for (name, r) in &self.replicas {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(invalid(
                    format!("replicas.{name}"),
                    "replica names use letters, digits, '-' and '_'",
                ));
            }
            let location =
                replica_location(&r.url).map_err(|m| invalid(format!("replicas.{name}.url"), m))?;
            match (&location, self.queues.backend) {
                (ReplicaLocation::S3(_), QueueBackendKind::Embedded | QueueBackendKind::Pubsub) => {
                    return Err(invalid(
                        format!("replicas.{name}.url"),
                        "an s3:// replica sends its bucket events through SNS: set queues.backend = \"aws\"",
                    ));
                }
                (ReplicaLocation::Local(_), QueueBackendKind::Aws | QueueBackendKind::Pubsub) => {
                    return Err(invalid(
                        format!("replicas.{name}.url"),
                        "local buckets publish their events to the embedded topic: with a cloud queues.backend every replica must be a cloud bucket",
                    ));
                }
                (ReplicaLocation::Gcs(_), _) if self.gcp.project.is_none() => {
                    return Err(invalid(
                        "gcp.project",
                        format!(
                            "replica {name} is a gs:// bucket: its events need a Pub/Sub project"
                        ),
                    ));
                }
                _ => {}
            }
            if let Some(b) = &r.checkout_bucket
                && !dss_core::ports::buckets::valid_bucket_name(b)
            {
                return Err(invalid(
                    format!("replicas.{name}.checkout_bucket"),
                    format!("'{b}' is not a bucket name (letters, digits, '.', '-', '_')"),
                ));
            }
        }
        if self.aws.access_key_id.is_some() != self.aws.secret_access_key.is_some() {
            return Err(invalid(
                "aws.secret_access_key",
                "give both aws.access_key_id and aws.secret_access_key, or neither",
            ));
        }
        if let Some(e) = &self.aws.endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return Err(invalid(
                "aws.endpoint",
                format!("'{e}' must start with http:// or https://"),
            ));
        }
        if self.queues.backend == QueueBackendKind::Pubsub && self.gcp.project.is_none() {
            return Err(invalid(
                "gcp.project",
                "queues.backend = \"pubsub\" needs a project",
            ));
        }
        for (key, e) in [
            ("gcp.storage_endpoint", &self.gcp.storage_endpoint),
            ("gcp.pubsub_endpoint", &self.gcp.pubsub_endpoint),
        ] {
            if let Some(e) = e
                && !(e.starts_with("http://") || e.starts_with("https://"))
            {
                return Err(invalid(
                    key,
                    format!("'{e}' must start with http:// or https://"),
                ));
            }
        }
        if !self
            .queues
            .prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            || self.queues.prefix.len() > 40
        {
            return Err(invalid(
                "queues.prefix",
                "use at most 40 letters, digits, '-' and '_' (SQS and SNS name rules)",
            ));
        }
        let c = &self.checkout;
        if c.blob_public_ttl_secs == 0
            || c.blob_ttl_secs.saturating_sub(c.blob_public_ttl_secs) < c.blob_public_ttl_secs
        {
            return Err(invalid(
                "checkout.blob_public_ttl_secs",
                "must be above 0 and at most half of checkout.blob_ttl_secs (a refreshed copy must outlive the copies handed out before)",
            ));
        }
        if c.blob_ttl_secs <= self.api.download_url_ttl_secs {
            return Err(invalid(
                "checkout.blob_ttl_secs",
                "must be longer than api.download_url_ttl_secs (copies must outlive their URLs)",
            ));
        }
        let y = &self.sync;
        for (key, zero) in [
            ("sync.concurrency", y.concurrency == 0),
            ("sync.max_attempts", y.max_attempts == 0),
            ("sync.retry_max_secs", y.retry_max_secs == 0),
            ("sync.visibility_secs", y.visibility_secs == 0),
            ("sync.reconcile_page", y.reconcile_page == 0),
        ] {
            if zero {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        if !dss_core::ports::mail::valid_address(&self.mail.sender) {
            return Err(invalid(
                "mail.sender",
                format!("'{}' is not an e-mail address", self.mail.sender),
            ));
        }
        if !["none", "starttls", "tls"].contains(&self.mail.smtp_security.as_str()) {
            return Err(invalid(
                "mail.smtp_security",
                format!(
                    "'{}' is not one of none, starttls, tls",
                    self.mail.smtp_security
                ),
            ));
        }
        if self.mail.smtp_username.is_some() != self.mail.smtp_password.is_some() {
            return Err(invalid(
                "mail.smtp_password",
                "give both mail.smtp_username and mail.smtp_password, or neither",
            ));
        }
        if let Some(u) = &self.search.url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(invalid(
                "search.url",
                format!("'{u}' must start with http:// or https://"),
            ));
        }
        if self.search.index_prefix.is_empty()
            || !self
                .search
                .index_prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(invalid(
                "search.index_prefix",
                "use lower-case letters, digits, '-' and '_'",
            ));
        }
        for (i, net) in self.notify.callback_allow.iter().enumerate() {
            dss_core::callback::AllowedNet::parse(net)
                .map_err(|m| invalid(format!("notify.callback_allow[{i}]"), m))?;
        }
        for (key, v) in [
            ("index.max_json_file_bytes", self.index.max_json_file_bytes),
            (
                "index.max_json_bundle_bytes",
                self.index.max_json_bundle_bytes,
            ),
            ("index.max_json_files", self.index.max_json_files as u64),
            ("index.read_concurrency", self.index.read_concurrency as u64),
            ("index.concurrency", self.index.concurrency as u64),
            ("index.visibility_secs", self.index.visibility_secs),
            ("notify.visibility_secs", self.notify.visibility_secs),
            ("notify.retry_for_secs", self.notify.retry_for_secs),
            ("notify.connect_timeout_ms", self.notify.connect_timeout_ms),
            ("notify.timeout_ms", self.notify.timeout_ms),
            ("notify.concurrency", self.notify.concurrency as u64),
            (
                "notify.endpoint_concurrency",
                self.notify.endpoint_concurrency as u64,
            ),
            (
                "notify.breaker_failures",
                u64::from(self.notify.breaker_failures),
            ),
            ("notify.log_retention_secs", self.notify.log_retention_secs),
            ("checkout.jobs", self.checkout.jobs as u64),
            ("checkout.concurrency", self.checkout.concurrency as u64),
            ("checkout.visibility_secs", self.checkout.visibility_secs),
            (
                "checkout.max_attempts",
                u64::from(self.checkout.max_attempts),
            ),
            (
                "checkout.progress_every_ms",
                self.checkout.progress_every_ms,
            ),
            ("mail.smtp_timeout_secs", self.mail.smtp_timeout_secs),
            ("mail.max_attempts", u64::from(self.mail.max_attempts)),
            ("mail.retry_secs", self.mail.retry_secs),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        if self.notify.retry_delays_secs.is_empty() {
            return Err(invalid(
                "notify.retry_delays_secs",
                "give at least one wait, e.g. [60, 600, 3600]",
            ));
        }
        if !(0.0..1.0).contains(&self.notify.retry_jitter) {
            return Err(invalid(
                "notify.retry_jitter",
                "must be at least 0 and below 1",
            ));
        }
        if !["text", "json"].contains(&self.log.format.as_str()) {
            return Err(invalid(
                "log.format",
                format!("'{}' is not one of text, json", self.log.format),
            ));
        }
        for (i, iss) in self.auth.issuers.iter().enumerate() {
            let sources = [
                iss.jwks_file.is_some(),
                iss.jwks_url.is_some(),
                iss.pem_file.is_some(),
            ];
            if sources.iter().filter(|s| **s).count() != 1 {
                return Err(invalid(
                    format!("auth.issuers[{i}]"),
                    "give exactly one of jwks_file, jwks_url, pem_file",
                ));
            }
            if iss.audiences.is_empty() {
                return Err(invalid(
                    format!("auth.issuers[{i}].audiences"),
                    "at least one audience is required",
                ));
            }
        }
        if !self.auth.local_issuer && self.auth.issuers.is_empty() {
            return Err(invalid(
                "auth.issuers",
                "no issuer is trusted: enable auth.local_issuer or add an issuer",
            ));
        }
        Ok(())
    }

    /// The public base URL of the API.
    pub fn public_url(&self) -> String {
        self.api
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.api.listen))
            .trim_end_matches('/')
            .to_string()
    }

    /// Whether the deployment talks to AWS or a server speaking its protocols: an `s3://`
    /// replica, SQS queues or an `aws.endpoint` (then `s3://` staging sources are read too).
    pub fn uses_aws(&self) -> bool {
        self.aws.endpoint.is_some()
            || self.queues.backend == QueueBackendKind::Aws
            || self
                .replicas
                .values()
                .any(|r| matches!(replica_location(&r.url), Ok(ReplicaLocation::S3(_))))
    }

    /// The Pub/Sub topic of the `gs://` buckets' notifications.
    pub fn gcs_events_topic(&self) -> String {
        self.gcp.events_topic.clone().unwrap_or_else(|| {
            format!(
                "{}{}",
                self.queues.prefix,
                dss_core::names::GCS_EVENTS_TOPIC
            )
        })
    }

    /// Whether the deployment talks to Google Cloud: a `gs://` replica, Pub/Sub queues or a
    /// `gcp.project` (then `gs://` staging sources are read too).
    pub fn uses_gcp(&self) -> bool {
        self.gcp.project.is_some()
            || self.queues.backend == QueueBackendKind::Pubsub
            || self
                .replicas
                .values()
                .any(|r| matches!(replica_location(&r.url), Ok(ReplicaLocation::Gcs(_))))
    }

    /// The staging directory for `file://` sources.
    pub fn staging_dir(&self) -> PathBuf {
        self.staging
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("staging"))
    }
}

/// Top-level keys that `DSS_*` environment variables may set.
const TOP_LEVEL_KEYS: &[&str] = &[
    "data_dir", "api", "replicas", "staging", "auth", "embedded", "index", "search", "notify",
    "checkout", "mail", "sync", "queues", "aws", "gcp", "log", "metrics",
];

/// The `DSS_*` variables that address configuration keys. Others (`DSS_CONFIG`, test settings)
/// are left alone; a misspelt key inside a known section is still an error.
fn config_env(vars: impl Iterator<Item = (String, String)>) -> config::Map<String, String> {
    vars.filter(|(k, _)| {
        k.strip_prefix("DSS_")
            .map(|rest| rest.split("__").next().unwrap_or("").to_ascii_lowercase())
            .is_some_and(|top| TOP_LEVEL_KEYS.contains(&top.as_str()))
    })
    .collect()
}

/// Where a replica URL points: `file:///path` (or `file://./relative`) or `s3://bucket`.
pub fn replica_location(url: &str) -> Result<ReplicaLocation, String> {
    if let Some(p) = url.strip_prefix("file://") {
        return match p.starts_with('/') || p.starts_with('.') {
            true => Ok(ReplicaLocation::Local(PathBuf::from(p))),
            false => Err(format!(
                "'{url}' must be file:///absolute/path or file://./relative/path"
            )),
        };
    }
    for (scheme, make) in [
        (
            "s3://",
            ReplicaLocation::S3 as fn(String) -> ReplicaLocation,
        ),
        ("gs://", ReplicaLocation::Gcs),
    ] {
        if let Some(b) = url.strip_prefix(scheme) {
            let b = b.strip_suffix('/').unwrap_or(b);
            return match dss_core::ports::buckets::valid_bucket_name(b)
                && (3..=63).contains(&b.len())
            {
                true => Ok(make(b.to_string())),
                false => Err(format!(
                    "'{url}' must be {scheme}bucket, with a bucket name of 3-63 letters, digits, '.' and '-'"
                )),
            };
        }
    }
    Err(format!(
        "'{url}' has an unsupported scheme; use file://, s3:// or gs://"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_give_two_embedded_replicas() {
        let c = Config::from_toml("data_dir = \"/tmp/x\"").unwrap();
        assert_eq!(c.replicas.keys().collect::<Vec<_>>(), vec!["aws", "gcp"]);
        assert_eq!(c.replicas["aws"].url, "file:///tmp/x/buckets/aws");
        assert_eq!(c.public_url(), "http://127.0.0.1:5000");
    }

    #[test]
    fn later_files_override_earlier_ones() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let base = write(
            "base.toml",
            "[api]\nlisten = \"127.0.0.1:5000\"\nread_only = true\n[auth]\nadmin_emails = [\"a@x\"]",
        );
        let stage = write("stage.toml", "[api]\nlisten = \"127.0.0.1:6000\"");
        let local = write("local.toml", "data_dir = \"/tmp/layered\"");
        let c = Config::load(&[base, stage, local], &[]).unwrap();
        assert_eq!(c.api.listen, "127.0.0.1:6000");
        assert!(c.api.read_only, "kept from the base file");
        assert_eq!(c.auth.admin_emails, ["a@x"]);
        assert_eq!(c.replicas["aws"].url, "file:///tmp/layered/buckets/aws");
    }

    #[test]
    fn a_relative_data_directory_gives_well_formed_replica_urls() {
        let c = Config::from_toml("data_dir = \"dss-data\"").unwrap();
        let here = std::env::current_dir().unwrap();
        assert_eq!(c.data_dir, here.join("dss-data"));
        assert_eq!(
            c.replicas["aws"].url,
            format!("file://{}", here.join("dss-data/buckets/aws").display())
        );
    }

    #[test]
    fn only_configuration_variables_are_read_from_the_environment() {
        let vars = [
            ("DSS_CONFIG", "x"),
            ("DSS_TEST_HCA", "y"),
            ("DSS_API__LISTEN", "z"),
            ("DSS_DATA_DIR", "d"),
            ("HOME", "h"),
        ];
        let kept = config_env(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut keys: Vec<&String> = kept.keys().collect();
        keys.sort();
        assert_eq!(keys, vec!["DSS_API__LISTEN", "DSS_DATA_DIR"]);
    }

    #[test]
    fn errors_name_the_bad_key() {
        let e = Config::from_toml("[api]\nlisten = \"nope\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("api.listen"), "{e}");
        let e = Config::from_toml("[replicas.aws]\nurl = \"s4://b\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("replicas.aws.url"), "{e}");
        let e = Config::from_toml("[api]\nlisten_port = 1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen_port"), "{e}");
        let e = Config::from_toml("[mail]\nsender = \"nobody\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mail.sender"), "{e}");
        let e =
            Config::from_toml("[replicas.aws]\nurl = \"file:///x\"\ncheckout_bucket = \"../up\"")
                .unwrap_err()
                .to_string();
        assert!(e.contains("replicas.aws.checkout_bucket"), "{e}");
        let e = Config::from_toml("[log]\nformat = \"xml\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("log.format"), "{e}");
        let e = Config::from_toml("[api]\nmax_upload = \"big\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_upload"), "{e}");
    }

    #[test]
    fn cloud_replicas_and_queues_go_together() {
        let c = Config::from_toml(
            "[queues]\nbackend = \"aws\"\nprefix = \"dss-dev-\"\n[replicas.aws]\nurl = \"s3://my-bucket\"\n[aws]\nendpoint = \"http://127.0.0.1:1\"\npath_style = true",
        )
        .unwrap();
        assert_eq!(
            replica_location(&c.replicas["aws"].url).unwrap(),
            ReplicaLocation::S3("my-bucket".into())
        );
        assert_eq!(c.queues.backend, QueueBackendKind::Aws);
        assert!(c.uses_aws() && !c.uses_gcp());
        let g = Config::from_toml(
            "[gcp]\nproject = \"p\"\n[replicas.aws]\nurl = \"file:///x\"\n[replicas.gcp]\nurl = \"gs://my-bucket\"",
        )
        .unwrap();
        assert_eq!(
            replica_location(&g.replicas["gcp"].url).unwrap(),
            ReplicaLocation::Gcs("my-bucket".into())
        );
        assert!(g.uses_gcp() && !g.uses_aws());
        assert_eq!(g.gcs_events_topic(), "gcs-events");
        let errors = [
            ("[replicas.aws]\nurl = \"s3://b-1\"", "replicas.aws.url"),
            (
                "[queues]\nbackend = \"aws\"\n[replicas.aws]\nurl = \"file:///x\"",
                "replicas.aws.url",
            ),
            (
                "[queues]\nbackend = \"aws\"\n[replicas.aws]\nurl = \"s3://a\"",
                "replicas.aws.url",
            ),
            ("[queues]\nprefix = \"a b\"", "queues.prefix"),
            ("[queues]\nbackend = \"kafka\"", "backend"),
            ("[aws]\naccess_key_id = \"k\"", "aws.secret_access_key"),
            ("[aws]\nendpoint = \"localhost:9000\"", "aws.endpoint"),
            ("[replicas.gcp]\nurl = \"gs://my-bucket\"", "gcp.project"),
            (
                "[queues]\nbackend = \"pubsub\"\n[replicas.gcp]\nurl = \"gs://my-bucket\"",
                "gcp.project",
            ),
            (
                "[queues]\nbackend = \"pubsub\"\n[gcp]\nproject = \"p\"\n[replicas.aws]\nurl = \"s3://b-1\"",
                "replicas.aws.url",
            ),
            (
                "[gcp]\npubsub_endpoint = \"127.0.0.1:8085\"",
                "gcp.pubsub_endpoint",
            ),
        ];
        for (toml, key) in errors {
            let e = Config::from_toml(toml).unwrap_err().to_string();
            assert!(e.contains(key), "{toml}: {e}");
        }
    }
}
