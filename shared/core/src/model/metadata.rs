//! The documents built from a bundle for search and for the events journal.
//!
//! * The **search document** (`{manifest, state, files, uuid, shape_descriptor}`) holds the
//!   parsed JSON of the manifest entries marked `indexed`.
//! * The **CREATE / TOMBSTONE / DELETE documents** (`{event_type, bundle_info, …}`) are what the
//!   journal records and what JMESPath subscriptions are evaluated on; CREATE holds every JSON
//!   file of the bundle, indexed or not.
//!
//! Both put a file's contents under a field named from its file name ([`field_name`]), in a list
//! because several files can share a name's field (`process_0.json`, `process_1.json`).

use serde_json::{Map, Value, json};

/// Manifests listing more files than this are indexed with an empty `manifest.files`, which
/// bounds the search document of a huge bundle.
pub const MANIFEST_INDEX_LIMIT: usize = 20_000;

/// The field a metadata file is filed under: dots become underscores, and for names ending in
/// `_json` a trailing all-digit `_N` segment is dropped, so `cell_suspension_0.json` and
/// `cell_suspension.json` are both `cell_suspension_json`.
///
/// The original dropped the last `_` segment whatever it was (`cell_suspension.json` →
/// `cell_json`); we drop only numeric ones (see docs/compatibility.md).
pub fn field_name(file_name: &str) -> String {
    let s = file_name.replace('.', "_");
    let Some(stem) = s.strip_suffix("_json") else {
        return s;
    };
    let stem = match stem.rsplit_once('_') {
        Some((head, tail)) if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => stem,
    };
    format!("{stem}_json")
}

/// One JSON file of a bundle, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataFile {
    /// File name in the manifest.
    pub name: String,
    /// The manifest's `indexed` flag.
    pub indexed: bool,
    /// Parsed contents.
    pub content: Value,
}

fn files_object<'a>(files: impl Iterator<Item = &'a MetadataFile>) -> Map<String, Value> {
    let mut out = Map::new();
    for f in files {
        let entry = out
            .entry(field_name(&f.name))
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            list.push(f.content.clone());
        }
    }
    out
}

