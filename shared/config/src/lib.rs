//! Configuration: TOML files layered in order plus `DSS_*` environment overrides
//! (`DSS_API__LISTEN=…` sets `api.listen`), validated at start with messages that name the bad
//! key. One module per section; each section validates itself, and [`Config`] checks what
//! relates sections to each other.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod api;
mod auth;
mod checkout;
mod cloud;
mod error;
mod index;
mod keys;
mod limits;
mod mail;
mod metadata;
mod notify;
mod replicas;
mod search;
mod sources;
mod storage;
mod sync;
mod telemetry;

pub use api::ApiConfig;
pub use auth::{AuthConfig, IssuerConfig};
pub use checkout::{CacheRule, CheckoutConfig};
pub use cloud::{AwsConfig, GcpConfig, QueueBackendKind, QueuesConfig};
pub use index::IndexConfig;
pub use keys::KeysConfig;
pub use limits::LimitsConfig;
pub use mail::MailConfig;
pub use metadata::MetadataConfig;
pub use notify::NotifyConfig;
pub use replicas::{DownloadMode, ReplicaConfig, ReplicaLocation, replica_location};
pub use search::SearchConfig;
pub use sources::{leaves, source_of, sources};
pub use storage::{Durability, EmbeddedConfig, StagingConfig};
pub use sync::SyncConfig;
pub use telemetry::{LogConfig, MetricsConfig, TelemetryConfig};

