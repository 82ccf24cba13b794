//! The sync daemon on a real embedded deployment of three local replicas: bucket events →
//! verified copies in reference order; the reconciler repairing lost events.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dss_config::Config;
use dss_core::checksum::checksums_of;
use dss_core::model::ObjectKey;
use dss_core::names::SYNC_QUEUE;
use dss_core::ports::{BlobStore, PutOptions};
use dss_runtime::deployment::Deployment;
use dss_sync::metrics::read;
use dss_sync::{PREFIXES, SyncMetrics};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const V: &str = "2020-01-01T000000.000000Z";

struct Env {
    _dir: tempfile::TempDir,
    d: Deployment,
    metrics: Arc<SyncMetrics>,
    stop: CancellationToken,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A deployment of replicas `aws`, `gcp` and `azure` (retries at most 1 s apart).
fn deployment(reconcile_every_secs: u64) -> (tempfile::TempDir, Deployment) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display();
    let cfg = Config::from_toml(&format!(
        "data_dir = \"{root}\"\n[sync]\nretry_max_secs = 1\nreconcile_every_secs = {reconcile_every_secs}\n\
         [replicas.aws]\nurl = \"file://{root}/b/aws\"\n\
         [replicas.gcp]\nurl = \"file://{root}/b/gcp\"\n\
         [replicas.azure]\nurl = \"file://{root}/b/azure\"\n"
    ))
    .unwrap();
    (
        dir,
        Deployment::open(cfg, dss_core::clock::system()).unwrap(),
    )
}

async fn env() -> Env {
    let (dir, d) = deployment(0);
    d.declare_queues().await.unwrap();
    Env {
        _dir: dir,
        d,
        metrics: Arc::default(),
        stop: CancellationToken::new(),
    }
}

impl Env {
    fn start(&self) {
        let (d, m, stop) = (self.d.clone(), self.metrics.clone(), self.stop.clone());
        tokio::spawn(async move { dss_sync::run_with(&d, m, stop).await });
    }

    fn store(&self, replica: &str) -> Arc<dyn BlobStore> {
        self.d.replicas[replica].store.clone()
    }

    async fn put(&self, replica: &str, key: &str, data: &[u8]) {
        self.store(replica)
            .put_bytes(key, Bytes::copy_from_slice(data), PutOptions::default())
            .await
            .unwrap();
    }

    /// Writes a blob and its file metadata into `replica`; returns (file key, blob key, doc).
    async fn file(
        &self,
        replica: &str,
        uuid: &str,
        data: &[u8],
    ) -> (String, String, serde_json::Value) {
        let c = checksums_of(data);
        let blob = ObjectKey::blob(&c);
        self.put(replica, &blob, data).await;
        let doc = json!({"format": "0.0.4", "creator_uid": 1, "version": V,
            "content-type": "application/json", "size": data.len(), "crc32c": c.crc32c,
            "s3-etag": c.s3_etag, "sha1": c.sha1, "sha256": c.sha256});
        let key = format!("files/{uuid}.{V}");
        self.put(replica, &key, doc.to_string().as_bytes()).await;
        (key, blob, doc)
    }

