//! The agent's Kraken code against the Kraken simulator, over loopback:
//! signed REST calls (accepted, a reused or lower nonce refused, the
//! published signature vector, the fault classes, the nonce-conflict and
//! fallback policy), and the WebSocket v2 core driven by hand over a plain
//! tungstenite client (no engine): status, subscribe and acks, heartbeat,
//! ping/pong, verified books, a corrupted checksum → resync → a fresh
//! snapshot that verifies, maintenance, refused symbols and tokens.

use base64::Engine;
use brokerguard::brokers::kraken::call::{CallEvent, HttpReply, call_private};
use brokerguard::brokers::kraken::core::KrakenCore;
use brokerguard::brokers::kraken::keys::{DEFAULT_FALLBACK_RESET, KeyFallback, KeySet};
use brokerguard::brokers::kraken::rest::{
    KrakenError, PrivateRequest, parse_balance, parse_response, parse_ws_token, private_request,
};
use brokerguard::brokers::kraken::settings::{Channel, PrivatePlan, PublicPlan};
use brokerguard::brokers::kraken::sign::ApiSecret;
use brokerguard::clock::Mono;
use brokerguard::feed::{Action, ErrorClass, Inbound, Layer, Outbound, ProtocolCore};
use brokerguard::secret::Secret;
use brokerguard::sim::kraken::{KrakenFault, KrakenSim, KrakenSimConfig, KrakenSimHandle, SimKey};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

const LIMIT: Duration = Duration::from_secs(10);

const DOC_SECRET: &str =
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";

fn b64(fill: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([fill; 64])
}

fn sim_key(name: &str, fill: u8) -> SimKey {
    SimKey {
        api_key: name.to_string(),
        secret_b64: b64(fill),
    }
}

fn key_set(index: u8, name: &str, fill: u8) -> KeySet {
    KeySet {
        index,
        key: Secret::new(name),
        secret: ApiSecret::from_base64(&Secret::new(b64(fill))).unwrap(),
    }
}

fn start(cfg: KrakenSimConfig) -> KrakenSimHandle {
    KrakenSim::start(KrakenSimConfig {
        keys: vec![sim_key("key-one", 1), sim_key("key-two", 2)],
        data_every: Duration::from_millis(50),
        heartbeat_every: Duration::from_millis(300),
        ..cfg
    })
    .expect("simulator starts")
}

/// A minimal HTTP/1.1 exchange: one request per connection.
struct Answer {
    status: u16,
    date: Option<String>,
    body: String,
}

fn post(sim: &KrakenSimHandle, req: &PrivateRequest) -> Answer {
    let mut tcp = TcpStream::connect(("127.0.0.1", sim.rest_port())).unwrap();
    tcp.set_read_timeout(Some(LIMIT)).unwrap();
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: brokerguard-test\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n",
        req.path,
        req.body.len()
    );
    for (k, v) in &req.headers {
        head.push_str(&format!("{k}: {}\r\n", v.expose()));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).unwrap();
    tcp.write_all(req.body.as_bytes()).unwrap();
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let date = head
        .lines()
        .find_map(|l| l.strip_prefix("Date: "))
        .map(String::from);
    Answer {
        status,
        date,
        body: body.to_string(),
    }
}

fn call(
    sim: &KrakenSimHandle,
    method: &str,
    nonce: u64,
    set: &KeySet,
) -> Result<serde_json::Value, KrakenError> {
    let req = private_request(method, &[], nonce, &set.key, &set.secret).unwrap();
    let a = post(sim, &req);
    parse_response(a.status, &a.body).map(|r| r.result)
}