use error::invalid;

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

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// Where subscriptions, the webhook outbox, collection owners and the events journal live.
    #[serde(default)]
    pub metadata: MetadataConfig,
    /// Where the key material lives.
    #[serde(default)]
    pub keys: KeysConfig,
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
    /// Trace export.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// What one request or subscription may ask of the service.
    #[serde(default)]
    pub limits: LimitsConfig,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./dss-data")
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
                .with_list_parse_key("search.urls")
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

    /// Each section checks itself; then what relates sections to each other.
    fn validate(&self) -> Result<(), ConfigError> {
        self.api.validate()?;
        self.metrics.validate()?;
        self.telemetry.validate()?;
        self.log.validate()?;
        self.limits.validate()?;
        self.auth.validate()?;
        self.metadata.validate()?;
        self.index.validate()?;
        self.search.validate()?;
        self.notify.validate()?;
        self.checkout.validate()?;
        self.sync.validate()?;
        self.mail.validate()?;
        self.queues.validate()?;
        self.aws.validate()?;
        self.gcp.validate()?;
        for (name, r) in &self.replicas {
            match (r.validate(name)?, self.queues.backend) {
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
        }
        if self.queues.backend == QueueBackendKind::Pubsub && self.gcp.project.is_none() {
            return Err(invalid(
                "gcp.project",
                "queues.backend = \"pubsub\" needs a project",
            ));
        }
        if self.metadata.is_shared() {
            self.shared_deployment()?;
        }
        if self.checkout.blob_ttl_secs <= self.api.download_url_ttl_secs {
            return Err(invalid(
                "checkout.blob_ttl_secs",
                "must be longer than api.download_url_ttl_secs (copies must outlive their URLs)",
            ));
        }
        Ok(())
    }

    /// What a deployment whose hosts share a metadata database needs besides: state every host
    /// can reach, not one host's data directory.
    fn shared_deployment(&self) -> Result<(), ConfigError> {
        if !self.search.is_cluster() {
            return Err(invalid(
                "search.url",
                "metadata.url makes a deployment of many hosts, whose API hosts must all search every bundle: \
                 set search.url to a search cluster (the embedded search engine lives on one host)",
            ));
        }
        if self.keys.dir.is_none() {
            return Err(invalid(
                "keys.dir",
                "metadata.url makes a deployment of many hosts, which must sign and check with the same keys: \
                 set keys.dir to a directory every host shares (e.g. a mounted secret)",
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
            || self.has_gcs_replica()
    }

    /// Whether a replica is a `gs://` bucket (whose events the event relay brings in).
    pub fn has_gcs_replica(&self) -> bool {
        self.replicas
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
    "data_dir",
    "api",
    "replicas",
    "staging",
    "auth",
    "embedded",
    "metadata",
    "keys",
    "index",
    "search",
    "notify",
    "checkout",
    "mail",
    "sync",
    "queues",
    "aws",
    "gcp",
    "log",
    "metrics",
    "telemetry",
    "limits",
];

/// The `DSS_*` variables that address configuration keys. Others (`DSS_CONFIG`, test settings)
/// are left alone; a misspelt key inside a known section is still an error.
pub(crate) fn config_env(
    vars: impl Iterator<Item = (String, String)>,
) -> config::Map<String, String> {
    vars.filter(|(k, _)| {
        k.strip_prefix("DSS_")
            .map(|rest| rest.split("__").next().unwrap_or("").to_ascii_lowercase())
            .is_some_and(|top| TOP_LEVEL_KEYS.contains(&top.as_str()))
    })
    .collect()
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
    fn every_top_level_key_can_be_set_from_the_environment() {
        let c = Config::from_toml("data_dir = \"/tmp/x\"").unwrap();
        let keys: Vec<String> = match serde_json::to_value(&c).unwrap() {
            serde_json::Value::Object(m) => m.keys().cloned().collect(),
            other => panic!("{other}"),
        };
        let mut known: Vec<&str> = TOP_LEVEL_KEYS.to_vec();
        known.sort_unstable();
        let mut keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, known);
    }

    #[test]
    fn only_configuration_variables_are_read_from_the_environment() {
        let vars = [
            ("DSS_CONFIG", "x"),
            ("DSS_TEST_HCA", "y"),
            ("DSS_API__LISTEN", "z"),
            ("DSS_DATA_DIR", "d"),
            ("DSS_LIMITS__QUERY_MAX_DEPTH", "5"),
            ("HOME", "h"),
        ];
        let kept = config_env(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut keys: Vec<&String> = kept.keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            vec![
                "DSS_API__LISTEN",
                "DSS_DATA_DIR",
                "DSS_LIMITS__QUERY_MAX_DEPTH"
            ]
        );
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
            ("[metadata]\nurl = \"mysql://db/dss\"", "metadata.url"),
            ("[metadata]\nca_file = \"/ca.pem\"", "metadata.ca_file"),
            ("[metadata]\nurl = \"postgres://db/dss\"", "search.url"),
            (
                "[metadata]\nurl = \"postgres://db/dss\"\n[search]\nurl = \"http://es:9200\"",
                "keys.dir",
            ),
            (
                "[metadata]\nurl = \"postgres://db/dss\"\npool_size = 0",
                "metadata.pool_size",
            ),
        ];
        for (toml, key) in errors {
            let e = Config::from_toml(toml).unwrap_err().to_string();
            assert!(e.contains(key), "{toml}: {e}");
        }
    }

    #[test]
    fn a_shared_metadata_database_with_a_search_cluster_and_shared_keys_is_valid() {
        let c = Config::from_toml(
            "[metadata]\nurl = \"postgres://dss@db:5432/dss\"\n[search]\nurl = \"http://es:9200\"\n[keys]\ndir = \"/run/secrets/dss\"",
        )
        .unwrap();
        assert!(c.metadata.is_shared());
        assert_eq!(
            c.keys.url_signing(&c.data_dir),
            PathBuf::from("/run/secrets/dss/url-signing.key")
        );
    }

    #[test]
    fn the_local_issuer_is_off_by_default_only_when_other_issuers_are_trusted() {
        let plain = Config::from_toml("").unwrap();
        assert!(plain.auth.local_issuer_enabled());
        let idp = "[[auth.issuers]]\nissuer = \"https://idp/\"\naudiences = [\"dss\"]\njwks_url = \"https://idp/jwks\"\n";
        let external = Config::from_toml(idp).unwrap();
        assert!(!external.auth.local_issuer_enabled());
        let both = Config::from_toml(&format!("[auth]\nlocal_issuer = true\n{idp}")).unwrap();
        assert!(both.auth.local_issuer_enabled());
    }
}
