//! Deferring a message while a service its handler needs is unavailable.
//!
//! A deferred message is sent again, wrapped with how often and since when it was deferred,
//! and the delivery is acked: an outage does not use up the message's receives (which would
//! dead-letter it after a few minutes of backoff), and the worker pauses its receives with a
//! growing backoff instead of pulling more messages into the outage. Only an outage longer than
//! the worker's `outage_limit` dead-letters a message.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Backoff;
use dss_core::ports::queue::Message;

/// The key that marks a wrapped body (never a key of the messages the daemons exchange).
const MARK: &str = "_dss_deferred";

/// How a deferred message has been deferred so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deferral {
    /// Times deferred.
    pub count: u32,
    /// When it was first deferred (ms since the epoch).
    pub since_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct Wrapped<'a> {
    #[serde(rename = "_dss_deferred")]
    deferral: Deferral,
    #[serde(borrow)]
    body: std::borrow::Cow<'a, str>,
}

/// The message as its handler sees it (the original body) and its deferral, if it is a
/// deferred copy.
pub fn unwrap(mut message: Message) -> (Message, Option<Deferral>) {
    if !message.body.starts_with(&format!("{{\"{MARK}\"")) {
        return (message, None);
    }
    match serde_json::from_str::<Wrapped<'_>>(&message.body) {
        Ok(w) => {
            let (deferral, body) = (w.deferral, w.body.into_owned());
            message.body = body;
            (message, Some(deferral))
        }
        Err(_) => (message, None),
    }
}

/// The body of the next deferred copy of `body`.
pub fn wrap(body: &str, deferral: Deferral) -> String {
    serde_json::to_string(&Wrapped {
        deferral,
        body: body.into(),
    })
    .unwrap_or_else(|_| body.to_string())
}

/// The worker's pause while its handlers report an unavailable service: grows with each such
/// report in a row, ends with the first message handled.
#[derive(Debug, Default)]
pub struct Pause(Mutex<(u32, Option<tokio::time::Instant>)>);

impl Pause {
    /// Records one more report in a row; returns the pause it starts.
    pub fn unavailable(&self, backoff: &Backoff) -> Duration {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.0 = g.0.saturating_add(1);
        let pause = backoff.delay(g.0);
        g.1 = Some(tokio::time::Instant::now() + pause);
        pause
    }

    /// A message was handled: no pause.
    pub fn clear(&self) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *g = (0, None);
    }

    /// When receiving may go on, if it is paused.
    pub fn until(&self) -> Option<tokio::time::Instant> {
        let g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.1.filter(|u| *u > tokio::time::Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> Message {
        Message {
            id: "1".into(),
            receipt: "r".into(),
            body: body.into(),
            receive_count: 1,
            sent_at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_wrapped_body_unwraps_to_the_original() {
        let d = Deferral {
            count: 3,
            since_ms: 1_700_000_000_000,
        };
        for body in ["{\"Records\": []}", "plain \"text\"", ""] {
            let (m, got) = unwrap(message(&wrap(body, d)));
            assert_eq!((m.body.as_str(), got), (body, Some(d)));
        }
        // Bodies that are not wrapped pass unchanged, even when they look alike.
        for body in ["{\"Records\": []}", "{\"_dss_deferred\": 1}", "x"] {
            let (m, got) = unwrap(message(body));
            assert_eq!((m.body.as_str(), got), (body, None));
        }
    }
}