    fn manifest(files: &[(&str, &serde_json::Value)]) -> Vec<u8> {
        let entries: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(i, (uuid, doc))| {
                let mut e = (*doc).clone();
                let m = e.as_object_mut().unwrap();
                m.remove("format");
                m.remove("creator_uid");
                m.insert("name".into(), json!(format!("f{i}.json")));
                m.insert("uuid".into(), json!(uuid));
                m.insert("indexed".into(), json!(false));
                e
            })
            .collect();
        json!({"format": "0.0.1", "version": V, "files": entries, "creator_uid": 1})
            .to_string()
            .into_bytes()
    }

    /// Waits until `key` is in `replica` (up to 20 s).
    async fn arrives(&self, replica: &str, key: &str) -> dss_core::ports::ObjectMeta {
        for _ in 0..1200 {
            if let Some(m) = self.store(replica).head(key).await.unwrap() {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{key} never reached {replica}");
    }

    /// Waits until the sync queue is empty (up to 20 s).
    async fn settled(&self) {
        let q = self.d.queue(SYNC_QUEUE).await.unwrap();
        for _ in 0..1200 {
            if q.stats().await.unwrap().depth() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the sync queue never emptied");
    }

    /// Drops every message of the sync queue (lost events).
    async fn lose_events(&self) -> usize {
        let q = self.d.queue(SYNC_QUEUE).await.unwrap();
        let mut lost = 0;
        loop {
            let got = q
                .receive(100, Duration::from_secs(60), Duration::ZERO)
                .await
                .unwrap();
            if got.is_empty() {
                return lost;
            }
            lost += got.len();
            let receipts: Vec<String> = got.into_iter().map(|m| m.receipt).collect();
            q.ack_batch(&receipts).await.unwrap();
        }
    }
}

const U1: &str = "11111111-1111-4111-8111-111111111111";
const U2: &str = "22222222-2222-4222-8222-222222222222";
const B1: &str = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_object_reaches_every_replica_verified_and_once() {
    let e = env().await;
    e.start();
    let (f1, b1, d1) = e.file("aws", U1, b"{\"a\": 1}").await;
    let (f2, b2, d2) = e.file("aws", U2, &vec![7u8; 3 << 20]).await;
    let bundle = format!("bundles/{B1}.{V}");
    e.put("aws", &bundle, &Env::manifest(&[(U1, &d1), (U2, &d2)]))
        .await;
    let keys = [&b1, &f1, &b2, &f2, &bundle];
    for replica in ["gcp", "azure"] {
        for key in keys {
            let m = e.arrives(replica, key).await;
            assert_eq!(
                m.origin.as_deref(),
                Some("aws"),
                "{key} in {replica} records its origin"
            );
            let src = e.store("aws").head(key).await.unwrap().unwrap();
            assert_eq!(
                m.checksums, src.checksums,
                "{key}: all four checksums recorded"
            );
            assert_eq!(m.content_type, src.content_type);
            assert_eq!(
                e.store(replica).get_bytes(key).await.unwrap(),
                e.store("aws").get_bytes(key).await.unwrap()
            );
        }
    }
    e.settled().await;
    // 5 objects × 2 destinations, each copied once; the copies' own events are not replicated.
    assert_eq!(read(&e.metrics.copied), 10);
    assert_eq!(read(&e.metrics.echoes), 10);
    assert_eq!(
        read(&e.metrics.copied_bytes),
        2 * (8 + (3 << 20) + e.size_of("aws", &[&f1, &f2, &bundle]).await)
    );
    assert!(e.metrics.lag_quantile(0.99).is_some(), "lags are measured");
}

impl Env {
    async fn size_of(&self, replica: &str, keys: &[&String]) -> u64 {
        let mut n = 0;
        for k in keys {
            n += self.store(replica).head(k).await.unwrap().unwrap().size;
        }
        n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_whose_files_arrive_late_is_copied_after_them() {
    let e = env().await;
    e.start();
    // The manifest reaches aws before its file (written in another replica, say, and not yet
    // replicated): sync must not copy it to gcp before the file is there.
    let c = checksums_of(b"late");
    let doc = json!({"format": "0.0.4", "creator_uid": 1, "version": V,
        "content-type": "application/json", "size": 4, "crc32c": c.crc32c,
        "s3-etag": c.s3_etag, "sha1": c.sha1, "sha256": c.sha256});
    let bundle = format!("bundles/{B1}.{V}");
    e.put("aws", &bundle, &Env::manifest(&[(U1, &doc)])).await;
    for _ in 0..1200 {
        if read(&e.metrics.waiting) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        read(&e.metrics.waiting) >= 2,
        "the bundle waits for its file in both replicas"
    );
    assert!(
        e.store("gcp").head(&bundle).await.unwrap().is_none(),
        "not copied before its file"
    );
    // The file metadata arrives before its blob: it waits too.
    let file = format!("files/{U1}.{V}");
    e.put("aws", &file, doc.to_string().as_bytes()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        e.store("gcp").head(&file).await.unwrap().is_none(),
        "file metadata waits for its blob"
    );
    e.put("aws", &ObjectKey::blob(&c), b"late").await;
    let (blob_at, file_at, bundle_at) = (
        e.arrives("gcp", &ObjectKey::blob(&c)).await.created,
        e.arrives("gcp", &file).await.created,
        e.arrives("gcp", &bundle).await.created,
    );
    assert!(
        blob_at <= file_at && file_at <= bundle_at,
        "reference order kept"
    );
    e.arrives("azure", &bundle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_replicate() {
    let e = env().await;
    e.start();
    let versioned = format!("bundles/{B1}.{V}.dead");
    let whole = format!("bundles/{B1}.dead");
    let collection = format!("collections/{U1}.dead");
    for k in [&versioned, &whole, &collection] {
        e.put(
            "gcp",
            k,
            br#"{"email": "a@b.c", "reason": "x", "details": {}, "admin_deleted": true}"#,
        )
        .await;
    }
    for k in [&versioned, &whole, &collection] {
        for r in ["aws", "azure"] {
            assert_eq!(e.arrives(r, k).await.origin.as_deref(), Some("gcp"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_waits_for_what_it_contains() {
    let e = env().await;
    e.start();
    let coll = format!("collections/{B1}.{V}");
    let doc = json!({"name": "c", "owner": "a@b.c", "contents": [
        {"type": "file", "uuid": U1, "version": V},
        {"type": "bundle", "uuid": U2, "version": V}]});
    e.put("aws", &coll, doc.to_string().as_bytes()).await;
    let (f1, _, d1) = e.file("aws", U1, b"{}").await;
    e.arrives("gcp", &f1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        e.store("gcp").head(&coll).await.unwrap().is_none(),
        "waits for the bundle"
    );
    let bundle = format!("bundles/{U2}.{V}");
    e.put("aws", &bundle, &Env::manifest(&[(U1, &d1)])).await;
    assert!(e.arrives("gcp", &bundle).await.created <= e.arrives("gcp", &coll).await.created);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_repairs_lost_events_and_broken_copies() {
    let e = env().await;
    let (f1, b1, _) = e.file("aws", U1, b"{\"x\": 1}").await;
    let (f2, b2, _) = e.file("gcp", U2, b"{\"y\": 2}").await;
    // A broken blob in azure: the key of b1 with other bytes.
    e.put("azure", &b1, b"not the bytes").await;
    // A conflict: the same file key with other content in azure.
    e.put("azure", &f2, br#"{"other": true}"#).await;
    // Foreign keys are not DSS objects and are left alone.
    e.put("aws", "files/not-a-dss-key", b"x").await;
    assert!(e.lose_events().await >= 7, "the events are gone");

    let reconciler = dss_sync::reconciler(&e.d, e.metrics.clone()).await.unwrap();
    let prefixes: Vec<String> = PREFIXES.iter().map(|p| p.to_string()).collect();
    let reports = reconciler.run(&prefixes).await.unwrap();
    let by = |p: &str| reports.iter().find(|r| r.prefix == p).unwrap().clone();
    let blobs = by("blobs/");
    assert_eq!(
        (
            blobs.scanned,
            blobs.missing,
            blobs.different,
            blobs.enqueued
        ),
        (2, 3, 1, 4)
    );
    let files = by("files/");
    assert_eq!(
        (
            files.scanned,
            files.missing,
            files.different,
            files.conflicts,
            files.enqueued
        ),
        (2, 3, 1, 1, 2),
        "{files:?}"
    );
    e.start();
    for (k, rs) in [
        (&b1, ["gcp", "azure"]),
        (&f1, ["gcp", "azure"]),
        (&b2, ["aws", "azure"]),
    ] {
        for r in rs {
            e.arrives(r, k).await;
        }
    }
    e.settled().await;
    assert!(
        e.store("aws").head(&f2).await.unwrap().is_none(),
        "copies that disagree are not spread"
    );
    assert_eq!(
        e.store("azure").get_bytes(&b1).await.unwrap(),
        Bytes::from_static(b"{\"x\": 1}"),
        "the broken blob was replaced"
    );
    assert_eq!(read(&e.metrics.repaired), 1);
    assert_eq!(
        e.store("azure").get_bytes(&f2).await.unwrap(),
        Bytes::from_static(br#"{"other": true}"#),
        "a conflicting document is left alone"
    );
    assert!(
        e.store("gcp")
            .head("files/not-a-dss-key")
            .await
            .unwrap()
            .is_none()
    );
    // A second pass finds nothing but the conflict.
    let again = reconciler.run(&prefixes).await.unwrap();
    let enqueued: u64 = again.iter().map(|r| r.enqueued).sum();
    let conflicts: u64 = again.iter().map(|r| r.conflicts).sum();
    assert_eq!((enqueued, conflicts), (0, 1), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_that_does_not_match_its_key_is_not_spread() {
    let e = env().await;
    let c = checksums_of(b"real");
    let key = ObjectKey::blob(&c);
    e.put("gcp", &key, b"fake").await;
    e.start();
    let dlq = e.d.queue(&format!("{SYNC_QUEUE}-dlq")).await.unwrap();
    for _ in 0..1200 {
        if dlq.stats().await.unwrap().depth() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dead = dlq
        .receive(10, Duration::from_secs(5), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1, "dead-lettered");
    let reason = dss_embedded::queue::dead_letter_reason(&e.d.db, &dead[0].id)
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(reason.contains("does not match its checksums"), "{reason}");
    for r in ["aws", "azure"] {
        assert!(
            e.store(r).head(&key).await.unwrap().is_none(),
            "nothing written to {r}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inoperable_requests_are_dead_lettered() {
    let e = env().await;
    e.start();
    let q = e.d.queue(SYNC_QUEUE).await.unwrap();
    for body in [
        r#"{"source_replica": "aws", "dest_replica": "nowhere", "key": "bundles/x"}"#.to_string(),
        json!({"source_replica": "aws", "dest_replica": "aws", "key": format!("files/{U1}.{V}")})
            .to_string(),
        r#"{"source_replica": "aws", "dest_replica": "gcp", "key": "cache.1/x"}"#.to_string(),
        "not json".to_string(),
    ] {
        q.send(&body, Duration::ZERO).await.unwrap();
    }
    let dlq = e.d.queue(&format!("{SYNC_QUEUE}-dlq")).await.unwrap();
    for _ in 0..1200 {
        if dlq.stats().await.unwrap().depth() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(dlq.stats().await.unwrap().depth(), 4);
}

#[tokio::test(start_paused = true)]
async fn the_reconciler_runs_on_its_schedule() {
    let (_dir, d) = deployment(3600);
    d.declare_queues().await.unwrap();
    d.replicas["aws"]
        .store
        .put_bytes(
            &format!("bundles/{B1}.dead"),
            Bytes::from_static(b"{}"),
            PutOptions::default(),
        )
        .await
        .unwrap();
    let q = d.queue(SYNC_QUEUE).await.unwrap();
    let events = q
        .receive(10, Duration::from_secs(60), Duration::ZERO)
        .await
        .unwrap();
    q.ack_batch(&events.into_iter().map(|m| m.receipt).collect::<Vec<_>>())
        .await
        .unwrap();
    let metrics = Arc::new(SyncMetrics::default());
    let stop = CancellationToken::new();
    let (dd, m, s) = (d.clone(), metrics.clone(), stop.clone());
    let daemon = tokio::spawn(async move { dss_sync::run_with(&dd, m, s).await });
    tokio::time::sleep(Duration::from_secs(3599)).await;
    assert_eq!(read(&metrics.reconcile_runs), 0, "not before its time");
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if read(&metrics.reconcile_runs) > 0 {
            break;
        }
    }
    assert!(read(&metrics.reconcile_runs) >= 1);
    assert!(
        read(&metrics.reconcile_enqueued) >= 2,
        "the tombstone was queued for gcp and azure"
    );
    stop.cancel();
    daemon.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconciler_pass_reports_its_progress() {
    let e = env().await;
    for i in 0..600 {
        e.put(
            "aws",
            &format!("files/{U1}.2026-01-01T000000.{i:06}Z"),
            b"{}",
        )
        .await;
    }
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let reconciler = dss_sync::reconciler(&e.d, e.metrics.clone())
        .await
        .unwrap()
        .report_only()
        .with_progress(Arc::new(move |r, key| {
            log.lock()
                .unwrap()
                .push((r.prefix.clone(), r.scanned, key.to_string()));
        }));
    let reports = reconciler.run(&["files/".to_string()]).await.unwrap();
    assert_eq!(reports[0].scanned, 600);
    let seen = seen.lock().unwrap().clone();
    let counts: Vec<u64> = seen.iter().map(|(_, n, _)| *n).collect();
    assert_eq!(counts, [256, 512], "{seen:?}");
    assert!(
        seen.iter()
            .all(|(p, _, k)| p == "files/" && k.starts_with("files/"))
    );
}

#[tokio::test]
async fn a_document_written_at_the_destination_after_the_comparison_is_not_overwritten() {
    let e = env().await;
    let (key, _blob, _doc) = e
        .file("aws", "11111111-1111-4111-8111-111111111111", b"one")
        .await;
    let src_meta = e.store("aws").head(&key).await.unwrap().unwrap();
    // Between the sync's comparison (nothing in gcp) and its write, another writer puts a
    // different document under the same key in gcp.
    e.file(
        "gcp",
        "11111111-1111-4111-8111-111111111111",
        b"other bytes",
    )
    .await;
    let theirs = e.store("gcp").head(&key).await.unwrap().unwrap();
    let got = dss_sync::copy::replicate(
        &e.d.replicas["aws"],
        &e.d.replicas["gcp"],
        &ObjectKey::parse(&key).unwrap(),
        &src_meta,
        Arc::default(),
    )
    .await;
    assert!(
        matches!(got, Err(dss_core::ports::BlobError::AlreadyExists(_))),
        "{got:?}"
    );
    let still = e.store("gcp").head(&key).await.unwrap().unwrap();
    assert_eq!(
        still.checksums, theirs.checksums,
        "the conflict is left alone"
    );
}

#[tokio::test]
async fn copies_keep_who_wrote_the_object() {
    let e = env().await;
    let key = format!("bundles/22222222-2222-4222-8222-222222222222.{V}");
    let opts = PutOptions {
        creator: Some("owner@example.org".into()),
        ..PutOptions::default()
    };
    e.store("aws")
        .put_bytes(&key, Bytes::from_static(b"{\"files\": []}"), opts)
        .await
        .unwrap();
    let meta = e.store("aws").head(&key).await.unwrap().unwrap();
    dss_sync::copy::replicate(
        &e.d.replicas["aws"],
        &e.d.replicas["gcp"],
        &ObjectKey::parse(&key).unwrap(),
        &meta,
        Arc::default(),
    )
    .await
    .unwrap();
    let copy = e.store("gcp").head(&key).await.unwrap().unwrap();
    assert_eq!(copy.creator.as_deref(), Some("owner@example.org"));
    assert_eq!(copy.origin.as_deref(), Some("aws"));
}
