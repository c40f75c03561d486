//! Feed states, as shown in status.json and the fan-out socket.
//! [`FeedState::as_str`] is the one place their names come from.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FeedState {
    Connecting,
    Handshaking,
    Authenticating,
    Subscribing,
    /// Subscribed, waiting for the first data: a connection is never live
    /// on its handshake alone.
    Subscribed,
    /// Data (or a message the broker documents as proof the subscription
    /// is alive) has arrived on this connection.
    Live,
    /// Connected and subscribed while the feed's market is closed, and
    /// quiet: silence is expected.
    Closed,
    /// Connected, but the broker says no data can flow now (connectivity
    /// to the exchange lost, a data farm down, maintenance).
    Degraded,
    Backoff,
    /// Credentials rejected (or the configuration refused): waits for new
    /// ones (or a long backoff).
    Parked,
    /// A credential the feed needs is not set: it starts the moment it is.
    Waiting,
    /// Failover: another agent holds the lease, so this private feed does
    /// not run here.
    Standby,
    /// The feed's thread panicked (a bug): it runs again after a backoff.
    Crashed,
    Stopped,
}

impl FeedState {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedState::Connecting => "connecting",
            FeedState::Handshaking => "handshaking",
            FeedState::Authenticating => "authenticating",
            FeedState::Subscribing => "subscribing",
            FeedState::Subscribed => "subscribed",
            FeedState::Live => "live",
            FeedState::Closed => "closed",
            FeedState::Degraded => "degraded",
            FeedState::Backoff => "backoff",
            FeedState::Parked => "parked",
            FeedState::Waiting => "waiting",
            FeedState::Standby => "standby",
            FeedState::Crashed => "crashed",
            FeedState::Stopped => "stopped",
        }
    }

    /// Live, or quiet in a closed market: nothing is wrong.
    pub fn is_healthy(self) -> bool {
        matches!(self, FeedState::Live | FeedState::Closed)
    }

    /// Connecting through Subscribing: an attempt is under way.
    pub fn is_attempting(self) -> bool {
        matches!(
            self,
            FeedState::Connecting
                | FeedState::Handshaking
                | FeedState::Authenticating
                | FeedState::Subscribing
        )
    }
}

impl fmt::Display for FeedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
