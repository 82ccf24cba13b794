//! The `BlobStore` conformance suite.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use dss_core::checksum::checksums_of;
use dss_core::ports::blob::{BlobError, BlobStore, ByteRange, ByteStream, PutMode, PutOptions};
use dss_core::ports::queue::{BucketEvent, BucketEventName, Queue};

fn stream_of(chunks: Vec<Result<Bytes, std::io::Error>>) -> ByteStream {
    Box::pin(futures::stream::iter(chunks))
}

fn data(n: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>(),
    )
}

/// Incompressible pseudo-random bytes, distinct per seed (for adapters' own tests).
pub fn random_bytes(n: usize, seed: u64) -> Bytes {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
    let mut out = vec![0u8; n];
    for c in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.copy_from_slice(&x.to_le_bytes()[..c.len()]);
    }
    Bytes::from(out)
}

/// `b` as a body in chunks of 1 MiB, as a network peer sends it.
pub fn chunked(b: &Bytes) -> ByteStream {
    stream_of(
        (0..b.len())
            .step_by(1 << 20)
            .map(|i| Ok(b.slice(i..(i + (1 << 20)).min(b.len()))))
            .collect(),
    )
}

/// Runs every check against `store`, using keys under `prefix`. When `events` is given it must be a
/// queue receiving the bucket's events, and each create/delete is checked to emit one.
pub async fn run(store: Arc<dyn BlobStore>, prefix: &str, events: Option<Arc<dyn Queue>>) {
    round_trip_and_head(&*store, prefix).await;
    ranges(&*store, prefix).await;
    missing_objects(&*store, prefix).await;
    ordered_paged_listing(&*store, prefix).await;
    create_only_puts(&*store, prefix).await;
    failed_puts_store_nothing(&*store, prefix).await;
    copy_puts(&*store, prefix).await;
    large_streamed_put(&*store, prefix).await;
    copy_and_delete(&*store, prefix).await;
    sync_origin(&*store, prefix).await;
    creator(&*store, prefix).await;
    invalid_keys(&*store).await;
    download_urls(&*store, prefix).await;
    if let Some(q) = events {
        bucket_events(&*store, prefix, &*q).await;
    }
}

