//! The Alpaca market-data protocol core (PROTOCOLS.md §2.2): `v2/iex`,
//! `v2/sip`, `v1beta3/crypto/us` and `v2/test`. Pure: messages and time
//! in, [`Action`]s out.
//!
//! | what arrives | actions |
//! | --- | --- |
//! | `[{"T":"success","msg":"connected"}]` | `LayerPassed{handshake}`, the auth message (within Alpaca's 10 s) |
//! | `[{"T":"success","msg":"authenticated"}]` | `LayerPassed{auth}`, `Ready` |
//! | subscribe (after `Ready`) | one `{"action":"subscribe",<channel>:[symbols],…}` |
//! | `[{"T":"subscription",…}]` | compared with what was asked: `Subscribed` (not data), or a config error naming the missing symbol |
//! | `[{"T":"error",…}]` | [`errors::outcome`]: the code's class, alert, remedy |
//! | `[{…},{…},…]` data (`t`,`q`,`b`,`d`,`u`,`s`,`l`,`o`,…) | one `Data` per message, in order: batched frames become one line each |
//! | a binary frame | the same, read as UTF-8 JSON (MessagePack is not asked for) |
//! | timer | a WebSocket ping every 10 s (or `ping_every` if shorter); no pong within 5 s (or `pong_timeout`) → stalled |
//!
//! Only trades, quotes, bars and the other market messages are data:
//! `success` and `subscription` answers are acknowledgements, so a feed
//! is live only once the market says something.

use super::errors::{self, ErrorContext, Outcome, ReadFigures};
use super::settings::{Channel, PING_EVERY, PONG_TIMEOUT, Plan};
use crate::clock::Mono;
use crate::feed::{Action, FeedError, Inbound, Layer, Outbound, ProtocolCore};
use crate::peertext::short;
use crate::secret::Secret;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Messages are counted over windows this long for the recent rate.
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// What a feed's cores share across connections (its adapter holds it).
#[derive(Debug, Default)]
pub struct FeedMemory {
    /// 406s in a row; back to zero once a subscription is confirmed.
    pub limit_strikes: AtomicU32,
}

/// Who the feed is, for its messages and its auth.
#[derive(Clone)]
pub struct Identity {
    pub feed: String,
    pub key_id: Secret,
    pub secret: Secret,
    /// The credentials' names, for fixes.
    pub key_name: String,
    pub secret_name: String,
}

impl Identity {
    /// `{"action":"auth","key":…,"secret":…}`.
    pub fn auth_message(&self) -> Secret {
        Secret::new(
            serde_json::json!({
                "action": "auth",
                "key": self.key_id.expose(),
                "secret": self.secret.expose(),
            })
            .to_string(),
        )
    }

    /// The auth message as it may be shown (a 400/401/403 report): the key
    /// as its fingerprint, the secret left out.
    pub fn auth_shown(&self) -> String {
        format!(
            r#"{{"action":"auth","key":"<{}>","secret":"<redacted>"}}"#,
            self.key_id.fingerprint()
        )
    }
}

/// The WebSocket keepalive Alpaca's own client runs: a ping every
/// `every`, its pong due within `timeout`. Driven by the core's `tick`.
#[derive(Clone, Debug)]
pub struct Keepalive {
    every: Duration,
    timeout: Duration,
    next: Option<Mono>,
    waiting_since: Option<Mono>,
}

impl Keepalive {
    /// Alpaca's 10 s / 5 s, or the feed's `ping_every` / `pong_timeout`
    /// where those are shorter.
    pub fn new(ping_every: Duration, pong_timeout: Duration) -> Self {
        Keepalive {
            every: ping_every.min(PING_EVERY),
            timeout: pong_timeout.min(PONG_TIMEOUT),
            next: None,
            waiting_since: None,
        }
    }

    /// What is due at `now`: a ping, or the stall of an unanswered one.
    pub fn tick(&mut self, now: Mono) -> Option<Action> {
        if let Some(since) = self.waiting_since {
            if now.since(since) >= self.timeout {
                self.waiting_since = None;
                return Some(Action::Fail(
                    FeedError::stalled(format!(
                        "no pong within {} of a WebSocket ping: the connection to Alpaca is dead",
                        crate::timefmt::human(self.timeout)
                    ))
                    .at(Layer::Data),
                ));
            }
            return None;
        }
        let next = *self.next.get_or_insert(now.plus(self.every));
        if now >= next {
            self.waiting_since = Some(now);
            self.next = Some(now.plus(self.every));
            return Some(Action::Send(Outbound::Ping));
        }
        None
    }

