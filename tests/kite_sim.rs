//! The Kite pieces against the Kite simulator over loopback sockets: the
//! login exchange and profile check (our request builders and parsers over
//! a plain HTTP/1.1 exchange), and the ticker (our URL builder, protocol
//! core and decoder over a real WebSocket), including refused upgrades,
//! lying frames and text messages.
//!
//! The decoder's output is compared with values computed here from the
//! simulator's documented formula (`sim::kite::encode`), so a test fails if
//! encoder and decoder disagree on any field.

use brokerguard::brokers::kite::Mode;
use brokerguard::brokers::kite::core::{
    TickerConfig, TickerCore, TickerCounters, classify_upgrade,
};
use brokerguard::brokers::kite::login::{parse_session, session_token_request};
use brokerguard::brokers::kite::rest::{KiteRequest, RestError, parse_profile, profile_request};
use brokerguard::brokers::kite::url::ticker_url;
use brokerguard::clock::Mono;
use brokerguard::feed::{Action, ErrorClass, Inbound, Outbound, ProtocolCore};
use brokerguard::net::NetError;
use brokerguard::net::ws::{self, WsConn, WsEvent, WsOptions};
use brokerguard::secret::Secret;
use brokerguard::sim::kite::{
    KiteFault, KiteSim, KiteSimConfig, KiteSimHandle, Lie, SimMode, sim_tick,
};
use brokerguard::timefmt::rfc3339;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

const DEADLINE: Duration = Duration::from_secs(10);
const TOKEN: &str = "KiteSimCanaryToken0a1b2c3d4e5f67";

const NSE: u32 = 408_065; // segment 1
const NIFTY: u32 = 256_265; // segment 9: an index
const CDS: u32 = (1_234 << 8) | 3;
const BCD: u32 = (77 << 8) | 6;

fn sim() -> KiteSimHandle {
    KiteSim::start(KiteSimConfig {
        access_tokens: vec![TOKEN.into()],
        data_every: Some(Duration::from_millis(50)),
        heartbeat_every: Some(Duration::from_millis(200)),
        ..KiteSimConfig::default()
    })
    .expect("simulator starts")
}

/// One HTTP/1.1 exchange of a [`KiteRequest`]: (status, body).
fn http(rest_url: &str, req: &KiteRequest) -> (u16, String) {
    let addr = rest_url.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(addr).expect("connect to the REST simulator");
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    let body = req.body.as_ref().map_or("", |b| b.expose());
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {addr}\r\n",
        req.method.as_str(),
        req.path
    );
    for (name, value) in &req.headers {
        head.push_str(&format!("{name}: {}\r\n", value.expose()));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    tcp.write_all(head.as_bytes()).unwrap();
    tcp.write_all(body.as_bytes()).unwrap();
    let mut raw = String::new();
    tcp.read_to_string(&mut raw)
        .expect("the simulator answers and closes");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, body.to_string())
}

