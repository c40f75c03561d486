//! The KiteTicker protocol core: what one ticker connection says and how
//! each message it receives maps to actions (see `crate::feed::protocol`).
//!
//! | what happens | actions |
//! | --- | --- |
//! | upgrade accepted (auth is in the URL) | `LayerPassed{auth}`, `Ready` |
//! | subscribe (after every connect) | `{"a":"subscribe","v":[…]}`, then `{"a":"mode","v":["<mode>",[…]]}` |
//! | binary, 1 byte (or a frame of 0 packets) | `Heartbeat` |
//! | binary, a good frame | `Data(JSON array of ticks)` |
//! | binary, a frame that lies about its lengths | counted, `Log{warn}` (first, then at most once a minute); the connection goes on |
//! | text JSON (`order`, `message`, …) | `Data(the JSON, compacted to one line)` |
//! | text JSON `{"type":"error",…}` | `Log{warn}`, `Data` |
//! | text that is not JSON | counted, `Log{warn}` |
//! | keepalive due | `Send(Ping)` (WebSocket ping); its `Pong` → `Pong` |
//!
//! The upgrade's HTTP refusal is classified by [`classify_upgrade`]: 403 →
//! auth (parked; the engine raises `alert=credential_rejected`), 429 → rate
//! limited with `alert=connection_limit`, never a tight retry loop.
//!
//! The counters (frames, ticks, drops) outlive one connection: the adapter
//! makes one [`TickerCounters`] per feed and hands it to every core.

use super::rest::login_command;
use super::ticker::{self, Decoded, Mode};
use crate::alert::{Alert, AlertKind};
use crate::clock::Mono;
use crate::feed::{Action, ErrorClass, FeedError, Inbound, Layer, Outbound, ProtocolCore};
use crate::peertext::short as sanitize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// After the first dropped frame of a connection, at most one log line per this.
pub const DROP_LOG_EVERY: Duration = Duration::from_secs(60);
/// How long to wait after a 429 when Kite does not say (the key's
/// connections are held elsewhere: retrying sooner changes nothing).
pub const CONNECTION_LIMIT_RETRY: Duration = Duration::from_secs(60);

/// What one ticker feed streams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TickerConfig {
    /// The feed's name (for alerts).
    pub feed: String,
    /// The account, for the remedies in messages (`kite-login --account`).
    pub account: String,
    /// Instrument tokens, in the order configured.
    pub instruments: Vec<u32>,
    pub mode: Mode,
}

/// Parses the `mode` key of a Kite feed.
pub fn parse_mode(s: &str) -> Result<Mode, String> {
    Mode::parse(s).ok_or_else(|| format!("mode \"{s}\" is not one of ltp, quote, full"))
}

/// Counters of one feed's ticker, shared by its cores and read by status.
#[derive(Debug, Default)]
pub struct TickerCounters {
    frames: AtomicU64,
    ticks: AtomicU64,
    heartbeats: AtomicU64,
    frames_dropped: AtomicU64,
    texts: AtomicU64,
    texts_dropped: AtomicU64,
}

/// A copy of [`TickerCounters`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TickerCounts {
    /// Binary frames decoded and forwarded.
    pub frames: u64,
    pub ticks: u64,
    pub heartbeats: u64,
    /// Frames dropped because their lengths lied.
    pub frames_dropped: u64,
    /// Text messages forwarded.
    pub texts: u64,
    /// Text messages dropped because they were not JSON.
    pub texts_dropped: u64,
}

impl TickerCounters {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn snapshot(&self) -> TickerCounts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TickerCounts {
            frames: get(&self.frames),
            ticks: get(&self.ticks),
            heartbeats: get(&self.heartbeats),
            frames_dropped: get(&self.frames_dropped),
            texts: get(&self.texts),
            texts_dropped: get(&self.texts_dropped),
        }
    }

    fn add(a: &AtomicU64, n: u64) -> u64 {
        a.fetch_add(n, Ordering::Relaxed) + n
    }
}

/// The ticker core of one connection.
pub struct TickerCore {
    cfg: Arc<TickerConfig>,
    counters: Arc<TickerCounters>,
    /// When this connection last logged a dropped frame, and how many were
    /// dropped silently since.
    last_drop_log: Option<Mono>,
    drops_unlogged: u64,
}

