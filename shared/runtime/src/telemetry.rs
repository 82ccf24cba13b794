//! Logging setup: `tracing` to stderr, as text or JSON.

use tracing_subscriber::EnvFilter;

use dss_config::LogConfig;

/// Installs the global subscriber; `RUST_LOG` overrides the configured level.
pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: not into files, pipes and journals.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = if cfg.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // A subscriber already installed (tests, embedding) is fine.
    drop(result);
}
