//! The framed TCP transport (net::framed) against loopback listeners written
//! here: exact bytes on the wire, frames trickled one byte at a time, an
//! oversize frame, a peer that never answers the handshake, an interrupter
//! waking a blocked read, and end of stream told apart from a reset. Every
//! wait is a deadline; nothing sleeps to let things settle.

use brokerguard::net::framed::{self, FramedConn, FramedOptions};
use brokerguard::net::{NetError, Phase};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(5);

fn opts() -> FramedOptions {
    FramedOptions {
        connect_timeout: Duration::from_secs(2),
        handshake_timeout: Duration::from_secs(3),
        write_timeout: Duration::from_secs(2),
        read_tick: Duration::from_millis(50),
        max_frame_bytes: 1024,
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// A listener on a free loopback port and a connection to it, with the
/// server's end of that connection (read timeouts bounded).
fn pair(o: &FramedOptions) -> (FramedConn, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let c = framed::connect("127.0.0.1", port, o).expect("connects");
    let (s, _) = l.accept().unwrap();
    s.set_read_timeout(Some(LONG)).unwrap();
    s.set_write_timeout(Some(LONG)).unwrap();
    s.set_nodelay(true).unwrap();
    (c, s)
}

/// Reads until a frame arrives, failing on error or after `limit`.
fn next_frame(c: &mut FramedConn, limit: Duration) -> Vec<u8> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match c.read_frame_within(Duration::from_secs(1)) {
            Ok(Some(f)) => return f,
            Ok(None) => {}
            Err(e) => panic!("read failed while waiting for a frame: {e}"),
        }
    }
    panic!("no frame within {limit:?}");
}

/// Reads until the connection fails, returning the error.
fn next_error(c: &mut FramedConn, limit: Duration) -> NetError {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match c.read_frame_within(Duration::from_secs(1)) {
            Ok(_) => {}
            Err(e) => return e,
        }
    }
    panic!("no error within {limit:?}");
}

/// Closes `s` with SO_LINGER 0, so the peer gets a RST instead of a FIN.
fn reset(s: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd belongs to a live TcpStream; pointer and length describe `linger`.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    drop(s);
}

#[test]
fn greeting_and_first_frame_arrive_byte_exact() {
    let (mut c, mut s) = pair(&opts());
    c.send_raw(b"API\0").unwrap();
    c.send_frame(b"v157..178").unwrap();
    let mut got = [0u8; 17];
    s.read_exact(&mut got).unwrap();
    assert_eq!(
        got.to_vec(),
        [
            &[0x41, 0x50, 0x49, 0x00][..],
            &[0x00, 0x00, 0x00, 0x09],
            b"v157..178",
        ]
        .concat()
    );
    // The server's reply, read within the handshake budget.
    s.write_all(&frame(b"176\x0020230228 17:24:14 EST\x00"))
        .unwrap();
    let deadline = c.handshake_deadline();
    assert_eq!(
        c.read_frame_by(deadline, Phase::ProtocolHandshake).unwrap(),
        b"176\x0020230228 17:24:14 EST\x00"
    );
    assert_eq!(
        c.target(),
        format!("127.0.0.1:{}", s.local_addr().unwrap().port())
    );
    assert_eq!(c.peer_addr(), Some(s.local_addr().unwrap()));
}

#[test]
fn frames_trickled_one_byte_at_a_time_come_out_whole_and_in_order() {
    let (mut c, s) = pair(&opts());
    let frames: [&[u8]; 3] = [b"176\0", b"", b"15\x001\x00DU1234567\x00"];
    let wire: Vec<u8> = frames.iter().flat_map(|f| frame(f)).collect();
    // Byte i of `wire` goes out when the test asks for it, so the client
    // sees every split: inside a prefix, between prefix and payload, inside
    // a payload.
    let (next, want) = mpsc::channel::<()>();
    let total = wire.len();
    let server = thread::spawn(move || {
        let mut s = s;
        for b in wire {
            if want.recv_timeout(LONG).is_err() {
                return;
            }
            s.write_all(&[b]).unwrap();
        }
        // Hold the connection until the client is done.
        let _ = s.read(&mut [0u8; 1]);
    });
    let mut ends = Vec::new();
    let mut acc = 0;
    for f in &frames {
        acc += 4 + f.len();
        ends.push(acc);
    }
    let mut got: Vec<(usize, Vec<u8>)> = Vec::new();
    for sent in 1..=total {
        next.send(()).unwrap();
        if let Some(f) = c.read_frame_within(Duration::from_millis(5)).unwrap() {
            got.push((sent, f));
        }
    }
    while got.len() < frames.len() {
        got.push((total, next_frame(&mut c, LONG)));
    }
    for (i, (sent, f)) in got.iter().enumerate() {
        assert_eq!(f, frames[i], "frame {i}");
        assert!(
            *sent >= ends[i],
            "frame {i} complete after {sent} bytes of {}",
            ends[i]
        );
    }
    c.close();
    server.join().unwrap();
}

