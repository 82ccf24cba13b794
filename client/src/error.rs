//! What a client call can fail with.

use std::path::PathBuf;

/// A failed client operation.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The deployment answered with an error (in the API's `{status, code, title}` format when
    /// it sent one).
    #[error("{method} {url}: {status} {code}: {title}")]
    Api {
        /// HTTP method of the request.
        method: String,
        /// URL of the request (without credentials).
        url: String,
        /// HTTP status.
        status: u16,
        /// The error's `code` (or the status' reason).
        code: String,
        /// The error's `title` (or the start of the body).
        title: String,
    },
    /// The request could not be sent or its answer not read.
    #[error("{what}: {source}")]
    Http {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: reqwest::Error,
    },
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A staging bucket could not be read or written.
    #[error("{url}: {source}")]
    Staging {
        /// The staging object.
        url: String,
        /// Why.
        #[source]
        source: dss_core::ports::BlobError,
    },
    /// Downloaded bytes differ from what the manifest says.
    #[error("{name}: the downloaded bytes do not match the manifest ({which})")]
    Checksum {
        /// The file's name in its bundle.
        name: String,
        /// Which checks failed (`size`, `sha256`, …).
        which: String,
    },
    /// An answer ended before all the bytes it was to carry.
    #[error("{what}: the answer ended after {got} of {want} bytes")]
    Truncated {
        /// The request.
        what: String,
        /// Bytes received.
        got: u64,
        /// Bytes expected.
        want: u64,
    },
    /// The input, or what the deployment sent, cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// Some files of a transfer failed (each with its error); the others completed.
    #[error("{} of {total} files failed; first: {}", failures.len(), failures.first().map_or("", |(n, _)| n.as_str()))]
    Partial {
        /// How many files the transfer had.
        total: usize,
        /// Each failed file's name and error.
        failures: Vec<(String, ClientError)>,
    },
}

impl ClientError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether trying again may succeed: connection failures, timeouts, interrupted or
    /// truncated bodies, 408, 429 and 5xx answers.
    pub fn transient(&self) -> bool {
        match self {
            Self::Api { status, .. } => matches!(status, 408 | 429 | 500..=599),
            Self::Http { source, .. } => {
                source.is_connect()
                    || source.is_timeout()
                    || source.is_body()
                    || source.is_request()
                    || source.is_decode()
            }
            Self::Truncated { .. } => true,
            Self::Staging { source, .. } => {
                matches!(source, dss_core::ports::BlobError::Backend(_))
            }
            _ => false,
        }
    }
}
