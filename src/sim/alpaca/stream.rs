//! One simulated Alpaca WebSocket connection, in its own thread: the
//! market-data streams (`/v2/iex`, `/v2/sip`, `/v2/test`,
//! `/v1beta3/crypto/us`) and the trading stream (`/paper/stream`,
//! `/live/stream`), written from PROTOCOLS.md §2 and alpaca-py's client.
//!
//! Market data: `[{"T":"success","msg":"connected"}]`, the auth message
//! within `auth_within` (else 404), one connection per key and endpoint
//! (else 406), subscribe answered with the whole current set (symbols the
//! simulator does not list are left out, as Alpaca leaves out unknown
//! ones), and every `data_every` one batched frame with a message per
//! subscribed channel and symbol. Trades are the same on every connection
//! in the same tick (`i` is the tick number), so two clients can be
//! compared. A client that sends `Content-Type: application/msgpack` on
//! the handshake is answered in MessagePack binary frames (timestamps as
//! the timestamp extension), as Alpaca does; others get JSON text.
//!
//! Trading stream: auth answered on `authorization` (paper keys on the
//! paper path only), `listen` on `listening`, then a `trade_updates`
//! event every `data_every`; the paper path sends binary frames.

use super::fault::{AlpacaFault, message_of};
use super::msgpack;
use super::server::Shared;
use crate::sim::shared::net::{self, Live, is_timeout};
use crate::sim::shared::{Host, lock, ws as shared_ws};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::{Message, WebSocket};

/// How long a client that does not read may block a write.
const WRITE_TIMEOUT: Duration = Duration::from_millis(500);
/// The stock channels and the crypto ones (alpaca-docs).
const STOCK_CHANNELS: [&str; 7] = [
    "trades",
    "quotes",
    "bars",
    "dailyBars",
    "updatedBars",
    "statuses",
    "lulds",
];
const CRYPTO_CHANNELS: [&str; 6] = [
    "trades",
    "quotes",
    "bars",
    "dailyBars",
    "updatedBars",
    "orderbooks",
];

/// What a path serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Stocks { test: bool },
    Crypto,
    Trading { paper: bool },
}

fn route(path: &str) -> Option<Route> {
    match path.trim_end_matches('/') {
        "/v2/iex" | "/v2/sip" | "/v2/delayed_sip" => Some(Route::Stocks { test: false }),
        "/v2/test" => Some(Route::Stocks { test: true }),
        "/v1beta3/crypto/us" => Some(Route::Crypto),
        "/paper/stream" => Some(Route::Trading { paper: true }),
        "/live/stream" | "/stream" => Some(Route::Trading { paper: false }),
        _ => None,
    }
}

// The upgrade callback's error type is fixed by tungstenite.
#[allow(clippy::result_large_err)]
pub(crate) fn serve(shared: Arc<Shared>, id: usize, tcp: TcpStream, generation: u64) {
    let _live = Live::new(shared.clone(), id, "ws");
    if net::setup(&tcp, WRITE_TIMEOUT).is_err() {
        return;
    }
    let seen = Arc::new(Mutex::new((String::new(), false)));
    let seen_cb = seen.clone();
    let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let path = req.uri().path().to_string();
        let msgpack = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("msgpack"));
        if route(&path).is_none() {
            return Err(shared_ws::refusal(
                404,
                format!("no Alpaca stream at {path}"),
            ));
        }
        *lock(&seen_cb) = (path, msgpack);
        Ok(resp)
    };
    let ws = match shared_ws::upgrade(tcp, callback, shared_ws::give_up(shared.base())) {
        Ok(ws) => ws,
        Err(_) => {
            shared.event(format!("ws {id}: WebSocket handshake failed or refused"));
            return;
        }
    };
    let (path, msgpack) = lock(&seen).clone();
    let Some(route) = route(&path) else {
        return;
    };
    shared.event(format!(
        "ws {id}: open {path}{}",
        if msgpack { " (msgpack)" } else { "" }
    ));
    let now = Instant::now();
    let mut conn = Conn {
        kicks: shared.kicks.load(Ordering::SeqCst),
        shared,
        id,
        ws,
        path,
        route,
        msgpack,
        generation,
        opened: now,
        key: None,
        subs: BTreeMap::new(),
        listening: false,
        last_slot: 0,
        updates: 0,
    };
    if let Route::Trading { .. } = route {
        while conn.trading_turn().is_ok() {}
    } else {
        if conn
            .send(&json!([{"T":"success","msg":"connected"}]))
            .is_err()
        {
            return;
        }
        while conn.market_turn().is_ok() {}
    }
}

