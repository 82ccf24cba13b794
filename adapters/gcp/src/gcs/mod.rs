//! `BlobStore` on Google Cloud Storage (JSON API v1).
//!
//! * Puts stream: the body is hashed (all four checksums) as it arrives. A body of at most one
//!   DSS part goes up in one multipart request with its checksums as custom metadata; a larger
//!   one is a resumable upload whose last chunk is held back until the whole body is hashed and
//!   verified, so a body that fails verification never becomes an object (the session is
//!   cancelled). Checksums not known in advance are added to the metadata once the upload ends.
//!   The CRC-32C the server computed must equal ours.
//! * Create-only puts use `ifGenerationMatch=0` (and look first, for servers that do not
//!   enforce it on resumable uploads).
//! * Copies are server-side rewrites. Download URLs are V4 signed when the credentials can sign;
//!   without credentials (emulators) they are the plain media URL.
//! * Keys follow the same rules as every other store (see `dss_core::keypath`).
//! * Requests have timeouts and are retried as Google's retry strategy describes
//!   ([`crate::RequestPolicy`]); a resumable upload's failed chunk is followed by a status query,
//!   and the upload goes on from the bytes the server persisted.

mod buckets;
mod object;
mod signed;
mod upload;

pub use buckets::GcsBuckets;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use dss_core::checksum::s3_part_size;
use dss_core::keypath;
use dss_core::ports::{
    BlobError, BlobStore, ByteRange, ByteStream, GetObject, ListPage, LocalFile, ObjectMeta,
    PutMode, PutOptions,
};
use futures::TryStreamExt;
use percent_encoding::utf8_percent_encode;
use reqwest::{RequestBuilder, Response, StatusCode};

use crate::GcpOptions;
use crate::auth::{Auth, STORAGE_SCOPE};
use crate::retry::{self, RequestPolicy};
use object::{Object, Objects, Rewrite};
use signed::COMPONENT;

/// Objects listed per request at most (the API's limit).
const MAX_PAGE: usize = 1000;

/// One GCS bucket.
#[derive(Debug, Clone)]
pub struct GcsBlobStore {
    http: reqwest::Client,
    base: String,
    bucket: String,
    project: String,
    auth: Arc<Auth>,
    policy: RequestPolicy,
}

