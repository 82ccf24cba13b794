//! Search benchmarks: realistic bundle documents (HCA-shaped metadata), engine load and query
//! latency over 100,000 of them through the HTTP API, bundle PUT → searchable latency through
//! the index daemon, indexing throughput, the events journal, and the same queries against
//! osmem-server (an in-memory OpenSearch-API server) for reference.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dss_config::Durability;
use dss_core::clock::system;
use dss_core::ports::{EventJournal, EventKind, NewEvent};
use dss_embedded::{Db, EmbeddedJournal};
use dss_runtime::deployment::Deployment;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::{Row, Server, config, start};

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn hex(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n);
        while s.len() < n {
            s.push_str(&format!("{:016x}", self.next()));
        }
        s.truncate(n);
        s
    }
    fn uuid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-4{}-8{}-{}",
            &h[..8],
            &h[8..12],
            &h[13..16],
            &h[17..20],
            &h[20..32]
        )
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const SPECIES: &[&str] = &["Homo sapiens", "Mus musculus"];
const ORGANS: &[&str] = &[
    "kidney",
    "brain",
    "liver",
    "pancreas",
    "heart",
    "lung",
    "blood",
    "skin",
    "spleen",
    "bone marrow",
    "retina",
    "colon",
];
const DISEASES: &[&str] = &[
    "normal",
    "type 2 diabetes mellitus",
    "glioblastoma",
    "COVID-19",
    "asthma",
];
const METHODS: &[&str] = &[
    "10X v2 sequencing",
    "10X 3' v3 sequencing",
    "Smart-seq2",
    "Drop-seq",
];
const INSTRUMENTS: &[&str] = &[
    "Illumina NovaSeq 6000",
    "Illumina HiSeq 4000",
    "Illumina NextSeq 500",
];
const WORDS: &[&str] = &[
    "single",
    "cell",
    "atlas",
    "human",
    "mouse",
    "tissue",
    "immune",
    "development",
    "adult",
    "fetal",
    "transcriptome",
    "profiling",
    "reveals",
    "heterogeneity",
    "of",
    "the",
    "in",
    "across",
    "organ",
    "response",
    "map",
    "spatial",
    "chromatin",
    "landscape",
];

fn words(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| rng.pick(WORDS))
        .collect::<Vec<_>>()
        .join(" ")
}

fn described(kind: &str, name: &str, version: &str) -> String {
    format!("https://schema.humancellatlas.org/type/{kind}/{version}/{name}")
}

