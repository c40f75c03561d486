//! One simulated KiteTicker connection, in its own thread: the upgrade with
//! query-string auth (`?api_key=…&access_token=…`, a wrong pair gets HTTP
//! 403), the client's `subscribe`/`unsubscribe`/`mode` requests, data
//! frames for the subscribed tokens every `data_every`, a 1-byte heartbeat
//! after `heartbeat_every` of quiet, broadcast text messages, and the
//! faults. The thread looks at the stop flag and the fault every tick.

use super::encode::{self, HEARTBEAT, Lie, SimMode};
use super::fault::KiteFault;
use super::server::Shared;
use super::stats::MAX_KEPT_MESSAGES;
use crate::net::timed::TimedTcp;
use crate::net::ws::WsStream;
use crate::sim::shared::net::{Live, WRITE_TIMEOUT, hold, is_timeout, setup};
use crate::sim::shared::{Host, TICK, ws};
use serde_json::Value;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Instant;
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::{Message, WebSocket};

/// Decodes `%XX` and `+` in a query value.
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `name` in a `a=1&b=2` string, decoded.
pub(crate) fn query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

/// Applies one client request to a connection's subscriptions.
/// `{"a":"subscribe","v":[t,…]}` adds tokens in quote mode (Kite's
/// default), `unsubscribe` removes them, `{"a":"mode","v":[m,[t,…]]}` sets
/// the mode of subscribed ones. Tokens must be JSON numbers.
pub(crate) fn apply_request(subs: &mut Vec<(u32, SimMode)>, text: &str) -> Result<(), String> {
    let v: Value = serde_json::from_str(text).map_err(|_| "not JSON".to_string())?;
    let tokens = |v: &Value| -> Result<Vec<u32>, String> {
        v.as_array()
            .ok_or("tokens must be an array")?
            .iter()
            .map(|t| {
                t.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| format!("token {t} is not a number"))
            })
            .collect()
    };
    match v.get("a").and_then(Value::as_str) {
        Some("subscribe") => {
            for t in tokens(v.get("v").unwrap_or(&Value::Null))? {
                if !subs.iter().any(|(s, _)| *s == t) {
                    subs.push((t, SimMode::Quote));
                }
            }
            Ok(())
        }
        Some("unsubscribe") => {
            let gone = tokens(v.get("v").unwrap_or(&Value::Null))?;
            subs.retain(|(t, _)| !gone.contains(t));
            Ok(())
        }
        Some("mode") => {
            let arr = v
                .get("v")
                .and_then(Value::as_array)
                .ok_or("mode needs [mode, [tokens]]")?;
            let [mode, list] = arr.as_slice() else {
                return Err("mode needs [mode, [tokens]]".into());
            };
            let mode: SimMode = mode.as_str().ok_or("the mode must be a string")?.parse()?;
            let list = tokens(list)?;
            for (t, m) in subs.iter_mut() {
                if list.contains(t) {
                    *m = mode;
                }
            }
            Ok(())
        }
        _ => Err("unknown action".into()),
    }
}

pub(crate) fn serve(shared: Arc<Shared>, id: usize, tcp: TcpStream, generation: u64) {
    let _live = Live::new(shared.clone(), id, "ticker conn");
    if setup(&tcp, WRITE_TIMEOUT).is_err() {
        return;
    }
    if shared.faults.current().0 == Some(KiteFault::Frozen) {
        shared.event(format!("ticker conn {id}: frozen, no handshake"));
        return hold(shared.base(), tcp);
    }
    let Some((ws, broadcasts_seen)) = handshake(&shared, id, tcp) else {
        return;
    };
    shared.stats.update(|s| {
        s.upgrades_completed += 1;
        while s.subscriptions.len() <= id {
            s.subscriptions.push(Vec::new());
        }
    });
    shared.event(format!("ticker conn {id}: WebSocket open"));
    let lie_pending = match shared.faults.current().0 {
        Some(KiteFault::LieOnce(l)) => Some(l),
        _ => None,
    };
    let now = Instant::now();
    let mut conn = Conn {
        broadcasts_seen,
        shared,
        id,
        ws,
        generation,
        subs: Vec::new(),
        n: 0,
        next_data: None,
        last_push: now,
        lie_pending,
    };
    while conn.turn().is_ok() {}
}

