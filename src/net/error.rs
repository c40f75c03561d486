//! Transport errors, each naming the phase that failed and the peer, so an
//! operator (and the feed engine's error classes) can tell a refused port
//! from a slow TLS handshake from a broker that rejected the credentials.
//!
//! Targets are always shown through [`redact_url`]: a URL's query string and
//! user-info may carry tokens and never reach a message.

use crate::timefmt::human;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// What a refused TCP connect says after its OS error: the remedy that
/// fits a refusal, so a layer's remedy for one (`FeedError::is_refused`)
/// does not repeat it.
pub const REFUSED_HINT: &str = "(nothing listens on that port: is the server running?)";

/// The step of a connection that an error or timeout belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    Resolve,
    Connect,
    TlsHandshake,
    WsHandshake,
    /// An application protocol's own opening exchange over a plain stream
    /// (the TWS API's version negotiation over framed TCP).
    ProtocolHandshake,
    Read,
    Write,
    /// Sending an HTTP request: its headers and body.
    HttpRequest,
    /// Waiting for an HTTP response's status line and headers.
    HttpResponse,
    /// Receiving an HTTP response's body.
    HttpBody,
}

impl Phase {
    /// Stable machine name (`tls_handshake`), for status files and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Resolve => "resolve",
            Phase::Connect => "connect",
            Phase::TlsHandshake => "tls_handshake",
            Phase::WsHandshake => "ws_handshake",
            Phase::ProtocolHandshake => "protocol_handshake",
            Phase::Read => "read",
            Phase::Write => "write",
            Phase::HttpRequest => "http_request",
            Phase::HttpResponse => "http_response",
            Phase::HttpBody => "http_body",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Resolve => "resolve",
            Phase::Connect => "connect",
            Phase::TlsHandshake => "TLS handshake",
            Phase::WsHandshake => "WebSocket handshake",
            Phase::ProtocolHandshake => "protocol handshake",
            Phase::Read => "read",
            Phase::Write => "write",
            Phase::HttpRequest => "HTTP request",
            Phase::HttpResponse => "HTTP response headers",
            Phase::HttpBody => "HTTP response body",
        })
    }
}

/// What timed out, after how long, and towards whom (already redacted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhaseTimeout {
    pub phase: Phase,
    pub after: Duration,
    /// `host:port` or a redacted URL (`wss://host:443/path`).
    pub target: String,
}

/// Everything a transport can fail with.
#[derive(Debug)]
pub enum NetError {
    /// A phase did not finish within its own timeout.
    Timeout(PhaseTimeout),
    /// The host name could not be resolved.
    Resolve { host: String, detail: String },
    /// TCP connect failed (refused, unreachable, ...).
    Connect { addr: SocketAddr, source: io::Error },
    /// TLS set-up or handshake failed; certificate problems say so.
    Tls(String),
    /// The server answered the WebSocket upgrade with a non-101 status.
    HttpStatus { status: u16 },
    /// The peer closed the connection. `code: None` means no close frame
    /// arrived (end of stream; WebSocket code 1006, shown so when `reason`
    /// is empty); transports without close frames put what they saw in
    /// `reason`.
    Closed { code: Option<u16>, reason: String },
    /// The peer reset the connection.
    Reset,
    /// The connection was shut down locally through an [`Interrupter`](super::Interrupter).
    Interrupted,
    /// Any other I/O failure.
    Io(io::Error),
    /// The peer sent something that is not valid WebSocket, TLS or HTTP.
    Protocol(String),
    /// A message or frame exceeded the configured maximum size.
    TooLarge,
    /// The URL or a request header is unusable (a configuration problem).
    InvalidRequest(String),
}

