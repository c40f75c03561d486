//! The Kraken WebSocket v2 protocol core (PROTOCOLS.md §1.7–1.8), public
//! (`ticker`, `book`, `trade`, `ohlc`) or private (`executions`,
//! `balances`, with the token from `GetWebSocketsToken` in
//! `params.token`). Pure: messages and time in, [`Action`]s out.
//!
//! - The `status` message Kraken sends on connect is the handshake:
//!   `Ready`, and `maintenance` is `Degraded` until it says otherwise.
//! - One subscribe per channel with every symbol; each symbol's ack is
//!   checked, a refusal is a configuration error naming channel and symbol
//!   (a token refusal on the private endpoint is an auth error).
//! - `heartbeat` proves liveness; the keepalive is `{"method":"ping"}`
//!   and its `pong` (same `req_id`) is [`Action::Pong`].
//! - Book messages reach the bot as Kraken sent them, and only once every
//!   book in them verified against Kraken's checksum. A mismatch: a
//!   `resync` event for the symbol, the message is dropped, that symbol's
//!   book is unsubscribed and subscribed again for a fresh snapshot (no
//!   reconnect); more than 3 resyncs in 10 minutes raise
//!   `alert=book_resync`, and from then on resubscribes are spaced out
//!   (1 s, 2 s, … 60 s) so a book that never verifies cannot become a
//!   subscribe storm.

use super::book::{Book, BookKind, parse_book_message};
use super::settings::{Channel, PrivatePlan, PublicPlan};
use crate::alert::{Alert, AlertKind};
use crate::clock::Mono;
use crate::feed::{Action, ErrorClass, FeedError, Inbound, Layer, Outbound, ProtocolCore};
use crate::peertext::short as sanitize;
use crate::secret::Secret;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

/// Resyncs counted over this window for `alert=book_resync`.
pub const RESYNC_WINDOW: Duration = Duration::from_secs(600);
/// More resyncs than this in the window raise the alert and space out resubscribes.
pub const RESYNC_ALERT_AFTER: usize = 3;
/// Longest wait before a spaced-out resubscribe.
pub const RESYNC_MAX_DELAY: Duration = Duration::from_secs(60);

/// What the feed subscribes to.
#[derive(Clone, Debug)]
enum Plan {
    Public(PublicPlan),
    Private { plan: PrivatePlan, token: Secret },
}

/// Where one symbol's book stands.
#[derive(Debug)]
enum BookState {
    /// Subscribed (or resubscribing): updates are dropped until a snapshot.
    AwaitingSnapshot,
    Live(Book),
}

/// The core of one Kraken WebSocket v2 connection.
pub struct KrakenCore {
    feed: String,
    plan: Plan,
    next_req_id: u64,
    ready: bool,
    /// Channel of each subscribe request sent.
    requests: HashMap<u64, Channel>,
    /// Acks still expected from the first subscribe: (channel, symbol);
    /// the symbol is empty for private channels.
    pending: BTreeSet<(Channel, String)>,
    /// Channels whose first subscribe is fully acknowledged.
    confirmed: BTreeSet<Channel>,
    auth_passed: bool,
    books: HashMap<String, BookState>,
    ping_outstanding: Option<u64>,
    system: Option<String>,
    degraded: bool,
    resyncs: VecDeque<Mono>,
    /// The resync alert was raised and the count has not dropped back since.
    resync_alerted: bool,
    /// Book resubscribes waiting for their time: (due, symbol).
    deferred: Vec<(Mono, String)>,
}

/// The fields of any v2 message that routing needs (the rest, `data`
/// included, is skipped unparsed). Each is taken as any JSON value and
/// read leniently, so an unexpected type in one field is not a parse
/// error of the whole message.
#[derive(Deserialize)]
struct Envelope {
    channel: Option<Value>,
    method: Option<Value>,
    success: Option<Value>,
    req_id: Option<Value>,
    error: Option<Value>,
    symbol: Option<Value>,
    result: Option<Value>,
}

impl Envelope {
    fn channel(&self) -> Option<&str> {
        self.channel.as_ref().and_then(Value::as_str)
    }
    fn method(&self) -> Option<&str> {
        self.method.as_ref().and_then(Value::as_str)
    }
    fn success(&self) -> Option<bool> {
        self.success.as_ref().and_then(Value::as_bool)
    }
    fn req_id(&self) -> Option<u64> {
        self.req_id.as_ref().and_then(Value::as_u64)
    }
    fn error_text(&self) -> Option<String> {
        self.error.as_ref().map(|e| match e {
            Value::String(s) => sanitize(s),
            other => sanitize(&other.to_string()),
        })
    }
}

impl KrakenCore {
    /// A core for a public feed.
    pub fn public(feed: &str, plan: PublicPlan) -> Self {
        Self::new(feed, Plan::Public(plan))
    }

    /// A core for a private feed, with the token fetched for this
    /// connection.
    pub fn private(feed: &str, plan: PrivatePlan, token: Secret) -> Self {
        Self::new(feed, Plan::Private { plan, token })
    }

    fn new(feed: &str, plan: Plan) -> Self {
        KrakenCore {
            feed: feed.to_string(),
            plan,
            next_req_id: 1,
            ready: false,
            requests: HashMap::new(),
            pending: BTreeSet::new(),
            confirmed: BTreeSet::new(),
            auth_passed: false,
            books: HashMap::new(),
            ping_outstanding: None,
            system: None,
            degraded: false,
            resyncs: VecDeque::new(),
            resync_alerted: false,
            deferred: Vec::new(),
        }
    }

    /// The last `system` status Kraken reported on this connection.
    pub fn system_status(&self) -> Option<&str> {
        self.system.as_deref()
    }

    /// Resyncs within the last [`RESYNC_WINDOW`] as of the last one.
    pub fn recent_resyncs(&self) -> usize {
        self.resyncs.len()
    }