#[test]
fn rest_round_trip_with_the_signer_is_accepted_and_dated() {
    let sim = start(KrakenSimConfig::default());
    let set = key_set(1, "key-one", 1);
    let req = private_request("Balance", &[], 1_000, &set.key, &set.secret).unwrap();
    let a = post(&sim, &req);
    assert_eq!(a.status, 200);
    let date = a.date.expect("a Date header");
    assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
    let reply = parse_response(a.status, &a.body).expect("accepted");
    let balances = parse_balance(&reply.result).unwrap();
    assert!(
        balances
            .iter()
            .any(|(k, v)| k == "ZUSD" && v == "171288.6158")
    );
    assert_eq!(sim.stats().nonces_seen["key-one"], vec![1_000]);
    assert_eq!(sim.last_nonce("key-one"), Some(1_000));
}

#[test]
fn a_reused_or_lower_nonce_is_rejected_on_arrival() {
    let sim = start(KrakenSimConfig::default());
    let one = key_set(1, "key-one", 1);
    let two = key_set(2, "key-two", 2);
    assert!(call(&sim, "Balance", 500, &one).is_ok());
    assert_eq!(
        call(&sim, "Balance", 500, &one),
        Err(KrakenError::InvalidNonce)
    );
    assert_eq!(
        call(&sim, "Balance", 499, &one),
        Err(KrakenError::InvalidNonce)
    );
    assert!(call(&sim, "Balance", 501, &one).is_ok());
    // Each key has its own counter.
    assert!(call(&sim, "Balance", 10, &two).is_ok());
    let st = sim.stats();
    assert_eq!(st.nonces_seen["key-one"], vec![500, 501]);
    assert_eq!(st.nonces_rejected["key-one"], vec![500, 499]);
    assert_eq!(st.nonces_seen["key-two"], vec![10]);
    // Keys and signatures are checked too.
    let stranger = key_set(1, "key-unknown", 1);
    assert_eq!(
        call(&sim, "Balance", 600, &stranger),
        Err(KrakenError::InvalidKey)
    );
    let wrong_secret = key_set(1, "key-one", 9);
    assert_eq!(
        call(&sim, "Balance", 600, &wrong_secret),
        Err(KrakenError::InvalidSignature)
    );
    // A refused signature does not move the key's nonce.
    assert_eq!(sim.last_nonce("key-one"), Some(501));
}

#[test]
fn the_published_signature_vector_is_accepted_by_the_simulator() {
    let sim = start(KrakenSimConfig::default());
    sim.add_key(SimKey {
        api_key: "doc-key".into(),
        secret_b64: DOC_SECRET.into(),
    })
    .unwrap();
    let secret = ApiSecret::from_base64(&Secret::new(DOC_SECRET)).unwrap();
    let req = private_request(
        "AddOrder",
        &[
            ("ordertype", "limit"),
            ("pair", "XBTUSD"),
            ("price", "37500"),
            ("type", "buy"),
            ("volume", "1.25"),
        ],
        1616492376594,
        &Secret::new("doc-key"),
        &secret,
    )
    .unwrap();
    assert_eq!(
        req.headers[1].1.expose(),
        "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
    );
    let a = post(&sim, &req);
    let reply =
        parse_response(a.status, &a.body).expect("the simulator verifies the published vector");
    assert_eq!(
        reply.result["descr"]["order"],
        "buy 1.25 XBTUSD @ limit 37500"
    );
    // The same request again is a replay: its nonce is no longer above the last.
    let a = post(&sim, &req);
    assert_eq!(
        parse_response(a.status, &a.body).unwrap_err(),
        KrakenError::InvalidNonce
    );
}