impl NetError {
    /// An I/O error on an open connection (HTTP or WebSocket): a reset or
    /// a stream cut short is said as such (`cut_short` is the reason a
    /// closed stream gives), anything else stays an I/O error.
    pub fn from_stream_io(io: io::Error, cut_short: impl FnOnce() -> String) -> NetError {
        match io.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => NetError::Reset,
            io::ErrorKind::UnexpectedEof => NetError::Closed {
                code: None,
                reason: cut_short(),
            },
            _ => NetError::Io(io),
        }
    }

    /// A refused WebSocket upgrade with 401/403: the broker rejected the
    /// credentials, so retrying fast would only risk a key lockout.
    pub fn is_auth_rejection(&self) -> bool {
        matches!(self, NetError::HttpStatus { status: 401 | 403 })
    }

    /// The phase a timeout belongs to, if this is a timeout.
    pub fn timeout_phase(&self) -> Option<Phase> {
        match self {
            NetError::Timeout(t) => Some(t.phase),
            _ => None,
        }
    }

    pub(crate) fn timeout(phase: Phase, after: Duration, target: impl Into<String>) -> Self {
        NetError::Timeout(PhaseTimeout {
            phase,
            after,
            target: target.into(),
        })
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Timeout(t) => {
                write!(
                    f,
                    "timeout ({}) after {} to {}",
                    t.phase,
                    human(t.after),
                    t.target
                )
            }
            NetError::Resolve { host, detail } => write!(
                f,
                "cannot resolve host {host}: {detail}; check the host name and the DNS resolver (/etc/resolv.conf)"
            ),
            NetError::Connect { addr, source } => {
                write!(f, "cannot connect to {addr}: {source}")?;
                match source.kind() {
                    io::ErrorKind::ConnectionRefused => {
                        write!(f, " {REFUSED_HINT}")
                    }
                    io::ErrorKind::NetworkUnreachable | io::ErrorKind::HostUnreachable => {
                        f.write_str(" (no route: check the network and firewall)")
                    }
                    _ => Ok(()),
                }
            }
            NetError::Tls(detail) => write!(f, "TLS: {detail}"),
            NetError::HttpStatus { status } => {
                write!(f, "WebSocket upgrade refused with HTTP {status}")?;
                match status {
                    401 | 403 => f.write_str(" (credentials rejected: check the key or token)"),
                    404 => f.write_str(" (no such endpoint: check the URL path)"),
                    429 => f.write_str(" (rate limited: wait before retrying)"),
                    500..=599 => f.write_str(" (server error)"),
                    _ => Ok(()),
                }
            }
            NetError::Closed {
                code: Some(code),
                reason,
            } if reason.is_empty() => {
                write!(f, "connection closed by peer with code {code}")
            }
            NetError::Closed {
                code: Some(code),
                reason,
            } => {
                write!(f, "connection closed by peer with code {code} ({reason})")
            }
            NetError::Closed { code: None, reason } if reason.is_empty() => {
                f.write_str("connection closed without a close frame (1006)")
            }
            // Transports without close frames (framed TCP, HTTP) say why.
            NetError::Closed { code: None, reason } => {
                write!(f, "connection closed by peer: {reason}")
            }
            NetError::Reset => f.write_str("connection reset by peer"),
            NetError::Interrupted => f.write_str("connection shut down locally"),
            NetError::Io(e) => write!(f, "I/O error: {e}"),
            NetError::Protocol(detail) => write!(f, "protocol error: {detail}"),
            NetError::TooLarge => f.write_str("message larger than the configured maximum"),
            NetError::InvalidRequest(detail) => write!(f, "invalid request: {detail}"),
        }
    }
}

impl std::error::Error for NetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetError::Connect { source, .. } => Some(source),
            NetError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// `scheme://host:port/path` of a URL: no user-info, query or fragment (they
