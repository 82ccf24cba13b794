//! The embedded SQLite database (WAL mode) shared by local buckets' object index and the queues.
//!
//! One file holds both so that committing an object and emitting its bucket event are one
//! transaction. Several processes on one machine may open the same file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use dss_config::Durability;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::Notify;

use super::group_commit::Writes;

/// Errors of the embedded database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The blocking task could not run.
    #[error("database task failed: {0}")]
    Task(String),
}

impl DbError {
    /// Whether the database could not write for lack of disk space.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::DiskFull)
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL, key TEXT NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL,
    content_type TEXT NOT NULL, created_ms INTEGER NOT NULL,
    sha256 TEXT, sha1 TEXT, s3_etag TEXT, crc32c TEXT, origin TEXT, creator TEXT,
    PRIMARY KEY (bucket, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY, max_receive INTEGER NOT NULL, dead_letter TEXT);
CREATE TABLE IF NOT EXISTS subscriptions (
    topic TEXT NOT NULL, queue TEXT NOT NULL, PRIMARY KEY (topic, queue)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, body TEXT NOT NULL,
    sent_ms INTEGER NOT NULL, visible_ms INTEGER NOT NULL, receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT, dead_reason TEXT);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, visible_ms, id);
CREATE TABLE IF NOT EXISTS search_docs (
    replica TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, doc TEXT,
    PRIMARY KEY (replica, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS search_docs_seq ON search_docs (replica, seq);
-- The segments of a replica's search index on disk: which segment directories hold the
-- documents up to change sequence `covered`, and which of their documents are live.
CREATE TABLE IF NOT EXISTS search_segments (
    replica TEXT PRIMARY KEY, generation INTEGER NOT NULL, covered INTEGER NOT NULL,
    segments TEXT NOT NULL, live BLOB NOT NULL);
-- Replaced by search_segments.
DROP TABLE IF EXISTS search_snapshots;
CREATE TABLE IF NOT EXISTS journal (
    replica TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, event_id TEXT NOT NULL,
    ts TEXT NOT NULL, body BLOB NOT NULL,
    PRIMARY KEY (replica, seq)) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS journal_event ON journal (replica, event_id, kind);
CREATE INDEX IF NOT EXISTS journal_ts ON journal (replica, ts);
CREATE TABLE IF NOT EXISTS webhook_subscriptions (
    replica TEXT NOT NULL, kind TEXT NOT NULL, uuid TEXT NOT NULL, owner TEXT NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (replica, kind, uuid)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS webhook_subscriptions_owner ON webhook_subscriptions (replica, kind, owner);
CREATE TABLE IF NOT EXISTS collection_owners (
    owner TEXT NOT NULL, uuid TEXT NOT NULL, version TEXT NOT NULL,
    PRIMARY KEY (owner, uuid, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS webhook_filter_failures (
    replica TEXT NOT NULL, kind TEXT NOT NULL, uuid TEXT NOT NULL, failures INTEGER NOT NULL,
    last_error TEXT NOT NULL, last_ms INTEGER NOT NULL,
    PRIMARY KEY (replica, kind, uuid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS webhook_revisions (replica TEXT PRIMARY KEY, revision INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id TEXT NOT NULL UNIQUE, subscription TEXT NOT NULL, replica TEXT NOT NULL, kind TEXT NOT NULL,
    owner TEXT NOT NULL, event_key TEXT NOT NULL, event_type TEXT NOT NULL,
    bundle_uuid TEXT NOT NULL, bundle_version TEXT, payload TEXT NOT NULL,
    state TEXT NOT NULL, attempts INTEGER NOT NULL, round_start INTEGER NOT NULL,
    round_started_ms INTEGER NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,
    last_status INTEGER, last_error TEXT, claimed_until_ms INTEGER);
CREATE UNIQUE INDEX IF NOT EXISTS webhook_deliveries_event ON webhook_deliveries (event_key, subscription);
CREATE INDEX IF NOT EXISTS webhook_deliveries_sub ON webhook_deliveries (subscription, created_ms);
CREATE TABLE IF NOT EXISTS webhook_attempts (
    subscription TEXT NOT NULL, at_ms INTEGER NOT NULL, delivery TEXT NOT NULL,
    attempt INTEGER NOT NULL, status INTEGER, latency_ms INTEGER NOT NULL, error TEXT,
    outcome TEXT NOT NULL,
    PRIMARY KEY (subscription, at_ms, delivery, attempt)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, until_ms INTEGER NOT NULL) WITHOUT ROWID;
";

/// Brings a database made by an earlier release up to [`SCHEMA`]: columns added since.
fn migrate(c: &Connection) -> rusqlite::Result<()> {
    let has_origin = c
        .prepare("SELECT 1 FROM pragma_table_info('objects') WHERE name = 'origin'")?
        .exists([])?;
    if !has_origin {
        c.execute_batch("ALTER TABLE objects ADD COLUMN origin TEXT")?;
    }
    let has_creator = c
        .prepare("SELECT 1 FROM pragma_table_info('objects') WHERE name = 'creator'")?
        .exists([])?;
    if !has_creator {
        c.execute_batch("ALTER TABLE objects ADD COLUMN creator TEXT")?;
    }
    let has_claims = c
        .prepare(
            "SELECT 1 FROM pragma_table_info('webhook_deliveries') WHERE name = 'claimed_until_ms'",
        )?
        .exists([])?;
    if !has_claims {
        c.execute_batch("ALTER TABLE webhook_deliveries ADD COLUMN claimed_until_ms INTEGER")?;
    }
    Ok(())
}

struct Inner {
    path: PathBuf,
    durability: Durability,
    writer: Arc<Mutex<Connection>>,
    /// The queue of grouped writes (see `group_commit.rs`).
    writes: Writes,
    readers: Mutex<Vec<Connection>>,
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
}

/// A handle to the embedded database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.inner.path)
            .finish()
    }
}

pub(super) fn open_conn(path: &Path, durability: Durability) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        if durability == Durability::Power {
            "FULL"
        } else {
            "NORMAL"
        },
    )?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    // Pages already checkpointed are read through a memory map, not a system call each.
    conn.pragma_update(None, "mmap_size", 1_i64 << 30)?;
    // Plans must not depend on bound values: otherwise every new `LIMIT ?` or range bound makes
    // SQLite re-compile the cached statement.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(conn)
}

impl Db {
    /// Opens (creating if needed) the database file.
    pub fn open(path: &Path, durability: Durability) -> Result<Self, DbError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| DbError::Task(format!("create {}: {e}", dir.display())))?;
        }
        // Webhook secrets and every user's metadata live here: the owner's alone (SQLite gives
        // its WAL and shared-memory files the database's mode).
        let private = |p: &Path| {
            dss_core::private_files::ensure(p)
                .map_err(|e| DbError::Task(format!("{}: {e}", p.display())))
        };
        if private(path)? {
            tracing::warn!(path = %path.display(), "the database was readable by other users; its mode is now 0600");
        }
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            let side = std::path::PathBuf::from(side);
            if side.exists() {
                dss_core::private_files::narrow(&side)
                    .map_err(|e| DbError::Task(format!("{}: {e}", side.display())))?;
            }
        }
        let writer = open_conn(path, durability)?;
        writer.execute_batch(SCHEMA)?;
        migrate(&writer)?;
        let writer = Arc::new(Mutex::new(writer));
        let writes = Writes::new(writer.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                durability,
                writer,
                writes,
                readers: Mutex::new(Vec::new()),
                wakers: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The configured durability.
    pub fn durability(&self) -> Durability {
        self.inner.durability
    }

    /// Runs `f` with the single writer connection on a blocking thread.
    pub async fn write<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, DbError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))?
    }

    /// Runs `f` with the single writer connection on the calling thread, which must be one that
    /// may block (a blocking-pool task or a thread of its own).
    pub fn write_inline<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        let mut conn = self.inner.writer.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn)
    }

    /// A reader connection of its own that reads without the memory map: for scans of many
    /// large rows (the search index catching up), which through the map would stay resident in
    /// the process (up to the map's size) for no later use.
    pub fn unmapped_reader(&self) -> Result<Connection, DbError> {
        let conn = open_conn(&self.inner.path, self.inner.durability)?;
        conn.pragma_update(None, "mmap_size", 0)?;
        Ok(conn)
    }

    /// Runs `f` with a pooled reader connection on a blocking thread.
    pub async fn read<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, DbError> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.read_inline(f))
            .await
            .map_err(|e| DbError::Task(e.to_string()))?
    }

    /// Runs `f` with a pooled reader connection on the calling thread. For index lookups that
    /// touch a bounded number of rows (microseconds), where a hop to the blocking pool would cost
    /// more than the query; readers never wait for the writer in WAL mode.
    pub fn read_inline<R>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        let inner = &self.inner;
        let pooled = inner
            .readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        let conn = match pooled {
            Some(c) => c,
            None => open_conn(&inner.path, inner.durability)?,
        };
        let out = f(&conn);
        let mut pool = inner.readers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < 16 {
            pool.push(conn);
        }
        out
    }

    /// The queue of grouped writes.
    pub(crate) fn writes(&self) -> &Writes {
        &self.inner.writes
    }

    /// The in-process waker of a queue (receivers wait on it; senders notify it).
    pub fn waker(&self, queue: &str) -> Arc<Notify> {
        let mut map = self.inner.wakers.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(queue.to_string()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_of_an_earlier_release_gains_the_new_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE objects (
                bucket TEXT NOT NULL, key TEXT NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL,
                content_type TEXT NOT NULL, created_ms INTEGER NOT NULL,
                sha256 TEXT, sha1 TEXT, s3_etag TEXT, crc32c TEXT,
                PRIMARY KEY (bucket, key)) WITHOUT ROWID;
             INSERT INTO objects VALUES ('b', 'k', 1, 'e', 't', 0, NULL, NULL, NULL, NULL);",
        )
        .unwrap();
        drop(old);
        let db = Db::open(&path, Durability::Process).unwrap();
        let origin: Option<String> = db
            .read_inline(|c| {
                Ok(
                    c.query_row("SELECT origin FROM objects WHERE key = 'k'", [], |r| {
                        r.get(0)
                    })?,
                )
            })
            .unwrap();
        assert_eq!(origin, None, "old rows read as having no origin");
        drop(db);
        Db::open(&path, Durability::Process).expect("migrating twice is a no-op");
    }
}
