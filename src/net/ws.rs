//! A blocking WebSocket client (ws:// and wss://) in which every phase has
//! its own timeout: TCP connect, TLS handshake, WebSocket upgrade, and then
//! each read (a short tick, so the owning thread can check its commands) and
//! each write. Another thread can wake a blocked read through an
//! [`Interrupter`].

use super::error::{NetError, Phase, redact_url};
use super::timed::TimedTcp;
use super::transport::ConnectStep;
use super::{tcp, tls};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::HandshakeError;
use tungstenite::http::{HeaderName, HeaderValue};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::{Message, WebSocket};

// Kept here too: `net::ws::Interrupter` is where it used to live.
pub use super::interrupt::Interrupter;

/// Initial size of a connection's read buffer, and the most one socket
/// read asks for. tungstenite's default (128 KiB) is zero-filled before
/// every read, so each connection kept 132 KiB resident and cleared it per
/// message; broker messages are a few hundred bytes. The buffer still
/// grows to fit a larger frame (a book snapshot), up to `max_message_bytes`.
pub const READ_BUFFER_BYTES: usize = 4096;

/// Timeouts and limits of one WebSocket connection.
#[derive(Clone, Debug)]
pub struct WsOptions {
    pub connect_timeout: Duration,
    /// Budget for the TLS handshake and the WebSocket upgrade together.
    pub handshake_timeout: Duration,
    pub write_timeout: Duration,
    /// How long one `read` waits before returning `Ok(None)`; clamped to 1 s.
    pub read_tick: Duration,
    pub max_message_bytes: usize,
    /// An extra trusted CA (PEM), e.g. for a self-hosted signal server.
    pub ca_file: Option<PathBuf>,
    /// Extra headers sent with the upgrade request (values may be secrets:
    /// they are never logged).
    pub headers: Vec<(String, String)>,
}

impl Default for WsOptions {
    fn default() -> Self {
        WsOptions {
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(5),
            read_tick: Duration::from_secs(1),
            max_message_bytes: 16 << 20,
            ca_file: None,
            headers: Vec::new(),
        }
    }
}

/// What one `read` can deliver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WsEvent {
    Text(String),
    Binary(Vec<u8>),
    Pong(Vec<u8>),
    /// The peer pinged; the pong has already been sent.
    Ping,
    /// The peer's close frame (reported once; later calls give
    /// `NetError::Closed`). A frame without a status code reports 1005.
    Close {
        code: Option<u16>,
        reason: String,
    },
}

/// The byte stream under the WebSocket: plain TCP or TLS over TCP, either
/// way over a [`TimedTcp`] so one deadline can bound a whole operation.
#[derive(Debug)]
pub enum WsStream {
    Plain(TimedTcp),
    Tls(Box<native_tls::TlsStream<TimedTcp>>),
}

impl WsStream {
    /// The TCP socket under any TLS layer.
    pub fn tcp(&self) -> &TcpStream {
        self.timed().tcp()
    }

    fn timed(&self) -> &TimedTcp {
        match self {
            WsStream::Plain(s) => s,
            WsStream::Tls(s) => s.get_ref(),
        }
    }

    fn timed_mut(&mut self) -> &mut TimedTcp {
        match self {
            WsStream::Plain(s) => s,
            WsStream::Tls(s) => s.get_mut(),
        }
    }

    /// Bounds every read and write from now on by `deadline`.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.timed_mut().set_deadline(deadline);
    }
}

impl Read for WsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            WsStream::Plain(s) => s.read(buf),
            WsStream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for WsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            WsStream::Plain(s) => s.write(buf),
            WsStream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            WsStream::Plain(s) => s.flush(),
            WsStream::Tls(s) => s.flush(),
        }
    }
}

/// An open WebSocket connection.
pub struct WsConn {
    ws: WebSocket<WsStream>,
    target: String,
    read_tick: Duration,
    write_timeout: Duration,
    interrupter: Interrupter,
    /// Set once the peer's close frame (or the end of the stream) was seen.
    closed: Option<(Option<u16>, String)>,
    /// A read failed (not a timeout): the incoming stream is beyond repair,
    /// so `close` does not read it again (tungstenite asserts its buffer has
    /// room, which a rejected oversized frame leaves full).
    read_broken: bool,
}

