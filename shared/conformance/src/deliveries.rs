//! Conformance suite of the `DeliveryStore` port.

use serde_json::json;

use dss_core::ports::deliveries::{Attempt, Claim, DeliveryState, DeliveryStore, NewDelivery};
use dss_core::ports::subscriptions::SubscriptionKind;

fn new(id: &str, subscription: &str, event_key: &str) -> NewDelivery {
    NewDelivery {
        id: id.into(),
        subscription: subscription.into(),
        replica: "aws".into(),
        kind: SubscriptionKind::Jmespath,
        owner: "o@example.org".into(),
        event_key: event_key.into(),
        event_type: "CREATE".into(),
        bundle_uuid: "b".into(),
        bundle_version: Some("v".into()),
        payload: json!({"subscription_id": subscription, "n": [1, 2]}),
    }
}

fn attempt(delivery: &str, subscription: &str, n: u32, outcome: DeliveryState) -> Attempt {
    Attempt {
        delivery: delivery.into(),
        subscription: subscription.into(),
        attempt: n,
        at_ms: 1000 * i64::from(n),
        status: Some(500),
        latency_ms: 3,
        error: Some("HTTP 500".into()),
        outcome,
    }
}

/// Runs every property against `store`; subscription ids are prefixed with `ns`.
pub async fn run(store: &dyn DeliveryStore, ns: &str) {
    let (s1, s2) = (format!("{ns}-s1"), format!("{ns}-s2"));
    let (d1, d2, d3) = (format!("{ns}-d1"), format!("{ns}-d2"), format!("{ns}-d3"));

    // Adding is idempotent per (subscription, event key): the first id wins.
    let added = store
        .add(
            &[new(&d1, &s1, "CREATE k1"), new(&d2, &s2, "CREATE k1")],
            10,
        )
        .await
        .expect("add");
    assert_eq!(added.len(), 2);
    assert_eq!(added[0].new, new(&d1, &s1, "CREATE k1"), "stored as given");
    assert_eq!(added[0].state, DeliveryState::Pending);
    assert_eq!((added[0].attempts, added[0].created_ms), (0, 10));
    let again = store
        .add(&[new(&d3, &s1, "CREATE k1")], 20)
        .await
        .expect("add again");
    assert_eq!(
        again[0].new.id, d1,
        "a redelivered event maps to the first delivery"
    );
    assert!(store.get(&d3).await.expect("get").is_none());

    // An attempt is claimed before it is sent: one claimer at a time until it settles or its
    // claim expires.
    assert_eq!(
        store.claim(&d1, 0, 25, 1_025).await.expect("claim"),
        Claim::Claimed
    );
    assert_eq!(
        store.claim(&d1, 0, 26, 1_026).await.expect("claim again"),
        Claim::Busy(1_025),
        "a second copy of the due message does not send it"
    );
    assert_eq!(
        store.claim(&d1, 3, 26, 1_026).await.expect("claim"),
        Claim::Gone,
        "another attempt than the pending one"
    );
    assert_eq!(
        store.claim(&d1, 0, 1_025, 2_025).await.expect("claim"),
        Claim::Claimed,
        "an expired claim (its claimer died) can be taken over"
    );

    // Settling is conditional on the attempt count and the pending state, and ends the claim.
    let a1 = attempt(&d1, &s1, 1, DeliveryState::Pending);
    assert!(
        store
            .settle(&d1, 0, Some(&a1), DeliveryState::Pending, 30)
            .await
            .expect("settle")
    );
    assert!(
        !store
            .settle(&d1, 0, Some(&a1), DeliveryState::Pending, 31)
            .await
            .expect("settle twice"),
        "a duplicate worker cannot record the same attempt again"
    );
    let d = store.get(&d1).await.expect("get").expect("present");
    assert_eq!(
        (d.attempts, d.last_status, d.updated_ms),
        (1, Some(500), 30)
    );
    assert_eq!(
        store.claim(&d1, 1, 31, 1_031).await.expect("claim"),
        Claim::Claimed,
        "the next attempt is free to claim after settling"
    );
    let a2 = attempt(&d1, &s1, 2, DeliveryState::Dead);
    assert!(
        store
            .settle(&d1, 1, Some(&a2), DeliveryState::Dead, 40)
            .await
            .expect("settle dead")
    );
    assert!(
        !store
            .settle(&d1, 2, None, DeliveryState::Cancelled, 41)
            .await
            .expect("settle a dead one"),
        "only pending deliveries move"
    );

    // The log lists a subscription's attempts, newest first.
    let log = store.attempts(&s1, 10).await.expect("attempts");
    assert_eq!(log, vec![a2.clone(), a1.clone()]);
    assert!(store.attempts(&s2, 10).await.expect("attempts").is_empty());
    assert_eq!(store.attempts(&s1, 1).await.expect("attempts"), vec![a2]);

    // Listing by state.
    let dead = store
        .list(&s1, Some(DeliveryState::Dead), 10)
        .await
        .expect("list");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].new.id, d1);
    assert!(
        store
            .list(&s1, Some(DeliveryState::Pending), 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(store.list(&s2, None, 10).await.expect("list").len(), 1);

    // Resend starts a new round of a dead delivery only.
    let r = store.resend(&d1, 50).await.expect("resend").expect("dead");
    assert_eq!(r.state, DeliveryState::Pending);
    assert_eq!((r.attempts, r.round_start, r.round_attempts()), (2, 2, 0));
    assert_eq!(r.round_started_ms, 50);
    assert!(store.resend(&d1, 51).await.expect("resend").is_none());
    assert!(store.resend(&d2, 51).await.expect("resend").is_none());
    assert!(
        store
            .settle(&d1, 2, None, DeliveryState::Delivered, 60)
            .await
            .expect("settle")
    );

    // Pruning forgets old attempts and finished deliveries, never pending ones.
    let gone = store.prune(1_000_000).await.expect("prune");
    assert!(gone >= 3, "two attempts and one delivery, got {gone}");
    assert!(store.get(&d1).await.expect("get").is_none());
    assert!(store.get(&d2).await.expect("get").is_some(), "pending kept");
    assert!(store.attempts(&s1, 10).await.expect("attempts").is_empty());
}

/// Two stores over the same backend (two processes) racing for every delivery: each attempt is
/// claimed by exactly one, and settled by exactly one; a redelivered event written through
/// either store maps to the one delivery.
pub async fn claims_are_exclusive_across_stores(
    a: &dyn DeliveryStore,
    b: &dyn DeliveryStore,
    ns: &str,
) {
    let sub = format!("{ns}-race");
    let n = 50;
    let news: Vec<NewDelivery> = (0..n)
        .map(|i| new(&format!("{ns}-r{i}"), &sub, &format!("CREATE k{i}")))
        .collect();
    let dupes: Vec<NewDelivery> = (0..n)
        .map(|i| new(&format!("{ns}-dup{i}"), &sub, &format!("CREATE k{i}")))
        .collect();
    let (x, y) = tokio::join!(a.add(&news, 1), b.add(&dupes, 1));
    let (x, y) = (x.expect("add"), y.expect("add"));
    for (x, y) in x.iter().zip(&y) {
        assert_eq!(x.new.id, y.new.id, "one delivery per (subscription, event)");
    }
    let races = x.iter().map(|d| async move {
        let id = d.new.id.as_str();
        let (ca, cb) = tokio::join!(a.claim(id, 0, 10, 60_000), b.claim(id, 0, 10, 60_000));
        let claimed = [ca.expect("claim"), cb.expect("claim")]
            .iter()
            .filter(|c| **c == Claim::Claimed)
            .count();
        let at = attempt(id, &d.new.subscription, 1, DeliveryState::Delivered);
        let (sa, sb) = tokio::join!(
            a.settle(id, 0, Some(&at), DeliveryState::Delivered, 20),
            b.settle(id, 0, Some(&at), DeliveryState::Delivered, 20)
        );
        let settled = [sa.expect("settle"), sb.expect("settle")]
            .iter()
            .filter(|s| **s)
            .count();
        (claimed, settled)
    });
    for (claimed, settled) in futures::future::join_all(races).await {
        assert_eq!(claimed, 1, "exactly one claimer per attempt");
        assert_eq!(settled, 1, "exactly one settler per attempt");
    }
    let delivered = a
        .list(&sub, Some(DeliveryState::Delivered), 1000)
        .await
        .expect("list");
    assert_eq!(delivered.len(), n);
    assert!(delivered.iter().all(|d| d.attempts == 1));
}
