//! The Coinbase Advanced Trade WebSocket protocol core (PROTOCOLS.md
//! §5.1). Pure: messages and time in, [`Action`]s out; JWTs come from a
//! [`TokenSource`] and the send budget from a [`Pacer`], both handed in.
//!
//! - `heartbeats` is always subscribed, first, as the connection's
//!   handshake: its `subscriptions` answer makes the core ready (and, with
//!   a key, proves the JWT); every heartbeat is [`Action::Heartbeat`], and
//!   a jump in `heartbeat_counter` is counted.
//! - One channel per subscribe message, each with a fresh JWT when the
//!   feed has a key, sent as the [`Pacer`] allows (8 messages a second per
//!   IP); all must be out within 5 s of connecting, or Coinbase closes.
//! - `subscriptions` answers are checked against what was asked: a
//!   product Coinbase did not subscribe is a configuration error naming it.
//! - `sequence_num` is checked per connection. A gap is a `resync` event
//!   to the bot and an unsubscribe + subscribe of every channel on the same
//!   connection (the lost message's channel cannot be known), or, with
//!   `on_sequence_gap = "alert"`, an alert and a `sequence_gap` event.
//! - `l2_data` keeps a book per product; the bot gets the messages as
//!   sent. A book that goes wrong (crossed, malformed) is a `resync` event
//!   for that product and a fresh subscription of it.
//! - The first `user` event (and the first after a resync) is announced by
//!   a `snapshot` event line: it lists open orders, not new fills.
//! - An `error` message parks the feed with Coinbase's words (auth when it
//!   is about the JWT); message types it does not know are ignored.

use super::book::{Book, BookProblem, parse_l2};
use super::jwt::TokenSource;
use super::settings::{Channel, Endpoint, OnGap, Plan};
use crate::alert::{Alert, AlertKind};
use crate::clock::Mono;
use crate::feed::{Action, ErrorClass, FeedError, Inbound, Layer, Outbound, ProtocolCore};
use crate::peertext::short as sanitize;
use crate::secret::Secret;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Coinbase closes a connection that has not subscribed within this.
pub const SUBSCRIBE_WITHIN: Duration = Duration::from_secs(5);
/// Messages one IP may send a second without authentication.
pub const MESSAGES_PER_SECOND: usize = 8;
/// How long after the last subscribe its answer may take.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// The send budget every Coinbase connection of the process shares: at
/// most [`MESSAGES_PER_SECOND`] in any second. Time is handed in.
#[derive(Default)]
pub struct Pacer {
    sent: Mutex<VecDeque<Mono>>,
}

impl Pacer {
    /// Takes one message's budget at `now`, if there is any left.
    pub fn try_take(&self, now: Mono) -> bool {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        while sent
            .front()
            .is_some_and(|t| now.since(*t) >= Duration::from_secs(1))
        {
            sent.pop_front();
        }
        if sent.len() >= MESSAGES_PER_SECOND {
            return false;
        }
        sent.push_back(now);
        true
    }
}

/// Counters that outlive a connection (the adapter keeps them; status
/// shows them as `info`).
#[derive(Default, Debug)]
pub struct GapCounters {
    pub sequence_gaps: AtomicU64,
    pub heartbeat_gaps: AtomicU64,
    pub resyncs: AtomicU64,
}

/// The session notes (status.json `feeds[].info`).
pub const NOTE_SEQUENCE_GAPS: &str = "sequence_gaps";
pub const NOTE_HEARTBEAT_GAPS: &str = "heartbeat_gaps";
pub const NOTE_RESYNCS: &str = "resyncs";
pub const NOTE_JWT: &str = "jwt";

/// One message waiting for the send budget.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Request {
    subscribe: bool,
    channel: Channel,
    /// Product ids (one for a book resync, else the feed's).
    products: Vec<String>,
}

/// Where one product's book stands.
#[derive(Debug)]
enum BookState {
    AwaitingSnapshot,
    Live(Book),
}

/// The core of one Coinbase WebSocket connection.
pub struct CoinbaseCore {
    feed: String,
    plan: Plan,
    on_gap: OnGap,
    tokens: Option<Arc<dyn TokenSource>>,
    pacer: Arc<Pacer>,
    counters: Arc<GapCounters>,
    connected_at: Mono,
    queue: VecDeque<Request>,
    last_send: Option<Mono>,
    late_warned: bool,
    ready: bool,
    /// Channel → products asked and not yet seen in a `subscriptions` answer.
    unconfirmed: BTreeMap<Channel, BTreeSet<String>>,
    last_seq: Option<u64>,
    last_heartbeat: Option<u64>,
    books: HashMap<String, BookState>,
    /// The next `user` message is a snapshot of open orders.
    user_snapshot_due: bool,
}

