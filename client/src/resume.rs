//! The resume state of one directory's upload, in `upload-{id}/`: the plan (`plan.json`, written
//! once when a run starts) and the files the deployment confirmed since (`done.jsonl`, one JSON
//! line appended per file), so recording a file costs one short append, not a rewrite of the plan.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ClientError;
use crate::files;

/// What an upload run is to send: the bundle and each file's identity.
#[derive(Serialize, Deserialize)]
pub struct State {
    /// The bundle's uuid.
    pub bundle_uuid: String,
    /// The bundle's version.
    pub version: String,
    /// Each file, by name.
    pub files: BTreeMap<String, FileState>,
}

/// One file of the plan.
#[derive(Clone, Serialize, Deserialize)]
pub struct FileState {
    /// The file's uuid.
    pub uuid: String,
    /// The file's version.
    pub version: String,
    /// Its size when planned.
    pub size: u64,
    /// Its modification time when planned.
    pub modified_ns: i128,
    /// Its SHA-256, once the deployment confirmed it.
    pub sha256: Option<String>,
    /// Whether the deployment confirmed it.
    pub done: bool,
    /// Whether an earlier run planned this uuid (so may have staged it); not saved.
    #[serde(skip)]
    pub earlier: bool,
}

/// A file the deployment confirmed, as appended to the log.
#[derive(Serialize, Deserialize)]
struct Confirmed {
    name: String,
    sha256: String,
}

/// The state files of one upload.
pub struct Journal {
    dir: PathBuf,
    plan: PathBuf,
    done: PathBuf,
    log: Mutex<Option<std::fs::File>>,
}

impl Journal {
    /// The state of uploading `src` to `replica` of the deployment at `base`, kept in `dir`.
    pub fn at(dir: &Path, base: &str, replica: &str, src: &Path) -> Self {
        let mut h = Sha256::new();
        for part in [base, replica, &src.display().to_string()] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let dir = dir.join(format!("upload-{}", &hex::encode(h.finalize())[..16]));
        Self {
            plan: dir.join("plan.json"),
            done: dir.join("done.jsonl"),
            dir,
            log: Mutex::new(None),
        }
    }

    /// What an interrupted run left: its plan with the files it had confirmed marked done
    /// (`None` when there is none, or it cannot be read).
    pub fn load(&self) -> Option<State> {
        let bytes = std::fs::read(&self.plan).ok()?;
        let mut state: State = match serde_json::from_slice(&bytes) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(path = %self.plan.display(), error = %e, "ignoring an unreadable upload state file");
                return None;
            }
        };
        if let Ok(log) = std::fs::File::open(&self.done) {
            // A line cut short by a crash is the last one; it is skipped (its file is sent again).
            for line in std::io::BufReader::new(log).lines().map_while(Result::ok) {
                if let Ok(c) = serde_json::from_str::<Confirmed>(&line)
                    && let Some(f) = state.files.get_mut(&c.name)
                {
                    f.done = true;
                    f.sha256 = Some(c.sha256);
                }
            }
        }
        Some(state)
    }

    /// Starts a run of `state`: writes the plan and an empty log.
    pub fn start(&self, state: &State) -> Result<(), ClientError> {
        files::write_json(&self.plan, state)?;
        let log = std::fs::File::create(&self.done).map_err(|e| ClientError::io(&self.done, e))?;
        *self.log.lock().unwrap_or_else(|p| p.into_inner()) = Some(log);
        Ok(())
    }

    /// Records that the deployment confirmed file `name` with `sha256`.
    pub fn confirm(&self, name: &str, sha256: &str) -> Result<(), ClientError> {
        let mut line = serde_json::to_vec(&Confirmed {
            name: name.to_string(),
            sha256: sha256.to_string(),
        })
        .map_err(|e| ClientError::Invalid(format!("state: {e}")))?;
        line.push(b'\n');
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        match log.as_mut() {
            Some(f) => f
                .write_all(&line)
                .map_err(|e| ClientError::io(&self.done, e)),
            None => Ok(()),
        }
    }

    /// Removes the state: the upload is complete.
    pub fn finish(&self) {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.dir.display(), error = %e, "could not remove the upload state");
        }
    }
}