#[test]
fn checksum_exchange_issues_a_token_and_a_reused_request_token_is_refused() {
    let sim = sim();
    let key = Secret::new(sim.api_key());
    let secret = Secret::new(sim.api_secret());
    let request_token = Secret::new(sim.issue_request_token());

    let (status, body) = http(
        &sim.rest_url(),
        &session_token_request(&key, &request_token, &secret),
    );
    let session = parse_session(status, &body, "main").expect("the exchange succeeds");
    assert!(
        sim.access_tokens()
            .contains(&session.access_token.expose().to_string())
    );
    assert_eq!(session.user_id.as_deref(), Some(sim.user_id()));
    assert!(
        session.login_time.is_some(),
        "login_time parses as IST: {body}"
    );
    assert_eq!(sim.stats().sessions_issued, 1);

    // The new token works for the profile check...
    let (status, body) = http(
        &sim.rest_url(),
        &profile_request(&key, &session.access_token),
    );
    assert_eq!(
        parse_profile(status, &body, "main")
            .expect("profile")
            .user_id,
        sim.user_id()
    );
    // ...and for the ticker.
    let url = ticker_url(&sim.ticker_url(), &key, &session.access_token);
    assert!(ws::connect(url.expose(), &WsOptions::default()).is_ok());

    // The same request token again: refused, plainly.
    let (status, body) = http(
        &sim.rest_url(),
        &session_token_request(&key, &request_token, &secret),
    );
    let e = parse_session(status, &body, "main").unwrap_err();
    assert_eq!(
        e,
        RestError::RequestTokenRejected {
            account: "main".into()
        }
    );
    assert_eq!(e.class(), ErrorClass::Auth);
    assert!(e.to_string().contains("already used"), "{e}");

    // A wrong secret: the checksum is refused (and the request token stays usable).
    let fresh = Secret::new(sim.issue_request_token());
    let wrong = Secret::new("wrongsecret00000000000000000000x");
    let (status, body) = http(
        &sim.rest_url(),
        &session_token_request(&key, &fresh, &wrong),
    );
    assert_eq!(
        parse_session(status, &body, "main").unwrap_err(),
        RestError::InvalidChecksum {
            account: "main".into()
        }
    );
    let (status, body) = http(
        &sim.rest_url(),
        &session_token_request(&key, &fresh, &secret),
    );
    assert!(parse_session(status, &body, "main").is_ok());

    // A wrong api_key.
    let other = Secret::new("otherkey00000001");
    let (status, body) = http(
        &sim.rest_url(),
        &session_token_request(&other, &fresh, &secret),
    );
    assert_eq!(
        parse_session(status, &body, "main").unwrap_err(),
        RestError::InvalidApiKey {
            account: "main".into()
        }
    );

    // A dead access token on the profile: the remedy names the command.
    sim.set_access_tokens(Vec::<String>::new());
    let (status, body) = http(
        &sim.rest_url(),
        &profile_request(&key, &session.access_token),
    );
    let e = parse_profile(status, &body, "main").unwrap_err();
    assert_eq!(status, 403);
    assert_eq!(
        e.to_string(),
        "access token rejected (expired?) — run: sudo brokerguard kite-login --account main"
    );
    assert!(!e.to_string().contains(session.access_token.expose()));
    let st = sim.stats();
    assert_eq!(
        st.session_refusals,
        [
            "Token is invalid or has expired.",
            "Invalid `checksum`.",
            "Invalid `api_key`."
        ]
    );
    assert_eq!((st.profile_ok, st.profile_refused), (1, 1));
}

/// A ticker connection driven by our core, the way the engine's session
/// driver will: the core's sends go out, what arrives goes to the core.
struct Ticker {
    conn: WsConn,
    core: TickerCore,
    counters: Arc<TickerCounters>,
    start: Instant,
}

impl Ticker {
    fn open(sim: &KiteSimHandle, instruments: Vec<u32>, mode: Mode) -> Ticker {
        let url = ticker_url(
            &sim.ticker_url(),
            &Secret::new(sim.api_key()),
            &Secret::new(TOKEN),
        );
        let conn = ws::connect(url.expose(), &WsOptions::default()).expect("upgrade accepted");
        let counters = TickerCounters::new();
        let cfg = Arc::new(TickerConfig {
            feed: "nse".into(),
            account: "main".into(),
            instruments,
            mode,
        });
        let mut t = Ticker {
            conn,
            core: TickerCore::new(cfg, counters.clone()),
            counters,
            start: Instant::now(),
        };
        let now = t.now();
        let opened = t.core.open(now);
        assert_eq!(opened.last(), Some(&Action::Ready));
        let subscribe = t.core.subscribe(now);
        t.carry_out(subscribe);
        t
    }

    fn now(&self) -> Mono {
        Mono(self.start.elapsed())
    }

