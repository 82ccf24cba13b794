//! `dss ops config`: the effective configuration — the files in order, the `DSS_*` variables and
//! the command line applied, defaults filled in — each value with its source, with secrets left
//! out (values of keys naming a password, secret or API key, and credentials inside URLs).

use std::collections::BTreeMap;

use dss_config::Config;
use serde_json::{Value, json};

/// What replaces a secret.
const REDACTED: &str = "(redacted)";

/// Prints `cfg`, secrets redacted, each value with its source in `sources` (see
/// [`dss_config::sources`]): `key = value  # source` lines, or JSON.
pub fn print(
    cfg: &Config,
    sources: &BTreeMap<String, String>,
    as_json: bool,
) -> anyhow::Result<()> {
    let mut v = serde_json::to_value(cfg)?;
    redact(&mut v, "");
    let mut keys = Vec::new();
    dss_config::leaves(&v, "", &mut keys);
    let named: BTreeMap<&str, &str> = keys
        .iter()
        .map(|k| (k.as_str(), dss_config::source_of(sources, k)))
        .collect();
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"config": v, "sources": named}))?
        );
        return Ok(());
    }
    for (key, source) in named {
        let value = key
            .split('.')
            .try_fold(&v, |v, part| v.get(part))
            .unwrap_or(&Value::Null);
        println!("{key} = {value}  # {source}");
    }
    Ok(())
}

/// `text` without the user name and password it carries, if it is a URL that carries them (for
/// logs and printed configuration).
pub fn without_credentials(text: &str) -> Option<String> {
    let mut u = url::Url::parse(text).ok()?;
    if u.password().is_none() && u.username().is_empty() {
        return None;
    }
    let _ = u.set_username("");
    let _ = u.set_password(None);
    Some(u.to_string())
}

/// Redacts secrets in `v`, found under key `key`.
fn redact(v: &mut Value, key: &str) {
    match v {
        Value::Object(map) => map.iter_mut().for_each(|(k, v)| redact(v, k)),
        Value::Array(items) => items.iter_mut().for_each(|v| redact(v, key)),
        Value::String(s) => {
            let k = key.to_ascii_lowercase();
            if k.contains("password") || k.contains("secret") || k.contains("api_key") {
                *s = REDACTED.into();
            } else if let Some(shown) = without_credentials(s) {
                *s = shown;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn secrets_and_url_credentials_are_left_out() {
        let mut v = json!({
            "aws": {"access_key_id": "AKIA", "secret_access_key": "s3cret"},
            "mail": {"smtp_password": "pw", "smtp_username": "u", "smtp_password_file": null},
            "search": {"url": "https://elastic:pw@es.example:9200/", "api_key": "a2V5", "password": "pw"},
            "metadata": {"url": "postgres://dss:hunter2@db.internal:5432/dss?sslmode=require"},
            "replicas": {"aws": {"url": "file:///data/buckets/aws"}},
            "auth": {"issuers": [{"jwks_url": "https://u:p@idp.example/jwks"}]},
        });
        super::redact(&mut v, "");
        assert_eq!(v["aws"]["secret_access_key"], "(redacted)");
        assert_eq!(v["aws"]["access_key_id"], "AKIA");
        assert_eq!(v["mail"]["smtp_password"], "(redacted)");
        assert_eq!(v["mail"]["smtp_password_file"], json!(null));
        assert_eq!(v["search"]["url"], "https://es.example:9200/");
        assert_eq!(v["search"]["api_key"], "(redacted)");
        assert_eq!(v["search"]["password"], "(redacted)");
        assert_eq!(
            v["metadata"]["url"],
            "postgres://db.internal:5432/dss?sslmode=require"
        );
        assert_eq!(v["replicas"]["aws"]["url"], "file:///data/buckets/aws");
        assert_eq!(
            v["auth"]["issuers"][0]["jwks_url"],
            "https://idp.example/jwks"
        );
    }

    #[test]
    fn logged_urls_carry_no_credentials() {
        assert_eq!(
            super::without_credentials("https://elastic:s3cret@search.example:9200/").as_deref(),
            Some("https://search.example:9200/")
        );
        assert_eq!(
            super::without_credentials("https://search.example:9200/"),
            None
        );
        assert_eq!(super::without_credentials("::"), None);
    }
}
