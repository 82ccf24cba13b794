//! Conformance suite of the `Leases` port. It waits for real leases to lapse (a second or so):
//! the PostgreSQL adapter times them by the database's clock.

use std::time::Duration;

use dss_core::ports::leases::Leases;

/// Runs every property over `a` and `b`, two stores on the same backend (two processes);
/// lease names are prefixed with `ns`.
pub async fn run(a: &dyn Leases, b: &dyn Leases, ns: &str) {
    let name = format!("{ns}-sweep");
    let ttl = Duration::from_millis(800);
    assert!(a.acquire(&name, "A", ttl).await.expect("acquire"));
    assert!(
        !b.acquire(&name, "B", ttl).await.expect("acquire"),
        "held by another"
    );
    assert!(
        a.acquire(&name, "A", ttl).await.expect("renew"),
        "the holder renews"
    );
    b.release(&name, "B").await.expect("release");
    assert!(
        !b.acquire(&name, "B", ttl).await.expect("acquire"),
        "only the holder releases"
    );
    a.release(&name, "A").await.expect("release");
    assert!(
        b.acquire(&name, "B", ttl).await.expect("acquire"),
        "a released lease is free at once"
    );

    // B dies without releasing: its lease lapses, and A takes it.
    tokio::time::sleep(ttl + Duration::from_millis(400)).await;
    assert!(
        a.acquire(&name, "A", ttl).await.expect("take over"),
        "a lapsed lease is taken over"
    );
    assert!(!b.acquire(&name, "B", ttl).await.expect("acquire"));

    // Many contenders at once: exactly one holds it.
    let contested = format!("{ns}-contested");
    let holders: Vec<String> = (0..16).map(|i| format!("H{i}")).collect();
    let tries = holders.iter().enumerate().map(|(i, h)| {
        let store = if i % 2 == 0 { a } else { b };
        let contested = &contested;
        async move {
            store
                .acquire(contested, h, Duration::from_secs(30))
                .await
                .expect("acquire")
        }
    });
    let won = futures::future::join_all(tries)
        .await
        .into_iter()
        .filter(|w| *w)
        .count();
    assert_eq!(won, 1, "one holder at a time");
}