/// Schema type and major version of a metadata document, from its `describedBy` URL
/// (`…/type/cell_suspension/6.1.0/…` style) or its `core` object.
fn schema_of(content: &Value) -> Option<(String, String)> {
    if let Some(url) = content
        .get("describedBy")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
    {
        let path = url.split("://").nth(1).unwrap_or(url);
        let segments: Vec<&str> = path.split('/').skip(1).filter(|s| !s.is_empty()).collect();
        let kind = segments.last()?.trim_end_matches(".json").to_string();
        let versions: Vec<&&str> = segments
            .iter()
            .filter(|s| {
                let parts: Vec<&str> = s.split('.').collect();
                parts.len() == 3
                    && parts
                        .iter()
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect();
        let [version] = versions[..] else { return None };
        let major = version.split('.').next()?.to_string();
        return (!kind.is_empty()).then_some((kind, major));
    }
    let core = content.get("core")?;
    let kind = core.get("type")?.as_str()?.to_string();
    let major = core
        .get("schema_version")?
        .as_str()?
        .split('.')
        .next()?
        .to_string();
    Some((kind, major))
}

/// The shape descriptor of a bundle's indexed files: `v{major}` when every file's name equals its
/// schema type and all share one major version, else `v.` and the sorted `name[.type].major`
/// entries; `None` when no file carries schema information. Files whose names or schema facts
/// would make an ambiguous descriptor (dots, all digits) are left out.
pub fn shape_descriptor(files: &Map<String, Value>) -> Option<String> {
    let mut entries = std::collections::BTreeSet::new();
    let mut versions = std::collections::BTreeSet::new();
    let mut all_named_by_type = true;
    for (key, contents) in files {
        let name = key.strip_suffix("_json").unwrap_or(key);
        let bad = |s: &str| s.contains('.') || s.bytes().all(|b| b.is_ascii_digit());
        for content in contents.as_array().into_iter().flatten() {
            let Some((kind, major)) = schema_of(content) else {
                continue;
            };
            if bad(name) || bad(&kind) || !major.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            all_named_by_type &= name == kind;
            versions.insert(major.clone());
            entries.insert(if name == kind {
                format!("{name}.{major}")
            } else {
                format!("{name}.{kind}.{major}")
            });
        }
    }
    match versions.len() {
        0 => None,
        1 if all_named_by_type => versions.into_iter().next().map(|v| format!("v{v}")),
        _ => Some(format!(
            "v.{}",
            entries.into_iter().collect::<Vec<_>>().join(".")
        )),
    }
}

/// The search document of a bundle. `files` are the bundle's parsed JSON files; only those
/// marked `indexed` are included.
pub fn search_document(uuid: &str, manifest: &Value, files: &[MetadataFile]) -> Value {
    let mut manifest = manifest.clone();
    if let Some(list) = manifest.get_mut("files")
        && list
            .as_array()
            .is_some_and(|l| l.len() > MANIFEST_INDEX_LIMIT)
    {
        *list = Value::Array(Vec::new());
    }
    let files = files_object(files.iter().filter(|f| f.indexed));
    let shape = shape_descriptor(&files).unwrap_or_else(|| "None".to_string());
    json!({
        "manifest": manifest,
        "state": "new",
        "files": files,
        "uuid": uuid,
        "shape_descriptor": shape,
    })
}

/// The search document that replaces a bundle's when it is tombstoned: the tombstone's fields,
/// `uuid`, and `manifest.version` = the tombstone's version (`null` for a whole-bundle one).
pub fn tombstone_search_document(
    tombstone: &Value,
    uuid: &str,
    tombstone_version: Option<&str>,
) -> Value {
    let mut m = tombstone.as_object().cloned().unwrap_or_default();
    m.insert("uuid".into(), uuid.into());
    m.insert("manifest".into(), json!({"version": tombstone_version}));
    Value::Object(m)
}

/// The CREATE document of a bundle version: manifest and every JSON file.
pub fn create_document(
    uuid: &str,
    version: &str,
    manifest: &Value,
    files: &[MetadataFile],
) -> Value {
    json!({
        "event_type": "CREATE",
        "bundle_info": {"uuid": uuid, "version": version},
        "manifest": manifest,
        "files": files_object(files.iter()),
    })
}

/// The TOMBSTONE document: `bundle_info` (version `null` for a whole-bundle tombstone) and the
/// tombstone's fields.
pub fn tombstone_document(tombstone: &Value, uuid: &str, version: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert("event_type".into(), "TOMBSTONE".into());
    m.insert(
        "bundle_info".into(),
        json!({"uuid": uuid, "version": version}),
    );
    if let Some(t) = tombstone.as_object() {
        for (k, v) in t {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Value::Object(m)
}

/// The DELETE document of a removed bundle (or tombstone) object.
pub fn delete_document(uuid: &str, version: Option<&str>) -> Value {
    json!({"event_type": "DELETE", "bundle_info": {"uuid": uuid, "version": version}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_drop_only_numeric_suffixes() {
        for (name, field) in [
            ("cell_suspension_0.json", "cell_suspension_json"),
            ("project_0.json", "project_json"),
            ("links.json", "links_json"),
            ("sequence_file_12.json", "sequence_file_json"),
            ("cell_suspension.json", "cell_suspension_json"),
            ("a.b.json", "a_b_json"),
            ("my.file.v1.json", "my_file_v1_json"),
            ("foo.txt", "foo_txt"),
            ("x_12.JSON", "x_12_JSON"),
            ("_1.json", "_json"),
            ("12.json", "12_json"),
        ] {
            assert_eq!(field_name(name), field, "{name}");
        }
    }

    fn file(name: &str, indexed: bool, content: Value) -> MetadataFile {
        MetadataFile {
            name: name.into(),
            indexed,
            content,
        }
    }

    #[test]
    fn search_documents_hold_indexed_files_in_lists() {
        let manifest = json!({"version": "v", "files": []});
        let files = [
            file(
                "process_0.json",
                true,
                json!({"describedBy": "https://schema.example.org/type/process/2.0.1/process", "a": 1}),
            ),
            file(
                "process_1.json",
                true,
                json!({"describedBy": "https://schema.example.org/type/process/2.1.0/process", "a": 2}),
            ),
            file("notes.json", false, json!({"b": 1})),
        ];
        let doc = search_document("u", &manifest, &files);
        assert_eq!(
            doc["files"]["process_json"].as_array().map(Vec::len),
            Some(2)
        );
        assert!(doc["files"].get("notes_json").is_none());
        assert_eq!(doc["state"], "new");
        assert_eq!(doc["shape_descriptor"], "v2");
        let create = create_document("u", "v", &manifest, &files);
        assert_eq!(create["files"]["notes_json"][0]["b"], 1);
        assert_eq!(create["event_type"], "CREATE");
    }

    #[test]
    fn shape_descriptors_follow_the_original_rules() {
        let mk = |pairs: &[(&str, &str)]| -> Map<String, Value> {
            pairs
                .iter()
                .map(|(k, url)| (k.to_string(), json!([{"describedBy": url}])))
                .collect()
        };
        assert_eq!(
            shape_descriptor(&mk(&[
                (
                    "cell_suspension_json",
                    "https://s/type/biomaterial/6.0.0/cell_suspension"
                ),
                ("links_json", "https://s/system/1.1.0/links"),
            ])),
            Some("v.cell_suspension.6.links.1".into())
        );
        assert_eq!(
            shape_descriptor(&mk(&[(
                "project_json",
                "https://s/type/project/5.1.0/project"
            )])),
            Some("v5".into())
        );
        assert_eq!(
            shape_descriptor(&mk(&[(
                "donor_json",
                "https://s/type/biomaterial/5.0.0/donor_organism"
            )])),
            Some("v.donor.donor_organism.5".into())
        );
        let core: Map<String, Value> = [(
            "x_json".to_string(),
            json!([{"core": {"type": "x", "schema_version": "3.2.1"}}]),
        )]
        .into_iter()
        .collect();
        assert_eq!(shape_descriptor(&core), Some("v3".into()));
        assert_eq!(shape_descriptor(&Map::new()), None);
        let doc = search_document(
            "u",
            &json!({}),
            &[file("a.json", true, json!({"no": "schema"}))],
        );
        assert_eq!(doc["shape_descriptor"], "None");
    }

    #[test]
    fn huge_manifests_are_indexed_without_their_file_list() {
        let files: Vec<Value> = (0..MANIFEST_INDEX_LIMIT + 1)
            .map(|i| json!({"name": i}))
            .collect();
        let doc = search_document("u", &json!({"version": "v", "files": files}), &[]);
        assert_eq!(doc["manifest"]["files"], json!([]));
        assert_eq!(doc["manifest"]["version"], "v");
    }

    #[test]
    fn tombstone_documents() {
        let t = json!({"email": "e", "reason": "r", "details": {}, "admin_deleted": true});
        let d = tombstone_search_document(&t, "u", None);
        assert_eq!(d["manifest"], json!({"version": null}));
        assert_eq!(d["admin_deleted"], true);
        let e = tombstone_document(&t, "u", Some("v"));
        assert_eq!(e["bundle_info"], json!({"uuid": "u", "version": "v"}));
        assert_eq!(e["reason"], "r");
        assert_eq!(delete_document("u", Some("v"))["event_type"], "DELETE");
    }
}
