//! Simulators of the external services switchboard talks to, each speaking
//! the real wire protocol on loopback. They power `switchboard demo` and the
//! test suite, and the same connector code talks to the real services by
//! changing base URLs.
//!
//! **Architecture invariant:** this crate depends on nothing in the daemon.

pub mod obs;
pub mod twitch;
pub mod x;
