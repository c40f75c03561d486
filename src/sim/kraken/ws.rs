//! One simulated Kraken WebSocket v2 connection, in its own thread: the
//! `status` message on connect (and whenever maintenance starts or ends),
//! `ping`→`pong`, subscribe and unsubscribe with per-symbol acks (and
//! `success:false` for a symbol it does not list), ticker, trade, OHLC and
//! book data (books with the checksums of the simulator's own book code),
//! a heartbeat after a second without other messages, and private
//! channels that accept only tokens its REST issued and that have not
//! expired. The thread looks at the stop flag and the fault every tick.

use super::fault::KrakenFault;
use super::market::{Rng, SimBook, json_str};
use super::server::{Shared, setup};
use crate::sim::shared::net::{Live, is_timeout};
use crate::sim::shared::{Host, lock, ws as shared_ws};
use crate::timefmt::rfc3339_millis;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tungstenite::{Message, WebSocket};

/// Book depths Kraken offers.
const DEPTHS: [u64; 5] = [10, 25, 100, 500, 1000];
/// OHLC intervals Kraken offers, in minutes.
const INTERVALS: [u64; 9] = [1, 5, 15, 30, 60, 240, 1440, 10080, 21600];

fn now_text() -> String {
    rfc3339_millis(SystemTime::now())
}

pub(crate) fn serve(shared: Arc<Shared>, id: usize, tcp: TcpStream) {
    let _live = Live::new(shared.clone(), id, "ws");
    if setup(&tcp).is_err() {
        return;
    }
    let Some((ws, path)) = shared_ws::accept_with_path(shared.base(), id, tcp) else {
        return;
    };
    let private = path.contains("auth");
    shared.event(format!(
        "ws {id}: open ({})",
        if private { "private" } else { "public" }
    ));
    let now = Instant::now();
    let kicks = shared.kicks.load(std::sync::atomic::Ordering::SeqCst);
    let mut conn = Conn {
        shared,
        id,
        ws,
        private,
        subs: BTreeMap::new(),
        books: HashMap::new(),
        markets: HashMap::new(),
        ever: HashSet::new(),
        rng: Rng::new(0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1).wrapping_mul(0x1000_0000_01B3)),
        trade_id: 1,
        status_sent: None,
        generation: 0,
        kicks,
        next_data: now,
        last_sent: now,
    };
    while conn.turn().is_ok() {}
}

/// One subscription: (channel, symbol) → the OHLC interval (else 0).
type Subs = BTreeMap<(String, String), u64>;

struct Conn {
    shared: Arc<Shared>,
    id: usize,
    ws: WebSocket<TcpStream>,
    private: bool,
    subs: Subs,
    /// Books of `book` subscriptions, by symbol, at the subscribed depth.
    books: HashMap<String, SimBook>,
    /// Market state for ticker, trade and OHLC, by symbol.
    markets: HashMap<String, SimBook>,
    /// Every `channel symbol` ever subscribed on this connection.
    ever: HashSet<String>,
    rng: Rng,
    trade_id: u64,
    status_sent: Option<&'static str>,
    generation: u64,
    /// `disconnect_all` calls before this connection began.
    kicks: u64,
    next_data: Instant,
    last_sent: Instant,
}

struct End;