fn check_key(key: &str) -> Result<(), BlobError> {
    keypath::validate(key).map_err(|reason| BlobError::InvalidKey {
        key: key.to_string(),
        reason,
    })
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// A transport failure.
fn transport(e: reqwest::Error) -> BlobError {
    BlobError::Backend(format!("GCS request failed: {e}"))
}

/// The error of an unexpected answer, with its body.
async fn unexpected(what: &str, r: Response) -> BlobError {
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    BlobError::Backend(format!(
        "GCS {what}: {status} {}",
        body.chars().take(500).collect::<String>()
    ))
}

impl GcsBlobStore {
    /// The bucket `bucket`, reached as `options` say.
    pub fn connect(bucket: &str, options: &GcpOptions) -> Result<Self, BlobError> {
        let http = options
            .requests
            .client()
            .map_err(|e| BlobError::Backend(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: options.base(),
            bucket: bucket.to_string(),
            project: options.project.clone().unwrap_or_default(),
            auth: Arc::new(
                Auth::new(options.anonymous, STORAGE_SCOPE).map_err(BlobError::Backend)?,
            ),
            policy: options.requests.clone(),
        })
    }

    /// The bucket `bucket` of the same service, with the same client and credentials.
    pub fn sibling(&self, bucket: &str) -> Self {
        Self {
            bucket: bucket.to_string(),
            ..self.clone()
        }
    }

    /// Sends a request with the credentials' headers, again after a transport error, a
    /// retryable answer (see [`retry`]) or a failure to get credentials while attempts remain.
    /// A request whose body is a stream cannot be repeated and is sent once.
    async fn send(&self, req: RequestBuilder) -> Result<Response, BlobError> {
        if req.try_clone().is_none() {
            return self.send_once(req).await?.map_err(transport);
        }
        let mut failures = 0;
        loop {
            let Some(this) = req.try_clone() else {
                return Err(BlobError::Backend(
                    "a GCS request could not be repeated".into(),
                ));
            };
            let why = match self.auth.headers().await {
                Err(e) => e,
                Ok(headers) => {
                    let outcome = this.headers(headers).send().await;
                    let again = match &outcome {
                        Ok(r) => retry::retryable(r.status()),
                        Err(e) => retry::transient(e),
                    };
                    if !again || failures + 1 >= self.policy.attempts() {
                        return outcome.map_err(transport);
                    }
                    match outcome {
                        Ok(r) => r.status().to_string(),
                        Err(e) => e.to_string(),
                    }
                }
            };
            failures += 1;
            if failures >= self.policy.attempts() {
                return Err(BlobError::Backend(why));
            }
            tracing::warn!(bucket = %self.bucket, error = %why, attempt = failures, "GCS request failed; retrying");
            tokio::time::sleep(self.policy.backoff(failures - 1)).await;
        }
    }

    /// Sends a request once with the credentials' headers: the transport's outcome.
    async fn send_once(&self, req: RequestBuilder) -> Result<reqwest::Result<Response>, BlobError> {
        let headers = self.auth.headers().await.map_err(BlobError::Backend)?;
        Ok(req.headers(headers).send().await)
    }

    fn object_url(&self, key: &str) -> String {
        format!(
            "{}/storage/v1/b/{}/o/{}",
            self.base,
            enc(&self.bucket),
            enc(key)
        )
    }

    fn upload_url(&self) -> String {
        format!("{}/upload/storage/v1/b/{}/o", self.base, enc(&self.bucket))
    }

    /// Whether the bucket exists.
    pub async fn exists(&self) -> Result<bool, BlobError> {
        let url = format!("{}/storage/v1/b/{}", self.base, enc(&self.bucket));
        let r = self.send(self.http.get(url)).await?;
        match r.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(unexpected("bucket lookup", r).await),
        }
    }

    /// Creates the bucket unless it exists (for local servers and first deployments).
    pub async fn ensure_bucket(&self) -> Result<(), BlobError> {
        if self.exists().await? {
            return Ok(());
        }
        let url = format!("{}/storage/v1/b", self.base);
        let req = self
            .http
            .post(url)
            .query(&[("project", self.project.as_str())])
            .json(&serde_json::json!({"name": self.bucket}));
        let r = self.send(req).await?;
        match r.status() {
            s if s.is_success() => Ok(()),
            StatusCode::CONFLICT => Ok(()),
            _ => Err(unexpected("bucket creation", r).await),
        }
    }

    /// Sends the bucket's object finalisations and deletions to the Pub/Sub topic `topic`
    /// (`projects/{p}/topics/{t}`) as JSON notifications, unless a notification to it exists.
    /// `Ok(false)` when the server has no per-bucket notifications (fake-gcs-server is
    /// configured by flags instead).
    pub async fn publish_events_to(&self, topic: &str) -> Result<bool, BlobError> {
        let url = format!(
            "{}/storage/v1/b/{}/notificationConfigs",
            self.base,
            enc(&self.bucket)
        );
        let r = self.send(self.http.get(&url)).await?;
        match r.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => return Ok(false),
            _ => return Err(unexpected("notification lookup", r).await),
        }
        let existing: serde_json::Value = r.json().await.map_err(transport)?;
        let wanted = format!("//pubsub.googleapis.com/{topic}");
        let present = existing["items"].as_array().is_some_and(|items| {
            items
                .iter()
                .any(|n| n["topic"] == wanted.as_str() || n["topic"] == topic)
        });
        if present {
            return Ok(true);
        }
        let body = serde_json::json!({
            "topic": wanted,
            "payload_format": "JSON_API_V1",
            "event_types": ["OBJECT_FINALIZE", "OBJECT_DELETE"],
        });
        let r = self.send(self.http.post(&url).json(&body)).await?;
        match r.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(unexpected("notification creation", r).await),
        }
    }

    /// The object resource of `key`, `None` if there is none.
    async fn object(&self, key: &str) -> Result<Option<Object>, BlobError> {
        let r = self.send(self.http.get(self.object_url(key))).await?;
        match r.status() {
            s if s.is_success() => Ok(Some(r.json().await.map_err(transport)?)),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(unexpected("object lookup", r).await),
        }
    }

    /// Puts `body` at `key` as `opts` say; with `declare`, the object's metadata also declares
    /// its checksums as a staging object's (`hca-dss-*`).
    pub(crate) async fn put_object(
        &self,
        key: &str,
        body: ByteStream,
        opts: PutOptions,
        declare: bool,
    ) -> Result<ObjectMeta, BlobError> {
        check_key(key)?;
        if opts.mode == PutMode::Create && self.object(key).await?.is_some() {
            return Err(BlobError::AlreadyExists(key.to_string()));
        }
        upload::put(self, key, body, &opts, declare).await?.meta()
    }

    /// Stages the local file `file` as `key`, declaring its checksums, in a resumable upload
    /// whose chunks (DSS parts) are read from the file.
    pub(crate) async fn put_file(
        &self,
        key: &str,
        file: &LocalFile<'_>,
    ) -> Result<ObjectMeta, BlobError> {
        check_key(key)?;
        let part = s3_part_size(file.size);
        upload::put_file(self, key, file, part).await?.meta()
    }

    /// Replaces the custom metadata of `key` (keeping its bytes).
    pub(crate) async fn set_metadata(
        &self,
        key: &str,
        metadata: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Object, BlobError> {
        let req = self
            .http
            .patch(self.object_url(key))
            .json(&serde_json::json!({ "metadata": metadata }));
        let r = self.send(req).await?;
        match r.status() {
            s if s.is_success() => r.json().await.map_err(transport),
            _ => Err(unexpected("metadata update", r).await),
        }
    }

    /// Rewrites `from` (of bucket `src_bucket`) to `to` here, with `metadata` when given (else
    /// the source's), until the server says it is done.
    async fn rewrite(
        &self,
        src_bucket: &str,
        from: &str,
        to: &str,
        resource: Option<serde_json::Value>,
    ) -> Result<Object, BlobError> {
        let url = format!(
            "{}/storage/v1/b/{}/o/{}/rewriteTo/b/{}/o/{}",
            self.base,
            enc(src_bucket),
            enc(from),
            enc(&self.bucket),
            enc(to)
        );
        let mut token: Option<String> = None;
        loop {
            let mut req = self.http.post(&url);
            if let Some(t) = &token {
                req = req.query(&[("rewriteToken", t.as_str())]);
            }
            req = req.json(&resource.clone().unwrap_or_else(|| serde_json::json!({})));
            let r = self.send(req).await?;
            match r.status() {
                s if s.is_success() => {}
                StatusCode::NOT_FOUND => return Err(BlobError::NotFound(from.to_string())),
                _ => return Err(unexpected("rewrite", r).await),
            }
            let step: Rewrite = r.json().await.map_err(transport)?;
            match (step.done, step.resource, step.rewrite_token) {
                (true, Some(o), _) => return Ok(o),
                (false, _, Some(t)) => token = Some(t),
                _ => {
                    return Err(BlobError::Backend(
                        "rewrite answered neither done nor a token".into(),
                    ));
                }
            }
        }
    }
}