/// The upgrade: an `http:` fault refuses it with its status; otherwise the
/// query string's api_key and access_token must be good, else 403. Also
/// returns how many broadcast texts existed before the 101 went out: the
/// connection gets every one sent after its client saw the upgrade done.
#[allow(clippy::result_large_err)] // the callback's error type is tungstenite's
fn handshake(
    shared: &Arc<Shared>,
    id: usize,
    tcp: TcpStream,
) -> Option<(WebSocket<WsStream>, usize)> {
    let give_up = ws::give_up(shared.base());
    let stream = WsStream::Plain(TimedTcp::new(tcp));
    let s = shared.clone();
    let seen = Arc::new(AtomicUsize::new(0));
    let seen_in_callback = seen.clone();
    let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        seen_in_callback.store(s.broadcasts_since(usize::MAX).1, Ordering::SeqCst);
        let version = req
            .headers()
            .get("x-kite-version")
            .and_then(|v| v.to_str().ok());
        if version != Some("3") {
            s.stats.update(|st| st.upgrades_without_version += 1);
        }
        let query = req.uri().query().unwrap_or("");
        let key_ok = query_value(query, "api_key").as_deref() == Some(s.api_key.as_str());
        let token_ok = query_value(query, "access_token").is_some_and(|t| s.access_token_ok(&t));
        let status = match s.faults.current().0 {
            Some(KiteFault::RejectUpgrade { status }) => Some(status),
            _ if !(key_ok && token_ok) => Some(403),
            _ => None,
        };
        match status {
            None => Ok(resp),
            Some(status) => {
                s.stats.update(|st| st.upgrades_refused.push(status));
                s.event(format!(
                    "ticker conn {id}: upgrade refused with HTTP {status}"
                ));
                Err(ws::refusal(status, format!("HTTP {status}")))
            }
        }
    };
    let ws = ws::upgrade(stream, callback, give_up).ok()?;
    Some((ws, seen.load(Ordering::SeqCst)))
}

/// Why the connection loop ends.
struct End;

struct Conn {
    shared: Arc<Shared>,
    id: usize,
    ws: WebSocket<WsStream>,
    generation: u64,
    subs: Vec<(u32, SimMode)>,
    /// The `n` of the next data frame.
    n: u32,
    next_data: Option<Instant>,
    /// Last data frame or heartbeat.
    last_push: Instant,
    lie_pending: Option<Lie>,
    broadcasts_seen: usize,
}

impl Conn {
    fn turn(&mut self) -> Result<(), End> {
        if self.shared.stopping() {
            self.close(1001, "simulator stopping");
            return Err(End);
        }
        let (faults, base) = (&self.shared.faults, self.shared.base());
        for change in faults.catch_up(base, self.id, &mut self.generation) {
            match change {
                Some(KiteFault::Close { code }) => {
                    self.close(
                        code,
                        "simulated fault: the server closes every open connection",
                    );
                    return Err(End);
                }
                Some(KiteFault::LieOnce(l)) => self.lie_pending = Some(l),
                _ => {}
            }
        }
        let fault = self.shared.faults.current().0;
        match fault {
            Some(KiteFault::Frozen) => {
                thread::sleep(TICK);
                return Ok(());
            }
            Some(KiteFault::Silent) => {}
            Some(KiteFault::HeartbeatsOnly) => self.heartbeat_if_due()?,
            ref f => {
                let always = match f {
                    Some(KiteFault::LieAlways(l)) => Some(*l),
                    _ => None,
                };
                self.push(always)?;
            }
        }
        self.texts()?;
        self.read_one()
    }

    fn send(&mut self, msg: Message) -> Result<(), End> {
        self.ws.send(msg).map_err(|e| {
            self.shared
                .event(format!("ticker conn {}: send failed: {e}", self.id));
            End
        })
    }

    fn heartbeat_if_due(&mut self) -> Result<(), End> {
        let Some(every) = self.shared.heartbeat_every else {
            return Ok(());
        };
        let now = Instant::now();
        if now.duration_since(self.last_push) >= every {
            self.send(Message::binary(HEARTBEAT.to_vec()))?;
            self.last_push = now;
            self.shared.stats.update(|s| s.heartbeats_sent += 1);
        }
        Ok(())
    }

    /// The data frame that is due (lying if a lie is pending or always),
    /// else a heartbeat if due.
    fn push(&mut self, always: Option<Lie>) -> Result<(), End> {
        let now = Instant::now();
        if let (Some(due), Some(every)) = (self.next_data, self.shared.data_every) {
            if now >= due && !self.subs.is_empty() {
                let lie = always.or(self.lie_pending.take());
                let frame = match lie {
                    Some(l) => encode::lying_frame(&self.subs, self.n, l),
                    None => encode::data_frame(&self.subs, self.n),
                };
                self.send(Message::binary(frame))?;
                self.last_push = now;
                // Keep the period, unless far behind (a slow reader).
                let next = due + every;
                self.next_data = Some(if next < now { now + every } else { next });
                let ticks = self.subs.len() as u64;
                if lie.is_some() {
                    self.shared.stats.update(|s| s.lying_frames_sent += 1);
                } else {
                    self.n = self.n.wrapping_add(1);
                    self.shared.stats.update(|s| {
                        s.data_frames_sent += 1;
                        s.ticks_sent += ticks;
                    });
                }
                return Ok(());
            }
        }
        self.heartbeat_if_due()
    }

