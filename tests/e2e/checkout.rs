//! Bundle checkout end to end: e-mail through a real SMTP server from `dss up`, and a checkout
//! daemon process killed with SIGKILL mid-job whose successor finishes the job without copying
//! finished files again.

use std::time::Duration;

use mailparse::MailHeaderMap;
use serde_json::{Value, json};

use crate::harness::Dss;

const V: &str = "2026-05-06T070809.101112Z";

/// Starts a checkout of `bundle` from replica `aws` with `body`; its job id.
pub(crate) async fn post_checkout(dss: &Dss, bundle: &str, body: Value) -> String {
    let r = dss
        .http
        .post(format!(
            "{}/v1/bundles/{bundle}/checkout?replica=aws",
            dss.base
        ))
        .bearer_auth(&dss.token)
        .json(&body)
        .send()
        .await
        .expect("post checkout");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    v["checkout_job_id"].as_str().expect("job id").to_string()
}

async fn status(http: &reqwest::Client, base: &str, job: &str) -> Value {
    http.get(format!("{base}/v1/bundles/checkout/{job}?replica=aws"))
        .send()
        .await
        .expect("get status")
        .json()
        .await
        .expect("json")
}

async fn ended(http: &reqwest::Client, base: &str, job: &str) -> Value {
    for _ in 0..3000 {
        let s = status(http, base, job).await;
        if s["status"] != "RUNNING" {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("checkout {job} did not end");
}

/// The messages in the SMTP sink's Maildir: (to, subject, text part).
fn maildir(dir: &str) -> Vec<(String, String, String)> {
    let Ok(entries) = std::fs::read_dir(std::path::Path::new(dir).join("new")) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|raw| {
            let m = mailparse::parse_mail(&raw).ok()?;
            let text = m
                .subparts
                .iter()
                .find(|p| p.ctype.mimetype == "text/plain")
                .and_then(|p| p.get_body().ok())
                .unwrap_or_default();
            Some((
                m.headers.get_first_value("To").unwrap_or_default(),
                m.headers.get_first_value("Subject").unwrap_or_default(),
                text,
            ))
        })
        .collect()
}

async fn mail_to(dir: &str, to: &str) -> (String, String) {
    for _ in 0..3000 {
        if let Some((_, subject, text)) = maildir(dir).into_iter().find(|(t, _, _)| t.contains(to))
        {
            return (subject, text);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no e-mail to {to} in {dir}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an SMTP server writing a Maildir; run by infra/local/test.sh"]
async fn checkout_e_mail_arrives_through_smtp() {
    let port = std::env::var("DSS_TEST_SMTP_PORT").expect("DSS_TEST_SMTP_PORT");
    let maildir_path = std::env::var("DSS_TEST_MAILDIR").expect("DSS_TEST_MAILDIR");
    let dss = Dss::up_with(&[
        ("DSS_MAIL__SMTP_HOST", "127.0.0.1".into()),
        ("DSS_MAIL__SMTP_PORT", port),
        ("DSS_MAIL__SMTP_SECURITY", "none".into()),
        ("DSS_MAIL__SENDER", "dss-e2e@example.org".into()),
        (
            "DSS_CHECKOUT__ALLOWED_DESTINATIONS",
            "no-such-bucket".into(),
        ),
    ])
    .await;
    let file = dss
        .upload(V, b"{\"a\": 1}".to_vec(), "application/json")
        .await;
    let bundle = dss.bundle(V, &[(file, "a.json".into())]).await;
    let tag = uuid::Uuid::new_v4().simple().to_string();

    let ok_to = format!("ok-{tag}@example.org");
    let job = post_checkout(&dss, &bundle, json!({"email": ok_to})).await;
    let done = ended(&dss.http, &dss.base, &job).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    let (subject, text) = mail_to(&maildir_path, &ok_to).await;
    assert_eq!(subject, "Bundle checkout complete");
    assert!(
        text.contains("your checkout request has been processed")
            && text.contains(done["location"].as_str().expect("location")),
        "{text}"
    );

    let bad_to = format!("bad-{tag}@example.org");
    let job = post_checkout(
        &dss,
        &bundle,
        json!({"email": bad_to, "destination": "no-such-bucket"}),
    )
    .await;
    let failed = ended(&dss.http, &dss.base, &job).await;
    assert_eq!(failed["status"], "FAILED");
    let (subject, text) = mail_to(&maildir_path, &bad_to).await;
    assert_eq!(subject, "Bundle checkout failed");
    assert_eq!(
        text.trim(),
        "Hello, your checkout request has failed due to Bucket no-such-bucket doesn't exist (FAILED)."
    );
}

fn checkout_env() -> Vec<(&'static str, String)> {
    vec![
        // A job abandoned by a killed process is taken over after 2 s.
        ("DSS_CHECKOUT__VISIBILITY_SECS", "2".into()),
        ("DSS_CHECKOUT__CONCURRENCY", "1".into()),
        ("DSS_CHECKOUT__PROGRESS_EVERY_MS", "10".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_killed_mid_job_resumes_without_copying_finished_files_again() {
    use std::os::unix::fs::MetadataExt;
    let dss = Dss::up_with(&checkout_env()).await;
    let content = |i: u8| -> Vec<u8> {
        (0..8 * 1024 * 1024u32)
            .map(|j| (j as u8).wrapping_mul(7).wrapping_add(i))
            .collect()
    };
    let mut refs = Vec::new();
    for i in 0..16u8 {
        let f = dss.upload(V, content(i), "application/octet-stream").await;
        refs.push((f, format!("part-{i:02}.bin")));
    }
    let bundle = dss.bundle(V, &refs).await;
    let job = post_checkout(&dss, &bundle, json!({})).await;
    // Kill the process while the copy is under way, after some files are done.
    let mut done_before = 0;
    for _ in 0..30000 {
        let s = status(&dss.http, &dss.base, &job).await;
        assert_eq!(
            s["status"], "RUNNING",
            "the job ended before it could be killed: {s}"
        );
        done_before = s["files_done"].as_u64().unwrap_or(0);
        if done_before >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(done_before >= 2, "no progress seen");
    let dir = dss.kill9();
    let prefix = dir
        .path()
        .join(format!("data/buckets/aws-checkout/bundles/{bundle}.{V}"));
    let path = |name: &str| prefix.join(format!("{name}="));
    let inode = |name: &str| std::fs::metadata(path(name)).ok().map(|m| m.ino());
    // Finished at the kill: the copies the checkout bucket records (a file being copied is
    // already at its path, unrecorded).
    let checkout = crate::harness::open_data(&dir.path().join("data")).replicas["aws"]
        .checkout
        .clone();
    let mut finished: Vec<(String, Option<u64>)> = Vec::new();
    for (_, n) in &refs {
        let key = format!("bundles/{bundle}.{V}/{n}");
        if checkout.head(&key).await.expect("head").is_some() {
            finished.push((n.clone(), inode(n)));
        }
    }
    assert!(
        finished.len() >= 2 && finished.len() < refs.len(),
        "{} of {} files were recorded at the kill",
        finished.len(),
        refs.len()
    );
    assert!(
        finished.iter().all(|(_, ino)| ino.is_some()),
        "{finished:?}"
    );

    let dss = Dss::up_in_with(dir, &checkout_env()).await;
    let s = ended(&dss.http, &dss.base, &job).await;
    assert_eq!(s["status"], "SUCCEEDED", "{s}");
    assert_eq!(s["files_done"], 16);
    for (name, ino) in &finished {
        assert_eq!(&inode(name), ino, "{name} was copied again");
    }
    for (i, (_, name)) in refs.iter().enumerate() {
        let bytes = std::fs::read(path(name)).expect("checked-out file");
        assert!(bytes == content(i as u8), "{name} holds the file's bytes");
    }
}
