//! The TWS protocol core against the TWS simulator over a real loopback
//! socket, driven by hand with a tiny framing loop (the shared framed
//! transport comes later): handshake, 326 and the next client id, IB
//! connectivity codes, farm codes, the keepalive, a contract without a
//! definition, and the layer each timeout names.

use brokerguard::brokers::ibkr::settings::ClientIds;
use brokerguard::brokers::ibkr::{Contract, TwsCore, TwsCoreConfig};
use brokerguard::clock::Mono;
use brokerguard::feed::{Action, ErrorClass, Inbound, Layer, Outbound, ProtocolCore};
use brokerguard::sim::ibkr::{TwsFault, TwsSim, TwsSimConfig, TwsSimHandle};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

fn sim() -> TwsSimHandle {
    TwsSim::start(TwsSimConfig {
        tick_every: Duration::from_millis(50),
        ..TwsSimConfig::default()
    })
    .expect("start the TWS simulator")
}

fn aapl() -> Vec<Contract> {
    vec![Contract::stock("AAPL", "SMART", "USD")]
}

/// A core on a plain TcpStream: writes what it sends (`Raw` as is, `Frame`
/// with its 4-byte length), cuts what arrives into frames, and records
/// every other action.
struct Driver {
    tcp: TcpStream,
    core: TwsCore,
    inbox: Vec<u8>,
    start: Instant,
    /// Every action that was not a send, in order.
    seen: Vec<Action>,
    /// Frames the core sent (length prefix removed), in order.
    sent: Vec<Vec<u8>>,
    closed: Option<Instant>,
}

impl Driver {
    fn connect(port: u16, client_id: i32, contracts: Vec<Contract>) -> Driver {
        let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        tcp.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut d = Driver {
            tcp,
            core: TwsCore::new(TwsCoreConfig::new(client_id, contracts)),
            inbox: Vec::new(),
            start: Instant::now(),
            seen: Vec::new(),
            sent: Vec::new(),
            closed: None,
        };
        let now = d.now();
        let actions = d.core.open(now);
        d.perform(actions);
        d
    }

    fn now(&self) -> Mono {
        Mono(self.start.elapsed())
    }

    fn perform(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send(Outbound::Raw(b)) => self.tcp.write_all(&b).expect("write raw"),
                Action::Send(Outbound::Frame(b)) => {
                    let mut framed = (b.len() as u32).to_be_bytes().to_vec();
                    framed.extend_from_slice(&b);
                    self.tcp.write_all(&framed).expect("write frame");
                    self.sent.push(b);
                }
                Action::Send(other) => panic!("a TWS core sent {other:?}"),
                other => self.seen.push(other),
            }
        }
    }

    /// Reads and feeds frames until an action matching `pred` is seen
    /// (returned), the peer closes, or `limit` passes.
    fn until(&mut self, limit: Duration, pred: impl Fn(&Action) -> bool) -> Option<Action> {
        let from = self.seen.len();
        let deadline = Instant::now() + limit;
        loop {
            if let Some(a) = self.seen[from..].iter().find(|a| pred(a)) {
                return Some(a.clone());
            }
            if Instant::now() >= deadline || self.closed.is_some() {
                return None;
            }
            let mut buf = [0u8; 8192];
            match self.tcp.read(&mut buf) {
                Ok(0) => self.closed = Some(Instant::now()),
                Ok(n) => self.inbox.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => self.closed = Some(Instant::now()),
            }
            while self.inbox.len() >= 4 {
                let len = u32::from_be_bytes([
                    self.inbox[0],
                    self.inbox[1],
                    self.inbox[2],
                    self.inbox[3],
                ]) as usize;
                if self.inbox.len() < 4 + len {
                    break;
                }
                let frame: Vec<u8> = self.inbox.drain(..4 + len).skip(4).collect();
                let now = self.now();
                let actions = self.core.receive(Inbound::Frame(&frame), now);
                self.perform(actions);
            }
        }
    }

    fn ready(port: u16, client_id: i32, contracts: Vec<Contract>) -> Driver {
        let mut d = Driver::connect(port, client_id, contracts);
        assert!(
            d.until(WAIT, |a| *a == Action::Ready).is_some(),
            "never ready: {:?}",
            d.seen
        );
        d
    }

    fn live(port: u16, contracts: Vec<Contract>) -> Driver {
        let mut d = Driver::ready(port, 1, contracts);
        let now = d.now();
        let actions = d.core.subscribe(now);
        d.perform(actions);
        assert!(d.until(WAIT, is_data).is_some(), "no data: {:?}", d.seen);
        d
    }

    fn keepalive(&mut self) {
        let now = self.now();
        let actions = self.core.keepalive(now);
        self.perform(actions);
    }

    fn sends_since(&self, n: usize) -> Vec<String> {
        self.sent[n..]
            .iter()
            .map(|f| {
                let text = String::from_utf8_lossy(f);
                text.split('\0').take(3).collect::<Vec<_>>().join(",")
            })
            .collect()
    }
}

