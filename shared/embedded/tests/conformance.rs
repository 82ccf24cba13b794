//! The conformance suites run against the embedded adapters.

use std::sync::Arc;

use async_trait::async_trait;

use dss_config::Durability;
use dss_core::clock::system;
use dss_core::ports::queue::{Queue, Topic};
use dss_core::signing::UrlSigner;
use dss_embedded::{Db, EmbeddedQueue, EmbeddedSearch, EmbeddedTopic, LocalBlobStore, QueueConfig};

struct Factory {
    db: Db,
}

#[async_trait]
impl dss_conformance::queue::QueueFactory for Factory {
    async fn queue(&self, name: &str, max_receive: u32) -> (Arc<dyn Queue>, Arc<dyn Queue>) {
        let q = EmbeddedQueue::declare(
            &self.db,
            name,
            QueueConfig {
                max_receive_count: max_receive,
                dead_letter: None,
            },
            system(),
        )
        .await
        .expect("declare");
        let dlq = EmbeddedQueue::declare(
            &self.db,
            q.dead_letter_name(),
            QueueConfig {
                max_receive_count: 0,
                dead_letter: None,
            },
            system(),
        )
        .await
        .expect("declare dlq");
        (Arc::new(q), Arc::new(dlq))
    }

    async fn topic(&self, name: &str, subscribers: &[Arc<dyn Queue>]) -> Arc<dyn Topic> {
        let t = EmbeddedTopic::new(&self.db, name, system());
        for q in subscribers {
            t.subscribe(q.name()).await.expect("subscribe");
        }
        Arc::new(t)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_queue_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(&dir.path().join("q.db"), Durability::Process).expect("open");
    dss_conformance::queue::run(&Factory { db }, "c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_blob_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(&dir.path().join("q.db"), Durability::Process).expect("open");
    let topic = EmbeddedTopic::new(&db, "bucket-events", system());
    let q = EmbeddedQueue::declare(&db, "events", QueueConfig::default(), system())
        .await
        .expect("declare");
    topic.subscribe("events").await.expect("subscribe");
    let signer = UrlSigner::new("http://127.0.0.1:1", b"k".to_vec());
    let store = LocalBlobStore::open(
        &db,
        "aws",
        &dir.path().join("aws"),
        Some("bucket-events"),
        Some(signer),
        system(),
    )
    .expect("open store");
    dss_conformance::blob::run(Arc::new(store), "suite/", Some(Arc::new(q))).await;
}

/// A bucket as checkout destinations are opened: no events, no fsync (small objects are then
/// written on the calling thread).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_bucket_without_fsync_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(&dir.path().join("q.db"), Durability::Process).expect("open");
    let signer = UrlSigner::new("http://127.0.0.1:1", b"k".to_vec());
    let buckets = dss_embedded::LocalBuckets::new(
        &db,
        dir.path().to_path_buf(),
        Some(signer),
        system(),
        false,
    );
    let store = buckets.create("dest").expect("create");
    dss_conformance::blob::run(Arc::new(store.clone()), "suite/", None).await;
    let main = buckets.create("main").expect("create").with_fsync(true);
    dss_conformance::blob::copies_between(&main, &store, "one/").await;
    dss_conformance::blob::copies_between(&store, &main, "two/").await;
    dss_conformance::blob::copies_in_batches_between(&main, &store, "one/").await;
    dss_conformance::blob::copies_in_batches_between(&store, &main, "two/").await;
}

/// Copies between local buckets write a new key's file at its own path (no temp file, no
/// rename); a refused copy leaves no file there; an unrecorded file left at a key's path (a
/// copy cut off by a crash) is replaced through a temp file, and as a source it is missing,
/// not corrupt; an object is overwritten whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_copies_are_written_in_place_and_a_refused_one_leaves_no_file() {
    use dss_core::checksum::checksums_of;
    use dss_core::ports::blob::{BlobError, BlobStore, PutOptions};
    use dss_core::transfer::{CopySource, copy_object};
    use std::sync::atomic::AtomicU64;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(&dir.path().join("q.db"), Durability::Process).expect("open");
    let buckets =
        dss_embedded::LocalBuckets::new(&db, dir.path().to_path_buf(), None, system(), false);
    let main = buckets.create("main").expect("create");
    let dest = buckets.create("dest").expect("create");
    let copy =
        |key: &'static str, sums: dss_core::checksum::Checksums, size: u64, to: &'static str| {
            let (main, dest) = (main.clone(), dest.clone());
            async move {
                let source = CopySource {
                    store: &main,
                    key,
                    checksums: &sums,
                    size,
                    content_type: "application/octet-stream",
                };
                copy_object(source, &dest, to, Arc::new(AtomicU64::new(0))).await
            }
        };
    let (a, b) = (
        bytes::Bytes::from(vec![1u8; 70_000]),
        bytes::Bytes::from(vec![2u8; 5_000]),
    );
    for (k, v) in [("src/a", &a), ("src/b", &b)] {
        main.put_bytes(k, v.clone(), PutOptions::default())
            .await
            .expect("put");
    }
    let temps = |d: &LocalBlobStore| {
        let t = d
            .local_file("x")
            .expect("path")
            .parent()
            .expect("root")
            .join(".tmp");
        std::fs::read_dir(t).expect("temp dir").count()
    };
    let path = |k: &str| dest.local_file(k).expect("path");

