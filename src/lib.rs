//! brokerguard: a synchronous agent that keeps a trading bot's broker
//! connections alive on one fixed VPS.
//!
//! The library holds everything; `main.rs` only hands the command line to
//! [`cli::main`]. Layers (who may import whom) follow `DESIGN.md`:
//! `cli → daemon → { feed, credentials, fanout, status, systemd, lock, signals }`,
//! `brokers → feed (adapter trait) and net`, `feed → net, clock`, and `sim`
//! depends on nothing of the agent's internals.

pub mod alert;
pub mod brokers;
pub mod calendar;
pub mod cli;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod daemon;
pub mod demo;
pub mod exit;
pub mod fanout;
pub mod feed;
pub mod logging;
pub mod net;
pub mod nonce;
pub mod preflight;
pub mod sim;
pub mod status;
pub mod systemd;
pub mod threads;
pub mod timefmt;