impl CoinbaseCore {
    pub fn new(
        feed: &str,
        plan: Plan,
        on_gap: OnGap,
        tokens: Option<Arc<dyn TokenSource>>,
        pacer: Arc<Pacer>,
        counters: Arc<GapCounters>,
    ) -> Self {
        CoinbaseCore {
            feed: feed.to_string(),
            plan,
            on_gap,
            tokens,
            pacer,
            counters,
            connected_at: Mono::default(),
            queue: VecDeque::new(),
            last_send: None,
            late_warned: false,
            ready: false,
            unconfirmed: BTreeMap::new(),
            last_seq: None,
            last_heartbeat: None,
            books: HashMap::new(),
            user_snapshot_due: false,
        }
    }

    fn products_of(&self, channel: Channel) -> Vec<String> {
        if channel.takes_products() {
            self.plan.symbols.clone()
        } else {
            Vec::new()
        }
    }

    fn enqueue(&mut self, subscribe: bool, channel: Channel, products: Vec<String>) {
        if subscribe {
            let asked = self.unconfirmed.entry(channel).or_default();
            asked.extend(products.iter().cloned());
            if channel == Channel::Level2 {
                for p in &products {
                    self.books.insert(p.clone(), BookState::AwaitingSnapshot);
                }
            }
            if channel == Channel::User {
                self.user_snapshot_due = true;
            }
        }
        let r = Request {
            subscribe,
            channel,
            products,
        };
        if !self.queue.contains(&r) {
            self.queue.push_back(r);
        }
    }

    /// Sends queued messages while the budget lasts, each with a fresh JWT.
    fn flush(&mut self, now: Mono, out: &mut Vec<Action>) {
        while !self.queue.is_empty() {
            if !self.pacer.try_take(now) {
                break;
            }
            let Some(r) = self.queue.pop_front() else {
                break;
            };
            let mut msg = serde_json::Map::new();
            msg.insert(
                "type".into(),
                if r.subscribe {
                    "subscribe"
                } else {
                    "unsubscribe"
                }
                .into(),
            );
            if r.channel.takes_products() && !r.products.is_empty() {
                msg.insert("product_ids".into(), json!(r.products));
            }
            msg.insert("channel".into(), r.channel.as_str().into());
            if let Some(tokens) = &self.tokens {
                match tokens.ws_jwt() {
                    Ok(jwt) => {
                        msg.insert("jwt".into(), jwt.expose().into());
                    }
                    Err(e) => {
                        out.push(Action::Fail(FeedError::protocol(format!(
                            "feed {}: {e}",
                            self.feed
                        ))));
                        return;
                    }
                }
            }
            self.last_send = Some(now);
            out.push(Action::Send(Outbound::Text(Secret::new(
                Value::Object(msg).to_string(),
            ))));
        }
        if !self.queue.is_empty()
            && !self.late_warned
            && now.since(self.connected_at) >= SUBSCRIBE_WITHIN
        {
            self.late_warned = true;
            out.push(Action::Log {
                level: log::Level::Warn,
                message: format!(
                    "feed {}: {} subscribe message(s) still wait for the send budget ({} a second \
                     per IP) {} after connecting; Coinbase may close the connection",
                    self.feed,
                    self.queue.len(),
                    MESSAGES_PER_SECOND,
                    crate::timefmt::human(SUBSCRIBE_WITHIN)
                ),
            });
        }
    }

    fn note(&self, key: &'static str, counter: &AtomicU64, out: &mut Vec<Action>) {
        out.push(Action::Note {
            key,
            value: counter.load(Ordering::Relaxed).to_string(),
        });
    }

    /// Checks `sequence_num`; returns the number of messages missed.
    fn check_sequence(&mut self, seq: u64, out: &mut Vec<Action>) -> u64 {
        let missed = match self.last_seq {
            Some(last) if seq > last + 1 => seq - last - 1,
            Some(last) if seq <= last => {
                out.push(Action::Log {
                    level: log::Level::Warn,
                    message: format!(
                        "feed {}: Coinbase sent sequence_num {seq} after {last} (out of order)",
                        self.feed
                    ),
                });
                return 0;
            }
            _ => 0,
        };
        self.last_seq = Some(seq);
        missed
    }