fn is_data(a: &Action) -> bool {
    matches!(a, Action::Data(_))
}

fn is_fail(a: &Action) -> bool {
    matches!(a, Action::Fail(_))
}

#[test]
fn handshake_bytes_and_a_ready_session_with_ticks() {
    let sim = sim();
    let mut d = Driver::connect(sim.port(), 1, aapl());
    let passed = d.until(WAIT, |a| {
        matches!(
            a,
            Action::LayerPassed {
                layer: Layer::Handshake,
                ..
            }
        )
    });
    assert!(passed.is_some(), "{:?}", d.seen);
    assert!(
        d.until(WAIT, |a| *a == Action::Ready).is_some(),
        "{:?}",
        d.seen
    );
    // The greeting as the simulator read it, and START_API's bytes as sent.
    let st = sim.stats();
    assert_eq!(st.greetings, ["v157..178"]);
    assert_eq!(st.client_ids_seen, [1]);
    assert_eq!(d.sent[0], b"71\x002\x001\x00\x00");
    assert!(d.seen.iter().any(
        |a| matches!(a, Action::LayerPassed { layer: Layer::Auth, detail }
        if detail.contains("DU1234567"))
    ));

    let now = d.now();
    let actions = d.core.subscribe(now);
    d.perform(actions);
    assert!(
        d.until(WAIT, |a| matches!(a, Action::Subscribed { .. }))
            .is_some()
    );
    let Some(Action::Data(line)) = d.until(WAIT, is_data) else {
        panic!("no tick: {:?}", d.seen)
    };
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["symbol"], "AAPL");
    assert_eq!(v["req_id"], 1000);
    let reqs = &sim.stats().mkt_data_requests_per_connection[0];
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        (
            reqs[0].symbol.as_str(),
            reqs[0].exchange.as_str(),
            reqs[0].currency.as_str()
        ),
        ("AAPL", "SMART", "USD")
    );
    // ib_async's layout: 19 fields after the message id.
    assert_eq!(reqs[0].field_count, 19);
    assert!(!reqs[0].snapshot);
}

