//! Local files of a transfer: checksums in one streaming pass, atomic JSON state files, and
//! the files of a directory with their bundle names.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use dss_core::checksum::{Checksums, MultiHasher};
use dss_core::model::documents::valid_file_name;
use dss_core::ports::BlobError;
use dss_core::upload::read_file;

use crate::error::ClientError;

/// Bytes gathered before each write to a part file.
pub(crate) const WRITE_BUFFER: usize = 1 << 20;

/// Something fed with a file's bytes in order.
pub trait Feed {
    /// The next chunk.
    fn feed(&mut self, chunk: Bytes);
}

impl Feed for MultiHasher {
    fn feed(&mut self, chunk: Bytes) {
        self.update(chunk);
    }
}

/// Feeds `len` bytes of `path` from offset `from` on (all the rest when `None`) to `hasher` (so
/// a download can go on hashing what follows); a file that holds fewer is an error.
pub fn hash_into(
    path: &Path,
    hasher: &mut impl Feed,
    from: u64,
    len: Option<u64>,
) -> Result<(), ClientError> {
    read_file(path, from, len, |chunk| hasher.feed(chunk)).map_err(|e| match e {
        BlobError::Body(e) => ClientError::io(path, e),
        other => ClientError::Invalid(format!("{}: {other}", path.display())),
    })
}

/// The four checksums of `path` (of `size` bytes), computed on a blocking thread.
pub async fn checksums(path: PathBuf, size: u64) -> Result<Checksums, ClientError> {
    tokio::task::spawn_blocking(move || {
        let mut h = MultiHasher::new(Some(size));
        hash_into(&path, &mut h, 0, None)?;
        Ok(h.finish())
    })
    .await
    .map_err(|e| ClientError::Invalid(format!("hashing thread: {e}")))?
}

/// Writes `value` as JSON to `path` atomically (temporary file, then rename).
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), ClientError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ClientError::io(dir, e))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| ClientError::Invalid(format!("state: {e}")))?;
    std::fs::write(&tmp, bytes).map_err(|e| ClientError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ClientError::io(path, e))
}

/// One regular file found under a directory.
pub struct Found {
    /// Its bundle name: the path below the directory, `/`-separated.
    pub name: String,
    /// Where it is.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// Its modification time (nanoseconds since the epoch), to notice a changed file.
    pub modified_ns: i128,
}

/// The regular files under `dir` (recursively, following symbolic links, skipping hidden
/// entries), sorted by name.
pub fn walk(dir: &Path) -> Result<Vec<Found>, ClientError> {
    let mut found = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((at, prefix)) = pending.pop() {
        let entries = std::fs::read_dir(&at).map_err(|e| ClientError::io(&at, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| ClientError::io(&at, e))?;
            let path = entry.path();
            let Some(file_name) = entry.file_name().to_str().map(str::to_string) else {
                return Err(ClientError::Invalid(format!(
                    "{}: the name is not UTF-8",
                    path.display()
                )));
            };
            if file_name.starts_with('.') {
                continue;
            }
            let name = format!("{prefix}{file_name}");
            let meta = std::fs::metadata(&path).map_err(|e| ClientError::io(&path, e))?;
            if meta.is_dir() {
                pending.push((path, format!("{name}/")));
            } else if meta.is_file() {
                if !valid_file_name(&name) {
                    return Err(ClientError::Invalid(format!(
                        "'{name}' cannot be a bundle file name"
                    )));
                }
                let modified_ns = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos() as i128);
                found.push(Found {
                    name,
                    path,
                    size: meta.len(),
                    modified_ns,
                });
            }
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}
