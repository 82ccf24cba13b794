//! `upload_dir`, `download_bundle` against a real API server on a random port (the embedded
//! default): round trip, verification, and resuming after interruptions.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dss_api::auth::LocalIssuer;
use dss_client::download::{DownloadOptions, Ranges, download_bundle};
use dss_client::upload::{UploadOptions, upload_dir};
use dss_client::{ClientError, DssClient, Progress};
use dss_config::Config;
use dss_runtime::deployment::Deployment;

/// The largest upload the test server accepts.
const MAX_UPLOAD: u64 = 1_000_000;

struct Server {
    base: String,
    token: String,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let toml = format!(
        "data_dir = \"{}\"\n[api]\nlisten = \"{addr}\"\nmax_upload = {MAX_UPLOAD}\n",
        dir.path().display()
    );
    let cfg = Config::from_toml(&toml).unwrap();
    let local = LocalIssuer::load_or_create(&cfg.data_dir.join("keys")).unwrap();
    let token = local
        .mint("user@example.org", "dbio", false, 3600, &cfg.auth)
        .unwrap();
    let deployment = Deployment::open(cfg, dss_core::clock::system()).unwrap();
    let state = dss_api::state(deployment, Some(&local)).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(dss_api::serve(listener, state, async move {
        let _ = rx.await;
    }));
    Server {
        base: format!("http://{addr}/v1"),
        token,
        _dir: dir,
        _stop: tx,
    }
}

/// Counts what a transfer reports.
#[derive(Default)]
struct Tally {
    planned_bytes: AtomicU64,
    bytes: AtomicU64,
    files: AtomicU64,
}

impl Progress for Tally {
    fn planned(&self, _files: u64, bytes: u64) {
        self.planned_bytes.store(bytes, Ordering::Relaxed);
    }
    fn transferred(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    fn rewound(&self, bytes: u64) {
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
    }
    fn file_done(&self, _name: &str) {
        self.files.fetch_add(1, Ordering::Relaxed);
    }
}

fn tally() -> (Arc<Tally>, Arc<dyn Progress>) {
    let t = Arc::new(Tally::default());
    let p: Arc<dyn Progress> = t.clone();
    (t, p)
}

/// A directory of files: `(name, bytes)`.
fn tree(files: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, data) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    dir
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn upload_opts(state_dir: Option<&Path>) -> UploadOptions {
    UploadOptions {
        replica: "aws".into(),
        concurrency: 4,
        state_dir: state_dir.map(Path::to_path_buf),
        creator_uid: 7,
        staging: None,
        copy_timeout: std::time::Duration::from_secs(60),
    }
}

/// Downloads bundle `uuid` into `dir` with the default options, reporting nowhere.
async fn download(
    client: &DssClient,
    uuid: &str,
    dir: &Path,
) -> Result<dss_client::download::DownloadReport, ClientError> {
    download_bundle(client, uuid, dir, &download_opts(), &tally().1).await
}

fn download_opts() -> DownloadOptions {
    DownloadOptions {
        replica: "aws".into(),
        version: None,
        concurrency: 4,
        ranges: Ranges::default(),
        fsync: false,
    }
}

#[tokio::test]
async fn a_directory_uploads_as_one_bundle_and_downloads_byte_for_byte() {
    let s = start().await;
    let client = DssClient::new(&s.base, Some(s.token.clone())).unwrap();
    let files = [
        ("metadata.json", br#"{"donor": {"id": 1}}"#.to_vec()),
        ("reads/r1.fastq", bytes(300_000, 1)),
        ("reads/r2.fastq", bytes(200_001, 2)),
        ("empty.txt", Vec::new()),
        (".hidden", b"not uploaded".to_vec()),
    ];
    let src = tree(&files);
    let (up, progress) = tally();
    let report = upload_dir(&client, src.path(), &upload_opts(None), &progress)
        .await
        .unwrap();
    let names: Vec<&str> = report.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "empty.txt",
            "metadata.json",
            "reads/r1.fastq",
            "reads/r2.fastq"
        ]
    );
    let total: u64 = files[..4].iter().map(|(_, d)| d.len() as u64).sum();
    assert_eq!(report.bytes_sent, total);
    assert_eq!(up.bytes.load(Ordering::Relaxed), total);
    assert_eq!(up.files.load(Ordering::Relaxed), 4);

