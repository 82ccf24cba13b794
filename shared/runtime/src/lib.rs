//! DSS runtime: the worker runtime and the daemon shape every daemon runs on (queue workers and
//! periodic tasks), metrics, telemetry, bucket events, checkout logic, and the [`deployment`]
//! that wires a configuration into adapters. No cloud SDK lives here.

pub mod bucket_events;
pub mod bundle_reader;
pub mod checkout;
pub mod checkpoint;
pub mod daemon;
pub mod deployment;
pub mod metrics;
pub mod telemetry;
pub mod worker;