async fn round_trip_and_head(s: &dyn BlobStore, p: &str) {
    let key = format!("{p}rt/object.json");
    let body = data(1000, 1);
    let opts = PutOptions {
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    let meta = s.put_bytes(&key, body.clone(), opts).await.expect("put");
    let sums = checksums_of(&body);
    assert_eq!(meta.size, 1000, "put reports the size");
    assert_eq!(
        meta.checksums.as_ref(),
        Some(&sums),
        "put returns all four checksums"
    );
    assert_eq!(
        s.get_bytes(&key).await.expect("get"),
        body,
        "get returns the bytes put"
    );
    let head = s
        .head(&key)
        .await
        .expect("head")
        .expect("head finds the object");
    assert_eq!(head.size, 1000);
    assert_eq!(
        head.content_type, "application/json",
        "content type is kept"
    );
    let empty = format!("{p}rt/empty");
    let m = s
        .put_bytes(&empty, Bytes::new(), PutOptions::default())
        .await
        .expect("put empty");
    assert_eq!(
        m.checksums.map(|c| c.s3_etag),
        Some("d41d8cd98f00b204e9800998ecf8427e".to_string())
    );
    assert!(s.get_bytes(&empty).await.expect("get empty").is_empty());
}

async fn ranges(s: &dyn BlobStore, p: &str) {
    let key = format!("{p}range/o");
    let body = data(100, 2);
    s.put_bytes(&key, body.clone(), PutOptions::default())
        .await
        .expect("put");
    let read = |r: ByteRange| async move {
        use futures::TryStreamExt;
        let o = s.get(&key_of(p), Some(r)).await?;
        let parts: Vec<Bytes> = o.body.try_collect().await.map_err(BlobError::Body)?;
        Ok::<_, BlobError>((o.range, parts.concat()))
    };
    fn key_of(p: &str) -> String {
        format!("{p}range/o")
    }
    let (r, b) = read(ByteRange {
        start: 10,
        end: Some(19),
    })
    .await
    .expect("range");
    assert_eq!(r, Some((10, 10)));
    assert_eq!(b, body[10..20].to_vec(), "closed range");
    let (_, b) = read(ByteRange {
        start: 90,
        end: None,
    })
    .await
    .expect("open range");
    assert_eq!(b, body[90..].to_vec(), "open-ended range");
    let (_, b) = read(ByteRange {
        start: 95,
        end: Some(1000),
    })
    .await
    .expect("long range");
    assert_eq!(b, body[95..].to_vec(), "range past the end is clipped");
    assert!(matches!(
        read(ByteRange {
            start: 100,
            end: None
        })
        .await,
        Err(BlobError::RangeNotSatisfiable)
    ));
}

async fn missing_objects(s: &dyn BlobStore, p: &str) {
    let key = format!("{p}missing/none");
    assert!(
        s.head(&key).await.expect("head").is_none(),
        "head of a missing key is None"
    );
    assert!(
        matches!(s.get(&key, None).await, Err(BlobError::NotFound(_))),
        "get of a missing key is NotFound"
    );
    assert!(
        !s.delete(&key).await.expect("delete"),
        "deleting a missing key reports false"
    );
    assert!(matches!(
        s.copy(&key, &format!("{p}missing/dst")).await,
        Err(BlobError::NotFound(_))
    ));
}

async fn ordered_paged_listing(s: &dyn BlobStore, p: &str) {
    let base = format!("{p}list/");
    let mut keys: Vec<String> = (0..25)
        .map(|i| format!("{base}k{:03}", (i * 7) % 25))
        .collect();
    for k in &keys {
        s.put_bytes(k, Bytes::from_static(b"x"), PutOptions::default())
            .await
            .expect("put");
    }
    s.put_bytes(
        &format!("{p}lisu"),
        Bytes::from_static(b"x"),
        PutOptions::default(),
    )
    .await
    .expect("put outside");
    s.put_bytes(
        &format!("{p}lis"),
        Bytes::from_static(b"x"),
        PutOptions::default(),
    )
    .await
    .expect("put outside");
    keys.sort();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = s.list(&base, after.as_deref(), 10).await.expect("list");
        pages += 1;
        assert!(
            page.objects.len() <= 10,
            "a page holds at most `limit` objects"
        );
        seen.extend(page.objects.iter().map(|o| o.key.clone()));
        match page.next_start_after {
            Some(n) => after = Some(n),
            None => break,
        }
        assert!(pages < 10, "listing terminates");
    }
    assert_eq!(
        seen, keys,
        "listing returns exactly the prefix's keys, in order"
    );
    let tail = s.list(&base, Some(&keys[22]), 10).await.expect("list tail");
    assert_eq!(
        tail.objects
            .iter()
            .map(|o| o.key.clone())
            .collect::<Vec<_>>(),
        keys[23..].to_vec(),
        "start_after"
    );
    assert!(tail.next_start_after.is_none());
    let all: Vec<String> = s
        .list_all(&base)
        .await
        .expect("list_all")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(
        all, keys,
        "list_all returns every key of the prefix, in order"
    );
}

async fn create_only_puts(s: &dyn BlobStore, p: &str) {
    let key = format!("{p}create/o");
    let create = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    s.put_bytes(&key, Bytes::from_static(b"first"), create.clone())
        .await
        .expect("create");
    let again = s
        .put_bytes(&key, Bytes::from_static(b"second"), create)
        .await;
    assert!(
        matches!(again, Err(BlobError::AlreadyExists(_))),
        "create-only put of an existing key fails: {again:?}"
    );
    assert_eq!(
        &s.get_bytes(&key).await.expect("get")[..],
        b"first",
        "the first object is kept"
    );
    s.put_bytes(&key, Bytes::from_static(b"third"), PutOptions::default())
        .await
        .expect("overwrite");
    assert_eq!(
        &s.get_bytes(&key).await.expect("get")[..],
        b"third",
        "overwrite replaces"
    );
}

