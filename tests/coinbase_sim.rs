//! The Coinbase simulator's own rules, seen by a plain WebSocket client
//! and HTTP: the 5 s subscribe rule, the idle close without heartbeats,
//! JWTs of both key kinds verified with the public key (and refused when
//! reused, signed by another key, or carrying `uri` on the WebSocket),
//! `sequence_num` counting up with one skipped on demand, and the REST
//! accounts call that needs the request's `uri`.

mod common;

use brokerguard::brokers::coinbase::CdpKey;
use brokerguard::brokers::coinbase::jwt::JwtClaims;
use brokerguard::sim::coinbase::{
    CoinbaseFault, CoinbaseSim, CoinbaseSimConfig, CoinbaseSimHandle, SimKey,
};
use common::cdp_keys::{TestKey, ec_key, ed25519_key};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

const LIMIT: Duration = Duration::from_secs(10);
const EC_NAME: &str = "organizations/o/apiKeys/ec";
const ED_NAME: &str = "organizations/o/apiKeys/ed";

type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

fn start(
    keys: &[(&str, &TestKey)],
    adjust: impl FnOnce(&mut CoinbaseSimConfig),
) -> CoinbaseSimHandle {
    let mut cfg = CoinbaseSimConfig {
        keys: keys
            .iter()
            .map(|(n, k)| SimKey {
                name: n.to_string(),
                public_key: k.public.clone(),
            })
            .collect(),
        data_every: Duration::from_millis(50),
        heartbeat_every: Duration::from_millis(100),
        ..CoinbaseSimConfig::default()
    };
    adjust(&mut cfg);
    CoinbaseSim::start(cfg).expect("simulator starts")
}

fn connect(url: &str) -> Ws {
    let (ws, _) = tungstenite::connect(url).expect("WebSocket upgrade");
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    }
    ws
}

/// The next text message matching `pred` within [`LIMIT`]; `Err` with the
/// close code when the server closed first.
fn next(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Result<Value, Option<u16>> {
    let end = Instant::now() + LIMIT;
    while Instant::now() < end {
        match ws.read() {
            Ok(Message::Text(t)) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if pred(&v) {
                    return Ok(v);
                }
            }
            Ok(Message::Close(frame)) => return Err(frame.map(|f| u16::from(f.code))),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Err(None),
        }
    }
    panic!("nothing matching within {LIMIT:?}")
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn jwt(name: &str, key: &TestKey, nonce: &str, uri: Option<&str>) -> String {
    CdpKey::parse(name, &key.secret)
        .unwrap()
        .sign(&JwtClaims {
            now_unix: now_unix(),
            nonce,
            uri,
        })
        .expose()
        .to_string()
}

fn subscribe(ws: &mut Ws, channel: &str, products: &[&str], jwt: Option<&str>) {
    let mut m = json!({"type": "subscribe", "channel": channel});
    if !products.is_empty() {
        m["product_ids"] = json!(products);
    }
    if let Some(j) = jwt {
        m["jwt"] = j.into();
    }
    ws.send(Message::text(m.to_string())).unwrap();
}

fn answer_or_error(ws: &mut Ws) -> Value {
    next(ws, |v| {
        v["channel"] == "subscriptions" || v["type"] == "error"
    })
    .unwrap()
}

#[test]
fn a_connection_that_does_not_subscribe_in_time_is_closed() {
    let sim = start(&[], |c| c.subscribe_within = Duration::from_millis(300));
    let mut ws = connect(&sim.ws_url());
    let started = Instant::now();
    assert_eq!(next(&mut ws, |_| false).unwrap_err(), Some(1000));
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(sim.stats().closed_no_subscribe, 1);
}

#[test]
fn heartbeats_keep_a_quiet_connection_open_and_without_them_it_is_closed() {
    let sim = start(&[], |c| {
        c.idle_close = Duration::from_millis(500);
        c.data_every = Duration::from_secs(3600);
    });
    let mut with = connect(&sim.ws_url());
    subscribe(&mut with, "heartbeats", &[], None);
    subscribe(&mut with, "ticker", &["BTC-USD"], None);
    let mut without = connect(&sim.ws_url());
    subscribe(&mut without, "ticker", &["BTC-USD"], None);
    assert_eq!(next(&mut without, |_| false).unwrap_err(), Some(1000));
    assert_eq!(sim.stats().closed_idle, 1);
    // Heartbeats go on past the idle limit, counting up by one.
    let mut last = None;
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        let hb = next(&mut with, |v| v["channel"] == "heartbeats").unwrap();
        let c = hb["events"][0]["heartbeat_counter"].as_u64().unwrap();
        if let Some(l) = last {
            assert_eq!(c, l + 1);
        }
        last = Some(c);
    }
    assert_eq!(sim.stats().closed_idle, 1);
}