impl TickerCore {
    pub fn new(cfg: Arc<TickerConfig>, counters: Arc<TickerCounters>) -> Self {
        TickerCore {
            cfg,
            counters,
            last_drop_log: None,
            drops_unlogged: 0,
        }
    }

    /// `{"a":"subscribe","v":[…]}`: tokens as JSON numbers.
    pub fn subscribe_message(instruments: &[u32]) -> String {
        json!({"a": "subscribe", "v": instruments}).to_string()
    }

    /// `{"a":"mode","v":["full",[…]]}`.
    pub fn mode_message(mode: Mode, instruments: &[u32]) -> String {
        json!({"a": "mode", "v": [mode.as_str(), instruments]}).to_string()
    }

    fn on_binary(&mut self, frame: &[u8], now: Mono) -> Vec<Action> {
        match ticker::decode(frame) {
            Ok(Decoded::Heartbeat) => {
                TickerCounters::add(&self.counters.heartbeats, 1);
                vec![Action::Heartbeat]
            }
            Ok(Decoded::Ticks(ticks)) => {
                TickerCounters::add(&self.counters.frames, 1);
                TickerCounters::add(&self.counters.ticks, ticks.len() as u64);
                vec![Action::Data(ticker::ticks_json(&ticks))]
            }
            Err(e) => {
                let total = TickerCounters::add(&self.counters.frames_dropped, 1);
                let due = self
                    .last_drop_log
                    .is_none_or(|at| now.since(at) >= DROP_LOG_EVERY);
                if !due {
                    self.drops_unlogged += 1;
                    return Vec::new();
                }
                let since = if self.drops_unlogged > 0 {
                    format!(
                        ", {} more dropped since the last report",
                        self.drops_unlogged
                    )
                } else {
                    String::new()
                };
                self.last_drop_log = Some(now);
                self.drops_unlogged = 0;
                vec![Action::Log {
                    level: log::Level::Warn,
                    message: format!(
                        "dropped a ticker frame of {} bytes whose lengths do not add up: {e} \
                         ({total} dropped on this feed{since})",
                        frame.len()
                    ),
                }]
            }
        }
    }

    fn on_text(&mut self, text: &str) -> Vec<Action> {
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(_) => {
                TickerCounters::add(&self.counters.texts_dropped, 1);
                return vec![Action::Log {
                    level: log::Level::Warn,
                    message: format!(
                        "ignored a ticker text message of {} bytes that is not JSON",
                        text.len()
                    ),
                }];
            }
        };
        TickerCounters::add(&self.counters.texts, 1);
        let mut out = Vec::with_capacity(2);
        if v.get("type").and_then(Value::as_str) == Some("error") {
            let detail = match v.get("data") {
                Some(Value::String(s)) => sanitize(s),
                Some(other) => sanitize(&other.to_string()),
                None => String::new(),
            };
            out.push(Action::Log {
                level: log::Level::Warn,
                message: format!("Kite ticker error message: {detail}"),
            });
        }
        // One message is one fan-out line, whatever Kite's spacing. The
        // text is compacted, not re-serialized from `v`: numbers (order
        // prices) must reach the bot exactly as Kite wrote them.
        out.push(Action::Data(compact_json(text)));
        out
    }
}

/// `text` (valid JSON) without the whitespace between tokens; strings and
/// numbers are copied byte for byte.
fn compact_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

impl ProtocolCore for TickerCore {
    fn open(&mut self, _now: Mono) -> Vec<Action> {
        vec![
            Action::LayerPassed {
                layer: Layer::Auth,
                detail: "api_key and access_token accepted at the WebSocket upgrade".into(),
            },
            Action::Ready,
        ]
    }

    fn subscribe(&mut self, _now: Mono) -> Vec<Action> {
        let tokens = &self.cfg.instruments;
        if tokens.is_empty() {
            return Vec::new();
        }
        vec![
            Action::send_text(Self::subscribe_message(tokens)),
            Action::send_text(Self::mode_message(self.cfg.mode, tokens)),
        ]
    }

    fn receive(&mut self, msg: Inbound<'_>, now: Mono) -> Vec<Action> {
        match msg {
            Inbound::Binary(frame) => self.on_binary(frame, now),
            Inbound::Text(text) => self.on_text(text),
            Inbound::Pong => vec![Action::Pong],
            Inbound::Frame(_) => vec![Action::Fail(FeedError::protocol(
                "the Kite ticker got a length-prefixed TCP frame; it speaks WebSocket only",
            ))],
        }
    }

