//! A loopback Alpaca for tests, the interop suite and `brokerguard sim
//! alpaca`: the market-data streams (JSON, or MessagePack for a client
//! that asks for it), the trading stream with binary frames on its paper
//! path, `GET /v2/account` for paper and live keys, one connection per key
//! and endpoint (a second one gets 406), and faults (see [`AlpacaFault`]).
//!
//! It speaks its own implementation of the protocol, written from
//! PROTOCOLS.md §2 and alpaca-py, and depends on nothing of the agent's
//! (`brokers`, `feed`): the agent's Alpaca code and this one cannot agree
//! on the same mistake.

mod cli;
mod fault;
pub mod msgpack;
mod rest;
mod server;
mod stats;
mod stream;

pub use cli::{AlpacaSimArgs, AlpacaSimCliError, run_alpaca_cli};
pub use fault::{ALPACA_FAULT_HELP, AlpacaFault};
pub use server::{AlpacaSim, AlpacaSimConfig, AlpacaSimHandle, SimKey};
pub use stats::AlpacaSimStats;
