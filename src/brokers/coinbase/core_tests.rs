//! Table tests of the Coinbase core: what arrived → the actions expected.

use super::*;
use crate::brokers::coinbase::jwt::{Algorithm, JwtError};
use std::sync::atomic::AtomicUsize;

const CANARY_JWT: &str = "CANARY.jwt.value";

/// Mints `CANARY.jwt.value-N`, counting.
#[derive(Default)]
struct Counting(AtomicUsize);

impl TokenSource for Counting {
    fn ws_jwt(&self) -> Result<Secret, JwtError> {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Secret::new(format!("{CANARY_JWT}-{n}")))
    }
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDsa
    }
}

fn at(ms: u64) -> Mono {
    Mono(Duration::from_millis(ms))
}

fn plan(channels: &[Channel], symbols: &[&str]) -> Plan {
    Plan {
        channels: channels.to_vec(),
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
        endpoint: if channels.iter().any(|c| c.is_user()) {
            Endpoint::User
        } else {
            Endpoint::Market
        },
    }
}

fn core_with(
    channels: &[Channel],
    symbols: &[&str],
    on_gap: OnGap,
    tokens: Option<Arc<Counting>>,
) -> CoinbaseCore {
    CoinbaseCore::new(
        "cb",
        plan(channels, symbols),
        on_gap,
        tokens.map(|t| t as Arc<dyn TokenSource>),
        Arc::new(Pacer::default()),
        Arc::new(GapCounters::default()),
    )
}

/// One line per action.
fn summary(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::Send(Outbound::Text(t)) => {
                let v: Value = serde_json::from_str(t.expose()).unwrap();
                let products = v["product_ids"]
                    .as_array()
                    .map(|p| {
                        p.iter()
                            .map(|x| x.as_str().unwrap().to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                format!(
                    "send {} {}{}{}",
                    v["type"].as_str().unwrap(),
                    v["channel"].as_str().unwrap(),
                    if products.is_empty() { "" } else { " " },
                    products
                )
            }
            Action::Data(_) => "data".into(),
            Action::Heartbeat => "heartbeat".into(),
            Action::Ready => "ready".into(),
            Action::LayerPassed { layer, .. } => format!("passed {layer}"),
            Action::Subscribed { detail } => format!("subscribed {detail}"),
            Action::Event { name, fields } => format!(
                "event {name} {}",
                fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().map_or(v.to_string(), String::from)))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Action::Fail(e) => format!("fail {}", e.class.as_str()),
            Action::Note { key, value } => format!("note {key}={value}"),
            Action::Log { level, .. } => format!("log {}", level.as_str().to_lowercase()),
            Action::Alert(a) => format!("alert {}", a.kind.as_str()),
            other => format!("{other:?}"),
        })
        .collect()
}

fn feed(core: &mut CoinbaseCore, msg: &str, now: Mono) -> Vec<String> {
    summary(&core.receive(Inbound::Text(msg), now))
}

fn subs(seq: u64, channels: &[(&str, &[&str])]) -> String {
    let mut m = serde_json::Map::new();
    for (c, p) in channels {
        m.insert(c.to_string(), json!(p));
    }
    json!({"channel":"subscriptions","client_id":"","timestamp":"t","sequence_num":seq,
           "events":[{"subscriptions": m}]})
    .to_string()
}

fn hb(seq: u64, counter: u64) -> String {
    json!({"channel":"heartbeats","client_id":"","timestamp":"t","sequence_num":seq,
           "events":[{"current_time":"t","heartbeat_counter":counter}]})
    .to_string()
}

fn l2(seq: u64, kind: &str, product: &str, levels: &[(&str, &str, &str)]) -> String {
    let updates: Vec<Value> = levels
        .iter()
        .map(|(side, p, q)| json!({"side":side,"event_time":"t","price_level":p,"new_quantity":q}))
        .collect();
    json!({"channel":"l2_data","client_id":"","timestamp":"t","sequence_num":seq,
           "events":[{"type":kind,"product_id":product,"updates":updates}]})
    .to_string()
}