async fn failed_puts_store_nothing(s: &dyn BlobStore, p: &str) {
    let body = data(5000, 3);
    let mut wrong = checksums_of(&body);
    wrong.sha1 = "0".repeat(40);
    let key = format!("{p}fail/checksum");
    let r = s
        .put_bytes(
            &key,
            body.clone(),
            PutOptions {
                expected: Some(wrong),
                ..Default::default()
            },
        )
        .await;
    assert!(
        matches!(&r, Err(BlobError::ChecksumMismatch(v)) if v == &vec!["sha1"]),
        "checksum mismatch: {r:?}"
    );
    assert!(
        s.head(&key).await.expect("head").is_none(),
        "nothing stored after a checksum mismatch"
    );
    let ok = s
        .put_bytes(
            &key,
            body.clone(),
            PutOptions {
                expected: Some(checksums_of(&body)),
                ..Default::default()
            },
        )
        .await;
    assert!(ok.is_ok(), "matching expected checksums are accepted");

    let key = format!("{p}fail/truncated");
    let r = s
        .put(
            &key,
            stream_of(vec![Ok(body.slice(..100))]),
            PutOptions {
                size: Some(5000),
                ..Default::default()
            },
        )
        .await;
    assert!(
        matches!(
            r,
            Err(BlobError::SizeMismatch {
                expected: 5000,
                got: 100
            })
        ),
        "truncated body: {r:?}"
    );
    assert!(
        s.head(&key).await.expect("head").is_none(),
        "nothing stored after a truncated body"
    );

    let key = format!("{p}fail/broken");
    let chunks = vec![
        Ok(body.slice(..100)),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ];
    let r = s.put(&key, stream_of(chunks), PutOptions::default()).await;
    assert!(matches!(r, Err(BlobError::Body(_))), "broken body: {r:?}");
    assert!(
        s.head(&key).await.expect("head").is_none(),
        "nothing stored after a broken body"
    );
}

/// A put marked as a copy of an object with known checksums keeps them, and still refuses bytes
/// that are not that object.
async fn copy_puts(s: &dyn BlobStore, p: &str) {
    let body = data(300_000, 9);
    let sums = checksums_of(&body);
    let copy = |expected| PutOptions {
        expected: Some(expected),
        verify: dss_core::ports::blob::Verify::Copy,
        ..Default::default()
    };
    let key = format!("{p}copyput/ok");
    let m = s
        .put_bytes(&key, body.clone(), copy(sums.clone()))
        .await
        .expect("copy put");
    assert_eq!(m.size, 300_000, "copy put size");
    let head = s.head(&key).await.expect("head").expect("copy put stored");
    if let Some(recorded) = &head.checksums {
        assert_eq!(recorded, &sums, "a copy put records the known checksums");
    }
    assert_eq!(
        s.get_bytes(&key).await.expect("get"),
        body,
        "copy put bytes"
    );

    let mut corrupt = body.to_vec();
    corrupt[1234] ^= 0x40;
    let key = format!("{p}copyput/corrupt");
    let r = s
        .put_bytes(&key, Bytes::from(corrupt), copy(sums.clone()))
        .await;
    assert!(
        matches!(&r, Err(BlobError::ChecksumMismatch(v)) if v.contains(&"crc32c")),
        "a corrupted copy is refused: {r:?}"
    );
    assert!(
        s.head(&key).await.expect("head").is_none(),
        "nothing stored after a corrupted copy"
    );
    let r = s
        .put_bytes(&key, body.slice(..1000), copy(sums.clone()))
        .await;
    assert!(r.is_err(), "a short copy is refused: {r:?}");
    assert!(
        s.head(&key).await.expect("head").is_none(),
        "nothing stored after a short copy"
    );
}

async fn large_streamed_put(s: &dyn BlobStore, p: &str) {
    let body = data(9 * 1024 * 1024 + 7, 4);
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..body.len())
        .step_by(65_536)
        .map(|i| Ok(body.slice(i..(i + 65_536).min(body.len()))))
        .collect();
    let key = format!("{p}large/o");
    let meta = s
        .put(&key, stream_of(chunks), PutOptions::default())
        .await
        .expect("streamed put");
    assert_eq!(
        meta.checksums,
        Some(checksums_of(&body)),
        "streamed checksums equal one-shot checksums"
    );
    assert_eq!(s.get_bytes(&key).await.expect("get").len(), body.len());
}

