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

#[tokio::test]
#[ignore = "needs PostgreSQL (DSS_TEST_PG_URL); run by infra/local/test.sh"]
async fn a_request_the_database_refuses_fails_alone_in_its_group_commit() {
    use dss_core::ports::{EventJournal, EventKind, NewEvent};
    let db = TestDb::create().await;
    let m = db.open().await;
    let journal = m.journal(system());
    let ev = |id: String| {
        vec![NewEvent {
            event_id: id,
            kind: EventKind::Create,
            body: "{}".into(),
        }]
    };
    // PostgreSQL's text holds no NUL: that request is refused, the others in its batch are not.
    let calls = (0..20).map(|i| {
        let id = match i {
            7 => "bad\0id".to_string(),
            _ => format!("good{i}"),
        };
        let (journal, events) = (&journal, ev(id));
        async move { journal.record("aws", events).await }
    });
    let results = futures::future::join_all(calls).await;
    for (i, r) in results.iter().enumerate() {
        match i {
            7 => assert!(r.is_err(), "the bad one fails"),
            _ => assert_eq!(r.as_ref().ok(), Some(&1), "{i}: {r:?}"),
        }
    }
    let all = journal.list("aws", None, None, 100).await.expect("list");
    assert_eq!(all.len(), 19);
    assert!(all.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
    drop((journal, m));
    db.drop_db().await;
}