/// may carry tokens). The port is filled in from the scheme when absent.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i], &url[i + 3..]),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let after = &rest[authority_end..];
    let path_end = after.find(['?', '#']).unwrap_or(after.len());
    let path = if after[..path_end].is_empty() {
        "/"
    } else {
        &after[..path_end]
    };
    let has_port = match host_port.rfind(':') {
        // `[::1]` has colons but no port; `[::1]:443` and `host:443` have one.
        Some(i) => !host_port[i..].contains(']'),
        None => false,
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => Some(80),
        "wss" | "https" => Some(443),
        _ => None,
    };
    let host_port = match (has_port, default_port) {
        (false, Some(p)) => format!("{host_port}:{p}"),
        _ => host_port.to_string(),
    };
    if scheme.is_empty() {
        format!("{host_port}{path}")
    } else {
        format!("{scheme}://{host_port}{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_drops_query_fragment_and_userinfo() {
        assert_eq!(
            redact_url("wss://user:pw@ws.exch.example/?api_key=k&access_token=SECRET#x"),
            "wss://ws.exch.example:443/"
        );
        assert_eq!(redact_url("ws://10.8.0.1:8765"), "ws://10.8.0.1:8765/");
        assert_eq!(redact_url("ws://h:1/a/b?token=SECRET"), "ws://h:1/a/b");
        assert_eq!(redact_url("wss://[::1]/feed"), "wss://[::1]:443/feed");
        assert_eq!(redact_url("wss://[::1]:9443/feed"), "wss://[::1]:9443/feed");
        assert!(!redact_url("ws://x/?t=SECRET").contains("SECRET"));
    }

    #[test]
    fn timeout_display_names_phase_duration_and_target() {
        let e = NetError::timeout(Phase::Connect, Duration::from_secs(5), "127.0.0.1:9");
        assert_eq!(e.to_string(), "timeout (connect) after 5s to 127.0.0.1:9");
        assert_eq!(e.timeout_phase(), Some(Phase::Connect));
        let e = NetError::timeout(Phase::WsHandshake, Duration::from_millis(300), "ws://h:1/");
        assert_eq!(
            e.to_string(),
            "timeout (WebSocket handshake) after 300ms to ws://h:1/"
        );
    }

    #[test]
    fn phase_names() {
        let all = [
            (Phase::Resolve, "resolve"),
            (Phase::Connect, "connect"),
            (Phase::TlsHandshake, "tls_handshake"),
            (Phase::WsHandshake, "ws_handshake"),
            (Phase::ProtocolHandshake, "protocol_handshake"),
            (Phase::Read, "read"),
            (Phase::Write, "write"),
            (Phase::HttpRequest, "http_request"),
            (Phase::HttpResponse, "http_response"),
            (Phase::HttpBody, "http_body"),
        ];
        for (p, name) in all {
            assert_eq!(p.as_str(), name);
        }
        assert_eq!(Phase::TlsHandshake.to_string(), "TLS handshake");
        assert_eq!(Phase::ProtocolHandshake.to_string(), "protocol handshake");
        assert_eq!(Phase::HttpRequest.to_string(), "HTTP request");
        assert_eq!(Phase::HttpResponse.to_string(), "HTTP response headers");
        assert_eq!(Phase::HttpBody.to_string(), "HTTP response body");
    }

    #[test]
    fn auth_rejection_is_401_or_403_only() {
        assert!(NetError::HttpStatus { status: 401 }.is_auth_rejection());
        assert!(NetError::HttpStatus { status: 403 }.is_auth_rejection());
        assert!(!NetError::HttpStatus { status: 429 }.is_auth_rejection());
        assert!(!NetError::Reset.is_auth_rejection());
        assert!(
            NetError::HttpStatus { status: 401 }
                .to_string()
                .contains("credentials rejected")
        );
    }

    #[test]
    fn closed_display_distinguishes_missing_close_frame() {
        let eof = NetError::Closed {
            code: None,
            reason: String::new(),
        };
        assert!(eof.to_string().contains("1006"));
        let tcp_eof = NetError::Closed {
            code: None,
            reason: "end of stream".into(),
        };
        assert_eq!(
            tcp_eof.to_string(),
            "connection closed by peer: end of stream"
        );
        let c = NetError::Closed {
            code: Some(1000),
            reason: "bye".into(),
        };
        assert_eq!(
            c.to_string(),
            "connection closed by peer with code 1000 (bye)"
        );
    }
}