    fn on_gap(&mut self, missed: u64, seq: u64, now: Mono, out: &mut Vec<Action>) {
        self.counters.sequence_gaps.fetch_add(1, Ordering::Relaxed);
        self.note(NOTE_SEQUENCE_GAPS, &self.counters.sequence_gaps, out);
        out.push(Action::Log {
            level: log::Level::Warn,
            message: format!(
                "feed {}: {missed} message(s) missing before sequence_num {seq}; {}",
                self.feed,
                match self.on_gap {
                    OnGap::Resync => "resubscribing every channel for fresh snapshots",
                    OnGap::Alert => "on_sequence_gap = \"alert\": going on without a resync",
                }
            ),
        });
        match self.on_gap {
            OnGap::Resync => {
                out.push(Action::event(
                    "resync",
                    &[("reason", "sequence".into()), ("missed", missed.into())],
                ));
                self.resubscribe_all(now, out);
            }
            OnGap::Alert => {
                out.push(Action::event(
                    "sequence_gap",
                    &[("missed", missed.into()), ("sequence_num", seq.into())],
                ));
                out.push(Action::Alert(
                    Alert::new(AlertKind::BookResync)
                        .with("feed", &self.feed)
                        .with("reason", "sequence_gap")
                        .with("missed", missed),
                ));
            }
        }
    }

    /// Unsubscribes and subscribes every data channel again (one
    /// connection's sequence covers them all).
    fn resubscribe_all(&mut self, now: Mono, out: &mut Vec<Action>) {
        self.counters.resyncs.fetch_add(1, Ordering::Relaxed);
        self.note(NOTE_RESYNCS, &self.counters.resyncs, out);
        for channel in self.plan.channels.clone() {
            let products = self.products_of(channel);
            self.enqueue(false, channel, products.clone());
            self.enqueue(true, channel, products);
        }
        self.flush(now, out);
    }

    fn on_heartbeat(&mut self, v: &Value, out: &mut Vec<Action>) {
        let counter = v["events"]
            .as_array()
            .and_then(|e| e.first())
            .and_then(|e| e.get("heartbeat_counter"))
            .and_then(|c| c.as_u64().or_else(|| c.as_str()?.parse().ok()));
        if let (Some(last), Some(c)) = (self.last_heartbeat, counter) {
            if c > last + 1 {
                self.counters.heartbeat_gaps.fetch_add(1, Ordering::Relaxed);
                self.note(NOTE_HEARTBEAT_GAPS, &self.counters.heartbeat_gaps, out);
                out.push(Action::Log {
                    level: log::Level::Warn,
                    message: format!(
                        "feed {}: heartbeat_counter jumped from {last} to {c} ({} heartbeat(s) missed)",
                        self.feed,
                        c - last - 1
                    ),
                });
            }
        }
        if counter.is_some() {
            self.last_heartbeat = counter;
        }
        out.push(Action::Heartbeat);
    }

    fn on_subscriptions(&mut self, v: &Value, out: &mut Vec<Action>) {
        let mut listed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for ev in v["events"].as_array().into_iter().flatten() {
            let Some(subs) = ev["subscriptions"].as_object() else {
                continue;
            };
            for (channel, products) in subs {
                let set = listed.entry(channel.clone()).or_default();
                for p in products.as_array().into_iter().flatten() {
                    if let Some(p) = p.as_str() {
                        set.insert(p.to_string());
                    }
                }
            }
        }
        let confirmed: Vec<Channel> = self
            .unconfirmed
            .keys()
            .copied()
            .filter(|c| listed.contains_key(c.as_str()) || listed.contains_key(c.answers_on()))
            .collect();
        for channel in confirmed {
            let got = listed
                .get(channel.as_str())
                .or_else(|| listed.get(channel.answers_on()))
                .cloned()
                .unwrap_or_default();
            let asked = self.unconfirmed.remove(&channel).unwrap_or_default();
            let missing: Vec<String> = if channel.takes_products() && channel != Channel::User {
                asked.difference(&got).cloned().collect()
            } else {
                Vec::new()
            };
            if !missing.is_empty() {
                out.push(Action::Fail(
                    FeedError::config(format!(
                        "feed {}: Coinbase did not subscribe {channel} to {} (its answer lists {}); \
                         correct or remove it in `symbols` (product ids look like BTC-USD)",
                        self.feed,
                        missing.iter().map(|m| sanitize(m)).collect::<Vec<_>>().join(", "),
                        if got.is_empty() {
                            "none".to_string()
                        } else {
                            got.iter().map(|m| sanitize(m)).collect::<Vec<_>>().join(", ")
                        }
                    ))
                    .at(Layer::Data),
                ));
                return;
            }
            if channel == Channel::Heartbeats && !self.ready {
                self.ready = true;
                if let Some(t) = &self.tokens {
                    out.push(Action::LayerPassed {
                        layer: Layer::Auth,
                        detail: format!(
                            "Coinbase accepted the {} JWT of the subscribe message",
                            t.algorithm().as_str()
                        ),
                    });
                }
                out.push(Action::Ready);
            } else if channel != Channel::Heartbeats {
                out.push(Action::Subscribed {
                    detail: if got.is_empty() {
                        channel.to_string()
                    } else {
                        format!(
                            "{channel} {}",
                            got.iter().cloned().collect::<Vec<_>>().join(", ")
                        )
                    },
                });
            }
        }
    }