    copy("src/a", checksums_of(&a), 70_000, "out/a")
        .await
        .expect("copy");
    assert_eq!(std::fs::read(path("out/a")).expect("file"), a.to_vec());
    assert_eq!(dest.get_bytes("out/a").await.expect("get"), a);
    assert_eq!(temps(&dest), 0, "no temp file left");

    let mut wrong = checksums_of(&a);
    wrong.crc32c = "00000000".into();
    let r = copy("src/a", wrong, 70_000, "out/liar").await;
    assert!(matches!(r, Err(BlobError::ChecksumMismatch(_))), "{r:?}");
    assert!(!path("out/liar").exists(), "a refused copy leaves no file");
    let r = copy("src/none", checksums_of(&b), 5_000, "out/none").await;
    assert!(matches!(r, Err(BlobError::NotFound(_))), "{r:?}");
    assert!(
        !path("out/none").exists(),
        "a copy of nothing leaves no file"
    );

    std::fs::write(path("out/stale"), b"left by a crash").expect("write");
    assert!(
        dest.head("out/stale").await.expect("head").is_none(),
        "not an object"
    );
    copy("src/b", checksums_of(&b), 5_000, "out/stale")
        .await
        .expect("copy");
    assert_eq!(dest.get_bytes("out/stale").await.expect("get"), b);
    assert_eq!(std::fs::read(path("out/stale")).expect("file"), b.to_vec());

    // Such a file in the source is no object either: not there yet, rather than corrupt.
    let ghost = main.local_file("src/ghost").expect("path");
    std::fs::write(&ghost, b"half a copy").expect("write");
    let r = copy("src/ghost", checksums_of(&b), 5_000, "out/ghost").await;
    assert!(matches!(r, Err(BlobError::NotFound(_))), "{r:?}");
    assert!(!path("out/ghost").exists(), "nothing copied");

    copy("src/b", checksums_of(&b), 5_000, "out/a")
        .await
        .expect("overwrite");
    assert_eq!(dest.get_bytes("out/a").await.expect("get"), b);
    assert_eq!(temps(&dest), 0, "no temp file left");
}

#[tokio::test]
async fn local_blob_store_refuses_symlink_escapes() {
    use dss_core::ports::blob::{BlobError, BlobStore, PutOptions};
    let dir = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("outside");
    let db = Db::open(&dir.path().join("q.db"), Durability::Process).expect("open");
    let store = LocalBlobStore::open(&db, "aws", &dir.path().join("aws"), None, None, system())
        .expect("open");
    std::os::unix::fs::symlink(outside.path(), store.root().join("evil")).expect("symlink");
    let r = store
        .put_bytes(
            "evil/x",
            bytes::Bytes::from_static(b"x"),
            PutOptions::default(),
        )
        .await;
    assert!(matches!(r, Err(BlobError::InvalidKey { .. })), "{r:?}");
    assert_eq!(
        std::fs::read_dir(outside.path()).expect("read").count(),
        0,
        "nothing written outside"
    );
    assert_eq!(
        std::fs::read_dir(store.root().join(".tmp"))
            .expect("read")
            .count(),
        0,
        "temp file cleaned up"
    );
}

#[tokio::test]
async fn queued_messages_survive_reopening_the_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("q.db");
    {
        let db = Db::open(&path, Durability::Process).expect("open");
        let q = EmbeddedQueue::declare(&db, "durable", QueueConfig::default(), system())
            .await
            .expect("declare");
        q.send("kept", std::time::Duration::ZERO)
            .await
            .expect("send");
    }
    let db = Db::open(&path, Durability::Process).expect("reopen");
    let q = EmbeddedQueue::declare(&db, "durable", QueueConfig::default(), system())
        .await
        .expect("declare");
    let got = q
        .receive(
            1,
            std::time::Duration::from_secs(5),
            std::time::Duration::ZERO,
        )
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "kept");
}

