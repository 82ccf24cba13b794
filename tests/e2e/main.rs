//! End-to-end tests: the real `dss` binary, started as a user would, driven over HTTP, by its
//! own client commands and by the official `hca` 7.0.1 and `dbio` 1.0.0 CLIs, with webhooks verified by requests-http-signature.

mod aws;
mod aws_ops;
mod chaos;
mod checkout;
mod client;
pub mod clis;
pub(crate) mod fleet;
mod fleet_run;
mod fuzz;
mod harness;
mod hostile;
mod lifecycle;
mod netns;
mod notify;
mod ops;
mod postgres;
mod runbooks;
mod search;
mod sync;
mod traces;
mod ui;
mod webhooks;