/// A core that has connected, been answered for heartbeats and subscribed.
fn live(channels: &[Channel], symbols: &[&str], on_gap: OnGap) -> CoinbaseCore {
    let mut core = core_with(channels, symbols, on_gap, None);
    core.open(at(0));
    assert_eq!(
        feed(
            &mut core,
            &subs(0, &[("heartbeats", &["heartbeats"])]),
            at(10)
        ),
        ["ready"]
    );
    core.subscribe(at(10));
    core
}

#[test]
fn heartbeats_first_as_the_handshake_then_one_channel_per_message() {
    let tokens = Arc::new(Counting::default());
    let mut core = core_with(
        &[Channel::Ticker, Channel::Level2],
        &["BTC-USD", "ETH-USD"],
        OnGap::Resync,
        Some(tokens.clone()),
    );
    assert_eq!(
        summary(&core.open(at(0))),
        ["note jwt=EdDSA", "send subscribe heartbeats"]
    );
    assert_eq!(
        feed(
            &mut core,
            &subs(0, &[("heartbeats", &["heartbeats"])]),
            at(20)
        ),
        ["passed auth", "ready"]
    );
    let sent = core.subscribe(at(20));
    assert_eq!(
        summary(&sent),
        [
            "send subscribe ticker BTC-USD,ETH-USD",
            "send subscribe level2 BTC-USD,ETH-USD"
        ]
    );
    // A fresh JWT in every message, never shown by Debug.
    assert_eq!(tokens.0.load(Ordering::SeqCst), 3);
    let mut jwts = BTreeSet::new();
    for s in &sent {
        let Action::Send(Outbound::Text(t)) = s else {
            panic!()
        };
        let v: Value = serde_json::from_str(t.expose()).unwrap();
        assert!(v["jwt"].as_str().unwrap().starts_with(CANARY_JWT));
        jwts.insert(v["jwt"].as_str().unwrap().to_string());
        assert!(!format!("{s:?}").contains(CANARY_JWT));
    }
    assert_eq!(jwts.len(), 2);
    let table: &[(String, &[&str])] = &[
        (
            subs(
                1,
                &[
                    ("heartbeats", &["heartbeats"]),
                    ("ticker", &["BTC-USD", "ETH-USD"]),
                ],
            ),
            &["subscribed ticker BTC-USD, ETH-USD"],
        ),
        (
            subs(2, &[("level2", &["BTC-USD", "ETH-USD"])]),
            &["subscribed level2 BTC-USD, ETH-USD"],
        ),
        (hb(3, 10), &["heartbeat"]),
        (
            json!({"channel":"ticker","sequence_num":4,"events":[]}).to_string(),
            &["data"],
        ),
        // Unknown types are ignored, as Coinbase requires.
        (
            json!({"channel":"news","sequence_num":5}).to_string(),
            &["log debug"],
        ),
        (json!({"type":"brand_new"}).to_string(), &["log debug"]),
    ];
    for (msg, want) in table {
        assert_eq!(feed(&mut core, msg, at(30)), *want, "{msg}");
    }
}

#[test]
fn a_public_feed_sends_no_jwt_and_its_handshake_is_no_auth() {
    let mut core = core_with(&[Channel::MarketTrades], &["BTC-USD"], OnGap::Resync, None);
    let open = core.open(at(0));
    let Action::Send(Outbound::Text(t)) = &open[0] else {
        panic!("{open:?}")
    };
    let v: Value = serde_json::from_str(t.expose()).unwrap();
    assert_eq!(v, json!({"type": "subscribe", "channel": "heartbeats"}));
    assert_eq!(
        feed(
            &mut core,
            &subs(0, &[("heartbeats", &["heartbeats"])]),
            at(1)
        ),
        ["ready"]
    );
    let e = core.not_ready(Duration::from_secs(5));
    assert_eq!(e.layer, Some(Layer::Handshake));
}