impl Conn {
    fn turn(&mut self) -> Result<(), End> {
        if self.shared.stopping() {
            self.close(1001, "simulator stopping");
            return Err(End);
        }
        if self.shared.kicks.load(std::sync::atomic::Ordering::SeqCst) != self.kicks {
            // A network cut: the socket goes without a close frame.
            self.shared.event(format!("ws {}: dropped", self.id));
            return Err(End);
        }
        let (fault, generation) = self.shared.faults.current();
        self.generation = generation;
        let silent = fault == Some(KrakenFault::Silent);
        let maintenance = fault == Some(KrakenFault::Maintenance);
        let status = if maintenance { "maintenance" } else { "online" };
        if self.status_sent != Some(status) {
            self.send_status(status)?;
        }
        self.shared.base().ack(self.id, self.generation);
        let now = Instant::now();
        if !maintenance && !silent && !self.subs.is_empty() && now >= self.next_data {
            self.push_data(fault.as_ref())?;
            self.next_data = (self.next_data + self.shared.data_every).max(now);
        }
        if !silent
            && !self.subs.is_empty()
            && now.duration_since(self.last_sent) >= self.shared.heartbeat_every
        {
            self.send(r#"{"channel":"heartbeat"}"#.to_string())?;
            self.shared.stats.update(|s| s.heartbeats_sent += 1);
        }
        self.read_one(fault.as_ref())
    }

    fn send(&mut self, text: String) -> Result<(), End> {
        self.ws.send(Message::text(text)).map_err(|_| End)?;
        self.last_sent = Instant::now();
        Ok(())
    }

    fn send_status(&mut self, system: &'static str) -> Result<(), End> {
        let connection_id = 18_266_300_427_528_990_701u64.wrapping_add(self.id as u64);
        self.send(format!(
            r#"{{"channel":"status","type":"update","data":[{{"version":"2.0.10","system":"{system}","api_version":"v2","connection_id":{connection_id}}}]}}"#
        ))?;
        self.status_sent = Some(system);
        self.shared.stats.update(|s| s.status_sent += 1);
        self.shared
            .event(format!("ws {}: status {system}", self.id));
        Ok(())
    }

    /// Whether the next book message is to carry a wrong checksum.
    fn corrupt(&self, fault: Option<&KrakenFault>) -> bool {
        match fault {
            Some(KrakenFault::CorruptChecksumAlways) => true,
            Some(f @ KrakenFault::CorruptChecksumOnce) => self.shared.faults.take_once(f),
            _ => false,
        }
    }

    fn market(&mut self, symbol: &str) -> Option<&mut SimBook> {
        if !self.markets.contains_key(symbol) {
            let spec = self
                .shared
                .symbols
                .iter()
                .find(|s| s.symbol == symbol)?
                .clone();
            let book = SimBook::new(spec, 10, &mut self.rng);
            self.markets.insert(symbol.to_string(), book);
        }
        self.markets.get_mut(symbol)
    }

    fn push_data(&mut self, fault: Option<&KrakenFault>) -> Result<(), End> {
        let ts = now_text();
        let subs: Vec<((String, String), u64)> =
            self.subs.iter().map(|(k, v)| (k.clone(), *v)).collect();
        for ((channel, symbol), interval) in subs {
            let msg = match channel.as_str() {
                "book" => {
                    let Some(book) = self.books.get_mut(&symbol) else {
                        continue;
                    };
                    let Some(change) = book.step(&mut self.rng) else {
                        continue;
                    };
                    let corrupt = self.corrupt(fault);
                    let Some(book) = self.books.get(&symbol) else {
                        continue;
                    };
                    let update = book.update(&change, corrupt, &ts);
                    self.shared.stats.update(|s| {
                        s.book_updates_sent += 1;
                        s.corrupted_checksums_sent += u64::from(corrupt);
                    });
                    update
                }
                "ticker" | "trade" | "ohlc" => {
                    let trade_id = self.trade_id;
                    self.trade_id += 1;
                    let mut rng = self.rng.clone();
                    let Some(m) = self.market(&symbol) else {
                        continue;
                    };
                    let _ = m.step(&mut rng);
                    let msg = match channel.as_str() {
                        "ticker" => m.ticker("update"),
                        "trade" => m.trade("update", trade_id, &mut rng, &ts),
                        _ => m.ohlc("update", interval, &ts),
                    };
                    self.rng = rng;
                    self.shared.stats.update(|s| s.data_sent += 1);
                    msg
                }
                _ => continue,
            };
            self.send(msg)?;
        }
        Ok(())
    }

    fn read_one(&mut self, fault: Option<&KrakenFault>) -> Result<(), End> {
        match self.ws.read() {
            Ok(Message::Text(t)) => self.on_text(t.as_str(), fault),
            Ok(Message::Ping(_)) => self.ws.flush().map_err(|_| End),
            Ok(Message::Close(_)) => {
                let _ = self.ws.flush();
                Err(End)
            }
            Ok(_) => Ok(()),
            Err(tungstenite::Error::Io(e)) if is_timeout(&e) => Ok(()),
            Err(_) => Err(End),
        }
    }

    fn reply(&mut self, mut v: Value, req_id: Option<&Value>, time_in: &str) -> Result<(), End> {
        if let Some(obj) = v.as_object_mut() {
            obj.insert("time_in".into(), time_in.into());
            obj.insert("time_out".into(), now_text().into());
            if let Some(id) = req_id {
                obj.insert("req_id".into(), id.clone());
            }
        }
        self.send(v.to_string())
    }

    fn on_text(&mut self, text: &str, fault: Option<&KrakenFault>) -> Result<(), End> {
        let time_in = now_text();
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return self.reply(
                json!({"error": "EGeneral:Invalid arguments", "success": false}),
                None,
                &time_in,
            );
        };
        let req_id = v.get("req_id").cloned();
        let method = v.get("method").and_then(Value::as_str).unwrap_or("");
        let params = v.get("params").cloned().unwrap_or(Value::Null);
        match method {
            "ping" => {
                self.shared.stats.update(|s| s.pings += 1);
                self.reply(json!({"method": "pong"}), req_id.as_ref(), &time_in)
            }
            "subscribe" => self.subscribe(&params, req_id.as_ref(), &time_in, fault),
            "unsubscribe" => self.unsubscribe(&params, req_id.as_ref(), &time_in),
            other => self.reply(
                json!({"error": format!("Method not found: {other}"), "method": other, "success": false}),
                req_id.as_ref(),
                &time_in,
            ),
        }
    }

