//! One simulated Coinbase WebSocket connection, in its own thread: the
//! 5 s subscribe rule, the idle close without heartbeats, subscribe and
//! unsubscribe (one channel each, a JWT checked with the key's public key
//! when present and required for the user channels) answered with the
//! connection's current `subscriptions`, heartbeats every second with a
//! `heartbeat_counter`, level 2 snapshots and updates that never cross,
//! ticker, trades and the user channel's open-orders snapshot, and a
//! `sequence_num` on every message. The thread looks at the stop flag and
//! the fault every tick.

use super::fault::CoinbaseFault;
use super::server::Shared;
use crate::sim::shared::net::{self, Live, is_timeout};
use crate::sim::shared::{Host, ws as shared_ws};
use crate::timefmt::rfc3339_millis;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};
use tungstenite::{Message, WebSocket};

/// How long a client that does not read may block a write.
const WRITE_TIMEOUT: Duration = Duration::from_millis(500);
const MARKET_CHANNELS: [&str; 7] = [
    "heartbeats",
    "candles",
    "status",
    "ticker",
    "ticker_batch",
    "level2",
    "market_trades",
];
const USER_CHANNELS: [&str; 3] = ["heartbeats", "user", "futures_balance_summary"];
/// The id the user channel's answer lists.
const USER_ID: &str = "sim-user-1";

fn now_text() -> String {
    rfc3339_millis(SystemTime::now())
}

/// A tiny deterministic generator for prices and sizes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A product's book, in cents: bids below the mid, offers above, so it
/// never crosses.
struct SimBook {
    mid: u64,
    bids: BTreeMap<u64, u64>,
    offers: BTreeMap<u64, u64>,
}

fn price(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn qty(milli: u64) -> String {
    format!("{}.{:03}", milli / 1000, milli % 1000)
}

impl SimBook {
    fn new(rng: &mut Rng) -> Self {
        let mid = 100_000 + rng.next() % 10_000;
        let mut b = SimBook {
            mid,
            bids: BTreeMap::new(),
            offers: BTreeMap::new(),
        };
        for i in 1..=10 {
            b.bids.insert(mid - i, 1 + rng.next() % 5000);
            b.offers.insert(mid + i, 1 + rng.next() % 5000);
        }
        b
    }

    fn levels(&self) -> Vec<Value> {
        let side = |name: &str, m: &BTreeMap<u64, u64>| -> Vec<Value> {
            m.iter()
                .map(|(p, q)| {
                    json!({"side": name, "event_time": now_text(), "price_level": price(*p),
                           "new_quantity": qty(*q)})
                })
                .collect()
        };
        let mut out = side("bid", &self.bids);
        out.extend(side("offer", &self.offers));
        out
    }

    /// One level changes (set, or removed as "0").
    fn step(&mut self, rng: &mut Rng) -> Value {
        let bid = rng.next() % 2 == 0;
        let offset = 1 + rng.next() % 12;
        let (p, side, levels) = if bid {
            (self.mid - offset, "bid", &mut self.bids)
        } else {
            (self.mid + offset, "offer", &mut self.offers)
        };
        let q = if levels.contains_key(&p) && rng.next() % 4 == 0 {
            levels.remove(&p);
            0
        } else {
            let q = 1 + rng.next() % 5000;
            levels.insert(p, q);
            q
        };
        json!({"side": side, "event_time": now_text(), "price_level": price(p), "new_quantity": qty(q)})
    }
}

pub(crate) fn serve(shared: Arc<Shared>, id: usize, tcp: TcpStream) {
    let _live = Live::new(shared.clone(), id, "ws");
    if net::setup(&tcp, WRITE_TIMEOUT).is_err() {
        return;
    }
    let Some((ws, path)) = shared_ws::accept_with_path(shared.base(), id, tcp) else {
        return;
    };
    let user_endpoint = path.starts_with("/user");
    shared.event(format!(
        "ws {id}: open ({})",
        if user_endpoint { "user" } else { "market data" }
    ));
    let now = Instant::now();
    let mut conn = Conn {
        kicks: shared.kicks.load(Ordering::SeqCst),
        generation: shared.faults.current().1,
        shared,
        id,
        ws,
        user_endpoint,
        subs: BTreeMap::new(),
        books: BTreeMap::new(),
        rng: Rng(0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1).wrapping_mul(0x1000_0000_01B3)),
        seq: 0,
        heartbeat_counter: 1000 + id as u64 * 100,
        opened: now,
        subscribed: false,
        last_sent: now,
        next_heartbeat: now,
        next_data: now,
        ticks: 0,
    };
    while conn.turn().is_ok() {}
}

