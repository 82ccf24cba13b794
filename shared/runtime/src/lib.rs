//! DSS core: the domain model, storage layout, ports with their embedded adapters, configuration,
//! telemetry and the worker runtime every daemon runs on. No cloud SDK lives here.

pub mod bucket_events;
pub mod bundle_reader;
pub mod checkout;
pub mod checkpoint;
pub mod deployment;
pub mod metrics;
pub mod telemetry;
pub mod worker;