    fn carry_out(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send(Outbound::Text(s)) => self.conn.send_text(s.expose()).unwrap(),
                Action::Send(Outbound::Ping) => self.conn.send_ping(b"").unwrap(),
                other => panic!("unexpected action {other:?}"),
            }
        }
    }

    /// The core's actions for the next message (within the deadline).
    fn next(&mut self) -> Vec<Action> {
        let end = Instant::now() + DEADLINE;
        while Instant::now() < end {
            let ev = self
                .conn
                .read_within(Duration::from_millis(200))
                .expect("the connection stays up");
            let now = self.now();
            let actions = match ev {
                None => continue,
                Some(WsEvent::Binary(b)) => self.core.receive(Inbound::Binary(&b), now),
                Some(WsEvent::Text(t)) => self.core.receive(Inbound::Text(&t), now),
                Some(WsEvent::Pong(_)) => self.core.receive(Inbound::Pong, now),
                Some(WsEvent::Ping) => continue,
                Some(WsEvent::Close { code, .. }) => panic!("closed with {code:?}"),
            };
            return actions;
        }
        panic!("nothing arrived within {DEADLINE:?}");
    }

    /// Feeds messages to `f` until it returns something, within the deadline.
    fn until<T>(&mut self, what: &str, mut f: impl FnMut(&[Action]) -> Option<T>) -> T {
        let end = Instant::now() + DEADLINE;
        while Instant::now() < end {
            let actions = self.next();
            if let Some(v) = f(&actions) {
                return v;
            }
        }
        panic!("no {what} within {DEADLINE:?}");
    }

    /// The next data (skipping heartbeats), as JSON.
    fn next_data(&mut self) -> Value {
        self.until("data", |a| match a {
            [Action::Heartbeat] => None,
            [Action::Data(d)] => Some(serde_json::from_str(d).expect("data is JSON")),
            other => panic!("expected data, got {other:?}"),
        })
    }
}

fn divisor(token: u32) -> f64 {
    match token & 0xff {
        3 => 10_000_000.0,
        6 => 10_000.0,
        _ => 100.0,
    }
}

/// What `token` in data frame `n` must decode to in full mode, from the
/// simulator's documented values (pykiteconnect's fields). Passed through
/// JSON text like the decoder's output, so both sides' floats meet the same
/// parser (serde_json's default float parsing can be one ulp off; the text
/// the decoder writes is exact, as Python's `json` confirms).
fn expected_full(token: u32, n: u32) -> Value {
    let v = expected_full_values(token, n);
    serde_json::from_str(&v.to_string()).unwrap()
}

fn expected_full_values(token: u32, n: u32) -> Value {
    let t = sim_tick(token, n);
    let d = divisor(token);
    let p = |v: u32| f64::from(v) / d;
    let ts = |s: u32| rfc3339(UNIX_EPOCH + Duration::from_secs(u64::from(s)));
    let change = (p(t.last_price) - p(t.close)) * 100.0 / p(t.close);
    let ohlc = json!({"open": p(t.open), "high": p(t.high), "low": p(t.low), "close": p(t.close)});
    if token & 0xff == 9 {
        return json!({"tradable": false, "mode": "full", "instrument_token": token, "last_price": p(t.last_price),
                      "ohlc": ohlc, "change": change, "exchange_timestamp": ts(t.exchange_timestamp)});
    }
    let level = |l: &brokerguard::sim::kite::SimLevel| json!({"quantity": l.quantity, "price": p(l.price), "orders": l.orders});
    json!({
        "tradable": true, "mode": "full", "instrument_token": token, "last_price": p(t.last_price),
        "last_traded_quantity": t.last_traded_quantity, "average_traded_price": p(t.average_traded_price),
        "volume_traded": t.volume_traded, "total_buy_quantity": t.total_buy_quantity,
        "total_sell_quantity": t.total_sell_quantity, "ohlc": ohlc, "change": change,
        "last_trade_time": ts(t.last_trade_time), "oi": t.oi, "oi_day_high": t.oi_day_high,
        "oi_day_low": t.oi_day_low, "exchange_timestamp": ts(t.exchange_timestamp),
        "depth": {"buy": t.buy.iter().map(level).collect::<Vec<_>>(), "sell": t.sell.iter().map(level).collect::<Vec<_>>()}
    })
}