    fn on_l2(&mut self, text: &str, now: Mono, out: &mut Vec<Action>) {
        let events = match parse_l2(text) {
            Ok(e) => e,
            Err(e) => {
                out.push(Action::Fail(FeedError::protocol(format!(
                    "feed {}: {e}",
                    self.feed
                ))));
                return;
            }
        };
        let mut forward = false;
        let mut broken: Vec<(String, BookProblem)> = Vec::new();
        for ev in &events {
            let Some(state) = self.books.get_mut(&ev.product_id) else {
                continue;
            };
            match (ev.kind.as_str(), &mut *state) {
                ("snapshot", _) => {
                    let mut b = Book::default();
                    match b.apply(&ev.updates) {
                        Ok(()) => {
                            *state = BookState::Live(b);
                            forward = true;
                        }
                        Err(p) => broken.push((ev.product_id.clone(), p)),
                    }
                }
                ("update", BookState::Live(b)) => match b.apply(&ev.updates) {
                    Ok(()) => forward = true,
                    Err(p) => broken.push((ev.product_id.clone(), p)),
                },
                // Updates before the (fresh) snapshot belong to a book the
                // bot was told to drop.
                ("update", BookState::AwaitingSnapshot) => {}
                _ => forward = true,
            }
        }
        if broken.is_empty() && forward {
            out.push(Action::Data(text.to_string()));
        } else if broken.is_empty() {
            out.push(Action::Log {
                level: log::Level::Debug,
                message: "dropped a level2 update for a book awaiting its snapshot".into(),
            });
        }
        for (product, problem) in broken {
            out.push(Action::Log {
                level: log::Level::Warn,
                message: format!(
                    "feed {}: book {product}: {problem}; subscribing it again for a fresh snapshot",
                    self.feed
                ),
            });
            out.push(Action::event(
                "resync",
                &[
                    ("reason", problem.reason().into()),
                    ("symbol", product.clone().into()),
                ],
            ));
            self.counters.resyncs.fetch_add(1, Ordering::Relaxed);
            self.note(NOTE_RESYNCS, &self.counters.resyncs, out);
            self.enqueue(false, Channel::Level2, vec![product.clone()]);
            self.enqueue(true, Channel::Level2, vec![product]);
        }
        self.flush(now, out);
    }

    fn on_error(&mut self, v: &Value) -> FeedError {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(sanitize);
        let message = match (text("message"), text("reason")) {
            (Some(m), Some(r)) => format!("{m}: {r}"),
            (Some(m), None) | (None, Some(m)) => m,
            (None, None) => "no reason given".into(),
        };
        let lower = message.to_ascii_lowercase();
        let about_auth = [
            "jwt",
            "auth",
            "401",
            "unauthor",
            "forbidden",
            "signature",
            "expired",
        ]
        .iter()
        .any(|w| lower.contains(w));
        if about_auth {
            FeedError::auth(format!(
                "feed {}: Coinbase refused the JWT ({message}): the key's name, its private key \
                 or this host's clock",
                self.feed
            ))
            .at(Layer::Auth)
        } else if lower.contains("rate") || lower.contains("too many") {
            FeedError::new(
                ErrorClass::RateLimited { retry_after: None },
                format!("feed {}: Coinbase: {message}", self.feed),
            )
        } else {
            FeedError::config(format!(
                "feed {}: Coinbase refused a subscription ({message}); check `channels` and \
                 `symbols`",
                self.feed
            ))
        }
    }
}

