//! One simulated broker connection, in its own thread: TLS and WebSocket
//! handshakes, the protocol session, periodic data and heartbeats, and the
//! faults as they apply to a live connection. The thread looks at the stop
//! flag and the fault at least every tick.

use super::fault::Fault;
use super::protocol::{Session, heartbeat};
use super::server::Shared;
use crate::net::timed::TimedTcp;
use crate::net::ws::WsStream;
use crate::sim::shared::net::{Live, WRITE_TIMEOUT, hold, is_timeout, reset, setup};
use crate::sim::shared::ws::{self, UpgradeFailed};
use crate::sim::shared::{Host, TICK};
use crate::timefmt::rfc3339_millis;
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::{Message, WebSocket};

/// Bytes that cannot start a WebSocket frame: all reserved bits and a reserved opcode.
const GARBAGE: &[u8] = b"\xff\xff\xff\xffnot a websocket frame\r\n";
/// At most this many flood messages per loop turn, so faults and stop stay prompt.
const FLOOD_BATCH: u64 = 500;

pub(crate) fn serve(shared: Arc<Shared>, id: usize, tcp: TcpStream, generation: u64) {
    let _live = Live::new(shared.clone(), id, "conn");
    let ready = setup(&tcp, WRITE_TIMEOUT).and_then(|_| match shared.tick {
        TICK => Ok(()),
        tick => tcp.set_read_timeout(Some(tick)),
    });
    if ready.is_err() {
        return;
    }
    match shared.current_fault().0 {
        Some(Fault::Reset) => {
            reset(&tcp);
            shared.stats.update(|s| s.resets_sent += 1);
            shared.event(format!("conn {id}: reset"));
            return;
        }
        Some(Fault::AcceptNoHandshake | Fault::SilentNoPongs) => {
            shared.event(format!("conn {id}: holding without a handshake"));
            return hold(shared.base(), tcp);
        }
        Some(Fault::RefuseConnections) => return,
        _ => {}
    }
    let Some(ws) = handshake(&shared, id, tcp) else {
        return;
    };
    shared.stats.update(|s| s.handshakes_completed += 1);
    shared.event(format!("conn {id}: WebSocket open"));
    let now = Instant::now();
    let conn = Conn {
        shared,
        id,
        ws,
        session: Session::default(),
        generation,
        close_after_base: 0,
        next_data: now,
        last_push: now,
        flood: None,
    };
    if conn.shared.current_fault().0 == Some(Fault::Malformed) {
        return conn.malformed();
    }
    conn.run();
}

/// TLS (if configured) and the WebSocket upgrade, bounded by HANDSHAKE_LIMIT
/// and abandoned when the simulator stops.
// The upgrade callback's error type is fixed by tungstenite.
#[allow(clippy::result_large_err)]
fn handshake(shared: &Shared, id: usize, tcp: TcpStream) -> Option<WebSocket<WsStream>> {
    let give_up = ws::give_up(shared.base());
    let stream = match &shared.tls {
        None => WsStream::Plain(TimedTcp::new(tcp)),
        Some(acceptor) => {
            let mut attempt = acceptor.accept(TimedTcp::new(tcp));
            loop {
                match attempt {
                    Ok(s) => break WsStream::Tls(Box::new(s)),
                    Err(native_tls::HandshakeError::WouldBlock(mid)) if !give_up() => {
                        attempt = mid.handshake()
                    }
                    Err(e) => {
                        shared.event(format!("conn {id}: TLS handshake failed: {e}"));
                        return None;
                    }
                }
            }
        }
    };
    let (reject, delay) = match shared.current_fault().0 {
        Some(Fault::RejectUpgrade { status }) => (Some(status), None),
        Some(Fault::SlowHandshake { delay_ms }) => (None, Some(Duration::from_millis(delay_ms))),
        _ => (None, None),
    };
    if let Some(delay) = delay {
        shared.event(format!(
            "conn {id}: answering the upgrade after {} ms",
            delay.as_millis()
        ));
        let until = Instant::now() + delay;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            if give_up() {
                return None;
            }
            thread::sleep(left.min(shared.tick));
        }
    }
    let callback = move |_req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        match reject {
            None => Ok(resp),
            Some(status) => Err(ws::refusal(status, format!("simulated HTTP {status}"))),
        }
    };
    match ws::upgrade(stream, callback, give_up) {
        Ok(ws) => Some(ws),
        Err(UpgradeFailed::GaveUp) => {
            shared.event(format!("conn {id}: WebSocket handshake timed out"));
            None
        }
        Err(UpgradeFailed::Failed(e)) => {
            shared.event(format!("conn {id}: WebSocket handshake failed: {e}"));
            None
        }
    }
}

