//! The index daemon on a real embedded deployment: bucket events from local buckets → search
//! documents and journal events.

mod common;

use common::*;
use dss_core::checksum::checksums_of;
use dss_core::names::BUCKET_EVENTS_TOPIC;
use dss_core::ports::{EventKind, SearchRequest, Topic};
use dss_embedded::EmbeddedTopic;
use serde_json::{Value, json};

#[tokio::test]
async fn bundles_become_searchable_and_journaled() {
    let env = start().await;
    env.bundle(
        U1,
        V1,
        &[
            (
                "donor_organism_0.json",
                "application/json",
                true,
                donor("Homo sapiens"),
            ),
            (
                "notes.json",
                "application/json; dcp-type=\"metadata\"",
                false,
                br#"{"note": "kept for events"}"#.to_vec(),
            ),
            (
                "reads.fastq",
                "application/octet-stream",
                false,
                b"@r1\nACGT\n".to_vec(),
            ),
            (
                "broken.json",
                "application/json",
                true,
                b"{not json".to_vec(),
            ),
        ],
    )
    .await;
    env.drained().await;
    let hits = env.search(json!({"query": {"match": {"files.donor_organism_json.genus_species.text.text": "sapiens"}}})).await;
    assert_eq!(hits.len(), 1, "{hits:?}");
    let (id, doc) = &hits[0];
    assert_eq!(id, &format!("{U1}.{V1}"));
    assert_eq!(doc["uuid"], U1);
    assert_eq!(doc["state"], "new");
    assert_eq!(doc["shape_descriptor"], "v15");
    assert_eq!(doc["manifest"]["files"].as_array().map(Vec::len), Some(4));
    assert!(
        doc["files"].get("notes_json").is_none(),
        "only indexed files are searchable"
    );
    assert!(
        doc["files"].get("broken_json").is_none(),
        "unparsable files are left out"
    );
    let create = env
        .d
        .journal
        .find("aws", &format!("{U1}.{V1}"), EventKind::Create)
        .await
        .unwrap()
        .expect("CREATE event");
    let create: Value = serde_json::from_str(&create).unwrap();
    assert_eq!(create["event_type"], "CREATE");
    assert_eq!(create["bundle_info"], json!({"uuid": U1, "version": V1}));
    assert_eq!(create["files"]["notes_json"][0]["note"], "kept for events");
    assert_eq!(env.dead_letters().await, 0);

    // Redelivery of the same event changes nothing and records nothing new.
    let topic = EmbeddedTopic::new(&env.d.db, BUCKET_EVENTS_TOPIC, env.d.clock.clone());
    let event = json!({"bucket": "aws", "key": format!("bundles/{U1}.{V1}"), "size": 1, "etag": "x",
        "event_name": "ObjectCreated:Put", "time": "2020-01-01T00:00:00Z"});
    for _ in 0..3 {
        topic.publish(&event.to_string()).await.unwrap();
    }
    env.drained().await;
    assert_eq!(
        env.d
            .journal
            .list("aws", None, None, 100)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(env.search(json!({})).await, hits);
    // The other replica saw nothing.
    assert!(
        env.d
            .search
            .search(
                "gcp",
                &SearchRequest {
                    body: json!({}),
                    size: 10,
                    after: None,
                    with_source: false
                }
            )
            .await
            .unwrap()
            .hits
            .is_empty()
    );
}

#[tokio::test]
async fn tombstones_replace_documents() {
    let env = start().await;
    let file = [(
        "donor_organism_0.json",
        "application/json",
        true,
        donor("Mus musculus"),
    )];
    env.bundle(U1, V1, &file).await;
    env.bundle(U1, V2, &file).await;
    env.drained().await;
    assert_eq!(env.search(json!({})).await.len(), 2);

    let tomb = json!({"email": "admin@example.org", "reason": "wrong donor", "details": {}, "admin_deleted": true});
    env.put(
        &format!("bundles/{U1}.{V1}.dead"),
        tomb.to_string().into_bytes(),
    )
    .await;
    env.drained().await;
    let dead = env
        .search(json!({"query": {"term": {"admin_deleted": true}}}))
        .await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, format!("{U1}.{V1}"));
    assert_eq!(dead[0].1["manifest"], json!({"version": V1}));
    assert_eq!(dead[0].1["reason"], "wrong donor");

    env.put(&format!("bundles/{U1}.dead"), tomb.to_string().into_bytes())
        .await;
    env.drained().await;
    let dead = env
        .search(json!({"query": {"term": {"admin_deleted": true}}}))
        .await;
    assert_eq!(
        dead.len(),
        2,
        "an unversioned tombstone entombs every version"
    );
    assert!(
        dead.iter()
            .all(|(_, d)| d["manifest"] == json!({"version": null}))
    );
    let kinds: Vec<EventKind> = env
        .d
        .journal
        .list("aws", None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::Create,
            EventKind::Create,
            EventKind::Tombstone,
            EventKind::Tombstone
        ]
    );
    let t = env
        .d
        .journal
        .find("aws", &format!("{U1}.dead"), EventKind::Tombstone)
        .await
        .unwrap()
        .unwrap();
    let t: Value = serde_json::from_str(&t).unwrap();
    assert_eq!(t["bundle_info"], json!({"uuid": U1, "version": null}));
    assert_eq!(t["reason"], "wrong donor");

    // A bundle that arrives after its tombstone (replication order) is indexed as dead.
    let v3 = "2020-03-01T000000.000000Z";
    env.bundle(U1, v3, &file).await;
    env.drained().await;
    let doc = env
        .d
        .search
        .get("aws", &format!("{U1}.{v3}"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(doc["admin_deleted"], true);
    assert!(
        env.d
            .journal
            .find("aws", &format!("{U1}.{v3}"), EventKind::Create)
            .await
            .unwrap()
            .is_none()
    );

    // Removing a bundle object records a DELETE event and keeps the document.
    assert!(
        env.store()
            .delete(&format!("bundles/{U1}.{V2}"))
            .await
            .unwrap()
    );
    env.drained().await;
    assert!(
        env.d
            .journal
            .find("aws", &format!("{U1}.{V2}"), EventKind::Delete)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        env.d
            .search
            .get("aws", &format!("{U1}.{V2}"))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn bad_events_do_not_cause_retry_storms() {
    let env = start().await;
    let topic = EmbeddedTopic::new(&env.d.db, BUCKET_EVENTS_TOPIC, env.d.clock.clone());
    let event = |bucket: &str, key: &str| {
        json!({"bucket": bucket, "key": key, "size": 1, "etag": "x",
            "event_name": "ObjectCreated:Put", "time": "2020-01-01T00:00:00Z"})
        .to_string()
    };
    // Gone objects, other kinds of keys and foreign buckets are consumed without effect.
    topic
        .publish(&event("aws", &format!("bundles/{U1}.{V1}")))
        .await
        .unwrap();
    topic
        .publish(&event("aws", &format!("bundles/{U1}.dead")))
        .await
        .unwrap();
    topic
        .publish(&event("aws", "files/whatever"))
        .await
        .unwrap();
    topic
        .publish(&event("elsewhere", &format!("bundles/{U1}.{V1}")))
        .await
        .unwrap();
    env.drained().await;
    assert_eq!(env.dead_letters().await, 0);
    assert!(
        env.d
            .journal
            .list("aws", None, None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A manifest that is not JSON can never be indexed: dead-lettered at once, with the reason.
    env.put(&format!("bundles/{U1}.{V1}"), b"not json".to_vec())
        .await;
    // Messages that are not bucket events are dead-lettered too.
    topic.publish("garbage").await.unwrap();
    env.drained().await;
    assert_eq!(env.dead_letters().await, 2);
}

#[tokio::test]
async fn a_bundle_of_100000_files_indexes() {
    let env = start().await;
    let meta = donor("Homo sapiens");
    let c = checksums_of(&meta);
    env.put(
        &format!("blobs/{}.{}.{}.{}", c.sha256, c.sha1, c.s3_etag, c.crc32c),
        meta.clone(),
    )
    .await;
    let mut entries = vec![
        json!({"name": "donor_organism_0.json", "uuid": U1, "version": V1,
        "content-type": "application/json", "size": meta.len(), "indexed": true,
        "crc32c": c.crc32c, "s3-etag": c.s3_etag, "sha1": c.sha1, "sha256": c.sha256}),
    ];
    for i in 0..100_000u32 {
        entries.push(json!({"name": format!("cell_{i}.bam"), "uuid": format!("00000000-0000-4000-8000-{i:012}"),
            "version": V1, "content-type": "application/octet-stream", "size": 1, "indexed": false,
            "crc32c": "00000000", "s3-etag": "0", "sha1": "0", "sha256": "0"}));
    }
    let manifest = json!({"format": "0.0.1", "version": V1, "files": entries, "creator_uid": 1});
    env.put(
        &format!("bundles/{U1}.{V1}"),
        manifest.to_string().into_bytes(),
    )
    .await;
    env.drained().await;
    let hits = env.search(json!({"query": {"term": {"uuid": U1}}})).await;
    assert_eq!(hits.len(), 1);
    assert_eq!(
        hits[0].1["manifest"]["files"],
        json!([]),
        "the file list of a huge manifest is not indexed"
    );
    assert_eq!(
        hits[0].1["files"]["donor_organism_json"][0]["organism_age"],
        "38"
    );
}