#[test]
fn sends_are_paced_to_eight_a_second_across_connections() {
    let pacer = Arc::new(Pacer::default());
    let channels = [
        Channel::Ticker,
        Channel::TickerBatch,
        Channel::Level2,
        Channel::MarketTrades,
        Channel::Candles,
        Channel::Status,
    ];
    let mk = || {
        CoinbaseCore::new(
            "cb",
            plan(&channels, &["BTC-USD"]),
            OnGap::Resync,
            None,
            pacer.clone(),
            Arc::new(GapCounters::default()),
        )
    };
    let (mut a, mut b) = (mk(), mk());
    let mut sent = 0;
    for core in [&mut a, &mut b] {
        sent += summary(&core.open(at(0))).len();
        core.receive(Inbound::Text(&subs(0, &[("heartbeats", &[])])), at(0));
        sent += summary(&core.subscribe(at(0))).len();
    }
    assert_eq!(sent, 8, "8 messages in the first second");
    assert!(a.tick(at(999)).is_empty() && b.tick(at(999)).is_empty());
    let later = summary(&a.tick(at(1000))).len() + summary(&b.tick(at(1000))).len();
    assert_eq!(later, 6, "the rest a second later");
}

#[test]
fn a_sequence_gap_resyncs_and_resubscribes_on_the_same_connection() {
    let mut core = live(
        &[Channel::Level2, Channel::Ticker],
        &["BTC-USD"],
        OnGap::Resync,
    );
    feed(
        &mut core,
        &subs(1, &[("level2", &["BTC-USD"]), ("ticker", &["BTC-USD"])]),
        at(20),
    );
    assert_eq!(
        feed(
            &mut core,
            &l2(
                2,
                "snapshot",
                "BTC-USD",
                &[("bid", "100", "1"), ("offer", "101", "1")]
            ),
            at(30)
        ),
        ["data"]
    );
    assert_eq!(feed(&mut core, &hb(3, 1), at(40)), ["heartbeat"]);
    // 4 and 5 never came.
    assert_eq!(
        feed(
            &mut core,
            &l2(6, "update", "BTC-USD", &[("bid", "100.5", "1")]),
            at(50)
        ),
        [
            "note sequence_gaps=1",
            "log warn",
            "event resync missed=2 reason=sequence",
            "note resyncs=1",
            "send unsubscribe level2 BTC-USD",
            "send subscribe level2 BTC-USD",
            "send unsubscribe ticker BTC-USD",
            "send subscribe ticker BTC-USD",
            // The update belongs to the dropped book.
            "log debug",
        ]
    );
    // The fresh snapshot is forwarded, updates after it too.
    assert_eq!(
        feed(
            &mut core,
            &l2(7, "snapshot", "BTC-USD", &[("bid", "100", "2")]),
            at(60)
        ),
        ["data"]
    );
    assert_eq!(
        feed(
            &mut core,
            &l2(8, "update", "BTC-USD", &[("offer", "100.1", "2")]),
            at(60)
        ),
        ["data"]
    );
    // Out of order is logged, never a resync.
    assert_eq!(
        feed(&mut core, &hb(8, 2), at(70)),
        ["log warn", "heartbeat"]
    );
}

#[test]
fn on_sequence_gap_alert_keeps_the_stream_and_alerts() {
    let mut core = live(&[Channel::Ticker], &["BTC-USD"], OnGap::Alert);
    feed(&mut core, &hb(1, 1), at(20));
    assert_eq!(
        feed(&mut core, &hb(3, 2), at(30)),
        [
            "note sequence_gaps=1",
            "log warn",
            "event sequence_gap missed=1 sequence_num=3",
            "alert book_resync",
            "heartbeat"
        ]
    );
}

#[test]
fn heartbeat_counter_gaps_are_counted() {
    let mut core = live(&[Channel::Ticker], &["BTC-USD"], OnGap::Resync);
    assert_eq!(feed(&mut core, &hb(1, 41), at(0)), ["heartbeat"]);
    assert_eq!(feed(&mut core, &hb(2, 42), at(0)), ["heartbeat"]);
    assert_eq!(
        feed(&mut core, &hb(3, 45), at(0)),
        ["note heartbeat_gaps=1", "log warn", "heartbeat"]
    );
}

#[test]
fn a_crossed_book_resyncs_that_product_only() {
    let mut core = live(&[Channel::Level2], &["BTC-USD", "ETH-USD"], OnGap::Resync);
    feed(
        &mut core,
        &l2(
            1,
            "snapshot",
            "BTC-USD",
            &[("bid", "100", "1"), ("offer", "101", "1")],
        ),
        at(0),
    );
    assert_eq!(
        feed(
            &mut core,
            &l2(2, "update", "BTC-USD", &[("bid", "102", "1")]),
            at(0)
        ),
        [
            "log warn",
            "event resync reason=crossed symbol=BTC-USD",
            "note resyncs=1",
            "send unsubscribe level2 BTC-USD",
            "send subscribe level2 BTC-USD"
        ]
    );
}