    /// Pings now (the trading stream's first proof of life), the next
    /// one `every` later.
    pub fn ping_now(&mut self, now: Mono) -> Action {
        self.waiting_since = Some(now);
        self.next = Some(now.plus(self.every));
        Action::Send(Outbound::Ping)
    }

    pub fn pong(&mut self) {
        self.waiting_since = None;
    }
}

/// `text` on one line: a message that holds a line break (pretty-printed
/// JSON) is written again compactly, so a fan-out line stays one line.
pub fn one_line(text: &str) -> Cow<'_, str> {
    if !text.contains(['\n', '\r']) {
        return Cow::Borrowed(text.trim());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v) => Cow::Owned(v.to_string()),
        Err(_) => Cow::Owned(text.replace(['\n', '\r'], " ")),
    }
}

/// The fields of a message that routing needs (the rest is skipped).
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "T", borrow)]
    t: Option<Cow<'a, str>>,
    #[serde(borrow)]
    msg: Option<Cow<'a, str>>,
    code: Option<u16>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Waiting for `connected`.
    Greeting,
    /// Auth sent; waiting for `authenticated`.
    Authenticating,
    Ready,
}

/// The core of one market-data connection.
pub struct AlpacaCore {
    who: Arc<Identity>,
    plan: Arc<Plan>,
    memory: Arc<FeedMemory>,
    stage: Stage,
    /// The first subscription answer has been checked.
    confirmed: bool,
    last_sent: Option<String>,
    keepalive: Keepalive,
    reads: ReadFigures,
    window_start: Option<Mono>,
    window_count: u64,
}

impl AlpacaCore {
    pub fn new(
        who: Arc<Identity>,
        plan: Arc<Plan>,
        memory: Arc<FeedMemory>,
        keepalive: Keepalive,
        read_buffer: usize,
        max_message: usize,
    ) -> Self {
        AlpacaCore {
            who,
            plan,
            memory,
            stage: Stage::Greeting,
            confirmed: false,
            last_sent: None,
            keepalive,
            reads: ReadFigures {
                read_buffer,
                max_message,
                ..ReadFigures::default()
            },
            window_start: None,
            window_count: 0,
        }
    }

    fn feed(&self) -> &str {
        &self.who.feed
    }

    /// The subscribe message: every channel with every symbol.
    pub fn subscribe_message(plan: &Plan) -> String {
        let mut m = Map::new();
        m.insert("action".into(), "subscribe".into());
        for c in &plan.channels {
            m.insert(c.as_str().into(), plan.symbols.clone().into());
        }
        Value::Object(m).to_string()
    }

    fn count(&mut self, now: Mono, messages: u64, bytes: usize) {
        let r = &mut self.reads;
        r.frames += 1;
        r.messages += messages;
        r.bytes += bytes as u64;
        r.largest_frame = r.largest_frame.max(bytes as u64);
        let start = *self.window_start.get_or_insert(now);
        if now.since(start) >= RATE_WINDOW {
            r.recent_rate = self.window_count / RATE_WINDOW.as_secs().max(1);
            self.window_start = Some(now);
            self.window_count = 0;
        }
        self.window_count += messages;
    }

