//! HTTP client of a DSS deployment (ours or one compatible with the original API): upload a
//! directory as a bundle, download a bundle, search. Transfers run in parallel, verify checksums
//! and resume where an interrupted run stopped.

mod api;
pub mod download;
mod entry;
mod error;
mod files;
mod open;
mod paging;
pub mod progress;
mod ranged;
mod resume;
pub mod search;
pub mod staging;
pub mod upload;
mod verify;

pub use api::DssClient;
pub use error::ClientError;
pub use progress::Progress;
