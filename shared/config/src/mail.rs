//! `[mail]`: outgoing e-mail, over SMTP or into files.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::error::{invalid, positive};

/// Outgoing e-mail: SMTP when `smtp_host` is set, else files in `dir`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// From address.
    pub sender: String,
    /// SMTP server host; unset: mail is written to `dir` instead.
    pub smtp_host: Option<String>,
    /// SMTP port (default 25 for `none`, 587 for `starttls`, 465 for `tls`).
    pub smtp_port: Option<u16>,
    /// `none`, `starttls` or `tls`.
    pub smtp_security: String,
    /// SMTP user name (with `smtp_password`).
    pub smtp_username: Option<String>,
    /// SMTP password.
    pub smtp_password: Option<String>,
    /// Time for one SMTP conversation, in seconds.
    pub smtp_timeout_secs: u64,
    /// Directory for mail when no SMTP server is configured (default `{data_dir}/mail`).
    pub dir: Option<PathBuf>,
    /// Attempts to send one e-mail before it is dead-lettered.
    pub max_attempts: u32,
    /// Wait before the second attempt of an e-mail, in seconds (doubling, up to 10 minutes).
    pub retry_secs: u64,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            sender: "dss@localhost".into(),
            smtp_host: None,
            smtp_port: None,
            smtp_security: "starttls".into(),
            smtp_username: None,
            smtp_password: None,
            smtp_timeout_secs: 30,
            dir: None,
            max_attempts: 10,
            retry_secs: 5,
        }
    }
}

impl MailConfig {
    /// The directory of the file mailer.
    pub fn dir_in(&self, data_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data_dir.join("mail"))
    }
}

impl MailConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if !dss_core::ports::mail::valid_address(&self.sender) {
            return Err(invalid(
                "mail.sender",
                format!("'{}' is not an e-mail address", self.sender),
            ));
        }
        if !["none", "starttls", "tls"].contains(&self.smtp_security.as_str()) {
            return Err(invalid(
                "mail.smtp_security",
                format!("'{}' is not one of none, starttls, tls", self.smtp_security),
            ));
        }
        if self.smtp_username.is_some() != self.smtp_password.is_some() {
            return Err(invalid(
                "mail.smtp_password",
                "give both mail.smtp_username and mail.smtp_password, or neither",
            ));
        }
        positive(&[
            ("mail.smtp_timeout_secs", self.smtp_timeout_secs),
            ("mail.max_attempts", u64::from(self.max_attempts)),
            ("mail.retry_secs", self.retry_secs),
        ])
    }
}
