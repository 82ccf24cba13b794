//! Conformance suites, written once over each port and run against every adapter.
//!
//! Each suite panics with a message naming the failed property; adapters call it from a test.

pub mod blob;
pub mod collections;
pub mod deliveries;
pub mod journal;
pub mod leases;
pub mod mail;
pub mod proxy;
pub mod queue;
pub mod search;
pub mod staging;
pub mod subscriptions;
pub mod tls;
