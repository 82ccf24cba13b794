//! The embedded search index. Documents live in the embedded database (durable, shared by every
//! process on the machine), each numbered by its change sequence. The index over them is in
//! parts that share those numbers: segments on disk, memory-mapped by every process that
//! searches, cover the documents up to a point recorded in the database (`search_segments`);
//! each process indexes the changes after that point in memory and catches up with the table
//! before every search, so a search sees every write committed before it.
//!
//! One process at a time (the holder of the replica's lock file) writes: when its in-memory part
//! reaches [`FLUSH_DOCS`] documents (and at shutdown) it becomes a segment, and runs of
//! [`MERGE_FACTOR`] segments of a size are merged into one in the background. Segments are
//! written whole and then recorded in one transaction, so a crash at any point leaves the last
//! recorded set, and the changes after it are indexed again from the table. Other processes
//! follow: when the recorded set changes they map the new segments and index only what comes
//! after them.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use roaring::RoaringBitmap;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde_json::Value;

use super::db::{Db, DbError};
use dss_core::clock::SharedClock;
use dss_core::ports::search::{Hit, SearchError, SearchIndex, SearchPage, SearchRequest};
use dss_search::segment::{merge, write_from_memory};
use dss_search::{
    Budget, EvalContext, MemIndex, QueryLimits, Segment, SortKey, Source, TopK, evaluate,
    parse_body,
};

/// Documents the in-memory part holds before the writer turns it into a segment.
pub const FLUSH_DOCS: u64 = 10_000;
/// Segments of one size merged at a time.
pub const MERGE_FACTOR: usize = 4;

impl From<DbError> for SearchError {
    fn from(e: DbError) -> Self {
        SearchError::Backend(e.to_string())
    }
}

fn backend(e: impl std::fmt::Display) -> SearchError {
    SearchError::Backend(e.to_string())
}