#[test]
fn jwts_of_both_kinds_verify_and_bad_ones_are_refused() {
    let (ec, ed, other) = (ec_key(), ed25519_key(), ec_key());
    let sim = start(&[(EC_NAME, &ec), (ED_NAME, &ed)], |_| {});
    let mut ws = connect(&sim.ws_user_url());
    let ec_jwt = jwt(EC_NAME, &ec, "n1", None);
    subscribe(&mut ws, "heartbeats", &[], Some(&ec_jwt));
    let a = answer_or_error(&mut ws);
    assert_eq!(
        a["events"][0]["subscriptions"]["heartbeats"],
        json!(["heartbeats"])
    );
    subscribe(&mut ws, "user", &[], Some(&jwt(ED_NAME, &ed, "n2", None)));
    let a = answer_or_error(&mut ws);
    assert!(a["events"][0]["subscriptions"]["user"].is_array(), "{a}");
    let snap = next(&mut ws, |v| v["channel"] == "user").unwrap();
    assert_eq!(snap["events"][0]["type"], "snapshot");
    let refusals = [
        ("reused", ec_jwt.clone()),
        ("uri on ws", jwt(EC_NAME, &ec, "n3", Some("GET h/p"))),
        ("another key", jwt(EC_NAME, &other, "n4", None)),
        (
            "unknown kid",
            jwt("organizations/o/apiKeys/nope", &ec, "n5", None),
        ),
        ("garbage", "a.b.c".to_string()),
    ];
    for (what, token) in &refusals {
        subscribe(&mut ws, "user", &[], Some(token));
        let e = answer_or_error(&mut ws);
        assert_eq!(e["type"], "error", "{what}: {e}");
        assert_eq!(e["message"], "authentication failure", "{what}");
    }
    // The user channel needs a JWT; market channels are not served here.
    subscribe(&mut ws, "user", &[], None);
    assert_eq!(answer_or_error(&mut ws)["type"], "error");
    subscribe(&mut ws, "ticker", &["BTC-USD"], None);
    assert_eq!(answer_or_error(&mut ws)["type"], "error");
    let st = sim.stats();
    assert_eq!((st.jwts_accepted, st.jwts_refused), (2, 5), "{st:?}");
    assert_eq!((st.jwts_reused, st.ws_jwts_with_uri), (1, 1));
    assert_eq!(sim.received_jwts().len(), 7);
}

#[test]
fn every_message_is_numbered_and_one_number_can_be_skipped() {
    let sim = start(&[], |_| {});
    let mut ws = connect(&sim.ws_url());
    subscribe(&mut ws, "heartbeats", &[], None);
    subscribe(&mut ws, "level2", &["BTC-USD", "XDG-USD"], None);
    let answer = next(&mut ws, |v| {
        v["channel"] == "subscriptions" && v["events"][0]["subscriptions"].get("level2").is_some()
    })
    .unwrap();
    // Products it does not list are left out of the answer.
    assert_eq!(
        answer["events"][0]["subscriptions"]["level2"],
        json!(["BTC-USD"])
    );
    let seq = |v: &Value| v["sequence_num"].as_u64().unwrap();
    let mut last = seq(&next(&mut ws, |_| true).unwrap());
    for _ in 0..10 {
        let s = seq(&next(&mut ws, |_| true).unwrap());
        assert_eq!(s, last + 1);
        last = s;
    }
    sim.set_fault(CoinbaseFault::DropSequenceOnce);
    let mut jumps = 0;
    for _ in 0..20 {
        let s = seq(&next(&mut ws, |_| true).unwrap());
        jumps += u64::from(s == last + 2);
        assert!(s == last + 1 || s == last + 2);
        last = s;
    }
    assert_eq!(jumps, 1);
    assert_eq!(sim.stats().sequence_skips, 1);
    // A fresh level2 snapshot after an unsubscribe and subscribe.
    ws.send(Message::text(
        json!({"type":"unsubscribe","channel":"level2","product_ids":["BTC-USD"]}).to_string(),
    ))
    .unwrap();
    subscribe(&mut ws, "level2", &["BTC-USD"], None);
    next(&mut ws, |v| {
        v["channel"] == "l2_data" && v["events"][0]["type"] == "snapshot"
    })
    .unwrap();
    assert!(sim.wait_for(|s| s.l2_snapshots_sent == 2, LIMIT));
    sim.set_fault(CoinbaseFault::GoAway);
    assert_eq!(next(&mut ws, |_| false).unwrap_err(), Some(1001));
}

fn get_accounts(sim: &CoinbaseSimHandle, token: &str) -> (u16, String) {
    let port = sim.rest_url().rsplit(':').next().unwrap().to_string();
    let mut tcp = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
    tcp.set_read_timeout(Some(LIMIT)).unwrap();
    write!(
        tcp,
        "GET /api/v3/brokerage/accounts HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    (status, out)
}

#[test]
fn rest_accounts_needs_a_jwt_for_that_request() {
    let ec = ec_key();
    let sim = start(&[(EC_NAME, &ec)], |_| {});
    let port = sim.rest_url().rsplit(':').next().unwrap().to_string();
    let uri = format!("GET 127.0.0.1:{port}/api/v3/brokerage/accounts");
    let (status, body) = get_accounts(&sim, &jwt(EC_NAME, &ec, "r1", Some(&uri)));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"accounts\"") && body.contains("Date: "));
    for token in [
        jwt(EC_NAME, &ec, "r2", None),
        jwt(
            EC_NAME,
            &ec,
            "r3",
            Some("GET api.coinbase.com/api/v3/brokerage/accounts"),
        ),
    ] {
        assert_eq!(get_accounts(&sim, &token).0, 401);
    }
    assert_eq!(sim.stats().rest_refused, 2);
}