impl std::fmt::Debug for WsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsConn")
            .field("target", &self.target)
            .field("closed", &self.closed)
            .finish()
    }
}

/// Where a ws:// or wss:// URL points.
pub struct Target {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

/// Scheme, host and port of a WebSocket URL.
pub fn parse_target(url: &str) -> Result<Target, NetError> {
    let redacted = redact_url(url);
    let uri: tungstenite::http::Uri = url
        .parse()
        .map_err(|e| NetError::InvalidRequest(format!("URL {redacted} does not parse: {e}")))?;
    let tls = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => {
            return Err(NetError::InvalidRequest(format!(
                "URL {redacted} must start with ws:// or wss://"
            )));
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| NetError::InvalidRequest(format!("URL {redacted} has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Ok(Target { tls, host, port })
}

/// Remaining budget until `deadline`, or `None` when it has passed.
fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Connects, performs TLS (for wss://) and the WebSocket upgrade, each
/// bounded by `opts`.
pub fn connect(url: &str, opts: &WsOptions) -> Result<WsConn, NetError> {
    connect_observed(url, opts, &mut |_| {})
}

/// [`connect`], reporting each step to `observe` as it passes.
pub fn connect_observed(
    url: &str,
    opts: &WsOptions,
    observe: &mut dyn FnMut(ConnectStep),
) -> Result<WsConn, NetError> {
    let target_name = redact_url(url);
    let target = parse_target(url)?;
    let mut request = url
        .into_client_request()
        .map_err(|e| NetError::InvalidRequest(format!("URL {target_name}: {e}")))?;
    for (name, value) in &opts.headers {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| NetError::InvalidRequest(format!("header name {name:?} is not valid")))?;
        let v = HeaderValue::from_str(value).map_err(|_| {
            NetError::InvalidRequest(format!("value of header {name} is not valid"))
        })?;
        request.headers_mut().append(n, v);
    }
    // Connector first: a bad ca_file is a configuration error, found before any traffic.
    let connector = if target.tls {
        Some(tls::connector(opts.ca_file.as_deref())?)
    } else {
        None
    };

    let tcp = tcp::connect_observed(&target.host, target.port, opts.connect_timeout, observe)?;
    let interrupter = Interrupter::new(&tcp).map_err(NetError::Io)?;
    let handshake_timeout = opts.handshake_timeout.max(Duration::from_millis(1));
    // One deadline for TLS and the upgrade together, enforced on every
    // socket call, so a server that trickles bytes cannot stretch it.
    let deadline = Instant::now() + handshake_timeout;
    let mut timed = TimedTcp::new(tcp);
    timed.set_deadline(Some(deadline));

    let stream = match connector {
        None => WsStream::Plain(timed),
        Some(connector) => {
            let tls_timeout =
                || NetError::timeout(Phase::TlsHandshake, handshake_timeout, target_name.clone());
            let mut attempt = connector.connect(&target.host, timed);
            loop {
                match attempt {
                    Ok(s) => {
                        observe(ConnectStep::TlsVerified);
                        break WsStream::Tls(Box::new(s));
                    }
                    Err(native_tls::HandshakeError::WouldBlock(mid)) => {
                        remaining(deadline).ok_or_else(tls_timeout)?;
                        attempt = mid.handshake();
                    }
                    Err(native_tls::HandshakeError::Failure(e)) => {
                        return Err(NetError::Tls(tls::describe_handshake_error(
                            &target.host,
                            &e,
                        )));
                    }
                }
            }
        }
    };

    let ws_timeout =
        || NetError::timeout(Phase::WsHandshake, handshake_timeout, target_name.clone());
    remaining(deadline).ok_or_else(ws_timeout)?;
    observe(ConnectStep::HandshakeStarting);
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(opts.max_message_bytes))
        .max_frame_size(Some(opts.max_message_bytes))
        // Frames go out as soon as they are written: we send little, and late.
        .write_buffer_size(0);
    let mut attempt = tungstenite::client::client_with_config(request, stream, Some(config));
    let mut ws = loop {
        match attempt {
            Ok((ws, _response)) => break ws,
            Err(HandshakeError::Interrupted(mid)) => {
                remaining(deadline).ok_or_else(ws_timeout)?;
                attempt = mid.handshake();
            }
            Err(HandshakeError::Failure(e)) => {
                return Err(match e {
                    tungstenite::Error::Io(ref io) if is_timeout(io) => ws_timeout(),
                    other => map_error(other, Phase::WsHandshake),
                });
            }
        }
    };
    ws.get_mut().set_deadline(None);
    observe(ConnectStep::Upgraded);
    let tick = opts
        .read_tick
        .clamp(Duration::from_millis(1), Duration::from_secs(1));
    let write_timeout = opts.write_timeout.max(Duration::from_millis(1));
    let timed = ws.get_mut().timed_mut();
    timed.set_read_timeout(Some(tick)).map_err(NetError::Io)?;
    timed
        .set_write_timeout(Some(write_timeout))
        .map_err(NetError::Io)?;
    Ok(WsConn {
        ws,
        target: target_name,
        read_tick: tick,
        write_timeout,
        interrupter,
        closed: None,
        read_broken: false,
    })
}

/// Maps a tungstenite error (outside the read-tick case) to a `NetError`.
fn map_error(e: tungstenite::Error, phase: Phase) -> NetError {
    use tungstenite::Error as E;
    use tungstenite::error::ProtocolError as P;
    match e {
        E::ConnectionClosed | E::AlreadyClosed => NetError::Closed {
            code: None,
            reason: String::new(),
        },
        E::Protocol(P::ResetWithoutClosingHandshake) => NetError::Closed {
            code: None,
            reason: String::new(),
        },
        E::Io(io) => NetError::from_stream_io(io, String::new),
        E::Tls(t) => NetError::Tls(t.to_string()),
        E::Capacity(_) | E::WriteBufferFull(_) => NetError::TooLarge,
        E::Protocol(p) => NetError::Protocol(format!("{p} during {phase}")),
        E::Utf8(detail) => NetError::Protocol(format!("text message is not UTF-8: {detail}")),
        E::AttackAttempt => NetError::Protocol("peer behaved like an attacker".into()),
        E::Url(u) => NetError::InvalidRequest(u.to_string()),
        E::Http(resp) => NetError::HttpStatus {
            status: resp.status().as_u16(),
        },
        E::HttpFormat(h) => NetError::Protocol(format!("malformed HTTP during {phase}: {h}")),
    }
}

impl WsConn {
    /// The redacted URL this connection goes to (`wss://host:443/path`).
    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.ws.get_ref().tcp().peer_addr().ok()
    }

    /// A handle another thread can use to wake a blocked read.
    pub fn interrupter(&self) -> Interrupter {
        self.interrupter.clone()
    }

    fn closed_error(&self) -> Option<NetError> {
        self.closed.as_ref().map(|(code, reason)| NetError::Closed {
            code: *code,
            reason: reason.clone(),
        })
    }

    /// A failed operation: an interrupted connection reports that, not the
    /// EOF or reset it caused.
    fn fail(&mut self, e: tungstenite::Error, phase: Phase) -> NetError {
        if self.interrupter.is_interrupted() {
            return NetError::Interrupted;
        }
        let err = match e {
            tungstenite::Error::Io(ref io) if is_timeout(io) && phase == Phase::Write => {
                NetError::timeout(Phase::Write, self.write_timeout, self.target.clone())
            }
            tungstenite::Error::Protocol(tungstenite::error::ProtocolError::SendAfterClosing)
            | tungstenite::Error::AlreadyClosed => {
                self.closed_error().unwrap_or(NetError::Closed {
                    code: None,
                    reason: String::new(),
                })
            }
            other => map_error(other, phase),
        };
        if let NetError::Closed { code, reason } = &err {
            self.closed.get_or_insert((*code, reason.clone()));
        }
        err
    }

    fn send(&mut self, msg: Message) -> Result<(), NetError> {
        if self.interrupter.is_interrupted() {
            return Err(NetError::Interrupted);
        }
        if let Some(e) = self.closed_error() {
            return Err(e);
        }
        self.ws
            .get_mut()
            .set_deadline(Some(Instant::now() + self.write_timeout));
        self.ws.send(msg).map_err(|e| self.fail(e, Phase::Write))
    }

    pub fn send_text(&mut self, text: &str) -> Result<(), NetError> {
        self.send(Message::text(text))
    }

    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), NetError> {
        self.send(Message::binary(data.to_vec()))
    }

    /// Sends a WebSocket ping (payload at most 125 bytes).
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), NetError> {
        if payload.len() > 125 {
            return Err(NetError::TooLarge);
        }
        self.send(Message::Ping(payload.to_vec().into()))
    }

