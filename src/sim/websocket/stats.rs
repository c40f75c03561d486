//! Counters the simulator keeps for tests; they live in a
//! [`Watched`](crate::sim::shared::Watched) cell, so a test can wait for a state
//! ("two handshakes done") instead of sleeping.

use std::time::Instant;

/// A snapshot of what the simulator has seen and done.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    pub connections_accepted: u64,
    pub handshakes_completed: u64,
    /// TCP connections currently open (accepted and not yet ended).
    pub live_connections: u64,
    pub auth_ok: u64,
    pub auth_failed: u64,
    pub data_sent: u64,
    pub heartbeats_sent: u64,
    /// Channels subscribed, in order, indexed by connection number
    /// (0 = first accepted connection).
    pub subscribes_per_connection: Vec<Vec<String>>,
    /// Every token presented in an auth message, in order (a test tool: the
    /// simulator is the server side and holds no real secrets).
    pub tokens_seen: Vec<String>,
    pub pings_received: u64,
    /// Text messages received from clients.
    pub client_messages: u64,
    /// Close codes the simulator sent, in order.
    pub close_codes_sent: Vec<u16>,
    /// Connections ended with a TCP reset.
    pub resets_sent: u64,
    /// When each connection was accepted, authenticated and ended (same
    /// index as `subscribes_per_connection`), so a soak can tell a
    /// connection that lived on without subscribing from one a fault cut.
    pub connection_times: Vec<ConnTimes>,
}

/// The life of one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnTimes {
    pub accepted: Instant,
    /// When its auth was accepted (None: never; or no auth required).
    pub authed: Option<Instant>,
    /// When its thread ended (None: still open).
    pub ended: Option<Instant>,
    /// When the client last sent anything (a message, a ping, a close).
    pub last_client_frame: Option<Instant>,
}
