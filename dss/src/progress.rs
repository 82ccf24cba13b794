//! Progress of a long operator command: a live line on a terminal (indicatif), a log line
//! every few seconds otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dss_shared::config::Config;
use indicatif::{ProgressBar, ProgressStyle};

/// How often progress is logged when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Starts logging for an operator command: on a terminal only warnings (so log lines do not
/// break the progress line) unless `RUST_LOG` asks for more; the configured level otherwise.
pub fn init_logging(cfg: &Config) {
    let mut log = cfg.log.clone();
    if std::io::stderr().is_terminal() && std::env::var_os("RUST_LOG").is_none() {
        log.level = "warn".into();
    }
    dss_shared::telemetry::init(&log);
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
            None => {
                let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
                if logged.elapsed() >= LOG_EVERY {
                    *logged = Instant::now();
                    tracing::info!(command = %self.label, done, "{}", message());
                }
            }
        }
    }

    /// Removes the live line.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
