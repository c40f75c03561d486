//! The protocol core every broker implements, and what it may ask for.
//!
//! A core is pure: it is handed what arrived (a text or binary WebSocket
//! message, one frame of a length-prefixed TCP stream, a transport pong)
//! or that a timer is due, and returns [`Action`]s — send these bytes, hand
//! this JSON to the bot, this was a heartbeat, the session is ready, this
//! error of this class ended it. It never touches a socket or a clock: time
//! comes in as a [`Mono`] argument. The engine's session driver
//! (`feed::session`) carries the actions out over a transport from
//! `crate::net`, so every broker's framing and state machine is tested with
//! plain tables, the way `Watchdog::evaluate` is.
//!
//! Life of one connection, as the driver runs it:
//! 1. the transport is open → [`ProtocolCore::open`] (greeting, auth);
//! 2. unless `open` already returned [`Action::Ready`], every message goes
//!    to [`ProtocolCore::receive`] until one returns `Ready` (or `Fail`),
//!    bounded by the feed's `handshake_timeout`;
//! 3. [`ProtocolCore::subscribe`] once; the feed is live;
//! 4. then `receive` for every message, [`ProtocolCore::keepalive`] every
//!    `ping_every` (the core chooses a transport ping, an application
//!    message, or nothing), [`ProtocolCore::poll`] every `poll_every`, and
//!    [`ProtocolCore::tick`] at least once per read tick.

use super::error::FeedError;
use crate::alert::Alert;
use crate::clock::Mono;
use crate::secret::Secret;
use std::fmt;
use std::time::Duration;

/// The layers a connection passes through, in order. `brokerguard check`
/// and the agent's first connection report them; a [`FeedError`] names the
/// one it failed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    Credentials,
    Dns,
    Tcp,
    Tls,
    /// The transport's upgrade (WebSocket) or the broker's protocol
    /// greeting (the TWS version exchange).
    Handshake,
    Auth,
    /// The first data or heartbeat after subscribing.
    Data,
}

