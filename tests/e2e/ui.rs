//! Swagger UI at `/v1/ui/` in a real browser: headless Chromium (Debian's `chromium`) driven by
//! playwright-core, which `infra/local/install-test-tools.sh` installs into `.tools/playwright`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::harness::Dss;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and playwright-core; run by infra/local/test.sh"]
async fn swagger_ui_renders_the_operations_and_tries_one_out() {
    let dss = Dss::up().await;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let module = root.join(".tools/playwright/node_modules/playwright-core");
    assert!(
        module.exists(),
        "playwright-core is not installed: run infra/local/install-test-tools.sh"
    );
    let script = root.join("tests/e2e/swagger_ui.cjs");
    let base = dss.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(base)
            .env("PLAYWRIGHT_CORE", module)
            .output()
            .expect("node")
    })
    .await
    .expect("browser");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    // /v1/ui redirects to the page, whose assets are relative to /v1/ui/.
    assert_eq!(v["url"], format!("{}/v1/ui/", dss.base), "{v}");
    assert!(v["operations"].as_u64().unwrap_or(0) >= 20, "{v}");
    assert_eq!(v["status"], "200", "{v}");
    assert_eq!(v["errors"], serde_json::json!([]), "{v}");
}
