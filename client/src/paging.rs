//! Following paged answers: `Link: <url>; rel="next"` and the list named by
//! `X-OpenAPI-Paginated-Content-Key` (as the official CLIs page).

use reqwest::header::HeaderMap;
use serde_json::Value;

/// The `rel="next"` URL of a `Link` header, if any.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|link| {
            let (target, params) = link.trim().split_once(';')?;
            let next = params.split(';').any(|p| {
                let p = p.trim().replace(['"', '\''], "");
                p.eq_ignore_ascii_case("rel=next")
            });
            let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            next.then(|| target.to_string())
        })
}

/// The content key of a paged answer (`results` when the header is absent).
pub fn content_key(headers: &HeaderMap) -> String {
    headers
        .get("x-openapi-paginated-content-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("results")
        .to_string()
}

/// Takes the list at the dotted `key` (e.g. `bundle.files`) out of `body`.
pub fn take_list(body: &mut Value, key: &str) -> Vec<Value> {
    let mut at = body;
    for part in key.split('.') {
        match at.get_mut(part) {
            Some(v) => at = v,
            None => return Vec::new(),
        }
    }
    match at.take() {
        Value::Array(items) => items,
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn next_link_accepts_both_quote_styles_and_ignores_other_relations() {
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            HeaderValue::from_static(
                "<http://a/prev>; rel=\"prev\", <http://a/next?x=1>; rel='next'",
            ),
        );
        assert_eq!(next_link(&h).as_deref(), Some("http://a/next?x=1"));
        h.insert(
            "link",
            HeaderValue::from_static("<http://a/n>; rel=\"next\""),
        );
        assert_eq!(next_link(&h).as_deref(), Some("http://a/n"));
        h.insert(
            "link",
            HeaderValue::from_static("<http://a/p>; rel=\"prev\""),
        );
        assert_eq!(next_link(&h), None);
    }

    #[test]
    fn take_list_follows_a_dotted_key() {
        let mut body = serde_json::json!({"bundle": {"files": [1, 2]}, "results": [3]});
        assert_eq!(
            take_list(&mut body, "bundle.files"),
            vec![Value::from(1), Value::from(2)]
        );
        assert_eq!(take_list(&mut body, "results"), vec![Value::from(3)]);
        assert!(take_list(&mut body, "missing.key").is_empty());
    }
}