struct Conn {
    shared: Arc<Shared>,
    id: usize,
    ws: WebSocket<TcpStream>,
    path: String,
    route: Route,
    msgpack: bool,
    generation: u64,
    kicks: u64,
    opened: Instant,
    /// The key id, once authenticated.
    key: Option<String>,
    /// Channel → symbols subscribed.
    subs: BTreeMap<String, Vec<String>>,
    listening: bool,
    /// The last data tick sent.
    last_slot: u64,
    /// Trade updates sent on this connection: they alternate `new` and
    /// `fill` by this count, not by the tick, so a loaded machine that
    /// skips ticks still sends both.
    updates: u64,
}

struct End;

/// `2026-11-22T09:00:01.123456789Z`: RFC 3339 with nanoseconds, as Alpaca.
fn rfc3339_nanos(t: SystemTime) -> String {
    let secs = crate::timefmt::rfc3339(t);
    let nanos = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    format!("{}.{nanos:09}Z", secs.trim_end_matches('Z'))
}

/// Fills each element's `"t": null` with the time as text (JSON frames).
fn stamp(v: &mut Value, t: SystemTime) {
    if let Value::Array(items) = v {
        for item in items {
            if let Some(slot) = item.get_mut("t").filter(|x| x.is_null()) {
                *slot = Value::String(rfc3339_nanos(t));
            }
        }
    }
}

impl Conn {
    fn send(&mut self, v: &Value) -> Result<(), End> {
        let now = SystemTime::now();
        let msg = if self.msgpack {
            let mut out = Vec::with_capacity(256);
            msgpack::encode(v, now, &mut out);
            Message::binary(out)
        } else {
            let mut v = v.clone();
            stamp(&mut v, now);
            Message::text(v.to_string())
        };
        self.ws.send(msg).map_err(|_| End)
    }

    fn error(&mut self, code: u16) -> Result<(), End> {
        self.shared
            .stats
            .update(|s| *s.errors_sent.entry(code).or_default() += 1);
        self.shared
            .event(format!("ws {}: error {code} {}", self.id, message_of(code)));
        self.send(&json!([{"T":"error","code":code,"msg":message_of(code)}]))
    }

    /// Sends `code` and closes normally.
    fn error_and_close(&mut self, code: u16) -> Result<(), End> {
        let _ = self.error(code);
        self.close(1000, message_of(code));
        Err(End)
    }

    fn close(&mut self, code: u16, reason: &str) {
        let base = self.shared.base();
        shared_ws::close(&mut self.ws, code, reason, || base.stopping());
    }

    /// The stop flag, `disconnect_all`, and one-shot close/drop faults.
    fn common_turn(&mut self) -> Result<Option<AlpacaFault>, End> {
        if self.shared.stopping() {
            self.close(1001, "simulator stopping");
            return Err(End);
        }
        if self.shared.kicks.load(Ordering::SeqCst) != self.kicks {
            self.shared.event(format!("ws {}: dropped", self.id));
            return Err(End);
        }
        let changes =
            self.shared
                .faults
                .catch_up(self.shared.base(), self.id, &mut self.generation);
        for change in changes {
            match change {
                Some(AlpacaFault::Close(code)) => {
                    self.shared
                        .event(format!("ws {}: closing with {code}", self.id));
                    self.close(code, "closed by the simulator");
                    return Err(End);
                }
                Some(AlpacaFault::Drop) => {
                    self.shared
                        .event(format!("ws {}: dropped without a close frame", self.id));
                    net::reset(self.ws.get_ref());
                    return Err(End);
                }
                _ => {}
            }
        }
        Ok(self.shared.faults.current().0)
    }