#[test]
fn faults_come_back_as_typed_errors_of_their_class() {
    let sim = start(KrakenSimConfig::default());
    let one = key_set(1, "key-one", 1);
    let mut nonce = 1_000;
    let now = std::time::SystemTime::now();
    for (fault, want, class) in [
        (
            KrakenFault::Lockout { key: None },
            KrakenError::TemporaryLockout,
            ErrorClass::RateLimited {
                retry_after: Some(Duration::from_secs(900)),
            },
        ),
        (
            KrakenFault::InvalidKey { key: None },
            KrakenError::InvalidKey,
            ErrorClass::Auth,
        ),
        (
            KrakenFault::PermissionDenied { key: None },
            KrakenError::PermissionDenied,
            ErrorClass::Auth,
        ),
        (
            KrakenFault::RateLimit { key: None },
            KrakenError::RateLimitExceeded,
            ErrorClass::RateLimited { retry_after: None },
        ),
        (
            KrakenFault::Unavailable,
            KrakenError::ServiceUnavailable,
            ErrorClass::RateLimited { retry_after: None },
        ),
        (
            KrakenFault::InvalidNonce { key: None },
            KrakenError::InvalidNonce,
            ErrorClass::Auth,
        ),
    ] {
        sim.set_fault(fault.clone());
        nonce += 1;
        let e = call(&sim, "Balance", nonce, &one).unwrap_err();
        assert_eq!(e, want, "{fault}");
        assert_eq!(e.class(now), class, "{fault}");
    }
    // A fault naming another key leaves this one alone.
    sim.set_fault(KrakenFault::Lockout {
        key: Some("key-two".into()),
    });
    nonce += 1;
    assert!(call(&sim, "Balance", nonce, &one).is_ok());
    // A one-shot nonce conflict ends by itself.
    sim.set_fault(KrakenFault::InvalidNonceOnce);
    nonce += 1;
    assert_eq!(
        call(&sim, "Balance", nonce, &one),
        Err(KrakenError::InvalidNonce)
    );
    assert_eq!(sim.fault(), None);
    nonce += 1;
    assert!(call(&sim, "Balance", nonce, &one).is_ok());
}

/// Runs `call_private` against the simulator with a counter per key.
fn policy_call(
    sim: &KrakenSimHandle,
    keys: &[KeySet],
    fb: &mut KeyFallback,
    counter: &mut u64,
    now: u64,
) -> (Result<(), String>, Vec<CallEvent>, u8) {
    let mut nonce = |_: &str| -> Result<u64, String> {
        *counter += 1;
        Ok(*counter)
    };
    let mut send = |r: &PrivateRequest| -> Result<HttpReply, String> {
        let a = post(sim, r);
        Ok(HttpReply {
            status: a.status,
            body: a.body,
        })
    };
    let r = call_private(
        "Balance",
        &[],
        keys,
        fb,
        &mut nonce,
        &mut send,
        Mono(Duration::from_secs(now)),
    );
    (
        r.result.map(|_| ()).map_err(|e| e.to_string()),
        r.events,
        r.key_set,
    )
}

#[test]
fn nonce_conflicts_redraw_and_a_lockout_falls_back_to_the_next_key_set() {
    let sim = start(KrakenSimConfig::default());
    let keys = vec![key_set(1, "key-one", 1), key_set(2, "key-two", 2)];
    let mut fb = KeyFallback::new("master", &[1, 2], DEFAULT_FALLBACK_RESET);
    let mut counter = 100;
    // A sibling's larger nonce arrived first: one redraw and the call goes through.
    sim.set_fault(KrakenFault::InvalidNonceOnce);
    let (r, events, set) = policy_call(&sim, &keys, &mut fb, &mut counter, 0);
    assert_eq!(r, Ok(()));
    assert_eq!(set, 1);
    let alerts: Vec<String> = events
        .iter()
        .filter_map(CallEvent::alert)
        .map(|a| a.to_string())
        .collect();
    assert_eq!(
        alerts,
        [
            "alert=nonce_conflict broker=kraken account=master method=Balance key_set=1 action=redraw"
        ]
    );
    // Key set 1 is locked out: set 2 takes over at once.
    sim.set_fault(KrakenFault::Lockout {
        key: Some("key-one".into()),
    });
    let (r, events, set) = policy_call(&sim, &keys, &mut fb, &mut counter, 10);
    assert_eq!(r, Ok(()));
    assert_eq!(set, 2);
    let alerts: Vec<String> = events
        .iter()
        .filter_map(CallEvent::alert)
        .map(|a| a.to_string())
        .collect();
    assert_eq!(
        alerts,
        ["alert=key_fallback account=master from=1 to=2 reason=lockout"]
    );
    assert!(!sim.stats().nonces_seen["key-two"].is_empty());
    // An hour without key errors: back to set 1.
    sim.clear_fault();
    let (r, _, set) = policy_call(&sim, &keys, &mut fb, &mut counter, 10 + 3600);
    assert_eq!((r, set), (Ok(()), 1));
    // Conflicts that repeat on the only set end in the auth class.
    sim.set_fault(KrakenFault::InvalidNonce { key: None });
    let mut solo = KeyFallback::new("solo", &[1], DEFAULT_FALLBACK_RESET);
    let (r, events, _) = policy_call(&sim, &keys[..1], &mut solo, &mut counter, 0);
    assert!(r.unwrap_err().contains("EAPI:Invalid nonce"));
    assert_eq!(events.len(), 2);
}

