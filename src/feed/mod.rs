//! The feed engine: one thread per configured feed that connects,
//! authenticates, subscribes, reads, and never stays dead.
//!
//! Pure parts (state, backoff, error classes, liveness, schedules) take time
//! from [`crate::clock::Clock`] and have no I/O; `runner.rs` drives an
//! [`adapter::Adapter`] over real sockets; `watchdog.rs` restarts what is
//! stuck. The engine never names a broker: `crate::brokers` builds adapters.

pub mod state;