async fn copy_and_delete(s: &dyn BlobStore, p: &str) {
    let (a, b) = (format!("{p}copy/a"), format!("{p}copy/b"));
    let body = data(300, 5);
    s.put_bytes(
        &a,
        body.clone(),
        PutOptions {
            content_type: Some("text/plain".into()),
            ..Default::default()
        },
    )
    .await
    .expect("put");
    let m = s.copy(&a, &b).await.expect("copy");
    assert_eq!(m.size, 300);
    assert_eq!(
        s.get_bytes(&b).await.expect("get copy"),
        body,
        "copy has the same bytes"
    );
    assert_eq!(
        s.head(&b).await.expect("head").map(|h| h.content_type),
        Some("text/plain".into()),
        "copy keeps content type"
    );
    assert!(s.delete(&a).await.expect("delete"), "delete reports true");
    assert!(
        s.head(&a).await.expect("head").is_none(),
        "deleted object is gone"
    );
    assert!(
        s.head(&b).await.expect("head").is_some(),
        "the copy survives"
    );
}

/// An object put as a sync copy reports the replica it came from (on head); others report
/// none, and an in-bucket copy is a new object of its own.
async fn sync_origin(s: &dyn BlobStore, p: &str) {
    let (synced, own) = (format!("{p}origin/synced"), format!("{p}origin/own"));
    let opts = PutOptions {
        origin: Some("gcp".into()),
        ..Default::default()
    };
    s.put_bytes(&synced, data(10, 9), opts).await.expect("put");
    s.put_bytes(&own, data(10, 9), PutOptions::default())
        .await
        .expect("put");
    let origin = |k: String| async move { s.head(&k).await.expect("head").expect("exists").origin };
    assert_eq!(origin(synced.clone()).await.as_deref(), Some("gcp"));
    assert_eq!(origin(own.clone()).await, None);
    // Listings may leave the origin out (S3's do), but never report a wrong one.
    let listed = s.list_all(&format!("{p}origin/")).await.expect("list");
    let keys: Vec<&str> = listed.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, [own.as_str(), synced.as_str()]);
    assert_eq!(listed[0].origin, None);
    assert!(listed[1].origin.as_deref().is_none_or(|o| o == "gcp"));
    let copied = format!("{p}origin/copied");
    s.copy(&synced, &copied).await.expect("copy");
    assert_eq!(
        origin(copied).await,
        None,
        "a copy within the bucket is no sync copy"
    );
}

/// An object put with a creator reports it on head (any e-mail, non-ASCII too); others report
/// none, and an in-bucket copy is a new object of nobody's.
async fn creator(s: &dyn BlobStore, p: &str) {
    let (mine, anon, copied) = (
        format!("{p}creator/mine"),
        format!("{p}creator/anon"),
        format!("{p}creator/copied"),
    );
    let who = "Zoë.O'Brien+dss@例え.example.org";
    let opts = PutOptions {
        creator: Some(who.into()),
        ..Default::default()
    };
    s.put_bytes(&mine, data(10, 3), opts).await.expect("put");
    s.put_bytes(&anon, data(10, 3), PutOptions::default())
        .await
        .expect("put");
    let creator =
        |k: String| async move { s.head(&k).await.expect("head").expect("exists").creator };
    assert_eq!(creator(mine.clone()).await.as_deref(), Some(who));
    assert_eq!(creator(anon).await, None);
    s.copy(&mine, &copied).await.expect("copy");
    assert_eq!(creator(copied).await, None, "a copy is nobody's");
}

async fn invalid_keys(s: &dyn BlobStore) {
    for key in [
        "",
        "/abs",
        "../escape",
        "a/../../b",
        "a//b",
        "a/./b",
        "bad\nkey",
    ] {
        let r = s
            .put_bytes(key, Bytes::from_static(b"x"), PutOptions::default())
            .await;
        assert!(
            matches!(r, Err(BlobError::InvalidKey { .. })),
            "key {key:?} refused: {r:?}"
        );
        assert!(
            matches!(s.get(key, None).await, Err(BlobError::InvalidKey { .. })),
            "get {key:?}"
        );
    }
}