    let out = tempfile::tempdir().unwrap();
    let (down, progress) = tally();
    let got = download_bundle(
        &client,
        &report.bundle_uuid,
        out.path(),
        &download_opts(),
        &progress,
    )
    .await
    .unwrap();
    assert_eq!(got.version, report.version);
    assert_eq!(
        got.dir,
        out.path()
            .join(format!("{}.{}", report.bundle_uuid, report.version))
    );
    for (name, data) in &files[..4] {
        assert!(
            &std::fs::read(got.dir.join(name)).unwrap() == data,
            "{name}"
        );
    }
    assert!(!got.dir.join(".hidden").exists());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(got.dir.join("bundle.json")).unwrap()).unwrap();
    assert_eq!(manifest["bundle"]["uuid"], report.bundle_uuid.as_str());
    assert_eq!(
        manifest["bundle"]["files"].as_array().map(Vec::len),
        Some(4)
    );
    assert_eq!(
        got.manifest.as_deref(),
        Some(got.dir.join("bundle.json").as_path())
    );
    assert_eq!(got.bytes_received, total);
    assert_eq!(down.planned_bytes.load(Ordering::Relaxed), total);
    assert_eq!(down.bytes.load(Ordering::Relaxed), total);

    // Again: everything is there and verified, nothing is fetched.
    let again = download(&client, &report.bundle_uuid, out.path())
        .await
        .unwrap();
    assert_eq!(again.bytes_received, 0);
    assert!(again.files.iter().all(|f| f.already_present));

    // A damaged local copy is noticed and fetched again.
    std::fs::write(got.dir.join("reads/r1.fastq"), bytes(300_000, 9)).unwrap();
    let repaired = download(&client, &report.bundle_uuid, out.path())
        .await
        .unwrap();
    assert_eq!(repaired.bytes_received, 300_000);
    assert!(std::fs::read(got.dir.join("reads/r1.fastq")).unwrap() == files[1].1);
}

#[tokio::test]
async fn an_interrupted_download_resumes_from_its_part_file() {
    let s = start().await;
    let client = DssClient::new(&s.base, Some(s.token.clone())).unwrap();
    let data = bytes(400_000, 3);
    let src = tree(&[("big.bin", data.clone())]);
    let report = upload_dir(&client, src.path(), &upload_opts(None), &tally().1)
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let dir = out
        .path()
        .join(format!("{}.{}", report.bundle_uuid, report.version));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("big.bin.part"), &data[..150_000]).unwrap();
    let got = download(&client, &report.bundle_uuid, out.path())
        .await
        .unwrap();
    assert_eq!(
        got.bytes_received, 250_000,
        "only the missing range is fetched"
    );
    assert!(std::fs::read(dir.join("big.bin")).unwrap() == data);
    assert!(!dir.join("big.bin.part").exists());

    // A part file holding wrong bytes: the check fails, and one fresh try repairs it.
    std::fs::remove_file(dir.join("big.bin")).unwrap();
    std::fs::write(dir.join("big.bin.part"), bytes(150_000, 4)).unwrap();
    let got = download(&client, &report.bundle_uuid, out.path())
        .await
        .unwrap();
    assert_eq!(got.bytes_received, 250_000 + 400_000);
    assert!(std::fs::read(dir.join("big.bin")).unwrap() == data);
}

#[tokio::test]
async fn an_interrupted_upload_resumes_into_the_same_bundle_sending_only_what_is_missing() {
    let s = start().await;
    let client = DssClient::new(&s.base, Some(s.token.clone())).unwrap();
    let state = tempfile::tempdir().unwrap();
    let small = [("a.txt", bytes(1000, 5)), ("b.txt", bytes(2000, 6))];
    let src = tree(&[
        ("a.txt", small[0].1.clone()),
        ("b.txt", small[1].1.clone()),
        ("too-big.bin", bytes(MAX_UPLOAD as usize + 1, 7)),
    ]);
    let err = upload_dir(
        &client,
        src.path(),
        &upload_opts(Some(state.path())),
        &tally().1,
    )
    .await
    .unwrap_err();
    let ClientError::Partial { total, failures } = &err else {
        panic!("expected a partial failure, got {err}");
    };
    assert_eq!(*total, 3);
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, "too-big.bin");
    assert!(
        matches!(failures[0].1, ClientError::Api { status: 413, .. }),
        "{}",
        failures[0].1
    );
    assert_eq!(
        std::fs::read_dir(state.path()).unwrap().count(),
        1,
        "state kept"
    );

    // The user fixes the file and runs the same upload again.
    std::fs::write(src.path().join("too-big.bin"), bytes(5000, 8)).unwrap();
    let report = upload_dir(
        &client,
        src.path(),
        &upload_opts(Some(state.path())),
        &tally().1,
    )
    .await
    .unwrap();
    assert_eq!(report.bytes_sent, 5000, "only the missing file is sent");
    let resumed: Vec<(&str, bool)> = report
        .files
        .iter()
        .map(|f| (f.name.as_str(), f.resumed))
        .collect();
    assert_eq!(
        resumed,
        [("a.txt", true), ("b.txt", true), ("too-big.bin", false)]
    );
    assert_eq!(
        std::fs::read_dir(state.path()).unwrap().count(),
        0,
        "state removed once the bundle exists"
    );
    let out = tempfile::tempdir().unwrap();
    let got = download(&client, &report.bundle_uuid, out.path())
        .await
        .unwrap();
    assert!(std::fs::read(got.dir.join("a.txt")).unwrap() == small[0].1);
    assert!(std::fs::read(got.dir.join("too-big.bin")).unwrap() == bytes(5000, 8));
}

