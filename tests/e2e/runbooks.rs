//! The runbooks and the README name only `dss` commands that exist: every `dss …` in their code
//! spans and blocks is run with `--help`, which fails on an unknown subcommand.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The documents operators follow.
fn documents() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("runbooks"))
        .expect("runbooks/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.push(root.join("README.md"));
    docs.sort();
    docs
}

/// The code in a Markdown text: inline spans and fenced blocks.
fn code_of(text: &str) -> Vec<String> {
    let mut code = Vec::new();
    let mut block: Option<String> = None;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            match block.take() {
                Some(b) => code.push(b),
                None => block = Some(String::new()),
            }
            continue;
        }
        if let Some(b) = block.as_mut() {
            b.push_str(line);
            b.push('\n');
            continue;
        }
        code.extend(line.split('`').skip(1).step_by(2).map(str::to_string));
    }
    code
}

/// The subcommand words of each `dss` command line in `code` (not `hca dss …`, `dbio dss …`).
fn commands(code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let tokens: Vec<&str> = code.split_whitespace().collect();
    for (i, t) in tokens.iter().enumerate() {
        let t = t.trim_start_matches(['(', '$']);
        if t != "dss" || (i > 0 && ["hca", "dbio", "hca-venv/bin/hca"].contains(&tokens[i - 1])) {
            continue;
        }
        let words: Vec<String> = tokens[i + 1..]
            .iter()
            .take_while(|w| {
                !w.is_empty()
                    && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
                    && !w.starts_with('-')
            })
            .map(|w| w.to_string())
            .collect();
        if !words.is_empty() {
            found.push(words);
        }
    }
    found
}

#[test]
fn every_dss_command_the_runbooks_name_exists() {
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).expect("read");
        for code in code_of(&text) {
            for words in commands(&code) {
                let out = Command::new(env!("CARGO_BIN_EXE_dss"))
                    .args(&words)
                    .arg("--help")
                    .output()
                    .expect("run dss");
                assert!(
                    out.status.success(),
                    "{}: `dss {}` is not a command: {}",
                    doc.display(),
                    words.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 20, "only {checked} commands found");
}

#[test]
fn commands_are_read_from_code_only() {
    assert_eq!(
        commands("dss ops dlq show index --limit 5 | dss up"),
        [vec!["ops", "dlq", "show", "index"], vec!["up"]]
    );
    assert!(commands("hca dss upload --src-dir x").is_empty());
    assert_eq!(
        code_of("a `dss up` b\n```\ndss queues\n```\n"),
        ["dss up", "dss queues\n"]
    );
}

/// The root of the repository.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_deployment_guides_configuration_is_valid() {
    let text = std::fs::read_to_string(root().join("runbooks/deploy.md")).expect("deploy.md");
    let toml = text
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("deploy.md has a TOML block");
    let cfg = dss_config::Config::from_toml(toml)
        .unwrap_or_else(|e| panic!("the configuration in deploy.md is refused: {e}"));
    assert_eq!(cfg.replicas.len(), 2);
}

/// The alerts of the rules file: (name, runbook path) in order.
fn alerts(rules: &str) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = Vec::new();
    for line in rules.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("- alert: ") {
            found.push((name.to_string(), String::new()));
        } else if let Some(page) = line.strip_prefix("runbook: ") {
            let last = found
                .last_mut()
                .expect("a runbook annotation inside an alert");
            last.1 = page.to_string();
        }
    }
    found
}

#[tokio::test]
async fn every_alert_has_its_runbook_page_and_watches_metrics_the_processes_export() {
    let rules =
        std::fs::read_to_string(root().join("infra/alerts/dss.rules.yml")).expect("rules file");
    let alerts = alerts(&rules);
    assert!(alerts.len() >= 8, "{alerts:?}");
    for (name, page) in &alerts {
        assert!(!page.is_empty(), "{name} has no runbook annotation");
        let text = std::fs::read_to_string(root().join(page))
            .unwrap_or_else(|e| panic!("{name}: runbook {page}: {e}"));
        assert!(
            text.starts_with(&format!("# Alert: {name}\n")),
            "{page} is not the page of {name}"
        );
        let index = std::fs::read_to_string(root().join("runbooks/README.md")).expect("index");
        let file = page.trim_start_matches("runbooks/");
        assert!(
            index.contains(file),
            "runbooks/README.md does not list {file}"
        );
    }
    let names: std::collections::BTreeSet<String> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("dss_"))
        .map(|w| {
            ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| w.strip_suffix(s))
                .unwrap_or(w)
                .to_string()
        })
        .collect();
    assert!(names.len() >= 8, "{names:?}");
    let dss = crate::harness::Dss::up().await;
    // The daemons register their families as they start, just after the API answers.
    let mut missing = Vec::new();
    for _ in 0..600 {
        let metrics = dss.metrics().await;
        missing = names
            .iter()
            .filter(|n| !metrics.contains(&format!("# TYPE {n} ")))
            .cloned()
            .collect();
        if missing.is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the rules watch {missing:?}, which `dss up` does not export");
}