/// The search document of bundle `i`, HCA-shaped: 11 manifest entries and 7 metadata files.
pub fn document(i: usize, version: &str) -> (String, Value) {
    let mut rng = Rng(0x9e3779b97f4a7c15 ^ (i as u64).wrapping_mul(0x2545F4914F6CDD1D) | 1);
    let uuid = rng.uuid();
    let project = i % 50;
    let species = SPECIES[(i / 3) % 2];
    let organ = ORGANS[i % ORGANS.len()];
    let day = 1 + i % 28;
    let month = 1 + (i / 28) % 12;
    let submitted = format!("2019-{month:02}-{day:02}T10:{:02}:00.000Z", i % 60);
    let prov = |rng: &mut Rng| json!({"document_id": rng.uuid(), "submission_date": submitted, "update_date": submitted});
    let names = [
        "donor_organism_0.json",
        "specimen_from_organism_0.json",
        "cell_suspension_0.json",
        "library_preparation_protocol_0.json",
        "sequencing_protocol_0.json",
        "project_0.json",
        "links.json",
        "sequence_file_0.json",
        "sequence_file_1.json",
        "R1.fastq.gz",
        "R2.fastq.gz",
    ];
    let manifest_files: Vec<Value> = names
        .iter()
        .map(|n| {
            let json_file = n.ends_with(".json");
            json!({"name": n, "uuid": rng.uuid(), "version": version,
                "content-type": if json_file { "application/json; dcp-type=\"metadata/biomaterial\"" } else { "application/gzip" },
                "size": if json_file { 900 + rng.next() % 2000 } else { 1_000_000_000 + rng.next() % 9_000_000_000 },
                "indexed": json_file, "crc32c": rng.hex(8), "s3-etag": rng.hex(32), "sha1": rng.hex(40), "sha256": rng.hex(64)})
        })
        .collect();
    let files = json!({
        "donor_organism_json": [{
            "describedBy": described("biomaterial", "donor_organism", "15.5.0"), "schema_type": "biomaterial",
            "biomaterial_core": {"biomaterial_id": format!("donor_{i}"), "ncbi_taxon_id": [if species == "Homo sapiens" { 9606 } else { 10090 }]},
            "genus_species": [{"text": species, "ontology": "NCBITaxon:9606", "ontology_label": species}],
            "is_living": i.is_multiple_of(5), "sex": if i.is_multiple_of(2) { "female" } else { "male" },
            "organism_age": format!("{}", 20 + i % 60), "organism_age_unit": {"text": "year"},
            "development_stage": {"text": "human adult stage"},
            "diseases": [{"text": rng.pick(DISEASES), "ontology": format!("MONDO:{:07}", rng.next() % 1_000_000)}],
            "provenance": prov(&mut rng)}],
        "specimen_from_organism_json": [{
            "describedBy": described("biomaterial", "specimen_from_organism", "10.4.0"), "schema_type": "biomaterial",
            "biomaterial_core": {"biomaterial_id": format!("specimen_{i}")},
            "organ": {"text": organ, "ontology": format!("UBERON:{:07}", i % 97)},
            "organ_parts": [{"text": format!("{organ} cortex")}],
            "provenance": prov(&mut rng)}],
        "cell_suspension_json": [{
            "describedBy": described("biomaterial", "cell_suspension", "13.3.0"), "schema_type": "biomaterial",
            "biomaterial_core": {"biomaterial_id": format!("cells_{i}")},
            "estimated_cell_count": 1000 + (rng.next() % 100_000),
            "selected_cell_types": [{"text": words(&mut rng, 2)}],
            "provenance": prov(&mut rng)}],
        "library_preparation_protocol_json": [{
            "describedBy": described("protocol/sequencing", "library_preparation_protocol", "6.2.0"),
            "protocol_core": {"protocol_id": format!("lib_{}", i % 40)},
            "library_construction_method": {"text": METHODS[i % METHODS.len()]},
            "input_nucleic_acid_molecule": {"text": "polyA RNA"}, "end_bias": "3 prime tag",
            "provenance": prov(&mut rng)}],
        "sequencing_protocol_json": [{
            "describedBy": described("protocol/sequencing", "sequencing_protocol", "10.1.0"),
            "protocol_core": {"protocol_id": format!("seq_{}", i % 40)},
            "instrument_manufacturer_model": {"text": INSTRUMENTS[i % INSTRUMENTS.len()]},
            "paired_end": i.is_multiple_of(2), "method": {"text": "tag based single cell RNA sequencing"},
            "provenance": prov(&mut rng)}],
        "project_json": [{
            "describedBy": described("project", "project", "14.2.0"),
            "project_core": {"project_short_name": format!("Project{project}"),
                "project_title": format!("Project {project}: {}", words(&mut Rng(project as u64 + 7), 8)),
                "project_description": words(&mut Rng(project as u64 + 99), 40)},
            "contributors": [{"name": format!("Ada,,Lovelace{}", project), "institution": "EMBL-EBI", "email": format!("pi{project}@example.org")}],
            "provenance": {"document_id": format!("00000000-0000-4000-8000-{project:012}"), "submission_date": "2018-06-01T00:00:00.000Z"}}],
        "sequence_file_json": [
            {"describedBy": described("file", "sequence_file", "9.1.0"), "file_core": {"file_name": format!("R1_{i}.fastq.gz"), "format": "fastq.gz"}, "read_index": "read1", "provenance": prov(&mut rng)},
            {"describedBy": described("file", "sequence_file", "9.1.0"), "file_core": {"file_name": format!("R2_{i}.fastq.gz"), "format": "fastq.gz"}, "read_index": "read2", "provenance": prov(&mut rng)}],
        "links_json": [{"describedBy": described("system", "links", "2.1.1"), "links": [{"process": rng.uuid(), "inputs": [rng.uuid()], "outputs": [rng.uuid()]}]}],
    });
    let doc = json!({
        "manifest": {"format": "0.0.1", "version": version, "files": manifest_files, "creator_uid": 8008},
        "state": "new",
        "files": files,
        "uuid": uuid,
        "shape_descriptor": "v.cell_suspension.13.donor_organism.15.library_preparation_protocol.6.links.2.project.14.sequence_file.9.sequencing_protocol.10.specimen_from_organism.10",
    });
    (format!("{uuid}.{version}"), doc)
}