#[tokio::test]
async fn errors_name_the_cause_in_the_api_error_format() {
    let s = start().await;
    let src = tree(&[("a.txt", b"a".to_vec())]);
    let anonymous = DssClient::new(&s.base, None).unwrap();
    let err = upload_dir(&anonymous, src.path(), &upload_opts(None), &tally().1)
        .await
        .unwrap_err();
    let ClientError::Partial { failures, .. } = &err else {
        panic!("expected the file to fail, got {err}");
    };
    assert!(
        matches!(&failures[0].1, ClientError::Api { status: 401, .. }),
        "{}",
        failures[0].1
    );

    let missing = uuid::Uuid::new_v4().to_string();
    let err = download(&anonymous, &missing, tempfile::tempdir().unwrap().path())
        .await
        .unwrap_err();
    match err {
        ClientError::Api { status, code, .. } => {
            assert_eq!((status, code.as_str()), (404, "not_found"))
        }
        other => panic!("expected 404, got {other}"),
    }
    let err = download_bundle(
        &anonymous,
        "not-a-uuid",
        Path::new("."),
        &download_opts(),
        &tally().1,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ClientError::Invalid(_)), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = upload_dir(&anonymous, empty.path(), &upload_opts(None), &tally().1)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("holds no files"), "{err}");
    assert!(DssClient::new("ftp://example.org", None).is_err());
}

#[tokio::test]
async fn a_large_file_downloads_in_ranges_and_resumes_with_the_ranges_it_has() {
    const RANGE: usize = 64 * 1024;
    let s = start().await;
    let client = DssClient::new(&s.base, Some(s.token.clone())).unwrap();
    let data = bytes(900_000, 5);
    let src = tree(&[("big.bin", data.clone()), ("small.txt", b"small".to_vec())]);
    let report = upload_dir(&client, src.path(), &upload_opts(None), &tally().1)
        .await
        .unwrap();
    let opts = DownloadOptions {
        ranges: Ranges {
            size: RANGE as u64,
            streams: 3,
        },
        // Each file flushed to the disk (and its directory) before it takes its name.
        fsync: true,
        ..download_opts()
    };
    let out = tempfile::tempdir().unwrap();
    let dir = out
        .path()
        .join(format!("{}.{}", report.bundle_uuid, report.version));
    let (t, progress) = tally();
    let got = download_bundle(&client, &report.bundle_uuid, out.path(), &opts, &progress)
        .await
        .unwrap();
    assert_eq!(got.bytes_received, 900_005);
    assert_eq!(t.bytes.load(Ordering::Relaxed), 900_005, "progress adds up");
    assert!(std::fs::read(dir.join("big.bin")).unwrap() == data);
    assert!(!dir.join("big.bin.part").exists() && !dir.join("big.bin.part.ranges").exists());

    // Interrupted: ranges 0, 2 and 13 (the short last one) are in the part file and its ledger,
    // the others are holes. Only the others are fetched.
    std::fs::remove_file(dir.join("big.bin")).unwrap();
    let mut part = vec![0u8; data.len()];
    for i in [0, 2, 13] {
        let r = i * RANGE..((i + 1) * RANGE).min(data.len());
        part[r.clone()].copy_from_slice(&data[r]);
    }
    std::fs::write(dir.join("big.bin.part"), &part).unwrap();
    let ledger = format!(
        "dss ranges of {RANGE} bytes, file of {} bytes\n0\n2\n13\n",
        data.len()
    );
    std::fs::write(dir.join("big.bin.part.ranges"), &ledger).unwrap();
    let (t, progress) = tally();
    let got = download_bundle(&client, &report.bundle_uuid, out.path(), &opts, &progress)
        .await
        .unwrap();
    let kept = 2 * RANGE + (data.len() - 13 * RANGE);
    assert_eq!(got.bytes_received, (data.len() - kept) as u64);
    assert_eq!(t.bytes.load(Ordering::Relaxed), 900_005);
    assert!(std::fs::read(dir.join("big.bin")).unwrap() == data);

    // A part file written front to back (no ledger): its whole ranges are kept.
    std::fs::remove_file(dir.join("big.bin")).unwrap();
    std::fs::write(dir.join("big.bin.part"), &data[..150_000]).unwrap();
    let got = download_bundle(&client, &report.bundle_uuid, out.path(), &opts, &tally().1)
        .await
        .unwrap();
    assert_eq!(got.bytes_received, (data.len() - 2 * RANGE) as u64);
    assert!(std::fs::read(dir.join("big.bin")).unwrap() == data);

    // A ledger listing a range whose bytes are wrong: the check fails, and one fresh try
    // repairs it.
    std::fs::remove_file(dir.join("big.bin")).unwrap();
    std::fs::write(dir.join("big.bin.part"), vec![7u8; data.len()]).unwrap();
    std::fs::write(dir.join("big.bin.part.ranges"), &ledger).unwrap();
    let got = download_bundle(&client, &report.bundle_uuid, out.path(), &opts, &tally().1)
        .await
        .unwrap();
    assert_eq!(got.bytes_received, (2 * data.len() - kept) as u64);
    assert!(std::fs::read(dir.join("big.bin")).unwrap() == data);
    assert!(!dir.join("big.bin.part.ranges").exists());
}

