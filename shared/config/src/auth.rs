//! `[auth]`: trusted token issuers, groups, administrators and the operations that need a token.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::error::invalid;

/// A trusted token issuer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Exact `iss` claim.
    pub issuer: String,
    /// Accepted audiences (any match).
    pub audiences: Vec<String>,
    /// JWKS file.
    pub jwks_file: Option<PathBuf>,
    /// JWKS URL.
    pub jwks_url: Option<String>,
    /// PEM public key file (RSA or EC).
    pub pem_file: Option<PathBuf>,
}

/// Authentication and authorisation settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Generate a local signing key on first start and trust it; unset means on unless other
    /// issuers are configured.
    pub local_issuer: Option<bool>,
    /// Other trusted issuers.
    pub issuers: Vec<IssuerConfig>,
    /// Claim holding the caller's e-mail (falls back to `email`).
    pub email_claim: String,
    /// Claim holding the caller's group.
    pub group_claim: String,
    /// Groups allowed to write files.
    pub allowed_groups: Vec<String>,
    /// E-mails allowed to delete bundles (and bypass group checks).
    pub admin_emails: Vec<String>,
    /// Operations open to anyone in the original that need a token here (their
    /// `operationId`s, `drs` for the GA4GH DRS routes, or `all`): for controlled-access data.
    pub require: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            local_issuer: None,
            issuers: Vec::new(),
            email_claim: "email".into(),
            group_claim: "group".into(),
            allowed_groups: vec!["dbio".into()],
            admin_emails: Vec::new(),
            require: Vec::new(),
        }
    }
}

impl AuthConfig {
    /// Whether the local issuer's tokens are trusted: when asked for, or by default when no
    /// other issuer is configured.
    pub fn local_issuer_enabled(&self) -> bool {
        self.local_issuer.unwrap_or(self.issuers.is_empty())
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (i, iss) in self.issuers.iter().enumerate() {
            let sources = [
                iss.jwks_file.is_some(),
                iss.jwks_url.is_some(),
                iss.pem_file.is_some(),
            ];
            if sources.iter().filter(|s| **s).count() != 1 {
                return Err(invalid(
                    format!("auth.issuers[{i}]"),
                    "give exactly one of jwks_file, jwks_url, pem_file",
                ));
            }
            if iss.audiences.is_empty() {
                return Err(invalid(
                    format!("auth.issuers[{i}].audiences"),
                    "at least one audience is required",
                ));
            }
        }
        if !self.local_issuer_enabled() && self.issuers.is_empty() {
            return Err(invalid(
                "auth.issuers",
                "no issuer is trusted: enable auth.local_issuer or add an issuer",
            ));
        }
        Ok(())
    }
}
