//! Connecting: the URL (with the `PG*` environment filling in what it leaves out), TLS with
//! rustls, a pool of connections, and the schema migrations.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use dss_config::MetadataConfig;
use dss_core::clock::SharedClock;
use tokio_postgres::config::SslMode;

use crate::error::{PgError, describe};
use crate::{PgCollections, PgDeliveries, PgJournal, PgLeases, PgSubscriptions};

/// A pool of connections to the metadata database, migrated to this binary's schema; the
/// adapters it hands out share it.
#[derive(Clone)]
pub struct PgMetadata {
    pool: Pool,
}

impl std::fmt::Debug for PgMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's configuration carries the password: never printed.
        let s = self.pool.status();
        f.debug_struct("PgMetadata")
            .field("size", &s.size)
            .field("max_size", &s.max_size)
            .finish()
    }
}

/// The variables that stand in for parts of the URL, as libpq reads them.
struct PgEnv {
    host: Option<String>,
    port: Option<String>,
    user: Option<String>,
    password: Option<String>,
    dbname: Option<String>,
    sslmode: Option<String>,
}

impl PgEnv {
    fn from_process() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            host: var("PGHOST"),
            port: var("PGPORT"),
            user: var("PGUSER"),
            password: var("PGPASSWORD"),
            dbname: var("PGDATABASE"),
            sslmode: var("PGSSLMODE"),
        }
    }
}

/// The driver's configuration for `cfg`: its URL, completed from `env`.
fn driver_config(cfg: &MetadataConfig, env: &PgEnv) -> Result<tokio_postgres::Config, PgError> {
    let url = cfg
        .url
        .as_deref()
        .ok_or_else(|| PgError::Config("not set".into()))?;
    let mut pg = tokio_postgres::Config::from_str(url)
        .map_err(|e| PgError::Config(format!("not a PostgreSQL URL: {}", describe(&e))))?;
    if pg.get_hosts().is_empty() {
        pg.host(env.host.as_deref().unwrap_or("localhost"));
    }
    if pg.get_ports().is_empty()
        && let Some(p) = &env.port
    {
        let port = p
            .parse()
            .map_err(|_| PgError::Config(format!("PGPORT '{p}' is not a port")))?;
        pg.port(port);
    }
    if pg.get_user().is_none() {
        pg.user(env.user.as_deref().unwrap_or("postgres"));
    }
    if pg.get_password().is_none()
        && let Some(p) = &env.password
    {
        pg.password(p);
    }
    if pg.get_dbname().is_none()
        && let Some(d) = &env.dbname
    {
        pg.dbname(d);
    }
    if !url.contains("sslmode=")
        && let Some(mode) = &env.sslmode
    {
        pg.ssl_mode(match mode.as_str() {
            "disable" => SslMode::Disable,
            "prefer" | "allow" => SslMode::Prefer,
            "require" | "verify-ca" | "verify-full" => SslMode::Require,
            other => return Err(PgError::Config(format!("PGSSLMODE '{other}' is not known"))),
        });
    }
    let timeout = Duration::from_millis(cfg.connect_timeout_ms);
    pg.connect_timeout(timeout)
        .application_name("dss")
        .keepalives_idle(Duration::from_secs(30))
        .options(format!("-c statement_timeout={}", cfg.statement_timeout_ms));
    Ok(pg)
}

/// The TLS client: the platform's roots plus the certificates of `metadata.ca_file`.
fn tls(cfg: &MetadataConfig) -> Result<tokio_postgres_rustls::MakeRustlsConnect, PgError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let extra: Vec<CertificateDer<'static>> = match &cfg.ca_file {
        Some(path) => CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .map_err(|e| PgError::Config(format!("metadata.ca_file {}: {e}", path.display())))?,
        None => Vec::new(),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
            .map_err(|e| PgError::Config(format!("TLS roots: {e}")))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Config(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

impl PgMetadata {
    /// Connects to `metadata.url` and migrates the schema; fails with an error naming the key
    /// when the database cannot be reached.
    pub async fn connect(cfg: &MetadataConfig) -> Result<Self, PgError> {
        let pg = driver_config(cfg, &PgEnv::from_process())?;
        let manager = Manager::from_config(
            pg,
            tls(cfg)?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let timeout = Some(Duration::from_millis(cfg.connect_timeout_ms));
        let pool = Pool::builder(manager)
            .max_size(usize::try_from(cfg.pool_size).unwrap_or(usize::MAX))
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| PgError::Config(describe(&e)))?;
        let mut client = pool
            .get()
            .await
            .map_err(|e| PgError::Connect(describe(&e)))?;
        crate::migrate::migrate(&mut client).await?;
        Ok(Self { pool })
    }

    /// The pool the adapters share.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The subscription store.
    pub fn subscriptions(&self) -> PgSubscriptions {
        PgSubscriptions::new(self.pool.clone())
    }

    /// The webhook outbox.
    pub fn deliveries(&self) -> PgDeliveries {
        PgDeliveries::new(self.pool.clone())
    }

    /// The collection owner index.
    pub fn collections(&self) -> PgCollections {
        PgCollections::new(self.pool.clone())
    }

    /// The leases of work that runs once per deployment.
    pub fn leases(&self) -> PgLeases {
        PgLeases::new(self.pool.clone())
    }

    /// The events journal, stamping events with `clock`.
    pub fn journal(&self, clock: SharedClock) -> PgJournal {
        PgJournal::new(self.pool.clone(), clock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> PgEnv {
        PgEnv {
            host: Some("db.internal".into()),
            port: Some("6543".into()),
            user: Some("svc".into()),
            password: Some("pw".into()),
            dbname: Some("meta".into()),
            sslmode: Some("require".into()),
        }
    }

    fn cfg(url: &str) -> MetadataConfig {
        MetadataConfig {
            url: Some(url.into()),
            ..MetadataConfig::default()
        }
    }

    #[test]
    fn the_environment_fills_in_what_the_url_leaves_out() {
        let pg = driver_config(&cfg("postgres://"), &env()).expect("config");
        assert_eq!(
            pg.get_hosts(),
            &[tokio_postgres::config::Host::Tcp("db.internal".into())]
        );
        assert_eq!(pg.get_ports(), &[6543]);
        assert_eq!(pg.get_user(), Some("svc"));
        assert_eq!(pg.get_password(), Some(&b"pw"[..]));
        assert_eq!(pg.get_dbname(), Some("meta"));
        assert_eq!(pg.get_ssl_mode(), SslMode::Require);
    }

    #[test]
    fn the_url_wins_over_the_environment() {
        let pg = driver_config(
            &cfg("postgres://dss:secret@127.0.0.1:5432/dss?sslmode=disable"),
            &env(),
        )
        .expect("config");
        assert_eq!(pg.get_ports(), &[5432]);
        assert_eq!(pg.get_user(), Some("dss"));
        assert_eq!(pg.get_password(), Some(&b"secret"[..]));
        assert_eq!(pg.get_dbname(), Some("dss"));
        assert_eq!(pg.get_ssl_mode(), SslMode::Disable);
    }

    #[test]
    fn a_bad_url_names_the_key_without_its_password() {
        let e = driver_config(&cfg("postgres://u:hunter2@h/d?bogus=1"), &env())
            .expect_err("unknown option");
        let text = e.to_string();
        assert!(text.starts_with("metadata.url"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