#[test]
fn client_id_in_use_then_the_next_id_succeeds() {
    let sim = sim();
    sim.hold_client_id(1);
    let ids = ClientIds::from_config(None, Some(&[1, 3])).unwrap();
    assert_eq!(ids.first, 1);

    let mut d = Driver::connect(sim.port(), ids.first, aapl());
    let Some(Action::Fail(e)) = d.until(WAIT, is_fail) else {
        panic!("no failure: {:?}", d.seen)
    };
    assert_eq!(e.class, ErrorClass::GoingAway);
    assert_eq!(e.layer, Some(Layer::Auth));
    assert_eq!(d.core.rejected_client_id(), Some(1));
    let failed_at = Instant::now();
    // TWS closes the socket about 0.7 s after the 326.
    d.until(WAIT, |_| false);
    let closed = d.closed.expect("the simulator closes after 326");
    let after = closed.duration_since(failed_at);
    assert!(
        after >= Duration::from_millis(400) && after < Duration::from_secs(3),
        "{after:?}"
    );

    let next = ids.next_after(1, 1).expect("another id in the range");
    assert_eq!(next, 2);
    let d2 = Driver::ready(sim.port(), next, aapl());
    assert_eq!(d2.core.rejected_client_id(), None);
    assert!(sim.wait_for(|s| s.sessions_ready == 1, WAIT));
    let st = sim.stats();
    assert_eq!(st.client_ids_rejected, [1]);
    assert_eq!(st.client_ids_seen, [1, 2]);
}

#[test]
fn the_same_client_id_twice_is_refused_like_tws() {
    let sim = sim();
    let _first = Driver::ready(sim.port(), 7, vec![]);
    let mut second = Driver::connect(sim.port(), 7, vec![]);
    assert!(second.until(WAIT, is_fail).is_some());
    assert_eq!(second.core.rejected_client_id(), Some(7));
    // The simulator counts the refusal just after writing it.
    assert!(sim.wait_for(|s| s.client_ids_rejected == [7], WAIT));
}

#[test]
fn connectivity_lost_degrades_and_1102_restores_with_nothing_resent() {
    let sim = sim();
    let mut d = Driver::live(sim.port(), aapl());
    let sent = d.sent.len();
    assert_eq!(sim.notify(1100), 1);
    assert!(
        d.until(WAIT, |a| matches!(a, Action::Degraded { .. }))
            .is_some(),
        "{:?}",
        d.seen
    );
    assert_eq!(sim.notify(1102), 1);
    let Some(Action::Restored { detail }) = d.until(WAIT, |a| matches!(a, Action::Restored { .. }))
    else {
        panic!("{:?}", d.seen)
    };
    assert!(detail.contains("data maintained"), "{detail}");
    // Ticks flow again on the subscription TWS kept.
    assert!(d.until(WAIT, is_data).is_some());
    assert!(d.sends_since(sent).is_empty(), "{:?}", d.sends_since(sent));
    assert_eq!(sim.stats().mkt_data_requests(0), 1);
}

#[test]
fn data_lost_1101_rerequests_market_data_on_the_same_connection() {
    let sim = sim();
    let mut d = Driver::live(sim.port(), aapl());
    let sent = d.sent.len();
    sim.notify(1100);
    assert!(
        d.until(WAIT, |a| matches!(a, Action::Degraded { .. }))
            .is_some()
    );
    sim.notify(1101);
    assert!(
        d.until(WAIT, |a| matches!(a, Action::Restored { .. }))
            .is_some(),
        "{:?}",
        d.seen
    );
    assert_eq!(d.sends_since(sent), ["1,11,1000"]);
    assert!(
        sim.wait_for(|s| s.mkt_data_requests(0) == 2, WAIT),
        "{:?}",
        sim.stats().mkt_data_requests_per_connection
    );
    let from = d.seen.len();
    assert!(
        d.until(WAIT, is_data).is_some(),
        "no ticks after 1101: {:?}",
        &d.seen[from..]
    );
    let st = sim.stats();
    assert_eq!(st.connections_accepted, 1);
    assert_eq!(st.sent_code(322), 0, "a duplicate request id");
}

#[test]
fn market_data_farm_broken_then_ok_rerequests() {
    let sim = sim();
    let mut d = Driver::live(sim.port(), aapl());
    let sent = d.sent.len();
    sim.notify(2103);
    assert!(
        d.until(WAIT, |a| matches!(a, Action::Degraded { .. }))
            .is_some()
    );
    sim.notify(2104);
    assert!(
        d.until(WAIT, |a| matches!(a, Action::Restored { .. }))
            .is_some()
    );
    assert_eq!(d.sends_since(sent), ["2,2,1000", "1,11,1000"]);
    assert!(sim.wait_for(
        |s| s.mkt_data_requests(0) == 2 && s.mkt_data_cancels == 1,
        WAIT
    ));
    assert!(d.until(WAIT, is_data).is_some());
    assert_eq!(sim.stats().sent_code(322), 0);
}

