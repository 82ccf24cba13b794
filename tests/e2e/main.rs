//! End-to-end tests: the real `dss` binary, started as a user would, driven over HTTP and by the
//! official `hca` 7.0.1 and `dbio` 1.0.0 CLIs.

mod clis;
mod harness;
mod lifecycle;
mod search;