    fn req_id(&mut self) -> u64 {
        let id = self.next_req_id;
        self.next_req_id += 1;
        id
    }

    fn depth(&self) -> u32 {
        match &self.plan {
            Plan::Public(p) => p.depth,
            Plan::Private { .. } => 0,
        }
    }

    fn is_private(&self) -> bool {
        matches!(self.plan, Plan::Private { .. })
    }

    /// The subscribe message for `channel` and `symbols` (public) or with
    /// the token (private). A [`Secret`], since the private one holds the token.
    fn subscribe_msg(&mut self, channel: Channel, symbols: &[String]) -> Action {
        let req_id = self.req_id();
        self.requests.insert(req_id, channel);
        let mut params = serde_json::Map::new();
        params.insert("channel".into(), channel.as_str().into());
        match &self.plan {
            Plan::Public(p) => {
                params.insert("symbol".into(), json!(symbols));
                if channel == Channel::Book {
                    params.insert("depth".into(), p.depth.into());
                }
                if let (Channel::Ohlc, Some(i)) = (channel, p.ohlc_interval) {
                    params.insert("interval".into(), i.into());
                }
            }
            Plan::Private { token, .. } => {
                params.insert("token".into(), token.expose().into());
            }
        }
        let msg = json!({"method": "subscribe", "params": params, "req_id": req_id});
        Action::Send(Outbound::Text(Secret::new(msg.to_string())))
    }

    fn book_request(&mut self, method: &str, symbol: &str) -> Action {
        let req_id = self.req_id();
        if method == "subscribe" {
            self.requests.insert(req_id, Channel::Book);
        }
        let msg = json!({
            "method": method,
            "params": {"channel": "book", "symbol": [symbol], "depth": self.depth()},
            "req_id": req_id,
        });
        Action::send_text(msg.to_string())
    }

    fn on_status(&mut self, text: &str, out: &mut Vec<Action>) {
        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let d = v.get("data").and_then(|d| d.get(0));
        let field = |k: &str| {
            d.and_then(|d| d.get(k))
                .and_then(Value::as_str)
                .map(sanitize)
        };
        let Some(system) = field("system") else {
            out.push(Action::Log {
                level: log::Level::Warn,
                message: "Kraken sent a status message without a system status".into(),
            });
            return;
        };
        let version = field("version");
        let api = field("api_version");
        let about = format!(
            "{system}{}{}",
            api.as_ref()
                .map(|a| format!(", api {a}"))
                .unwrap_or_default(),
            version
                .as_ref()
                .map(|v| format!(", version {v}"))
                .unwrap_or_default()
        );
        let level = if system == "online" {
            log::Level::Info
        } else {
            log::Level::Warn
        };
        out.push(Action::Log {
            level,
            message: format!(
                "feed={} Kraken system status: {about}{}",
                self.feed,
                meaning(&system)
            ),
        });
        out.push(Action::event(
            "system_status",
            &[("system", system.clone().into())],
        ));
        if !self.ready {
            self.ready = true;
            out.push(Action::LayerPassed {
                layer: Layer::Handshake,
                detail: format!("Kraken WebSocket v2 status: {about}"),
            });
            out.push(Action::Ready);
        }
        if system == "maintenance" && !self.degraded {
            self.degraded = true;
            out.push(Action::Degraded {
                reason: "Kraken is in maintenance (no new orders, no cancels, no market data); \
                         waiting for it to come back online"
                    .into(),
            });
        } else if system != "maintenance" && self.degraded {
            self.degraded = false;
            out.push(Action::Restored {
                detail: format!("Kraken system status is {system} again"),
            });
        }
        self.system = Some(system);
    }

    fn on_subscribe_ack(&mut self, env: &Envelope, out: &mut Vec<Action>) {
        let result = env.result.as_ref();
        let channel = result
            .and_then(|r| r.get("channel"))
            .and_then(Value::as_str)
            .and_then(Channel::parse)
            .or_else(|| env.req_id().and_then(|id| self.requests.get(&id).copied()));
        let symbol = result
            .and_then(|r| r.get("symbol"))
            .or(env.symbol.as_ref())
            .and_then(Value::as_str)
            .map(sanitize)
            .unwrap_or_default();
        if env.success() == Some(true) {
            let Some(channel) = channel else {
                out.push(Action::Log {
                    level: log::Level::Debug,
                    message: "Kraken acknowledged a subscription to an unknown channel".into(),
                });
                return;
            };
            let key = (
                channel,
                if channel.is_private() {
                    String::new()
                } else {
                    symbol.clone()
                },
            );
            if !self.pending.remove(&key) {
                out.push(Action::Log {
                    level: log::Level::Debug,
                    message: format!("Kraken resubscribed {channel} {symbol}"),
                });
                return;
            }
            if channel.is_private() && !self.auth_passed {
                self.auth_passed = true;
                out.push(Action::LayerPassed {
                    layer: Layer::Auth,
                    detail: format!("Kraken accepted the WebSocket token ({channel})"),
                });
            }
            if !self.pending.iter().any(|(c, _)| *c == channel) && self.confirmed.insert(channel) {
                let detail = match &self.plan {
                    Plan::Public(p) if channel == Channel::Book => {
                        format!("book {} (depth {})", p.symbols.join(", "), p.depth)
                    }
                    Plan::Public(p) => format!("{channel} {}", p.symbols.join(", ")),
                    Plan::Private { .. } => channel.to_string(),
                };
                out.push(Action::Subscribed { detail });
            }
            return;
        }
        let error = env.error_text().unwrap_or_else(|| "no reason given".into());
        if error.contains("Already subscribed") {
            out.push(Action::Log {
                level: log::Level::Debug,
                message: format!("Kraken: {error}"),
            });
            return;
        }
        let what = match (channel, symbol.is_empty()) {
            (Some(c), false) => format!("{c} {symbol}"),
            (Some(c), true) => c.to_string(),
            (None, false) => symbol.clone(),
            (None, true) => "a channel".to_string(),
        };
        let lower = error.to_ascii_lowercase();
        let fail = if self.is_private()
            && ["token", "eaccess", "esession", "auth", "permission"]
                .iter()
                .any(|w| lower.contains(w))
        {
            FeedError::auth(format!(
                "feed {}: Kraken rejected the WebSocket token for {what} ({error}); \
                 check the API key's \"WebSocket interface\" permission",
                self.feed
            ))
            .at(Layer::Auth)
        } else if lower.contains("rate limit") || lower.contains("too many") {
            FeedError::new(
                ErrorClass::RateLimited { retry_after: None },
                format!(
                    "feed {}: Kraken refused the subscription to {what}: {error}",
                    self.feed
                ),
            )
        } else if self.is_private() {
            FeedError::config(format!(
                "feed {}: Kraken refused the subscription to {what}: {error}; check `channels`",
                self.feed
            ))
        } else {
            FeedError::config(format!(
                "feed {}: Kraken refused the subscription to {what}: {error}; correct or remove \
                 it in `symbols` (v2 symbols look like BTC/USD){}",
                self.feed,
                if channel == Some(Channel::Book) {
                    " or check `depth`"
                } else {
                    ""
                }
            ))
        };
        out.push(Action::Fail(fail));
    }

