//! What the Kite simulator has seen and done; kept in a
//! [`Watched`](crate::sim::shared::Watched) cell, so a test waits for a
//! state ("one lying frame sent") instead of sleeping.

use super::encode::SimMode;

/// Client text messages kept in [`KiteSimStats::client_messages`] at most
/// (a simulator left running must not grow without bound).
pub const MAX_KEPT_MESSAGES: usize = 1_000;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KiteSimStats {
    /// Ticker TCP connections accepted.
    pub ticker_connections: u64,
    /// Ticker upgrades accepted (credentials good, no fault).
    pub upgrades_completed: u64,
    /// The HTTP status of every refused upgrade, in order (403: bad
    /// credentials; others: the `http:` fault).
    pub upgrades_refused: Vec<u16>,
    /// Upgrade requests without `X-Kite-Version: 3` (pykiteconnect sends
    /// it; Kite has not said it requires it, so they are not refused).
    pub upgrades_without_version: u64,
    /// Ticker connections open now.
    pub live_connections: u64,
    /// Each connection's subscriptions as they stand, in first-subscribed
    /// order, indexed by connection number (upgraded ones only).
    pub subscriptions: Vec<Vec<(u32, SimMode)>>,
    /// Text messages from ticker clients, in order (the first
    /// [`MAX_KEPT_MESSAGES`]).
    pub client_messages: Vec<String>,
    /// Client messages that were not a valid subscribe/unsubscribe/mode.
    pub invalid_client_messages: u64,
    pub data_frames_sent: u64,
    pub ticks_sent: u64,
    pub heartbeats_sent: u64,
    pub lying_frames_sent: u64,
    /// Text messages (order updates, errors, …) sent to clients.
    pub texts_sent: u64,
    pub pings_received: u64,
    pub close_codes_sent: Vec<u16>,
    /// Access tokens issued by `POST /session/token`.
    pub sessions_issued: u64,
    /// The `message` of every refused `/session/token`, in order.
    pub session_refusals: Vec<String>,
    pub profile_ok: u64,
    pub profile_refused: u64,
    pub rest_requests: u64,
}
