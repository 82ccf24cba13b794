//! A bucket's listing as a stream: pages of `list` calls (with the key to resume after, for
//! checkpoints) or the objects one by one. Every walk over a prefix uses these instead of its
//! own pagination loop.

use futures::{Stream, TryStreamExt};

use super::blob::{BlobError, BlobStore, ListPage, ObjectMeta};

/// The pages listing `prefix` after `start_after` (in key order, `page_size` objects per `list`
/// call). The stream ends after the last page, or after the first error.
pub fn pages<'a, S: BlobStore + ?Sized>(
    store: &'a S,
    prefix: &'a str,
    start_after: Option<String>,
    page_size: usize,
) -> impl Stream<Item = Result<ListPage, BlobError>> + Send + 'a {
    futures::stream::try_unfold(Some(start_after), move |cursor| async move {
        let Some(after) = cursor else {
            return Ok(None);
        };
        let page = store.list(prefix, after.as_deref(), page_size).await?;
        let next = page.next_start_after.clone().map(Some);
        Ok(Some((page, next)))
    })
}

/// The objects under `prefix` after `start_after`, in key order, listed `page_size` at a time.
pub fn objects<'a, S: BlobStore + ?Sized>(
    store: &'a S,
    prefix: &'a str,
    start_after: Option<String>,
    page_size: usize,
) -> impl Stream<Item = Result<ObjectMeta, BlobError>> + Send + 'a {
    pages(store, prefix, start_after, page_size)
        .map_ok(|page| futures::stream::iter(page.objects.into_iter().map(Ok)))
        .try_flatten()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use futures::StreamExt;

    use super::*;
    use crate::ports::blob::{ByteRange, ByteStream, GetObject, PutOptions};

    /// A listing of `n` keys that fails when asked for the page after `fail_after`.
    #[derive(Debug)]
    struct Listed {
        keys: Vec<String>,
        fail_after: Option<String>,
        calls: Mutex<u32>,
    }

    #[async_trait]
    impl BlobStore for Listed {
        fn bucket(&self) -> &str {
            "listed"
        }
        async fn put(
            &self,
            _: &str,
            _: ByteStream,
            _: PutOptions,
        ) -> Result<ObjectMeta, BlobError> {
            Err(BlobError::Backend("read only".into()))
        }
        async fn get(&self, k: &str, _: Option<ByteRange>) -> Result<GetObject, BlobError> {
            Err(BlobError::NotFound(k.into()))
        }
        async fn head(&self, _: &str) -> Result<Option<ObjectMeta>, BlobError> {
            Ok(None)
        }
        async fn list(
            &self,
            prefix: &str,
            start_after: Option<&str>,
            limit: usize,
        ) -> Result<ListPage, BlobError> {
            *self.calls.lock().unwrap() += 1;
            if start_after.is_some() && start_after == self.fail_after.as_deref() {
                return Err(BlobError::Backend("listing failed".into()));
            }
            let rest: Vec<&String> = self
                .keys
                .iter()
                .filter(|k| k.starts_with(prefix) && Some(k.as_str()) > start_after)
                .collect();
            let objects: Vec<ObjectMeta> = rest
                .iter()
                .take(limit)
                .map(|k| ObjectMeta {
                    key: k.to_string(),
                    size: 0,
                    etag: String::new(),
                    content_type: String::new(),
                    created: time::OffsetDateTime::UNIX_EPOCH,
                    checksums: None,
                    origin: None,
                    correlation_id: None,
                    traceparent: None,
                    creator: None,
                })
                .collect();
            let next_start_after = (rest.len() > limit)
                .then(|| objects.last().map(|o| o.key.clone()))
                .flatten();
            Ok(ListPage {
                objects,
                next_start_after,
            })
        }
        async fn copy(&self, _: &str, _: &str) -> Result<ObjectMeta, BlobError> {
            Err(BlobError::Backend("read only".into()))
        }
        async fn delete(&self, _: &str) -> Result<bool, BlobError> {
            Ok(false)
        }
        fn direct_url(&self, _: &str) -> Result<String, BlobError> {
            Err(BlobError::Backend("none".into()))
        }
        async fn download_url(
            &self,
            _: &str,
            _: std::time::Duration,
            _: Option<&str>,
        ) -> Result<String, BlobError> {
            Err(BlobError::Backend("none".into()))
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    fn listed(n: usize, fail_after: Option<&str>) -> Listed {
        Listed {
            keys: (0..n).map(|i| format!("k/{i:03}")).collect(),
            fail_after: fail_after.map(str::to_string),
            calls: Mutex::new(0),
        }
    }

    #[tokio::test]
    async fn every_object_once_in_order_in_pages() {
        let s = listed(25, None);
        let got: Vec<String> = objects(&s, "k/", None, 10)
            .map_ok(|o| o.key)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(got, s.keys);
        assert_eq!(*s.calls.lock().unwrap(), 3);
        let resumed: Vec<ListPage> = pages(&s, "k/", Some("k/019".into()), 10)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(resumed.len(), 1);
        assert_eq!(resumed[0].objects[0].key, "k/020");
        assert_eq!(resumed[0].next_start_after, None);
        let empty: Vec<ObjectMeta> = objects(&s, "none/", None, 10).try_collect().await.unwrap();
        assert!(empty.is_empty());
    }

    #[tokio::test]
    async fn a_failed_page_ends_the_stream_with_its_error() {
        let s = listed(25, Some("k/009"));
        let mut all = Box::pin(objects(&s, "k/", None, 10));
        let mut seen = 0;
        let err = loop {
            match all.next().await {
                Some(Ok(_)) => seen += 1,
                Some(Err(e)) => break e,
                None => panic!("the error is reported"),
            }
        };
        assert_eq!(seen, 10);
        assert!(matches!(err, BlobError::Backend(_)), "{err}");
        assert!(all.next().await.is_none(), "nothing after the error");
    }
}