/// This process is the replica's writer while it holds the lock file.
#[derive(Debug)]
struct Writer {
    _lock: File,
    merging: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
struct ReplicaIndex {
    /// The recorded segments were read.
    loaded: bool,
    /// The recorded set in use (0: none).
    generation: i64,
    /// Change sequences up to this one are in `segments` (or dead).
    covered: i64,
    segments: Vec<Arc<Segment>>,
    /// Documents after `covered`, numbered by their change sequence.
    tail: MemIndex,
    /// Every live document, in any part.
    live: RoaringBitmap,
    /// Highest change sequence applied.
    seq: i64,
    /// In-memory documents before the next segment is written, after a failed attempt.
    flush_at: u64,
    writer: Option<Writer>,
}

/// The embedded [`SearchIndex`].
#[derive(Debug, Clone)]
pub struct EmbeddedSearch {
    db: Db,
    clock: SharedClock,
    replicas: Arc<Mutex<HashMap<String, Arc<RwLock<ReplicaIndex>>>>>,
    /// Where segments go; without it the index is kept in memory only.
    dir: Option<PathBuf>,
    flush_docs: u64,
    /// What one query may ask.
    limits: QueryLimits,
    /// The connection the index catches up through (unmapped: the documents it reads once
    /// need not stay resident).
    scan: Arc<Mutex<Option<Connection>>>,
}

/// What `search_segments` records for a replica.
struct Manifest {
    generation: i64,
    covered: i64,
    segments: Vec<String>,
    live: RoaringBitmap,
}

fn read_manifest(c: &Connection, replica: &str) -> Result<Option<Manifest>, DbError> {
    let row: Option<(i64, i64, String, Vec<u8>)> = c
        .prepare_cached(
            "SELECT generation, covered, segments, live FROM search_segments WHERE replica = ?1",
        )?
        .query_row(params![replica], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((generation, covered, segments, live)) = row else {
        return Ok(None);
    };
    let segments: Vec<String> = serde_json::from_str(&segments)
        .map_err(|e| DbError::Task(format!("search_segments of {replica}: {e}")))?;
    let live = RoaringBitmap::deserialize_from(&live[..])
        .map_err(|e| DbError::Task(format!("search_segments of {replica}: {e}")))?;
    Ok(Some(Manifest {
        generation,
        covered,
        segments,
        live,
    }))
}

/// Records a new set of segments if the recorded one is still `expected`; `false` if not.
fn commit_manifest(
    db: &Db,
    replica: &str,
    expected: i64,
    m: &Manifest,
) -> Result<bool, SearchError> {
    let segments = serde_json::to_string(&m.segments).map_err(backend)?;
    let mut live = Vec::with_capacity(m.live.serialized_size());
    m.live.serialize_into(&mut live).map_err(backend)?;
    let replica = replica.to_string();
    let generation = m.generation;
    let covered = m.covered;
    Ok(db.write_inline(move |c| {
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: Option<i64> = tx
            .prepare_cached("SELECT generation FROM search_segments WHERE replica = ?1")?
            .query_row(params![replica], |r| r.get(0))
            .optional()?;
        if current.unwrap_or(0) != expected {
            return Ok(false);
        }
        tx.prepare_cached(
            "INSERT INTO search_segments (replica, generation, covered, segments, live)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (replica) DO UPDATE SET generation = excluded.generation,
               covered = excluded.covered, segments = excluded.segments, live = excluded.live",
        )?
        .execute(params![replica, generation, covered, segments, live])?;
        tx.commit()?;
        Ok(true)
    })?)
}

/// A put: replica, document id, the document's JSON text.
type PutWork = (String, String, String);

/// Writes one document in a group's transaction; `false` when it is unchanged.
fn put_in(tx: &Transaction<'_>, (replica, id, text): PutWork) -> Result<bool, DbError> {
    let old: Option<Option<String>> = tx
        .prepare_cached(BY_ID)?
        .query_row(params![replica, id], |r| r.get(0))
        .optional()?;
    if old.flatten().as_deref() == Some(text.as_str()) {
        return Ok(false);
    }
    tx.prepare_cached(
        "INSERT INTO search_docs (replica, id, seq, doc) VALUES (?1, ?2,
           (SELECT COALESCE(MAX(seq), 0) + 1 FROM search_docs WHERE replica = ?1), ?3)
         ON CONFLICT (replica, id) DO UPDATE SET seq = excluded.seq, doc = excluded.doc",
    )?
    .execute(params![replica, id, text])?;
    Ok(true)
}

/// Selects a document by its id (`?2`) in a replica (`?1`).
const BY_ID: &str = "SELECT doc FROM search_docs WHERE replica = ?1 AND id = ?2";
/// Selects a document by its change sequence (`?2`) in a replica (`?1`).
const BY_SEQ: &str = "SELECT doc FROM search_docs WHERE replica = ?1 AND seq = ?2";

/// The document `select` (`BY_ID` or `BY_SEQ`) finds, if it has one.
fn load_doc(
    conn: &Connection,
    select: &str,
    replica: &str,
    key: impl rusqlite::ToSql,
) -> Result<Option<Value>, DbError> {
    let text: Option<Option<String>> = conn
        .prepare_cached(select)?
        .query_row(params![replica, key], |r| r.get(0))
        .optional()?;
    Ok(text.flatten().and_then(|t| serde_json::from_str(&t).ok()))
}

/// Removes the files of segments a merge replaced (searches still holding them keep reading
/// their mappings).
fn remove_segments(replaced: Vec<Arc<Segment>>) {
    for s in replaced {
        if let Err(e) = std::fs::remove_dir_all(s.dir()) {
            tracing::warn!(path = %s.dir().display(), error = %e, "cannot remove a merged search segment");
        }
    }
}

/// The directory of a replica's segments.
fn replica_dir(dir: &Path, replica: &str) -> PathBuf {
    dir.join(replica)
}

/// The tier of a segment of `documents`: segments of one tier are merged together.
fn tier(documents: u64, flush: u64) -> u32 {
    (documents.max(1) / flush.max(1))
        .max(1)
        .ilog(MERGE_FACTOR as u64)
}

impl ReplicaIndex {
    /// Uses the recorded segments: the in-memory part restarts after them.
    fn load(&mut self, db: &Db, replica: &str, dir: Option<&Path>) -> Result<(), SearchError> {
        self.loaded = true;
        let Some(dir) = dir else { return Ok(()) };
        // A segment can disappear between reading the record and opening it (merged away by
        // the writer): the record is read again.
        let mut unreadable = String::new();
        for _ in 0..3 {
            let Some(m) = db.read_inline(|c| read_manifest(c, replica))? else {
                return Ok(());
            };
            self.generation = m.generation;
            match self.open_all(&replica_dir(dir, replica), &m.segments) {
                Ok(opened) => {
                    self.segments = opened;
                    self.restart_after(m.covered, m.live);
                    return Ok(());
                }
                Err(why) => unreadable = why,
            }
        }
        // Not usable: everything is indexed again from the table (and the writer records new
        // segments in place of these).
        tracing::warn!(replica, error = %unreadable, "search segments unreadable; indexing again from the database");
        self.segments.clear();
        self.restart_after(0, RoaringBitmap::new());
        Ok(())
    }

