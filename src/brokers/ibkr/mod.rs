//! Interactive Brokers TWS / IB Gateway (`broker = "ibkr"`): the TWS API
//! socket protocol over raw TCP, with every failure layer named.
//!
//! - [`wire`]: `\0`-terminated fields, checked reading, [`wire::ProtocolError`];
//! - [`codec`]: the messages brokerguard sends and reads (greeting,
//!   START_API, reqCurrentTime, reqMktData, ticks, errors...);
//! - [`contract`]: a configured contract, its checks and its wire fields;
//! - [`codes`]: what TWS's error and notice codes mean;
//! - [`ticks`]: tick type names;
//! - [`core`]: the pure protocol core ([`core::TwsCore`]);
//! - [`settings`]: the feed's IBKR keys, their defaults and checks, the
//!   next-client-id rule;
//! - [`reset_window`]: IB's nightly restart window;
//! - [`remedy`]: what an operator reads for each failure layer.

pub mod codec;
pub mod codes;
pub mod contract;
pub mod core;
pub mod remedy;
pub mod reset_window;
pub mod settings;
pub mod ticks;
pub mod wire;

/// The broker's name in the configuration (`broker = "ibkr"`).
pub const BROKER: &str = "ibkr";

pub use contract::Contract;
pub use core::{SessionFacts, SessionReport, TwsCore, TwsCoreConfig};
pub use settings::{ClientIds, IbkrKeys, IbkrSettings};