#[tokio::test]
async fn embedded_search_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(&dir.path().join("s.db"), Durability::Process).expect("open");
    let index = EmbeddedSearch::new(&db, system());
    dss_conformance::search::run(&index, "aws").await;
    // A second process (another handle on the same file) sees the same documents.
    let other = EmbeddedSearch::new(
        &Db::open(&dir.path().join("s.db"), Durability::Process).expect("open"),
        system(),
    );
    let page = dss_core::ports::SearchIndex::search(
        &other,
        "aws",
        &dss_core::ports::SearchRequest {
            body: serde_json::json!({}),
            size: 10,
            after: None,
            with_source: false,
        },
    )
    .await
    .expect("search");
    assert_eq!(page.total, 45);
    // Replicas are independent.
    dss_conformance::search::run(&index, "gcp").await;
}

#[tokio::test]
async fn embedded_search_on_segments_conforms() {
    // Three documents per segment: the suite runs across many segments, merged as it goes, and a
    // second process (another handle, not the writer) follows them.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(&dir.path().join("s.db"), Durability::Process).expect("open");
    let segs = dir.path().join("search");
    let index = EmbeddedSearch::new(&db, system())
        .with_segments(segs.clone())
        .with_flush_docs(3);
    dss_conformance::search::run(&index, "aws").await;
    let other = EmbeddedSearch::new(
        &Db::open(&dir.path().join("s.db"), Durability::Process).expect("open"),
        system(),
    )
    .with_segments(segs.clone())
    .with_flush_docs(3);
    dss_conformance::search::run(&other, "gcp").await;
    let all = dss_core::ports::SearchRequest {
        body: serde_json::json!({}),
        size: 10,
        after: None,
        with_source: false,
    };
    for idx in [&index, &other] {
        for replica in ["aws", "gcp"] {
            let page = dss_core::ports::SearchIndex::search(idx, replica, &all)
                .await
                .expect("search");
            assert_eq!(page.total, 45, "{replica}");
        }
    }
    let written = std::fs::read_dir(segs.join("aws"))
        .expect("segments")
        .count();
    assert!(written >= 1, "{written} segments");
}

#[tokio::test]
async fn embedded_search_restarts_from_its_segments() {
    use dss_core::ports::{SearchIndex, SearchRequest};
    use serde_json::json;
    let dir = tempfile::tempdir().expect("tempdir");
    let segs = dir.path().join("search");
    let db = Db::open(&dir.path().join("s.db"), Durability::Process).expect("open");
    let all = SearchRequest {
        body: json!({"query": {"range": {"n": {"gte": 0}}}}),
        size: 100,
        after: None,
        with_source: false,
    };
    let first = EmbeddedSearch::new(&db, system())
        .with_segments(segs.clone())
        .with_flush_docs(4);
    for i in 0..22 {
        first
            .put(
                "aws",
                &format!("d{i}"),
                &json!({"uuid": format!("{i:02}"), "n": i}),
            )
            .await
            .expect("put");
    }
    assert_eq!(first.search("aws", &all).await.expect("search").total, 22);
    first.persist("aws").await.expect("persist");
    let recorded = |db: &Db| {
        let db = db.clone();
        async move {
            db.read(|c| {
                Ok(c.query_row(
                    "SELECT covered FROM search_segments WHERE replica = 'aws'",
                    [],
                    |r| r.get::<_, i64>(0),
                )?)
            })
            .await
            .expect("covered")
        }
    };
    assert_eq!(recorded(&db).await, 22, "everything is in segments");
    // A replaced and a removed document, after the segments: a second process (not the
    // writer, which the first still is) maps the segments and indexes only these changes.
    first
        .put("aws", "d20", &json!({"uuid": "20", "n": 120}))
        .await
        .expect("put");
    first.delete("aws", "d3").await.expect("delete");
    let second = EmbeddedSearch::new(&db, system())
        .with_segments(segs.clone())
        .with_flush_docs(4);
    let page = second.search("aws", &all).await.expect("search");
    assert_eq!(page.total, 21);
    assert_eq!(page.hits[0].id, "d21");
    assert!(page.hits.iter().all(|h| h.id != "d3"));
    let high = SearchRequest {
        body: json!({"query": {"range": {"n": {"gte": 100}}}}),
        ..all.clone()
    };
    assert_eq!(second.search("aws", &high).await.expect("search").total, 1);
    second
        .persist("aws")
        .await
        .expect("persist: a reader writes nothing");
    assert_eq!(recorded(&db).await, 22);
    // A segment left half-written by a crash is not used, and the next writer removes it.
    std::fs::create_dir_all(segs.join("aws/0000000030-0000000040-x.tmp")).expect("mkdir");
    drop(first);
    let third = EmbeddedSearch::new(&db, system())
        .with_segments(segs.clone())
        .with_flush_docs(4);
    assert_eq!(third.search("aws", &all).await.expect("search").total, 21);
    third.persist("aws").await.expect("persist");
    assert_eq!(recorded(&db).await, 24);
    assert!(!segs.join("aws/0000000030-0000000040-x.tmp").exists());
    // The second process follows the writer's new segments.
    let page = second.search("aws", &all).await.expect("search");
    assert_eq!(page.total, 21);
    assert_eq!(second.search("aws", &high).await.expect("search").total, 1);
    // Unreadable segments: the index is built again from the documents.
    for e in std::fs::read_dir(segs.join("aws")).expect("dir").flatten() {
        std::fs::write(e.path().join("docs"), b"garbage").expect("damage");
    }
    let fourth = EmbeddedSearch::new(&db, system()).with_segments(segs);
    assert_eq!(fourth.search("aws", &all).await.expect("search").total, 21);
    assert_eq!(fourth.search("aws", &high).await.expect("search").total, 1);
}

