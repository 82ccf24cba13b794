//! Semantics that must hold across processes, with real processes: this test binary starts
//! itself twice as helpers (the `helper` test, which does nothing unless `DSS_PG_HELPER` names a
//! role) on one database, while the test watches: journal writers whose transactions overlap
//! never make a reader paging by time skip an event, two claimers of the same deliveries never
//! both claim one, and an owner's subscription limit holds against two creating processes.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::TestDb;
use dss_config::MetadataConfig;
use dss_core::clock::system;
use dss_core::ports::{
    Claim, DeliveryState, DeliveryStore, EventJournal, EventKind, NewDelivery, NewEvent,
    Subscription, SubscriptionKind, SubscriptionStore,
};
use dss_postgres::PgMetadata;

const EVENTS: usize = 300;
const DELIVERIES: usize = 200;

/// Starts this test binary as helper `role` on the database `url`.
fn spawn_helper(role: &str, url: &str) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "helper", "--include-ignored", "--nocapture"])
        .env("DSS_PG_HELPER", role)
        .env("DSS_PG_HELPER_URL", url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start a helper process")
}

/// What a helper printed after `result:`.
fn result_of(child: Child) -> String {
    let out = child.wait_with_output().expect("helper");
    assert!(out.status.success(), "helper failed: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("result:").map(str::to_string))
        .expect("the helper printed its result")
}

fn delivery(i: usize) -> NewDelivery {
    NewDelivery {
        id: format!("d{i}"),
        subscription: "s".into(),
        replica: "aws".into(),
        kind: SubscriptionKind::Jmespath,
        owner: "o@example.org".into(),
        event_key: format!("CREATE k{i}"),
        event_type: "CREATE".into(),
        bundle_uuid: "b".into(),
        bundle_version: None,
        payload: serde_json::json!({}),
    }
}

/// A helper process's work; a no-op in a normal test run.
#[tokio::test]
#[ignore = "needs PostgreSQL (DSS_TEST_PG_URL); run by infra/local/test.sh"]
async fn helper() {
    let Ok(role) = std::env::var("DSS_PG_HELPER") else {
        return;
    };
    let url = std::env::var("DSS_PG_HELPER_URL").expect("DSS_PG_HELPER_URL");
    let m = PgMetadata::connect(&MetadataConfig {
        url: Some(url),
        ..MetadataConfig::default()
    })
    .await
    .expect("connect");
    match role.split_once(':') {
        Some(("journal", tag)) => {
            let journal = m.journal(system());
            let calls = (0..EVENTS).map(|i| {
                let journal = &journal;
                async move {
                    let e = NewEvent {
                        event_id: format!("{tag}{i}"),
                        kind: EventKind::Create,
                        body: "{}".into(),
                    };
                    journal.record("aws", vec![e]).await.expect("record")
                }
            });
            let recorded: usize = futures::stream::StreamExt::collect::<Vec<_>>(
                futures::stream::StreamExt::buffer_unordered(futures::stream::iter(calls), 8),
            )
            .await
            .into_iter()
            .sum();
            println!("result:{recorded}");
        }
        Some(("claims", _)) => {
            let d = m.deliveries();
            let mut claimed = 0;
            for i in 0..DELIVERIES {
                let id = format!("d{i}");
                if d.claim(&id, 0, 1, i64::MAX).await.expect("claim") == Claim::Claimed {
                    claimed += 1;
                    assert!(
                        d.settle(&id, 0, None, DeliveryState::Delivered, 2)
                            .await
                            .expect("settle")
                    );
                }
            }
            println!("result:{claimed}");
        }
        Some(("subscribe", tag)) => {
            let store = m.subscriptions();
            let mut created = 0;
            for i in 0..10 {
                let s = Subscription {
                    uuid: format!("{tag}{i}"),
                    replica: "aws".into(),
                    owner: "racer@example.org".into(),
                    kind: SubscriptionKind::Jmespath,
                    document: serde_json::json!({}),
                };
                if store.create(&s, 4).await.expect("create") {
                    created += 1;
                }
            }
            println!("result:{created}");
        }
        _ => panic!("unknown helper role {role}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (DSS_TEST_PG_URL); run by infra/local/test.sh"]
async fn two_writer_processes_never_make_a_reader_skip_an_event() {
    let db = TestDb::create().await;
    let m = db.open().await;
    let journal = m.journal(system());
    let (a, b) = (
        spawn_helper("journal:a", &db.url),
        spawn_helper("journal:b", &db.url),
    );
    let mut seen: Vec<u64> = Vec::new();
    let mut from: Option<String> = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while seen.len() < 2 * EVENTS {
        assert!(
            std::time::Instant::now() < deadline,
            "saw {} events",
            seen.len()
        );
        for e in journal
            .list("aws", from.as_deref(), None, 50)
            .await
            .expect("list")
        {
            if from.as_deref() == Some(e.timestamp.as_str()) {
                continue;
            }
            seen.push(e.seq);
            from = Some(e.timestamp.clone());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let expected: Vec<u64> = (1..=(2 * EVENTS) as u64).collect();
    assert_eq!(seen, expected, "every event once, in order, none skipped");
    assert_eq!(result_of(a), EVENTS.to_string());
    assert_eq!(result_of(b), EVENTS.to_string());
    drop((journal, m));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (DSS_TEST_PG_URL); run by infra/local/test.sh"]
async fn two_claimer_processes_never_both_claim_a_delivery() {
    let db = TestDb::create().await;
    let m = db.open().await;
    let news: Vec<NewDelivery> = (0..DELIVERIES).map(delivery).collect();
    m.deliveries().add(&news, 0).await.expect("add");
    let (a, b) = (
        spawn_helper("claims:a", &db.url),
        spawn_helper("claims:b", &db.url),
    );
    let (ca, cb): (usize, usize) = (
        result_of(a).parse().expect("count"),
        result_of(b).parse().expect("count"),
    );
    eprintln!("claims: {ca} by one process, {cb} by the other");
    assert_eq!(ca + cb, DELIVERIES, "each delivery claimed exactly once");
    drop(m);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (DSS_TEST_PG_URL); run by infra/local/test.sh"]
async fn the_subscription_limit_holds_against_two_processes() {
    let db = TestDb::create().await;
    let (a, b) = (
        spawn_helper("subscribe:a", &db.url),
        spawn_helper("subscribe:b", &db.url),
    );
    let (ca, cb): (usize, usize) = (
        result_of(a).parse().expect("count"),
        result_of(b).parse().expect("count"),
    );
    assert_eq!(ca + cb, 5, "limit 4 lets one over it, once: {ca} + {cb}");
    db.drop_db().await;
}
