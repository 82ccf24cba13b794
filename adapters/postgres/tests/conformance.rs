//! The PostgreSQL adapters against the ports' conformance suites, on a real server; the
//! properties that concern several processes run over two pools (two sessions) at once.

mod common;

use std::time::Duration;

use common::TestDb;
use dss_core::clock::system;

/// Runs `f` with a minute's bound, so that a lost wake-up fails instead of hanging.
async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("finished within a minute")
}

#[tokio::test]
#[ignore = "needs PostgreSQL (DSS_TEST_PG_URL); run by infra/local/test.sh"]
async fn subscriptions_conform() {
    let db = TestDb::create().await;
    let (a, b) = (db.open().await, db.open().await);
    bounded(dss_conformance::subscriptions::run(&a.subscriptions(), "c")).await;
    bounded(dss_conformance::subscriptions::limit_holds_across_stores(
        &a.subscriptions(),
        &b.subscriptions(),
        "c",
    ))
    .await;
    drop((a, b));
    db.drop_db().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (DSS_TEST_PG_URL); run by infra/local/test.sh"]
async fn deliveries_conform() {
    let db = TestDb::create().await;
    let (a, b) = (db.open().await, db.open().await);
    bounded(dss_conformance::deliveries::run(&a.deliveries(), "c")).await;
    bounded(
        dss_conformance::deliveries::claims_are_exclusive_across_stores(
            &a.deliveries(),
            &b.deliveries(),
            "c",
        ),
    )
    .await;
    drop((a, b));
    db.drop_db().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (DSS_TEST_PG_URL); run by infra/local/test.sh"]
async fn collection_index_conforms() {
    let db = TestDb::create().await;
    let a = db.open().await;
    bounded(dss_conformance::collections::run(&a.collections(), "c")).await;
    drop(a);
    db.drop_db().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (DSS_TEST_PG_URL); run by infra/local/test.sh"]
async fn journal_conforms() {
    let db = TestDb::create().await;
    let (a, b) = (db.open().await, db.open().await);
    bounded(dss_conformance::journal::run(&a.journal(system()), "c")).await;
    bounded(dss_conformance::journal::writers_never_make_a_reader_skip(
        &a.journal(system()),
        &b.journal(system()),
        "c",
    ))
    .await;
    drop((a, b));
    db.drop_db().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (DSS_TEST_PG_URL); run by infra/local/test.sh"]
async fn leases_conform() {
    let db = TestDb::create().await;
    let (a, b) = (db.open().await, db.open().await);
    bounded(dss_conformance::leases::run(&a.leases(), &b.leases(), "c")).await;
    drop((a, b));
    db.drop_db().await;
}
