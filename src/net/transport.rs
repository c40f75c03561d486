//! What a broker session needs from a connection, whatever carries it
//! (WebSocket over TCP or TLS, length-prefixed frames over TCP): send, wait
//! a bounded time for the next message, ping, be interrupted, close. The
//! feed engine's session driver works against this trait, so a protocol
//! core never knows which transport it runs on.
//!
//! Opening a connection reports each step as it passes ([`ConnectStep`]),
//! so the first connection of a feed can serve as its preflight.

use super::Interrupter;
use super::error::NetError;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// A step of opening a connection that has just succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectStep {
    /// The host name resolved to these addresses.
    Resolved(Vec<IpAddr>),
    /// TCP connected to this peer.
    Connected(SocketAddr),
    /// The TLS handshake finished and the certificate was verified.
    TlsVerified,
    /// TCP (and TLS where used) is established and the transport's own
    /// handshake (the WebSocket upgrade) starts now. Not a layer passed:
    /// it is when a feed may say it is `handshaking`.
    HandshakeStarting,
    /// The transport's own handshake finished (the WebSocket upgrade).
    Upgraded,
}

/// One message from the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// A WebSocket text message.
    Text(String),
    /// A WebSocket binary message.
    Binary(Vec<u8>),
    /// One length-prefixed frame, prefix removed.
    Frame(Vec<u8>),
    /// The answer to our transport ping.
    Pong,
    /// The peer pinged (already answered by the transport).
    Ping,
    /// The peer's close frame (WebSocket); later calls fail with `Closed`.
    Close { code: Option<u16>, reason: String },
}

/// An open connection. Every call is bounded by the transport's own
/// timeouts; none can block forever.
pub trait Transport: Send {
    fn send_text(&mut self, text: &str) -> Result<(), NetError>;
    fn send_binary(&mut self, data: &[u8]) -> Result<(), NetError>;
    /// One length-prefixed frame (framed transports only).
    fn send_frame(&mut self, payload: &[u8]) -> Result<(), NetError> {
        let _ = payload;
        Err(NetError::InvalidRequest(
            "this transport does not send length-prefixed frames".into(),
        ))
    }
    /// Bytes as they are, without framing (framed transports only).
    fn send_raw(&mut self, bytes: &[u8]) -> Result<(), NetError> {
        let _ = bytes;
        Err(NetError::InvalidRequest(
            "this transport does not send raw bytes".into(),
        ))
    }
    /// A transport-level ping (WebSocket only).
    fn send_ping(&mut self) -> Result<(), NetError> {
        Err(NetError::InvalidRequest(
            "this transport has no ping of its own".into(),
        ))
    }
    /// Waits at most `limit` (and at most the transport's read tick) for
    /// the next message; `Ok(None)` when nothing complete arrived.
    fn recv_within(&mut self, limit: Duration) -> Result<Option<Received>, NetError>;
    /// A handle another thread can use to wake a blocked call.
    fn interrupter(&self) -> Interrupter;
    /// Closes cleanly (WebSocket close 1000), bounded by the write timeout.
    fn close(&mut self);
}

impl Transport for super::ws::WsConn {
    fn send_text(&mut self, text: &str) -> Result<(), NetError> {
        super::ws::WsConn::send_text(self, text)
    }
    fn send_binary(&mut self, data: &[u8]) -> Result<(), NetError> {
        super::ws::WsConn::send_binary(self, data)
    }
    fn send_ping(&mut self) -> Result<(), NetError> {
        super::ws::WsConn::send_ping(self, b"bg")
    }
    fn recv_within(&mut self, limit: Duration) -> Result<Option<Received>, NetError> {
        use super::ws::WsEvent;
        Ok(self.read_within(limit)?.map(|ev| match ev {
            WsEvent::Text(t) => Received::Text(t),
            WsEvent::Binary(b) => Received::Binary(b),
            WsEvent::Pong(_) => Received::Pong,
            WsEvent::Ping => Received::Ping,
            WsEvent::Close { code, reason } => Received::Close { code, reason },
        }))
    }
    fn interrupter(&self) -> Interrupter {
        super::ws::WsConn::interrupter(self)
    }
    fn close(&mut self) {
        super::ws::WsConn::close(self, 1000, "brokerguard closing");
    }
}

impl Transport for super::framed::FramedConn {
    fn send_text(&mut self, _text: &str) -> Result<(), NetError> {
        Err(NetError::InvalidRequest(
            "a framed TCP connection has no text messages; send frames".into(),
        ))
    }
    fn send_binary(&mut self, data: &[u8]) -> Result<(), NetError> {
        self.send_frame(data)
    }
    fn send_frame(&mut self, payload: &[u8]) -> Result<(), NetError> {
        super::framed::FramedConn::send_frame(self, payload)
    }
    fn send_raw(&mut self, bytes: &[u8]) -> Result<(), NetError> {
        super::framed::FramedConn::send_raw(self, bytes)
    }
    fn recv_within(&mut self, limit: Duration) -> Result<Option<Received>, NetError> {
        Ok(self.read_frame_within(limit)?.map(Received::Frame))
    }
    fn interrupter(&self) -> Interrupter {
        super::framed::FramedConn::interrupter(self)
    }
    fn close(&mut self) {
        super::framed::FramedConn::close(self)
    }
}
