//! The feed engine: one thread per configured feed that connects,
//! authenticates, subscribes, reads, and never stays dead.
//!
//! Pure parts (state, backoff, error classes, liveness, schedules, the
//! watchdog's decisions) take time from [`crate::clock::Clock`] and do no
//! I/O; `runner.rs` drives an [`adapter::Adapter`] over real sockets. The
//! engine never names a broker: `crate::brokers` builds adapters.
//!
//! See docs/ARCHITECTURE.md ("Feed life cycle", "Brokers: protocol cores, the session driver, transports").

pub mod adapter;
pub mod backoff;
pub mod error;
pub mod health;
pub mod liveness;
pub mod market;
pub mod outage;
pub mod protocol;
pub mod recorder;
pub mod runner;
pub mod schedule;
pub mod session;
pub mod state;
pub mod watchdog;

pub use adapter::{Adapter, ConnectProgress, Incoming, Interrupter, Session};
pub use error::{Cause, ErrorClass, FeedError};
pub use protocol::{Action, Inbound, Layer, Outbound, ProtocolCore};
pub use runner::{FeedCommand, FeedHandle, FeedSink, RunnerSettings};
pub use state::FeedState;
