//! Conformance suite of the `EventJournal` port.

use dss_core::ports::journal::{EventJournal, EventKind, NewEvent};

fn ev(id: &str, kind: EventKind) -> NewEvent {
    NewEvent {
        event_id: id.into(),
        kind,
        body: format!("{{\"id\":\"{id}\"}}"),
    }
}

/// Runs every property against `journal`; replica names are prefixed with `ns`.
pub async fn run(journal: &dyn EventJournal, ns: &str) {
    let (aws, gcp) = (format!("{ns}-aws"), format!("{ns}-gcp"));
    // Concurrent recorders; each event is recorded once.
    let recorders = (0..200).map(|i| {
        let aws = aws.clone();
        async move {
            journal
                .record(&aws, vec![ev(&format!("b{i}"), EventKind::Create)])
                .await
                .expect("record")
        }
    });
    assert!(
        futures::future::join_all(recorders)
            .await
            .into_iter()
            .all(|n| n == 1)
    );
    assert_eq!(
        journal
            .record(&aws, vec![ev("b7", EventKind::Create)])
            .await
            .expect("again"),
        0,
        "recording again is a no-op"
    );
    assert_eq!(
        journal
            .record(
                &aws,
                vec![
                    ev("b7", EventKind::Tombstone),
                    ev("b7", EventKind::Tombstone)
                ]
            )
            .await
            .expect("other kind"),
        1,
        "an event is its replica, id and kind"
    );
    assert_eq!(
        journal
            .record(&gcp, vec![ev("b7", EventKind::Create)])
            .await
            .expect("other replica"),
        1
    );
    assert_eq!(journal.record(&gcp, vec![]).await.expect("nothing"), 0);

    let all = journal.list(&aws, None, None, 1000).await.expect("list");
    assert_eq!(all.len(), 201);
    assert_eq!(all[0].seq, 1);
    assert!(
        all.windows(2)
            .all(|w| w[0].seq + 1 == w[1].seq && w[0].timestamp < w[1].timestamp),
        "consecutive positions, strictly increasing timestamps"
    );
    // from inclusive, to exclusive.
    let mid = journal
        .list(
            &aws,
            Some(&all[10].timestamp),
            Some(&all[20].timestamp),
            1000,
        )
        .await
        .expect("list");
    assert_eq!(mid.first().map(|e| e.seq), Some(all[10].seq));
    assert_eq!(mid.len(), 10);
    assert_eq!(
        journal
            .list(&aws, Some(&all[10].timestamp), None, 3)
            .await
            .expect("limit")
            .len(),
        3
    );
    let bytes = journal
        .read(&aws, all[0].seq, all[1].seq)
        .await
        .expect("read");
    let expected: u64 = all[..2].iter().map(|e| e.size).sum();
    assert_eq!(bytes.len() as u64, expected);
    let first = format!("{{\"id\":\"{}\"}}", all[0].event_id);
    assert!(bytes.starts_with(first.as_bytes()), "in journal order");
    assert_eq!(
        journal
            .find(&aws, "b7", EventKind::Tombstone)
            .await
            .expect("find")
            .as_deref(),
        Some("{\"id\":\"b7\"}")
    );
    assert_eq!(
        journal
            .find(&aws, "zz", EventKind::Create)
            .await
            .expect("find"),
        None
    );
}

/// Two journals over the same backend (two processes) recording at once: every event once,
/// positions without gaps, and a reader paging by time while they write sees every event
/// exactly once, in order.
pub async fn writers_never_make_a_reader_skip(
    a: &dyn EventJournal,
    b: &dyn EventJournal,
    ns: &str,
) {
    let replica = format!("{ns}-two-writers");
    let per_writer = 150;
    async fn writer(journal: &dyn EventJournal, replica: &str, tag: &str, n: usize) {
        for i in 0..n {
            let events = vec![
                ev(&format!("{tag}{i}"), EventKind::Create),
                ev(&format!("{tag}{i}"), EventKind::Tombstone),
            ];
            assert_eq!(journal.record(replica, events).await.expect("record"), 2);
        }
    }
    let reader = async {
        let mut seen: Vec<u64> = Vec::new();
        let mut from: Option<String> = None;
        while seen.len() < 4 * per_writer {
            let page = a
                .list(&replica, from.as_deref(), None, 7)
                .await
                .expect("list");
            for e in &page {
                if from.as_deref() == Some(e.timestamp.as_str()) {
                    continue;
                }
                seen.push(e.seq);
                from = Some(e.timestamp.clone());
            }
            tokio::task::yield_now().await;
        }
        seen
    };
    let ((), (), seen) = tokio::join!(
        writer(a, &replica, "a", per_writer),
        writer(b, &replica, "b", per_writer),
        reader
    );
    let expected: Vec<u64> = (1..=u64::try_from(4 * per_writer).expect("small")).collect();
    assert_eq!(
        seen, expected,
        "every position once, none skipped, in order"
    );
    let all = b.list(&replica, None, None, 10_000).await.expect("list");
    assert_eq!(all.len(), 4 * per_writer);
    assert!(
        all.windows(2)
            .all(|w| w[0].seq + 1 == w[1].seq && w[0].timestamp < w[1].timestamp)
    );
}
