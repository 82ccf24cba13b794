//! What the PostgreSQL adapters' tests share: a fresh database per test on the server named in
//! `DSS_TEST_PG_URL` (started by `infra/local/test.sh`), so tests run in parallel on one server.

use dss_config::MetadataConfig;
use dss_postgres::PgMetadata;

/// A database of its own on the test server.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    admin: String,
    name: String,
}

/// `DSS_TEST_PG_URL`, the server's URL with a user allowed to create databases.
fn admin_url() -> String {
    std::env::var("DSS_TEST_PG_URL")
        .expect("DSS_TEST_PG_URL names a PostgreSQL server (infra/local/test.sh starts one)")
}

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to DSS_TEST_PG_URL");
    tokio::spawn(conn);
    client
}

impl TestDb {
    /// Creates a new, empty database.
    pub async fn create() -> Self {
        let admin_url = admin_url();
        let name = format!("dss_test_{:016x}", rand::random::<u64>());
        admin(&admin_url)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let mut url = url::Url::parse(&admin_url).expect("DSS_TEST_PG_URL is a URL");
        url.set_path(&name);
        Self {
            url: url.to_string(),
            admin: admin_url,
            name,
        }
    }

    /// The metadata configuration of this database.
    pub fn config(&self) -> MetadataConfig {
        MetadataConfig {
            url: Some(self.url.clone()),
            pool_size: 8,
            ..MetadataConfig::default()
        }
    }

    /// A connected, migrated pool: what one process opens.
    #[allow(dead_code, reason = "not every test file opens a pool")]
    pub async fn open(&self) -> PgMetadata {
        PgMetadata::connect(&self.config()).await.expect("connect")
    }

    /// Removes the database (its pools must be gone).
    pub async fn drop_db(self) {
        admin(&self.admin)
            .await
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .expect("drop database");
    }
}