    fn on_frame(&mut self, text: &str, now: Mono) -> Vec<Action> {
        let trimmed = text.trim_start();
        let items: Vec<&RawValue> = if trimmed.starts_with('[') {
            match serde_json::from_str(text) {
                Ok(v) => v,
                Err(e) => return vec![self.unreadable(text.len(), &e.to_string())],
            }
        } else if trimmed.starts_with('{') {
            // Alpaca always sends arrays; a lone object is read as one.
            match serde_json::from_str(text) {
                Ok(v) => vec![v],
                Err(e) => return vec![self.unreadable(text.len(), &e.to_string())],
            }
        } else {
            return vec![self.unreadable(text.len(), "not a JSON array")];
        };
        self.count(now, items.len() as u64, text.len());
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let head: Head<'_> = match serde_json::from_str(item.get()) {
                Ok(h) => h,
                Err(_) => {
                    out.push(Action::Log {
                        level: log::Level::Warn,
                        message: format!(
                            "feed {}: Alpaca sent an element that is not an object ({} bytes); skipped",
                            self.feed(),
                            item.get().len()
                        ),
                    });
                    continue;
                }
            };
            match head.t.as_deref() {
                Some("success") => self.on_success(head.msg.as_deref().unwrap_or(""), &mut out),
                Some("error") => {
                    self.on_error(head.code, head.msg.as_deref().unwrap_or(""), &mut out)
                }
                Some("subscription") => self.on_subscription(item.get(), &mut out),
                Some(_) => out.push(Action::Data(one_line(item.get()).into_owned())),
                None => out.push(Action::Log {
                    level: log::Level::Debug,
                    message: format!(
                        "feed {}: ignored a message without \"T\" ({} bytes)",
                        self.feed(),
                        item.get().len()
                    ),
                }),
            }
            if matches!(out.last(), Some(Action::Fail(_))) {
                break;
            }
        }
        out
    }

    fn unreadable(&self, len: usize, why: &str) -> Action {
        Action::Fail(FeedError::protocol(format!(
            "feed {}: Alpaca sent a frame brokerguard cannot read ({len} bytes: {})",
            self.feed(),
            short(why)
        )))
    }

    fn on_success(&mut self, msg: &str, out: &mut Vec<Action>) {
        match (msg, self.stage) {
            ("connected", Stage::Greeting) => {
                out.push(Action::LayerPassed {
                    layer: Layer::Handshake,
                    detail: format!("Alpaca {} stream said connected", self.plan.stream),
                });
                self.last_sent = Some(self.who.auth_shown());
                out.push(Action::Send(Outbound::Text(self.who.auth_message())));
                self.stage = Stage::Authenticating;
            }
            ("authenticated", Stage::Authenticating | Stage::Greeting) => {
                out.push(Action::LayerPassed {
                    layer: Layer::Auth,
                    detail: format!("Alpaca accepted key {}", self.who.key_id.fingerprint()),
                });
                out.push(Action::Ready);
                self.stage = Stage::Ready;
            }
            (other, _) => out.push(Action::Log {
                level: log::Level::Debug,
                message: format!("feed {}: Alpaca said {}", self.feed(), short(other)),
            }),
        }
    }

    fn on_error(&mut self, code: Option<u16>, msg: &str, out: &mut Vec<Action>) {
        let stream = self.plan.stream.as_str();
        let ctx = ErrorContext {
            feed: &self.who.feed,
            key_name: &self.who.key_name,
            secret_name: &self.who.secret_name,
            stream,
            paper: self.plan.paper,
            last_sent: self.last_sent.as_deref(),
            limit_strikes: self.memory.limit_strikes.load(Ordering::Relaxed),
            reads: self.reads,
        };
        match errors::outcome(code.unwrap_or(0), msg, &ctx) {
            Outcome::Fail { error, alert } => {
                if code == Some(406) {
                    self.memory.limit_strikes.fetch_add(1, Ordering::Relaxed);
                }
                let error = if self.stage == Stage::Ready && error.layer == Some(Layer::Auth) {
                    // After auth, a refusal is about the subscription.
                    FeedError {
                        layer: Some(Layer::Data),
                        ..error
                    }
                } else {
                    error
                };
                out.extend(alert.map(Action::Alert));
                out.push(Action::Fail(error));
            }
            Outcome::Report { message } => {
                out.push(Action::Log {
                    level: log::Level::Warn,
                    message,
                });
                out.push(Action::event(
                    "slow_client",
                    &[
                        ("code", 407.into()),
                        ("messages", self.reads.messages.into()),
                        ("recent_rate", self.reads.recent_rate.into()),
                    ],
                ));
            }
        }
    }

    /// Compares the subscription answer with what was asked: a symbol
    /// Alpaca left out is a configuration error naming it.
    fn on_subscription(&mut self, raw: &str, out: &mut Vec<Action>) {
        if self.confirmed {
            out.push(Action::Log {
                level: log::Level::Debug,
                message: format!("feed {}: Alpaca restated the subscription", self.feed()),
            });
            return;
        }
        let answer: Map<String, Value> = serde_json::from_str(raw).unwrap_or_default();
        let missing = missing_from(&self.plan, &answer);
        if missing.is_empty() {
            self.confirmed = true;
            self.memory.limit_strikes.store(0, Ordering::Relaxed);
            out.push(Action::Subscribed {
                detail: format!(
                    "{} {} on {}",
                    self.plan
                        .channels
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    self.plan.symbols.join(","),
                    self.plan.stream
                ),
            });
            return;
        }
        let list: Vec<String> = missing
            .iter()
            .map(|(c, s)| format!("{c} {}", short(s)))
            .collect();
        let symbols: Vec<&str> = {
            let mut v: Vec<&str> = missing.iter().map(|(_, s)| s.as_str()).collect();
            v.dedup();
            v
        };
        out.push(Action::Fail(
            FeedError::config(format!(
                "feed {}: Alpaca did not subscribe {} on the {} stream: {} unknown there or \
                 not in the plan; correct or remove {} in `symbols`",
                self.feed(),
                list.join(", "),
                self.plan.stream,
                if symbols.len() == 1 {
                    "the symbol is"
                } else {
                    "the symbols are"
                },
                symbols
                    .iter()
                    .map(|s| format!("\"{}\"", short(s)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .at(Layer::Data),
        ));
    }
}

/// Every (channel, symbol) asked for that the subscription answer lacks
/// (a `*` in the answer covers every symbol of its channel).
pub fn missing_from(plan: &Plan, answer: &Map<String, Value>) -> Vec<(Channel, String)> {
    let mut out = Vec::new();
    for c in &plan.channels {
        let got: Vec<&str> = answer
            .get(c.as_str())
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for s in &plan.symbols {
            if !got.contains(&s.as_str()) && !got.contains(&"*") {
                out.push((*c, s.clone()));
            }
        }
    }
    out
}

impl ProtocolCore for AlpacaCore {
    fn open(&mut self, _now: Mono) -> Vec<Action> {
        // Alpaca speaks first: `connected`, then we authenticate.
        Vec::new()
    }

    fn subscribe(&mut self, _now: Mono) -> Vec<Action> {
        let msg = Self::subscribe_message(&self.plan);
        self.last_sent = Some(msg.clone());
        vec![Action::send_text(msg)]
    }

    fn receive(&mut self, msg: Inbound<'_>, now: Mono) -> Vec<Action> {
        match msg {
            Inbound::Text(t) => self.on_frame(t, now),
            Inbound::Binary(b) | Inbound::Frame(b) => match std::str::from_utf8(b) {
                Ok(t) => self.on_frame(t, now),
                Err(_) => vec![self.unreadable(
                    b.len(),
                    "a binary frame that is not UTF-8 JSON (MessagePack was not asked for)",
                )],
            },
            Inbound::Pong => {
                self.keepalive.pong();
                Vec::new()
            }
        }
    }

    fn not_ready(&self, waited: Duration) -> FeedError {
        let waited = crate::timefmt::human(waited);
        match self.stage {
            Stage::Greeting => FeedError::timeout(format!(
                "timeout (handshake): Alpaca did not say \"connected\" within {waited} of the \
                 upgrade; is `url` an Alpaca stream (wss://stream.data.alpaca.markets/v2/iex)?"
            ))
            .at(Layer::Handshake),
            _ => FeedError::timeout(format!(
                "timeout (auth): no answer to the authentication within {waited}"
            ))
            .at(Layer::Auth),
        }
    }

    fn has_keepalive(&self) -> bool {
        // The core pings on its own clock (tick): Alpaca's 10 s / 5 s.
        false
    }

    fn keepalive(&mut self, _now: Mono) -> Vec<Action> {
        Vec::new()
    }

    fn tick(&mut self, now: Mono) -> Vec<Action> {
        self.keepalive.tick(now).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brokers::alpaca::settings::Stream;

    pub(crate) const CANARY_KEY: &str = "PKCANARYKEY000000001";
    pub(crate) const CANARY_SECRET: &str = "canary-secret-5b1e-do-not-print-anywhere";

    pub(crate) fn identity() -> Arc<Identity> {
        Arc::new(Identity {
            feed: "stocks".into(),
            key_id: Secret::new(CANARY_KEY),
            secret: Secret::new(CANARY_SECRET),
            key_name: "ALPACA_MAIN_API_KEY_ID".into(),
            secret_name: "ALPACA_MAIN_API_SECRET_KEY".into(),
        })
    }

    fn plan(stream: Stream, channels: &[Channel], symbols: &[&str]) -> Arc<Plan> {
        Arc::new(Plan {
            stream,
            channels: channels.to_vec(),
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            paper: false,
        })
    }

    fn core(p: Arc<Plan>) -> (AlpacaCore, Arc<FeedMemory>) {
        let memory = Arc::new(FeedMemory::default());
        let c = AlpacaCore::new(
            identity(),
            p,
            memory.clone(),
            Keepalive::new(Duration::from_secs(15), Duration::from_secs(10)),
            4096,
            1 << 20,
        );
        (c, memory)
    }

    fn at(s: u64) -> Mono {
        Mono(Duration::from_secs(s))
    }

    /// One line per action, so a table can say what it expects.
    fn summary(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::Send(Outbound::Text(t)) => {
                    let v: Value = serde_json::from_str(t.expose()).unwrap();
                    format!("send {}", v["action"].as_str().unwrap())
                }
                Action::Send(Outbound::Ping) => "ping".into(),
                Action::Send(o) => format!("send {o:?}"),
                Action::Data(d) => format!("data {d}"),
                Action::LayerPassed { layer, .. } => format!("passed {layer}"),
                Action::Ready => "ready".into(),
                Action::Subscribed { .. } => "subscribed".into(),
                Action::Fail(e) => format!("fail {}", e.class.as_str()),
                Action::Alert(a) => format!("alert {}", a.kind),
                Action::Log { level, .. } => format!("log {}", level.as_str().to_lowercase()),
                Action::Event { name, .. } => format!("event {name}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    fn connected() -> &'static str {
        r#"[{"T":"success","msg":"connected"}]"#
    }

    fn authenticated() -> &'static str {
        r#"[{"T":"success","msg":"authenticated"}]"#
    }

    /// A core that has connected, authenticated and subscribed.
    fn subscribed(p: Arc<Plan>, answer: &str) -> (AlpacaCore, Vec<Action>) {
        let (mut c, _) = core(p);
        c.receive(Inbound::Text(connected()), at(0));
        c.receive(Inbound::Text(authenticated()), at(0));
        c.subscribe(at(0));
        let out = c.receive(Inbound::Text(answer), at(0));
        (c, out)
    }

    #[test]
    fn connected_auth_subscribe_flow() {
        let p = plan(
            Stream::Iex,
            &[Channel::Trades, Channel::Quotes],
            &["AAPL", "MSFT"],
        );
        let (mut c, _) = core(p);
        assert!(c.open(at(0)).is_empty());
        let out = c.receive(Inbound::Text(connected()), at(0));
        assert_eq!(summary(&out), ["passed handshake", "send auth"]);
        let Action::Send(Outbound::Text(auth)) = &out[1] else {
            panic!()
        };
        let v: Value = serde_json::from_str(auth.expose()).unwrap();
        assert_eq!(v["key"], CANARY_KEY);
        assert_eq!(v["secret"], CANARY_SECRET);
        let out = c.receive(Inbound::Text(authenticated()), at(1));
        assert_eq!(summary(&out), ["passed auth", "ready"]);
        let out = c.subscribe(at(1));
        let Action::Send(Outbound::Text(sub)) = &out[0] else {
            panic!()
        };
        let v: Value = serde_json::from_str(sub.expose()).unwrap();
        assert_eq!(v["action"], "subscribe");
        assert_eq!(v["trades"], serde_json::json!(["AAPL", "MSFT"]));
        assert_eq!(v["quotes"], serde_json::json!(["AAPL", "MSFT"]));
        // The answer is an acknowledgement, not data.
        let out = c.receive(
            Inbound::Text(
                r#"[{"T":"subscription","trades":["AAPL","MSFT"],"quotes":["AAPL","MSFT"],"bars":[],"corrections":["AAPL","MSFT"]}]"#,
            ),
            at(1),
        );
        assert_eq!(summary(&out), ["subscribed"]);
    }

    #[test]
    fn a_symbol_missing_from_the_subscription_is_a_configuration_error() {
        let p = plan(Stream::Sip, &[Channel::Trades], &["AAPL", "ZZZQ"]);
        let (_, out) = subscribed(
            p.clone(),
            r#"[{"T":"subscription","trades":["AAPL"],"quotes":[],"bars":[]}]"#,
        );
        assert_eq!(summary(&out), ["fail config"]);
        let Action::Fail(e) = &out[0] else { panic!() };
        assert!(e.message.contains("did not subscribe trades ZZZQ"), "{e}");
        assert!(e.message.contains("remove \"ZZZQ\" in `symbols`"), "{e}");
        // "*" covers every symbol.
        let (_, out) = subscribed(p, r#"[{"T":"subscription","trades":["*"]}]"#);
        assert_eq!(summary(&out), ["subscribed"]);
    }

    #[test]
    fn batched_arrays_become_one_line_each_with_nothing_lost() {
        let p = plan(Stream::Iex, &[Channel::Trades, Channel::Bars], &["AAPL"]);
        let (mut c, _) = subscribed(
            p,
            r#"[{"T":"subscription","trades":["AAPL"],"bars":["AAPL"]}]"#,
        );
        let batch = r#"[{"T":"t","S":"AAPL","i":1,"x":"V","p":126.55,"s":1,"t":"2021-02-22T15:51:44.208Z","c":["@","I"],"z":"C"},
{"T":"q","S":"AAPL","bx":"V","bp":126.5,"bs":1,"ax":"V","ap":126.6,"as":2,"t":"2021-02-22T15:51:44.209Z","c":["R"],"z":"C"},
  {"T":"b","S":"AAPL","o":126.5,"h":126.6,"l":126.4,"c":126.55,"v":100,"t":"2021-02-22T15:51:00Z","n":3,"vw":126.5}]"#;
        let out = c.receive(Inbound::Text(batch), at(2));
        let data: Vec<&String> = out
            .iter()
            .filter_map(|a| match a {
                Action::Data(d) => Some(d),
                _ => None,
            })
            .collect();
        assert_eq!(data.len(), 3, "{out:?}");
        let types: Vec<String> = data
            .iter()
            .map(|d| {
                assert!(!d.contains('\n'), "one line: {d}");
                serde_json::from_str::<Value>(d).unwrap()["T"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(types, ["t", "q", "b"]);
        // Every field arrived, in Alpaca's order.
        assert!(data[0].starts_with(r#"{"T":"t","S":"AAPL","i":1"#));
        assert!(data[0].ends_with(r#""z":"C"}"#));
        // The same in a binary frame.
        let out = c.receive(Inbound::Binary(batch.as_bytes()), at(3));
        assert_eq!(
            out.iter().filter(|a| matches!(a, Action::Data(_))).count(),
            3
        );
        // Three control messages before, and the batch twice.
        assert_eq!(c.reads.messages, 9);
    }

    #[test]
    fn error_codes_end_the_connection_with_their_class() {
        let p = plan(Stream::Sip, &[Channel::Trades], &["AAPL"]);
        let rows: &[(u16, &[&str])] = &[
            (402, &["fail auth"]),
            (404, &["fail network"]),
            (405, &["fail config"]),
            (406, &["alert connection_limit", "fail rate_limited"]),
            (407, &["log warn", "event slow_client"]),
            (408, &["fail config"]),
            (409, &["fail config"]),
            (410, &["fail config"]),
            (411, &["fail config"]),
            (500, &["fail network"]),
            (400, &["fail protocol"]),
            (401, &["fail protocol"]),
            (403, &["fail protocol"]),
        ];
        for (code, want) in rows {
            let (mut c, _) = core(p.clone());
            c.receive(Inbound::Text(connected()), at(0));
            let err = format!(r#"[{{"T":"error","code":{code},"msg":"x"}}]"#);
            let out = c.receive(Inbound::Text(&err), at(0));
            assert_eq!(summary(&out), *want, "{code}");
        }
    }

    #[test]
    fn protocol_bugs_show_the_message_sent_without_the_secret() {
        let p = plan(Stream::Iex, &[Channel::Trades], &["AAPL"]);
        let (mut c, _) = core(p.clone());
        c.receive(Inbound::Text(connected()), at(0));
        let out = c.receive(
            Inbound::Text(r#"[{"T":"error","code":400,"msg":"invalid syntax"}]"#),
            at(0),
        );
        let Action::Fail(e) = &out[0] else { panic!() };
        assert!(e.message.contains(r#""action":"auth""#), "{e}");
        assert!(!e.message.contains(CANARY_SECRET) && !e.message.contains(CANARY_KEY));
        // After subscribing, the subscribe message is the one shown.
        let (mut c, _) = subscribed(p, r#"[{"T":"subscription","trades":["AAPL"]}]"#);
        let out = c.receive(
            Inbound::Text(r#"[{"T":"error","code":401,"msg":"not authenticated"}]"#),
            at(0),
        );
        let Action::Fail(e) = &out[0] else { panic!() };
        assert!(
            e.message
                .contains(r#"{"action":"subscribe","trades":["AAPL"]}"#),
            "{e}"
        );
    }

    #[test]
    fn repeated_406_waits_longer_and_a_subscription_resets_it() {
        let p = plan(Stream::Iex, &[Channel::Trades], &["AAPL"]);
        let memory = Arc::new(FeedMemory::default());
        let waits: Vec<Duration> = (0..3)
            .map(|_| {
                let mut c = AlpacaCore::new(
                    identity(),
                    p.clone(),
                    memory.clone(),
                    Keepalive::new(PING_EVERY, PONG_TIMEOUT),
                    4096,
                    1024,
                );
                c.receive(Inbound::Text(connected()), at(0));
                let out = c.receive(
                    Inbound::Text(
                        r#"[{"T":"error","code":406,"msg":"connection limit exceeded"}]"#,
                    ),
                    at(0),
                );
                match out.last() {
                    Some(Action::Fail(FeedError {
                        class:
                            crate::feed::ErrorClass::RateLimited {
                                retry_after: Some(d),
                            },
                        ..
                    })) => *d,
                    other => panic!("{other:?}"),
                }
            })
            .collect();
        assert_eq!(waits, [90, 180, 360].map(Duration::from_secs));
        let mut c = AlpacaCore::new(
            identity(),
            p,
            memory.clone(),
            Keepalive::new(PING_EVERY, PONG_TIMEOUT),
            4096,
            1024,
        );
        c.receive(Inbound::Text(connected()), at(0));
        c.receive(Inbound::Text(authenticated()), at(0));
        c.subscribe(at(0));
        c.receive(
            Inbound::Text(r#"[{"T":"subscription","trades":["AAPL"]}]"#),
            at(0),
        );
        assert_eq!(memory.limit_strikes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn pings_every_10s_and_stalls_without_a_pong_within_5s() {
        let mut k = Keepalive::new(Duration::from_secs(15), Duration::from_secs(10));
        assert_eq!(k.tick(at(100)), None);
        assert_eq!(k.tick(at(109)), None);
        assert_eq!(k.tick(at(110)), Some(Action::Send(Outbound::Ping)));
        assert_eq!(k.tick(at(114)), None);
        k.pong();
        assert_eq!(k.tick(at(119)), None);
        assert_eq!(k.tick(at(120)), Some(Action::Send(Outbound::Ping)));
        match k.tick(at(125)) {
            Some(Action::Fail(e)) => {
                assert_eq!(e.class, crate::feed::ErrorClass::Stalled);
                assert!(e.message.contains("no pong within 5s"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        // A feed's shorter settings win.
        let mut k = Keepalive::new(Duration::from_secs(2), Duration::from_secs(1));
        k.tick(at(0));
        assert_eq!(k.tick(at(2)), Some(Action::Send(Outbound::Ping)));
        assert!(matches!(k.tick(at(3)), Some(Action::Fail(_))));
    }

    #[test]
    fn garbage_is_a_protocol_error_and_timeouts_name_the_step() {
        let p = plan(Stream::Test, &[Channel::Trades], &["FAKEPACA"]);
        let (mut c, _) = core(p);
        assert_eq!(
            summary(&c.receive(Inbound::Text("hello"), at(0))),
            ["fail protocol"]
        );
        assert_eq!(
            summary(&c.receive(Inbound::Binary(&[0x91, 0x81, 0xa1]), at(0))),
            ["fail protocol"]
        );
        let e = c.not_ready(Duration::from_secs(10));
        assert_eq!(e.layer, Some(Layer::Handshake));
        c.receive(Inbound::Text(connected()), at(0));
        let e = c.not_ready(Duration::from_secs(10));
        assert_eq!(e.layer, Some(Layer::Auth));
        assert!(e.is_timeout());
    }

    #[test]
    fn one_line_keeps_compact_text_and_compacts_pretty_text() {
        assert_eq!(one_line(r#"{"a":1}"#), r#"{"a":1}"#);
        assert_eq!(one_line("{\n  \"a\": 1\n}"), r#"{"a":1}"#);
    }
}
