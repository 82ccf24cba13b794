//! Schema migrations: applied once however many processes start together, and a schema newer
//! than the binary is refused.

mod common;

use common::TestDb;
use dss_postgres::{PgError, PgMetadata};

#[tokio::test]
#[ignore = "needs PostgreSQL (DSS_TEST_PG_URL); run by infra/local/test.sh"]
async fn processes_starting_together_migrate_once() {
    let db = TestDb::create().await;
    let cfg = db.config();
    let opened = futures::future::join_all((0..6).map(|_| PgMetadata::connect(&cfg))).await;
    assert!(opened.iter().all(Result::is_ok), "{opened:?}");
    let c = opened[0]
        .as_ref()
        .expect("open")
        .pool()
        .get()
        .await
        .expect("conn");
    let rows = c
        .query("SELECT version FROM dss_schema ORDER BY version", &[])
        .await
        .expect("versions");
    let versions: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(versions, [1], "each migration applied once");

    // A newer binary migrated this database: this one refuses it.
    c.execute(
        "INSERT INTO dss_schema (version, name) VALUES (999, 'from the future')",
        &[],
    )
    .await
    .expect("insert");
    drop((c, opened));
    match PgMetadata::connect(&cfg).await {
        Err(PgError::SchemaTooNew {
            found: 999,
            known: 1,
        }) => {}
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    db.drop_db().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (DSS_TEST_PG_URL); run by infra/local/test.sh"]
async fn an_unreachable_database_is_a_clear_error_naming_the_key() {
    let db = TestDb::create().await;
    let mut cfg = db.config();
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    cfg.url = Some(format!("postgres://dss:hunter2@127.0.0.1:{port}/dss"));
    cfg.connect_timeout_ms = 2_000;
    let e = PgMetadata::connect(&cfg)
        .await
        .expect_err("nothing listens");
    let text = e.to_string();
    assert!(text.starts_with("metadata.url: cannot reach"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    db.drop_db().await;
}
