//! The HTTP client (net::http, on ureq) against a small HTTP/1.1 server
//! written here over loopback (plain and TLS with the test certificates):
//! round trips, byte-exact form bodies, each phase's named timeout, the body
//! limit, redaction canaries, the private CA, and the clock-drift recorder.
//! Every wait is bounded; nothing sleeps to let things settle.

use brokerguard::net::http::{
    Body, ClockDrift, HttpClient, HttpOptions, Method, Request, parse_imf_fixdate,
};
use brokerguard::net::{NetError, Phase};
use brokerguard::secret::Secret;
use brokerguard::timefmt::civil_from_days;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const LONG: Duration = Duration::from_secs(5);

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

fn opts() -> HttpOptions {
    HttpOptions {
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(2),
        body_timeout: Duration::from_secs(2),
        max_body_bytes: 1 << 20,
        ca_file: None,
        user_agent: "brokerguard-test/1".into(),
        secret_path: false,
    }
}

fn client(o: HttpOptions) -> HttpClient {
    HttpClient::new(o).expect("client builds")
}

/// What the server does with one connection, after reading its request.
enum Reply {
    /// Writes these bytes and closes.
    Respond(Vec<u8>),
    /// Writes these bytes (maybe none) and then holds the connection open
    /// without another byte, until the client goes away.
    Stall(Vec<u8>),
}

/// One request as the server read it.
#[derive(Debug)]
struct Seen {
    /// `GET /path?query HTTP/1.1`
    line: String,
    /// Names in lower case, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct TestServer {
    port: u16,
    seen: mpsc::Receiver<Seen>,
}

impl TestServer {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn next_request(&self) -> Seen {
        self.seen
            .recv_timeout(LONG)
            .expect("the server saw a request")
    }
}

fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} X\r\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Accepts within `LONG` (a test whose client never connects must not hang).
fn accept(l: &TcpListener) -> Option<TcpStream> {
    l.set_nonblocking(true).ok()?;
    let deadline = Instant::now() + LONG;
    while Instant::now() < deadline {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).ok()?;
                s.set_read_timeout(Some(LONG)).ok()?;
                s.set_write_timeout(Some(LONG)).ok()?;
                return Some(s);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Polling the listener, not waiting for something to settle.
                thread::sleep(Duration::from_millis(2));
            }
            Err(_) => return None,
        }
    }
    None
}

fn read_request<S: Read>(s: &mut S) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let line = lines.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Seen {
        line,
        headers,
        body,
    })
}

fn handle<S: Read + Write>(mut s: S, reply: Reply, seen: &mpsc::Sender<Seen>) {
    let Some(req) = read_request(&mut s) else {
        return;
    };
    let _ = seen.send(req);
    match reply {
        Reply::Respond(bytes) => {
            let _ = s.write_all(&bytes);
            let _ = s.flush();
        }
        Reply::Stall(bytes) => {
            let _ = s.write_all(&bytes);
            let _ = s.flush();
            // Until the client gives up and closes (bounded by the read timeout).
            let mut sink = [0u8; 1024];
            while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
        }
    }
}

/// A plain HTTP server answering one connection per reply, in order.
fn server(replies: Vec<Reply>) -> TestServer {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, seen) = mpsc::channel();
    thread::spawn(move || {
        for reply in replies {
            let Some(s) = accept(&l) else { return };
            handle(s, reply, &tx);
        }
    });
    TestServer { port, seen }
}

/// The same over TLS with the test certificate for `localhost`.
fn tls_server(replies: Vec<Reply>) -> TestServer {
    let cert = std::fs::read(fixture("server.pem")).unwrap();
    let key = std::fs::read(fixture("server.key")).unwrap();
    let identity = native_tls::Identity::from_pkcs8(&cert, &key).unwrap();
    let acceptor = native_tls::TlsAcceptor::new(identity).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, seen) = mpsc::channel();
    thread::spawn(move || {
        for reply in replies {
            let Some(s) = accept(&l) else { return };
            // A client that refuses our certificate ends the handshake: next.
            if let Ok(tls) = acceptor.accept(s) {
                handle(tls, reply, &tx);
            }
        }
    });
    TestServer { port, seen }
}