    /// Reads one client message (`None` on a read tick without one).
    fn read(&mut self) -> Result<Option<Value>, End> {
        match self.ws.read() {
            Ok(Message::Text(t)) => Ok(Some(
                serde_json::from_str(t.as_str()).unwrap_or(Value::Null),
            )),
            Ok(Message::Binary(b)) => Ok(Some(
                msgpack::decode(&b)
                    .or_else(|| serde_json::from_slice(&b).ok())
                    .unwrap_or(Value::Null),
            )),
            Ok(Message::Ping(_)) => {
                self.shared.stats.update(|s| s.pings += 1);
                self.ws.flush().map_err(|_| End)?;
                Ok(None)
            }
            Ok(Message::Close(_)) => {
                let _ = self.ws.flush();
                Err(End)
            }
            Ok(_) => Ok(None),
            Err(tungstenite::Error::Io(e)) if is_timeout(&e) => Ok(None),
            Err(_) => Err(End),
        }
    }

    fn market_turn(&mut self) -> Result<(), End> {
        let fault = self.common_turn()?;
        if self.key.is_none() {
            if fault == Some(AlpacaFault::AuthTimeout)
                || self.opened.elapsed() >= self.shared.auth_within
            {
                return self.error_and_close(404);
            }
        } else if !self.subs.is_empty() {
            if fault == Some(AlpacaFault::SlowClient) {
                return self.error_and_close(407);
            }
            if fault != Some(AlpacaFault::Silent) {
                self.push_data()?;
            }
        }
        let Some(msg) = self.read()? else {
            return Ok(());
        };
        match msg.get("action").and_then(Value::as_str) {
            Some("auth") => self.on_auth(&msg, fault),
            Some("subscribe") => self.on_subscribe(&msg, fault, true),
            Some("unsubscribe") => self.on_subscribe(&msg, fault, false),
            _ => self.error(400),
        }
    }

    fn on_auth(&mut self, msg: &Value, fault: Option<AlpacaFault>) -> Result<(), End> {
        if self.key.is_some() {
            return self.error(403);
        }
        match fault {
            Some(AlpacaFault::ConnectionLimit) => return self.error_and_close(406),
            Some(AlpacaFault::Error(c)) if c != 405 && c != 410 => {
                return if matches!(c, 400 | 401 | 403) {
                    self.error(c)
                } else {
                    self.error_and_close(c)
                };
            }
            _ => {}
        }
        let field = |k: &str| msg.get(k).and_then(Value::as_str).unwrap_or("");
        let Some(key) = self.shared.key(field("key"), field("secret")) else {
            return self.error_and_close(402);
        };
        if !self.shared.hold(&key.key_id, &self.path, self.id) {
            return self.error_and_close(406);
        }
        self.key = Some(key.key_id);
        self.shared.stats.update(|s| s.authenticated += 1);
        self.shared.event(format!("ws {}: authenticated", self.id));
        self.send(&json!([{"T":"success","msg":"authenticated"}]))
    }

    fn listed(&self, symbol: &str) -> bool {
        match self.route {
            Route::Stocks { test: true } => symbol == "FAKEPACA",
            Route::Stocks { test: false } => {
                symbol == "*" || self.shared.stocks.iter().any(|s| s == symbol)
            }
            Route::Crypto => symbol == "*" || self.shared.crypto.iter().any(|s| s == symbol),
            Route::Trading { .. } => false,
        }
    }

