//! What the Coinbase simulator has seen and done; kept in a
//! [`Watched`](crate::sim::shared::Watched) cell, so a test can wait for a
//! state instead of sleeping.

/// A snapshot of the simulator's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoinbaseSimStats {
    /// WebSocket connections accepted.
    pub connections: u64,
    pub live_connections: u64,
    /// `"subscribe <channel> <products,…>"` / `"unsubscribe …"` of every
    /// accepted message, per connection in accept order.
    pub messages_per_connection: Vec<Vec<String>>,
    /// Milliseconds from the upgrade to each connection's last subscribe.
    pub last_subscribe_ms: Vec<u64>,
    /// Most client messages (all connections) seen within one second.
    pub max_messages_per_second: u64,
    /// Subscribe/unsubscribe messages with a JWT that verified.
    pub jwts_accepted: u64,
    /// JWTs refused (bad signature, unknown key, claims, reuse, fault).
    pub jwts_refused: u64,
    /// JWTs refused because their nonce had been seen before.
    pub jwts_reused: u64,
    /// WebSocket JWTs carrying a `uri` claim (REST only).
    pub ws_jwts_with_uri: u64,
    /// Messages without a JWT.
    pub unauthenticated_messages: u64,
    pub heartbeats_sent: u64,
    pub l2_snapshots_sent: u64,
    pub l2_updates_sent: u64,
    pub user_snapshots_sent: u64,
    /// Ticker, trades, candles and other market messages sent.
    pub data_sent: u64,
    /// Sequence numbers skipped (the drop-sequence fault).
    pub sequence_skips: u64,
    /// Connections closed for not subscribing in time.
    pub closed_no_subscribe: u64,
    /// Connections closed for being quiet without heartbeats.
    pub closed_idle: u64,
    /// Connections closed with 1001.
    pub closed_going_away: u64,
    /// REST calls answered, and those refused with 401.
    pub rest_calls: u64,
    pub rest_refused: u64,
}
