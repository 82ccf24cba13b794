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
