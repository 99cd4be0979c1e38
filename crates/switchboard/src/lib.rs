//! The switchboard binary's library half: configuration, the daemon
//! assembly, `demo`, and the CLI. Kept in a library so integration tests and
//! benchmarks can build a daemon the same way `serve` does.
//!
//! **Architecture invariant:** this crate wires things together and parses
//! input; domain logic lives in `switchboard-runtime`.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