/// The WebSocket core driven by hand: messages from the simulator go into
/// the core, the core's `Send`s go back out.
struct Drive {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    core: KrakenCore,
    started: Instant,
    /// Every action the core returned, in order.
    log: Vec<Action>,
    /// The texts sent to the simulator.
    sent: Vec<String>,
}

impl Drive {
    fn connect(url: &str, core: KrakenCore) -> Drive {
        let (ws, _) = tungstenite::connect(url).expect("WebSocket upgrade");
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        }
        let mut d = Drive {
            ws,
            core,
            started: Instant::now(),
            log: Vec::new(),
            sent: Vec::new(),
        };
        let acts = d.core.open(d.now());
        d.run(acts);
        d
    }

    fn now(&self) -> Mono {
        Mono(self.started.elapsed())
    }

    fn run(&mut self, actions: Vec<Action>) {
        for a in &actions {
            if let Action::Send(Outbound::Text(t)) = a {
                self.sent.push(t.expose().to_string());
                self.ws.send(Message::text(t.expose())).expect("send");
            }
        }
        self.log.extend(actions);
    }

    /// Pumps messages (and ticks) until an action after index `from`
    /// matches `pred`; returns its index.
    fn until(&mut self, from: usize, what: &str, pred: impl Fn(&Action) -> bool) -> usize {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(i) = self.log.iter().skip(from).position(&pred) {
                return from + i;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {LIMIT:?}; actions: {:#?}",
                self.log
            );
            let now = self.now();
            let ticked = self.core.tick(now);
            self.run(ticked);
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    let acts = self.core.receive(Inbound::Text(t.as_str()), self.now());
                    self.run(acts);
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("WebSocket read failed: {e}"),
            }
        }
    }

    fn subscribe(&mut self) {
        let acts = self.core.subscribe(self.now());
        self.run(acts);
    }

    fn fails(&self) -> Vec<&brokerguard::feed::FeedError> {
        self.log
            .iter()
            .filter_map(|a| match a {
                Action::Fail(e) => Some(e),
                _ => None,
            })
            .collect()
    }
}

fn book_core(symbols: &[&str], channels: &[Channel]) -> KrakenCore {
    KrakenCore::public(
        "kbook",
        PublicPlan {
            channels: channels.to_vec(),
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            depth: 10,
            ohlc_interval: None,
        },
    )
}

