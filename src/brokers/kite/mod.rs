//! Zerodha Kite Connect: the KiteTicker binary feed, the daily login, token
//! expiry and the limits a configuration must respect (PROTOCOLS.md §3).
//!
//! Everything here is pure: the adapter (which opens the transport and
//! drives [`core::TickerCore`]), the registry entry and the `kite-login`
//! command wire these pieces to `crate::net` and the credential store.
//!
//! - [`ticker`]: binary frames → ticks with pykiteconnect's field names;
//! - [`core`]: the ticker protocol core and the upgrade status classifier;
//! - [`login`], [`rest`]: the checksum exchange and the profile check;
//! - [`url`]: URL-encoding of credentials into the ticker URL and forms;
//! - [`expiry`]: 06:00 IST expiry and the `token_expiring` rule;
//! - [`limits`]: 3 000 instruments per connection, 3 connections per key;
//! - [`credentials`]: field names and their format checks.

pub mod core;
pub mod credentials;
pub mod expiry;
pub mod limits;
pub mod login;
pub mod rest;
pub mod ticker;
pub mod url;

/// The ticker's endpoint when a feed sets no `url`.
pub const DEFAULT_TICKER_URL: &str = "wss://ws.kite.trade";
/// The REST root when a feed sets no `rest_url`.
pub const DEFAULT_REST_URL: &str = "https://api.kite.trade";

pub use core::{TickerConfig, TickerCore, TickerCounters, TickerCounts, classify_upgrade};
pub use ticker::Mode;