struct Conn {
    shared: Arc<Shared>,
    id: usize,
    ws: WebSocket<WsStream>,
    session: Session,
    /// Last fault generation this connection has acted on.
    generation: u64,
    /// `session.data_n` when the current CloseAfter started counting.
    close_after_base: u64,
    next_data: Instant,
    /// Last data or heartbeat.
    last_push: Instant,
    /// (rate, start, sent since start) of the flood in force.
    flood: Option<(u32, Instant, u64)>,
}

/// Why the connection loop ends.
struct End;

impl Conn {
    fn run(mut self) {
        while self.turn().is_ok() {}
    }

    /// One turn of the loop: faults, pushes, then one read (at most a tick).
    fn turn(&mut self) -> Result<(), End> {
        if self.shared.stopping() {
            self.close(1001, "simulator stopping");
            return Err(End);
        }
        let (faults, base) = (&self.shared.faults, self.shared.base());
        for change in faults.catch_up(base, self.id, &mut self.generation) {
            self.on_fault_set(change)?;
        }
        let fault = self.shared.current_fault().0;
        match fault {
            Some(Fault::SilentNoPongs) => {
                thread::sleep(self.shared.tick);
                return Ok(());
            }
            Some(Fault::SilentWithPongs) => {}
            _ => self.push(fault.as_ref())?,
        }
        if let Some(Fault::CloseAfter { messages, code }) = fault {
            if self.session.data_n.saturating_sub(self.close_after_base) >= messages {
                self.close(
                    code,
                    "simulated fault: the server closes after a set number of data messages",
                );
                return Err(End);
            }
        }
        self.read_one(fault.as_ref())
    }

