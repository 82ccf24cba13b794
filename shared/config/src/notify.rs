//! `[notify]`: webhook subscriptions, deliveries and their retry schedule.

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::error::{invalid, positive};

/// Webhook settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Internal networks callbacks may reach anyway (`127.0.0.1`, `10.0.0.0/8`); none by default.
    pub callback_allow: Vec<String>,
    /// Subscriptions one owner may hold per replica and kind (more than this are refused).
    pub max_subscriptions_per_owner: usize,
    /// Waits before the 2nd, 3rd, … attempt of a delivery, in seconds (the first is immediate);
    /// the last wait repeats until `retry_for_secs` is over.
    pub retry_delays_secs: Vec<u64>,
    /// How long after its first attempt a delivery is given up and dead-lettered.
    pub retry_for_secs: u64,
    /// Random spread of each wait, as a fraction (0.1 = ±10 %).
    pub retry_jitter: f64,
    /// Time to connect to a receiver, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Time for a receiver to answer, in milliseconds.
    pub timeout_ms: u64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Deliveries in flight at once to one endpoint (scheme, host and port).
    pub endpoint_concurrency: usize,
    /// Consecutive failures that open an endpoint's circuit (its deliveries then wait).
    pub breaker_failures: u32,
    /// How long an open circuit waits before one probe delivery, in seconds (doubles while the
    /// endpoint keeps failing, up to ten times this).
    pub breaker_cooldown_secs: u64,
    /// How long the delivery log and finished deliveries are kept, in seconds.
    pub log_retention_secs: u64,
    /// How long a received event or due delivery stays hidden from other notify processes, in
    /// seconds (extended while it is handled; a delivery's at least twice its timeouts); after a
    /// crash it is handled again this much later.
    pub visibility_secs: u64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            callback_allow: Vec::new(),
            max_subscriptions_per_owner: 100,
            retry_delays_secs: vec![60, 600, 3600, 21600],
            retry_for_secs: 7 * 24 * 3600,
            retry_jitter: 0.1,
            connect_timeout_ms: 5_000,
            timeout_ms: 30_000,
            concurrency: 64,
            endpoint_concurrency: 16,
            breaker_failures: 5,
            breaker_cooldown_secs: 30,
            log_retention_secs: 7 * 24 * 3600,
            visibility_secs: 60,
        }
    }
}

impl NotifyConfig {
    /// The parsed allow-list (validated at start).
    pub fn allowed_nets(&self) -> Vec<dss_core::callback::AllowedNet> {
        self.callback_allow
            .iter()
            .filter_map(|s| dss_core::callback::AllowedNet::parse(s).ok())
            .collect()
    }
}

impl NotifyConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (i, net) in self.callback_allow.iter().enumerate() {
            dss_core::callback::AllowedNet::parse(net)
                .map_err(|m| invalid(format!("notify.callback_allow[{i}]"), m))?;
        }
        positive(&[
            ("notify.visibility_secs", self.visibility_secs),
            ("notify.retry_for_secs", self.retry_for_secs),
            ("notify.connect_timeout_ms", self.connect_timeout_ms),
            ("notify.timeout_ms", self.timeout_ms),
            ("notify.concurrency", self.concurrency as u64),
            (
                "notify.endpoint_concurrency",
                self.endpoint_concurrency as u64,
            ),
            ("notify.breaker_failures", u64::from(self.breaker_failures)),
            ("notify.log_retention_secs", self.log_retention_secs),
        ])?;
        if self.retry_delays_secs.is_empty() {
            return Err(invalid(
                "notify.retry_delays_secs",
                "give at least one wait, e.g. [60, 600, 3600]",
            ));
        }
        if !(0.0..1.0).contains(&self.retry_jitter) {
            return Err(invalid(
                "notify.retry_jitter",
                "must be at least 0 and below 1",
            ));
        }
        Ok(())
    }
}
