//! Comparing an object's copies and making a verified copy.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use dss_core::model::ObjectKey;
use dss_core::ports::{BlobError, ObjectMeta, PutMode, PutOptions, Verify};
use dss_core::transfer::{holds, transfer};
use dss_runtime::deployment::Replica;

/// How the destination's copy of an object compares with the source's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Not there.
    Missing,
    /// The same object.
    Same,
    /// A blob that does not hold the bytes its key names (a broken copy: replace it).
    BrokenBlob,
    /// A metadata object with other content (keys are immutable: a conflict, not replaced).
    Conflict(String),
}

/// Compares the destination's object with the source's. A blob's copy must hold the bytes its
/// key names; other objects must have the source's size and, where both stores record them,
/// its checksums.
pub fn compare(key: &ObjectKey, src: &ObjectMeta, dst: Option<&ObjectMeta>) -> Found {
    let Some(dst) = dst else {
        return Found::Missing;
    };
    if let ObjectKey::Blob(sums) = key {
        return match holds(dst, sums, src.size) {
            true => Found::Same,
            false => Found::BrokenBlob,
        };
    }
    if dst.size != src.size {
        return Found::Conflict(format!(
            "{} bytes here, {} in the source",
            dst.size, src.size
        ));
    }
    match (&src.checksums, &dst.checksums) {
        (Some(a), Some(b)) if a != b => {
            Found::Conflict(format!("checksums differ ({})", a.mismatches(b).join(", ")))
        }
        _ => Found::Same,
    }
}

/// Copies `key` from `src` to `dst`, recording where it came from, and verifies all four
/// checksums of the bytes written (against the blob's key, or the source object's recorded
/// checksums) before the copy becomes visible. A document other than a blob is created only:
/// [`BlobError::AlreadyExists`] when one appeared at the destination meanwhile. `progress` counts bytes as they are written.
pub async fn replicate(
    src: &Replica,
    dst: &Replica,
    key: &ObjectKey,
    meta: &ObjectMeta,
    progress: Arc<AtomicU64>,
) -> Result<ObjectMeta, BlobError> {
    // A blob's key names its bytes: a broken copy is replaced. Any other object is written
    // only where there is none, so one created at the destination since it was compared is
    // never overwritten (the caller compares again).
    let (expected, mode) = match key {
        ObjectKey::Blob(sums) => (Some(sums.clone()), PutMode::Overwrite),
        _ => (meta.checksums.clone(), PutMode::Create),
    };
    let opts = PutOptions {
        content_type: Some(meta.content_type.clone()),
        size: Some(meta.size),
        expected,
        mode,
        verify: Verify::Full,
        origin: Some(src.name.clone()),
        // Who wrote a bundle decides who may derive versions of it, on every replica.
        creator: meta.creator.clone(),
    };
    let k = key.to_string();
    transfer(&*src.store, &k, meta.size, &*dst.store, &k, opts, progress).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use dss_core::checksum::checksums_of;
    use time::OffsetDateTime;

    fn meta(size: u64, sums: Option<dss_core::checksum::Checksums>) -> ObjectMeta {
        ObjectMeta {
            key: "k".into(),
            size,
            etag: sums.as_ref().map(|s| s.s3_etag.clone()).unwrap_or_default(),
            content_type: "application/json".into(),
            created: OffsetDateTime::UNIX_EPOCH,
            checksums: sums,
            origin: None,
            correlation_id: None,
            traceparent: None,
            creator: None,
        }
    }

    #[test]
    fn copies_compare_by_content() {
        let (a, b) = (checksums_of(b"a"), checksums_of(b"b"));
        let blob = ObjectKey::Blob(a.clone());
        assert_eq!(
            compare(&blob, &meta(1, Some(a.clone())), None),
            Found::Missing
        );
        let good = meta(1, Some(a.clone()));
        assert_eq!(compare(&blob, &good, Some(&good)), Found::Same);
        let bad = meta(1, Some(b.clone()));
        assert_eq!(compare(&blob, &good, Some(&bad)), Found::BrokenBlob);
        let file = ObjectKey::parse(
            "files/ce55fd51-7833-469b-be0b-5da88ebebfcd.2017-06-16T193604.240704Z",
        )
        .unwrap();
        assert_eq!(compare(&file, &good, Some(&good)), Found::Same);
        assert!(matches!(
            compare(&file, &good, Some(&bad)),
            Found::Conflict(_)
        ));
        assert!(matches!(
            compare(&file, &good, Some(&meta(2, None))),
            Found::Conflict(_)
        ));
        assert_eq!(
            compare(&file, &good, Some(&meta(1, None))),
            Found::Same,
            "without recorded checksums the size decides"
        );
    }
}