fn is_book_data(a: &Action) -> bool {
    matches!(a, Action::Data(t) if t.starts_with(r#"{"channel":"book""#))
}

#[test]
fn ws_core_subscribes_keeps_alive_and_resyncs_a_corrupted_book() {
    let sim = start(KrakenSimConfig::default());
    let mut d = Drive::connect(
        &sim.ws_url(),
        book_core(&["BTC/USD", "ETH/USD"], &[Channel::Ticker, Channel::Book]),
    );
    let ready = d.until(0, "ready", |a| *a == Action::Ready);
    assert!(
        matches!(&d.log[ready - 1], Action::LayerPassed { layer: Layer::Handshake, detail } if detail.contains("online"))
    );
    d.subscribe();
    assert_eq!(d.sent.len(), 2, "one subscribe per channel: {:?}", d.sent);
    let i = d.until(0, "the book subscription confirmed", |a| {
        matches!(a, Action::Subscribed { detail } if detail == "book BTC/USD, ETH/USD (depth 10)")
    });
    d.until(
        0,
        "the ticker subscription confirmed",
        |a| matches!(a, Action::Subscribed { detail } if detail.starts_with("ticker")),
    );
    // Snapshots and updates verify and reach the bot as sent.
    let first = d.until(i, "a verified book message", is_book_data);
    let mut updates = 0;
    let mut at = first;
    while updates < 20 {
        at = d.until(at + 1, "more verified book messages", is_book_data);
        updates += 1;
    }
    d.until(
        0,
        "ticker data",
        |a| matches!(a, Action::Data(t) if t.contains(r#""channel":"ticker""#)),
    );
    assert!(d.fails().is_empty(), "{:?}", d.fails());
    // Keepalive: ping → pong with that req_id.
    let before = d.log.len();
    let ping = d.core.keepalive(d.now());
    d.run(ping);
    d.until(before, "the pong", |a| *a == Action::Pong);
    // A corrupted checksum: resync event, unsubscribe + subscribe, then a
    // fresh snapshot that verifies.
    let before = d.log.len();
    sim.set_fault(KrakenFault::CorruptChecksumOnce);
    let ev = d.until(before, "a resync", |a| {
        matches!(a, Action::Event { name: "resync", .. })
    });
    let Action::Event { fields, .. } = &d.log[ev] else {
        unreachable!()
    };
    assert_eq!(fields["reason"], "checksum");
    let symbol = fields["symbol"].as_str().unwrap().to_string();
    assert!(
        d.sent
            .iter()
            .any(|s| s.contains(r#""method":"unsubscribe""#) && s.contains(&symbol))
    );
    let fresh = d.until(ev, "a fresh snapshot of the resynced book", |a| {
        matches!(a, Action::Data(t) if t.contains(r#""type":"snapshot""#) && t.contains(&format!("\"{symbol}\"")))
    });
    d.until(fresh + 1, "updates after the fresh snapshot", |a| {
        matches!(a, Action::Data(t) if t.contains(r#""type":"update""#) && t.contains(&format!("\"{symbol}\"")))
    });
    assert!(sim.wait_for(
        |s| s.resubscribes == 1 && s.unsubscribes == 1 && s.corrupted_checksums_sent == 1,
        LIMIT
    ));
    assert!(d.fails().is_empty(), "{:?}", d.fails());
    assert!(!d.log.iter().any(|a| matches!(a, Action::Alert(_))));
}

#[test]
fn ws_core_sees_heartbeats_when_idle_and_maintenance_as_degraded() {
    let sim = start(KrakenSimConfig::default());
    // A private subscription sends nothing periodic: heartbeats only.
    let set = key_set(1, "key-one", 1);
    let token = parse_ws_token(&call(&sim, "GetWebSocketsToken", 1, &set).unwrap()).unwrap();
    let core = KrakenCore::private(
        "kexec",
        PrivatePlan {
            channels: vec![Channel::Executions],
        },
        token.token,
    );
    let mut d = Drive::connect(&sim.ws_auth_url(), core);
    d.until(0, "ready", |a| *a == Action::Ready);
    d.subscribe();
    d.until(0, "the token accepted", |a| {
        matches!(
            a,
            Action::LayerPassed {
                layer: Layer::Auth,
                ..
            }
        )
    });
    d.until(
        0,
        "the executions snapshot",
        |a| matches!(a, Action::Data(t) if t.contains("executions")),
    );
    let hb = d.until(0, "a heartbeat", |a| *a == Action::Heartbeat);
    d.until(hb + 1, "a second heartbeat", |a| *a == Action::Heartbeat);
    sim.set_fault(KrakenFault::Maintenance);
    let deg = d.until(0, "degraded", |a| matches!(a, Action::Degraded { .. }));
    sim.clear_fault();
    d.until(deg, "restored", |a| matches!(a, Action::Restored { .. }));
    assert!(d.fails().is_empty(), "{:?}", d.fails());
    assert_eq!(sim.stats().tokens_issued, 1);
}

#[test]
fn a_symbol_the_simulator_does_not_list_is_a_config_error() {
    let sim = start(KrakenSimConfig::default());
    let mut d = Drive::connect(
        &sim.ws_url(),
        book_core(&["BTC/USD", "XDG/USD"], &[Channel::Ticker]),
    );
    d.until(0, "ready", |a| *a == Action::Ready);
    d.subscribe();
    let f = d.until(0, "a failure", |a| matches!(a, Action::Fail(_)));
    let Action::Fail(e) = &d.log[f] else {
        unreachable!()
    };
    assert_eq!(e.class, ErrorClass::Config);
    assert!(
        e.message.contains("ticker XDG/USD") && e.message.contains("Currency pair not supported"),
        "{e}"
    );
    // The reject-symbol fault refuses a listed one the same way.
    sim.set_fault(KrakenFault::RejectSymbol {
        symbol: "ETH/USD".into(),
    });
    let mut d = Drive::connect(&sim.ws_url(), book_core(&["ETH/USD"], &[Channel::Book]));
    d.until(0, "ready", |a| *a == Action::Ready);
    d.subscribe();
    let f = d.until(0, "a failure", |a| matches!(a, Action::Fail(_)));
    let Action::Fail(e) = &d.log[f] else {
        unreachable!()
    };
    assert!(e.message.contains("book ETH/USD"), "{e}");
}

#[test]
fn private_channels_take_only_fresh_tokens_the_rest_api_issued() {
    let plan = PrivatePlan {
        channels: vec![Channel::Balances],
    };
    let refused = |sim: &KrakenSimHandle, token: Secret| {
        let mut d = Drive::connect(
            &sim.ws_auth_url(),
            KrakenCore::private("kbal", plan.clone(), token),
        );
        d.until(0, "ready", |a| *a == Action::Ready);
        d.subscribe();
        let f = d.until(0, "a failure", |a| matches!(a, Action::Fail(_)));
        let Action::Fail(e) = &d.log[f] else {
            unreachable!()
        };
        (e.class, e.layer, e.message.clone())
    };
    let sim = start(KrakenSimConfig::default());
    let (class, layer, message) = refused(&sim, Secret::new("CANARY-made-up-token"));
    assert_eq!((class, layer), (ErrorClass::Auth, Some(Layer::Auth)));
    assert!(!message.contains("CANARY"), "{message}");
    // An issued token works.
    let set = key_set(1, "key-one", 1);
    let token = parse_ws_token(&call(&sim, "GetWebSocketsToken", 1, &set).unwrap()).unwrap();
    assert_eq!(token.expires, Some(Duration::from_secs(900)));
    let mut d = Drive::connect(
        &sim.ws_auth_url(),
        KrakenCore::private("kbal", plan.clone(), token.token),
    );
    d.until(0, "ready", |a| *a == Action::Ready);
    d.subscribe();
    d.until(
        0,
        "the balances snapshot",
        |a| matches!(a, Action::Data(t) if t.contains("balances")),
    );
    assert_eq!(sim.stats().tokens_refused, 1);
    // A token past its lifetime is refused: here the lifetime is zero.
    let expiring = start(KrakenSimConfig {
        token_ttl: Duration::ZERO,
        ..KrakenSimConfig::default()
    });
    let token = parse_ws_token(&call(&expiring, "GetWebSocketsToken", 1, &set).unwrap()).unwrap();
    let (class, _, _) = refused(&expiring, token.token);
    assert_eq!(class, ErrorClass::Auth);
    assert_eq!(expiring.stats().tokens_refused, 1);
}