#[test]
fn unanswered_req_current_time_gives_no_pong() {
    let sim = sim();
    let mut d = Driver::live(sim.port(), aapl());
    d.keepalive();
    assert!(d.until(WAIT, |a| *a == Action::Pong).is_some());
    sim.set_fault(TwsFault::NoCurrentTime);
    let from = d.seen.len();
    d.keepalive();
    assert!(sim.wait_for(|s| s.current_time_requests == 2, WAIT));
    // Ticks still arrive; the pong never does (the engine's pong_timeout acts).
    assert!(
        d.until(Duration::from_millis(600), |a| *a == Action::Pong)
            .is_none()
    );
    assert!(d.seen[from..].iter().any(is_data));
    assert_eq!(sim.stats().current_time_answered, 1);
}

#[test]
fn a_contract_without_definition_is_a_configuration_error() {
    let sim = sim();
    let mut d = Driver::ready(
        sim.port(),
        1,
        vec![Contract::stock("ZZZZNOTREAL", "SMART", "USD")],
    );
    let now = d.now();
    let actions = d.core.subscribe(now);
    d.perform(actions);
    let Some(Action::Fail(e)) = d.until(WAIT, is_fail) else {
        panic!("{:?}", d.seen)
    };
    assert_eq!(e.class, ErrorClass::Config);
    assert_eq!(e.layer, Some(Layer::Data));
    assert!(e.message.contains("ZZZZNOTREAL STK SMART USD"), "{e}");
    assert!(e.message.contains("error 200"), "{e}");
    assert!(sim.wait_for(|s| s.errors_sent.last() == Some(&(1000, 200)), WAIT));
}

#[test]
fn socket_port_reset_is_a_network_failure() {
    let sim = sim();
    let mut d = Driver::live(sim.port(), aapl());
    sim.notify(1300);
    let Some(Action::Fail(e)) = d.until(WAIT, is_fail) else {
        panic!("{:?}", d.seen)
    };
    assert_eq!(e.class, ErrorClass::Network);
    assert!(e.message.contains("1300"), "{e}");
}

#[test]
fn each_timeout_names_its_layer() {
    let sim = sim();
    sim.set_fault(TwsFault::NoGreetingReply);
    let mut mute = Driver::connect(sim.port(), 1, vec![]);
    assert!(sim.wait_for(|s| s.greetings.len() == 1, WAIT));
    assert!(mute.until(Duration::from_millis(300), |_| true).is_none());
    let e = mute.core.not_ready(Duration::from_secs(10));
    assert_eq!(e.layer, Some(Layer::Handshake));
    assert!(
        e.message.contains("Enable ActiveX and Socket Clients"),
        "{e}"
    );

    sim.set_fault(TwsFault::NoNextValidId);
    let mut stuck = Driver::connect(sim.port(), 2, vec![]);
    assert!(
        stuck
            .until(WAIT, |a| matches!(
                a,
                Action::LayerPassed {
                    layer: Layer::Handshake,
                    ..
                }
            ))
            .is_some()
    );
    assert!(
        stuck
            .until(Duration::from_millis(300), |a| *a == Action::Ready)
            .is_none()
    );
    let e = stuck.core.not_ready(Duration::from_secs(10));
    assert_eq!(e.layer, Some(Layer::Auth));
    assert!(
        e.message
            .contains("API session not ready: TWS is still logging in, or Read-Only API blocks it")
    );
    assert!(sim.wait_for(|s| s.handshakes_answered == 1, WAIT));
}
