//! A loopback Kite Connect simulator: the KiteTicker WebSocket (query-string
//! auth, `subscribe`/`mode`, LTP/quote/full frames from its own encoder,
//! 1-byte heartbeats, order-update and error text messages on demand, and
//! faults) and the REST calls of the daily login (`POST /session/token`
//! with checksum verification, `GET /user/profile`).
//!
//! Like the generic simulator it depends on nothing of the agent's
//! internals: its encoder is written from the documented layout
//! ([`encode`] documents the deterministic values it streams), so the
//! agent's decoder and this encoder cannot share a mistake; the interop
//! suite holds this encoder against pykiteconnect's own parser.

mod cli;
pub mod encode;
mod fault;
mod rest;
mod server;
mod stats;
mod ticker;

pub use cli::{KiteScript, KiteSimArgs, run_kite_cli};
pub use encode::{Lie, SIM_EPOCH, SimLevel, SimMode, SimTick, sim_tick};
pub use fault::{KITE_FAULT_HELP, KiteFault};
pub use server::{KiteSim, KiteSimConfig, KiteSimHandle};
pub use stats::KiteSimStats;
