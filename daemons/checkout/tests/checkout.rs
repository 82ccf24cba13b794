//! The checkout daemon on a real embedded deployment: jobs queued as the API queues them, files
//! copied into local buckets, statuses and e-mails written.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use dss_config::Config;
use dss_core::checksum::checksums_of;
use dss_core::clock::ManualClock;
use dss_core::names::{CHECKOUT_MAIL_QUEUE, CHECKOUT_QUEUE};
use dss_core::ports::{BlobStore, Mail, MailError, Mailer, PutOptions};
use dss_embedded::FileMailer;
use dss_runtime::checkout::{
    CheckoutJob, CheckoutStatus, FileCheckout, Job, JobState, file_key, read_status, status_key,
    submit,
};
use dss_runtime::deployment::Deployment;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const B1: &str = "11111111-1111-4111-8111-111111111111";
const V1: &str = "2020-01-01T000000.000000Z";

struct Env {
    dir: tempfile::TempDir,
    d: Deployment,
    stop: CancellationToken,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn config(dir: &std::path::Path) -> Config {
    Config::from_toml(&format!(
        "data_dir = \"{}\"\n[checkout]\nprogress_every_ms = 50\n[mail]\nretry_secs = 1",
        dir.display()
    ))
    .unwrap()
}

async fn start_with(mailer: Option<Arc<dyn Mailer>>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Deployment::open(config(dir.path()), dss_core::clock::system()).unwrap();
    if let Some(m) = mailer {
        d.mailer = m;
    }
    let stop = CancellationToken::new();
    let (dep, token) = (d.clone(), stop.clone());
    tokio::spawn(async move { dss_checkout::run(&dep, token).await });
    d.declare_queues().await.unwrap();
    Env { dir, d, stop }
}

async fn start() -> Env {
    start_with(None).await
}

/// Deterministic bytes.
fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

impl Env {
    fn store(&self) -> Arc<dyn BlobStore> {
        self.d.replicas["aws"].store.clone()
    }

    fn checkout_bucket(&self) -> Arc<dyn BlobStore> {
        self.d.replicas["aws"].checkout.clone()
    }

    /// Writes blobs and the manifest of a bundle; `files` are (name, bytes).
    async fn bundle(&self, uuid: &str, version: &str, files: &[(&str, Vec<u8>)]) {
        let mut entries = Vec::new();
        for (i, (name, bytes)) in files.iter().enumerate() {
            let c = checksums_of(bytes);
            self.store()
                .put_bytes(
                    &format!("blobs/{}.{}.{}.{}", c.sha256, c.sha1, c.s3_etag, c.crc32c),
                    Bytes::from(bytes.clone()),
                    PutOptions::default(),
                )
                .await
                .unwrap();
            entries.push(
                json!({"name": name, "uuid": format!("00000000-0000-4000-8000-{i:012}"),
                "version": version, "content-type": "application/json", "size": bytes.len(),
                "indexed": false, "crc32c": c.crc32c, "s3-etag": c.s3_etag, "sha1": c.sha1,
                "sha256": c.sha256}),
            );
        }
        let manifest =
            json!({"format": "0.0.1", "version": version, "files": entries, "creator_uid": 1});
        self.store()
            .put_bytes(
                &format!("bundles/{uuid}.{version}"),
                Bytes::from(manifest.to_string()),
                PutOptions::default(),
            )
            .await
            .unwrap();
    }

    /// Queues a job as the API does; returns its id.
    async fn submit(&self, destination: &str, email: Option<&str>) -> String {
        let job = CheckoutJob {
            job_id: uuid::Uuid::new_v4().to_string(),
            replica: "aws".into(),
            bundle: B1.into(),
            version: V1.into(),
            destination: destination.into(),
            email: email.map(str::to_string),
        };
        let id = job.job_id.clone();
        let queue = self.d.queue(CHECKOUT_QUEUE).await.unwrap();
        submit(&*self.checkout_bucket(), &*queue, &Job::Bundle(job))
            .await
            .unwrap();
        id
    }

