//! A loopback Coinbase Advanced Trade for tests, the interop suite and
//! `brokerguard sim coinbase`: the WebSocket (market data and user
//! channels on one port) that verifies every JWT with the key's public
//! key (ES256 and EdDSA), refuses a JWT used twice, closes a connection
//! that has not subscribed within 5 s and a quiet one without heartbeats
//! (60–90 s at Coinbase; configurable here), sends heartbeats, level 2
//! snapshots and updates, ticker, trades and the user channel's snapshot,
//! numbers every message per connection (and skips one on demand); and
//! the REST accounts call, whose JWT must carry the request's `uri`.
//! Faults: see [`CoinbaseFault`].
//!
//! It speaks its own implementation of the protocol, written from
//! PROTOCOLS.md §5 and the reference client, and depends on nothing of the
//! agent's (`brokers`, `feed`): the agent's Coinbase code and this one
//! cannot agree on the same mistake. Both are also held against
//! coinbase-advanced-py and PyJWT in `tests/interop/`.

mod cli;
mod fault;
mod jwt;
mod rest;
mod server;
mod stats;
mod ws;

pub use cli::{CoinbaseSimArgs, run_coinbase_cli};
pub use fault::{COINBASE_FAULT_HELP, CoinbaseFault};
pub use server::{CoinbaseSim, CoinbaseSimConfig, CoinbaseSimHandle, SimKey};
pub use stats::CoinbaseSimStats;