    /// The named segments in `rdir`, those already open reused; why one cannot be opened.
    fn open_all(&self, rdir: &Path, names: &[String]) -> Result<Vec<Arc<Segment>>, String> {
        names
            .iter()
            .map(|name| {
                let open = self
                    .segments
                    .iter()
                    .find(|s| s.dir().file_name().is_some_and(|f| f == name.as_str()));
                match open {
                    Some(s) => Ok(s.clone()),
                    None => Segment::open(&rdir.join(name))
                        .map(Arc::new)
                        .map_err(|e| format!("{name}: {e}")),
                }
            })
            .collect()
    }

    /// Empties the in-memory part, to index again what comes after `covered`.
    fn restart_after(&mut self, covered: i64, live: RoaringBitmap) {
        self.covered = covered;
        self.live = live;
        self.tail = MemIndex::new();
        self.seq = covered;
    }

    /// Applies one changed row: older versions of the document stop being live.
    fn apply(&mut self, id: &str, seq: i64, doc: Option<Value>) -> Result<(), SearchError> {
        for s in &self.segments {
            if let Some(o) = s.ord_of(id) {
                self.live.remove(o);
            }
        }
        if let Some(o) = self.tail.ord_of(id) {
            self.live.remove(o);
            self.tail.remove(id);
        }
        if let Some(doc) = doc {
            let ord = u32::try_from(seq).map_err(|_| {
                backend("the search index's change sequence passed 2^32; rebuild the index")
            })?;
            self.tail.insert_at(id, &doc, ord);
            self.live.insert(ord);
        }
        self.seq = seq;
        Ok(())
    }

    /// The live documents up to change sequence `seq`.
    fn live_through(&self, seq: i64) -> RoaringBitmap {
        let mut live = self.live.clone();
        if let Ok(seq) = u32::try_from(seq)
            && seq < u32::MAX
        {
            live.remove_range(seq + 1..);
        }
        live
    }

    /// Takes the writer's lock if no other process holds it; `false` if one does.
    fn become_writer(&mut self, dir: &Path, replica: &str) -> Result<bool, SearchError> {
        if self.writer.is_some() {
            return Ok(true);
        }
        let rdir = replica_dir(dir, replica);
        dss_core::private_files::create_dir(dir).map_err(backend)?;
        dss_core::private_files::create_dir(&rdir).map_err(backend)?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{replica}.lock")))
            .map_err(backend)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(false),
            Err(std::fs::TryLockError::Error(e)) => return Err(backend(e)),
        }
        self.writer = Some(Writer {
            _lock: lock,
            merging: Arc::default(),
        });
        // What an earlier writer left behind (unfinished or replaced segments) goes, and so does
        // the in-memory index's snapshot file of earlier versions.
        self.remove_unrecorded(&rdir);
        let _ = std::fs::remove_file(dir.join(format!("{replica}.idx")));
        Ok(true)
    }

    /// Removes segment directories the record does not name (only the writer calls this).
    fn remove_unrecorded(&self, rdir: &Path) {
        let Ok(entries) = std::fs::read_dir(rdir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if !self.segments.iter().any(|s| s.dir() == path)
                && let Err(err) = std::fs::remove_dir_all(&path)
            {
                tracing::warn!(path = %path.display(), error = %err, "cannot remove an old search segment");
            }
        }
    }