    fn channels(&self) -> &'static [&'static str] {
        match self.route {
            Route::Crypto => &CRYPTO_CHANNELS,
            _ => &STOCK_CHANNELS,
        }
    }

    fn on_subscribe(
        &mut self,
        msg: &Value,
        fault: Option<AlpacaFault>,
        add: bool,
    ) -> Result<(), End> {
        if self.key.is_none() {
            return self.error(401);
        }
        if let Some(AlpacaFault::Error(c @ (405 | 410))) = fault {
            return self.error(c);
        }
        let Some(obj) = msg.as_object() else {
            return self.error(400);
        };
        let known = self.channels();
        let all = [
            "trades",
            "quotes",
            "bars",
            "dailyBars",
            "updatedBars",
            "statuses",
            "lulds",
            "orderbooks",
        ];
        if obj
            .keys()
            .any(|k| all.contains(&k.as_str()) && !known.contains(&k.as_str()))
        {
            return self.error(410);
        }
        for channel in known {
            let Some(list) = obj.get(*channel).and_then(Value::as_array) else {
                continue;
            };
            let symbols: Vec<String> = list
                .iter()
                .filter_map(Value::as_str)
                .filter(|s| self.listed(s))
                .map(String::from)
                .collect();
            let entry = self.subs.entry(channel.to_string()).or_default();
            for s in symbols {
                if add && !entry.contains(&s) {
                    entry.push(s);
                } else if !add {
                    entry.retain(|x| *x != s);
                }
            }
        }
        self.subs.retain(|_, v| !v.is_empty());
        self.shared.stats.update(|s| s.subscribes += 1);
        let mut answer = Map::new();
        answer.insert("T".into(), "subscription".into());
        for channel in known {
            let list = self.subs.get(*channel).cloned().unwrap_or_default();
            answer.insert(channel.to_string(), list.into());
        }
        if self.route != Route::Crypto {
            let trades = self.subs.get("trades").cloned().unwrap_or_default();
            answer.insert("corrections".into(), trades.clone().into());
            answer.insert("cancelErrors".into(), trades.into());
        }
        self.shared.event(format!(
            "ws {}: subscription {}",
            self.id,
            Value::Object(answer.clone())
        ));
        self.send(&Value::Array(vec![Value::Object(answer)]))
    }

    /// One batched frame per tick: a message per channel and symbol.
    fn push_data(&mut self) -> Result<(), End> {
        let every = self.shared.data_every.as_millis().max(1) as u64;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let slot = now_ms / every;
        if slot == self.last_slot {
            return Ok(());
        }
        self.last_slot = slot;
        let mut batch = Vec::new();
        for (channel, symbols) in &self.subs {
            let expanded: Vec<String> = if symbols.iter().any(|s| s == "*") {
                match self.route {
                    Route::Crypto => self.shared.crypto.clone(),
                    _ => self.shared.stocks.clone(),
                }
            } else {
                symbols.clone()
            };
            for s in expanded {
                batch.push(market_message(
                    channel,
                    &s,
                    slot,
                    self.route == Route::Crypto,
                ));
            }
        }
        let n = batch.len() as u64;
        self.send(&Value::Array(batch))?;
        self.shared.stats.update(|s| {
            s.messages_sent += n;
            s.frames_sent += 1;
        });
        Ok(())
    }

    fn trading_turn(&mut self) -> Result<(), End> {
        let fault = self.common_turn()?;
        let Route::Trading { paper } = self.route else {
            return Err(End);
        };
        if self.listening && fault != Some(AlpacaFault::Silent) {
            self.push_update(paper)?;
        }
        let Some(msg) = self.read()? else {
            return Ok(());
        };
        match msg.get("action").and_then(Value::as_str) {
            Some("auth" | "authenticate") => {
                let data = msg.get("data").unwrap_or(&msg);
                let field = |a: &str, b: &str| {
                    msg.get(a)
                        .or(data.get(b))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                let key = self
                    .shared
                    .key(&field("key", "key_id"), &field("secret", "secret_key"))
                    .filter(|k| k.paper == paper);
                let status = if key.is_some() {
                    "authorized"
                } else {
                    "unauthorized"
                };
                self.send_trading(
                    &json!({"stream":"authorization","data":{"action":"authenticate","status":status}}),
                    paper,
                )?;
                match key {
                    Some(k) => {
                        self.key = Some(k.key_id);
                        self.shared.stats.update(|s| s.authenticated += 1);
                        Ok(())
                    }
                    None => {
                        self.close(1000, "unauthorized");
                        Err(End)
                    }
                }
            }
            Some("listen") if self.key.is_some() => {
                let asked: Vec<&str> = msg
                    .pointer("/data/streams")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let streams: Vec<&str> = asked
                    .into_iter()
                    .filter(|s| *s == "trade_updates")
                    .collect();
                self.listening = !streams.is_empty();
                self.send_trading(
                    &json!({"stream":"listening","data":{"streams":streams}}),
                    paper,
                )
            }
            _ => self.send_trading(
                &json!({"stream":"listening","data":{"error":"invalid action"}}),
                paper,
            ),
        }
    }

    /// Trading-stream messages: binary frames on the paper path.
    fn send_trading(&mut self, v: &Value, paper: bool) -> Result<(), End> {
        let text = v.to_string();
        let msg = if paper {
            self.shared.stats.update(|s| s.binary_frames_sent += 1);
            Message::binary(text.into_bytes())
        } else {
            Message::text(text)
        };
        self.ws.send(msg).map_err(|_| End)
    }

    fn push_update(&mut self, paper: bool) -> Result<(), End> {
        let every = self.shared.data_every.as_millis().max(1) as u64;
        let now = SystemTime::now();
        let slot = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64
            / every;
        if slot == self.last_slot {
            return Ok(());
        }
        self.last_slot = slot;
        let n = self.updates;
        self.updates += 1;
        let event = if n % 2 == 0 { "new" } else { "fill" };
        // A `new` and the `fill` after it are one order, numbered per
        // connection.
        let order = ((self.id as u64) << 32) | (n / 2);
        let at = rfc3339_nanos(now);
        let update = json!({
            "stream": "trade_updates",
            "data": {
                "event": event,
                "execution_id": format!("exec-{}-{n}", self.id),
                "timestamp": at,
                "price": if event == "fill" { Value::from("189.50") } else { Value::Null },
                "qty": if event == "fill" { Value::from("1") } else { Value::Null },
                "order": {
                    "id": format!("00000000-0000-4000-8000-{order:012x}"),
                    "client_order_id": format!("sim-{order}"),
                    "symbol": "AAPL",
                    "side": "buy",
                    "type": "market",
                    "qty": "1",
                    "filled_qty": if event == "fill" { "1" } else { "0" },
                    "status": if event == "fill" { "filled" } else { "new" },
                    "submitted_at": at,
                }
            }
        });
        self.send_trading(&update, paper)?;
        self.shared.stats.update(|s| s.updates_sent += 1);
        Ok(())
    }
}