    fn texts(&mut self) -> Result<(), End> {
        let (texts, next) = self.shared.broadcasts_since(self.broadcasts_seen);
        self.broadcasts_seen = next;
        for t in texts {
            self.send(Message::text(t))?;
            self.shared.stats.update(|s| s.texts_sent += 1);
        }
        Ok(())
    }

    fn read_one(&mut self) -> Result<(), End> {
        match self.ws.read() {
            Ok(Message::Text(t)) => {
                self.on_request(t.as_str());
                Ok(())
            }
            Ok(Message::Ping(_)) => {
                self.shared.stats.update(|s| s.pings_received += 1);
                // tungstenite queued the pong; send it now.
                self.ws.flush().map_err(|_| End)
            }
            Ok(Message::Close(_)) => {
                let _ = self.ws.flush();
                Err(End)
            }
            Ok(_) => Ok(()),
            Err(tungstenite::Error::Io(e)) if is_timeout(&e) => Ok(()),
            Err(_) => Err(End),
        }
    }

    fn on_request(&mut self, text: &str) {
        let was_empty = self.subs.is_empty();
        let result = apply_request(&mut self.subs, text);
        let subs = self.subs.clone();
        let id = self.id;
        self.shared.stats.update(|s| {
            if s.client_messages.len() < MAX_KEPT_MESSAGES {
                s.client_messages.push(text.to_string());
            }
            if result.is_err() {
                s.invalid_client_messages += 1;
            }
            if let Some(slot) = s.subscriptions.get_mut(id) {
                *slot = subs;
            }
        });
        match result {
            Ok(()) => {
                if was_empty && !self.subs.is_empty() {
                    // The first frame comes one period after the first
                    // subscribe, so the client's `mode` is in force by then.
                    self.next_data = self.shared.data_every.map(|e| Instant::now() + e);
                }
            }
            Err(why) => self
                .shared
                .event(format!("ticker conn {}: ignored a request: {why}", self.id)),
        }
    }

    fn close(&mut self, code: u16, reason: &str) {
        self.shared.stats.update(|s| s.close_codes_sent.push(code));
        self.shared
            .event(format!("ticker conn {}: closing with {code}", self.id));
        ws::close(&mut self.ws, code, reason, || self.shared.stopping());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded() {
        let q = "api_key=k%26%3D&access_token=t+x%25&other";
        assert_eq!(query_value(q, "api_key").as_deref(), Some("k&="));
        assert_eq!(query_value(q, "access_token").as_deref(), Some("t x%"));
        assert_eq!(query_value(q, "other").as_deref(), Some(""));
        assert_eq!(query_value(q, "missing"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%C3%A9"), "é");
        assert_eq!(percent_decode("%é1"), "%é1");
    }

    #[test]
    fn requests_change_subscriptions() {
        let mut subs = Vec::new();
        apply_request(&mut subs, r#"{"a":"subscribe","v":[1,2]}"#).unwrap();
        assert_eq!(subs, [(1, SimMode::Quote), (2, SimMode::Quote)]);
        apply_request(&mut subs, r#"{"a":"mode","v":["full",[2,3]]}"#).unwrap();
        assert_eq!(subs, [(1, SimMode::Quote), (2, SimMode::Full)]);
        apply_request(&mut subs, r#"{"a":"subscribe","v":[2,4]}"#).unwrap();
        assert_eq!(
            subs,
            [(1, SimMode::Quote), (2, SimMode::Full), (4, SimMode::Quote)]
        );
        apply_request(&mut subs, r#"{"a":"unsubscribe","v":[1]}"#).unwrap();
        assert_eq!(subs, [(2, SimMode::Full), (4, SimMode::Quote)]);
        for bad in [
            r#"{"a":"subscribe","v":["408065"]}"#,
            r#"{"a":"mode","v":["depth",[2]]}"#,
            r#"{"a":"mode","v":["full"]}"#,
            r#"{"a":"dance"}"#,
            "nope",
        ] {
            assert!(apply_request(&mut subs, bad).is_err(), "{bad}");
        }
        assert_eq!(subs, [(2, SimMode::Full), (4, SimMode::Quote)]);
    }
}
