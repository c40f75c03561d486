//! Feed errors and their classes: the class decides what happens next
//! (docs/ARCHITECTURE.md, "Feed life cycle"), the message is what an operator reads.

use super::protocol::Layer;
use crate::net::Phase;
use std::fmt;
use std::time::Duration;

/// What kind of failure ended (or prevented) a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Refused, reset, timeout, TLS failure, close 1006: exponential backoff.
    Network,
    /// Close 1001/1012/1013, maintenance notice: a short randomized delay.
    GoingAway,
    /// Unexpected frame, parse error, a close we did not ask for: backoff.
    Protocol,
    /// No data for `stall_after`, or no pong: restart now.
    Stalled,
    /// Key or token rejected: park until credentials change (or a long wait).
    Auth,
    /// 429, connection limit: wait as the broker says, else a long backoff.
    RateLimited { retry_after: Option<Duration> },
    /// A credential the feed needs is not set: park until it appears.
    MissingCredential,
    /// The broker refused something only the configuration can fix (an
    /// unknown symbol, a contract without a definition): park until the
    /// configuration changes (or a long wait), never a retry loop.
    Config,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Network => "network",
            ErrorClass::GoingAway => "going_away",
            ErrorClass::Protocol => "protocol",
            ErrorClass::Stalled => "stalled",
            ErrorClass::Auth => "auth",
            ErrorClass::RateLimited { .. } => "rate_limited",
            ErrorClass::MissingCredential => "missing_credential",
            ErrorClass::Config => "config",
        }
    }
}

/// What kind of failure this was, where the remedy depends on it: the
/// message says it to the operator, this says it to code (remedies never
/// read the message to tell a timeout from a refusal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// A deadline expired: a transport phase's (`Some`), or one of the
    /// broker protocol's own (`None`: no auth reply, no API greeting...).
    Timeout(Option<Phase>),
    /// The peer refused the TCP connection: nothing listens there.
    Refused,
}

/// A failure of one feed connection. The message never holds a secret:
/// adapters build it from error kinds, codes and redacted endpoints only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedError {
    pub class: ErrorClass,
    pub message: String,
    /// The layer the connection failed in, when known (preflight names it
    /// from this, never from the message text).
    pub layer: Option<Layer>,
    /// A timeout or a refusal, when it was one.
    pub cause: Option<Cause>,
}

impl FeedError {
    /// The message is cleaned and capped here, once for every error: it
    /// often quotes the peer (a close reason, a broker's error text).
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        let message: String = message.into();
        let message = match crate::peertext::sanitize(&message, 4 * crate::peertext::MAX_PEER_TEXT)
        {
            std::borrow::Cow::Borrowed(_) => message,
            std::borrow::Cow::Owned(clean) => clean,
        };
        FeedError {
            class,
            message,
            layer: None,
            cause: None,
        }
    }
    /// The same error, marked as having happened in `layer`.
    pub fn at(mut self, layer: Layer) -> Self {
        self.layer = Some(layer);
        self
    }
    /// The same error, marked with its [`Cause`].
    pub fn because(mut self, cause: Cause) -> Self {
        self.cause = Some(cause);
        self
    }
    /// A deadline of the broker protocol's own expired (a network-class
    /// error: the peer or the path is slow or mute).
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::network(message).because(Cause::Timeout(None))
    }
    /// Whether a deadline expired (any phase, or the protocol's own).
    pub fn is_timeout(&self) -> bool {
        matches!(self.cause, Some(Cause::Timeout(_)))
    }
    /// Whether `phase`'s deadline expired.
    pub fn timed_out_in(&self, phase: Phase) -> bool {
        self.cause == Some(Cause::Timeout(Some(phase)))
    }
    /// Whether the peer refused the TCP connection.
    pub fn is_refused(&self) -> bool {
        self.cause == Some(Cause::Refused)
    }
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Config, message)
    }
    pub fn network(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Network, message)
    }
    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Protocol, message)
    }
    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Auth, message)
    }
    pub fn stalled(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Stalled, message)
    }

    /// Classifies a WebSocket close frame the peer sent while we still
    /// wanted the feed. 1000 included: the server may think it is done, we
    /// are not (the seed outage).
    pub fn from_close(code: Option<u16>, reason: &str, while_authenticating: bool) -> Self {
        let reason = crate::peertext::short(reason);
        let what = match code {
            Some(c) if reason.is_empty() => format!("server closed the connection with code {c}"),
            Some(c) => format!("server closed the connection with code {c} ({reason})"),
            None => "connection closed without a close frame (1006)".to_string(),
        };
        let class = match code {
            Some(1001) | Some(1012) | Some(1013) => ErrorClass::GoingAway,
            Some(1008) | Some(4001) | Some(4003) | Some(4401) | Some(4403) => ErrorClass::Auth,
            Some(4029) | Some(4429) => ErrorClass::RateLimited { retry_after: None },
            None => ErrorClass::Network,
            Some(_) if while_authenticating && looks_like_auth(&reason) => ErrorClass::Auth,
            Some(_) => ErrorClass::Protocol,
        };
        FeedError::new(class, what)
    }
}

fn looks_like_auth(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    [
        "auth",
        "token",
        "unauthori",
        "forbidden",
        "invalid key",
        "permission",
    ]
    .iter()
    .any(|w| r.contains(w))
}

impl fmt::Display for FeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FeedError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_map_to_classes() {
        assert_eq!(
            FeedError::from_close(Some(1000), "", false).class,
            ErrorClass::Protocol
        );
        assert_eq!(
            FeedError::from_close(Some(1001), "", false).class,
            ErrorClass::GoingAway
        );
        assert_eq!(
            FeedError::from_close(Some(1012), "", false).class,
            ErrorClass::GoingAway
        );
        assert_eq!(
            FeedError::from_close(Some(1013), "", false).class,
            ErrorClass::GoingAway
        );
        assert_eq!(
            FeedError::from_close(Some(1008), "", false).class,
            ErrorClass::Auth
        );
        assert_eq!(
            FeedError::from_close(None, "", false).class,
            ErrorClass::Network
        );
        assert_eq!(
            FeedError::from_close(Some(1011), "invalid token", true).class,
            ErrorClass::Auth
        );
        assert_eq!(
            FeedError::from_close(Some(1011), "invalid token", false).class,
            ErrorClass::Protocol
        );
    }

    #[test]
    fn close_message_names_the_code() {
        let e = FeedError::from_close(Some(1000), "bye\n", false);
        assert_eq!(
            e.to_string(),
            "server closed the connection with code 1000 (bye)"
        );
    }
}
