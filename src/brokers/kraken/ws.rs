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
use super::config::{Channel, PrivatePlan, PublicPlan};
use crate::alert::{Alert, AlertKind};
use crate::clock::Mono;
use crate::credentials::Secret;
use crate::feed::error::sanitize;
use crate::feed::{Action, ErrorClass, FeedError, Inbound, Layer, Outbound, ProtocolCore};
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

/// The fields of any v2 message that routing needs (the rest is skipped).
#[derive(Deserialize)]
struct Envelope {
    channel: Option<String>,
    method: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    success: Option<bool>,
    req_id: Option<u64>,
    error: Option<Value>,
    symbol: Option<Value>,
    result: Option<Value>,
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
            message: format!("Kraken system status: {about}{}", meaning(&system)),
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
            .or_else(|| env.req_id.and_then(|id| self.requests.get(&id).copied()));
        let symbol = result
            .and_then(|r| r.get("symbol"))
            .or(env.symbol.as_ref())
            .and_then(Value::as_str)
            .map(sanitize)
            .unwrap_or_default();
        if env.success == Some(true) {
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
        let error = env
            .error
            .as_ref()
            .map(|e| match e {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .map(|e| sanitize(&e))
            .unwrap_or_else(|| "no reason given".into());
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
        let env: Envelope = match serde_json::from_str(text) {
            Ok(e) => e,
            Err(_) => {
                return vec![Action::Fail(FeedError::protocol(format!(
                    "feed {}: Kraken sent a message that is not a JSON object ({} bytes)",
                    self.feed,
                    text.len()
                )))];
            }
        };
        let mut out = Vec::new();
        if let Some(method) = env.method.as_deref() {
            match method {
                "pong" => {
                    if env.req_id.is_some() && env.req_id == self.ping_outstanding {
                        self.ping_outstanding = None;
                        out.push(Action::Pong);
                    } else {
                        out.push(Action::Log {
                            level: log::Level::Debug,
                            message: format!("pong for req_id {:?}, not the last ping", env.req_id),
                        });
                    }
                }
                "subscribe" => self.on_subscribe_ack(&env, &mut out),
                "unsubscribe" if env.success == Some(false) => out.push(Action::Log {
                    level: log::Level::Warn,
                    message: format!(
                        "feed {}: Kraken refused an unsubscribe: {}",
                        self.feed,
                        env.error
                            .as_ref()
                            .map(|e| sanitize(&e.to_string()))
                            .unwrap_or_default()
                    ),
                }),
                _ => {}
            }
            return out;
        }
        match env.channel.as_deref() {
            Some("heartbeat") => out.push(Action::Heartbeat),
            Some("status") => self.on_status(text, &mut out),
            Some("book") if !self.is_private() => self.on_book(text, now, &mut out),
            Some(_) => out.push(Action::Data(text.to_string())),
            None if env.error.is_some() => out.push(Action::Log {
                level: log::Level::Warn,
                message: format!(
                    "feed {}: Kraken error: {}",
                    self.feed,
                    env.error
                        .as_ref()
                        .map(|e| sanitize(&e.to_string()))
                        .unwrap_or_default()
                ),
            }),
            None => out.push(Action::Log {
                level: log::Level::Debug,
                message: format!(
                    "feed {}: ignored a message without channel or method (type {:?})",
                    self.feed, env.kind
                ),
            }),
        }
        out
    }

    fn not_ready(&self, waited: Duration) -> FeedError {
        FeedError::network(format!(
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
