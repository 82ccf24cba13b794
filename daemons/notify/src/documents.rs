//! The bundles a bucket event concerns, each with the documents subscriptions are matched
//! against: the search document for Elasticsearch subscriptions, the CREATE / TOMBSTONE / DELETE
//! document for JMESPath ones. Everything is read from storage (never from the journal), so a
//! retry always finds its document.

use std::sync::Arc;

use dss_core::model::keys::Kind;
use dss_core::model::metadata::{
    create_document, delete_document, search_document, tombstone_document,
    tombstone_search_document,
};
use dss_core::model::{DssVersion, ObjectKey, ObjectUuid};
use dss_core::ports::{BlobStore, BucketEvent, BucketEventName, EventKind};
use dss_runtime::bundle_reader::{self as reader, Limits, LoadError};
use serde_json::Value;

/// One bundle version an event notifies about.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// CREATE, TOMBSTONE or DELETE.
    pub event_type: EventKind,
    /// The bundle.
    pub bundle_uuid: String,
    /// Its version (`None` only for a removed whole-bundle tombstone).
    pub bundle_version: Option<String>,
    /// Names the notification uniquely per subscription, so a redelivered event is not
    /// notified twice.
    pub event_key: String,
    /// What Elasticsearch subscriptions match against; `None`: not notified to them.
    pub search_doc: Option<Value>,
    /// What JMESPath subscriptions match against; `None`: not notified to them.
    pub metadata_doc: Option<Value>,
}

/// The targets of `event` in the replica `store`. Objects that are gone yield none.
pub async fn targets(
    store: &Arc<dyn BlobStore>,
    event: &BucketEvent,
    limits: &Limits,
) -> Result<Vec<Target>, LoadError> {
    let key = ObjectKey::parse(&event.key);
    let result = match (event.event_name, key) {
        (BucketEventName::Created, Some(ObjectKey::Versioned(Kind::Bundle, u, v))) => {
            created(store, &event.key, &u, &v, limits).await
        }
        (BucketEventName::Created, Some(ObjectKey::VersionTombstone(Kind::Bundle, u, v))) => {
            versioned_tombstone(store, &event.key, &u, &v).await
        }
        (BucketEventName::Created, Some(ObjectKey::Tombstone(Kind::Bundle, u))) => {
            bundle_tombstone(store, &event.key, &u).await
        }
        (BucketEventName::Removed, Some(k)) => Ok(removed(event, &k).into_iter().collect()),
        _ => Ok(Vec::new()),
    };
    match result {
        Err(LoadError::Missing(what)) => {
            tracing::info!(%what, "object no longer exists; nothing to notify");
            Ok(Vec::new())
        }
        other => other,
    }
}

async fn created(
    store: &Arc<dyn BlobStore>,
    key: &str,
    uuid: &ObjectUuid,
    version: &DssVersion,
    limits: &Limits,
) -> Result<Vec<Target>, LoadError> {
    let reader::Manifest {
        stored: manifest,
        typed,
    } = reader::read_manifest(store, key).await?;
    let files = reader::json_files(store, key, &typed, limits).await?;
    // A bundle replicated after its tombstone is dead for search (and its subscribers), as the
    // index daemon indexes it.
    let mut search_doc = None;
    for tomb_version in [Some(version), None] {
        match reader::read_json(store, &ObjectKey::bundle_tombstone(uuid, tomb_version)).await {
            Ok(t) => {
                search_doc = Some(tombstone_search_document(
                    &t,
                    uuid.as_str(),
                    tomb_version.map(DssVersion::as_str),
                ));
                break;
            }
            Err(LoadError::Missing(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let search_doc =
        search_doc.unwrap_or_else(|| search_document(uuid.as_str(), &manifest, &files));
    Ok(vec![Target {
        event_type: EventKind::Create,
        bundle_uuid: uuid.to_string(),
        bundle_version: Some(version.to_string()),
        event_key: format!("CREATE {key}"),
        search_doc: Some(search_doc),
        metadata_doc: Some(create_document(
            uuid.as_str(),
            version.as_str(),
            &manifest,
            &files,
        )),
    }])
}

async fn versioned_tombstone(
    store: &Arc<dyn BlobStore>,
    key: &str,
    uuid: &ObjectUuid,
    version: &DssVersion,
) -> Result<Vec<Target>, LoadError> {
    let tombstone = reader::read_json(store, key).await?;
    let bundle = ObjectKey::bundle(uuid, version);
    let exists = store
        .head(&bundle)
        .await
        .map_err(|e| LoadError::Retry(format!("reading {bundle}: {e}")))?
        .is_some();
    if !exists {
        return Ok(Vec::new());
    }
    let v = Some(version.as_str());
    Ok(vec![Target {
        event_type: EventKind::Tombstone,
        bundle_uuid: uuid.to_string(),
        bundle_version: Some(version.to_string()),
        event_key: format!("TOMBSTONE {key}"),
        search_doc: Some(tombstone_search_document(&tombstone, uuid.as_str(), v)),
        metadata_doc: Some(tombstone_document(&tombstone, uuid.as_str(), v)),
    }])
}

/// One target per version present. Versions with their own tombstone are re-notified to
/// Elasticsearch subscriptions (their search document changes) but not to JMESPath ones, as in
/// the original.
async fn bundle_tombstone(
    store: &Arc<dyn BlobStore>,
    key: &str,
    uuid: &ObjectUuid,
) -> Result<Vec<Target>, LoadError> {
    let tombstone = reader::read_json(store, key).await?;
    let search_doc = tombstone_search_document(&tombstone, uuid.as_str(), None);
    let metadata_doc = tombstone_document(&tombstone, uuid.as_str(), None);
    Ok(reader::versions(store, uuid)
        .await?
        .into_iter()
        .map(|v| Target {
            event_type: EventKind::Tombstone,
            bundle_uuid: uuid.to_string(),
            bundle_version: Some(v.version.to_string()),
            event_key: format!("TOMBSTONE {key} {}", v.version),
            search_doc: Some(search_doc.clone()),
            metadata_doc: (!v.tombstoned).then(|| metadata_doc.clone()),
        })
        .collect())
}

/// A removed bundle or tombstone object: a DELETE for JMESPath subscriptions (the search index
/// keeps its document, so Elasticsearch subscriptions are not told).
fn removed(event: &BucketEvent, key: &ObjectKey) -> Option<Target> {
    let (uuid, version) = match key {
        ObjectKey::Versioned(Kind::Bundle, u, v)
        | ObjectKey::VersionTombstone(Kind::Bundle, u, v) => (u, Some(v.to_string())),
        ObjectKey::Tombstone(Kind::Bundle, u) => (u, None),
        _ => return None,
    };
    let when = event.time.unix_timestamp_nanos();
    Some(Target {
        event_type: EventKind::Delete,
        bundle_uuid: uuid.to_string(),
        metadata_doc: Some(delete_document(uuid.as_str(), version.as_deref())),
        bundle_version: version,
        event_key: format!("DELETE {} {when}", event.key),
        search_doc: None,
    })
}