    async fn ended(&self, job: &str) -> CheckoutStatus {
        for _ in 0..3000 {
            let s = read_status(&*self.checkout_bucket(), job)
                .await
                .unwrap()
                .expect("status exists from the start");
            if s.is_final() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("job {job} did not end");
    }

    /// The e-mails written by the file mailer.
    fn mails(&self) -> Vec<Value> {
        let dir = self.dir.path().join("mail");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
            .collect()
    }

    async fn mail_for(&self, to: &str) -> Value {
        for _ in 0..3000 {
            if let Some(m) = self.mails().into_iter().find(|m| m["to"] == to) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no e-mail to {to}");
    }

    /// Keys under `prefix` of a bucket.
    async fn keys(&self, store: &dyn BlobStore, prefix: &str) -> Vec<String> {
        store
            .list(prefix, None, 10_000)
            .await
            .unwrap()
            .objects
            .into_iter()
            .map(|o| o.key)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_is_checked_out_verified_and_mailed() {
    let env = start().await;
    let files = [
        ("a.json", data(10, 1)),
        ("dir/b.bin", data(300_000, 2)),
        ("dir/sub/c.txt", data(0, 3)),
    ];
    env.bundle(B1, V1, &files).await;
    let job = env.submit("aws-checkout", Some("user@example.org")).await;
    let s = env.ended(&job).await;
    assert_eq!(s.status, JobState::Succeeded, "{s:?}");
    let dest = env.checkout_bucket();
    let location = s.location.clone().unwrap();
    assert!(
        location.starts_with("file://")
            && location.ends_with(&format!("aws-checkout/bundles/{B1}.{V1}")),
        "{location}"
    );
    assert_eq!((s.files_done, s.files_total), (Some(3), Some(3)));
    assert_eq!(s.bytes_done, Some(300_010));
    for (name, bytes) in &files {
        let key = file_key(B1, V1, name);
        assert_eq!(
            dest.get_bytes(&key).await.unwrap(),
            Bytes::from(bytes.clone()),
            "{key}"
        );
        let meta = dest.head(&key).await.unwrap().unwrap();
        assert_eq!(meta.checksums, Some(checksums_of(bytes)), "{key} recorded");
        assert_eq!(meta.content_type, "application/json");
    }
    assert!(
        env.keys(&*dest, "touch/").await.is_empty(),
        "the write test object is removed"
    );
    let mail = env.mail_for("user@example.org").await;
    assert_eq!(mail["subject"], "Bundle checkout complete");
    assert_eq!(mail["from"], "dss@localhost");
    let text = mail["text"].as_str().unwrap();
    assert!(
        text.contains("Your files are available at bucket aws-checkout")
            && text.contains(&format!("location bundles/{B1}.{V1}"))
            && text.contains(&location),
        "{text}"
    );
    assert!(mail["html"].as_str().unwrap().contains(&location));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_bucket_receives_the_files_and_main_buckets_never_do() {
    let env = start().await;
    env.bundle(B1, V1, &[("x.json", data(100, 4))]).await;
    std::fs::create_dir_all(env.dir.path().join("buckets/my-results")).unwrap();
    let job = env.submit("my-results", None).await;
    assert_eq!(env.ended(&job).await.status, JobState::Succeeded);
    let dest = env.d.replicas["aws"]
        .buckets
        .open("my-results")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        dest.get_bytes(&file_key(B1, V1, "x.json")).await.unwrap(),
        Bytes::from(data(100, 4))
    );

    for main in ["aws", "gcp"] {
        let job = env.submit(main, None).await;
        let s = env.ended(&job).await;
        assert_eq!(s.status, JobState::Failed);
        assert!(s.cause.unwrap().contains("cannot receive checkouts"));
    }
    assert!(
        env.keys(&*env.store(), &format!("bundles/{B1}.{V1}/"))
            .await
            .is_empty(),
        "nothing written into the main bucket"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_destination_fails_the_job_and_mails_the_cause() {
    let env = start().await;
    env.bundle(B1, V1, &[("x.json", data(100, 4))]).await;
    let job = env.submit("no-such-bucket", Some("who@example.org")).await;
    let s = env.ended(&job).await;
    assert_eq!(
        s,
        CheckoutStatus::failed("Bucket no-such-bucket doesn't exist (FAILED)".into())
    );
    let mail = env.mail_for("who@example.org").await;
    assert_eq!(mail["subject"], "Bundle checkout failed");
    assert_eq!(
        mail["text"].as_str().unwrap().trim(),
        "Hello, your checkout request has failed due to Bucket no-such-bucket doesn't exist (FAILED)."
    );
    assert!(
        !env.dir.path().join("buckets/no-such-bucket").exists(),
        "the job does not create buckets"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tombstoned_or_absent_bundle_fails() {
    let env = start().await;
    let job = env.submit("aws-checkout", None).await;
    assert_eq!(
        env.ended(&job).await.cause.as_deref(),
        Some(format!("Bundle {B1}.{V1} does not exist (FAILED)").as_str())
    );
    env.bundle(B1, V1, &[("x.json", data(100, 4))]).await;
    env.store()
        .put_bytes(
            &format!("bundles/{B1}.{V1}.dead"),
            Bytes::from_static(b"{}"),
            PutOptions::default(),
        )
        .await
        .unwrap();
    let job = env.submit("aws-checkout", None).await;
    assert_eq!(env.ended(&job).await.status, JobState::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_names_that_would_leave_the_bundle_prefix_are_refused() {
    let env = start().await;
    std::fs::create_dir_all(env.dir.path().join("buckets/out")).unwrap();
    for bad in [
        "../escape.json",
        "a/../../b",
        "/etc/passwd",
        "ctl\u{1}x",
        "",
        "a/./b",
    ] {
        env.bundle(B1, V1, &[("fine.json", data(5, 1)), (bad, data(5, 2))])
            .await;
        let job = env.submit("out", None).await;
        let s = env.ended(&job).await;
        assert_eq!(s.status, JobState::Failed, "{bad:?}");
        assert!(
            s.cause.as_deref().unwrap().contains("cannot be a path"),
            "{bad:?}: {s:?}"
        );
    }
    let out = env.d.replicas["aws"]
        .buckets
        .open("out")
        .await
        .unwrap()
        .unwrap();
    assert!(
        env.keys(&*out, "").await.is_empty(),
        "nothing was written for a refused manifest"
    );
    // Nothing appeared next to the buckets either.
    let mut names: Vec<String> = std::fs::read_dir(env.dir.path().join("buckets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["aws", "aws-checkout", "gcp", "gcp-checkout", "out"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_job_does_not_copy_finished_files_again() {
    let env = start().await;
    let files: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("f{i:02}.bin"), data(50_000 + i, i as u8)))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
    env.bundle(B1, V1, &refs).await;
    // A job that died after copying the first 8 files left them verified in the destination;
    // one more was copied with the wrong bytes (by someone else).
    let dest = env.checkout_bucket();
    let mut before = Vec::new();
    for (name, bytes) in files.iter().take(8) {
        let key = file_key(B1, V1, name);
        dest.put_bytes(&key, Bytes::from(bytes.clone()), PutOptions::default())
            .await
            .unwrap();
        let created = dest.head(&key).await.unwrap().unwrap().created;
        before.push((key, created));
    }
    let wrong = file_key(B1, V1, &files[8].0);
    dest.put_bytes(&wrong, Bytes::from_static(b"not it"), PutOptions::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let job = env.submit("aws-checkout", None).await;
    assert_eq!(env.ended(&job).await.status, JobState::Succeeded);
    for (key, created) in before {
        assert_eq!(
            dest.head(&key).await.unwrap().unwrap().created,
            created,
            "{key} was copied again"
        );
    }
    assert_eq!(
        dest.get_bytes(&wrong).await.unwrap(),
        Bytes::from(files[8].1.clone()),
        "a file with other bytes is replaced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_job_redelivered_is_left_alone() {
    let env = start().await;
    env.bundle(B1, V1, &[("x.json", data(100, 4))]).await;
    let job = env.submit("no-such-bucket", None).await;
    let first = env.ended(&job).await;
    // The same job again (a redelivered message): the final status stays as it was.
    std::fs::create_dir_all(env.dir.path().join("buckets/no-such-bucket")).unwrap();
    let msg = json!({"kind": "bundle", "job_id": job, "replica": "aws", "bundle": B1, "version": V1, "destination": "no-such-bucket"});
    env.d
        .queue(CHECKOUT_QUEUE)
        .await
        .unwrap()
        .send(&msg.to_string(), Duration::ZERO)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        read_status(&*env.checkout_bucket(), &job).await.unwrap(),
        Some(first)
    );
    assert!(
        env.checkout_bucket()
            .head(&status_key(&job))
            .await
            .unwrap()
            .is_some()
    );
}

/// A mailer whose first sends fail as a server that is down would.
#[derive(Debug)]
struct Flaky {
    inner: FileMailer,
    failures_left: AtomicU32,
}

#[async_trait]
impl Mailer for Flaky {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        if self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(MailError::Transport("connection refused".into()));
        }
        self.inner.send(mail).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_mail_server_delays_the_mail_but_never_the_status() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Arc::new(Flaky {
        inner: FileMailer::new(
            &dir.path().join("mail"),
            "dss@localhost",
            dss_core::clock::system(),
        ),
        failures_left: AtomicU32::new(2),
    });
    let env = start_with(Some(flaky.clone())).await;
    env.bundle(B1, V1, &[("x.json", data(100, 4))]).await;
    let job = env.submit("aws-checkout", Some("late@example.org")).await;
    assert_eq!(env.ended(&job).await.status, JobState::Succeeded);
    // Two failed attempts (retried after ~1 s and ~2 s), then the e-mail goes out once.
    let inbox = dir.path().join("mail");
    let mut sent = 0;
    for _ in 0..3000 {
        sent = std::fs::read_dir(&inbox).map(|d| d.count()).unwrap_or(0);
        if sent > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sent, 1, "the e-mail was sent after the server recovered");
    assert_eq!(flaky.failures_left.load(Ordering::SeqCst), 0);
    let mail_queue = env.d.queue(CHECKOUT_MAIL_QUEUE).await.unwrap();
    for _ in 0..3000 {
        if mail_queue.stats().await.unwrap().depth() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mail_queue.stats().await.unwrap().depth(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_checkout_copies_one_blob_under_its_own_key() {
    let env = start().await;
    let bytes = data(70_000, 7);
    env.bundle(B1, V1, &[("x.bin", bytes.clone())]).await;
    let c = checksums_of(&bytes);
    let blob = format!("blobs/{}.{}.{}.{}", c.sha256, c.sha1, c.s3_etag, c.crc32c);
    let job = Job::File(FileCheckout {
        job_id: uuid::Uuid::new_v4().to_string(),
        replica: "aws".into(),
        blob: blob.clone(),
        size: bytes.len() as u64,
        content_type: "application/octet-stream".into(),
    });
    let queue = env.d.queue(CHECKOUT_QUEUE).await.unwrap();
    submit(&*env.checkout_bucket(), &*queue, &job)
        .await
        .unwrap();
    let s = env.ended(job.id()).await;
    assert_eq!(s.status, JobState::Succeeded, "{s:?}");
    assert_eq!((s.bytes_done, s.bytes_total), (Some(70_000), Some(70_000)));
    assert_eq!(
        env.checkout_bucket().get_bytes(&blob).await.unwrap(),
        Bytes::from(bytes)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_copies_are_swept_and_cached_files_kept() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::starting_at(time::OffsetDateTime::now_utc()));
    let cfg = Config::from_toml(&format!(
        "data_dir = \"{}\"\n[api]\ndownload_url_ttl_secs = 10\n[checkout]\nblob_ttl_secs = 100\nblob_public_ttl_secs = 50",
        dir.path().display()
    ))
    .unwrap();
    let d = Deployment::open(cfg, clock.clone()).unwrap();
    let bucket = d.replicas["aws"].checkout.clone();
    let put = |key: &'static str, ctype: &'static str, len: usize| {
        let bucket = bucket.clone();
        async move {
            let opts = PutOptions {
                content_type: Some(ctype.into()),
                ..Default::default()
            };
            bucket
                .put_bytes(key, Bytes::from(data(len, 1)), opts)
                .await
                .unwrap();
        }
    };
    put("blobs/old-big", "application/octet-stream", 100).await;
    put("blobs/old-json", "application/json; dcp-type=data", 100).await;
    put("blobs/big-json", "application/json", 20_000).await;
    put("bundles/u.v/a.bin", "application/octet-stream", 10).await;
    put("checkout/status/j.json", "application/json", 10).await;
    put(
        "checkout/pending/blobs/x.json",
        "application/octet-stream",
        36,
    )
    .await;
    clock.advance(Duration::from_secs(60));
    put("blobs/new", "application/octet-stream", 100).await;
    assert_eq!(
        dss_checkout::sweep::sweep_once(&d).await.unwrap(),
        0,
        "nothing expired yet"
    );
    clock.advance(Duration::from_secs(41));
    assert_eq!(dss_checkout::sweep::sweep_once(&d).await.unwrap(), 4);
    let left: Vec<String> = bucket
        .list("", None, 100)
        .await
        .unwrap()
        .objects
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(
        left,
        ["blobs/new", "blobs/old-json", "checkout/status/j.json"],
        "copies of cached files (JSON up to 12,314 bytes) and statuses stay"
    );
}
