//! The embedded search index: documents live in the embedded database (durable, shared by every
//! process on the machine); each process keeps an in-memory inverted index per replica that
//! follows the table's change sequence, so a search sees every write committed before it.
//!
//! A process starts its index from the replica's snapshot file (written after loading and at
//! shutdown) and applies only the changes after it; without one it analyses every document.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::Value;

use super::db::{Db, DbError};
use dss_core::clock::SharedClock;
use dss_core::ports::search::{Hit, SearchError, SearchIndex, SearchPage, SearchRequest};
use dss_search::{Budget, EvalContext, MemIndex, QueryLimits, SortKey, parse_body};

impl From<DbError> for SearchError {
    fn from(e: DbError) -> Self {
        SearchError::Backend(e.to_string())
    }
}

#[derive(Debug, Default)]
struct ReplicaIndex {
    mem: MemIndex,
    /// Highest change sequence applied.
    seq: i64,
    /// The snapshot was considered (it is read once, at the first catch-up).
    snapshot_tried: bool,
    /// The change sequence the snapshot file on disk includes (0: none known), so an unchanged
    /// index is not written again.
    snapshot_seq: AtomicI64,
}

/// The embedded [`SearchIndex`].
#[derive(Debug, Clone)]
pub struct EmbeddedSearch {
    db: Db,
    clock: SharedClock,
    replicas: Arc<Mutex<HashMap<String, Arc<RwLock<ReplicaIndex>>>>>,
    snapshots: Option<PathBuf>,
    /// One snapshot write at a time (they share a temp file name and the recorded token).
    persisting: Arc<tokio::sync::Mutex<()>>,
    /// What one query may ask.
    limits: QueryLimits,
}

fn snapshot_path(dir: &Path, replica: &str) -> PathBuf {
    dir.join(format!("{replica}.idx"))
}

/// Header of a snapshot file: a random token that the database records when the file is
/// written, so a snapshot is used only with the database it was taken from (not after the
/// database was replaced or restored from an older backup).
const SNAPSHOT_MAGIC: &[u8; 8] = b"DSSSNAP1";

/// Reads a replica's snapshot if the database vouches for it.
fn read_snapshot(db: &Db, dir: &Path, replica: &str, latest: i64) -> Option<(MemIndex, i64)> {
    use std::io::Read;
    let path = snapshot_path(dir, replica);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot open the search snapshot");
            return None;
        }
    };
    let mut r = std::io::BufReader::new(file);
    let mut head = [0u8; 8 + 36];
    if r.read_exact(&mut head).is_err() || &head[..8] != SNAPSHOT_MAGIC {
        tracing::warn!(path = %path.display(), "search snapshot unreadable; rebuilding");
        return None;
    }
    let token = String::from_utf8_lossy(&head[8..]).into_owned();
    let recorded: Option<String> = db
        .read_inline(|c| {
            Ok(
                c.prepare_cached("SELECT token FROM search_snapshots WHERE replica = ?1")?
                    .query_row(params![replica], |r| r.get(0))
                    .optional()?,
            )
        })
        .ok()
        .flatten();
    if recorded.as_deref() != Some(token.as_str()) {
        tracing::warn!(path = %path.display(), "search snapshot is not from this database; rebuilding");
        return None;
    }
    match MemIndex::read_snapshot(&mut r) {
        Ok((mem, seq)) if seq <= latest => Some((mem, seq)),
        Ok((_, seq)) => {
            tracing::warn!(path = %path.display(), seq, latest, "search snapshot is ahead of the database; ignored");
            None
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "search snapshot unreadable; rebuilding");
            None
        }
    }
}

fn load_doc(conn: &Connection, replica: &str, id: &str) -> Result<Option<Value>, DbError> {
    let text: Option<Option<String>> = conn
        .prepare_cached("SELECT doc FROM search_docs WHERE replica = ?1 AND id = ?2")?
        .query_row(params![replica, id], |r| r.get(0))
        .optional()?;
    Ok(text.flatten().and_then(|t| serde_json::from_str(&t).ok()))
}

