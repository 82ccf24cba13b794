//! Timeouts and retries of requests to Google Cloud, as Google's retry strategy describes:
//! transport errors and 408, 429, 500, 502, 503, 504 answers are retried with exponential
//! backoff and full jitter, for requests that are idempotent (reads, deletes, metadata updates,
//! rewrites, new upload sessions, uploads with the same bytes). Resumable upload chunks are
//! retried by the upload itself, from the offset the server persisted.

use std::time::Duration;

use dss_core::backoff::Backoff;
use reqwest::StatusCode;

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(32);

/// How long requests may take and how often they are tried.
#[derive(Debug, Clone)]
pub struct RequestPolicy {
    /// Time to connect.
    pub connect_timeout: Duration,
    /// Time the server may leave a request without an answer, or a body without a byte.
    pub read_timeout: Duration,
    /// Attempts of one request (at least 1).
    pub max_attempts: u32,
    /// Backoff before the second attempt (doubling, at most 32 s).
    pub retry_base: Duration,
}

impl Default for RequestPolicy {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            max_attempts: 5,
            retry_base: Duration::from_millis(500),
        }
    }
}

impl RequestPolicy {
    /// An HTTP client with these timeouts, following no redirects (a resumable upload's 308 is
    /// an answer).
    pub fn client(&self) -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
    }

    /// Full jitter: a random wait up to `retry_base · 2^failures`, at most 32 s.
    pub fn backoff(&self, failures: u32) -> Duration {
        Backoff {
            base: self.retry_base,
            max: MAX_BACKOFF,
            jitter: 1.0,
        }
        .delay(failures + 1)
    }

    /// Attempts, at least one.
    pub fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }
}

/// Whether an answer with `status` may succeed when the request is sent again.
pub fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// Whether a transport error may pass when the request is sent again (not a request that could
/// not be built).
pub fn transient(e: &reqwest::Error) -> bool {
    !e.is_builder() && !e.is_redirect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_under_its_ceiling() {
        let p = RequestPolicy {
            retry_base: Duration::from_millis(100),
            ..RequestPolicy::default()
        };
        for failures in 0..40 {
            let ceiling = Duration::from_millis(100)
                .saturating_mul(1 << failures.min(16))
                .min(MAX_BACKOFF);
            assert!(p.backoff(failures) <= ceiling);
        }
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(!retryable(StatusCode::PRECONDITION_FAILED));
    }
}
