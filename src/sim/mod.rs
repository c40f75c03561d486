//! Loopback fake brokers speaking their real protocols, for tests,
//! benchmarks and the demo: one folder per broker, named as in
//! `src/brokers/` (`ibkr`, `kraken`, `kite`, `alpaca`, `coinbase`,
//! `websocket`, the generic JSON WebSocket signal server), the transports
//! they share in `shared`, and `brokerguard sim`'s dispatch in `cli`. A
//! simulator depends on nothing of the agent's internals (only the shared
//! transports' stream type and the time formatting helpers).

pub mod alpaca;
mod cli;
pub mod coinbase;
pub mod ibkr;
pub mod kite;
pub mod kraken;
mod shared;
pub mod websocket;

pub use cli::{SimArgs, SimBroker, SimCliError, SimCommand, run_cli, run_command};
pub use websocket::fault::{FAULT_HELP, Fault};
pub use websocket::server::{SimConfig, SimHandle, SimTls, Simulator};
pub use websocket::stats::{ConnTimes, SimStats};
