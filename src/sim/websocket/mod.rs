//! The generic JSON WebSocket simulator (`brokers/websocket`'s fake): a
//! bot's own signal server speaking auth, subscribe, get_signals, data and
//! heartbeats over ws:// or wss://, misbehaving on command.
//!
//! - `server`: the listener, its handle and configuration;
//! - `conn`: one connection's session;
//! - `protocol`: the messages and replies;
//! - `fault`: the fault script;
//! - `stats`: connection counts and times a test can wait on.

mod conn;
pub(super) mod fault;
mod protocol;
pub(super) mod server;
pub(super) mod stats;
