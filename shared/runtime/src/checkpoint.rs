//! Where a resumable scan (an operator command over many keys) got to: the last key done, in a
//! small JSON file, with the scope it belongs to so a run with other options starts afresh.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The checkpoint file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("checkpoint {file}: {message}")]
pub struct CheckpointError {
    /// The file.
    pub file: PathBuf,
    /// What went wrong.
    pub message: String,
}

#[derive(Serialize, Deserialize)]
struct Content {
    scope: String,
    after: String,
}

/// A checkpoint file.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    file: PathBuf,
}

impl Checkpoint {
    /// The checkpoint kept in `file` (created with its directory on the first write).
    pub fn new(file: PathBuf) -> Self {
        Self { file }
    }

    /// The file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    fn error(&self, e: impl std::fmt::Display) -> CheckpointError {
        CheckpointError {
            file: self.file.clone(),
            message: e.to_string(),
        }
    }

    /// The last key done by a run of `scope`; `None` when there is none (or it was another
    /// scope's).
    pub fn read(&self, scope: &str) -> Result<Option<String>, CheckpointError> {
        let text = match std::fs::read_to_string(&self.file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error(e)),
        };
        let c: Content = serde_json::from_str(&text).map_err(|e| self.error(e))?;
        Ok((c.scope == scope).then_some(c.after))
    }

    /// Records that every key up to `after` is done (atomically: temp file, then rename).
    pub fn write(&self, scope: &str, after: &str) -> Result<(), CheckpointError> {
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.error(e))?;
        }
        let c = Content {
            scope: scope.to_string(),
            after: after.to_string(),
        };
        let body = serde_json::to_string(&c).map_err(|e| self.error(e))?;
        let tmp = self.file.with_extension("tmp");
        std::fs::write(&tmp, body).map_err(|e| self.error(e))?;
        std::fs::rename(&tmp, &self.file).map_err(|e| self.error(e))
    }

    /// Forgets the position (the run completed, or starts over).
    pub fn clear(&self) -> Result<(), CheckpointError> {
        match std::fs::remove_file(&self.file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.error(e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_belongs_to_its_scope_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let c = Checkpoint::new(dir.path().join("ops/run.json"));
        assert_eq!(c.read("bundles/").unwrap(), None);
        c.write("bundles/", "bundles/a").unwrap();
        c.write("bundles/", "bundles/b").unwrap();
        assert_eq!(c.read("bundles/").unwrap().as_deref(), Some("bundles/b"));
        assert_eq!(c.read("files/").unwrap(), None, "another scope's position");
        c.clear().unwrap();
        c.clear().unwrap();
        assert_eq!(c.read("bundles/").unwrap(), None);
        std::fs::write(c.file(), "garbage").unwrap();
        assert!(
            c.read("bundles/")
                .unwrap_err()
                .to_string()
                .contains("run.json")
        );
    }
}
