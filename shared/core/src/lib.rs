//! DSS core: the domain model and storage layout, one-pass checksums, the ports every adapter
//! implements, and the small pieces every layer above shares (clock, URL signing, the callback
//! network policy, key paths, correlation ids, transfer helpers). No database and no cloud SDK:
//! the client builds on this crate alone.

pub mod backoff;
pub mod callback;
pub mod checksum;
pub mod clock;
pub mod correlation;
pub mod keypath;
pub mod model;
pub mod names;
pub mod ports;
pub mod private_files;
pub mod signing;
pub mod transfer;
pub mod upload;
