//! The adapter trait every broker implements. The engine drives it and
//! never names a broker; transports may be WebSocket (over TLS or not) or
//! raw TCP (the IBKR TWS API), so nothing here assumes WebSocket.

use super::error::FeedError;
use super::state::FeedState;
use std::time::Duration;

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
    /// A transport-level pong.
    Pong,
}

/// Reports progress through the connect phases and hands over the
/// interrupter as soon as a socket exists.
pub trait ConnectProgress {
    fn phase(&mut self, state: FeedState);
    fn socket_opened(&mut self, interrupter: Interrupter);
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

    /// Whether the transport has its own ping (WebSocket) or not (raw TCP).
    fn has_ping(&self) -> bool;
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