    fn on_book(&mut self, text: &str, now: Mono, out: &mut Vec<Action>) {
        let msg = match parse_book_message(text) {
            Ok(m) => m,
            Err(e) => {
                out.push(Action::Fail(FeedError::protocol(format!(
                    "feed {}: {e}",
                    self.feed
                ))));
                return;
            }
        };
        let depth = self.depth() as usize;
        let mut verified = Vec::new();
        let mut failed = Vec::new();
        let mut stale = 0;
        for entry in &msg.entries {
            let Some(state) = self.books.get_mut(&entry.symbol) else {
                stale += 1;
                continue;
            };
            match (msg.kind, &mut *state) {
                (BookKind::Snapshot, _) => {
                    let mut b = Book::new(depth);
                    b.apply_snapshot(&entry.bids, &entry.asks);
                    *state = BookState::Live(b);
                }
                (BookKind::Update, BookState::AwaitingSnapshot) => {
                    stale += 1;
                    continue;
                }
                (BookKind::Update, BookState::Live(b)) => b.apply_update(&entry.bids, &entry.asks),
            }
            let BookState::Live(book) = state else {
                continue;
            };
            let computed = book.checksum();
            if computed == entry.checksum {
                verified.push(entry.symbol.clone());
            } else {
                failed.push((entry.symbol.clone(), entry.checksum, computed));
            }
        }
        if failed.is_empty() && stale == 0 {
            if !verified.is_empty() {
                out.push(Action::Data(text.to_string()));
            }
            return;
        }
        if failed.is_empty() && verified.is_empty() {
            out.push(Action::Log {
                level: log::Level::Debug,
                message: "dropped a book update for a book awaiting its snapshot".into(),
            });
            return;
        }
        for (symbol, sent, computed) in &failed {
            out.push(Action::Log {
                level: log::Level::Warn,
                message: format!(
                    "feed {}: book {symbol}: checksum mismatch (Kraken sent {sent}, the local book \
                     gives {computed}); resubscribing for a fresh snapshot",
                    self.feed
                ),
            });
        }
        // Books that verified in a message that is not forwarded miss an
        // update at the bot: they are resynced too.
        let symbols: Vec<String> = failed.into_iter().map(|f| f.0).chain(verified).collect();
        for symbol in symbols {
            self.resync(&symbol, now, out);
        }
    }

    fn resync(&mut self, symbol: &str, now: Mono, out: &mut Vec<Action>) {
        self.books
            .insert(symbol.to_string(), BookState::AwaitingSnapshot);
        while self
            .resyncs
            .front()
            .is_some_and(|t| now.since(*t) >= RESYNC_WINDOW)
        {
            self.resyncs.pop_front();
        }
        if self.resyncs.len() <= RESYNC_ALERT_AFTER {
            self.resync_alerted = false;
        }
        self.resyncs.push_back(now);
        let count = self.resyncs.len();
        out.push(Action::event(
            "resync",
            &[("reason", "checksum".into()), ("symbol", symbol.into())],
        ));
        if count > RESYNC_ALERT_AFTER && !self.resync_alerted {
            self.resync_alerted = true;
            out.push(Action::Alert(
                Alert::new(AlertKind::BookResync)
                    .with("feed", &self.feed)
                    .with("symbol", symbol)
                    .with("resyncs", count)
                    .with("window", "10m"),
            ));
        }
        out.push(self.book_request("unsubscribe", symbol));
        if count > RESYNC_ALERT_AFTER {
            let exp = (count - RESYNC_ALERT_AFTER - 1).min(6) as u32;
            let delay = Duration::from_secs(1u64 << exp).min(RESYNC_MAX_DELAY);
            self.deferred.retain(|(_, s)| s != symbol);
            self.deferred.push((now.plus(delay), symbol.to_string()));
            out.push(Action::Log {
                level: log::Level::Warn,
                message: format!(
                    "feed {}: {count} book resyncs in 10 minutes; resubscribing {symbol} in {}",
                    self.feed,
                    crate::timefmt::human(delay)
                ),
            });
        } else {
            out.push(self.book_request("subscribe", symbol));
        }
    }
}

/// What a non-online status means for the operator.
fn meaning(system: &str) -> &'static str {
    match system {
        "maintenance" => " (no new orders, no cancels)",
        "cancel_only" => " (orders can only be cancelled)",
        "post_only" => " (only post-only limit orders are accepted)",
        _ => "",
    }
}