#[test]
fn the_first_user_event_is_marked_a_snapshot() {
    let mut core = live(&[Channel::User], &[], OnGap::Resync);
    let snap = json!({"channel":"user","sequence_num":1,"events":[{"type":"snapshot","orders":[{"order_id":"a"},{"order_id":"b"}]}]}).to_string();
    assert_eq!(
        feed(&mut core, &snap, at(0)),
        ["event snapshot channel=user open_orders=2", "data"]
    );
    let upd = json!({"channel":"user","sequence_num":2,"events":[{"type":"update","orders":[{"order_id":"a"}]}]}).to_string();
    assert_eq!(feed(&mut core, &upd, at(0)), ["data"]);
    // After a gap the user channel is subscribed again: its next first event is a snapshot again.
    let s = feed(&mut core, &hb(9, 1), at(0));
    assert!(s.contains(&"send subscribe user".to_string()), "{s:?}");
    let snap2 =
        json!({"channel":"user","sequence_num":10,"events":[{"type":"snapshot","orders":[]}]})
            .to_string();
    assert_eq!(
        feed(&mut core, &snap2, at(0)),
        ["event snapshot channel=user open_orders=0", "data"]
    );
}

#[test]
fn answers_are_checked_against_what_was_asked() {
    let mut core = live(&[Channel::Ticker], &["BTC-USD", "XDG-USD"], OnGap::Resync);
    let out = core.receive(Inbound::Text(&subs(1, &[("ticker", &["BTC-USD"])])), at(0));
    let [Action::Fail(e)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(e.class, ErrorClass::Config);
    assert!(
        e.message.contains("XDG-USD") && e.message.contains("`symbols`"),
        "{e}"
    );
    // No answer at all within 10 s of the last subscribe is a failure too.
    let mut core = live(&[Channel::Ticker], &["BTC-USD"], OnGap::Resync);
    assert!(core.tick(at(5_000)).is_empty());
    assert_eq!(summary(&core.tick(at(10_010))), ["fail network"]);
}

#[test]
fn errors_park_with_coinbase_s_words() {
    let rows = [
        (
            r#"{"type":"error","message":"authentication failure"}"#,
            ErrorClass::Auth,
        ),
        (
            r#"{"type":"error","message":"Failed to subscribe","reason":"jwt expired"}"#,
            ErrorClass::Auth,
        ),
        (
            r#"{"type":"error","message":"Failed to subscribe","reason":"unknown product"}"#,
            ErrorClass::Config,
        ),
        (
            r#"{"channel":"error","message":"rate limit exceeded"}"#,
            ErrorClass::RateLimited { retry_after: None },
        ),
    ];
    for (msg, class) in rows {
        let tokens = Arc::new(Counting::default());
        let mut core = core_with(&[Channel::User], &[], OnGap::Resync, Some(tokens));
        core.open(at(0));
        let out = core.receive(Inbound::Text(msg), at(1));
        let [Action::Fail(e)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(e.class, class, "{msg}");
        assert!(!e.message.contains(CANARY_JWT));
    }
}

#[test]
fn malformed_input_is_a_protocol_error_never_a_panic() {
    let mut core = live(&[Channel::Level2], &["BTC-USD"], OnGap::Resync);
    for msg in [
        "",
        "not json",
        "[1]",
        "7",
        r#"{"channel":"l2_data","events":[{"type":1}]}"#,
    ] {
        assert_eq!(feed(&mut core, msg, at(1)), ["fail protocol"], "{msg:?}");
    }
    for msg in [
        r#"{"channel":7}"#,
        r#"{"sequence_num":"x"}"#,
        r#"{"channel":"heartbeats","events":"x"}"#,
    ] {
        let s = feed(&mut core, msg, at(1));
        assert!(!s.iter().any(|x| x.starts_with("fail")), "{msg}: {s:?}");
    }
    assert_eq!(
        summary(&core.receive(Inbound::Binary(b"\x00"), at(1))),
        ["fail protocol"]
    );
}