/// A server that answers every bundle request with `bundle`, as a hostile server (or anyone on
/// a plain-HTTP path) could.
async fn hostile(bundle: serde_json::Value) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move || {
        let b = bundle.clone();
        async move {
            (
                [("x-openapi-paginated-content-key", "bundle.files")],
                axum::Json(b),
            )
        }
    });
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    (format!("http://{addr}/v1"), tx)
}

#[tokio::test]
async fn a_hostile_answer_cannot_make_the_download_write_outside_its_directory() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("downloads");
    std::fs::create_dir(&dir).unwrap();
    let uuid = "0b8f2e1c-5f66-4a5c-9a6b-6d2d2a7b3c11";
    let file = |name: &str, file_uuid: &str, version: &str| {
        serde_json::json!({"name": name, "uuid": file_uuid, "version": version, "size": 1,
            "sha256": "00", "crc32c": "00000000"})
    };
    let good_file = file("a.json", uuid, "2020-01-01T000000.000000Z");
    for bundle in [
        serde_json::json!({"version": "../../escaped", "files": []}),
        serde_json::json!({"version": "/tmp/escaped", "files": []}),
        serde_json::json!({"version": "2020-01-01T000000.000000Z/../../x", "files": []}),
        serde_json::json!({"version": "2020-01-01T000000.000000Z",
            "files": [file("../../escaped", uuid, "2020-01-01T000000.000000Z")]}),
        serde_json::json!({"version": "2020-01-01T000000.000000Z",
            "files": [file("a.json", "../../../admin", "2020-01-01T000000.000000Z")]}),
        serde_json::json!({"version": "2020-01-01T000000.000000Z",
            "files": [file("a.json", uuid, "1&replica=gcp")]}),
    ] {
        let (base, _stop) = hostile(serde_json::json!({"bundle": bundle.clone()})).await;
        let client = DssClient::new(&base, None).unwrap();
        let got = download(&client, uuid, &dir).await;
        assert!(
            matches!(got, Err(ClientError::Invalid(_))),
            "{bundle}: {got:?}"
        );
        let entries: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
        assert_eq!(entries.len(), 1, "{bundle}: only the download directory");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "{bundle}");
    }
    // A version other than the one asked for is refused too.
    let (base, _stop) = hostile(serde_json::json!({"bundle":
        {"version": "2020-01-01T000000.000000Z", "files": [good_file]}}))
    .await;
    let client = DssClient::new(&base, None).unwrap();
    let opts = DownloadOptions {
        version: Some("2021-01-01T000000.000000Z".into()),
        ..download_opts()
    };
    let got = download_bundle(&client, uuid, &dir, &opts, &tally().1).await;
    assert!(matches!(got, Err(ClientError::Invalid(_))), "{got:?}");
}
