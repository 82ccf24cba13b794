//! The `Mailer` port: sends one e-mail with a text and an HTML part.

use async_trait::async_trait;

/// Errors of a mailer.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// An address or header cannot be used (the message can never be sent as it is).
    #[error("invalid message: {0}")]
    Invalid(String),
    /// The transport failed; may succeed on retry (server down, refused for now, timeout).
    #[error("mail transport error: {0}")]
    Transport(String),
}

impl MailError {
    /// Whether retrying the same message may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, MailError::Transport(_))
    }
}

/// One e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

/// Sends e-mail from the deployment's sender address.
#[async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug {
    /// Sends `mail`; returns once the transport accepted it.
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
}

/// Checks the shape of an e-mail address (`local@domain`, no spaces or angle brackets), as far as
/// a sender can without asking the recipient's server.
pub fn valid_address(addr: &str) -> bool {
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !domain.is_empty()
        && domain.len() <= 255
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !local.bytes().any(|b| {
            b.is_ascii_control() || b.is_ascii_whitespace() || b"<>()[]\\,;:@\"".contains(&b)
        })
}

#[cfg(test)]
mod tests {
    use super::valid_address;

    #[test]
    fn addresses() {
        for ok in ["a@b", "first.last+tag@example.org", "x_y@sub.domain-1.io"] {
            assert!(valid_address(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "@b",
            "a@",
            "a b@c",
            "a@b c",
            "<a@b>",
            "a@b..c",
            "a@.b",
            "a\n@b",
            "a@b\r\nBcc: x@y",
        ] {
            assert!(!valid_address(bad), "{bad:?}");
        }
    }
}