    /// Waits up to one read tick for the next event; `Ok(None)` if nothing
    /// arrived. A partially received frame is kept, so calling again is safe.
    pub fn read(&mut self) -> Result<Option<WsEvent>, NetError> {
        self.read_within(self.read_tick)
    }

    /// Like [`read`](Self::read), but waits at most `limit` (at least 1 ms)
    /// when that is shorter than the read tick, so a caller can wake up at
    /// its own deadline (a stall or pong timeout) instead of a tick later.
    pub fn read_within(&mut self, limit: Duration) -> Result<Option<WsEvent>, NetError> {
        if self.interrupter.is_interrupted() {
            return Err(NetError::Interrupted);
        }
        if let Some(e) = self.closed_error() {
            return Err(e);
        }
        // The whole call, however many socket reads a frame takes, ends
        // within one tick: the owning thread gets to check its commands.
        self.ws.get_mut().set_deadline(Some(
            Instant::now() + limit.clamp(Duration::from_millis(1), self.read_tick),
        ));
        let msg = match self.ws.read() {
            Ok(m) => m,
            Err(tungstenite::Error::Io(ref io))
                if is_timeout(io) && !self.interrupter.is_interrupted() =>
            {
                return Ok(None);
            }
            Err(e) => {
                self.read_broken = true;
                return Err(self.fail(e, Phase::Read));
            }
        };
        Ok(Some(match msg {
            Message::Text(t) => WsEvent::Text(t.as_str().to_owned()),
            Message::Binary(b) => WsEvent::Binary(b.to_vec()),
            Message::Pong(p) => WsEvent::Pong(p.to_vec()),
            Message::Ping(_) => {
                // tungstenite queued the pong; send it now rather than on the next call.
                self.ws
                    .get_mut()
                    .set_deadline(Some(Instant::now() + self.write_timeout));
                match self.ws.flush() {
                    Ok(()) => {}
                    Err(tungstenite::Error::Io(ref io)) if is_timeout(io) => {}
                    Err(e) => return Err(self.fail(e, Phase::Write)),
                }
                WsEvent::Ping
            }
            Message::Close(frame) => {
                let (code, reason) = match frame {
                    Some(f) => (Some(u16::from(f.code)), f.reason.as_str().to_owned()),
                    // A close frame without a status code: RFC 6455 calls that 1005.
                    None => (Some(1005), String::new()),
                };
                // Best effort: our echo of the close frame.
                self.ws
                    .get_mut()
                    .set_deadline(Some(Instant::now() + self.write_timeout));
                let _ = self.ws.flush();
                self.closed = Some((code, reason.clone()));
                WsEvent::Close { code, reason }
            }
            Message::Frame(_) => return Ok(None),
        }))
    }

    /// Sends a close frame and waits briefly for the peer's reply; the
    /// whole thing is bounded by the write timeout. Errors are ignored: the
    /// socket is shut down at the end either way.
    pub fn close(&mut self, code: u16, reason: &str) {
        let deadline = Instant::now() + self.write_timeout;
        self.ws.get_mut().set_deadline(Some(deadline));
        if self.closed.is_none() && !self.interrupter.is_interrupted() {
            let frame = CloseFrame {
                code: CloseCode::from(code),
                reason: reason.to_owned().into(),
            };
            if self.ws.close(Some(frame)).is_ok() && !self.read_broken {
                while remaining(deadline).is_some() {
                    match self.ws.read() {
                        Ok(Message::Close(_)) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            }
            self.closed = Some((Some(code), "closed locally".into()));
        }
        let _ = self.ws.get_ref().tcp().shutdown(Shutdown::Both);
    }
}
