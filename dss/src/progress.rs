//! Progress of a long operator command: a live line on a terminal (indicatif), a log line
//! every few seconds otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dss_config::LogConfig;
use indicatif::{ProgressBar, ProgressStyle};

/// How often progress is logged when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Starts logging for an operator command: on a terminal only warnings (so log lines do not
/// break the progress line) unless `RUST_LOG` asks for more; the configured level otherwise.
pub fn init_logging(log: &LogConfig) {
    let mut log = log.clone();
    if std::io::stderr().is_terminal() && std::env::var_os("RUST_LOG").is_none() {
        log.level = "warn".into();
    }
    dss_runtime::telemetry::init(&log);
}

/// Whether a progress log line is due (one per [`LOG_EVERY`]); if so, the next one is due
/// [`LOG_EVERY`] from now.
fn log_due(logged: &Mutex<Instant>) -> bool {
    let mut logged = logged.lock().unwrap_or_else(|p| p.into_inner());
    let due = logged.elapsed() >= LOG_EVERY;
    if due {
        *logged = Instant::now();
    }
    due
}

/// One command's progress: a count of items done and a short description.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    logged: Mutex<Instant>,
}

impl Progress {
    /// Progress of `label` (e.g. `reindex aws`).
    pub fn new(label: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner().with_prefix(label.to_string());
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} {prefix}: {human_pos} {msg} [{elapsed}]")
            {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            bar,
            label: label.to_string(),
            logged: Mutex::new(Instant::now()),
        }
    }

    /// `done` items so far; `message` describes them (computed only when shown).
    pub fn set(&self, done: u64, message: impl FnOnce() -> String) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(done);
                bar.set_message(message());
            }
            None if log_due(&self.logged) => {
                tracing::info!(command = %self.label, done, "{}", message());
            }
            None => {}
        }
    }

    /// Removes the live line.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A transfer's progress (bytes and files): a live bar on a terminal, a log line every few
/// seconds otherwise.
pub struct Transfer {
    bar: Option<ProgressBar>,
    label: String,
    files: AtomicU64,
    total_files: AtomicU64,
    logged: Mutex<Instant>,
}

impl Transfer {
    /// Progress of `label` (e.g. `download`).
    pub fn new(label: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0).with_prefix(label.to_string());
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix}: [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {msg} [{elapsed}]",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Self {
            bar,
            label: label.to_string(),
            files: AtomicU64::new(0),
            total_files: AtomicU64::new(0),
            logged: Mutex::new(Instant::now()),
        }
    }

    fn files_message(&self) -> String {
        format!(
            "{}/{} files",
            self.files.load(Ordering::Relaxed),
            self.total_files.load(Ordering::Relaxed)
        )
    }

    fn log(&self) {
        if self.bar.is_none() && log_due(&self.logged) {
            tracing::info!(command = %self.label, "{}", self.files_message());
        }
    }

    /// Removes the live bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl dss_client::Progress for Transfer {
    fn planned(&self, files: u64, bytes: u64) {
        self.total_files.store(files, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_length(bytes);
            bar.set_message(self.files_message());
        }
    }

    fn transferred(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
        self.log();
    }

    fn rewound(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(bar.position().saturating_sub(bytes));
        }
    }

    fn file_done(&self, _name: &str) {
        self.files.fetch_add(1, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_message(self.files_message());
        }
        self.log();
    }
}
