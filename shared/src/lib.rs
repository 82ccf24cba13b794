//! DSS core: the domain model, storage layout, ports with their embedded adapters, configuration,
//! telemetry and the worker runtime every daemon runs on. No cloud SDK lives here.

pub mod bucket_events;
pub mod bundle_reader;
pub mod callback;
pub mod checkout;
pub mod checkpoint;
pub mod checksum;
pub mod clock;
pub mod config;
pub mod correlation;
pub mod deployment;
pub mod embedded;
pub mod jmespath_limits;
pub mod metrics;
pub mod model;
pub mod ports;
pub mod private_files;
pub mod signing;
pub mod telemetry;
pub mod transfer;
pub mod upload;
pub mod worker;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
