//! What the Alpaca simulator has seen and done; kept in a
//! [`Watched`](crate::sim::shared::Watched) cell, so a test can wait for a
//! state instead of sleeping.

use std::collections::BTreeMap;

/// A snapshot of the simulator's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlpacaSimStats {
    /// WebSocket connections accepted (market data and trade updates).
    pub connections: u64,
    /// WebSocket connections open now.
    pub live_connections: u64,
    /// Authentications accepted.
    pub authenticated: u64,
    /// Error codes sent, with how often.
    pub errors_sent: BTreeMap<u16, u64>,
    /// Subscribe messages answered.
    pub subscribes: u64,
    /// Data messages sent (each element of a batched frame counts).
    pub messages_sent: u64,
    /// Frames of data sent (one per batch).
    pub frames_sent: u64,
    /// Trade-update events sent, and how many of them as binary frames.
    pub updates_sent: u64,
    pub binary_frames_sent: u64,
    /// Pings answered.
    pub pings: u64,
    /// REST `/v2/account` calls answered (any outcome).
    pub rest_calls: u64,
}
