//! A loopback Kraken (Spot) for tests, the interop suite and `brokerguard
//! sim kraken`: REST over HTTP/1.1 that verifies `API-Sign` and refuses a
//! nonce not above the last one accepted for the key, as Kraken does on
//! arrival; WebSocket v2 with status, heartbeats, ping, per-symbol acks,
//! market data and books with correct checksums, and private channels
//! that take only the tokens its REST issued; and faults (see
//! [`KrakenFault`]).
//!
//! It speaks its own implementation of the protocol, written from
//! PROTOCOLS.md §1 and the reference client, and depends on nothing of
//! the agent's (`brokers`, `feed`): the agent's Kraken code and this one
//! cannot agree on the same mistake.

mod cli;
mod fault;
mod market;
mod rest;
mod server;
mod stats;
mod ws;

pub use cli::{KrakenSimArgs, KrakenSimCliError, run_kraken_cli};
pub use fault::{KRAKEN_FAULT_HELP, KrakenFault};
pub use market::{SymbolSpec, default_symbols};
pub use server::{KrakenSim, KrakenSimConfig, KrakenSimHandle, SimKey};
pub use stats::KrakenSimStats;
