//! The `Mailer` conformance suite against a real SMTP server: aiosmtpd writing a Maildir, which
//! `infra/local/test.sh` starts and names in `DSS_TEST_SMTP_PORT` and `DSS_TEST_MAILDIR`.

use async_trait::async_trait;
use dss_config::MailConfig;
use dss_conformance::mail::{Inbox, Received, run};
use dss_core::ports::Mailer;
use dss_smtp::SmtpMailer;
use mailparse::MailHeaderMap;

/// Reads the messages the SMTP sink delivered into a Maildir.
pub struct Maildir(pub std::path::PathBuf);

fn part(m: &mailparse::ParsedMail<'_>, mime: &str) -> String {
    if m.ctype.mimetype == mime {
        return m.get_body().unwrap_or_default();
    }
    m.subparts
        .iter()
        .map(|p| part(p, mime))
        .find(|s| !s.is_empty())
        .unwrap_or_default()
}

fn address(h: Option<String>) -> String {
    let h = h.unwrap_or_default();
    match (h.find('<'), h.rfind('>')) {
        (Some(a), Some(b)) if a < b => h[a + 1..b].to_string(),
        _ => h.trim().to_string(),
    }
}

#[async_trait]
impl Inbox for Maildir {
    async fn messages(&self) -> Vec<Received> {
        let Ok(entries) = std::fs::read_dir(self.0.join("new")) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|raw| {
                let m = mailparse::parse_mail(&raw).ok()?;
                Some(Received {
                    from: address(m.headers.get_first_value("From")),
                    to: address(m.headers.get_first_value("To")),
                    subject: m.headers.get_first_value("Subject").unwrap_or_default(),
                    text: part(&m, "text/plain").replace("\r\n", "\n"),
                    html: part(&m, "text/html").replace("\r\n", "\n"),
                })
            })
            .collect()
    }
}

#[tokio::test]
#[ignore = "needs an SMTP server writing a Maildir; run by infra/local/test.sh"]
async fn smtp_mailer_conforms() {
    let port: u16 = std::env::var("DSS_TEST_SMTP_PORT")
        .expect("DSS_TEST_SMTP_PORT names the SMTP sink's port on 127.0.0.1")
        .parse()
        .expect("a port number");
    let maildir =
        std::env::var("DSS_TEST_MAILDIR").expect("DSS_TEST_MAILDIR is the sink's Maildir");
    let cfg = MailConfig {
        sender: "dss-test@example.org".into(),
        smtp_host: Some("127.0.0.1".into()),
        smtp_port: Some(port),
        smtp_security: "none".into(),
        ..MailConfig::default()
    };
    let mailer = SmtpMailer::new(&cfg).expect("mailer");
    run(&mailer, &Maildir(maildir.into()), "dss-test@example.org").await;
}

#[tokio::test]
async fn an_unreachable_server_is_a_transient_failure() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let cfg = MailConfig {
        smtp_host: Some("127.0.0.1".into()),
        smtp_port: Some(port),
        smtp_security: "none".into(),
        smtp_timeout_secs: 2,
        ..MailConfig::default()
    };
    let mailer = SmtpMailer::new(&cfg).expect("mailer");
    let err = mailer
        .send(&dss_core::ports::Mail {
            to: "a@example.org".into(),
            subject: "s".into(),
            text: "t".into(),
            html: "h".into(),
        })
        .await
        .expect_err("nobody listens");
    assert!(err.is_transient(), "{err}");
}