impl Layer {
    pub const ALL: [Layer; 7] = [
        Layer::Credentials,
        Layer::Dns,
        Layer::Tcp,
        Layer::Tls,
        Layer::Handshake,
        Layer::Auth,
        Layer::Data,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Credentials => "credentials",
            Layer::Dns => "dns",
            Layer::Tcp => "tcp",
            Layer::Tls => "tls",
            Layer::Handshake => "handshake",
            Layer::Auth => "auth",
            Layer::Data => "data",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What arrived from the transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound<'a> {
    /// A WebSocket text message.
    Text(&'a str),
    /// A WebSocket binary message.
    Binary(&'a [u8]),
    /// One frame of a length-prefixed TCP transport, prefix removed.
    Frame(&'a [u8]),
    /// The answer to a transport-level ping.
    Pong,
}

/// Something to write to the transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outbound {
    /// A WebSocket text message. A [`Secret`], because auth and private
    /// subscribe messages carry credentials: it is never logged.
    Text(Secret),
    /// A WebSocket binary message.
    Binary(Vec<u8>),
    /// One length-prefixed frame (the prefix is added by the transport).
    Frame(Vec<u8>),
    /// Bytes written as they are, without framing (the TWS `API\0` greeting).
    Raw(Vec<u8>),
    /// A transport-level ping (WebSocket).
    Ping,
}

impl Outbound {
    /// A text message with no secret in it.
    pub fn text(s: impl Into<String>) -> Self {
        Outbound::Text(Secret::new(s))
    }
}

/// One thing a core asks for. A core returns them in the order they must
/// happen.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Send(Outbound),
    /// A message for the bot, as JSON text (the fan-out's `data`).
    Data(String),
    /// An event line for the bot: `{"feed": …, "event": name, …fields}`,
    /// e.g. a book resync or a broker notice. Fields must not hold secrets.
    Event {
        name: &'static str,
        fields: serde_json::Map<String, serde_json::Value>,
    },
    /// Proves the feed alive; not forwarded.
    Heartbeat,
    /// The answer to the core's keepalive (see [`ProtocolCore::keepalive`]).
    Pong,
    /// A layer passed that only the protocol can see (the TWS greeting was
    /// answered, the auth reply accepted), with what was found.
    LayerPassed {
        layer: Layer,
        detail: String,
    },
    /// Handshake and authentication are complete: the engine subscribes.
    Ready,
    /// The broker confirmed a subscription. Not data: it neither reaches
    /// the bot nor counts as the first data.
    Subscribed {
        detail: String,
    },
    /// The connection is up but the broker says no data can flow now
    /// (connectivity to the exchange lost, a data farm down, maintenance).
    /// The feed is not live, and silence is not a stall, until `Restored`.
    Degraded {
        reason: String,
    },
    /// Data can flow again after `Degraded`.
    Restored {
        detail: String,
    },
    /// The connection cannot go on: it ends with this error and its class
    /// decides what happens next.
    Fail(FeedError),
    /// A fact about the session an operator reads in `status` (the client
    /// id in use, the key set in use, when the token expires). Never a
    /// secret. A later note with the same key replaces it.
    Note {
        key: &'static str,
        value: String,
    },
    /// An alert for the journal.
    Alert(Alert),
    /// A line for the operator's log (never a secret).
    Log {
        level: log::Level,
        message: String,
    },
}

impl Action {
    /// `Action::Send(Outbound::text(s))`.
    pub fn send_text(s: impl Into<String>) -> Self {
        Action::Send(Outbound::text(s))
    }

    /// An event line with string fields.
    pub fn event(name: &'static str, fields: &[(&str, serde_json::Value)]) -> Self {
        Action::Event {
            name,
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }
}

/// A broker's protocol for one connection. A new core is made for every
/// connection (its adapter keeps what must outlive one, e.g. the next
/// client id to try).
pub trait ProtocolCore: Send {
    /// The transport is open: what to send first (greeting, auth). Return
    /// [`Action::Ready`] here when nothing needs an answer before subscribing.
    fn open(&mut self, now: Mono) -> Vec<Action>;

    /// Sends the subscriptions, once per connection, after `Ready`.
    fn subscribe(&mut self, now: Mono) -> Vec<Action>;

    /// One message from the transport.
    fn receive(&mut self, msg: Inbound<'_>, now: Mono) -> Vec<Action>;

    /// The feed's `handshake_timeout` expired before `open`/`receive`
    /// returned `Ready`: the error to report, naming what the broker did not
    /// answer, the layer (handshake or auth) and what to do about it.
    fn not_ready(&self, waited: Duration) -> FeedError {
        FeedError::timeout(format!(
            "timeout (auth): no reply to the authentication within {}",
            crate::timefmt::human(waited)
        ))
        .at(Layer::Auth)
    }

    /// Whether the core has a keepalive whose answer it reports as
    /// [`Action::Pong`]; `ping_every` and `pong_timeout` then apply to it.
    fn has_keepalive(&self) -> bool;

    /// `ping_every` elapsed: the keepalive to send (a transport ping, an
    /// application ping with a request id, ...).
    fn keepalive(&mut self, now: Mono) -> Vec<Action>;

    /// Whether the feed sends a poll every `poll_every`.
    fn has_poll(&self) -> bool {
        false
    }

    /// `poll_every` elapsed.
    fn poll(&mut self, now: Mono) -> Vec<Action> {
        let _ = now;
        Vec::new()
    }

    /// Called at least once per read tick, for the core's own deadlines.
    fn tick(&mut self, now: Mono) -> Vec<Action> {
        let _ = now;
        Vec::new()
    }

    /// What to send before a clean close (e.g. an unsubscribe); the
    /// transport then closes itself (WebSocket close 1000).
    fn closing(&mut self) -> Vec<Action> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_in_order_with_stable_names() {
        let names: Vec<&str> = Layer::ALL.iter().map(|l| l.as_str()).collect();
        assert_eq!(
            names,
            [
                "credentials",
                "dns",
                "tcp",
                "tls",
                "handshake",
                "auth",
                "data"
            ]
        );
        assert!(Layer::Tcp < Layer::Auth);
    }

    #[test]
    fn event_builds_fields() {
        let a = Action::event("resync", &[("symbol", "BTC/USD".into())]);
        match a {
            Action::Event { name, fields } => {
                assert_eq!(name, "resync");
                assert_eq!(fields["symbol"], "BTC/USD");
            }
            other => panic!("{other:?}"),
        }
    }
}