/// IMF-fixdate of `t` (the test's own formatter, to feed the parser).
fn imf_fixdate(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let sod = secs.rem_euclid(86_400);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][m as usize - 1];
    format!(
        "{wd}, {d:02} {mon} {y:04} {:02}:{:02}:{:02} GMT",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn get_round_trips_status_headers_body_and_date() {
    let date = "Sun, 22 Nov 2026 09:00:01 GMT";
    let srv = server(vec![Reply::Respond(response(
        200,
        &[("Date", date), ("X-Request-Id", "abc")],
        br#"{"error":[],"result":{"status":"online"}}"#,
    ))]);
    let c = client(opts());
    let before = SystemTime::now();
    let r = c
        .send(&Request::get(srv.url("/0/public/SystemStatus?x=1")))
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.is_success());
    assert_eq!(r.body, r#"{"error":[],"result":{"status":"online"}}"#);
    assert_eq!(r.header("x-request-id"), Some("abc"));
    assert_eq!(r.header("X-Request-ID"), Some("abc"));
    assert!(
        r.headers
            .iter()
            .any(|(n, v)| n == "x-request-id" && v == "abc")
    );
    assert!(r.headers.iter().all(|(n, _)| *n == n.to_ascii_lowercase()));
    assert_eq!(r.date, parse_imf_fixdate(date));
    assert!(r.date.is_some());
    assert!(before <= r.sent_at && r.sent_at <= r.received_at);
    let seen = srv.next_request();
    assert_eq!(seen.line, "GET /0/public/SystemStatus?x=1 HTTP/1.1");
    assert_eq!(seen.header("user-agent"), Some("brokerguard-test/1"));
    assert!(seen.body.is_empty());
    assert_eq!(seen.header("content-type"), None);
}

#[test]
fn error_statuses_come_back_as_responses() {
    let srv = server(vec![Reply::Respond(response(
        429,
        &[("Retry-After", "7")],
        br#"{"error":["EAPI:Rate limit exceeded"]}"#,
    ))]);
    let r = client(opts()).send(&Request::get(srv.url("/"))).unwrap();
    assert_eq!(r.status, 429);
    assert!(!r.is_success());
    assert_eq!(r.header("retry-after"), Some("7"));
    assert!(r.body.contains("Rate limit"));
    assert_eq!(r.date, None);
}

#[test]
fn redirects_are_returned_not_followed() {
    let srv = server(vec![Reply::Respond(response(
        302,
        &[("Location", "http://127.0.0.1:9/elsewhere")],
        b"",
    ))]);
    let r = client(opts())
        .send(&Request::get(srv.url("/")).header("API-Key", Secret::new("k")))
        .unwrap();
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("http://127.0.0.1:9/elsewhere"));
}

