//! Where each configuration value comes from: the files in order (a later one wins), then the
//! `DSS_*` variables, then the command line — for `dss ops config`, which names each value's
//! source.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::ConfigError;

/// Dotted keys (`search.url`, or a table such as `replicas.aws`) set by `files`, the `DSS_*`
/// variables of `vars` and `overrides`, each with the source that set it last.
pub fn sources(
    files: &[PathBuf],
    vars: impl Iterator<Item = (String, String)>,
    overrides: &[(&str, String)],
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for f in files {
        let layer: serde_json::Value = config::Config::builder()
            .add_source(config::File::from(f.as_path()).format(config::FileFormat::Toml))
            .build()?
            .try_deserialize()?;
        let mut keys = Vec::new();
        leaves(&layer, "", &mut keys);
        for k in keys {
            out.insert(k, format!("file {}", f.display()));
        }
    }
    for (var, _) in crate::config_env(vars) {
        let key = var
            .trim_start_matches("DSS_")
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect::<Vec<_>>()
            .join(".");
        out.insert(key, format!("environment {var}"));
    }
    for (k, _) in overrides {
        out.insert((*k).to_string(), "command line".into());
    }
    Ok(out)
}

/// The dotted keys of the leaves of `v` (values that are not tables, and empty tables).
pub fn leaves(v: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                let key = match prefix {
                    "" => k.clone(),
                    p => format!("{p}.{k}"),
                };
                leaves(child, &key, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

/// The source of `key` in `sources`: its own, or that of the nearest table above it that a
/// source set; else `default`.
pub fn source_of<'a>(sources: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    let mut k = key;
    loop {
        if let Some(s) = sources.get(k) {
            return s;
        }
        match k.rsplit_once('.') {
            Some((parent, _)) => k = parent,
            None => return "default",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_layers_name_the_sources_of_the_values_they_set() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.toml");
        let local = dir.path().join("local.toml");
        std::fs::write(
            &base,
            "[api]\nread_only = true\n[search]\nurl = \"http://a:9200\"",
        )
        .unwrap();
        std::fs::write(
            &local,
            "[search]\nurl = \"http://b:9200\"\n[replicas.aws]\nurl = \"file:///x\"",
        )
        .unwrap();
        let vars = [
            ("DSS_SYNC__CONCURRENCY".to_string(), "4".to_string()),
            ("DSS_CONFIG".to_string(), "ignored".to_string()),
        ];
        let s = sources(
            &[base.clone(), local.clone()],
            vars.into_iter(),
            &[("data_dir", "/d".into())],
        )
        .unwrap();
        assert_eq!(
            source_of(&s, "api.read_only"),
            format!("file {}", base.display())
        );
        assert_eq!(
            source_of(&s, "search.url"),
            format!("file {}", local.display())
        );
        assert_eq!(
            source_of(&s, "replicas.aws.url"),
            format!("file {}", local.display())
        );
        assert_eq!(
            source_of(&s, "sync.concurrency"),
            "environment DSS_SYNC__CONCURRENCY"
        );
        assert_eq!(source_of(&s, "data_dir"), "command line");
        assert_eq!(source_of(&s, "api.listen"), "default");
    }
}