    /// Turns the in-memory part into a segment and records it, becoming the writer if no
    /// process is; `false` when another process is the writer. (The writer's start-up calls it
    /// too, so that merges left over by an earlier writer go on.)
    fn flush(&mut self, db: &Db, replica: &str, dir: &Path) -> Result<bool, SearchError> {
        if !self.become_writer(dir, replica)? {
            return Ok(false);
        }
        if self.seq == self.covered {
            return Ok(true);
        }
        let (first, last) = (self.covered + 1, self.seq);
        let mut keep = self.live.clone();
        keep.remove_range(..first as u32);
        let mut segments = self.segments.clone();
        if !keep.is_empty() {
            let name = format!("{first:010}-{last:010}-{}", uuid::Uuid::new_v4().simple());
            let path = replica_dir(dir, replica).join(&name);
            let seg = write_from_memory(&self.tail, &keep, &path, first as u32, last as u32)
                .map_err(|e| backend(format!("writing search segment {name}: {e}")))?;
            segments.push(Arc::new(seg));
        }
        self.record(db, replica, segments, last)?;
        self.tail = MemIndex::new();
        self.flush_at = 0;
        Ok(true)
    }

    /// Records `segments` as covering up to `covered` and starts using them. The files of
    /// segments left out are the caller's to remove ([`remove_segments`]), once it has let go of
    /// the index: a merge removes its run.
    fn record(
        &mut self,
        db: &Db,
        replica: &str,
        segments: Vec<Arc<Segment>>,
        covered: i64,
    ) -> Result<(), SearchError> {
        let live = self.live_through(covered);
        let m = Manifest {
            generation: self.generation + 1,
            covered,
            segments: segments
                .iter()
                .filter_map(|s| Some(s.dir().file_name()?.to_str()?.to_string()))
                .collect(),
            live,
        };
        if !commit_manifest(db, replica, self.generation, &m)? {
            return Err(backend(
                "the search segments were recorded by another writer; indexing continues from \
                 the database",
            ));
        }
        self.generation = m.generation;
        self.covered = covered;
        self.segments = segments;
        Ok(())
    }

    /// A run of [`MERGE_FACTOR`] adjacent segments of one tier, the lowest such tier first
    /// (small merges are quick and keep the count down), if there is one.
    fn merge_candidates(&self, flush: u64) -> Option<Vec<Arc<Segment>>> {
        let tiers: Vec<u32> = self
            .segments
            .iter()
            .map(|s| tier(s.meta().documents, flush))
            .collect();
        let mut best: Option<(u32, usize)> = None;
        for (i, run) in tiers.windows(MERGE_FACTOR).enumerate() {
            if run.iter().all(|t| *t == run[0]) && best.is_none_or(|(t, _)| run[0] < t) {
                best = Some((run[0], i));
            }
        }
        best.map(|(_, i)| self.segments[i..i + MERGE_FACTOR].to_vec())
    }
}

impl EmbeddedSearch {
    /// The index over `db`, in memory only until [`EmbeddedSearch::with_segments`].
    pub fn new(db: &Db, clock: SharedClock) -> Self {
        Self {
            db: db.clone(),
            clock,
            replicas: Arc::default(),
            dir: None,
            flush_docs: FLUSH_DOCS,
            limits: QueryLimits::default(),
            scan: Arc::default(),
        }
    }