struct Conn {
    shared: Arc<Shared>,
    id: usize,
    ws: WebSocket<TcpStream>,
    user_endpoint: bool,
    /// Channel → product ids (empty for channels without products).
    subs: BTreeMap<String, BTreeSet<String>>,
    books: BTreeMap<String, SimBook>,
    rng: Rng,
    seq: u64,
    heartbeat_counter: u64,
    opened: Instant,
    subscribed: bool,
    last_sent: Instant,
    next_heartbeat: Instant,
    next_data: Instant,
    generation: u64,
    kicks: u64,
    ticks: u64,
}

struct End;

impl Conn {
    fn turn(&mut self) -> Result<(), End> {
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
        if changes.contains(&Some(CoinbaseFault::GoAway)) {
            self.shared.stats.update(|s| s.closed_going_away += 1);
            self.close(1001, "going away");
            return Err(End);
        }
        let fault = self.shared.faults.current().0;
        let silent = fault == Some(CoinbaseFault::Silent);
        let now = Instant::now();
        if !self.subscribed && now.duration_since(self.opened) >= self.shared.subscribe_within {
            self.shared.stats.update(|s| s.closed_no_subscribe += 1);
            self.shared
                .event(format!("ws {}: no subscribe in time, closing", self.id));
            self.close(1000, "no subscribe received");
            return Err(End);
        }
        if !self.subs.contains_key("heartbeats")
            && now.duration_since(self.last_sent) >= self.shared.idle_close
        {
            self.shared.stats.update(|s| s.closed_idle += 1);
            self.shared
                .event(format!("ws {}: quiet without heartbeats, closing", self.id));
            self.close(1000, "idle");
            return Err(End);
        }
        if !silent && self.subs.contains_key("heartbeats") && now >= self.next_heartbeat {
            self.heartbeat_counter += 1;
            let counter = self.heartbeat_counter;
            self.send(
                "heartbeats",
                json!([{"current_time": now_text(), "heartbeat_counter": counter}]),
            )?;
            self.shared.stats.update(|s| s.heartbeats_sent += 1);
            self.next_heartbeat = now + self.shared.heartbeat_every;
        }
        if !silent && now >= self.next_data {
            self.push_data()?;
            self.next_data = now + self.shared.data_every;
        }
        self.read_one()
    }

    fn close(&mut self, code: u16, reason: &str) {
        let base = self.shared.clone();
        shared_ws::close(&mut self.ws, code, reason, || base.stopping());
    }

    /// Sends one message on `channel` with the next sequence number.
    fn send(&mut self, channel: &str, events: Value) -> Result<(), End> {
        if self
            .shared
            .faults
            .take_once(&CoinbaseFault::DropSequenceOnce)
        {
            self.seq += 1;
            self.shared.stats.update(|s| s.sequence_skips += 1);
            self.shared.event(format!(
                "ws {}: skipped sequence_num {}",
                self.id,
                self.seq - 1
            ));
        }
        let msg = json!({"channel": channel, "client_id": "", "timestamp": now_text(),
                         "sequence_num": self.seq, "events": events});
        self.seq += 1;
        self.send_raw(msg.to_string())
    }

    fn send_raw(&mut self, text: String) -> Result<(), End> {
        self.ws.send(Message::text(text)).map_err(|_| End)?;
        self.last_sent = Instant::now();
        Ok(())
    }

