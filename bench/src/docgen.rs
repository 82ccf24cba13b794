//! The search benchmarks' documents and queries: HCA-shaped bundle documents (~8.7 KiB: an
//! 11-entry manifest and 7 metadata files with ontology terms, dates and free text), generated
//! deterministically from their number, and the five typical queries. Shared with the engine A/B
//! (`bench/search-ab`), which includes this file.

use serde_json::{Value, json};

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