impl ProtocolCore for KrakenCore {
    fn open(&mut self, _now: Mono) -> Vec<Action> {
        // Kraken speaks first: its status message is the handshake.
        Vec::new()
    }

    fn subscribe(&mut self, _now: Mono) -> Vec<Action> {
        let mut out = Vec::new();
        match self.plan.clone() {
            Plan::Public(p) => {
                for &channel in &p.channels {
                    for s in &p.symbols {
                        self.pending.insert((channel, s.clone()));
                        if channel == Channel::Book {
                            self.books.insert(s.clone(), BookState::AwaitingSnapshot);
                        }
                    }
                    out.push(self.subscribe_msg(channel, &p.symbols));
                }
            }
            Plan::Private { plan, .. } => {
                for &channel in &plan.channels {
                    self.pending.insert((channel, String::new()));
                    out.push(self.subscribe_msg(channel, &[]));
                }
            }
        }
        out
    }

    fn receive(&mut self, msg: Inbound<'_>, now: Mono) -> Vec<Action> {
        let text = match msg {
            Inbound::Text(t) => t,
            Inbound::Pong => return Vec::new(),
            Inbound::Binary(b) | Inbound::Frame(b) => {
                return vec![Action::Fail(FeedError::protocol(format!(
                    "feed {}: Kraken sent a binary message ({} bytes); v2 sends JSON text only",
                    self.feed,
                    b.len()
                )))];
            }
        };
        let object = text.trim_start().starts_with('{');
        let env: Envelope = match serde_json::from_str(text) {
            Ok(e) if object => e,
            _ => {
                return vec![Action::Fail(FeedError::protocol(format!(
                    "feed {}: Kraken sent a message that is not a JSON object ({} bytes)",
                    self.feed,
                    text.len()
                )))];
            }
        };
        let mut out = Vec::new();
        if let Some(method) = env.method() {
            match method {
                "pong" => {
                    if env.req_id().is_some() && env.req_id() == self.ping_outstanding {
                        self.ping_outstanding = None;
                        out.push(Action::Pong);
                    } else {
                        out.push(Action::Log {
                            level: log::Level::Debug,
                            message: format!(
                                "pong for req_id {:?}, not the last ping",
                                env.req_id()
                            ),
                        });
                    }
                }
                "subscribe" => self.on_subscribe_ack(&env, &mut out),
                "unsubscribe" if env.success() == Some(false) => out.push(Action::Log {
                    level: log::Level::Warn,
                    message: format!(
                        "feed {}: Kraken refused an unsubscribe: {}",
                        self.feed,
                        env.error_text().unwrap_or_default()
                    ),
                }),
                _ => {}
            }
            return out;
        }
        match env.channel() {
            Some("heartbeat") => out.push(Action::Heartbeat),
            Some("status") => self.on_status(text, &mut out),
            Some("book") if !self.is_private() => self.on_book(text, now, &mut out),
            Some(_) => out.push(Action::Data(text.to_string())),
            None if env.error.is_some() => out.push(Action::Log {
                level: log::Level::Warn,
                message: format!(
                    "feed {}: Kraken error: {}",
                    self.feed,
                    env.error_text().unwrap_or_default()
                ),
            }),
            None => out.push(Action::Log {
                level: log::Level::Debug,
                message: format!(
                    "feed {}: ignored a message without channel or method ({} bytes)",
                    self.feed,
                    text.len()
                ),
            }),
        }
        out
    }

    fn not_ready(&self, waited: Duration) -> FeedError {
        FeedError::timeout(format!(
            "timeout (handshake): no status message from Kraken within {} of connecting; \
             is `url` a Kraken WebSocket v2 endpoint (wss://ws.kraken.com/v2 or \
             wss://ws-auth.kraken.com/v2)?",
            crate::timefmt::human(waited)
        ))
        .at(Layer::Handshake)
    }

    fn has_keepalive(&self) -> bool {
        true
    }

    fn keepalive(&mut self, _now: Mono) -> Vec<Action> {
        let id = self.req_id();
        self.ping_outstanding = Some(id);
        vec![Action::send_text(
            json!({"method": "ping", "req_id": id}).to_string(),
        )]
    }