    fn products(&self, channel: &str) -> Vec<String> {
        self.subs
            .get(channel)
            .map(|p| p.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn push_data(&mut self) -> Result<(), End> {
        self.ticks += 1;
        for p in self.products("level2") {
            let Some(book) = self.books.get_mut(&p) else {
                continue;
            };
            let update = book.step(&mut self.rng);
            self.send(
                "l2_data",
                json!([{"type": "update", "product_id": p, "updates": [update]}]),
            )?;
            self.shared.stats.update(|s| s.l2_updates_sent += 1);
        }
        for p in self.products("ticker") {
            let px = price(100_000 + self.rng.next() % 1000);
            self.send(
                "ticker",
                json!([{"type": "update", "tickers": [{"type": "ticker", "product_id": p, "price": px}]}]),
            )?;
            self.shared.stats.update(|s| s.data_sent += 1);
        }
        for p in self.products("market_trades") {
            let px = price(100_000 + self.rng.next() % 1000);
            let trade_id = self.rng.next() % 1_000_000;
            self.send(
                "market_trades",
                json!([{"type": "update", "trades": [{"trade_id": trade_id.to_string(), "product_id": p,
                        "price": px, "size": "0.01", "side": "BUY", "time": now_text()}]}]),
            )?;
            self.shared.stats.update(|s| s.data_sent += 1);
        }
        if self.subs.contains_key("user") && self.ticks % 8 == 0 {
            let order = self.rng.next() % 1000;
            self.send(
                "user",
                json!([{"type": "update", "orders": [{"order_id": format!("sim-order-{order}"),
                        "status": "OPEN", "product_id": "BTC-USD"}]}]),
            )?;
            self.shared.stats.update(|s| s.data_sent += 1);
        }
        Ok(())
    }

    fn read_one(&mut self) -> Result<(), End> {
        match self.ws.read() {
            Ok(Message::Text(t)) => self.on_text(t.as_str()),
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

    fn error(&mut self, message: &str, reason: &str) -> Result<(), End> {
        self.send_raw(json!({"type": "error", "message": message, "reason": reason}).to_string())
    }

    fn on_text(&mut self, text: &str) -> Result<(), End> {
        self.shared.count_message();
        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let kind = v["type"].as_str().unwrap_or("");
        let channel = v["channel"].as_str().unwrap_or("").to_string();
        if kind != "subscribe" && kind != "unsubscribe" {
            return self.error("Failed to parse", "type must be subscribe or unsubscribe");
        }
        let allowed: &[&str] = if self.user_endpoint {
            &USER_CHANNELS
        } else {
            &[&MARKET_CHANNELS[..], &USER_CHANNELS[1..]].concat()
        };
        if !allowed.contains(&channel.as_str()) {
            return self.error(
                "Failed to subscribe",
                &format!("channel {channel} is not offered here"),
            );
        }
        let products: Vec<String> = v["product_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        match v["jwt"].as_str() {
            Some(token) => {
                if let Err(r) = self.shared.check_jwt("ws", token, None) {
                    return self.error("authentication failure", &r.to_string());
                }
            }
            None => {
                self.shared
                    .stats
                    .update(|s| s.unauthenticated_messages += 1);
                if channel == "user" || channel == "futures_balance_summary" {
                    return self.error("authentication failure", "this channel needs a JWT");
                }
            }
        }
        let elapsed = self.opened.elapsed().as_millis() as u64;
        let line = format!("{kind} {channel} {}", products.join(","));
        let id = self.id;
        self.shared.stats.update(|s| {
            s.messages_per_connection[id].push(line.trim_end().to_string());
            if kind == "subscribe" {
                s.last_subscribe_ms[id] = elapsed;
            }
        });
        let mut first = Vec::new();
        if kind == "subscribe" {
            self.subscribed = true;
            first = self.subscribe(&channel, &products);
        } else if products.is_empty() {
            self.subs.remove(&channel);
        } else if let Some(set) = self.subs.get_mut(&channel) {
            for p in &products {
                set.remove(p);
                if channel == "level2" {
                    self.books.remove(p);
                }
            }
            if set.is_empty() {
                self.subs.remove(&channel);
            }
        }
        // The answer first, then the new subscription's snapshots.
        self.answer()?;
        for (channel, events) in first {
            self.send(channel, events)?;
        }
        Ok(())
    }

    /// Records a subscription; returns the snapshots it starts with.
    fn subscribe(&mut self, channel: &str, products: &[String]) -> Vec<(&'static str, Value)> {
        let known: Vec<String> = products
            .iter()
            .filter(|p| self.shared.products.contains(p))
            .cloned()
            .collect();
        let set = self.subs.entry(channel.to_string()).or_default();
        let fresh: Vec<String> = known
            .iter()
            .filter(|p| set.insert((*p).clone()))
            .cloned()
            .collect();
        let mut out = Vec::new();
        match channel {
            "level2" => {
                for p in fresh {
                    let book = SimBook::new(&mut self.rng);
                    let levels = book.levels();
                    self.books.insert(p.clone(), book);
                    out.push((
                        "l2_data",
                        json!([{"type": "snapshot", "product_id": p, "updates": levels}]),
                    ));
                    self.shared.stats.update(|s| s.l2_snapshots_sent += 1);
                }
            }
            "user" => {
                out.push((
                    "user",
                    json!([{"type": "snapshot", "orders": [
                        {"order_id": "sim-open-1", "status": "OPEN", "product_id": "BTC-USD"},
                        {"order_id": "sim-open-2", "status": "OPEN", "product_id": "ETH-USD"}]}]),
                ));
                self.shared.stats.update(|s| s.user_snapshots_sent += 1);
            }
            _ => {}
        }
        out
    }

    /// The connection's current subscriptions.
    fn answer(&mut self) -> Result<(), End> {
        let mut subs = serde_json::Map::new();
        for (channel, products) in &self.subs {
            let listed: Vec<String> = match channel.as_str() {
                "heartbeats" => vec!["heartbeats".into()],
                "user" => vec![USER_ID.into()],
                _ => products.iter().cloned().collect(),
            };
            subs.insert(channel.clone(), json!(listed));
        }
        self.send("subscriptions", json!([{"subscriptions": subs}]))
    }
}