async fn download_urls(s: &dyn BlobStore, p: &str) {
    let key = format!("{p}url/o");
    s.put_bytes(&key, Bytes::from_static(b"u"), PutOptions::default())
        .await
        .expect("put");
    let url = s
        .download_url(&key, Duration::from_secs(60), None)
        .await
        .expect("download url");
    assert!(
        url.starts_with("http://") || url.starts_with("https://"),
        "download URL is http(s): {url}"
    );
}

async fn bucket_events(s: &dyn BlobStore, p: &str, q: &dyn Queue) {
    // Drain whatever earlier checks emitted.
    loop {
        let got = q
            .receive(100, Duration::from_secs(30), Duration::from_millis(200))
            .await
            .expect("receive");
        if got.is_empty() {
            break;
        }
        q.ack_batch(&got.iter().map(|m| m.receipt.clone()).collect::<Vec<_>>())
            .await
            .expect("ack");
    }
    let key = format!("{p}events/o");
    s.put_bytes(&key, data(42, 6), PutOptions::default())
        .await
        .expect("put");
    s.delete(&key).await.expect("delete");
    let mut events: Vec<BucketEvent> = Vec::new();
    for _ in 0..20 {
        for m in q
            .receive(10, Duration::from_secs(30), Duration::from_secs(1))
            .await
            .expect("receive")
        {
            events.push(serde_json::from_str(&m.body).expect("bucket event JSON"));
            q.ack(&m.receipt).await.expect("ack");
        }
        if events.len() >= 2 {
            break;
        }
    }
    assert_eq!(
        events.len(),
        2,
        "one event per create and per delete: {events:?}"
    );
    assert_eq!(
        (events[0].event_name, events[0].key.as_str(), events[0].size),
        (BucketEventName::Created, key.as_str(), 42)
    );
    assert_eq!(events[0].bucket, s.bucket());
    assert_eq!(
        (events[1].event_name, events[1].key.as_str()),
        (BucketEventName::Removed, key.as_str())
    );
}

/// Copies between two stores (`src` → `dst`) verified by [`dss_core::transfer::copy_object`]:
/// the bytes arrive with the source's checksums recorded, progress counts them, and a source
/// whose bytes do not match its checksums or that is missing leaves nothing behind.
pub async fn copies_between(src: &dyn BlobStore, dst: &dyn BlobStore, p: &str) {
    use dss_core::transfer::{CopySource, copy_object};
    use std::sync::atomic::{AtomicU64, Ordering};
    for (i, len) in [0usize, 10, 70_000, 3 * 1024 * 1024 + 5]
        .into_iter()
        .enumerate()
    {
        let body = data(len, 20 + i as u8);
        let sums = checksums_of(&body);
        let key = format!("{p}xcopy/src-{i}");
        src.put_bytes(&key, body.clone(), PutOptions::default())
            .await
            .expect("source put");
        let progress = Arc::new(AtomicU64::new(0));
        let source = CopySource {
            store: src,
            key: &key,
            checksums: &sums,
            size: len as u64,
            content_type: "text/plain",
        };
        let to = format!("{p}xcopy/dst-{i}");
        let m = copy_object(source, dst, &to, progress.clone())
            .await
            .expect("copy");
        assert_eq!(m.size, len as u64, "copied size");
        assert_eq!(
            progress.load(Ordering::Relaxed),
            len as u64,
            "progress of {len} bytes"
        );
        assert_eq!(dst.get_bytes(&to).await.expect("get"), body, "copied bytes");
        let head = dst.head(&to).await.expect("head").expect("copy stored");
        assert_eq!(head.content_type, "text/plain");
        if let Some(c) = &head.checksums {
            assert_eq!(c, &sums, "copy records the source checksums");
        }
    }
    // Bytes that are not what the checksums say: refused, nothing stored, progress undone.
    let body = data(200_000, 33);
    let mut wrong = checksums_of(&body);
    wrong.crc32c = "00000000".into();
    let key = format!("{p}xcopy/liar");
    src.put_bytes(&key, body, PutOptions::default())
        .await
        .expect("source put");
    let progress = Arc::new(AtomicU64::new(0));
    let to = format!("{p}xcopy/liar-copy");
    let r = copy_object(
        CopySource {
            store: src,
            key: &key,
            checksums: &wrong,
            size: 200_000,
            content_type: "text/plain",
        },
        dst,
        &to,
        progress.clone(),
    )
    .await;
    assert!(
        matches!(&r, Err(BlobError::ChecksumMismatch(v)) if v.contains(&"crc32c")),
        "corrupt source refused: {r:?}"
    );
    assert!(
        dst.head(&to).await.expect("head").is_none(),
        "nothing stored"
    );
    assert_eq!(progress.load(Ordering::Relaxed), 0, "progress undone");
    let r = copy_object(
        CopySource {
            store: src,
            key: &format!("{p}xcopy/absent"),
            checksums: &wrong,
            size: 5,
            content_type: "text/plain",
        },
        dst,
        &to,
        progress,
    )
    .await;
    assert!(
        matches!(r, Err(BlobError::NotFound(_))),
        "missing source: {r:?}"
    );
}

