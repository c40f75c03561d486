//! A loopback fake broker with a fault script, for tests, benchmarks and the
//! demo. It speaks the generic JSON WebSocket protocol of a bot's own signal
//! server (auth, subscribe, get_signals, data, heartbeats) over ws:// or
//! wss://, and can misbehave on command (see [`Fault`]). It depends on
//! nothing of the agent's internals (only the shared transports' stream type
//! and the time formatting helpers).

pub mod alpaca;
mod cli;
pub mod coinbase;
mod conn;
mod fault;
pub mod kite;
pub mod kraken;
mod protocol;
mod server;
mod shared;
mod stats;
pub mod tws;

pub use cli::{SimArgs, SimBroker, SimCliError, SimCommand, run_cli, run_command};
pub use fault::{FAULT_HELP, Fault};
pub use server::{SimConfig, SimHandle, SimTls, Simulator};
pub use stats::{ConnTimes, SimStats};