#[test]
fn a_frame_above_the_limit_is_too_large_and_ends_the_connection() {
    let (mut c, mut s) = pair(&opts());
    s.write_all(&frame(&[b'x'; 1024])).unwrap();
    s.write_all(&1025u32.to_be_bytes()).unwrap();
    assert_eq!(next_frame(&mut c, LONG), vec![b'x'; 1024]);
    assert!(matches!(next_error(&mut c, LONG), NetError::TooLarge));
    // Unusable from now on, and the peer is told: it sees end of stream.
    assert!(matches!(
        c.read_frame_within(Duration::from_millis(10)),
        Err(NetError::TooLarge)
    ));
    assert!(matches!(c.send_frame(b"x"), Err(NetError::TooLarge)));
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).unwrap(), 0);
}

#[test]
fn a_peer_that_never_answers_the_handshake_times_out_naming_the_phase() {
    // The kernel completes the TCP handshake from the backlog: connected,
    // but nobody ever reads or answers (TWS with its API hung).
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let o = FramedOptions {
        handshake_timeout: Duration::from_millis(300),
        ..opts()
    };
    let mut c = framed::connect("127.0.0.1", port, &o).unwrap();
    c.send_raw(b"API\0").unwrap();
    c.send_frame(b"v157..178").unwrap();
    let t0 = Instant::now();
    let deadline = Instant::now() + Duration::from_millis(300);
    let err = c
        .read_frame_by(deadline, Phase::ProtocolHandshake)
        .unwrap_err();
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    match &err {
        NetError::Timeout(t) => {
            assert_eq!(t.phase, Phase::ProtocolHandshake);
            assert_eq!(t.target, format!("127.0.0.1:{port}"));
            assert_eq!(t.after, Duration::from_millis(300));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!("timeout (protocol handshake) after 300ms to 127.0.0.1:{port}")
    );
    // The handshake deadline of the options behaves the same.
    let mut c = framed::connect("127.0.0.1", port, &o).unwrap();
    let deadline = c.handshake_deadline();
    let err = c
        .read_frame_by(deadline, Phase::ProtocolHandshake)
        .unwrap_err();
    assert!(Instant::now() < deadline + Duration::from_secs(1));
    assert_eq!(
        err.to_string(),
        format!("timeout (protocol handshake) after 300ms to 127.0.0.1:{port}")
    );
    drop(l);
}

#[test]
fn one_budget_across_several_handshake_reads() {
    let (mut c, mut s) = pair(&opts());
    // News before the version reply is allowed (PROTOCOLS.md §4.3): the
    // caller reads frames until the one it wants, all by one deadline.
    s.write_all(&frame(b"news")).unwrap();
    let deadline = Instant::now() + Duration::from_millis(400);
    assert_eq!(
        c.read_frame_by(deadline, Phase::ProtocolHandshake).unwrap(),
        b"news"
    );
    match c.read_frame_by(deadline, Phase::ProtocolHandshake) {
        Err(NetError::Timeout(t)) => {
            assert_eq!(t.phase, Phase::ProtocolHandshake);
            // The whole budget is reported, not what was left of it.
            assert!(t.after >= Duration::from_millis(350), "{:?}", t.after);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[test]
fn read_within_returns_nothing_after_at_most_a_tick() {
    let (mut c, _s) = pair(&opts());
    let t0 = Instant::now();
    // Asked for 10 s, waits one tick (50 ms) at most.
    assert!(
        c.read_frame_within(Duration::from_secs(10))
            .unwrap()
            .is_none()
    );
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    let t0 = Instant::now();
    assert!(c.read_frame_within(Duration::ZERO).unwrap().is_none());
    assert!(t0.elapsed() < Duration::from_millis(500));
}

#[test]
fn interrupter_wakes_a_blocked_read_promptly() {
    let o = FramedOptions {
        read_tick: Duration::from_secs(1),
        ..opts()
    };
    let (c, _s) = pair(&o);
    let stopper = c.interrupter();
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut c = c;
        tx.send(()).unwrap();
        let err = loop {
            if let Err(e) = c.read_frame_within(Duration::from_secs(1)) {
                break e;
            }
        };
        (Instant::now(), err, c)
    });
    rx.recv_timeout(LONG).unwrap();
    let t0 = Instant::now();
    stopper.shutdown();
    let (at, err, mut c) = reader.join().unwrap();
    assert!(matches!(err, NetError::Interrupted), "{err:?}");
    assert!(at.duration_since(t0) < Duration::from_millis(500));
    // Every later call says so too.
    assert!(matches!(
        c.read_frame_within(Duration::from_millis(1)),
        Err(NetError::Interrupted)
    ));
    assert!(matches!(c.send_raw(b"API\0"), Err(NetError::Interrupted)));
    assert!(matches!(c.send_frame(b"x"), Err(NetError::Interrupted)));
    assert!(matches!(
        c.read_frame_by(Instant::now() + LONG, Phase::ProtocolHandshake),
        Err(NetError::Interrupted)
    ));
}

#[test]
fn interrupter_wakes_a_handshake_read() {
    let (c, _s) = pair(&opts());
    let stopper = c.interrupter();
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut c = c;
        tx.send(()).unwrap();
        let r = c.read_frame_by(
            Instant::now() + Duration::from_secs(20),
            Phase::ProtocolHandshake,
        );
        (Instant::now(), r)
    });
    rx.recv_timeout(LONG).unwrap();
    let t0 = Instant::now();
    stopper.shutdown();
    let (at, r) = reader.join().unwrap();
    assert!(matches!(r, Err(NetError::Interrupted)), "{r:?}");
    assert!(at.duration_since(t0) < Duration::from_secs(1));
}