/// The five typical queries, by name.
pub fn queries(probe_file_uuid: &str) -> Vec<(&'static str, Value)> {
    vec![
        (
            "project by short name (term)",
            json!({"query": {"term": {"files.project_json.project_core.project_short_name": "project7"}}}),
        ),
        (
            "species text AND organ (bool)",
            json!({"query": {"bool": {"must": [
            {"match": {"files.donor_organism_json.genus_species.text.text": "homo sapiens"}},
            {"term": {"files.specimen_from_organism_json.organ.text": "kidney"}}]}}}),
        ),
        (
            "date range + method, not tombstoned",
            json!({"query": {"bool": {
            "filter": [{"range": {"files.donor_organism_json.provenance.submission_date": {"gte": "2019-03-01", "lt": "2019-06-01"}}},
                       {"match": {"files.library_preparation_protocol_json.library_construction_method.text": "Smart-seq2"}}],
            "must_not": [{"term": {"admin_deleted": true}}]}}}),
        ),
        (
            "free text (query_string)",
            json!({"query": {"query_string": {"query": "pancreas AND \"type 2 diabetes mellitus\""}}}),
        ),
        (
            "bundle by file uuid (term)",
            json!({"query": {"term": {"manifest.files.uuid": probe_file_uuid}}}),
        ),
    ]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// `p50 …, p99 …` of latencies (sorted in place).
pub fn p50_p99(lat: &mut [Duration]) -> String {
    lat.sort();
    format!(
        "p50 {}, p99 {}",
        ms(percentile(lat, 0.5)),
        ms(percentile(lat, 0.99))
    )
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn post_search(http: &reqwest::Client, base: &str, body: &Value) -> Result<Value> {
    let r = http
        .post(format!("{base}/v1/search?replica=aws&per_page=100"))
        .json(&json!({"es_query": body}))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("search answered {}", r.status());
    }
    Ok(r.json().await?)
}

/// p50/p99 of `runs` searches of each query; returns (name, hits, p50, p99).
async fn query_latencies(
    http: &reqwest::Client,
    base: &str,
    queries: &[(&'static str, Value)],
    runs: usize,
) -> Result<Vec<(&'static str, u64, Duration, Duration)>> {
    let mut out = Vec::new();
    for (name, q) in queries {
        let first = post_search(http, base, q).await?;
        let hits = first["total_hits"].as_u64().unwrap_or(0);
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            post_search(http, base, q).await?;
            times.push(t.elapsed());
        }
        times.sort();
        out.push((
            *name,
            hits,
            percentile(&times, 0.5),
            percentile(&times, 0.99),
        ));
    }
    Ok(out)
}

/// Runs the search benchmarks; `n` documents for the query benchmark.
pub async fn run(dss: &Path, work: &Path, n: usize, http: &reqwest::Client) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let data = work.join("search-data");
    let version = "2019-05-01T000000.000000Z";
    // Inside the subset osmem-server loads too.
    let probe = document(2_500.min(n / 2), version).1["manifest"]["files"][3]["uuid"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // Seed n documents straight into the search index (the engine's write path).
    eprintln!("indexing {n} bundle documents");
    let seed_rate = {
        let d = Deployment::open(config(&data)?, system())?;
        let t = Instant::now();
        futures::stream::iter(0..n)
            .map(|i| {
                let search = d.search.clone();
                async move {
                    let (id, doc) = document(i, version);
                    search.put("aws", &id, &doc).await
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        n as f64 / t.elapsed().as_secs_f64()
    };
    let avg_doc = serde_json::to_vec(&document(1, version).1)?.len();
    rows.push(Row {
        name: format!(
            "search index writes, {n} documents of ~{:.1} KiB",
            avg_doc as f64 / 1024.0
        ),
        result: format!("{seed_rate:.0} documents/s"),
        goal: "(indexing throughput, engine only)".into(),
        baseline: "original: one ES write per Lambda invocation".into(),
    });

    let server = start(dss, &data, 5911)?;
    let t = Instant::now();
    let all = post_search(http, &server.base, &json!({})).await?;
    let load = t.elapsed();
    if all["total_hits"].as_u64() != Some(n as u64) {
        bail!("expected {n} hits, got {}", all["total_hits"]);
    }
    let rss_before = server.rss_mib();
    let qs = queries(&probe);
    let lat = query_latencies(http, &server.base, &qs, 200).await?;
    rows.push(Row {
        name: format!(
            "search index build at first start ({n} documents, no snapshot), first search"
        ),
        result: format!(
            "{:.2} s, server RSS {rss_before:.0} MiB",
            load.as_secs_f64()
        ),
        goal: "(one-time)".into(),
        baseline: "".into(),
    });
    for (name, hits, p50, p99) in &lat {
        rows.push(Row {
            name: format!("search over {n} bundles: {name}, {hits} hits, per_page 100"),
            result: format!("p50 {}, p99 {}", ms(*p50), ms(*p99)),
            goal: "p50 < 10 ms".into(),
            baseline: String::new(),
        });
    }

    // Bundle PUT → searchable, through the API and the index daemon, one at a time.
    let files = upload_metadata(http, &server).await?;
    let mut lat = Vec::new();
    for i in 0..200 {
        let b = uuid::Uuid::new_v4().to_string();
        let body = json!({"creator_uid": 1, "files": files});
        let r = http
            .put(format!(
                "{}/v1/bundles/{b}?version={version}&replica=aws",
                server.base
            ))
            .bearer_auth(&server.token)
            .json(&body)
            .send()
            .await?;
        if r.status() != 201 {
            bail!("bundle PUT {i} answered {}", r.status());
        }
        let t = Instant::now();
        let q = json!({"query": {"ids": {"values": [format!("{b}.{version}")]}}});
        loop {
            if post_search(http, &server.base, &q).await?["total_hits"] == 1 {
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                bail!("bundle {b} never became searchable");
            }
        }
        lat.push(t.elapsed());
    }
    rows.push(Row {
        name: "bundle PUT answered → found by search (embedded, 7 metadata files)".into(),
        result: p50_p99(&mut lat),
        goal: "p99 < 50 ms".into(),
        baseline: "original: seconds to minutes (quoted)".into(),
    });

    // Indexing throughput through bucket events: bundles written straight into the bucket.
    let count = 2000;
    let before = post_search(http, &server.base, &json!({})).await?["total_hits"]
        .as_u64()
        .unwrap_or(0);
    {
        let d = Deployment::open(config(&data)?, system())?;
        let store = d.replicas["aws"].store.clone();
        let manifest = json!({"format": "0.0.1", "version": version, "files": files_manifest(http, &server, &files).await?, "creator_uid": 1});
        let text = manifest.to_string();
        let t = Instant::now();
        futures::stream::iter(0..count)
            .map(|_| {
                let store = store.clone();
                let text = text.clone();
                async move {
                    let key = format!("bundles/{}.{version}", uuid::Uuid::new_v4());
                    store
                        .put_bytes(&key, text.into(), dss_core::ports::PutOptions::default())
                        .await
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        loop {
            let now = post_search(http, &server.base, &json!({})).await?["total_hits"]
                .as_u64()
                .unwrap_or(0);
            if now >= before + count as u64 {
                break;
            }
            if t.elapsed() > Duration::from_secs(600) {
                bail!("indexing stalled at {now}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        rows.push(Row {
            name: format!("indexing through bucket events, {count} bundles × 7 metadata files"),
            result: format!("{:.0} bundles/s", count as f64 / t.elapsed().as_secs_f64()),
            goal: "(throughput)".into(),
            baseline: String::new(),
        });
    }
    drop(server);

    // Restart: the index comes back from the snapshot written at shutdown.
    let server = start(dss, &data, 5912)?;
    let t = Instant::now();
    let all = post_search(http, &server.base, &json!({})).await?;
    rows.push(Row {
        name: format!(
            "search index load at restart from its snapshot ({} documents), first search",
            all["total_hits"]
        ),
        result: format!(
            "{:.2} s, server RSS {:.0} MiB",
            t.elapsed().as_secs_f64(),
            server.rss_mib()
        ),
        goal: "(one-time)".into(),
        baseline: "without a snapshot: the row above".into(),
    });
    drop(server);

    // The events journal: 1,000 events recorded concurrently (as the daemon does) and serially.
    let (conc, serial) = journal_times(work).await?;
    rows.push(Row {
        name: "events journal, 1,000 events".into(),
        result: format!("{} concurrent, {} one by one", ms(conc), ms(serial)),
        goal: "< 1 s".into(),
        baseline: "original: ≈ 8 min (quoted)".into(),
    });

    // Reference: the same queries against osmem-server.
    match crate::osmem::Osmem::start(http).await {
        Ok(os) => {
            // osmem-server bulk-loads ~50 documents/s here: a subset keeps the run short.
            let docs = n.min(5_000);
            eprintln!("loading {docs} documents into osmem-server");
            let t = Instant::now();
            os.load(http, (0..docs).map(|i| document(i, version)))
                .await?;
            let load = t.elapsed();
            rows.push(Row {
                name: format!("osmem-server (reference): bulk-load {docs} documents"),
                result: format!("{:.0} documents/s", docs as f64 / load.as_secs_f64()),
                goal: String::new(),
                baseline: String::new(),
            });
            for (name, q) in &qs {
                let (hits, p50, p99) = os.latency(http, q, 50).await?;
                rows.push(Row {
                    name: format!(
                        "osmem-server (reference) over {docs} bundles: {name}, {hits} hits"
                    ),
                    result: format!("p50 {}, p99 {}", ms(p50), ms(p99)),
                    goal: String::new(),
                    baseline: String::new(),
                });
            }
        }
        Err(e) => eprintln!("osmem-server reference skipped: {e:#}"),
    }
    Ok(rows)
}

/// Uploads the seven metadata files of one bundle; returns the bundle PUT `files` list.
pub async fn upload_metadata(http: &reqwest::Client, s: &Server) -> Result<Vec<Value>> {
    let (_, doc) = document(0, "2019-05-01T000000.000000Z");
    let version = "2019-05-01T000000.000000Z";
    let mut out = Vec::new();
    for (key, list) in doc["files"].as_object().context("files")? {
        let name = format!("{}_0.json", key.trim_end_matches("_json"));
        let u = uuid::Uuid::new_v4().to_string();
        s.upload(
            http,
            &u,
            version,
            "application/json",
            serde_json::to_vec(&list[0])?,
        )
        .await?;
        out.push(json!({"uuid": u, "version": version, "name": name, "indexed": true}));
    }
    Ok(out)
}

/// The manifest entries of the uploaded files (as the API wrote them).
async fn files_manifest(http: &reqwest::Client, s: &Server, files: &[Value]) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for f in files {
        let u = f["uuid"].as_str().context("uuid")?;
        let r = http
            .head(format!("{}/v1/files/{u}?replica=aws", s.base))
            .send()
            .await?;
        let h = |k: &str| {
            r.headers()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        out.push(json!({"name": f["name"], "uuid": u, "version": f["version"],
            "content-type": h("x-dss-content-type"), "size": h("x-dss-size").parse::<u64>().unwrap_or(0), "indexed": true,
            "crc32c": h("x-dss-crc32c"), "s3-etag": h("x-dss-s3-etag"), "sha1": h("x-dss-sha1"), "sha256": h("x-dss-sha256")}));
    }
    Ok(out)
}

async fn journal_times(work: &Path) -> Result<(Duration, Duration)> {
    let db = Db::open(&work.join("journal.db"), Durability::Process)?;
    let journal = EmbeddedJournal::new(&db, system());
    let event = |r: &str, i: usize| NewEvent {
        event_id: format!("{r}-{i:08}"),
        kind: EventKind::Create,
        body: json!({"event_type": "CREATE", "i": i, "pad": "x".repeat(2000)}).to_string(),
    };
    let t = Instant::now();
    futures::stream::iter(0..1000)
        .map(|i| {
            let j = journal.clone();
            async move { j.record("aws", vec![event("c", i)]).await }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let concurrent = t.elapsed();
    let t = Instant::now();
    for i in 0..1000 {
        journal.record("gcp", vec![event("s", i)]).await?;
    }
    Ok((concurrent, t.elapsed()))
}