    /// Applies `limits` to every query (default: [`QueryLimits::default`]).
    pub fn with_limits(mut self, limits: QueryLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Keeps the index in segments under `dir`.
    pub fn with_segments(mut self, dir: PathBuf) -> Self {
        self.dir = Some(dir);
        self
    }

    /// Writes a segment every `n` documents (default [`FLUSH_DOCS`]).
    pub fn with_flush_docs(mut self, n: u64) -> Self {
        self.flush_docs = n.max(1);
        self
    }

    fn replica(&self, name: &str) -> Arc<RwLock<ReplicaIndex>> {
        let mut map = self.replicas.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(name.to_string()).or_default().clone()
    }

    /// Runs `f` on the catch-up connection (opened on first use).
    fn scan<R>(&self, f: impl FnOnce(&Connection) -> Result<R, DbError>) -> Result<R, DbError> {
        let mut conn = self.scan.lock().unwrap_or_else(|p| p.into_inner());
        let c = match conn.as_mut() {
            Some(c) => c,
            None => conn.insert(self.db.unmapped_reader()?),
        };
        f(c)
    }

    /// Applies committed changes the index has not seen, following the recorded segments.
    fn catch_up(
        &self,
        replica: &str,
        index: &Arc<RwLock<ReplicaIndex>>,
    ) -> Result<(), SearchError> {
        let db = &self.db;
        let (latest, generation): (i64, i64) = db.read_inline(|c| {
            Ok(c.prepare_cached(
                "SELECT (SELECT COALESCE(MAX(seq), 0) FROM search_docs WHERE replica = ?1),
                        (SELECT COALESCE(MAX(generation), 0) FROM search_segments WHERE replica = ?1)",
            )?
            .query_row(params![replica], |r| Ok((r.get(0)?, r.get(1)?)))?)
        })?;
        {
            let ri = index.read().unwrap_or_else(|p| p.into_inner());
            if ri.loaded && latest <= ri.seq && generation == ri.generation {
                return Ok(());
            }
        }
        let mut guard = index.write().unwrap_or_else(|p| p.into_inner());
        let ri = &mut *guard;
        if !ri.loaded || (ri.generation != generation && ri.writer.is_none()) {
            ri.load(db, replica, self.dir.as_deref())?;
        }
        // In chunks, so neither memory nor a read transaction grows with the backlog.
        let mut applied = 0usize;
        loop {
            let from = ri.seq;
            let rows: Vec<(String, i64, Option<String>)> = self.scan(|c| {
                let mut st = c.prepare_cached(
                    "SELECT id, seq, doc FROM search_docs WHERE replica = ?1 AND seq > ?2
                     ORDER BY seq LIMIT 1000",
                )?;
                let rows = st
                    .query_map(params![replica, from], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })?;
            if rows.is_empty() {
                break;
            }
            for (id, seq, doc) in rows {
                let doc = doc.and_then(|t| serde_json::from_str::<Value>(&t).ok());
                ri.apply(&id, seq, doc)?;
                applied += 1;
            }
            if ri.tail.len() >= self.flush_docs.max(ri.flush_at)
                && let Some(dir) = &self.dir
            {
                match ri.flush(db, replica, dir) {
                    Ok(true) => self.merge_in_background(replica, index, ri),
                    Ok(false) => {}
                    Err(e) => {
                        // Searches go on from memory; the next attempt waits for twice as much.
                        ri.flush_at = ri.tail.len() * 2;
                        tracing::error!(replica, error = %e, "writing a search segment failed");
                    }
                }
            }
        }
        // Replaced documents leave entries behind; drop them once they outnumber live ones.
        if ri.tail.garbage() > ri.tail.len() + 10_000 {
            ri.tail.purge();
        }
        if applied >= 1000 {
            tracing::info!(
                replica,
                applied,
                documents = ri.live.len(),
                segments = ri.segments.len(),
                in_memory = ri.tail.len(),
                "search index caught up"
            );
        }
        Ok(())
    }

    /// Merges runs of same-tier segments ([`ReplicaIndex::merge_candidates`]) on a thread of its
    /// own while there are any, unless a merge is under way; searches go on with the segments as
    /// they are until each merge is recorded.
    fn merge_in_background(
        &self,
        replica: &str,
        index: &Arc<RwLock<ReplicaIndex>>,
        ri: &ReplicaIndex,
    ) {
        let (Some(dir), Some(writer)) = (self.dir.clone(), ri.writer.as_ref()) else {
            return;
        };
        let Some(run) = ri.merge_candidates(self.flush_docs) else {
            return;
        };
        if writer.merging.swap(true, Ordering::AcqRel) {
            return;
        }
        let merging = writer.merging.clone();
        let mut keep = ri.live_through(ri.covered);
        let (db, index, replica) = (self.db.clone(), index.clone(), replica.to_string());
        let flush = self.flush_docs;
        let spawned = std::thread::Builder::new()
            .name(format!("search-merge-{replica}"))
            .spawn(move || {
                background_priority();
                let mut run = run;
                loop {
                    let t = std::time::Instant::now();
                    let parts: Vec<&Segment> = run.iter().map(|s| &**s).collect();
                    let (first, last) = (parts[0].meta().first, parts[parts.len() - 1].meta().last);
                    let name = format!("{first:010}-{last:010}-{}", uuid::Uuid::new_v4().simple());
                    let path = replica_dir(&dir, &replica).join(&name);
                    let merged = match merge(&parts, &keep, &path) {
                        Ok(m) => Arc::new(m),
                        Err(e) => {
                            tracing::error!(replica, error = %e, "merging search segments failed");
                            break;
                        }
                    };
                    let mut guard = index.write().unwrap_or_else(|p| p.into_inner());
                    let ri = &mut *guard;
                    // The run is still in place (only this thread removes segments).
                    let Some(at) = ri.segments.iter().position(|s| Arc::ptr_eq(s, &run[0])) else {
                        break;
                    };
                    let mut segments = ri.segments.clone();
                    segments.splice(at..at + run.len(), [merged.clone()]);
                    let covered = ri.covered;
                    if let Err(e) = ri.record(&db, &replica, segments, covered) {
                        tracing::error!(replica, error = %e, "recording merged search segments failed");
                        let _ = std::fs::remove_dir_all(&path);
                        break;
                    }
                    tracing::info!(replica, documents = merged.meta().documents, secs = t.elapsed().as_secs_f64(), "search segments merged");
                    // A merge can complete a run of the next tier.
                    let next = ri
                        .merge_candidates(flush)
                        .map(|next| (next, ri.live_through(ri.covered)));
                    // Searches and puts go on while the merged run's files are removed.
                    drop(guard);
                    remove_segments(std::mem::take(&mut run));
                    match next {
                        Some((next, live)) => (run, keep) = (next, live),
                        None => break,
                    }
                }
                merging.store(false, Ordering::Release);
            });
        if let Err(e) = spawned {
            writer.merging.store(false, Ordering::Release);
            tracing::error!(error = %e, "cannot start a search merge");
        }
    }

    fn run_search(
        &self,
        replica: &str,
        index: &Arc<RwLock<ReplicaIndex>>,
        req: &SearchRequest,
        now: time::OffsetDateTime,
    ) -> Result<SearchPage, SearchError> {
        let limits = &self.limits;
        let query = parse_body(&req.body).map_err(|e| SearchError::BadQuery(e.0))?;
        dss_search::limits::check(&query, limits).map_err(|e| SearchError::BadQuery(e.0))?;
        let after = match &req.after {
            Some(c) => Some(SortKey::parse_cursor(c).ok_or_else(|| {
                SearchError::BadQuery(format!("malformed search_after cursor {c:?}"))
            })?),
            None => None,
        };
        self.catch_up(replica, index)?;
        let ri = index.read().unwrap_or_else(|p| p.into_inner());
        let db = &self.db;
        let loader = |ord: u32| {
            db.read_inline(|c| load_doc(c, BY_SEQ, replica, ord))
                .ok()
                .flatten()
        };
        let budget = Budget::new(limits.max_cost);
        let ctx = EvalContext {
            now,
            loader: &loader,
            budget: &budget,
        };
        let bad = |e: dss_search::QueryError| SearchError::BadQuery(e.0);
        let mut hits = evaluate(&ri.tail, &query, &ctx).map_err(bad)?;
        for s in &ri.segments {
            hits |= evaluate(&**s, &query, &ctx).map_err(bad)?;
        }
        hits &= &ri.live;
        // Each hit's key comes from the part that holds it.
        let mut top = TopK::new(after.as_ref(), req.size);
        let mut rest = hits.clone();
        for s in &ri.segments {
            let mine = &rest & s.ordinals();
            s.offer(&mine, &mut top);
            rest -= mine;
        }
        for ord in &rest {
            if let Some(k) = ri.tail.key(ord) {
                top.offer(k, ord);
            }
        }
        let mut out = Vec::with_capacity(req.size.min(hits.len() as usize));
        for (key, _) in top.into_sorted() {
            let source = if req.with_source {
                db.read_inline(|c| load_doc(c, BY_ID, replica, &key.id))?
            } else {
                None
            };
            out.push(Hit {
                id: key.id.clone(),
                cursor: key.cursor(),
                source,
            });
        }
        Ok(SearchPage {
            total: hits.len(),
            hits: out,
        })
    }
}

#[async_trait]
impl SearchIndex for EmbeddedSearch {
    async fn put(&self, replica: &str, id: &str, doc: &Value) -> Result<bool, SearchError> {
        let text = serde_json::to_string(doc).map_err(backend)?;
        let work = (replica.to_string(), id.to_string(), text);
        Ok(self.db.grouped(move |tx| put_in(tx, work)).await?)
    }

    async fn get(&self, replica: &str, id: &str) -> Result<Option<Value>, SearchError> {
        let (replica, id) = (replica.to_string(), id.to_string());
        Ok(self
            .db
            .read(move |c| load_doc(c, BY_ID, &replica, &id))
            .await?)
    }

    async fn delete(&self, replica: &str, id: &str) -> Result<bool, SearchError> {
        let (replica, id) = (replica.to_string(), id.to_string());
        Ok(self
            .db
            .write(move |c| {
                let n = c
                    .prepare_cached(
                        "UPDATE search_docs SET doc = NULL,
                           seq = (SELECT MAX(seq) + 1 FROM search_docs WHERE replica = ?1)
                         WHERE replica = ?1 AND id = ?2 AND doc IS NOT NULL",
                    )?
                    .execute(params![replica, id])?;
                Ok(n > 0)
            })
            .await?)
    }

    async fn warm_up(&self, replica: &str) -> Result<(), SearchError> {
        let (this, index, replica) = (self.clone(), self.replica(replica), replica.to_string());
        tokio::task::spawn_blocking(move || this.catch_up(&replica, &index))
            .await
            .map_err(backend)?
    }

    /// Writes what is in memory as a segment (if this process is the writer), so that the next
    /// start maps it instead of indexing it again.
    async fn persist(&self, replica: &str) -> Result<(), SearchError> {
        let Some(dir) = self.dir.clone() else {
            return Ok(());
        };
        let (this, index, replica) = (self.clone(), self.replica(replica), replica.to_string());
        tokio::task::spawn_blocking(move || {
            this.catch_up(&replica, &index)?;
            let mut guard = index.write().unwrap_or_else(|p| p.into_inner());
            if guard.flush(&this.db, &replica, &dir)? {
                this.merge_in_background(&replica, &index, &guard);
            }
            Ok(())
        })
        .await
        .map_err(backend)?
    }

    async fn search(&self, replica: &str, req: &SearchRequest) -> Result<SearchPage, SearchError> {
        let (this, index, replica) = (self.clone(), self.replica(replica), replica.to_string());
        let (req, now) = (req.clone(), self.clock.now());
        tokio::task::spawn_blocking(move || this.run_search(&replica, &index, &req, now))
            .await
            .map_err(backend)?
    }
}

/// Gives the calling thread the lowest priority (nice 19): merging is background work, and the
/// searches and writes sharing the cores come first. Best effort.
fn background_priority() {
    let thread = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(thread), 19) {
        tracing::debug!(error = %e, "cannot lower the priority of the search merge thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_run_at_the_lowest_priority_and_only_their_thread_does() {
        let before = rustix::process::getpriority_process(None).expect("priority");
        let merged = std::thread::spawn(|| {
            background_priority();
            rustix::process::getpriority_process(Some(rustix::thread::gettid()))
        })
        .join()
        .expect("thread")
        .expect("priority");
        assert_eq!(merged, 19);
        assert_eq!(
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).expect("priority"),
            before
        );
    }

    /// Segments of these sizes (documents), written for real.
    fn segments(dir: &Path, sizes: &[u32]) -> Vec<Arc<Segment>> {
        let mut next = 1;
        sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let mut mem = MemIndex::new();
                for d in 0..n {
                    mem.insert_at(&format!("d{next}"), &serde_json::json!({"d": d}), next);
                    next += 1;
                }
                let live = mem.live().clone();
                let (first, last) = (next - n, next - 1);
                let seg = write_from_memory(&mem, &live, &dir.join(format!("s{i}")), first, last)
                    .expect("write");
                Arc::new(seg)
            })
            .collect()
    }

    #[test]
    fn merges_take_the_lowest_tier_run_of_adjacent_segments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut case = 0;
        let mut pick = |sizes: &[u32]| {
            case += 1;
            let ri = ReplicaIndex {
                segments: segments(&dir.path().join(case.to_string()), sizes),
                ..ReplicaIndex::default()
            };
            let run = ri.merge_candidates(1)?;
            ri.segments.iter().position(|s| Arc::ptr_eq(s, &run[0]))
        };
        // Tiers with one document per flush: 1–3 → 0, 4–15 → 1, 16… → 2.
        assert_eq!(pick(&[1, 1, 1]), None);
        assert_eq!(pick(&[4, 1, 1, 1, 1, 1]), Some(1));
        assert_eq!(pick(&[5, 4, 6, 7, 1, 1, 2]), Some(0));
        assert_eq!(pick(&[16, 4, 4, 4, 4, 1, 1, 1, 1]), Some(5));
        assert_eq!(pick(&[16, 1, 4, 1, 1, 1]), None);
    }
}
