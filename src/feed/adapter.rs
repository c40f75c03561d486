//! The adapter trait every broker implements. The engine drives it and
//! never names a broker; transports may be WebSocket (over TLS or not) or
//! raw TCP (the IBKR TWS API), so nothing here assumes WebSocket.

use super::error::FeedError;
use super::protocol::{Action, Layer};
use super::state::FeedState;
use std::time::{Duration, SystemTime};

/// Wakes a thread blocked in a socket call (a `shutdown` through a cloned
/// handle). The watchdog calls it when a feed thread stops answering.
pub type Interrupter = Box<dyn Fn() + Send + Sync>;

/// What one read tick produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// Nothing arrived within the read tick (at most 1 s).
    Idle,
    /// A broker message for the bot, as JSON text.
    Data(String),
    /// A broker heartbeat: proves the feed alive, not handed to the bot.
    Heartbeat,
    /// The answer to the feed's keepalive (a transport or application pong).
    Pong,
    /// An event line for the bot (a book resync, a broker notice).
    Event {
        name: &'static str,
        fields: serde_json::Map<String, serde_json::Value>,
    },
    /// The broker says data cannot flow now: the feed is not live, and
    /// silence is not a stall, until `Restored`.
    Degraded(String),
    /// Data can flow again.
    Restored(String),
    /// A fact about the session for `status` (see `Action::Note`).
    Note { key: &'static str, value: String },
}

/// Reports progress through the connect phases and hands over the
/// interrupter as soon as a socket exists.
pub trait ConnectProgress {
    fn phase(&mut self, state: FeedState);
    fn socket_opened(&mut self, interrupter: Interrupter);
    /// A preflight layer passed, with what was found (never a secret).
    fn layer_passed(&mut self, layer: Layer, detail: &str) {
        let _ = (layer, detail);
    }
    /// A fact about the session for `status` (see `Action::Note`).
    fn note(&mut self, key: &'static str, value: &str) {
        let _ = (key, value);
    }
}

/// Builds connections for one feed. A new adapter (with new credentials)
/// replaces the old one on a credential change.
pub trait Adapter: Send {
    /// Opens the transport, runs the protocol handshake and authenticates.
    /// Reports `Handshaking` and `Authenticating` through `progress`.
    fn connect(
        &mut self,
        progress: &mut dyn ConnectProgress,
    ) -> Result<Box<dyn Session>, FeedError>;

    /// Whether the feed has a keepalive (a transport ping or the broker's
    /// own request with an answer); `ping_every`/`pong_timeout` apply to it.
    fn has_ping(&self) -> bool;

    /// How often the feed sends its poll message, if it has one.
    fn poll_every(&self) -> Option<Duration> {
        None
    }

    /// Called about once a second by the feed thread whatever the feed is
    /// doing (live, in backoff, parked; its market open or closed), for what
    /// an adapter watches across connections: a day token that will be dead
    /// by the next open, counters worth publishing. `now` is the feed
    /// clock's wall time, so tests drive it with a fake clock. Of the
    /// actions, `Alert`, `Note` and `Log` are carried out; others are ignored.
    fn tick(&mut self, now: SystemTime) -> Vec<Action> {
        let _ = now;
        Vec::new()
    }
}

/// One live connection.
pub trait Session: Send {
    /// Sends the configured subscriptions, once per connection.
    fn subscribe(&mut self) -> Result<(), FeedError>;
    /// Waits at most one read tick for the next message.
    fn read(&mut self) -> Result<Incoming, FeedError>;
    /// Like `read`, but waits at most `limit` when that is shorter than the
    /// read tick: the engine passes the time until its next liveness
    /// deadline. A transport that cannot shorten its wait keeps this
    /// default, and its stalls are then seen up to one tick late.
    fn read_within(&mut self, limit: Duration) -> Result<Incoming, FeedError> {
        let _ = limit;
        self.read()
    }
    /// Sends a transport ping.
    fn ping(&mut self) -> Result<(), FeedError>;
    /// Sends the configured poll message; Ok(false) when none is configured.
    fn poll(&mut self) -> Result<bool, FeedError>;
    /// Closes cleanly (WebSocket close 1000), bounded by the write timeout.
    fn close(&mut self);
}