/// A market message for `channel` and `symbol` in tick `slot`: the same
/// on every connection, so two clients see the same trades.
fn market_message(channel: &str, symbol: &str, slot: u64, crypto: bool) -> Value {
    let seed = symbol
        .bytes()
        .fold(7u64, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(b)));
    let cents = 10_000 + (seed.wrapping_add(slot.wrapping_mul(17)) % 2_000);
    let price = cents as f64 / 100.0;
    let size = 1 + (seed ^ slot) % 300;
    match channel {
        "trades" if crypto => {
            json!({"T":"t","S":symbol,"p":price,"s":size as f64 / 1000.0,"t":null,"i":slot,"tks":"B"})
        }
        "trades" => {
            json!({"T":"t","S":symbol,"i":slot,"x":"V","p":price,"s":size,"t":null,"c":["@"],"z":"C"})
        }
        "quotes" => json!({"T":"q","S":symbol,"bx":"V","bp":price - 0.01,"bs":size,"ax":"V",
            "ap":price + 0.01,"as":size + 1,"t":null,"c":["R"],"z":"C"}),
        "statuses" => json!({"T":"s","S":symbol,"sc":"T","sm":"Trading Resumption","rc":"",
            "rm":"","t":null,"z":"C"}),
        "lulds" => {
            json!({"T":"l","S":symbol,"u":price * 1.05,"d":price * 0.95,"i":"B","t":null,"z":"C"})
        }
        "orderbooks" => json!({"T":"o","S":symbol,"t":null,"b":[{"p":price - 0.5,"s":0.1}],
            "a":[{"p":price + 0.5,"s":0.2}],"r":false}),
        other => {
            let t = match other {
                "dailyBars" => "d",
                "updatedBars" => "u",
                _ => "b",
            };
            json!({"T":t,"S":symbol,"o":price,"h":price + 0.2,"l":price - 0.2,"c":price,
                "v":size * 10,"t":null,"n":size,"vw":price})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_messages() {
        assert_eq!(route("/v2/iex"), Some(Route::Stocks { test: false }));
        assert_eq!(route("/v2/test"), Some(Route::Stocks { test: true }));
        assert_eq!(route("/paper/stream"), Some(Route::Trading { paper: true }));
        assert_eq!(route("/v3/nope"), None);
        let a = market_message("trades", "AAPL", 9, false);
        assert_eq!(a, market_message("trades", "AAPL", 9, false));
        assert_eq!(a["i"], 9);
        let mut batch = json!([a, market_message("bars", "AAPL", 9, false)]);
        stamp(&mut batch, UNIX_EPOCH + Duration::new(1, 5));
        assert_eq!(batch[1]["T"], "b");
        assert_eq!(batch[0]["t"], "1970-01-01T00:00:01.000000005Z");
    }
}