    /// A fault was just set while this connection is open.
    fn on_fault_set(&mut self, fault: Option<Fault>) -> Result<(), End> {
        match fault {
            Some(Fault::RefuseConnections) => {
                // The broker died: the socket just goes away, no close frame.
                let _ = self.ws.get_ref().tcp().shutdown(std::net::Shutdown::Both);
                self.shared
                    .event(format!("conn {}: dropped (refuse)", self.id));
                Err(End)
            }
            Some(Fault::Reset) => {
                reset(self.ws.get_ref().tcp());
                self.shared.stats.update(|s| s.resets_sent += 1);
                self.shared.event(format!("conn {}: reset", self.id));
                Err(End)
            }
            Some(Fault::CloseWithCode { code }) => {
                self.close(
                    code,
                    "simulated fault: the server closes every open connection",
                );
                Err(End)
            }
            Some(Fault::Malformed) => {
                self.write_garbage_and_drain();
                Err(End)
            }
            Some(Fault::CloseAfter { .. }) => {
                self.close_after_base = self.session.data_n;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn malformed(mut self) {
        self.write_garbage_and_drain();
    }

    fn write_garbage_and_drain(&mut self) {
        self.shared.event(format!(
            "conn {}: writing bytes that are not a WebSocket frame",
            self.id
        ));
        let stream = self.ws.get_mut();
        if stream
            .write_all(GARBAGE)
            .and_then(|_| stream.flush())
            .is_err()
        {
            return;
        }
        // Keep the socket open (closing with unread input would reset it and
        // could destroy the garbage before the client reads it). A draining
        // connection no longer follows faults.
        self.shared.base().forget(self.id);
        hold(self.shared.base(), self.ws.get_mut());
    }

    fn send(&mut self, text: String) -> Result<(), End> {
        self.ws.send(Message::text(text)).map_err(|e| {
            self.shared
                .event(format!("conn {}: send failed: {e}", self.id));
            End
        })
    }

    fn authenticated(&self) -> bool {
        self.session.authenticated(&self.shared.tokens())
    }

    /// Data (or flood) and heartbeats that are due.
    fn push(&mut self, fault: Option<&Fault>) -> Result<(), End> {
        let now = Instant::now();
        let subscribed = !self.session.channels.is_empty() && self.authenticated();
        match fault {
            Some(&Fault::Flood { per_sec }) => {
                let (rate, start, sent) = match self.flood {
                    Some(f) if f.0 == per_sec => f,
                    _ => (per_sec, now, 0),
                };
                let due = (now.duration_since(start).as_secs_f64() * f64::from(rate)) as u64;
                let batch = due.saturating_sub(sent).min(FLOOD_BATCH);
                if subscribed && batch > 0 {
                    self.send_data_batch(batch)?;
                }
                self.flood = Some((rate, start, sent + batch));
            }
            _ => {
                self.flood = None;
                if let Some(every) = self.shared.data_every {
                    if subscribed && now >= self.next_data {
                        let channels = self.session.channels.len() as u64;
                        self.send_data_batch(channels)?;
                        // Skip missed periods rather than burst after a stall.
                        self.next_data = (self.next_data + every).max(now);
                    }
                }
            }
        }
        if let Some(every) = self.shared.heartbeat_every {
            if self.authenticated() && now.duration_since(self.last_push) >= every {
                self.send(heartbeat())?;
                self.last_push = now;
                self.shared.stats.update(|s| s.heartbeats_sent += 1);
            }
        }
        Ok(())
    }

    /// `count` data messages, round-robin over the subscribed channels.
    fn send_data_batch(&mut self, count: u64) -> Result<(), End> {
        let ts = rfc3339_millis(SystemTime::now());
        for i in 0..count {
            let channel = self.session.channels[(i as usize) % self.session.channels.len()].clone();
            let sent_ns = self.shared.stamp_sends.then(|| {
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos()
            });
            let msg = self.session.next_data_stamped(&channel, &ts, sent_ns);
            self.ws.write(Message::text(msg)).map_err(|_| End)?;
        }
        self.ws.flush().map_err(|_| End)?;
        self.last_push = Instant::now();
        self.shared.stats.update(|s| s.data_sent += count);
        Ok(())
    }

    fn read_one(&mut self, fault: Option<&Fault>) -> Result<(), End> {
        let read = self.ws.read();
        if matches!(
            read,
            Ok(Message::Text(_) | Message::Binary(_) | Message::Ping(_) | Message::Close(_))
        ) {
            let id = self.id;
            self.shared.stats.update(|s| {
                if let Some(t) = s.connection_times.get_mut(id) {
                    t.last_client_frame = Some(Instant::now());
                }
            });
        }
        match read {
            Ok(Message::Text(t)) => self.on_text(t.as_str(), fault),
            Ok(Message::Ping(_)) => {
                self.shared.stats.update(|s| s.pings_received += 1);
                self.ws.flush().map_err(|_| End)
            }
            Ok(Message::Close(frame)) => {
                let code = frame.map(|f| u16::from(f.code));
                self.shared
                    .event(format!("conn {}: closed by client ({code:?})", self.id));
                let _ = self.ws.flush();
                Err(End)
            }
            Ok(_) => Ok(()),
            Err(tungstenite::Error::Io(e)) if is_timeout(&e) => Ok(()),
            Err(e) => {
                self.shared
                    .event(format!("conn {}: read ended: {e}", self.id));
                Err(End)
            }
        }
    }

    fn on_text(&mut self, text: &str, fault: Option<&Fault>) -> Result<(), End> {
        self.shared.stats.update(|s| s.client_messages += 1);
        let tokens = self.shared.tokens();
        let out = self.session.on_text(text, &tokens, fault);
        let id = self.id;
        if out.token_seen.is_some() || out.auth.is_some() || out.subscribed.is_some() {
            self.shared.stats.update(|s| {
                if let Some(t) = &out.token_seen {
                    s.tokens_seen.push(t.clone());
                }
                match out.auth {
                    Some(true) => {
                        s.auth_ok += 1;
                        if let Some(t) = s.connection_times.get_mut(id) {
                            t.authed = Some(Instant::now());
                        }
                    }
                    Some(false) => s.auth_failed += 1,
                    None => {}
                }
                if let Some(c) = &out.subscribed {
                    s.subscribes_per_connection[id].push(c.clone());
                }
            });
        }
        match out.auth {
            Some(true) => self.shared.event(format!("conn {id}: auth ok")),
            Some(false) => self.shared.event(format!("conn {id}: auth failed")),
            None => {}
        }
        if let Some(c) = &out.subscribed {
            self.shared.event(format!("conn {id}: subscribed {c}"));
            if self.session.channels.len() == 1 {
                if let Some(every) = self.shared.data_every {
                    self.next_data = Instant::now() + every;
                }
            }
        }
        for reply in out.replies {
            self.send(reply)?;
        }
        if let Some((code, reason)) = out.close {
            self.close(code, &reason);
            return Err(End);
        }
        Ok(())
    }

    /// Sends a close frame and waits briefly for the client's echo.
    fn close(&mut self, code: u16, reason: &str) {
        self.shared.stats.update(|s| s.close_codes_sent.push(code));
        self.shared
            .event(format!("conn {}: closing with {code}", self.id));
        ws::close(&mut self.ws, code, reason, || self.shared.stopping());
    }
}