#[async_trait]
impl BlobStore for GcsBlobStore {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn put(
        &self,
        key: &str,
        body: ByteStream,
        opts: PutOptions,
    ) -> Result<ObjectMeta, BlobError> {
        self.put_object(key, body, opts, false).await
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetObject, BlobError> {
        check_key(key)?;
        let object = self
            .object(key)
            .await?
            .ok_or_else(|| BlobError::NotFound(key.to_string()))?;
        let meta = object.meta()?;
        let resolved = match range {
            Some(r) => Some(r.resolve(meta.size).ok_or(BlobError::RangeNotSatisfiable)?),
            None => None,
        };
        let mut req = self
            .http
            .get(self.object_url(key))
            .query(&[("alt", "media")]);
        if let Some(g) = &object.generation {
            req = req.query(&[("generation", g.as_str())]);
        }
        if let Some((start, len)) = resolved {
            req = req.header("range", format!("bytes={start}-{}", start + len - 1));
        }
        let r = self.send(req).await?;
        match r.status() {
            s if s.is_success() => {}
            // Replaced or deleted since it was looked up.
            StatusCode::NOT_FOUND => return Err(BlobError::NotFound(key.to_string())),
            StatusCode::RANGE_NOT_SATISFIABLE => return Err(BlobError::RangeNotSatisfiable),
            _ => return Err(unexpected("download", r).await),
        }
        let body: ByteStream = Box::pin(r.bytes_stream().map_err(std::io::Error::other));
        Ok(GetObject {
            meta,
            range: resolved,
            body,
        })
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, BlobError> {
        check_key(key)?;
        self.object(key).await?.map(|o| o.meta()).transpose()
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, BlobError> {
        let url = format!("{}/storage/v1/b/{}/o", self.base, enc(&self.bucket));
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        let mut more = true;
        let mut truncated = false;
        while more && objects.len() < limit {
            // `startOffset` is inclusive (the key equal to `start_after` is dropped below), and
            // one more object tells whether the listing goes on.
            let page = (limit - objects.len() + 2).min(MAX_PAGE).to_string();
            let mut req = self
                .http
                .get(&url)
                .query(&[("prefix", prefix), ("maxResults", page.as_str())]);
            if let Some(s) = start_after {
                req = req.query(&[("startOffset", s)]);
            }
            if let Some(t) = &token {
                req = req.query(&[("pageToken", t.as_str())]);
            }
            let r = self.send(req).await?;
            if !r.status().is_success() {
                return Err(unexpected("listing", r).await);
            }
            let got: Objects = r.json().await.map_err(transport)?;
            for o in got.items {
                if start_after.is_some_and(|s| o.name.as_str() <= s) || !o.name.starts_with(prefix)
                {
                    continue;
                }
                if objects.len() == limit {
                    truncated = true;
                    break;
                }
                objects.push(o.meta()?);
            }
            token = got.next_page_token;
            more = token.is_some();
        }
        let next_start_after = match truncated || (objects.len() == limit && more) {
            true => objects.last().map(|o: &ObjectMeta| o.key.clone()),
            false => None,
        };
        Ok(ListPage {
            objects,
            next_start_after,
        })
    }

    async fn copy(&self, from: &str, to: &str) -> Result<ObjectMeta, BlobError> {
        check_key(from)?;
        check_key(to)?;
        let src = self
            .object(from)
            .await?
            .ok_or_else(|| BlobError::NotFound(from.to_string()))?;
        // A copy is an object of its own here, not a sync copy: the origin is dropped.
        let resource = serde_json::json!({
            "contentType": src.content_type,
            "metadata": object::metadata(src.checksums().as_ref(), None, None),
        });
        self.rewrite(&self.bucket, from, to, Some(resource))
            .await?
            .meta()
    }

    async fn delete(&self, key: &str) -> Result<bool, BlobError> {
        check_key(key)?;
        let r = self.send(self.http.delete(self.object_url(key))).await?;
        match r.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(unexpected("delete", r).await),
        }
    }

    fn direct_url(&self, key: &str) -> Result<String, BlobError> {
        check_key(key)?;
        Ok(format!("gs://{}/{key}", self.bucket))
    }

    async fn download_url(
        &self,
        key: &str,
        ttl: Duration,
        content_disposition: Option<&str>,
    ) -> Result<String, BlobError> {
        check_key(key)?;
        let Some(signer) = self.auth.signer() else {
            return match *self.auth {
                // An emulator: objects are readable without credentials.
                Auth::Anonymous => Ok(format!(
                    "{}/download/storage/v1/b/{}/o/{}?alt=media",
                    self.base,
                    enc(&self.bucket),
                    enc(key)
                )),
                Auth::Google { .. } => Err(BlobError::Backend(
                    "these Google credentials cannot sign download URLs (use a service account)"
                        .into(),
                )),
            };
        };
        let host = self
            .base
            .split_once("://")
            .map_or(self.base.as_str(), |(_, h)| h)
            .to_string();
        let email = signer
            .client_email()
            .await
            .map_err(|e| BlobError::Backend(format!("signer: {e}")))?;
        let u = signed::prepare(
            &host,
            &self.bucket,
            key,
            &email,
            time::OffsetDateTime::now_utc(),
            ttl,
            content_disposition,
        );
        let signature: Bytes = signer
            .sign(u.string_to_sign.as_bytes())
            .await
            .map_err(|e| BlobError::Backend(format!("signing: {e}")))?;
        Ok(format!(
            "{}&X-Goog-Signature={}",
            u.url,
            hex::encode(signature)
        ))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