    fn not_ready(&self, waited: Duration) -> FeedError {
        FeedError::timeout(format!(
            "timeout (handshake): the Kite ticker did not finish the WebSocket upgrade within {}",
            crate::timefmt::human(waited)
        ))
        .at(Layer::Handshake)
    }

    fn has_keepalive(&self) -> bool {
        true
    }

    fn keepalive(&mut self, _now: Mono) -> Vec<Action> {
        vec![Action::Send(Outbound::Ping)]
    }
}

/// How a refused ticker upgrade ends the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpgradeRefusal {
    pub error: FeedError,
    /// An alert the engine does not raise itself (`connection_limit`).
    pub alert: Option<Alert>,
}

impl UpgradeRefusal {
    /// As core actions: the alert first, then the failure.
    pub fn into_actions(self) -> Vec<Action> {
        let mut out: Vec<Action> = self.alert.into_iter().map(Action::Alert).collect();
        out.push(Action::Fail(self.error));
        out
    }
}

/// Classifies the HTTP status Kite refused the ticker's WebSocket upgrade
/// with. `retry_after` is Kite's `Retry-After`, when it sent one.
pub fn classify_upgrade(
    status: u16,
    retry_after: Option<Duration>,
    feed: &str,
    account: &str,
) -> UpgradeRefusal {
    let (error, alert) = match status {
        401 | 403 => (
            FeedError::auth(format!(
                "access token rejected (expired?) — run: {}",
                login_command(account)
            ))
            .at(Layer::Auth),
            None,
        ),
        400 => (
            FeedError::auth(format!(
                "the Kite ticker refused the upgrade as a bad request (HTTP 400): api_key or access_token \
                 missing or malformed — check KITE_{0}_API_KEY, then run: {1}",
                account.to_ascii_uppercase(),
                login_command(account)
            ))
            .at(Layer::Auth),
            None,
        ),
        429 => {
            let wait = retry_after.unwrap_or(CONNECTION_LIMIT_RETRY);
            let why = "the key's 3 connections are taken elsewhere: another program, or a second agent";
            (
                FeedError::new(
                    ErrorClass::RateLimited {
                        retry_after: Some(wait),
                    },
                    format!("the Kite ticker refused the upgrade with HTTP 429: {why}"),
                )
                .at(Layer::Handshake),
                Some(
                    Alert::new(AlertKind::ConnectionLimit)
                        .with("feed", feed)
                        .with("account", account)
                        .with("limit", 3)
                        .with("reason", why)
                        .with("retry_in", crate::timefmt::human(wait)),
                ),
            )
        }
        503 => (
            FeedError::new(
                ErrorClass::GoingAway,
                "the Kite ticker is unavailable (HTTP 503, maintenance?)",
            )
            .at(Layer::Handshake),
            None,
        ),
        500..=599 => (
            FeedError::network(format!("the Kite ticker failed the upgrade with HTTP {status}"))
                .at(Layer::Handshake),
            None,
        ),
        _ => (
            FeedError::protocol(format!("the Kite ticker refused the upgrade with HTTP {status}"))
                .at(Layer::Handshake),
            None,
        ),
    };
    UpgradeRefusal { error, alert }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core(instruments: Vec<u32>, mode: Mode) -> (TickerCore, Arc<TickerCounters>) {
        let counters = TickerCounters::new();
        let cfg = Arc::new(TickerConfig {
            feed: "nse".into(),
            account: "main".into(),
            instruments,
            mode,
        });
        (TickerCore::new(cfg, counters.clone()), counters)
    }

    fn at(s: u64) -> Mono {
        Mono(Duration::from_secs(s))
    }

    fn frame(packets: &[Vec<u8>]) -> Vec<u8> {
        let mut f = (packets.len() as u16).to_be_bytes().to_vec();
        for p in packets {
            f.extend_from_slice(&(p.len() as u16).to_be_bytes());
            f.extend_from_slice(p);
        }
        f
    }

    fn ltp(token: u32, price: u32) -> Vec<u8> {
        let mut p = token.to_be_bytes().to_vec();
        p.extend_from_slice(&price.to_be_bytes());
        p
    }

    fn text(a: &Action) -> String {
        match a {
            Action::Send(Outbound::Text(s)) => s.expose().to_string(),
            other => panic!("not a text send: {other:?}"),
        }
    }

    #[test]
    fn open_is_ready_and_subscribe_sets_the_mode() {
        let (mut c, _) = core(vec![408065, 884737], Mode::Full);
        assert_eq!(
            c.open(at(0)),
            vec![
                Action::LayerPassed {
                    layer: Layer::Auth,
                    detail: "api_key and access_token accepted at the WebSocket upgrade".into()
                },
                Action::Ready
            ]
        );
        let sub = c.subscribe(at(0));
        assert_eq!(sub.len(), 2);
        assert_eq!(text(&sub[0]), r#"{"a":"subscribe","v":[408065,884737]}"#);
        assert_eq!(
            text(&sub[1]),
            r#"{"a":"mode","v":["full",[408065,884737]]}"#
        );
        // Every connection gets a new core, and every core subscribes again.
        let (mut c2, _) = core(vec![1], Mode::Ltp);
        let sub = c2.subscribe(at(9));
        assert_eq!(text(&sub[1]), r#"{"a":"mode","v":["ltp",[1]]}"#);
        let (mut none, _) = core(vec![], Mode::Quote);
        assert!(none.subscribe(at(0)).is_empty());
    }

    #[test]
    fn receive_table() {
        let good = frame(&[ltp(408065, 123_456)]);
        let mut lying = good.clone();
        lying[1] = 2;
        let cases: Vec<(Inbound, Vec<Action>)> = vec![
            (Inbound::Binary(&[0]), vec![Action::Heartbeat]),
            (Inbound::Binary(&[0, 0]), vec![Action::Heartbeat]),
            (
                Inbound::Binary(&good),
                vec![Action::Data(
                    r#"[{"tradable":true,"mode":"ltp","instrument_token":408065,"last_price":1234.56}]"#.into(),
                )],
            ),
            (
                Inbound::Text(r#"{"type": "order", "data": {"order_id": "1", "status": "COMPLETE", "price": 1234.55}}"#),
                vec![Action::Data(r#"{"type":"order","data":{"order_id":"1","status":"COMPLETE","price":1234.55}}"#.into())],
            ),
            (
                Inbound::Text("{\"type\":\"message\",\r\n\t\"data\" : \"a \\\" b\\\\\"}"),
                vec![Action::Data(r#"{"type":"message","data":"a \" b\\"}"#.into())],
            ),
            (
                Inbound::Text(r#"{"type":"error","data":"Invalid\nmode"}"#),
                vec![
                    Action::Log {
                        level: log::Level::Warn,
                        message: "Kite ticker error message: Invalid mode".into(),
                    },
                    Action::Data(r#"{"type":"error","data":"Invalid\nmode"}"#.into()),
                ],
            ),
            (
                Inbound::Text("not json"),
                vec![Action::Log {
                    level: log::Level::Warn,
                    message: "ignored a ticker text message of 8 bytes that is not JSON".into(),
                }],
            ),
            (Inbound::Pong, vec![Action::Pong]),
        ];
        for (msg, want) in cases {
            let (mut c, _) = core(vec![408065], Mode::Full);
            assert_eq!(c.receive(msg, at(1)), want, "{msg:?}");
        }
        let (mut c, counters) = core(vec![408065], Mode::Full);
        let got = c.receive(Inbound::Binary(&lying), at(1));
        assert!(
            matches!(&got[..], [Action::Log { level: log::Level::Warn, message }]
                if message.contains("announces 2 packets") && message.contains("1 dropped on this feed")),
            "{got:?}"
        );
        assert_eq!(counters.snapshot().frames_dropped, 1);
        let got = c.receive(Inbound::Frame(&[1]), at(1));
        assert!(matches!(&got[..], [Action::Fail(e)] if e.class == ErrorClass::Protocol));
    }

    #[test]
    fn lying_frames_are_counted_and_logged_at_most_once_a_minute() {
        let (mut c, counters) = core(vec![1], Mode::Ltp);
        let lie = [0u8, 1, 0, 8, 1];
        let logs = |v: Vec<Action>| v.iter().filter(|a| matches!(a, Action::Log { .. })).count();
        assert_eq!(logs(c.receive(Inbound::Binary(&lie), at(0))), 1);
        for s in 1..60 {
            assert_eq!(
                logs(c.receive(Inbound::Binary(&lie), at(s))),
                0,
                "second {s}"
            );
        }
        let got = c.receive(Inbound::Binary(&lie), at(60));
        match &got[..] {
            [Action::Log { message, .. }] => {
                assert!(
                    message
                        .contains("61 dropped on this feed, 59 more dropped since the last report"),
                    "{message}"
                )
            }
            other => panic!("{other:?}"),
        }
        // Good frames keep flowing between lies; the connection never fails.
        let good = frame(&[ltp(1, 1)]);
        assert!(matches!(
            &c.receive(Inbound::Binary(&good), at(61))[..],
            [Action::Data(_)]
        ));
        let n = counters.snapshot();
        assert_eq!((n.frames_dropped, n.frames, n.ticks), (61, 1, 1));
    }

    #[test]
    fn counters_outlive_a_connection() {
        let counters = TickerCounters::new();
        let cfg = Arc::new(TickerConfig {
            feed: "nse".into(),
            account: "main".into(),
            instruments: vec![1],
            mode: Mode::Ltp,
        });
        for _ in 0..3 {
            let mut c = TickerCore::new(cfg.clone(), counters.clone());
            c.receive(Inbound::Binary(&[0]), at(0));
            c.receive(Inbound::Binary(&[0, 2]), at(0));
            c.receive(Inbound::Text("{}"), at(0));
        }
        assert_eq!(
            counters.snapshot(),
            TickerCounts {
                frames: 0,
                ticks: 0,
                heartbeats: 3,
                frames_dropped: 3,
                texts: 3,
                texts_dropped: 0
            }
        );
    }

    #[test]
    fn keepalive_is_a_websocket_ping() {
        let (mut c, _) = core(vec![1], Mode::Ltp);
        assert!(c.has_keepalive());
        assert_eq!(c.keepalive(at(15)), vec![Action::Send(Outbound::Ping)]);
        assert!(!c.has_poll());
        assert_eq!(
            c.not_ready(Duration::from_secs(10)).layer,
            Some(Layer::Handshake)
        );
    }

    #[test]
    fn upgrade_statuses() {
        type Case = (
            u16,
            Option<Duration>,
            ErrorClass,
            &'static str,
            Option<AlertKind>,
        );
        let cases: Vec<Case> = vec![
            (
                403,
                None,
                ErrorClass::Auth,
                "access token rejected (expired?) — run: sudo brokerguard kite-login --account main",
                None,
            ),
            (
                401,
                None,
                ErrorClass::Auth,
                "access token rejected (expired?)",
                None,
            ),
            (400, None, ErrorClass::Auth, "bad request (HTTP 400)", None),
            (
                429,
                None,
                ErrorClass::RateLimited {
                    retry_after: Some(CONNECTION_LIMIT_RETRY),
                },
                "the key's 3 connections are taken elsewhere: another program, or a second agent",
                Some(AlertKind::ConnectionLimit),
            ),
            (
                429,
                Some(Duration::from_secs(300)),
                ErrorClass::RateLimited {
                    retry_after: Some(Duration::from_secs(300)),
                },
                "HTTP 429",
                Some(AlertKind::ConnectionLimit),
            ),
            (503, None, ErrorClass::GoingAway, "HTTP 503", None),
            (502, None, ErrorClass::Network, "HTTP 502", None),
            (404, None, ErrorClass::Protocol, "HTTP 404", None),
        ];
        for (status, retry, class, needle, alert) in cases {
            let r = classify_upgrade(status, retry, "nse", "main");
            assert_eq!(r.error.class, class, "{status}");
            assert!(
                r.error.message.contains(needle),
                "{status}: {}",
                r.error.message
            );
            assert_eq!(r.alert.as_ref().map(|a| a.kind), alert, "{status}");
        }
        let r = classify_upgrade(429, None, "nse", "main");
        assert_eq!(
            r.alert.clone().unwrap().to_string(),
            "alert=connection_limit feed=nse account=main limit=3 \
             reason=\"the key's 3 connections are taken elsewhere: another program, or a second agent\" retry_in=1m0s"
        );
        let actions = r.into_actions();
        assert!(matches!(&actions[..], [Action::Alert(_), Action::Fail(_)]));
    }

    #[test]
    fn mode_values() {
        assert_eq!(parse_mode("full"), Ok(Mode::Full));
        assert_eq!(
            parse_mode("depth").unwrap_err(),
            "mode \"depth\" is not one of ltp, quote, full"
        );
    }
}
