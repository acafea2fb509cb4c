//! autonomic_core: the pure logic behind autonomic's NIFs and planner C-node.
//!
//! Every module here is free of I/O on the BEAM's behalf and testable with `cargo test` alone;
//! `autonomic_nif` only decodes arguments and maps errors, as rabbitmq/ra separates `ra_server`
//! (pure transitions) from `ra_server_proc` (the process that runs them).

pub mod governor;
pub mod kb;
pub mod ledger;
pub mod planner;
pub mod policy;
pub mod strategy;
