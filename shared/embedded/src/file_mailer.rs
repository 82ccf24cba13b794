//! The embedded mailer: with no SMTP server configured, each e-mail is written as one JSON file
//! (`{sent_ms}-{id}.json`: from, to, subject, text, html) into a directory and logged, so an
//! operator can read what would have been sent.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use dss_core::clock::SharedClock;
use dss_core::ports::mail::{Mail, MailError, Mailer, valid_address};

/// Writes e-mails into a directory.
#[derive(Debug, Clone)]
pub struct FileMailer {
    dir: PathBuf,
    sender: String,
    clock: SharedClock,
}

impl FileMailer {
    /// A mailer writing into `dir` (created when needed) with `sender` as the From address.
    pub fn new(dir: &Path, sender: &str, clock: SharedClock) -> Self {
        Self {
            dir: dir.to_path_buf(),
            sender: sender.to_string(),
            clock,
        }
    }

    /// The directory mail is written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[async_trait]
impl Mailer for FileMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        if !valid_address(&mail.to) {
            return Err(MailError::Invalid(format!(
                "recipient {:?} is not an address",
                mail.to
            )));
        }
        let doc = serde_json::json!({
            "from": self.sender,
            "to": mail.to,
            "subject": mail.subject,
            "text": mail.text,
            "html": mail.html,
        });
        let name = format!("{}-{}.json", self.clock.now_ms(), uuid::Uuid::new_v4());
        let (dir, bytes) = (self.dir.clone(), doc.to_string());
        let path = dir.join(&name);
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            dss_core::private_files::create_dir(&dir)?;
            let tmp = dir.join(format!(".{name}.tmp"));
            std::io::Write::write_all(
                &mut dss_core::private_files::create(&tmp)?,
                bytes.as_bytes(),
            )?;
            std::fs::rename(&tmp, dir.join(&name))
        })
        .await
        .map_err(|e| MailError::Transport(e.to_string()))?;
        written.map_err(|e| MailError::Transport(format!("writing {}: {e}", path.display())))?;
        tracing::info!(to = %mail.to, subject = %mail.subject, file = %path.display(), "e-mail written (no SMTP server configured)");
        Ok(())
    }
}
