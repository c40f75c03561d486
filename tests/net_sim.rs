//! The transports (net::tcp, net::ws) against the simulator (sim), over
//! loopback: happy paths over ws:// and wss://, every named failure, and
//! every simulator fault as a client sees it. Waits are deadlines, never
//! fixed sleeps.

use brokerguard::net::{self, NetError, Phase, WsConn, WsEvent, WsOptions};
use brokerguard::sim::{Fault, SimConfig, SimHandle, SimTls, Simulator};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const TOKEN: &str = "T-123";
const LONG: Duration = Duration::from_secs(5);

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

fn tls(cert: &str, key: &str) -> SimTls {
    SimTls {
        cert_pem: std::fs::read(fixture(cert)).unwrap(),
        key_pem: std::fs::read(fixture(key)).unwrap(),
    }
}

fn opts() -> WsOptions {
    WsOptions {
        connect_timeout: Duration::from_secs(2),
        handshake_timeout: Duration::from_secs(3),
        write_timeout: Duration::from_secs(2),
        read_tick: Duration::from_millis(50),
        ..WsOptions::default()
    }
}

fn sim(cfg: SimConfig) -> SimHandle {
    Simulator::start(cfg).expect("simulator starts")
}

fn authed_sim() -> SimHandle {
    sim(SimConfig {
        tokens: vec![TOKEN.into()],
        ..SimConfig::default()
    })
}

fn json(e: &WsEvent) -> Option<Value> {
    match e {
        WsEvent::Text(t) => serde_json::from_str(t).ok(),
        _ => None,
    }
}

/// Reads until an event matches `pred`, failing on error or after `limit`.
fn read_until(conn: &mut WsConn, limit: Duration, pred: impl Fn(&WsEvent) -> bool) -> WsEvent {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match conn.read() {
            Ok(Some(e)) if pred(&e) => return e,
            Ok(_) => {}
            Err(e) => panic!("read failed while waiting: {e}"),
        }
    }
    panic!("no matching event within {limit:?}");
}

fn read_type(conn: &mut WsConn, kind: &str) -> Value {
    let e = read_until(conn, LONG, |e| json(e).is_some_and(|v| v["type"] == kind));
    json(&e).unwrap()
}

/// Reads until the connection fails, returning the error (events before it are skipped).
fn read_until_error(conn: &mut WsConn, limit: Duration) -> NetError {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Err(e) = conn.read() {
            return e;
        }
    }
    panic!("connection did not fail within {limit:?}");
}

fn read_until_close(conn: &mut WsConn) -> (Option<u16>, String) {
    match read_until(conn, LONG, |e| matches!(e, WsEvent::Close { .. })) {
        WsEvent::Close { code, reason } => (code, reason),
        _ => unreachable!(),
    }
}

