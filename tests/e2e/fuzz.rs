//! schemathesis fuzzes `dss up` against the API document it serves: generated requests for every
//! operation (valid and invalid), answered without a 5xx and as the document says (status codes,
//! content types, headers, bodies). Bounded: 20 cases per operation and phase, a fixed seed
//! (`DSS_TEST_FUZZ_SEED` picks another).
//!
//! Needs schemathesis: `infra/local/test.sh` installs it into `.tools/` and runs this test
//! (ignored by a plain `cargo test`); `DSS_TEST_SCHEMATHESIS` may point elsewhere.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::Dss;

fn schemathesis() -> PathBuf {
    if let Ok(p) = std::env::var("DSS_TEST_SCHEMATHESIS") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/st-venv/bin/schemathesis");
    assert!(
        p.exists(),
        "schemathesis is not installed: run infra/local/test.sh (or set DSS_TEST_SCHEMATHESIS)"
    );
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs schemathesis; run by infra/local/test.sh"]
async fn the_api_answers_fuzzed_requests_as_its_document_says() {
    let dss = Dss::up().await;
    let seed = std::env::var("DSS_TEST_FUZZ_SEED").unwrap_or_else(|_| "20261202".into());
    let out = Command::new(schemathesis())
        .arg("run")
        .arg(format!("{}/v1/swagger.json", dss.base))
        .args(["--url", &format!("{}/v1", dss.base)])
        .args(["-H", &format!("Authorization: Bearer {}", dss.token)])
        .args(["--max-examples", "20", "--seed", &seed])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
        ])
        .arg("--no-color")
        // It keeps its databases in the working directory.
        .current_dir(dss.dir.path())
        .output()
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures (seed {seed}):\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The summary's "N generated, N passed" line.
    let generated = report
        .lines()
        .find(|l| l.contains(" generated, "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(generated >= 500, "too few cases ran:\n{report}");
}