#[test]
fn post_form_body_arrives_byte_exact_with_its_content_type() {
    // The signed string of PROTOCOLS.md §1.2, plus what a re-encoder would
    // touch: escapes, '+', '~', an empty value, a trailing '&'.
    let body = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25\
                &note=a%20b+c~d%7E&empty=&";
    let srv = server(vec![Reply::Respond(response(200, &[], br#"{"error":[]}"#))]);
    let req = Request::post(srv.url("/0/private/AddOrder"), Body::Form(body.to_string()))
        .header("API-Key", Secret::new("public-key"))
        .header("API-Sign", Secret::new("4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="));
    let r = client(opts()).send(&req).unwrap();
    assert_eq!(r.status, 200);
    let seen = srv.next_request();
    assert_eq!(seen.line, "POST /0/private/AddOrder HTTP/1.1");
    assert_eq!(seen.body, body.as_bytes());
    assert_eq!(
        seen.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        seen.header("content-length"),
        Some(&*body.len().to_string())
    );
    assert_eq!(seen.header("api-key"), Some("public-key"));
    assert_eq!(
        seen.header("api-sign"),
        Some(
            "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
        )
    );
}

#[test]
fn json_and_delete_go_out_as_given() {
    let srv = server(vec![
        Reply::Respond(response(200, &[], b"{}")),
        Reply::Respond(response(204, &[], b"")),
    ]);
    let c = client(opts());
    let json = r#"{"symbols":["AAPL"],"qty":"1"}"#;
    let mut req = Request::post(srv.url("/v2/orders"), Body::Json(json.into()));
    // The body's content type wins over one given as a header.
    req = req.header("Content-Type", Secret::new("text/plain"));
    c.send(&req).unwrap();
    let seen = srv.next_request();
    assert_eq!(seen.body, json.as_bytes());
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(
        seen.headers
            .iter()
            .filter(|(n, _)| n == "content-type")
            .count(),
        1
    );

    let r = c.send(&Request::delete(srv.url("/v2/orders/42"))).unwrap();
    assert_eq!(r.status, 204);
    let seen = srv.next_request();
    assert_eq!(seen.line, "DELETE /v2/orders/42 HTTP/1.1");
    assert_eq!(Request::delete("x").method, Method::Delete);
}

#[test]
fn a_server_that_never_answers_is_a_named_response_timeout() {
    let srv = server(vec![Reply::Stall(Vec::new())]);
    let o = HttpOptions {
        response_timeout: Duration::from_millis(300),
        ..opts()
    };
    let t0 = Instant::now();
    let err = client(o)
        .send(&Request::get(srv.url("/0/private/Balance?otp=CANARY")))
        .unwrap_err();
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    match &err {
        NetError::Timeout(t) => {
            assert_eq!(t.phase, Phase::HttpResponse);
            assert_eq!(t.after, Duration::from_millis(300));
            assert_eq!(t.target, srv.url("/0/private/Balance"));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!(
            "timeout (HTTP response headers) after 300ms to {}",
            srv.url("/0/private/Balance")
        )
    );
    srv.next_request();
}

#[test]
fn headers_then_a_stalled_body_is_a_named_body_timeout() {
    let mut partial = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec();
    partial.extend_from_slice(b"{\"error\":[],");
    let srv = server(vec![Reply::Stall(partial)]);
    let o = HttpOptions {
        body_timeout: Duration::from_millis(300),
        ..opts()
    };
    let t0 = Instant::now();
    let err = client(o).send(&Request::get(srv.url("/big"))).unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(err.timeout_phase(), Some(Phase::HttpBody), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("timeout (HTTP response body) after 300ms to http://127.0.0.1:"),
        "{err}"
    );
}

#[test]
fn a_port_that_accepts_but_never_speaks_tls_is_a_named_tls_timeout() {
    let srv = server(vec![Reply::Stall(Vec::new())]);
    let o = HttpOptions {
        connect_timeout: Duration::from_millis(300),
        ..opts()
    };
    let t0 = Instant::now();
    let err = client(o)
        .send(&Request::get(format!("https://127.0.0.1:{}/", srv.port)))
        .unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    match &err {
        NetError::Timeout(t) => {
            assert_eq!(t.phase, Phase::TlsHandshake);
            assert_eq!(t.after, Duration::from_millis(300));
            assert_eq!(t.target, format!("https://127.0.0.1:{}/", srv.port));
        }
        other => panic!("expected a TLS timeout, got {other:?}"),
    }
}

#[test]
fn nothing_listening_is_a_connect_error_naming_the_address() {
    let port = free_port();
    let err = client(opts())
        .send(&Request::get(format!("http://127.0.0.1:{port}/")))
        .unwrap_err();
    match &err {
        NetError::Connect { addr, source } => {
            assert_eq!(addr.port(), port);
            assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused);
        }
        other => panic!("expected Connect, got {other:?}"),
    }
    assert!(err.to_string().contains("nothing listens"), "{err}");
}

#[test]
fn the_body_limit_is_inclusive_and_one_more_byte_is_too_large() {
    let srv = server(vec![
        Reply::Respond(response(200, &[], &[b'a'; 1024])),
        Reply::Respond(response(200, &[], &[b'a'; 1025])),
        // Without a length: chunked, over the limit.
        Reply::Respond(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
              300\r\n"
                .iter()
                .copied()
                .chain([b'b'; 0x300])
                .chain(*b"\r\n300\r\n")
                .chain([b'b'; 0x300])
                .chain(*b"\r\n0\r\n\r\n")
                .collect(),
        ),
    ]);
    let c = client(HttpOptions {
        max_body_bytes: 1024,
        ..opts()
    });
    assert_eq!(
        c.send(&Request::get(srv.url("/"))).unwrap().body.len(),
        1024
    );
    assert!(matches!(
        c.send(&Request::get(srv.url("/"))),
        Err(NetError::TooLarge)
    ));
    assert!(matches!(
        c.send(&Request::get(srv.url("/"))),
        Err(NetError::TooLarge)
    ));
}

#[test]
fn a_body_that_is_not_utf8_still_reaches_the_caller() {
    let srv = server(vec![Reply::Respond(response(502, &[], b"Bad \xe9gateway"))]);
    let r = client(opts()).send(&Request::get(srv.url("/"))).unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(r.body, "Bad \u{fffd}gateway");
}

#[test]
fn https_with_the_private_ca_works_and_without_it_the_certificate_is_not_trusted() {
    let srv = tls_server(vec![
        Reply::Respond(response(200, &[], b"secure")),
        Reply::Respond(response(200, &[], b"never sent")),
    ]);
    let url = format!("https://localhost:{}/v2/account", srv.port);
    let trusting = client(HttpOptions {
        ca_file: Some(fixture("ca.pem")),
        ..opts()
    });
    let r = trusting.send(&Request::get(&url)).unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "secure"));
    assert_eq!(srv.next_request().line, "GET /v2/account HTTP/1.1");

    let err = client(opts()).send(&Request::get(&url)).unwrap_err();
    match &err {
        NetError::Tls(m) => {
            assert!(m.contains("certificate of localhost not accepted"), "{m}");
            assert!(m.contains("trusted CA"), "{m}");
            assert!(m.contains("ca_file"), "{m}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[test]
fn a_ca_file_that_is_missing_fails_when_the_client_is_built() {
    match HttpClient::new(HttpOptions {
        ca_file: Some(PathBuf::from("/nonexistent/brokerguard-ca.pem")),
        ..opts()
    }) {
        Err(NetError::Tls(m)) => assert!(m.contains("/nonexistent/brokerguard-ca.pem"), "{m}"),
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[test]
fn invalid_urls_and_headers_are_invalid_requests() {
    let c = client(opts());
    for url in [
        "ftp://127.0.0.1/x?token=CANARY",
        "http:///?token=CANARY",
        "not a url",
    ] {
        match c.send(&Request::get(url)) {
            Err(e @ NetError::InvalidRequest(_)) => {
                assert!(!e.to_string().contains("CANARY"), "{e}")
            }
            other => panic!("{url}: expected InvalidRequest, got {other:?}"),
        }
    }
    let bad_value =
        Request::get("http://127.0.0.1:9/").header("API-Sign", Secret::new("CANARY\r\nX: y"));
    match c.send(&bad_value) {
        Err(e @ NetError::InvalidRequest(_)) => {
            let shown = format!("{e} {e:?}");
            assert!(shown.contains("api-sign"), "{shown}");
            assert!(!shown.contains("CANARY"), "{shown}");
        }
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
    let bad_name = Request::get("http://127.0.0.1:9/").header("API Sign", Secret::new("v"));
    assert!(matches!(
        c.send(&bad_name),
        Err(NetError::InvalidRequest(_))
    ));
}

/// No error, nor a request's or response's Debug, ever shows a secret from
/// the query, the user-info or a header.
#[test]
fn canaries_in_query_userinfo_and_headers_never_appear() {
    const Q: &str = "CANARY-query-5ecr3t";
    const U: &str = "CANARY-userinfo-5ecr3t";
    const H: &str = "CANARY-header-5ecr3t";
    let mut shown = Vec::new();
    let request = |base: String| {
        Request::post(
            format!("{base}?token={Q}&x=1"),
            Body::Form(format!("nonce=1&otp={H}")),
        )
        .header("API-Key", Secret::new(H))
        .header("Authorization", Secret::new(format!("Bearer {H}")))
    };
    let with_userinfo =
        |port: u16, scheme: &str| format!("{scheme}://me:{U}@127.0.0.1:{port}/0/private/Balance");
    let mut record = |what: &str, r: Result<brokerguard::net::http::Response, NetError>| match r {
        Ok(resp) => shown.push(format!("{what}: {resp:?}")),
        Err(e) => shown.push(format!("{what}: {e} / {e:?}")),
    };

    // Refused.
    let c = client(opts());
    record(
        "refused",
        c.send(&request(with_userinfo(free_port(), "http"))),
    );
    // Response timeout.
    let srv = server(vec![Reply::Stall(Vec::new())]);
    let quick = client(HttpOptions {
        response_timeout: Duration::from_millis(200),
        body_timeout: Duration::from_millis(200),
        connect_timeout: Duration::from_millis(300),
        ..opts()
    });
    record(
        "response timeout",
        quick.send(&request(with_userinfo(srv.port, "http"))),
    );
    // Body timeout.
    let srv = server(vec![Reply::Stall(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab".to_vec(),
    )]);
    record(
        "body timeout",
        quick.send(&request(with_userinfo(srv.port, "http"))),
    );
    // TLS timeout against a plain port, and an untrusted certificate.
    let srv = server(vec![Reply::Stall(Vec::new())]);
    record(
        "tls timeout",
        quick.send(&request(with_userinfo(srv.port, "https"))),
    );
    let srv = tls_server(vec![Reply::Respond(response(200, &[], b""))]);
    record(
        "untrusted",
        c.send(&request(with_userinfo(srv.port, "https"))),
    );
    // Too large, reset mid-answer, and a success (its Debug).
    let srv = server(vec![
        Reply::Respond(response(200, &[("Set-Cookie", "s=1")], &[b'x'; 2 << 20])),
        Reply::Respond(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab".to_vec()),
        Reply::Respond(response(200, &[], format!("token={H}").as_bytes())),
    ]);
    record(
        "too large",
        c.send(&request(with_userinfo(srv.port, "http"))),
    );
    record(
        "cut short",
        c.send(&request(with_userinfo(srv.port, "http"))),
    );
    record("ok", c.send(&request(with_userinfo(srv.port, "http"))));
    shown.push(format!("{:?}", request(with_userinfo(1, "https"))));
    shown.push(format!("{c:?}"));

    assert_eq!(shown.len(), 10);
    for s in &shown {
        for canary in [Q, U, H] {
            assert!(!s.contains(canary), "{canary} shown in: {s}");
        }
    }
    // And the targets are there, redacted.
    assert!(shown[1].contains("/0/private/Balance"), "{}", shown[1]);
    assert!(shown[1].contains("HTTP response headers"), "{}", shown[1]);
}

#[test]
fn every_response_date_feeds_the_drift_recorder() {
    let behind = SystemTime::now() - Duration::from_secs(30);
    let srv = server(vec![
        Reply::Respond(response(200, &[("Date", &imf_fixdate(behind))], b"{}")),
        Reply::Respond(response(500, &[("Date", "not a date")], b"")),
        Reply::Respond(response(
            404,
            &[("Date", &imf_fixdate(SystemTime::now()))],
            b"",
        )),
    ]);
    let drift = Arc::new(ClockDrift::new());
    let c = client(opts()).with_drift(drift.clone());
    assert_eq!(drift.last(), None);

    c.send(&Request::get(srv.url("/time"))).unwrap();
    let r = drift.last().expect("a reading");
    assert_eq!(r.host, "127.0.0.1");
    assert!(!r.offset.server_ahead);
    let ms = r.offset.by.as_millis();
    assert!((28_500..=31_500).contains(&ms), "{ms}");
    let alert = drift
        .exceeds(Duration::from_secs(5))
        .expect("an alert is due");
    assert!(
        alert.offset.to_string().starts_with("-29") || alert.offset.to_string().starts_with("-30"),
        "{}",
        alert.offset
    );

    // A Date that does not parse leaves the last reading alone.
    let resp = c.send(&Request::get(srv.url("/time"))).unwrap();
    assert_eq!((resp.status, resp.date), (500, None));
    assert_eq!(drift.last(), Some(r));

    // Any status counts: a 404's Date is as good a clock as a 200's.
    c.send(&Request::get(srv.url("/time"))).unwrap();
    assert!(drift.exceeds(Duration::from_secs(5)).is_none());
    assert!(drift.last().unwrap().offset.by < Duration::from_secs(2));
}

#[test]
fn handles_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<HttpClient>();
    send_sync::<ClockDrift>();
    send_sync::<Request>();
}
