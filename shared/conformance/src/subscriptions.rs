//! Conformance suite of the `SubscriptionStore` port.

use serde_json::json;

use dss_core::ports::subscriptions::{
    FailureRecord, FilterFailure, Subscription, SubscriptionKind, SubscriptionStore,
};

fn sub(replica: &str, uuid: &str, owner: &str, kind: SubscriptionKind) -> Subscription {
    Subscription {
        uuid: uuid.into(),
        replica: replica.into(),
        owner: owner.into(),
        kind,
        document: json!({"uuid": uuid, "callback_url": "https://example.org/hook", "z": 1, "a": 2}),
    }
}

/// Runs every property against `store`; replica names are prefixed with `ns`.
pub async fn run(store: &dyn SubscriptionStore, ns: &str) {
    let (aws, gcp) = (format!("{ns}-aws"), format!("{ns}-gcp"));
    let j = SubscriptionKind::Jmespath;
    for u in ["a", "b", "c"] {
        assert!(
            store
                .create(&sub(&aws, u, "x@example.org", j), 2)
                .await
                .expect("create")
        );
    }
    assert!(
        !store
            .create(&sub(&aws, "d", "x@example.org", j), 2)
            .await
            .expect("create"),
        "over the limit"
    );
    assert!(
        store
            .create(&sub(&aws, "e", "y@example.org", j), 2)
            .await
            .expect("create")
    );
    assert!(
        store
            .create(
                &sub(&aws, "f", "x@example.org", SubscriptionKind::Elasticsearch),
                2
            )
            .await
            .expect("create")
    );
    let mine: Vec<String> = store
        .list_owned(&aws, j, "x@example.org")
        .await
        .expect("list")
        .into_iter()
        .map(|s| s.uuid)
        .collect();
    assert_eq!(mine, ["c", "b", "a"]);
    assert!(
        store
            .list_owned(&gcp, j, "x@example.org")
            .await
            .expect("list")
            .is_empty()
    );
    let e = store.get(&aws, j, "e").await.expect("get").expect("stored");
    assert_eq!(e, sub(&aws, "e", "y@example.org", j), "stored as given");
    assert_eq!(
        serde_json::to_string(&e.document).expect("json"),
        serde_json::to_string(&sub(&aws, "e", "", j).document).expect("json"),
        "the document keeps its key order"
    );
    assert!(
        store
            .get(&aws, SubscriptionKind::Elasticsearch, "e")
            .await
            .expect("get")
            .is_none()
    );
    let all: Vec<String> = store
        .list_replica(&aws)
        .await
        .expect("list")
        .into_iter()
        .map(|s| s.uuid)
        .collect();
    assert_eq!(
        all,
        ["f", "a", "b", "c", "e"],
        "elasticsearch first, then by id"
    );
    let before = store.revision(&aws).await.expect("revision");
    assert_eq!(store.revision(&gcp).await.expect("revision"), 0);

    // Filter failures are counted per subscription, without moving the revision.
    let failure = |uuid: &str, reason: &str| FilterFailure {
        replica: aws.clone(),
        kind: j,
        uuid: uuid.into(),
        reason: reason.into(),
    };
    assert!(
        store
            .failures(&aws, j, "e")
            .await
            .expect("failures")
            .is_none()
    );
    store
        .record_failures(&[failure("e", "budget"), failure("a", "x")], 10)
        .await
        .expect("record");
    store
        .record_failures(&[failure("e", "panicked")], 20)
        .await
        .expect("record");
    assert_eq!(
        store.failures(&aws, j, "e").await.expect("failures"),
        Some(FailureRecord {
            count: 2,
            last_error: "panicked".into(),
            last_ms: 20
        })
    );
    assert_eq!(store.revision(&aws).await.expect("revision"), before);

    assert!(store.delete(&aws, j, "e").await.expect("delete"));
    assert!(!store.delete(&aws, j, "e").await.expect("delete"));
    assert_eq!(store.revision(&aws).await.expect("revision"), before + 1);
    assert!(
        store
            .failures(&aws, j, "e")
            .await
            .expect("failures")
            .is_none(),
        "forgotten with the subscription"
    );
}

/// The per-owner limit holds when two stores over the same backend (two processes) create
/// at once: of 2 × `per_store` concurrent creations for one owner, exactly `limit + 1` are
/// stored.
pub async fn limit_holds_across_stores(
    a: &dyn SubscriptionStore,
    b: &dyn SubscriptionStore,
    ns: &str,
) {
    let replica = format!("{ns}-race");
    let (limit, per_store) = (4usize, 10);
    let owner = "racer@example.org";
    let attempts = (0..2 * per_store).map(|i| {
        let store = if i % 2 == 0 { a } else { b };
        let s = sub(
            &replica,
            &format!("u{i:02}"),
            owner,
            SubscriptionKind::Jmespath,
        );
        async move { store.create(&s, limit).await.expect("create") }
    });
    let created = futures::future::join_all(attempts)
        .await
        .into_iter()
        .filter(|c| *c)
        .count();
    assert_eq!(created, limit + 1, "the limit is atomic");
    let listed = b
        .list_owned(&replica, SubscriptionKind::Jmespath, owner)
        .await
        .expect("list");
    assert_eq!(listed.len(), limit + 1);
    assert_eq!(
        a.revision(&replica).await.expect("revision"),
        u64::try_from(limit + 1).expect("small"),
        "every creation moved the revision once, seen by either store"
    );
}