#[test]
fn ticker_with_a_good_token_streams_frames_that_decode_to_the_simulators_values() {
    let sim = sim();
    let tokens = vec![NSE, NIFTY, CDS, BCD];
    let mut t = Ticker::open(&sim, tokens.clone(), Mode::Full);
    for n in 0..5 {
        let frame = t.next_data();
        let want: Vec<Value> = tokens.iter().map(|&tok| expected_full(tok, n)).collect();
        assert_eq!(frame, Value::Array(want), "frame {n}");
    }
    // The simulator saw exactly the core's two requests, tokens as numbers.
    let st = sim.stats();
    assert_eq!(
        st.client_messages[..2],
        [
            r#"{"a":"subscribe","v":[408065,256265,315907,19718]}"#.to_string(),
            r#"{"a":"mode","v":["full",[408065,256265,315907,19718]]}"#.to_string()
        ]
    );
    assert_eq!(
        st.subscriptions[0],
        tokens
            .iter()
            .map(|&tok| (tok, SimMode::Full))
            .collect::<Vec<_>>()
    );
    assert_eq!(st.invalid_client_messages, 0);
    let c = t.counters.snapshot();
    assert_eq!((c.frames, c.ticks, c.frames_dropped), (5, 20, 0));
    // The spot values the interop suite states, decoded by us too.
    let cds = sim_tick(CDS, 0);
    assert_eq!(cds.last_price, 134_000); // (1234 % 100) = 34: 100 000 + 34 000
}

#[test]
fn quote_and_ltp_modes_and_the_keepalive() {
    let sim = sim();
    let mut t = Ticker::open(&sim, vec![NSE, NIFTY], Mode::Ltp);
    let frame = t.next_data();
    assert_eq!(
        frame,
        json!([{"tradable": true, "mode": "ltp", "instrument_token": NSE, "last_price": 1940.0},
               {"tradable": false, "mode": "ltp", "instrument_token": NIFTY, "last_price": 1010.0}])
    );
    let mut q = Ticker::open(&sim, vec![NSE, NIFTY], Mode::Quote);
    let frame = q.next_data();
    assert_eq!(frame[0]["mode"], "quote");
    assert_eq!(frame[0]["volume_traded"], 1000);
    assert!(frame[0].get("depth").is_none());
    assert_eq!(frame[1]["mode"], "quote");
    assert_eq!(
        frame[1]["ohlc"],
        json!({"high": 1020.0, "low": 995.0, "open": 1000.0, "close": 1005.0})
    );
    assert!(frame[1].get("exchange_timestamp").is_none());
    // The keepalive is a WebSocket ping; its pong reaches the core.
    let ping = q.core.keepalive(q.now());
    q.carry_out(ping);
    q.until("pong", |a| match a {
        [Action::Pong] => Some(()),
        [Action::Data(_)] | [Action::Heartbeat] => None,
        other => panic!("{other:?}"),
    });
    assert!(sim.wait_for(|s| s.pings_received >= 1, DEADLINE));
}

#[test]
fn idle_ticker_sends_one_byte_heartbeats() {
    let sim = sim();
    let mut t = Ticker::open(&sim, vec![], Mode::Full);
    assert_eq!(t.next(), vec![Action::Heartbeat]);
    assert_eq!(t.next(), vec![Action::Heartbeat]);
    assert!(t.counters.snapshot().heartbeats >= 2);
    // heartbeats-only: subscribed, but only heartbeats come.
    sim.set_fault(KiteFault::HeartbeatsOnly);
    let mut s = Ticker::open(&sim, vec![NSE], Mode::Full);
    for _ in 0..2 {
        assert_eq!(s.next(), vec![Action::Heartbeat]);
    }
    assert_eq!(s.counters.snapshot().frames, 0);
}

