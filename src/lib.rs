//! brokerguard: a synchronous agent that keeps a trading bot's broker
//! connections alive on one fixed VPS.
//!
//! The library holds everything; `main.rs` only hands the command line to
//! [`cli::main`]. How it is built — threads and who owns what, the layers
//! and who may import whom, the feed life cycle, protocol cores and the
//! session driver, how a broker plugs in, and the contracts other programs
//! rely on — is in `docs/ARCHITECTURE.md`. In short:
//! `cli → daemon → { feed, brokers, credentials, fanout, status, systemd }`,
//! `brokers → feed (adapter and core traits, the session driver) and net`,
//! `feed → net, clock`, and `sim` depends on nothing of the agent's internals.
//!
//! `unsafe_code` is denied everywhere but in [`os`], the one module that
//! calls the operating system where std has no safe wrapper.

#![deny(unsafe_code)]

pub mod alert;
pub mod alerts;
pub mod brokers;
pub mod calendar;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod count;
pub mod credentials;
pub mod daemon;
pub mod demo;
pub mod duration;
pub mod exit;
pub mod fanout;
pub mod feed;
pub mod fence;
pub mod fixcmd;
pub mod ha;
pub mod http;
pub mod logging;
pub mod net;
pub mod nonce;
#[allow(unsafe_code)]
pub mod os;
pub mod peertext;
pub mod pidfile;
pub mod preflight;
pub mod secret;
pub mod sim;
pub mod status;
pub mod stopfd;
pub mod systemd;
pub mod threads;
pub mod timefmt;