impl EmbeddedSearch {
    /// The index over `db`.
    pub fn new(db: &Db, clock: SharedClock) -> Self {
        Self {
            db: db.clone(),
            clock,
            replicas: Arc::default(),
            snapshots: None,
            persisting: Arc::default(),
            limits: QueryLimits::default(),
        }
    }

    /// Applies `limits` to every query (default: [`QueryLimits::default`]).
    pub fn with_limits(mut self, limits: QueryLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Keeps snapshots of the in-memory indexes in `dir`.
    pub fn with_snapshots(mut self, dir: PathBuf) -> Self {
        self.snapshots = Some(dir);
        self
    }

    fn replica(&self, name: &str) -> Arc<RwLock<ReplicaIndex>> {
        let mut map = self.replicas.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(name.to_string()).or_default().clone()
    }

    /// Applies committed changes the in-memory index has not seen; rebuilds it when replaced
    /// documents have left too many dead entries.
    fn catch_up(
        db: &Db,
        replica: &str,
        index: &RwLock<ReplicaIndex>,
        snapshots: Option<&Path>,
    ) -> Result<(), DbError> {
        let seen = index.read().unwrap_or_else(|p| p.into_inner()).seq;
        let latest: i64 = db.read_inline(|c| {
            Ok(c.prepare_cached(
                "SELECT COALESCE(MAX(seq), 0) FROM search_docs WHERE replica = ?1",
            )?
            .query_row(params![replica], |r| r.get(0))?)
        })?;
        if latest <= seen {
            return Ok(());
        }
        let mut guard = index.write().unwrap_or_else(|p| p.into_inner());
        let ri = &mut *guard;
        if !ri.snapshot_tried {
            ri.snapshot_tried = true;
            if let Some((mem, seq)) = snapshots.and_then(|d| read_snapshot(db, d, replica, latest))
            {
                tracing::info!(
                    replica,
                    documents = mem.len(),
                    seq,
                    "search index restored from its snapshot"
                );
                ri.mem = mem;
                ri.seq = seq;
                *ri.snapshot_seq.get_mut() = seq;
            }
        }
        // In chunks, so neither memory nor a read transaction grows with the index.
        let mut applied = 0usize;
        loop {
            let from = ri.seq;
            let rows: Vec<(String, i64, Option<String>)> = db.read_inline(|c| {
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
                match doc.and_then(|t| serde_json::from_str::<Value>(&t).ok()) {
                    Some(d) => {
                        ri.mem.insert(&id, &d);
                    }
                    None => {
                        ri.mem.remove(&id);
                    }
                }
                ri.seq = seq;
                applied += 1;
            }
        }
        // Replaced documents leave entries behind; drop them once they outnumber live ones.
        if ri.mem.garbage() > ri.mem.len() + 10_000 {
            ri.mem.purge();
        }
        if applied >= 1000 {
            let st = ri.mem.stats();
            tracing::info!(
                replica,
                applied,
                documents = st.documents,
                fields = st.fields,
                terms = st.terms,
                word_pairs = st.pairs,
                values = st.values,
                "search index loaded"
            );
        }
        Ok(())
    }

    fn run_search(
        db: &Db,
        replica: &str,
        index: &RwLock<ReplicaIndex>,
        snapshots: Option<&Path>,
        req: &SearchRequest,
        now: time::OffsetDateTime,
        limits: &QueryLimits,
    ) -> Result<SearchPage, SearchError> {
        let query = parse_body(&req.body).map_err(|e| SearchError::BadQuery(e.0))?;
        dss_search::limits::check(&query, limits).map_err(|e| SearchError::BadQuery(e.0))?;
        let after = match &req.after {
            Some(c) => Some(SortKey::parse_cursor(c).ok_or_else(|| {
                SearchError::BadQuery(format!("malformed search_after cursor {c:?}"))
            })?),
            None => None,
        };
        Self::catch_up(db, replica, index, snapshots)?;
        let ri = index.read().unwrap_or_else(|p| p.into_inner());
        let loader = |ord: u32| {
            let id = ri.mem.id(ord)?.to_string();
            db.read_inline(|c| load_doc(c, replica, &id)).ok().flatten()
        };
        let budget = Budget::new(limits.max_cost);
        let hits = ri
            .mem
            .search(
                &query,
                &EvalContext {
                    now,
                    loader: &loader,
                    budget: &budget,
                },
            )
            .map_err(|e| SearchError::BadQuery(e.0))?;
        let page = ri.mem.top(&hits, after.as_ref(), req.size);
        let mut out = Vec::with_capacity(page.len());
        for ord in page {
            let Some(key) = ri.mem.key(ord) else { continue };
            let source = if req.with_source {
                db.read_inline(|c| load_doc(c, replica, &key.id))?
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
        let text = serde_json::to_string(doc).map_err(|e| SearchError::Backend(e.to_string()))?;
        let (replica, id) = (replica.to_string(), id.to_string());
        Ok(self
            .db
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let old: Option<Option<String>> = tx
                    .prepare_cached("SELECT doc FROM search_docs WHERE replica = ?1 AND id = ?2")?
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
                tx.commit()?;
                Ok(true)
            })
            .await?)
    }

    async fn get(&self, replica: &str, id: &str) -> Result<Option<Value>, SearchError> {
        let (replica, id) = (replica.to_string(), id.to_string());
        Ok(self.db.read(move |c| load_doc(c, &replica, &id)).await?)
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
        let db = self.db.clone();
        let index = self.replica(replica);
        let replica = replica.to_string();
        let snapshots = self.snapshots.clone();
        tokio::task::spawn_blocking(move || {
            Self::catch_up(&db, &replica, &index, snapshots.as_deref())
        })
        .await
        .map_err(|e| SearchError::Backend(e.to_string()))??;
        Ok(())
    }

    async fn persist(&self, replica: &str) -> Result<(), SearchError> {
        let Some(dir) = self.snapshots.clone() else {
            return Ok(());
        };
        let index = self.replica(replica);
        let _one_at_a_time = self.persisting.lock().await;
        let (idx, name) = (index.clone(), replica.to_string());
        let written =
            tokio::task::spawn_blocking(move || -> std::io::Result<Option<(String, i64)>> {
                use std::io::Write;
                let ri = idx.read().unwrap_or_else(|p| p.into_inner());
                if ri.seq == 0 || ri.snapshot_seq.load(Ordering::Acquire) == ri.seq {
                    return Ok(None);
                }
                let replica = name;
                dss_core::private_files::create_dir(&dir)?;
                let path = snapshot_path(&dir, &replica);
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                let token = uuid::Uuid::new_v4().to_string();
                let mut out = std::io::BufWriter::new(dss_core::private_files::create(&tmp)?);
                out.write_all(SNAPSHOT_MAGIC)?;
                out.write_all(token.as_bytes())?;
                ri.mem.write_snapshot(ri.seq, &mut out)?;
                let file = out.into_inner().map_err(|e| e.into_error())?;
                file.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                Ok(Some((token, ri.seq)))
            })
            .await
            .map_err(|e| SearchError::Backend(e.to_string()))?
            .map_err(|e| SearchError::Backend(format!("writing the search snapshot: {e}")))?;
        // The file is in place; from now on the database vouches for it. A crash in between leaves
        // a file the database does not know: it is ignored and the index rebuilt.
        if let Some((token, seq)) = written {
            let name = replica.to_string();
            self.db
                .write(move |c| {
                    c.execute(
                        "INSERT INTO search_snapshots (replica, token) VALUES (?1, ?2)
                         ON CONFLICT (replica) DO UPDATE SET token = excluded.token",
                        params![name, token],
                    )?;
                    Ok(())
                })
                .await?;
            index
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .snapshot_seq
                .store(seq, Ordering::Release);
        }
        Ok(())
    }

    async fn search(&self, replica: &str, req: &SearchRequest) -> Result<SearchPage, SearchError> {
        let db = self.db.clone();
        let index = self.replica(replica);
        let (replica, req) = (replica.to_string(), req.clone());
        let now = self.clock.now();
        let snapshots = self.snapshots.clone();
        let limits = self.limits;
        tokio::task::spawn_blocking(move || {
            Self::run_search(
                &db,
                &replica,
                &index,
                snapshots.as_deref(),
                &req,
                now,
                &limits,
            )
        })
        .await
        .map_err(|e| SearchError::Backend(e.to_string()))?
    }
}