#[test]
fn wrong_token_is_refused_with_403_and_a_used_up_key_with_429() {
    let sim = sim();
    let url = ticker_url(
        &sim.ticker_url(),
        &Secret::new(sim.api_key()),
        &Secret::new("expiredtoken0000000000000000000x"),
    );
    let err = ws::connect(url.expose(), &WsOptions::default()).expect_err("refused");
    let NetError::HttpStatus { status } = err else {
        panic!("{err:?}")
    };
    assert_eq!(status, 403);
    let refusal = classify_upgrade(status, None, "nse", "main");
    assert_eq!(refusal.error.class, ErrorClass::Auth);
    assert_eq!(
        refusal.error.message,
        "access token rejected (expired?) — run: sudo brokerguard kite-login --account main"
    );
    // A wrong api_key with a good token is refused the same way.
    let url = ticker_url(
        &sim.ticker_url(),
        &Secret::new("otherkey00000001"),
        &Secret::new(TOKEN),
    );
    assert!(matches!(
        ws::connect(url.expose(), &WsOptions::default()),
        Err(NetError::HttpStatus { status: 403 })
    ));

    sim.set_fault(KiteFault::RejectUpgrade { status: 429 });
    let url = ticker_url(
        &sim.ticker_url(),
        &Secret::new(sim.api_key()),
        &Secret::new(TOKEN),
    );
    let Err(NetError::HttpStatus { status }) = ws::connect(url.expose(), &WsOptions::default())
    else {
        panic!("429 expected")
    };
    let refusal = classify_upgrade(status, None, "nse", "main");
    assert!(
        matches!(refusal.error.class, ErrorClass::RateLimited { retry_after: Some(d) } if d >= Duration::from_secs(60))
    );
    assert_eq!(
        refusal.alert.unwrap().kind,
        brokerguard::alert::AlertKind::ConnectionLimit
    );
    assert_eq!(sim.stats().upgrades_refused, [403, 403, 429]);
    assert_eq!(sim.stats().upgrades_completed, 0);
}

#[test]
fn a_lying_frame_is_dropped_and_counted() {
    let sim = sim();
    let mut t = Ticker::open(&sim, vec![NSE], Mode::Full);
    assert_eq!(t.next_data(), json!([expected_full(NSE, 0)]));
    sim.set_fault(KiteFault::LieOnce(Lie::Count));
    // The lie arrives in place of the next frame: dropped, logged, counted.
    // Frames sent before the fault was in force still decode.
    let frame_number = |d: &str| {
        let v: Value = serde_json::from_str(d).unwrap();
        let n = ((v[0]["last_price"].as_f64().unwrap() - 1940.0) * 100.0).round() as u32;
        assert_eq!(v, json!([expected_full(NSE, n)]));
        n
    };
    let mut last = 0;
    let logged = loop {
        match &t.next()[..] {
            [
                Action::Log {
                    level: log::Level::Warn,
                    message,
                },
            ] => break message.clone(),
            [Action::Data(d)] => last = frame_number(d),
            [Action::Heartbeat] => {}
            other => panic!("{other:?}"),
        }
    };
    assert!(logged.contains("announces 2 packets"), "{logged}");
    assert_eq!(t.counters.snapshot().frames_dropped, 1);
    assert!(sim.wait_for(|s| s.lying_frames_sent == 1, DEADLINE));
    // The stream goes on, and the lie used up no frame number.
    let after = t.until("data after the lie", |a| match a {
        [Action::Data(d)] => Some(frame_number(d)),
        [Action::Heartbeat] => None,
        other => panic!("{other:?}"),
    });
    assert_eq!(after, last + 1);

    // Every frame lying: all dropped and counted, the connection stays up.
    for lie in [Lie::Length, Lie::Unknown, Lie::Trailing] {
        sim.set_fault(KiteFault::LieAlways(lie));
        let before = t.counters.snapshot().frames_dropped;
        let end = Instant::now() + DEADLINE;
        while t.counters.snapshot().frames_dropped < before + 3 && Instant::now() < end {
            for a in t.next() {
                assert!(!matches!(a, Action::Fail(_)), "{lie:?}: {a:?}");
            }
        }
        assert!(
            t.counters.snapshot().frames_dropped >= before + 3,
            "{lie:?}"
        );
    }
    sim.clear_fault();
    assert!(t.next_data().is_array());
}