fn connect_and_auth(h: &SimHandle) -> WsConn {
    let mut c = net::ws::connect(&h.url(), &opts()).expect("connects");
    c.send_text(&format!(r#"{{"type":"auth","token":"{TOKEN}"}}"#))
        .unwrap();
    read_type(&mut c, "auth_ok");
    c
}

fn subscribe(c: &mut WsConn, channel: &str) {
    c.send_text(&format!(r#"{{"type":"subscribe","channel":"{channel}"}}"#))
        .unwrap();
    let v = read_type(c, "subscribed");
    assert_eq!(v["channel"], channel);
}

// ---------------------------------------------------------------- happy paths

#[test]
fn ws_auth_subscribe_data_and_poll() {
    let h = sim(SimConfig {
        tokens: vec![TOKEN.into()],
        data_every: Some(Duration::from_millis(20)),
        ..SimConfig::default()
    });
    let mut c = net::ws::connect(&format!("{}?token=SECRET", h.url()), &opts()).unwrap();
    assert_eq!(c.target(), format!("ws://127.0.0.1:{}/", h.port()));
    c.send_text(r#"{"type":"get_signals"}"#).unwrap();
    assert_eq!(read_type(&mut c, "error")["reason"], "not authenticated");
    c.send_text(&format!(r#"{{"type":"auth","token":"{TOKEN}"}}"#))
        .unwrap();
    read_type(&mut c, "auth_ok");
    subscribe(&mut c, "signals");
    let first = read_type(&mut c, "data");
    let second = read_type(&mut c, "data");
    assert_eq!(first["channel"], "signals");
    assert_eq!(
        (first["n"].as_u64(), second["n"].as_u64()),
        (Some(1), Some(2))
    );
    assert!(first["ts"].as_str().unwrap().ends_with('Z'));
    c.send_text(r#"{"type":"get_signals"}"#).unwrap();
    assert_eq!(read_type(&mut c, "signals")["n"], 1);
    c.send_ping(b"hi").unwrap();
    assert_eq!(
        read_until(&mut c, LONG, |e| matches!(e, WsEvent::Pong(_))),
        WsEvent::Pong(b"hi".to_vec())
    );
    let s = h.stats();
    assert_eq!(
        (s.connections_accepted, s.handshakes_completed, s.auth_ok),
        (1, 1, 1)
    );
    assert_eq!(s.tokens_seen, vec![TOKEN]);
    assert_eq!(s.pings_received, 1);
    c.close(1000, "done");
    assert!(h.wait_for(|s| s.live_connections == 0, LONG));
}

#[test]
fn wss_with_test_ca() {
    let h = sim(SimConfig {
        tokens: vec![TOKEN.into()],
        tls: Some(tls("server.pem", "server.key")),
        ..SimConfig::default()
    });
    assert!(h.url().starts_with("wss://localhost:"));
    for url in [h.url(), format!("wss://127.0.0.1:{}/", h.port())] {
        let o = WsOptions {
            ca_file: Some(fixture("ca.pem")),
            ..opts()
        };
        let mut c = net::ws::connect(&url, &o).unwrap_or_else(|e| panic!("{url}: {e}"));
        c.send_text(&format!(r#"{{"type":"auth","token":"{TOKEN}"}}"#))
            .unwrap();
        read_type(&mut c, "auth_ok");
        c.send_text(r#"{"type":"get_signals"}"#).unwrap();
        assert_eq!(read_type(&mut c, "signals")["n"], 1);
    }
}

#[test]
fn wss_server_not_signed_by_given_ca_is_a_tls_error() {
    let h = sim(SimConfig {
        tls: Some(tls("untrusted.pem", "untrusted.key")),
        ..SimConfig::default()
    });
    let o = WsOptions {
        ca_file: Some(fixture("ca.pem")),
        ..opts()
    };
    match net::ws::connect(&h.url(), &o) {
        Err(NetError::Tls(m)) => {
            assert!(m.contains("certificate"), "{m}")
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[test]
fn wss_without_the_ca_is_rejected_too() {
    let h = sim(SimConfig {
        tls: Some(tls("server.pem", "server.key")),
        ..SimConfig::default()
    });
    assert!(matches!(
        net::ws::connect(&h.url(), &opts()),
        Err(NetError::Tls(_))
    ));
}

// ------------------------------------------------------------ named failures

#[test]
fn refused_port_is_a_connect_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    match net::ws::connect(&format!("ws://127.0.0.1:{port}/"), &opts()) {
        Err(NetError::Connect { addr, source }) => {
            assert_eq!(addr.port(), port);
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("expected Connect, got {other:?}"),
    }
}

#[test]
fn server_that_never_answers_times_out_in_ws_handshake() {
    let h = sim(SimConfig {
        fault: Some(Fault::AcceptNoHandshake),
        ..SimConfig::default()
    });
    let o = WsOptions {
        handshake_timeout: Duration::from_millis(300),
        ..opts()
    };
    let t0 = Instant::now();
    let err = net::ws::connect(&h.url(), &o).unwrap_err();
    let took = t0.elapsed();
    assert_eq!(err.timeout_phase(), Some(Phase::WsHandshake), "{err}");
    assert!(
        took >= Duration::from_millis(280) && took < Duration::from_millis(1300),
        "{took:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "timeout (WebSocket handshake) after 300ms to ws://127.0.0.1:{}/",
            h.port()
        )
    );
    assert_eq!(h.stats().handshakes_completed, 0);
}

#[test]
fn tls_server_that_never_answers_times_out_in_tls_handshake() {
    let h = sim(SimConfig {
        tls: Some(tls("server.pem", "server.key")),
        fault: Some(Fault::AcceptNoHandshake),
        ..SimConfig::default()
    });
    let o = WsOptions {
        handshake_timeout: Duration::from_millis(300),
        ca_file: Some(fixture("ca.pem")),
        ..opts()
    };
    let t0 = Instant::now();
    let err = net::ws::connect(&h.url(), &o).unwrap_err();
    assert_eq!(err.timeout_phase(), Some(Phase::TlsHandshake), "{err}");
    assert!(t0.elapsed() < Duration::from_millis(1300));
}

#[test]
fn plain_listener_that_never_answers_times_out_too() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let o = WsOptions {
        handshake_timeout: Duration::from_millis(200),
        ..opts()
    };
    let t0 = Instant::now();
    let err = net::ws::connect(&format!("ws://127.0.0.1:{port}/"), &o).unwrap_err();
    assert_eq!(err.timeout_phase(), Some(Phase::WsHandshake), "{err}");
    assert!(t0.elapsed() < Duration::from_millis(1200));
    drop(l);
}

#[test]
fn http_401_on_upgrade_is_an_auth_rejection() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(LONG)).unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        s.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
    });
    let err = net::ws::connect(
        &format!("ws://127.0.0.1:{port}/feed?api_key=SECRET"),
        &opts(),
    )
    .unwrap_err();
    assert!(
        matches!(err, NetError::HttpStatus { status: 401 }),
        "{err:?}"
    );
    assert!(err.is_auth_rejection());
    assert!(!err.to_string().contains("SECRET"));
    server.join().unwrap();
}

#[test]
fn oversized_message_is_too_large() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut ws = tungstenite::accept(s).unwrap();
        ws.send(tungstenite::Message::text("x".repeat(4096)))
            .unwrap();
        // Hold the socket until the client gives up on it.
        let _ = ws.read();
    });
    let o = WsOptions {
        max_message_bytes: 1024,
        ..opts()
    };
    let mut c = net::ws::connect(&format!("ws://127.0.0.1:{port}/"), &o).unwrap();
    assert!(matches!(read_until_error(&mut c, LONG), NetError::TooLarge));
    c.close(1009, "too big");
    server.join().unwrap();
}

#[test]
fn interrupter_wakes_a_blocked_read() {
    let h = authed_sim();
    let o = WsOptions {
        read_tick: Duration::from_secs(1),
        ..opts()
    };
    let mut c = net::ws::connect(&h.url(), &o).unwrap();
    let stopper = c.interrupter();
    assert_eq!(stopper.peer_addr(), c.peer_addr());
    let (ready_tx, ready_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        ready_tx.send(()).unwrap();
        loop {
            match c.read() {
                Ok(_) => {}
                Err(e) => {
                    done_tx.send((Instant::now(), e)).unwrap();
                    return;
                }
            }
        }
    });
    ready_rx.recv().unwrap();
    assert!(h.wait_for(|s| s.handshakes_completed == 1, LONG));
    let t0 = Instant::now();
    stopper.shutdown();
    let (at, err) = done_rx.recv_timeout(LONG).expect("reader woke");
    assert!(matches!(err, NetError::Interrupted), "{err:?}");
    assert!(
        at.duration_since(t0) < Duration::from_millis(500),
        "woke after {:?}",
        at.duration_since(t0)
    );
    reader.join().unwrap();
}

#[test]
fn tcp_connect_sets_keepalive_and_user_timeout() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let s = net::tcp::connect("localhost", port, Duration::from_secs(2)).unwrap();
    let get = |level, name| {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: valid fd, out-pointer and length of a c_int.
        let rc = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                level,
                name,
                &mut v as *mut _ as *mut libc::c_void,
                &mut len,
            )
        };
        assert_eq!(rc, 0);
        v
    };
    assert_eq!(get(libc::SOL_SOCKET, libc::SO_KEEPALIVE), 1);
    assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE), 10);
    assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL), 5);
    assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPCNT), 3);
    assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT), 20_000);
    assert!(s.nodelay().unwrap());
    assert_eq!(s.read_timeout().unwrap(), Some(Duration::from_secs(2)));
}