impl ProtocolCore for CoinbaseCore {
    fn open(&mut self, now: Mono) -> Vec<Action> {
        self.connected_at = now;
        let mut out = Vec::new();
        if let Some(t) = &self.tokens {
            out.push(Action::Note {
                key: NOTE_JWT,
                value: t.algorithm().as_str().to_string(),
            });
        }
        // The heartbeats subscription is the handshake: its answer makes
        // the connection ready (and proves the JWT).
        self.enqueue(true, Channel::Heartbeats, Vec::new());
        self.flush(now, &mut out);
        out
    }

    fn subscribe(&mut self, now: Mono) -> Vec<Action> {
        for channel in self.plan.channels.clone() {
            let products = self.products_of(channel);
            self.enqueue(true, channel, products);
        }
        let mut out = Vec::new();
        self.flush(now, &mut out);
        out
    }

    fn receive(&mut self, msg: Inbound<'_>, now: Mono) -> Vec<Action> {
        let text = match msg {
            Inbound::Text(t) => t,
            Inbound::Pong => return Vec::new(),
            Inbound::Binary(b) | Inbound::Frame(b) => {
                return vec![Action::Fail(FeedError::protocol(format!(
                    "feed {}: Coinbase sent a binary message ({} bytes); it sends JSON text only",
                    self.feed,
                    b.len()
                )))];
            }
        };
        let v: Value = match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return vec![Action::Fail(FeedError::protocol(format!(
                    "feed {}: Coinbase sent a message that is not a JSON object ({} bytes)",
                    self.feed,
                    text.len()
                )))];
            }
        };
        let mut out = Vec::new();
        if v["type"] == "error" || v["channel"] == "error" {
            out.push(Action::Fail(self.on_error(&v)));
            return out;
        }
        if let Some(seq) = v["sequence_num"].as_u64() {
            let missed = self.check_sequence(seq, &mut out);
            if missed > 0 {
                self.on_gap(missed, seq, now, &mut out);
            }
        }
        match v["channel"].as_str() {
            Some("heartbeats") => self.on_heartbeat(&v, &mut out),
            Some("subscriptions") => self.on_subscriptions(&v, &mut out),
            Some("l2_data") if self.plan.channels.contains(&Channel::Level2) => {
                self.on_l2(text, now, &mut out)
            }
            Some("user") if self.user_snapshot_due => {
                self.user_snapshot_due = false;
                let orders: usize = v["events"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e["orders"].as_array().map(Vec::len))
                    .sum();
                out.push(Action::event(
                    "snapshot",
                    &[("channel", "user".into()), ("open_orders", orders.into())],
                ));
                out.push(Action::Data(text.to_string()));
            }
            Some(c) if self.plan.channels.iter().any(|ch| ch.answers_on() == c) => {
                out.push(Action::Data(text.to_string()))
            }
            // Coinbase: clients must ignore message types they do not know.
            other => out.push(Action::Log {
                level: log::Level::Debug,
                message: format!(
                    "feed {}: ignored a message on channel {:?} ({} bytes)",
                    self.feed,
                    other.map(sanitize),
                    text.len()
                ),
            }),
        }
        out
    }

    fn not_ready(&self, waited: Duration) -> FeedError {
        let (what, layer) = match self.tokens {
            Some(_) => ("the JWT-signed heartbeats subscription", Layer::Auth),
            None => ("the heartbeats subscription", Layer::Handshake),
        };
        FeedError::timeout(format!(
            "timeout ({layer}): Coinbase did not answer {what} within {}; is `url` a Coinbase \
             Advanced Trade endpoint ({} or {})?",
            crate::timefmt::human(waited),
            Endpoint::Market.default_url(),
            Endpoint::User.default_url()
        ))
        .at(layer)
    }

    fn has_keepalive(&self) -> bool {
        // The heartbeats channel is the keepalive; Coinbase documents no ping.
        false
    }

    fn keepalive(&mut self, _now: Mono) -> Vec<Action> {
        Vec::new()
    }

    fn tick(&mut self, now: Mono) -> Vec<Action> {
        let mut out = Vec::new();
        self.flush(now, &mut out);
        if self.queue.is_empty() && !self.unconfirmed.is_empty() {
            if let Some(sent) = self.last_send {
                if now.since(sent) >= ANSWER_WITHIN {
                    let names: Vec<&str> = self.unconfirmed.keys().map(|c| c.as_str()).collect();
                    out.push(Action::Fail(
                        FeedError::timeout(format!(
                            "timeout (data): Coinbase did not confirm the subscription to {} within {}",
                            names.join(", "),
                            crate::timefmt::human(ANSWER_WITHIN)
                        ))
                        .at(Layer::Data),
                    ));
                }
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