/// Copies of several objects at once ([`dss_core::transfer::copy_objects`], batched where `dst`
/// can): one result per object, in order; the good ones stored with the source checksums, a
/// source whose bytes do not match its checksums refused and a missing one reported missing
/// (neither leaving anything behind), progress counting only what was stored.
pub async fn copies_in_batches_between(src: &dyn BlobStore, dst: &dyn BlobStore, p: &str) {
    use dss_core::transfer::{CopySource, copy_objects};
    use std::sync::atomic::{AtomicU64, Ordering};
    let lens = [0usize, 10, 70_000, 200_000];
    let mut bodies = Vec::new();
    for (i, len) in lens.into_iter().enumerate() {
        let body = data(len, 40 + i as u8);
        src.put_bytes(
            &format!("{p}xbatch/src-{i}"),
            body.clone(),
            PutOptions::default(),
        )
        .await
        .expect("source put");
        bodies.push(body);
    }
    let mut sums: Vec<_> = bodies.iter().map(|b| checksums_of(b)).collect();
    // The last source's bytes are not what its checksums say (none of them: a store may
    // compare the CRC-32C, or the ETag of a copy made by its server).
    sums[3] = checksums_of(b"something else");
    let keys: Vec<String> = (0..=lens.len())
        .map(|i| format!("{p}xbatch/src-{i}"))
        .collect();
    let absent = checksums_of(b"absent");
    let items: Vec<(CopySource<'_>, String)> = (0..=lens.len())
        .map(|i| {
            let (checksums, size) = match sums.get(i) {
                Some(s) => (s, lens[i] as u64),
                None => (&absent, 6),
            };
            let source = CopySource {
                store: src,
                key: &keys[i],
                checksums,
                size,
                content_type: "text/plain",
            };
            (source, format!("{p}xbatch/dst-{i}"))
        })
        .collect();
    let progress = Arc::new(AtomicU64::new(0));
    let done = copy_objects(&items, dst, progress.clone()).await;
    assert_eq!(done.len(), items.len(), "one result per object");
    for i in 0..3 {
        let m = done[i].as_ref().expect("copied");
        assert_eq!(m.size, lens[i] as u64, "size of copy {i}");
        let to = &items[i].1;
        assert_eq!(
            dst.get_bytes(to).await.expect("get"),
            bodies[i],
            "bytes of copy {i}"
        );
        let head = dst.head(to).await.expect("head").expect("stored");
        assert_eq!(head.content_type, "text/plain");
        if let Some(c) = &head.checksums {
            assert_eq!(c, &sums[i], "copy {i} records the source checksums");
        }
    }
    assert!(
        matches!(&done[3], Err(BlobError::ChecksumMismatch(v)) if !v.is_empty()),
        "corrupt source refused: {:?}",
        done[3]
    );
    assert!(
        matches!(&done[4], Err(BlobError::NotFound(_))),
        "missing source: {:?}",
        done[4]
    );
    for (_, to) in &items[3..] {
        assert!(
            dst.head(to).await.expect("head").is_none(),
            "{to}: nothing stored"
        );
    }
    assert_eq!(
        progress.load(Ordering::Relaxed),
        (lens[0] + lens[1] + lens[2]) as u64,
        "progress counts the stored copies only"
    );
}