    fn refuse(
        &mut self,
        method: &str,
        error: String,
        symbol: Option<&str>,
        req_id: Option<&Value>,
        time_in: &str,
    ) -> Result<(), End> {
        self.shared.stats.update(|s| s.subscribes_refused += 1);
        let mut v = json!({"error": error, "method": method, "success": false});
        if let Some(s) = symbol {
            v["symbol"] = s.into();
        }
        self.reply(v, req_id, time_in)
    }

    fn subscribe(
        &mut self,
        params: &Value,
        req_id: Option<&Value>,
        time_in: &str,
        fault: Option<&KrakenFault>,
    ) -> Result<(), End> {
        let channel = params
            .get("channel")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match channel.as_str() {
            "executions" | "balances" => self.subscribe_private(&channel, params, req_id, time_in),
            "heartbeat" => self.reply(
                json!({"method": "subscribe", "result": {"channel": "heartbeat"}, "success": true}),
                req_id,
                time_in,
            ),
            "ticker" | "book" | "trade" | "ohlc" => {
                let Some(symbols) = params.get("symbol").and_then(Value::as_array) else {
                    return self.refuse(
                        "subscribe",
                        "EGeneral:Invalid arguments:symbol".into(),
                        None,
                        req_id,
                        time_in,
                    );
                };
                let symbols: Vec<String> = symbols
                    .iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect();
                let depth = params.get("depth").and_then(Value::as_u64).unwrap_or(10);
                if channel == "book" && !DEPTHS.contains(&depth) {
                    return self.refuse(
                        "subscribe",
                        "EGeneral:Invalid arguments:depth".into(),
                        None,
                        req_id,
                        time_in,
                    );
                }
                let interval = params.get("interval").and_then(Value::as_u64).unwrap_or(1);
                if channel == "ohlc" && !INTERVALS.contains(&interval) {
                    return self.refuse(
                        "subscribe",
                        "EGeneral:Invalid arguments:interval".into(),
                        None,
                        req_id,
                        time_in,
                    );
                }
                for symbol in symbols {
                    self.subscribe_symbol(
                        &channel, &symbol, depth, interval, req_id, time_in, fault,
                    )?;
                }
                Ok(())
            }
            other => self.refuse(
                "subscribe",
                format!("EGeneral:Invalid arguments:channel {}", json_str(other)),
                None,
                req_id,
                time_in,
            ),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn subscribe_symbol(
        &mut self,
        channel: &str,
        symbol: &str,
        depth: u64,
        interval: u64,
        req_id: Option<&Value>,
        time_in: &str,
        fault: Option<&KrakenFault>,
    ) -> Result<(), End> {
        let spec = self
            .shared
            .symbols
            .iter()
            .find(|s| s.symbol == symbol)
            .cloned();
        let rejected =
            matches!(fault, Some(KrakenFault::RejectSymbol { symbol: s }) if s == symbol);
        let Some(spec) = spec.filter(|_| !rejected) else {
            return self.refuse(
                "subscribe",
                format!("Currency pair not supported {symbol}"),
                Some(symbol),
                req_id,
                time_in,
            );
        };
        let key = (channel.to_string(), symbol.to_string());
        if self.subs.contains_key(&key) {
            return self.refuse(
                "subscribe",
                "Already subscribed".into(),
                Some(symbol),
                req_id,
                time_in,
            );
        }
        self.subs.insert(key, interval);
        let label = format!("{channel} {symbol}");
        let again = !self.ever.insert(label.clone());
        let id = self.id;
        self.shared.stats.update(|s| {
            if let Some(v) = s.subscribes_per_connection.get_mut(id) {
                v.push(label.clone());
            }
            s.resubscribes += u64::from(again);
        });
        self.shared.event(format!("ws {id}: subscribed {label}"));
        let mut result = json!({"channel": channel, "symbol": symbol, "snapshot": true});
        if channel == "book" {
            result["depth"] = depth.into();
        }
        if channel == "ohlc" {
            result["interval"] = interval.into();
        }
        self.reply(
            json!({"method": "subscribe", "result": result, "success": true}),
            req_id,
            time_in,
        )?;
        if fault == Some(&KrakenFault::Silent) {
            return Ok(());
        }
        let ts = now_text();
        let snapshot = match channel {
            "book" => {
                let book = SimBook::new(spec, depth as usize, &mut self.rng);
                let corrupt = self.corrupt(fault);
                let snap = book.snapshot(corrupt, &ts);
                self.books.insert(symbol.to_string(), book);
                self.shared.stats.update(|s| {
                    s.book_snapshots_sent += 1;
                    s.corrupted_checksums_sent += u64::from(corrupt);
                });
                snap
            }
            _ => {
                let trade_id = self.trade_id;
                self.trade_id += 1;
                let mut rng = self.rng.clone();
                let Some(m) = self.market(symbol) else {
                    return Ok(());
                };
                let msg = match channel {
                    "ticker" => m.ticker("snapshot"),
                    "trade" => m.trade("snapshot", trade_id, &mut rng, &ts),
                    _ => m.ohlc("snapshot", interval, &ts),
                };
                self.rng = rng;
                self.shared.stats.update(|s| s.data_sent += 1);
                msg
            }
        };
        self.send(snapshot)
    }

    fn subscribe_private(
        &mut self,
        channel: &str,
        params: &Value,
        req_id: Option<&Value>,
        time_in: &str,
    ) -> Result<(), End> {
        if !self.private {
            return self.refuse(
                "subscribe",
                format!("EGeneral:Invalid arguments:channel {channel} is only on the authenticated endpoint"),
                None,
                req_id,
                time_in,
            );
        }
        let token = params.get("token").and_then(Value::as_str).unwrap_or("");
        let valid = lock(&self.shared.tokens)
            .get(token)
            .is_some_and(|expires| *expires > Instant::now());
        if !valid {
            self.shared.stats.update(|s| s.tokens_refused += 1);
            self.shared
                .event(format!("ws {}: refused a token for {channel}", self.id));
            return self.refuse(
                "subscribe",
                "EAccess:Invalid token".into(),
                None,
                req_id,
                time_in,
            );
        }
        let key = (channel.to_string(), String::new());
        if self.subs.contains_key(&key) {
            return self.refuse(
                "subscribe",
                "Already subscribed".into(),
                None,
                req_id,
                time_in,
            );
        }
        self.subs.insert(key, 0);
        let again = !self.ever.insert(channel.to_string());
        let id = self.id;
        self.shared.stats.update(|s| {
            if let Some(v) = s.subscribes_per_connection.get_mut(id) {
                v.push(channel.to_string());
            }
            s.resubscribes += u64::from(again);
        });
        self.reply(
            json!({"method": "subscribe", "result": {"channel": channel, "snapshot": true}, "success": true}),
            req_id,
            time_in,
        )?;
        let snapshot = if channel == "executions" {
            r#"{"channel":"executions","type":"snapshot","data":[],"sequence":1}"#.to_string()
        } else {
            r#"{"channel":"balances","type":"snapshot","data":[{"asset":"USD","asset_class":"currency","balance":171288.6158,"wallets":[{"type":"spot","id":"main","balance":171288.6158}]}],"sequence":1}"#.to_string()
        };
        self.send(snapshot)
    }

    fn unsubscribe(
        &mut self,
        params: &Value,
        req_id: Option<&Value>,
        time_in: &str,
    ) -> Result<(), End> {
        let channel = params
            .get("channel")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let symbols: Vec<String> = params
            .get("symbol")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_else(|| vec![String::new()]);
        for symbol in symbols {
            if self
                .subs
                .remove(&(channel.clone(), symbol.clone()))
                .is_none()
            {
                self.refuse(
                    "unsubscribe",
                    "Subscription Not Found".into(),
                    Some(&symbol),
                    req_id,
                    time_in,
                )?;
                continue;
            }
            if channel == "book" {
                self.books.remove(&symbol);
            }
            self.shared.stats.update(|s| s.unsubscribes += 1);
            self.shared
                .event(format!("ws {}: unsubscribed {channel} {symbol}", self.id));
            self.reply(
                json!({"method": "unsubscribe", "result": {"channel": channel, "symbol": symbol}, "success": true}),
                req_id,
                time_in,
            )?;
        }
        Ok(())
    }

    /// Called only once the simulator stops, and still waits for the
    /// client's echo (the other simulators stop waiting at stop).
    fn close(&mut self, code: u16, reason: &str) {
        shared_ws::close(&mut self.ws, code, reason, || false);
    }
}
