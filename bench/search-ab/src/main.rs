//! A/B of the storage under the embedded search engine's evaluator, on the search benchmark's
//! documents (`bench/src/docgen.rs`): our segment format against tantivy holding the same keys.
//! Both are built from the same analysed documents and answer the benchmark's five queries through
//! the same evaluator (`dss_search::evaluate`), so the difference is the storage: term
//! dictionary, postings, their decoding into the evaluator's bitmaps.
//!
//! `cargo run --release --manifest-path bench/search-ab/Cargo.toml -- [DOCUMENTS] [ROUNDS]`
//! (default 100000 and 5). `-- build-range FROM TO DIR` writes one segment of documents
//! `FROM..TO`; `-- query-segments DIR N` runs the queries over every segment in `DIR` (built from
//! `N` documents), as a search of a large index does: to profile the queries at a million
//! documents without a server. Every build and every query round runs in a process of its own, so
//! resident memory is each engine's own; rounds alternate between the engines. Writes only under
//! the system temp directory.

#[path = "../../src/docgen.rs"]
#[allow(dead_code)]
mod docgen;
#[path = "../../src/stats.rs"]
#[allow(dead_code)]
mod stats;
mod tantivy_source;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use dss_search::segment::write_from_memory;
use dss_search::{
    Budget, EvalContext, MemIndex, Query, Segment, Source, TopK, evaluate, parse_body,
};
use serde_json::{Value, json};
use stats::{mmm, ms, percentile};

const VERSION: &str = "2019-05-01T000000.000000Z";
const RUNS: usize = 200;

fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn du(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => du(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Analyses `n` documents (ordinals 1..=n) and writes our segment to `dir`.
fn build_ours(n: usize, dir: &Path) -> Result<Value> {
    let t = Instant::now();
    let mut mem = MemIndex::new();
    for i in 0..n {
        let (id, doc) = docgen::document(i, VERSION);
        mem.insert_at(&id, &doc, i as u32 + 1);
    }
    let analysis = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let live = mem.live().clone();
    write_from_memory(&mem, &live, dir, 1, n as u32)?;
    Ok(
        json!({"analysis_secs": analysis, "write_secs": t.elapsed().as_secs_f64(),
        "bytes": du(dir), "peak_rss_mib": status_mib("VmHWM:")}),
    )
}

/// Analyses documents `from..to` (ordinals `from + 1..=to`) and writes our segment to `dir`: one
/// of the segments of a large index, as the server's merges leave it.
fn build_range(from: usize, to: usize, dir: &Path) -> Result<Value> {
    let t = Instant::now();
    let mut mem = MemIndex::new();
    for i in from..to {
        let (id, doc) = docgen::document(i, VERSION);
        mem.insert_at(&id, &doc, i as u32 + 1);
    }
    let live = mem.live().clone();
    write_from_memory(&mem, &live, dir, from as u32 + 1, to as u32)?;
    Ok(json!({"secs": t.elapsed().as_secs_f64(), "bytes": du(dir)}))
}

/// Opens every segment under `dir` and runs the benchmark's queries over all of them as a
/// search does: each segment evaluated, its hits offered to a page of 100.
fn query_segments(dir: &Path, n: usize) -> Result<Value> {
    let mut segs = Vec::new();
    for e in std::fs::read_dir(dir)? {
        segs.push(Segment::open(&e?.path())?);
    }
    let out = timed_queries(n, |query, ctx| {
        let mut top = TopK::new(None, 100);
        let mut hits = 0;
        for s in &segs {
            let r = evaluate(s, query, ctx).map_err(|e| anyhow::anyhow!(e.0))?;
            hits += r.len();
            s.offer(&r, &mut top);
        }
        std::hint::black_box(&top);
        Ok(hits)
    })?;
    Ok(json!({"segments": segs.len(), "rss_after_mib": status_mib("VmRSS:"), "queries": out}))
}

/// Writes tantivy's index of the documents of our segment in `ours` to `dir`.
fn build_tantivy(ours: &Path, dir: &Path) -> Result<Value> {
    let seg = Segment::open(ours)?;
    let before = status_mib("VmHWM:");
    let secs = tantivy_source::build(&seg, dir, 25_000)?;
    Ok(
        json!({"write_secs": secs, "bytes": du(dir), "peak_rss_mib": status_mib("VmHWM:"),
        "peak_before_mib": before}),
    )
}

fn latencies<S: Source>(src: &S, n: usize) -> Result<Vec<Value>> {
    timed_queries(n, |query, ctx| {
        Ok(evaluate(src, query, ctx)
            .map_err(|e| anyhow::anyhow!(e.0))?
            .len())
    })
}

/// Each of the benchmark's queries over `n` documents, `RUNS` times (after one untimed run)
/// through `answer`, which returns the hits: their p50 and p99.
fn timed_queries(
    n: usize,
    answer: impl Fn(&Query, &EvalContext<'_>) -> Result<u64>,
) -> Result<Vec<Value>> {
    let probe = docgen::document(2_500.min(n / 2), VERSION).1["manifest"]["files"][3]["uuid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let loader = |ord: u32| Some(docgen::document(ord as usize - 1, VERSION).1);
    let mut out = Vec::new();
    for (name, q) in docgen::queries(&probe) {
        let query = parse_body(&q).map_err(|e| anyhow::anyhow!(e.0))?;
        let mut times = Vec::with_capacity(RUNS);
        let mut hits = 0;
        for _ in 0..=RUNS {
            let budget = Budget::new(u64::MAX);
            let ctx = EvalContext {
                now: time::OffsetDateTime::now_utc(),
                loader: &loader,
                budget: &budget,
            };
            let t = Instant::now();
            hits = answer(&query, &ctx)?;
            times.push(t.elapsed());
        }
        times.remove(0);
        times.sort();
        out.push(json!({"query": name, "hits": hits,
            "p50_ms": ms(percentile(&times, 0.5)), "p99_ms": ms(percentile(&times, 0.99))}));
    }
    Ok(out)
}

/// Opens an engine's index and runs the queries.
fn query(engine: &str, dir: &Path, n: usize) -> Result<Value> {
    let t = Instant::now();
    let rows = match engine {
        "ours" => {
            let s = Segment::open(dir)?;
            let open = t.elapsed();
            let rss_open = status_mib("VmRSS:");
            (open, rss_open, latencies(&s, n)?)
        }
        _ => {
            let s = tantivy_source::Tantivy::open(dir)?;
            let open = t.elapsed();
            let rss_open = status_mib("VmRSS:");
            (open, rss_open, latencies(&s, n)?)
        }
    };
    Ok(
        json!({"open_ms": ms(rows.0), "rss_open_mib": rows.1, "rss_after_mib": status_mib("VmRSS:"),
        "queries": rows.2}),
    )
}

fn child(args: &[&str]) -> Result<Value> {
    let out = Command::new(std::env::current_exe()?)
        .args(args)
        .output()
        .context("running a step")?;
    if !out.status.success() {
        bail!("{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
    match arg(1) {
        "build-ours" => {
            println!("{}", build_ours(arg(2).parse()?, Path::new(arg(3)))?);
            return Ok(());
        }
        "build-tantivy" => {
            println!("{}", build_tantivy(Path::new(arg(2)), Path::new(arg(3)))?);
            return Ok(());
        }
        "build-range" => {
            let dir = Path::new(arg(4));
            println!("{}", build_range(arg(2).parse()?, arg(3).parse()?, dir)?);
            return Ok(());
        }
        "query-segments" => {
            println!("{}", query_segments(Path::new(arg(2)), arg(3).parse()?)?);
            return Ok(());
        }
        "query" => {
            println!("{}", query(arg(2), Path::new(arg(3)), arg(4).parse()?)?);
            return Ok(());
        }
        _ => {}
    }
    let n: usize = args.get(1).map_or(Ok(100_000), |a| a.parse())?;
    let rounds: usize = args.get(2).map_or(Ok(5), |a| a.parse())?;
    let work = tempfile::tempdir()?;
    let dir = |name: String| -> PathBuf { work.path().join(name) };
    let ns = n.to_string();
    // Builds, alternating; the first of each is kept for the query rounds.
    let mut builds: [Vec<Value>; 2] = [Vec::new(), Vec::new()];
    for r in 0..rounds {
        eprintln!("build round {}/{rounds}", r + 1);
        let ours = dir(format!("ours-{r}"));
        builds[0].push(child(&["build-ours", &ns, ours.to_str().context("path")?])?);
        let tv = dir(format!("tantivy-{r}"));
        let first = dir("ours-0".into());
        builds[1].push(child(&[
            "build-tantivy",
            first.to_str().context("path")?,
            tv.to_str().context("path")?,
        ])?);
        if r > 0 {
            std::fs::remove_dir_all(&ours)?;
            std::fs::remove_dir_all(&tv)?;
        }
    }
    let mut runs: [Vec<Value>; 2] = [Vec::new(), Vec::new()];
    for r in 0..rounds {
        eprintln!("query round {}/{rounds}", r + 1);
        for (i, (engine, d)) in [("ours", "ours-0"), ("tantivy", "tantivy-0")]
            .iter()
            .enumerate()
        {
            let d = dir(d.to_string());
            runs[i].push(child(&["query", engine, d.to_str().context("path")?, &ns])?);
        }
    }
    let col = |v: &[Value], k: &str| {
        v.iter()
            .map(|x| x[k].as_f64().unwrap_or(0.0))
            .collect::<Vec<_>>()
    };
    println!("{n} documents, min / median / max of {rounds} rounds (alternating)\n");
    println!("| | ours (front-coded table + roaring) | tantivy 0.27 |\n|---|---|---|");
    println!(
        "| analysis into memory (shared by both), s | {} | — |",
        mmm(col(&builds[0], "analysis_secs"), 1, "")
    );
    println!(
        "| writing the index, s | {} | {} |",
        mmm(col(&builds[0], "write_secs"), 2, ""),
        mmm(col(&builds[1], "write_secs"), 2, "")
    );
    let mib = |v: Vec<f64>| v.into_iter().map(|b| b / 1048576.0).collect::<Vec<_>>();
    println!(
        "| on disk, MiB | {} | {} |",
        mmm(mib(col(&builds[0], "bytes")), 0, ""),
        mmm(mib(col(&builds[1], "bytes")), 0, "")
    );
    println!(
        "| open, ms | {} | {} |",
        mmm(col(&runs[0], "open_ms"), 2, ""),
        mmm(col(&runs[1], "open_ms"), 2, "")
    );
    println!(
        "| RSS after open, MiB | {} | {} |",
        mmm(col(&runs[0], "rss_open_mib"), 0, ""),
        mmm(col(&runs[1], "rss_open_mib"), 0, "")
    );
    println!(
        "| RSS after the queries, MiB | {} | {} |",
        mmm(col(&runs[0], "rss_after_mib"), 0, ""),
        mmm(col(&runs[1], "rss_after_mib"), 0, "")
    );
    let queries = runs[0][0]["queries"].as_array().map_or(0, Vec::len);
    for q in 0..queries {
        let name = runs[0][0]["queries"][q]["query"].as_str().unwrap_or("");
        let cell = |e: usize| {
            let hits = runs[e][0]["queries"][q]["hits"].as_u64().unwrap_or(0);
            let p = |k: &str| {
                runs[e]
                    .iter()
                    .map(|r| r["queries"][q][k].as_f64().unwrap_or(0.0))
                    .collect::<Vec<_>>()
            };
            (
                hits,
                format!(
                    "p50 {} ms, p99 {} ms",
                    mmm(p("p50_ms"), 3, ""),
                    mmm(p("p99_ms"), 3, "")
                ),
            )
        };
        let (a, b) = (cell(0), cell(1));
        if a.0 != b.0 {
            bail!("{name}: {} hits from ours, {} from tantivy", a.0, b.0);
        }
        println!(
            "| {name}, {} hits (evaluation only, {RUNS} runs) | {} | {} |",
            a.0, a.1, b.1
        );
    }
    Ok(())
}
