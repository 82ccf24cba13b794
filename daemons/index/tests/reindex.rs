//! Rebuilding a replica's search documents and journal from its bucket, with no index daemon
//! running (the bucket events were never handled, as after moving to a new search backend).

mod common;

use std::sync::Mutex;

use common::*;
use dss_core::ports::EventKind;
use dss_index::Indexer;
use dss_index::reindex::{Phase, Reindex, ReindexError};
use dss_runtime::checkpoint::Checkpoint;
use serde_json::json;

const U2: &str = "22222222-2222-4222-8222-222222222222";
const U3: &str = "33333333-3333-4333-8333-333333333333";

async fn stored_bundles(env: &Env) {
    let file = [(
        "donor_organism_0.json",
        "application/json",
        true,
        donor("Homo sapiens"),
    )];
    env.bundle(U1, V1, &file).await;
    env.bundle(U1, V2, &file).await;
    env.bundle(U2, V1, &file).await;
    let tomb = json!({"email": "admin@example.org", "reason": "consent withdrawn", "details": {},
        "admin_deleted": true});
    env.put(&format!("bundles/{U2}.dead"), tomb.to_string().into_bytes())
        .await;
}

/// A pass over replica `aws` under `prefix`.
fn pass(env: &Env, prefix: &str) -> Reindex {
    Reindex::new(Indexer::new(&env.d), "aws", prefix).unwrap()
}

#[tokio::test]
async fn reindex_rebuilds_documents_and_journal_from_the_bucket() {
    let env = open().await;
    stored_bundles(&env).await;
    // A document of a bundle the bucket no longer holds.
    env.d
        .search
        .put("aws", &format!("{U3}.{V1}"), &json!({"uuid": U3}))
        .await
        .unwrap();
    assert_eq!(env.search(json!({})).await.len(), 1);

    let phases = Mutex::new(Vec::new());
    let report = pass(&env, "bundles/")
        .prune()
        .run(&|phase, _| phases.lock().unwrap().push(phase))
        .await
        .unwrap();
    assert_eq!(
        (report.bundles, report.tombstones, report.failures),
        (3, 1, 0),
        "{report:?}"
    );
    assert_eq!(
        (report.documents, report.stale, report.removed),
        (4, 1, 1),
        "{report:?}"
    );
    let phases = phases.into_inner().unwrap();
    assert_eq!(phases.first(), Some(&Phase::Objects));
    assert_eq!(phases.last(), Some(&Phase::Documents));

    let live = env
        .search(json!({"query": {"match": {"files.donor_organism_json.genus_species.text.text": "sapiens"}}}))
        .await;
    let ids: Vec<&str> = live.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, [format!("{U1}.{V2}"), format!("{U1}.{V1}")]);
    let dead = env
        .search(json!({"query": {"term": {"admin_deleted": true}}}))
        .await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, format!("{U2}.{V1}"));
    assert!(
        env.d
            .search
            .get("aws", &format!("{U3}.{V1}"))
            .await
            .unwrap()
            .is_none()
    );
    // Bundles are indexed concurrently: the journal holds each event once, in any order.
    let mut kinds: Vec<(String, EventKind)> = env
        .d
        .journal
        .list("aws", None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.event_id, e.kind))
        .collect();
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        kinds,
        [
            (format!("{U1}.{V1}"), EventKind::Create),
            (format!("{U1}.{V2}"), EventKind::Create),
            (format!("{U2}.dead"), EventKind::Tombstone),
        ]
    );

    // A second pass changes nothing: documents and events are not written again.
    let again = pass(&env, "bundles/")
        .prune()
        .run(&|_, _| {})
        .await
        .unwrap();
    assert_eq!((again.bundles, again.stale, again.removed), (3, 0, 0));
    assert_eq!(
        env.d
            .journal
            .list("aws", None, None, 100)
            .await
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn reindex_reports_stale_documents_without_pruning_and_covers_only_its_prefix() {
    let env = open().await;
    stored_bundles(&env).await;
    env.d
        .search
        .put("aws", &format!("{U3}.{V1}"), &json!({"uuid": U3}))
        .await
        .unwrap();
    let report = pass(&env, &format!("bundles/{U1}"))
        .run(&|_, _| {})
        .await
        .unwrap();
    assert_eq!((report.bundles, report.tombstones), (2, 0), "{report:?}");
    assert_eq!((report.documents, report.stale, report.removed), (2, 0, 0));
    assert!(
        env.d
            .search
            .get("aws", &format!("{U2}.{V1}"))
            .await
            .unwrap()
            .is_none()
    );

    let all = pass(&env, "bundles/").run(&|_, _| {}).await.unwrap();
    assert_eq!((all.stale, all.removed), (1, 0), "reported, kept");
    assert!(
        env.d
            .search
            .get("aws", &format!("{U3}.{V1}"))
            .await
            .unwrap()
            .is_some()
    );

    assert!(matches!(
        Reindex::new(Indexer::new(&env.d), "aws", "files/"),
        Err(ReindexError::Prefix(_))
    ));
    assert!(matches!(
        Reindex::new(Indexer::new(&env.d), "nowhere", "bundles/"),
        Err(ReindexError::NoReplica(_))
    ));
}

#[tokio::test]
async fn an_interrupted_reindex_resumes_from_its_checkpoint() {
    let env = open().await;
    stored_bundles(&env).await;
    let checkpoint = env.dir.path().join("ops/reindex-aws.json");
    // A pass that was interrupted after the first key (the bundle before it was indexed).
    std::fs::create_dir_all(checkpoint.parent().unwrap()).unwrap();
    std::fs::write(
        &checkpoint,
        json!({"scope": "bundles/", "after": format!("bundles/{U1}.{V1}")}).to_string(),
    )
    .unwrap();
    let report = pass(&env, "bundles/")
        .checkpoint(Checkpoint::new(checkpoint.clone()))
        .run(&|_, _| {})
        .await
        .unwrap();
    assert_eq!(report.resumed_after, Some(format!("bundles/{U1}.{V1}")));
    assert_eq!((report.bundles, report.tombstones), (2, 1), "{report:?}");
    assert!(
        env.d
            .search
            .get("aws", &format!("{U1}.{V1}"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !checkpoint.exists(),
        "a completed pass removes its checkpoint"
    );

    // Each page moves the checkpoint on.
    let seen = Mutex::new(Vec::new());
    pass(&env, "bundles/")
        .checkpoint(Checkpoint::new(checkpoint.clone()))
        .page(1)
        .run(&|_, _| {
            let c = std::fs::read_to_string(&checkpoint).unwrap_or_default();
            seen.lock().unwrap().push(c);
        })
        .await
        .unwrap();
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen[0], "", "nothing before the first page is done");
    assert!(seen[1].contains(&format!("bundles/{U1}.{V1}")), "{seen:?}");
    assert!(!checkpoint.exists());

    // A checkpoint of another prefix is not used.
    std::fs::write(
        &checkpoint,
        json!({"scope": format!("bundles/{U2}"), "after": format!("bundles/{U2}.{V1}")})
            .to_string(),
    )
    .unwrap();
    let report = pass(&env, "bundles/")
        .checkpoint(Checkpoint::new(checkpoint.clone()))
        .run(&|_, _| {})
        .await
        .unwrap();
    assert_eq!((report.resumed_after, report.bundles), (None, 3));
}