#[test]
fn order_updates_and_error_messages_pass_through() {
    let sim = sim();
    let mut t = Ticker::open(&sim, vec![], Mode::Full);
    sim.send_order_update(json!({"order_id": "151220000000000", "status": "COMPLETE"}));
    sim.send_error("Invalid mode");
    let mut got = Vec::new();
    let end = Instant::now() + DEADLINE;
    while got.len() < 3 {
        assert!(Instant::now() < end, "only {got:?} arrived");
        got.extend(
            t.next()
                .into_iter()
                .filter(|a| !matches!(a, Action::Heartbeat)),
        );
    }
    assert_eq!(
        got,
        vec![
            Action::Data(
                r#"{"data":{"order_id":"151220000000000","status":"COMPLETE"},"type":"order"}"#
                    .into()
            ),
            Action::Log {
                level: log::Level::Warn,
                message: "Kite ticker error message: Invalid mode".into()
            },
            Action::Data(r#"{"data":"Invalid mode","type":"error"}"#.into()),
        ]
    );
    assert!(sim.wait_for(|s| s.texts_sent == 2, DEADLINE));
}

#[test]
fn close_fault_and_silence() {
    let sim = sim();
    let mut t = Ticker::open(&sim, vec![NSE], Mode::Ltp);
    t.next_data();
    sim.set_fault(KiteFault::Silent);
    // Silent: nothing at all within several heartbeat periods.
    let quiet_until = Instant::now() + Duration::from_millis(700);
    while Instant::now() < quiet_until {
        let ev = t.conn.read_within(Duration::from_millis(100)).unwrap();
        assert!(ev.is_none(), "silent fault sent {ev:?}");
    }
    sim.set_fault(KiteFault::Close { code: 1001 });
    let end = Instant::now() + DEADLINE;
    let code = loop {
        assert!(Instant::now() < end, "no close frame");
        match t.conn.read_within(Duration::from_millis(200)) {
            Ok(Some(WsEvent::Close { code, .. })) => break code,
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(code, Some(1001));
    assert_eq!(sim.stats().close_codes_sent, [1001]);
}

#[test]
fn rest_faults_use_kites_error_shapes() {
    let sim = sim();
    let key = Secret::new(sim.api_key());
    let token = Secret::new(TOKEN);
    for (status, class) in [
        (429, ErrorClass::RateLimited { retry_after: None }),
        (503, ErrorClass::Network),
        (502, ErrorClass::Network),
        (500, ErrorClass::Network),
    ] {
        sim.set_rest_fault(Some(status));
        let (got, body) = http(&sim.rest_url(), &profile_request(&key, &token));
        assert_eq!(got, status);
        let e = parse_profile(got, &body, "main").unwrap_err();
        assert_eq!(e.class(), class, "{status}: {e}");
    }
    sim.set_rest_fault(None);
    let (status, body) = http(&sim.rest_url(), &profile_request(&key, &token));
    assert!(parse_profile(status, &body, "main").is_ok());
    // Without X-Kite-Version the simulator refuses (its own rule), so a
    // request builder that forgot the header fails here.
    let mut bare = profile_request(&key, &token);
    bare.headers.retain(|(n, _)| n != "X-Kite-Version");
    let (status, body) = http(&sim.rest_url(), &bare);
    assert_eq!(status, 400, "{body}");
}
