//! The `Mailer` port over SMTP (lettre): plain, STARTTLS or TLS, with optional credentials;
//! each e-mail is a `multipart/alternative` message with a text and an HTML part.

use std::time::Duration;

use async_trait::async_trait;
use dss_config::MailConfig;
use dss_core::ports::mail::{Mail, MailError, Mailer, valid_address};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Sends e-mail through one SMTP server.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    sender: Mailbox,
    server: String,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("server", &self.server)
            .field("sender", &self.sender.to_string())
            .finish()
    }
}

impl SmtpMailer {
    /// A mailer for the SMTP server of `cfg` (`mail.smtp_host` must be set).
    pub fn new(cfg: &MailConfig) -> Result<Self, MailError> {
        let host = cfg
            .smtp_host
            .as_deref()
            .ok_or_else(|| MailError::Invalid("mail.smtp_host is not set".into()))?;
        let setup = |e: lettre::transport::smtp::Error| {
            MailError::Invalid(format!("SMTP server {host}: {e}"))
        };
        let (builder, default_port) = match cfg.smtp_security.as_str() {
            "tls" => (
                AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(setup)?,
                465,
            ),
            "starttls" => (
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(setup)?,
                587,
            ),
            _ => (
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
                25,
            ),
        };
        let port = cfg.smtp_port.unwrap_or(default_port);
        let mut builder = builder
            .port(port)
            .timeout(Some(Duration::from_secs(cfg.smtp_timeout_secs)));
        if let (Some(user), Some(password)) = (&cfg.smtp_username, &cfg.smtp_password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        let sender = cfg
            .sender
            .parse::<Mailbox>()
            .map_err(|e| MailError::Invalid(format!("mail.sender: {e}")))?;
        Ok(Self {
            transport: builder.build(),
            sender,
            server: format!("{host}:{port}"),
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let invalid = |what: &str| MailError::Invalid(format!("{what} {:?}", mail.to));
        if !valid_address(&mail.to) {
            return Err(invalid("recipient is not an address:"));
        }
        let to = mail
            .to
            .parse::<Mailbox>()
            .map_err(|_| invalid("recipient is not an address:"))?;
        let message = Message::builder()
            .from(self.sender.clone())
            .to(to)
            .subject(mail.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                mail.text.clone(),
                mail.html.clone(),
            ))
            .map_err(|e| MailError::Invalid(format!("building the message: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            // 5xx: the server refuses this message for good (unknown recipient, policy).
            Err(e) if e.is_permanent() => Err(MailError::Invalid(format!(
                "{} refused the message: {e}",
                self.server
            ))),
            Err(e) => Err(MailError::Transport(format!("{}: {e}", self.server))),
        }
    }
}