    fn tick(&mut self, now: Mono) -> Vec<Action> {
        if self.deferred.is_empty() {
            return Vec::new();
        }
        let (due, later): (Vec<_>, Vec<_>) = self.deferred.drain(..).partition(|(t, _)| *t <= now);
        self.deferred = later;
        due.into_iter()
            .map(|(_, symbol)| self.book_request("subscribe", &symbol))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brokers::kraken::book::{Decimal, Level};

    const CANARY_TOKEN: &str = "CANARY-ws-token-9f2c";

    fn public(channels: &[Channel], symbols: &[&str], depth: u32) -> KrakenCore {
        KrakenCore::public(
            "kbook",
            PublicPlan {
                channels: channels.to_vec(),
                symbols: symbols.iter().map(|s| s.to_string()).collect(),
                depth,
                ohlc_interval: None,
            },
        )
    }

    fn private(channels: &[Channel]) -> KrakenCore {
        KrakenCore::private(
            "kexec",
            PrivatePlan {
                channels: channels.to_vec(),
            },
            Secret::new(CANARY_TOKEN),
        )
    }

    fn at(secs: u64) -> Mono {
        Mono(Duration::from_secs(secs))
    }

    /// One line per action, so a table can say what it expects.
    fn summary(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::Send(Outbound::Text(t)) => {
                    let v: Value = serde_json::from_str(t.expose()).unwrap();
                    let p = &v["params"];
                    match v["method"].as_str().unwrap() {
                        "ping" => format!("send ping {}", v["req_id"]),
                        m => format!(
                            "send {m} {} {}",
                            p["channel"].as_str().unwrap_or(""),
                            p["symbol"]
                                .as_array()
                                .map(|a| a
                                    .iter()
                                    .map(|s| s.as_str().unwrap())
                                    .collect::<Vec<_>>()
                                    .join(","))
                                .unwrap_or_default()
                        )
                        .trim_end()
                        .to_string(),
                    }
                }
                Action::Send(other) => format!("send {other:?}"),
                Action::Data(_) => "data".into(),
                Action::Event { name, fields } => format!(
                    "event {name}{}",
                    fields
                        .get("symbol")
                        .or(fields.get("system"))
                        .and_then(Value::as_str)
                        .map(|s| format!(" {s}"))
                        .unwrap_or_default()
                ),
                Action::Heartbeat => "heartbeat".into(),
                Action::Pong => "pong".into(),
                Action::LayerPassed { layer, .. } => format!("passed {layer}"),
                Action::Ready => "ready".into(),
                Action::Subscribed { detail } => format!("subscribed {detail}"),
                Action::Degraded { .. } => "degraded".into(),
                Action::Restored { .. } => "restored".into(),
                Action::Note { key, value } => format!("note {key}={value}"),
                Action::Fail(e) => format!("fail {}", e.class.as_str()),
                Action::Alert(a) => format!("alert {}", a.kind),
                Action::Log { level, .. } => format!("log {}", level.as_str().to_lowercase()),
            })
            .collect()
    }

    fn status(system: &str) -> String {
        format!(
            r#"{{"channel":"status","type":"update","data":[{{"version":"2.0.10","system":"{system}","api_version":"v2","connection_id":18266300427528990701}}]}}"#
        )
    }

    fn ack(channel: &str, symbol: &str, req_id: u64) -> String {
        format!(
            r#"{{"method":"subscribe","result":{{"channel":"{channel}","symbol":"{symbol}","snapshot":true}},"success":true,"time_in":"2024-01-01T00:00:00.000000Z","time_out":"2024-01-01T00:00:00.000100Z","req_id":{req_id}}}"#
        )
    }

    fn lv(p: &str, q: &str) -> Level {
        Level {
            price: Decimal::parse(p, "price").unwrap(),
            qty: Decimal::parse(q, "qty").unwrap(),
        }
    }

    fn levels_json(levels: &[(&str, &str)]) -> String {
        let items: Vec<String> = levels
            .iter()
            .map(|(p, q)| format!(r#"{{"price":{p},"qty":{q}}}"#))
            .collect();
        format!("[{}]", items.join(","))
    }

    /// A book message whose checksum is that of `shadow` after applying it
    /// (plus `corrupt`, to make a wrong one).
    fn book_msg(
        shadow: &mut Book,
        kind: &str,
        symbol: &str,
        bids: &[(&str, &str)],
        asks: &[(&str, &str)],
        corrupt: u32,
    ) -> String {
        let b: Vec<Level> = bids.iter().map(|(p, q)| lv(p, q)).collect();
        let a: Vec<Level> = asks.iter().map(|(p, q)| lv(p, q)).collect();
        if kind == "snapshot" {
            shadow.apply_snapshot(&b, &a);
        } else {
            shadow.apply_update(&b, &a);
        }
        format!(
            r#"{{"channel":"book","type":"{kind}","data":[{{"symbol":"{symbol}","bids":{},"asks":{},"checksum":{},"timestamp":"2024-01-01T00:00:00.000000Z"}}]}}"#,
            levels_json(bids),
            levels_json(asks),
            shadow.checksum().wrapping_add(corrupt)
        )
    }

    fn feed(core: &mut KrakenCore, text: &str, now: Mono) -> Vec<String> {
        summary(&core.receive(Inbound::Text(text), now))
    }

    #[test]
    fn status_is_the_handshake_and_maintenance_is_degraded() {
        let mut core = public(&[Channel::Ticker], &["BTC/USD"], 10);
        assert!(core.open(at(0)).is_empty());
        let table: &[(String, &[&str])] = &[
            (
                status("online"),
                &[
                    "log info",
                    "event system_status online",
                    "passed handshake",
                    "ready",
                ],
            ),
            (
                status("maintenance"),
                &["log warn", "event system_status maintenance", "degraded"],
            ),
            (
                status("maintenance"),
                &["log warn", "event system_status maintenance"],
            ),
            (
                status("cancel_only"),
                &["log warn", "event system_status cancel_only", "restored"],
            ),
            (
                status("post_only"),
                &["log warn", "event system_status post_only"],
            ),
            (
                status("online"),
                &["log info", "event system_status online"],
            ),
            (
                r#"{"channel":"status","type":"update","data":[]}"#.into(),
                &["log warn"],
            ),
        ];
        for (msg, want) in table {
            assert_eq!(feed(&mut core, msg, at(1)), *want, "{msg}");
        }
        assert_eq!(core.system_status(), Some("online"));
        // Maintenance on connect: ready, then degraded at once.
        let mut core = public(&[Channel::Ticker], &["BTC/USD"], 10);
        assert_eq!(
            feed(&mut core, &status("maintenance"), at(0)),
            [
                "log warn",
                "event system_status maintenance",
                "passed handshake",
                "ready",
                "degraded"
            ]
        );
        let e = core.not_ready(Duration::from_secs(10));
        assert_eq!(e.layer, Some(Layer::Handshake));
        assert!(
            e.message
                .contains("no status message from Kraken within 10s"),
            "{e}"
        );
    }

    #[test]
    fn one_subscribe_per_channel_with_every_symbol_and_acks_per_symbol() {
        let mut core = KrakenCore::public(
            "kbook",
            PublicPlan {
                channels: vec![Channel::Ticker, Channel::Book, Channel::Ohlc],
                symbols: vec!["BTC/USD".into(), "ETH/USD".into()],
                depth: 25,
                ohlc_interval: Some(5),
            },
        );
        feed(&mut core, &status("online"), at(0));
        let subs = core.subscribe(at(0));
        assert_eq!(
            summary(&subs),
            [
                "send subscribe ticker BTC/USD,ETH/USD",
                "send subscribe book BTC/USD,ETH/USD",
                "send subscribe ohlc BTC/USD,ETH/USD"
            ]
        );
        let Action::Send(Outbound::Text(book)) = &subs[1] else {
            panic!()
        };
        let book: Value = serde_json::from_str(book.expose()).unwrap();
        assert_eq!(
            book,
            json!({"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD","ETH/USD"],"depth":25},"req_id":2})
        );
        let Action::Send(Outbound::Text(ohlc)) = &subs[2] else {
            panic!()
        };
        assert!(ohlc.expose().contains(r#""interval":5"#));
        let table: &[(String, &[&str])] = &[
            (ack("ticker", "BTC/USD", 1), &[]),
            (ack("ticker", "ETH/USD", 1), &["subscribed ticker BTC/USD, ETH/USD"]),
            (ack("book", "ETH/USD", 2), &[]),
            (ack("book", "BTC/USD", 2), &["subscribed book BTC/USD, ETH/USD (depth 25)"]),
            // A repeated ack changes nothing.
            (ack("book", "BTC/USD", 2), &["log debug"]),
            (ack("ohlc", "BTC/USD", 3), &[]),
            (r#"{"channel":"heartbeat"}"#.into(), &["heartbeat"]),
            (
                r#"{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","last":1.00005}]}"#.into(),
                &["data"],
            ),
            (
                r#"{"channel":"trade","type":"update","data":[]}"#.into(),
                &["data"],
            ),
            (
                r#"{"method":"unsubscribe","success":true,"result":{"channel":"ticker"}}"#.into(),
                &[],
            ),
            (
                r#"{"error":"Already subscribed","method":"subscribe","success":false,"symbol":"BTC/USD","req_id":1}"#.into(),
                &["log debug"],
            ),
            (r#"{"error":"EGeneral:Internal error"}"#.into(), &["log warn"]),
            (r#"{"something":"else"}"#.into(), &["log debug"]),
        ];
        for (msg, want) in table {
            assert_eq!(feed(&mut core, msg, at(1)), *want, "{msg}");
        }
    }

    #[test]
    fn a_refused_symbol_is_a_config_error_naming_channel_and_symbol() {
        let mut core = public(
            &[Channel::Ticker, Channel::Book],
            &["BTC/USD", "XDG/USD"],
            10,
        );
        feed(&mut core, &status("online"), at(0));
        core.subscribe(at(0));
        let out = core.receive(
            Inbound::Text(
                r#"{"error":"Currency pair not supported XDG/USD","method":"subscribe","success":false,"symbol":"XDG/USD","time_in":"x","time_out":"y","req_id":2}"#,
            ),
            at(1),
        );
        let [Action::Fail(e)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(e.class, ErrorClass::Config);
        assert!(
            e.message.contains("feed kbook")
                && e.message.contains("book XDG/USD")
                && e.message.contains("Currency pair not supported")
                && e.message.contains("`symbols`")
                && e.message.contains("`depth`"),
            "{e}"
        );
        // Without a req_id the symbol is still named.
        let out = core.receive(
            Inbound::Text(r#"{"error":"Currency pair not supported XDG/USD","method":"subscribe","success":false,"symbol":"XDG/USD"}"#),
            at(1),
        );
        let [Action::Fail(e)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert!(e.message.contains("XDG/USD"), "{e}");
        let out = core.receive(
            Inbound::Text(r#"{"error":"EGeneral:Too many requests","method":"subscribe","success":false,"req_id":1}"#),
            at(1),
        );
        assert_eq!(summary(&out), ["fail rate_limited"]);
    }

    #[test]
    fn ping_and_pong_match_by_req_id() {
        let mut core = public(&[Channel::Ticker], &["BTC/USD"], 10);
        assert!(core.has_keepalive());
        feed(&mut core, &status("online"), at(0));
        core.subscribe(at(0));
        let ping = core.keepalive(at(15));
        assert_eq!(summary(&ping), ["send ping 2"]);
        let table: &[(&str, &[&str])] = &[
            (r#"{"method":"pong","req_id":1}"#, &["log debug"]),
            (r#"{"method":"pong"}"#, &["log debug"]),
            (
                r#"{"method":"pong","req_id":2,"time_in":"2024-09-10T20:24:26.280373Z","time_out":"2024-09-10T20:24:26.280397Z"}"#,
                &["pong"],
            ),
            // Answered once.
            (r#"{"method":"pong","req_id":2}"#, &["log debug"]),
        ];
        for (msg, want) in table {
            assert_eq!(feed(&mut core, msg, at(16)), *want, "{msg}");
        }
        assert!(core.receive(Inbound::Pong, at(16)).is_empty());
    }

    #[test]
    fn books_reach_the_bot_verified_and_as_sent_and_a_mismatch_resyncs() {
        let mut core = public(&[Channel::Book], &["BTC/USD", "ETH/USD"], 10);
        feed(&mut core, &status("online"), at(0));
        core.subscribe(at(0));
        feed(&mut core, &ack("book", "BTC/USD", 1), at(0));
        feed(&mut core, &ack("book", "ETH/USD", 1), at(0));
        let mut btc = Book::new(10);
        let mut eth = Book::new(10);
        let snap = book_msg(
            &mut btc,
            "snapshot",
            "BTC/USD",
            &[("45283.5", "0.10000000"), ("45283.4", "1.54582015")],
            &[("45285.2", "0.00100000"), ("45285.3", "0.50000000")],
            0,
        );
        let out = core.receive(Inbound::Text(&snap), at(1));
        assert_eq!(
            out,
            vec![Action::Data(snap.clone())],
            "forwarded byte for byte"
        );
        let table: Vec<(String, Vec<&str>)> = vec![
            // An update before ETH's snapshot is dropped quietly.
            (
                book_msg(
                    &mut Book::new(10),
                    "update",
                    "ETH/USD",
                    &[("2000.1", "1")],
                    &[],
                    0,
                ),
                vec!["log debug"],
            ),
            (
                book_msg(
                    &mut eth,
                    "snapshot",
                    "ETH/USD",
                    &[("2000.1", "1.0")],
                    &[("2000.2", "2.0")],
                    0,
                ),
                vec!["data"],
            ),
            // Several changes to one level in one message, and a removal.
            (
                book_msg(
                    &mut btc,
                    "update",
                    "BTC/USD",
                    &[
                        ("45283.5", "0.2"),
                        ("45283.5", "0.30000000"),
                        ("45283.4", "0"),
                    ],
                    &[],
                    0,
                ),
                vec!["data"],
            ),
            // A symbol Kraken sends that we never subscribed to is not ours to verify.
            (
                book_msg(
                    &mut Book::new(10),
                    "update",
                    "SOL/USD",
                    &[("1.0", "1")],
                    &[],
                    0,
                ),
                vec!["log debug"],
            ),
            // Corrupted: resync that symbol only, the update is not forwarded.
            (
                book_msg(&mut btc, "update", "BTC/USD", &[("45283.3", "1.0")], &[], 1),
                vec![
                    "log warn",
                    "event resync BTC/USD",
                    "send unsubscribe book BTC/USD",
                    "send subscribe book BTC/USD",
                ],
            ),
            // Updates in flight before the fresh snapshot are dropped.
            (
                book_msg(&mut btc, "update", "BTC/USD", &[("45283.2", "1.0")], &[], 0),
                vec!["log debug"],
            ),
            (ack("book", "BTC/USD", 3), vec!["log debug"]),
            (
                book_msg(
                    &mut btc,
                    "snapshot",
                    "BTC/USD",
                    &[("45283.5", "0.3")],
                    &[("45285.2", "0.1")],
                    0,
                ),
                vec!["data"],
            ),
            (
                book_msg(&mut eth, "update", "ETH/USD", &[], &[("2000.3", "5")], 0),
                vec!["data"],
            ),
        ];
        for (i, (msg, want)) in table.iter().enumerate() {
            assert_eq!(feed(&mut core, msg, at(2)), *want, "row {i}: {msg}");
        }
        // The resync event carries the reason and the symbol.
        let bad = book_msg(&mut eth, "update", "ETH/USD", &[("1999.0", "1")], &[], 7);
        let out = core.receive(Inbound::Text(&bad), at(3));
        let ev = out
            .iter()
            .find_map(|a| match a {
                Action::Event {
                    name: "resync",
                    fields,
                } => Some(fields.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(ev["reason"], "checksum");
        assert_eq!(ev["symbol"], "ETH/USD");
        assert!(!out.iter().any(|a| matches!(a, Action::Data(_))));
    }

    #[test]
    fn a_message_with_one_bad_book_resyncs_every_book_in_it() {
        let mut core = public(&[Channel::Book], &["BTC/USD", "ETH/USD"], 10);
        feed(&mut core, &status("online"), at(0));
        core.subscribe(at(0));
        let mut btc = Book::new(10);
        let mut eth = Book::new(10);
        feed(
            &mut core,
            &book_msg(&mut btc, "snapshot", "BTC/USD", &[("1.0", "1")], &[], 0),
            at(1),
        );
        feed(
            &mut core,
            &book_msg(&mut eth, "snapshot", "ETH/USD", &[("2.0", "1")], &[], 0),
            at(1),
        );
        btc.apply_update(&[lv("1.1", "1")], &[]);
        let two = format!(
            r#"{{"channel":"book","type":"update","data":[
              {{"symbol":"BTC/USD","bids":[{{"price":1.1,"qty":1}}],"asks":[],"checksum":{}}},
              {{"symbol":"ETH/USD","bids":[{{"price":2.1,"qty":1}}],"asks":[],"checksum":1}}]}}"#,
            btc.checksum()
        );
        let s = feed(&mut core, &two, at(2));
        assert_eq!(
            s,
            [
                "log warn",
                "event resync ETH/USD",
                "send unsubscribe book ETH/USD",
                "send subscribe book ETH/USD",
                "event resync BTC/USD",
                "send unsubscribe book BTC/USD",
                "send subscribe book BTC/USD",
            ]
        );
    }

    #[test]
    fn more_than_three_resyncs_in_ten_minutes_alert_and_space_out() {
        let mut core = public(&[Channel::Book], &["BTC/USD"], 10);
        feed(&mut core, &status("online"), at(0));
        core.subscribe(at(0));
        let mut shadow = Book::new(10);
        // (time, resync expected to: subscribe now | alert and defer | defer)
        let resync_at = |core: &mut KrakenCore, shadow: &mut Book, t: u64| {
            let snap = book_msg(shadow, "snapshot", "BTC/USD", &[("1.0", "1")], &[], 3);
            feed(core, &snap, at(t))
        };
        let now_sub = vec![
            "log warn",
            "event resync BTC/USD",
            "send unsubscribe book BTC/USD",
            "send subscribe book BTC/USD",
        ];
        for t in [0, 100, 200] {
            assert_eq!(resync_at(&mut core, &mut shadow, t), now_sub, "at {t}");
        }
        assert_eq!(
            resync_at(&mut core, &mut shadow, 300),
            [
                "log warn",
                "event resync BTC/USD",
                "alert book_resync",
                "send unsubscribe book BTC/USD",
                "log warn"
            ]
        );
        assert_eq!(core.recent_resyncs(), 4);
        // The subscribe comes 1 s later, through tick.
        assert!(core.tick(Mono(Duration::from_millis(300_999))).is_empty());
        assert_eq!(
            summary(&core.tick(at(301))),
            ["send subscribe book BTC/USD"]
        );
        assert!(core.tick(at(302)).is_empty());
        // The fifth waits 2 s, with no second alert.
        assert_eq!(
            resync_at(&mut core, &mut shadow, 310),
            [
                "log warn",
                "event resync BTC/USD",
                "send unsubscribe book BTC/USD",
                "log warn"
            ]
        );
        assert!(core.tick(at(311)).is_empty());
        assert_eq!(
            summary(&core.tick(at(312))),
            ["send subscribe book BTC/USD"]
        );
        // Ten quiet minutes later the count has dropped and it starts over.
        assert_eq!(resync_at(&mut core, &mut shadow, 1000), now_sub);
        assert_eq!(core.recent_resyncs(), 1);
        // Four spread over more than ten minutes never alert.
        let mut core = public(&[Channel::Book], &["BTC/USD"], 10);
        feed(&mut core, &status("online"), at(0));
        core.subscribe(at(0));
        for t in [0, 250, 500, 750, 1000] {
            let s = resync_at(&mut core, &mut shadow, t);
            assert!(!s.iter().any(|x| x.starts_with("alert")), "at {t}: {s:?}");
        }
        // The alert names the feed and the symbol.
        let mut core = public(&[Channel::Book], &["BTC/USD"], 10);
        feed(&mut core, &status("online"), at(0));
        core.subscribe(at(0));
        let mut alert = None;
        for t in 0..4 {
            let snap = book_msg(&mut shadow, "snapshot", "BTC/USD", &[("1.0", "1")], &[], 3);
            for a in core.receive(Inbound::Text(&snap), at(t)) {
                if let Action::Alert(a) = a {
                    alert = Some(a);
                }
            }
        }
        assert_eq!(
            alert.unwrap().to_string(),
            "alert=book_resync feed=kbook symbol=BTC/USD resyncs=4 window=10m"
        );
    }

    #[test]
    fn private_feeds_send_the_token_and_a_refused_token_is_auth() {
        let mut core = private(&[Channel::Executions, Channel::Balances]);
        feed(&mut core, &status("online"), at(0));
        let subs = core.subscribe(at(0));
        assert_eq!(
            summary(&subs),
            ["send subscribe executions", "send subscribe balances"]
        );
        for s in &subs {
            let Action::Send(Outbound::Text(t)) = s else {
                panic!()
            };
            let v: Value = serde_json::from_str(t.expose()).unwrap();
            assert_eq!(v["params"]["token"], CANARY_TOKEN);
            assert!(v["params"].get("symbol").is_none());
            assert!(
                !format!("{s:?}").contains(CANARY_TOKEN),
                "Debug shows the token"
            );
        }
        let table: &[(&str, &[&str])] = &[
            (
                r#"{"method":"subscribe","result":{"channel":"executions","snapshot":true},"success":true,"req_id":1}"#,
                &["passed auth", "subscribed executions"],
            ),
            (
                r#"{"method":"subscribe","result":{"channel":"balances","snapshot":true},"success":true,"req_id":2}"#,
                &["subscribed balances"],
            ),
            (
                r#"{"channel":"executions","type":"snapshot","data":[]}"#,
                &["data"],
            ),
            (
                r#"{"channel":"balances","type":"update","data":[{"asset":"BTC","balance":1.5}]}"#,
                &["data"],
            ),
        ];
        for (msg, want) in table {
            assert_eq!(feed(&mut core, msg, at(1)), *want, "{msg}");
        }
        for refusal in [
            r#"{"error":"EAccess:Invalid token","method":"subscribe","success":false,"req_id":1}"#,
            r#"{"error":"ESession:Invalid session","method":"subscribe","success":false}"#,
            r#"{"error":"EGeneral:Permission denied","method":"subscribe","success":false,"req_id":2}"#,
        ] {
            let mut core = private(&[Channel::Executions, Channel::Balances]);
            feed(&mut core, &status("online"), at(0));
            core.subscribe(at(0));
            let out = core.receive(Inbound::Text(refusal), at(1));
            let [Action::Fail(e)] = out.as_slice() else {
                panic!("{out:?}")
            };
            assert_eq!(e.class, ErrorClass::Auth, "{refusal}");
            assert_eq!(e.layer, Some(Layer::Auth));
            assert!(e.message.contains("WebSocket token"), "{e}");
            assert!(!e.message.contains(CANARY_TOKEN));
        }
    }

    #[test]
    fn malformed_input_is_a_protocol_error_never_a_panic() {
        let mut core = public(&[Channel::Book], &["BTC/USD"], 10);
        feed(&mut core, &status("online"), at(0));
        core.subscribe(at(0));
        for msg in [
            "",
            "not json",
            "[1,2]",
            "42",
            r#"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":1e5,"qty":1}],"checksum":1}]}"#,
            r#"{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","checksum":99999999999}]}"#,
            r#"{"channel":"book"}"#,
        ] {
            assert_eq!(feed(&mut core, msg, at(1)), ["fail protocol"], "{msg:?}");
        }
        // Fields of unexpected types are read leniently, not fatal.
        for msg in [
            r#"{"method":7}"#,
            r#"{"method":"pong","req_id":-1}"#,
            r#"{"method":"pong","req_id":"2"}"#,
            r#"{"channel":["book"]}"#,
        ] {
            assert_eq!(feed(&mut core, msg, at(1)), ["log debug"], "{msg:?}");
        }
        let out = core.receive(Inbound::Binary(b"\x00\x01"), at(1));
        assert_eq!(summary(&out), ["fail protocol"]);
        let out = core.receive(Inbound::Frame(b"x"), at(1));
        assert_eq!(summary(&out), ["fail protocol"]);
    }
}