#[test]
fn end_of_stream_is_closed_without_a_code() {
    let (mut c, s) = pair(&opts());
    drop(s);
    match next_error(&mut c, LONG) {
        NetError::Closed { code: None, reason } => {
            assert!(reason.contains("end of stream"), "{reason}")
        }
        other => panic!("expected Closed, got {other:?}"),
    }
    // Later calls report the same.
    assert!(matches!(
        c.read_frame_within(Duration::from_millis(1)),
        Err(NetError::Closed { code: None, .. })
    ));
}

#[test]
fn end_of_stream_inside_a_frame_says_so() {
    let (mut c, mut s) = pair(&opts());
    s.write_all(&frame(b"0123456789")[..7]).unwrap();
    drop(s);
    match next_error(&mut c, LONG) {
        NetError::Closed { code: None, reason } => {
            assert!(reason.contains("middle of a frame"), "{reason}")
        }
        other => panic!("expected Closed, got {other:?}"),
    }
}

#[test]
fn reset_is_not_end_of_stream() {
    let (mut c, s) = pair(&opts());
    reset(s);
    assert!(matches!(next_error(&mut c, LONG), NetError::Reset));
}

#[test]
fn close_shuts_the_socket_down() {
    let (mut c, mut s) = pair(&opts());
    c.close();
    assert_eq!(s.read(&mut [0u8; 4]).unwrap(), 0);
    assert!(matches!(
        c.send_frame(b"x"),
        Err(NetError::Closed { code: None, .. })
    ));
}

#[test]
fn nothing_listening_is_a_connect_error() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    match framed::connect("127.0.0.1", port, &opts()) {
        Err(NetError::Connect { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused)
        }
        other => panic!("expected a refused connect, got {other:?}"),
    }
}

#[test]
fn handles_cross_threads() {
    fn send<T: Send>() {}
    send::<FramedConn>();
}
