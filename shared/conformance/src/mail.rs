//! Conformance suite of the `Mailer` port. The adapter's test supplies a way to read back what
//! its transport delivered (the directory of the file mailer, the SMTP sink's Maildir).

use async_trait::async_trait;

use dss_core::ports::mail::{Mail, MailError, Mailer};

/// An e-mail as the receiving side saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// From address.
    pub from: String,
    /// To address.
    pub to: String,
    /// Subject (decoded).
    pub subject: String,
    /// Plain-text part (decoded).
    pub text: String,
    /// HTML part (decoded).
    pub html: String,
}

/// Reads back delivered mail.
#[async_trait]
pub trait Inbox: Send + Sync {
    /// Every message delivered so far.
    async fn messages(&self) -> Vec<Received>;
}

async fn wait_for(inbox: &dyn Inbox, subject: &str) -> Received {
    for _ in 0..100 {
        if let Some(m) = inbox
            .messages()
            .await
            .into_iter()
            .find(|m| m.subject == subject)
        {
            return m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("mail with subject {subject:?} never arrived");
}

/// Runs the suite; `sender` is the From address the mailer was configured with.
pub async fn run(mailer: &dyn Mailer, inbox: &dyn Inbox, sender: &str) {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let subject = format!("Bundle checkout complete {tag} — ünïcødé");
    let mail = Mail {
        to: "someone@example.org".into(),
        subject: subject.clone(),
        text: "Hello, your files are at s3://b/bundles/x.\nSecond line: naïve café.".into(),
        html: "<html><body><p>Hello,</p><p><b>s3://b/bundles/x</b> — naïve</p></body></html>"
            .into(),
    };
    mailer.send(&mail).await.expect("send accepted");
    let got = wait_for(inbox, &subject).await;
    assert_eq!(got.to, mail.to, "recipient");
    assert_eq!(got.from, sender, "sender");
    assert_eq!(got.text.trim_end(), mail.text, "text part");
    assert_eq!(got.html.trim_end(), mail.html, "html part");

    // A long body survives line wrapping and transfer encodings unchanged.
    let long_subject = format!("long {tag}");
    let long: String = (0..400)
        .map(|i| {
            format!(
                "line {i} with some words and a long tail {}\n",
                "x".repeat(i % 90)
            )
        })
        .collect();
    mailer
        .send(&Mail {
            to: "other@example.org".into(),
            subject: long_subject.clone(),
            text: long.clone(),
            html: format!("<pre>{long}</pre>"),
        })
        .await
        .expect("send long");
    let got = wait_for(inbox, &long_subject).await;
    assert_eq!(got.text.trim_end(), long.trim_end(), "long text part");

    // A recipient that is no address is refused for good, and nothing is sent.
    for bad in ["not an address", "a@b\r\nBcc: victim@example.org"] {
        let err = mailer
            .send(&Mail {
                to: bad.into(),
                subject: format!("bad {tag}"),
                text: "x".into(),
                html: "x".into(),
            })
            .await
            .expect_err("bad recipient refused");
        assert!(
            matches!(err, MailError::Invalid(_)) && !err.is_transient(),
            "{bad:?}: {err}"
        );
    }
    assert!(
        !inbox
            .messages()
            .await
            .iter()
            .any(|m| m.subject == format!("bad {tag}")),
        "a refused message was delivered"
    );
}