#[test]
fn unresolvable_host_is_a_resolve_error() {
    match net::tcp::connect("no-such-host.invalid", 80, Duration::from_secs(3)) {
        Err(NetError::Resolve { host, .. }) => assert_eq!(host, "no-such-host.invalid"),
        // A resolver that hangs on .invalid is also bounded.
        Err(e @ NetError::Timeout(_)) => assert_eq!(e.timeout_phase(), Some(Phase::Resolve)),
        other => panic!("expected a resolve error, got {other:?}"),
    }
}

// ------------------------------------------------------------ simulator faults

#[test]
fn close_on_client_message_closes_1000_after_a_send() {
    let h = authed_sim();
    h.set_fault(Fault::CloseOnClientMessage { code: 1000 });
    let mut c = connect_and_auth(&h);
    c.send_text(r#"{"type":"get_signals"}"#).unwrap();
    assert_eq!(read_until_close(&mut c).0, Some(1000));
    // Reported once; afterwards the connection is an error, for reads and sends.
    assert!(matches!(
        c.read(),
        Err(NetError::Closed {
            code: Some(1000),
            ..
        })
    ));
    assert!(matches!(
        c.send_text("{}"),
        Err(NetError::Closed {
            code: Some(1000),
            ..
        })
    ));
    assert_eq!(h.stats().close_codes_sent, vec![1000]);
}

#[test]
fn reject_auth_answers_auth_failed_and_closes_1008() {
    let h = authed_sim();
    h.set_fault(Fault::RejectAuth);
    let mut c = net::ws::connect(&h.url(), &opts()).unwrap();
    c.send_text(&format!(r#"{{"type":"auth","token":"{TOKEN}"}}"#))
        .unwrap();
    assert_eq!(read_type(&mut c, "auth_failed")["reason"], "invalid token");
    assert_eq!(read_until_close(&mut c).0, Some(1008));
    assert_eq!(h.stats().auth_failed, 1);
}

#[test]
fn tokens_can_change_at_runtime() {
    let h = authed_sim();
    h.set_tokens(["new-token"]);
    let mut c = net::ws::connect(&h.url(), &opts()).unwrap();
    c.send_text(&format!(r#"{{"type":"auth","token":"{TOKEN}"}}"#))
        .unwrap();
    read_type(&mut c, "auth_failed");
    let mut c = net::ws::connect(&h.url(), &opts()).unwrap();
    c.send_text(r#"{"type":"auth","token":"new-token"}"#)
        .unwrap();
    read_type(&mut c, "auth_ok");
    assert_eq!(h.stats().tokens_seen, vec![TOKEN, "new-token"]);
}

#[test]
fn refuse_then_clear_rebinds_the_same_port() {
    let h = authed_sim();
    let port = h.port();
    let mut c = connect_and_auth(&h);
    h.set_fault(Fault::RefuseConnections);
    // The existing connection dies without a close frame (1006).
    assert!(matches!(
        read_until_error(&mut c, LONG),
        NetError::Closed { code: None, .. }
    ));
    match net::ws::connect(&h.url(), &opts()) {
        Err(NetError::Connect { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused)
        }
        other => panic!("expected refused, got {other:?}"),
    }
    h.clear_fault();
    assert_eq!(h.port(), port);
    let mut c = connect_and_auth(&h);
    c.send_text(r#"{"type":"get_signals"}"#).unwrap();
    read_type(&mut c, "signals");
}

#[test]
fn reset_existing_and_new_connections() {
    let h = authed_sim();
    let mut c = connect_and_auth(&h);
    h.set_fault(Fault::Reset);
    assert!(matches!(read_until_error(&mut c, LONG), NetError::Reset));
    match net::ws::connect(&h.url(), &opts()) {
        Err(NetError::Reset) => {}
        other => panic!("expected Reset, got {other:?}"),
    }
    assert!(h.wait_for(|s| s.resets_sent == 2, LONG));
}

#[test]
fn close_with_code_closes_existing_connections_once() {
    let h = authed_sim();
    let mut c = connect_and_auth(&h);
    h.set_fault(Fault::CloseWithCode { code: 1012 });
    assert_eq!(read_until_close(&mut c).0, Some(1012));
    // New connections are unaffected.
    let mut c = connect_and_auth(&h);
    c.send_text(r#"{"type":"get_signals"}"#).unwrap();
    read_type(&mut c, "signals");
}

#[test]
fn close_after_n_data_messages() {
    let h = sim(SimConfig {
        data_every: Some(Duration::from_millis(10)),
        fault: Some(Fault::CloseAfter {
            messages: 3,
            code: 4000,
        }),
        ..SimConfig::default()
    });
    let mut c = net::ws::connect(&h.url(), &opts()).unwrap();
    subscribe(&mut c, "ticks");
    let mut ns = Vec::new();
    let deadline = Instant::now() + LONG;
    let code = loop {
        assert!(Instant::now() < deadline, "no close");
        match c.read().unwrap() {
            Some(WsEvent::Close { code, .. }) => break code,
            Some(e) => ns.extend(
                json(&e)
                    .filter(|v| v["type"] == "data")
                    .and_then(|v| v["n"].as_u64()),
            ),
            None => {}
        }
    };
    assert_eq!((ns, code), (vec![1, 2, 3], Some(4000)));
}

#[test]
fn silent_with_pongs_stops_data_but_answers_pings() {
    let h = sim(SimConfig {
        data_every: Some(Duration::from_millis(10)),
        heartbeat_every: Some(Duration::from_millis(10)),
        ..SimConfig::default()
    });
    let mut c = net::ws::connect(&h.url(), &opts()).unwrap();
    subscribe(&mut c, "s");
    read_type(&mut c, "data");
    h.set_fault(Fault::SilentWithPongs);
    c.send_ping(b"p").unwrap();
    read_until(&mut c, LONG, |e| matches!(e, WsEvent::Pong(_)));
    // After the pong the server has seen the fault: nothing more may arrive.
    let sent = h.stats().data_sent;
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        if let Some(e) = c.read().unwrap() {
            panic!("silent server sent {e:?}");
        }
    }
    assert_eq!(h.stats().data_sent, sent);
}

#[test]
fn silent_no_pongs_keeps_the_socket_open_but_answers_nothing() {
    let h = authed_sim();
    let mut c = connect_and_auth(&h);
    h.set_fault(Fault::SilentNoPongs);
    // The socket stays open (reads keep timing out quietly) and no pong comes.
    let pings_before = h.stats().pings_received;
    c.send_ping(b"p").unwrap();
    let until = Instant::now() + Duration::from_millis(400);
    while Instant::now() < until {
        match c.read() {
            Ok(None) => {}
            other => panic!("frozen server produced {other:?}"),
        }
    }
    assert_eq!(h.stats().pings_received, pings_before);
    // New connections get no handshake.
    let o = WsOptions {
        handshake_timeout: Duration::from_millis(200),
        ..opts()
    };
    assert_eq!(
        net::ws::connect(&h.url(), &o).unwrap_err().timeout_phase(),
        Some(Phase::WsHandshake)
    );
    // Cleared: the old connection answers again.
    h.clear_fault();
    read_until(&mut c, LONG, |e| matches!(e, WsEvent::Pong(_)));
}

#[test]
fn malformed_bytes_are_a_protocol_error() {
    let h = authed_sim();
    let mut c = connect_and_auth(&h);
    h.set_fault(Fault::Malformed);
    assert!(matches!(
        read_until_error(&mut c, LONG),
        NetError::Protocol(_)
    ));
    // New connections get garbage right after the upgrade.
    let mut c = net::ws::connect(&h.url(), &opts()).unwrap();
    assert!(matches!(
        read_until_error(&mut c, LONG),
        NetError::Protocol(_)
    ));
}

#[test]
fn flood_sends_at_the_requested_rate() {
    let h = sim(SimConfig::default());
    let mut c = net::ws::connect(&h.url(), &opts()).unwrap();
    subscribe(&mut c, "fast");
    let t0 = Instant::now();
    h.set_fault(Fault::Flood { per_sec: 2000 });
    let mut got = 0;
    while got < 400 {
        assert!(t0.elapsed() < LONG, "only {got} messages");
        if let Some(e) = c.read().unwrap() {
            got += json(&e).is_some_and(|v| v["type"] == "data") as u32;
        }
    }
    // 400 messages at 2000/s take at least ~200 ms: the rate is honoured, not exceeded.
    assert!(
        t0.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn heartbeats_when_no_data() {
    let h = sim(SimConfig {
        heartbeat_every: Some(Duration::from_millis(30)),
        ..SimConfig::default()
    });
    let mut c = net::ws::connect(&h.url(), &opts()).unwrap();
    read_type(&mut c, "heartbeat");
    read_type(&mut c, "heartbeat");
    assert!(h.wait_for(|s| s.heartbeats_sent >= 2, LONG));
}

#[test]
fn script_applies_faults_in_order() {
    let h = authed_sim();
    let mut c = connect_and_auth(&h);
    h.run_script(vec![
        (Duration::ZERO, Some(Fault::CloseWithCode { code: 1001 })),
        (Duration::from_millis(50), None),
    ]);
    assert_eq!(read_until_close(&mut c).0, Some(1001));
    let deadline = Instant::now() + LONG;
    while h.fault().is_some() {
        assert!(Instant::now() < deadline, "script never cleared the fault");
        thread::yield_now();
    }
}

#[test]
fn stats_count_subscribes_per_connection() {
    let h = authed_sim();
    let mut a = connect_and_auth(&h);
    let mut b = connect_and_auth(&h);
    subscribe(&mut a, "x");
    subscribe(&mut b, "z");
    subscribe(&mut a, "y");
    assert!(h.wait_for(|s| s.live_connections == 2, LONG));
    assert_eq!(
        h.stats().subscribes_per_connection,
        vec![vec!["x", "y"], vec!["z"]]
    );
}

#[test]
fn raw_tungstenite_client_sees_close_on_send() {
    let h = sim(SimConfig {
        fault: Some(Fault::CloseOnClientMessage { code: 1000 }),
        ..SimConfig::default()
    });
    let (mut ws, _) = tungstenite::connect(h.url()).unwrap();
    ws.send(tungstenite::Message::text(r#"{"type":"get_signals"}"#))
        .unwrap();
    match ws.read().unwrap() {
        tungstenite::Message::Close(Some(f)) => assert_eq!(u16::from(f.code), 1000),
        other => panic!("expected close, got {other:?}"),
    }
}

#[test]
fn stop_ends_every_thread_promptly() {
    let h = authed_sim();
    let mut c = connect_and_auth(&h);
    h.set_fault(Fault::AcceptNoHandshake);
    let held = std::net::TcpStream::connect(h.addr()).unwrap();
    assert!(h.wait_for(|s| s.live_connections == 2, LONG));
    let t0 = Instant::now();
    h.stop();
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "stop took {:?}",
        t0.elapsed()
    );
    assert_eq!(h.stats().live_connections, 0);
    assert_eq!(read_until_close(&mut c).0, Some(1001));
    drop(held);
    // The port is closed after stop.
    assert!(net::ws::connect(&h.url(), &opts()).is_err());
}

#[test]
fn rejected_upgrade_reports_the_http_status() {
    let h = authed_sim();
    let mut existing = connect_and_auth(&h);
    h.set_fault(Fault::RejectUpgrade { status: 401 });
    let err = net::ws::connect(&h.url(), &opts()).unwrap_err();
    assert!(
        matches!(err, NetError::HttpStatus { status: 401 }),
        "{err:?}"
    );
    assert!(err.is_auth_rejection());
    h.set_fault(Fault::RejectUpgrade { status: 429 });
    let err = net::ws::connect(&h.url(), &opts()).unwrap_err();
    assert!(matches!(err, NetError::HttpStatus { status: 429 }) && !err.is_auth_rejection());
    // The connection made before the fault still works.
    existing.send_text(r#"{"type":"get_signals"}"#).unwrap();
    read_type(&mut existing, "signals");
}

#[test]
fn cli_front_runs_until_stopped() {
    use brokerguard::sim::{SimArgs, run_cli};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let args = SimArgs {
        port,
        tokens: vec![],
        data_every: None,
        heartbeat_every: None,
        tls_cert: None,
        tls_key: None,
        fault: Some(Fault::CloseOnClientMessage { code: 1000 }),
        script: None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let runner = thread::spawn(move || run_cli(&args, &s));
    let url = format!("ws://127.0.0.1:{port}/");
    let deadline = Instant::now() + LONG;
    let mut c = loop {
        match net::ws::connect(&url, &opts()) {
            Ok(c) => break c,
            Err(e) => assert!(
                Instant::now() < deadline,
                "CLI simulator never listened: {e}"
            ),
        }
    };
    c.send_text("{}").unwrap();
    assert_eq!(read_until_close(&mut c).0, Some(1000));
    let t0 = Instant::now();
    stop.store(true, Ordering::SeqCst);
    runner.join().unwrap().unwrap();
    assert!(t0.elapsed() < Duration::from_millis(1500));
}

/// A server that writes `bytes` one at a time, `gap` apart, after an
/// optional WebSocket upgrade.
fn trickle_server(upgrade: bool, bytes: Vec<u8>, gap: Duration) -> (u16, thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let t = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut s = if upgrade {
            tungstenite::accept(s).unwrap().into_inner()
        } else {
            let mut s = s;
            s.set_read_timeout(Some(LONG)).unwrap();
            let _ = s.read(&mut [0u8; 4096]);
            s
        };
        for b in bytes {
            // Pacing is the stimulus here: the peer trickles on purpose.
            thread::sleep(gap);
            if s.write_all(&[b]).is_err() {
                return;
            }
        }
        let _ = s.read(&mut [0u8; 64]);
    });
    (port, t)
}

#[test]
fn trickled_frame_never_holds_a_read_past_its_tick() {
    let frame = vec![0x81, 0x05, b'h', b'e', b'l', b'l', b'o'];
    let (port, server) = trickle_server(true, frame, Duration::from_millis(60));
    let o = WsOptions {
        read_tick: Duration::from_millis(100),
        ..opts()
    };
    let mut c = net::ws::connect(&format!("ws://127.0.0.1:{port}/"), &o).unwrap();
    let (mut empty_ticks, deadline) = (0, Instant::now() + LONG);
    let text = loop {
        assert!(Instant::now() < deadline, "message never completed");
        let t0 = Instant::now();
        let got = c.read().unwrap();
        assert!(
            t0.elapsed() < Duration::from_millis(400),
            "read held {:?}",
            t0.elapsed()
        );
        match got {
            None => empty_ticks += 1,
            Some(e) => break e,
        }
    };
    assert_eq!(text, WsEvent::Text("hello".into()));
    assert!(empty_ticks >= 2, "only {empty_ticks} empty ticks");
    c.close(1000, "");
    server.join().unwrap();
}

#[test]
fn trickled_upgrade_response_is_bounded_by_the_handshake_timeout() {
    let reply = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n".to_vec();
    let (port, server) = trickle_server(false, reply, Duration::from_millis(20));
    let o = WsOptions {
        handshake_timeout: Duration::from_millis(300),
        ..opts()
    };
    let t0 = Instant::now();
    let err = net::ws::connect(&format!("ws://127.0.0.1:{port}/"), &o).unwrap_err();
    assert_eq!(err.timeout_phase(), Some(Phase::WsHandshake), "{err}");
    assert!(
        t0.elapsed() < Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    server.join().unwrap();
}

#[test]
fn interrupter_wakes_a_blocked_tls_read() {
    let h = sim(SimConfig {
        tls: Some(tls("server.pem", "server.key")),
        ..SimConfig::default()
    });
    let o = WsOptions {
        read_tick: Duration::from_secs(1),
        ca_file: Some(fixture("ca.pem")),
        ..opts()
    };
    let mut c = net::ws::connect(&h.url(), &o).unwrap();
    let stopper = c.interrupter();
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        tx.send(Instant::now()).unwrap();
        let err = loop {
            if let Err(e) = c.read() {
                break e;
            }
        };
        (Instant::now(), err)
    });
    rx.recv().unwrap();
    let t0 = Instant::now();
    stopper.shutdown();
    let (at, err) = reader.join().unwrap();
    assert!(matches!(err, NetError::Interrupted), "{err:?}");
    assert!(at.duration_since(t0) < Duration::from_millis(500));
}

#[test]
fn handles_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send::<WsConn>();
    send_sync::<net::Interrupter>();
    send_sync::<SimHandle>();
    send_sync::<NetError>();
}

#[test]
fn a_slow_handshake_answers_late_or_times_out_in_the_handshake_phase() {
    let h = sim(SimConfig {
        fault: Some(Fault::SlowHandshake { delay_ms: 600 }),
        ..SimConfig::default()
    });
    // Shorter than the delay: the client's own handshake timeout, named.
    let short = WsOptions {
        handshake_timeout: Duration::from_millis(200),
        ..opts()
    };
    let err = net::ws::connect(&h.url(), &short).unwrap_err();
    assert_eq!(err.timeout_phase(), Some(Phase::WsHandshake), "{err:?}");
    // Longer: the upgrade is answered, but only after the delay.
    let t0 = Instant::now();
    net::ws::connect(&h.url(), &opts()).expect("answered after the delay");
    assert!(
        t0.elapsed() >= Duration::from_millis(600),
        "{:?}",
        t0.elapsed()
    );
    // Cleared: answered at once.
    h.clear_fault();
    let t0 = Instant::now();
    net::ws::connect(&h.url(), &opts()).unwrap();
    assert!(
        t0.elapsed() < Duration::from_millis(600),
        "{:?}",
        t0.elapsed()
    );
}
