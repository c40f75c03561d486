//! The WebSocket ends of a simulated connection: the server-side upgrade,
//! retried across read timeouts until it is done, the simulator stops or
//! [`HANDSHAKE_LIMIT`] passes (with the path asked for, where the
//! simulator serves several endpoints); an upgrade refused with an HTTP status; and
//! a close that waits briefly for the client's echo.

use super::Base;
use super::net::is_timeout;
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use tungstenite::handshake::HandshakeError;
use tungstenite::handshake::server::{Callback, ErrorResponse};
use tungstenite::http::StatusCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Error, WebSocket};

/// TLS (where served) plus the WebSocket upgrade must finish within this.
pub(crate) const HANDSHAKE_LIMIT: Duration = Duration::from_secs(5);
/// How long a close waits for the client's echo.
const CLOSE_WAIT: Duration = Duration::from_millis(500);

/// When a handshake that began now is to be abandoned: the simulator stops
/// or [`HANDSHAKE_LIMIT`] passes.
pub(crate) fn give_up(base: &Base) -> impl Fn() -> bool + '_ {
    let deadline = Instant::now() + HANDSHAKE_LIMIT;
    move || base.stopping() || Instant::now() >= deadline
}

/// Why an upgrade did not happen.
pub(crate) enum UpgradeFailed {
    /// The client was too slow, or the simulator is stopping.
    GaveUp,
    /// Not a WebSocket upgrade, or refused by the callback.
    Failed(Error),
}

/// The server side of the upgrade on `stream` (whose reads time out every
/// tick), with `callback` seeing the request.
// The callback's error type is fixed by tungstenite.
#[allow(clippy::result_large_err)]
pub(crate) fn upgrade<S: Read + Write, C: Callback>(
    stream: S,
    callback: C,
    give_up: impl Fn() -> bool,
) -> Result<WebSocket<S>, UpgradeFailed> {
    let mut attempt = tungstenite::accept_hdr(stream, callback);
    loop {
        match attempt {
            Ok(ws) => return Ok(ws),
            Err(HandshakeError::Interrupted(mid)) if !give_up() => attempt = mid.handshake(),
            Err(HandshakeError::Interrupted(_)) => return Err(UpgradeFailed::GaveUp),
            Err(HandshakeError::Failure(e)) => return Err(UpgradeFailed::Failed(e)),
        }
    }
}

/// The upgrade of connection `id` on `tcp` and the path the client asked
/// for (`/v2`, `/user`, …); `None` when it did not happen (said as an
/// event line).
// The upgrade callback's error type is fixed by tungstenite.
#[allow(clippy::result_large_err)]
pub(crate) fn accept_with_path(
    base: &Base,
    id: usize,
    tcp: std::net::TcpStream,
) -> Option<(WebSocket<std::net::TcpStream>, String)> {
    use std::sync::{Arc, Mutex};
    use tungstenite::handshake::server::{Request, Response};
    let path = Arc::new(Mutex::new(String::new()));
    let seen = path.clone();
    let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        *super::lock(&seen) = req.uri().path().to_string();
        Ok(resp)
    };
    let Ok(ws) = upgrade(tcp, callback, give_up(base)) else {
        base.event(format!("ws {id}: WebSocket handshake failed"));
        return None;
    };
    let path = super::lock(&path).clone();
    Some((ws, path))
}

/// An upgrade answer with HTTP `status` and `text` as its body.
pub(crate) fn refusal(status: u16, text: String) -> ErrorResponse {
    let mut refusal = ErrorResponse::new(Some(text));
    *refusal.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
    refusal
}

/// Sends a close frame and reads until the client's echo, the end of the
/// stream, `stop_waiting()` or [`CLOSE_WAIT`].
pub(crate) fn close<S: Read + Write>(
    ws: &mut WebSocket<S>,
    code: u16,
    reason: &str,
    stop_waiting: impl Fn() -> bool,
) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_owned().into(),
    };
    if ws.close(Some(frame)).is_err() {
        return;
    }
    let deadline = Instant::now() + CLOSE_WAIT;
    while Instant::now() < deadline && !stop_waiting() {
        match ws.read() {
            Ok(_) => {}
            Err(Error::Io(e)) if is_timeout(&e) => {}
            Err(_) => return,
        }
    }
}
