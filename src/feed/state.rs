//! Feed states, as shown in status.json and the fan-out socket.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FeedState {
    Connecting,
    Handshaking,
    Authenticating,
    Subscribing,
    Live,
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
    Stopped,
}

impl FeedState {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedState::Connecting => "connecting",
            FeedState::Handshaking => "handshaking",
            FeedState::Authenticating => "authenticating",
            FeedState::Subscribing => "subscribing",
            FeedState::Live => "live",
            FeedState::Degraded => "degraded",
            FeedState::Backoff => "backoff",
            FeedState::Parked => "parked",
            FeedState::Waiting => "waiting",
            FeedState::Standby => "standby",
            FeedState::Stopped => "stopped",
        }
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
