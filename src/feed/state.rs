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
    /// Every state, in [`FeedState::index`] order: what `/metrics` writes a
    /// `brokerguard_feed_state{state=…}` series for, so a new state shows
    /// up there without other edits.
    pub const ALL: &'static [FeedState] = &[
        FeedState::Connecting,
        FeedState::Handshaking,
        FeedState::Authenticating,
        FeedState::Subscribing,
        FeedState::Subscribed,
        FeedState::Live,
        FeedState::Closed,
        FeedState::Degraded,
        FeedState::Backoff,
        FeedState::Parked,
        FeedState::Waiting,
        FeedState::Standby,
        FeedState::Crashed,
        FeedState::Stopped,
    ];

    /// The state's place in [`FeedState::ALL`]. An exhaustive match: a new
    /// variant does not compile until it is given a place there too.
    pub const fn index(self) -> usize {
        match self {
            FeedState::Connecting => 0,
            FeedState::Handshaking => 1,
            FeedState::Authenticating => 2,
            FeedState::Subscribing => 3,
            FeedState::Subscribed => 4,
            FeedState::Live => 5,
            FeedState::Closed => 6,
            FeedState::Degraded => 7,
            FeedState::Backoff => 8,
            FeedState::Parked => 9,
            FeedState::Waiting => 10,
            FeedState::Standby => 11,
            FeedState::Crashed => 12,
            FeedState::Stopped => 13,
        }
    }

    /// The state named `s` (as [`FeedState::as_str`] writes it).
    pub fn parse(s: &str) -> Option<FeedState> {
        FeedState::ALL.iter().copied().find(|f| f.as_str() == s)
    }

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

// Holds at compile time: each entry of `FeedState::ALL` is at its index.
const _: () = {
    let mut i = 0;
    while i < FeedState::ALL.len() {
        assert!(FeedState::ALL[i].index() == i);
        i += 1;
    }
};

impl fmt::Display for FeedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_state_once_in_index_order() {
        for (i, s) in FeedState::ALL.iter().enumerate() {
            assert_eq!(s.index(), i, "{s}");
            assert_eq!(FeedState::parse(s.as_str()), Some(*s));
        }
        assert_eq!(FeedState::parse("nosuch"), None);
    }
}