#[tokio::test]
async fn embedded_deliveries_conform() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(&dir.path().join("d.db"), Durability::Process).expect("open");
    dss_conformance::deliveries::run(&dss_embedded::EmbeddedDeliveries::new(&db), "c").await;
}

#[tokio::test]
async fn embedded_collection_index_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(&dir.path().join("c.db"), Durability::Process).expect("open");
    dss_conformance::collections::run(&dss_embedded::EmbeddedCollections::new(&db), "c").await;
}

struct MailDir(std::path::PathBuf);

#[async_trait]
impl dss_conformance::mail::Inbox for MailDir {
    async fn messages(&self) -> Vec<dss_conformance::mail::Received> {
        let Ok(entries) = std::fs::read_dir(&self.0) else {
            return Vec::new();
        };
        let field = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
        entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .map(|v| dss_conformance::mail::Received {
                from: field(&v, "from"),
                to: field(&v, "to"),
                subject: field(&v, "subject"),
                text: field(&v, "text"),
                html: field(&v, "html"),
            })
            .collect()
    }
}

#[tokio::test]
async fn file_mailer_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mail = dir.path().join("mail");
    let mailer = dss_embedded::FileMailer::new(&mail, "dss@localhost", system());
    dss_conformance::mail::run(&mailer, &MailDir(mail), "dss@localhost").await;
}

/// Two handles on one database file: what two processes on one machine share.
fn two_handles(dir: &std::path::Path) -> (Db, Db) {
    let path = dir.join("shared.db");
    (
        Db::open(&path, Durability::Process).expect("open"),
        Db::open(&path, Durability::Process).expect("open again"),
    )
}

#[tokio::test]
async fn embedded_subscriptions_conform() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = two_handles(dir.path());
    let (a, b) = (
        dss_embedded::EmbeddedSubscriptions::new(&a),
        dss_embedded::EmbeddedSubscriptions::new(&b),
    );
    dss_conformance::subscriptions::run(&a, "c").await;
    dss_conformance::subscriptions::limit_holds_across_stores(&a, &b, "c").await;
}

#[tokio::test]
async fn embedded_journal_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = two_handles(dir.path());
    let (a, b) = (
        dss_embedded::EmbeddedJournal::new(&a, system()),
        dss_embedded::EmbeddedJournal::new(&b, system()),
    );
    dss_conformance::journal::run(&a, "c").await;
    dss_conformance::journal::writers_never_make_a_reader_skip(&a, &b, "c").await;
}

#[tokio::test]
async fn embedded_deliveries_are_claimed_once_across_handles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = two_handles(dir.path());
    dss_conformance::deliveries::claims_are_exclusive_across_stores(
        &dss_embedded::EmbeddedDeliveries::new(&a),
        &dss_embedded::EmbeddedDeliveries::new(&b),
        "c",
    )
    .await;
}

#[tokio::test]
async fn embedded_leases_conform() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = two_handles(dir.path());
    dss_conformance::leases::run(
        &dss_embedded::EmbeddedLeases::new(&a, system()),
        &dss_embedded::EmbeddedLeases::new(&b, system()),
        "c",
    )
    .await;
}
