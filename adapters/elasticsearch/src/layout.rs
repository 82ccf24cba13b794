//! Where documents live in the cluster, as in the original: per replica, one index per bundle
//! *shape* (`{prefix}-{replica}-docs-{sha1(shape_descriptor)}`, so schema versions with
//! conflicting field types never share a mapping) under the alias `{prefix}-{replica}-docs-alias`,
//! which searches read; each index with the original mapping.

use serde_json::{Value, json};
use sha1::{Digest, Sha1};

/// The original DSS index settings and mapping (ES 5 mapping types dropped): the body that
/// creates a docs index. Strings are lower-cased keywords with an analysed `.text` sub-field,
/// dates are detected.
pub fn index_definition() -> Value {
    json!({
        "settings": {"analysis": {"normalizer": {"keyword_lowercase": {"type": "custom", "filter": ["lowercase"]}}}},
        "mappings": {
            "date_detection": true,
            "dynamic_date_formats": ["yyyy-MM-dd HH:mm:ss", "strict_date_optional_time"],
            "dynamic_templates": [{"strings": {"match_mapping_type": "string", "mapping": {
                "type": "keyword", "normalizer": "keyword_lowercase", "ignore_above": 256,
                "fields": {"text": {"type": "text"}}}}}],
            "properties": {"uuid": {"type": "keyword"}, "manifest": {"properties": {"version": {"type": "keyword"}}}}
        }
    })
}

/// Index and alias names under one prefix.
#[derive(Debug, Clone)]
pub struct Names {
    prefix: String,
}

impl Names {
    /// Names starting `{prefix}-`.
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
        }
    }

    /// The alias searches of `replica` read.
    pub fn alias(&self, replica: &str) -> String {
        format!("{}-{replica}-docs-alias", self.prefix)
    }

    /// The index of `replica`'s documents of one shape.
    pub fn shape_index(&self, replica: &str, shape: &str) -> String {
        let digest = hex::encode(Sha1::digest(shape.as_bytes()));
        format!("{}-{replica}-docs-{digest}", self.prefix)
    }

    /// The index `doc` belongs in: its shape's, or — for tombstone documents, which carry no
    /// shape — the one holding the bundle's document now (`current`), else the shape `None`'s.
    pub fn target(&self, replica: &str, doc: &Value, current: Option<&str>) -> String {
        match (doc["shape_descriptor"].as_str(), current) {
            (Some(shape), _) => self.shape_index(replica, shape),
            (None, Some(index)) => index.to_string(),
            (None, None) => self.shape_index(replica, "None"),
        }
    }
}

/// What storing a document over its stored copies takes.
pub enum Plan<'a> {
    /// Nothing: the one stored copy is the document, in the index it belongs in.
    Unchanged,
    /// A write into `target` (conditional on `current`, the copy already there, or create-only),
    /// and the removal of the copies in other indices.
    Write {
        /// The index the document belongs in.
        target: String,
        /// Its copy there, if any.
        current: Option<&'a Copy>,
        /// Copies in other indices.
        stale: Vec<&'a Copy>,
    },
}

impl Names {
    /// The plan for storing `doc` in `replica` over its `stored` copies.
    pub fn plan<'a>(&self, replica: &str, doc: &Value, stored: &'a [Copy]) -> Plan<'a> {
        let target = self.target(replica, doc, stored.first().map(|c| c.index.as_str()));
        let current = stored.iter().find(|c| c.index == target);
        if stored.len() == 1 && current.is_some_and(|c| &c.source == doc) {
            return Plan::Unchanged;
        }
        let stale = stored.iter().filter(|c| c.index != target).collect();
        Plan::Write {
            target,
            current,
            stale,
        }
    }
}

/// One stored copy of a document.
#[derive(Debug, Clone)]
pub struct Copy {
    /// The index holding it.
    pub index: String,
    /// Its sequence number and primary term (optimistic concurrency).
    pub seq_no: u64,
    /// See `seq_no`.
    pub primary_term: u64,
    /// The document.
    pub source: Value,
}

impl Copy {
    /// A search hit with `seq_no_primary_term`.
    pub fn from_hit(h: &Value) -> Self {
        Self {
            index: h["_index"].as_str().unwrap_or_default().to_string(),
            seq_no: h["_seq_no"].as_u64().unwrap_or(0),
            primary_term: h["_primary_term"].as_u64().unwrap_or(1),
            source: h["_source"].clone(),
        }
    }
}

/// The reason the cluster gave, from an error body (or an item's `error`).
pub fn reason(body: &Value) -> String {
    let e = body.get("error").unwrap_or(body);
    match (e["type"].as_str(), e["reason"].as_str()) {
        (Some(t), Some(r)) => {
            let cause = e["caused_by"]["reason"]
                .as_str()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default();
            format!("{t}: {r}{cause}")
        }
        _ => body.to_string(),
    }
}

/// `s` percent-encoded for a URL path segment.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
