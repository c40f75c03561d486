//! What the Kraken simulator has seen and done; kept in a
//! [`Watched`](crate::sim::shared::Watched) cell, so a test can wait for a
//! state instead of sleeping.

use std::collections::BTreeMap;

/// A snapshot of the simulator's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KrakenSimStats {
    /// WebSocket connections accepted (public and private).
    pub connections: u64,
    /// WebSocket connections open now.
    pub live_connections: u64,
    /// `"<channel> <symbol>"` (or just the channel for private ones) of
    /// every accepted subscription, per connection in accept order.
    pub subscribes_per_connection: Vec<Vec<String>>,
    /// Subscriptions refused (`success:false`).
    pub subscribes_refused: u64,
    /// Subscriptions to a channel and symbol the connection had before.
    pub resubscribes: u64,
    pub unsubscribes: u64,
    pub pings: u64,
    pub heartbeats_sent: u64,
    pub status_sent: u64,
    pub book_snapshots_sent: u64,
    pub book_updates_sent: u64,
    /// Book messages sent with a deliberately wrong checksum.
    pub corrupted_checksums_sent: u64,
    /// Ticker, trade and OHLC messages sent.
    pub data_sent: u64,
    /// Private REST calls answered (any outcome).
    pub rest_calls: u64,
    /// Nonces accepted, per API key, in order of arrival.
    pub nonces_seen: BTreeMap<String, Vec<u64>>,
    /// Nonces refused with `EAPI:Invalid nonce` because they were not above
    /// the last accepted one, per API key.
    pub nonces_rejected: BTreeMap<String, Vec<u64>>,
    /// Error strings answered, with how often.
    pub rest_errors: BTreeMap<String, u64>,
    pub tokens_issued: u64,
    /// Private subscriptions refused for an unknown or expired token.
    pub tokens_refused: u64,
}
