//! The HTTP listener of a running agent, over loopback: every endpoint's
//! codes and bodies (ready and not ready, a market-closed quiet feed
//! ready), requests that break the rules answered within the timeouts
//! while the workers stay available, and a canary secret that never shows.

mod common;

use brokerguard::sim::{SimConfig, SimHandle, Simulator};
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

const CANARY: &str = "CanaryHttpToken_9f3b2d77c1";

fn sim() -> SimHandle {
    Simulator::start(SimConfig {
        tokens: vec![CANARY.to_string()],
        data_every: Some(Duration::from_millis(100)),
        ..SimConfig::default()
    })
    .unwrap()
}

/// The address from the agent's `http: listening on http://ADDR/` line.
fn listening(dir: &Path) -> SocketAddr {
    let mut addr = None;
    assert!(
        wait_for(Duration::from_secs(15), || {
            addr = stderr_of(dir).lines().find_map(|l| {
                let rest = l.split("http: listening on ").nth(1)?;
                let rest = rest.split("://").nth(1)?;
                rest.trim_end().trim_end_matches('/').parse().ok()
            });
            addr.is_some()
        }),
        "no listening line: {}",
        stderr_of(dir)
    );
    addr.unwrap()
}

/// One raw request; the status code and the body.
fn call(addr: SocketAddr, raw: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let (status, _, body) = answer(&mut s);
    (status, body)
}

/// Reads an answer to its end: the status code, the head and the body.
fn answer(s: &mut impl Read) -> (u16, String, String) {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_string(), body.to_string())
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    call(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"))
}

/// A running agent (stopped on drop, before its folder is removed) and
/// its listener's address.
struct Running {
    _agent: common::Agent,
    dir: TempDir,
    addr: SocketAddr,
}

fn start(tag: &str, feeds: &str, extra: &str) -> Running {
    let dir = TempDir::new(tag);
    let body = format!(
        "{}[http]\nlisten = \"127.0.0.1:0\"\n{extra}\n{feeds}",
        agent_toml(dir.path(), "")
    );
    let cfg = write_config(dir.path(), &body);
    std::fs::write(dir.join("credentials.env"), format!("SIG_TOKEN={CANARY}\n")).unwrap();
    let child = spawn_agent(dir.path(), &cfg, &[]);
    let addr = listening(dir.path());
    Running {
        _agent: child,
        dir,
        addr,
    }
}

/// Dates (UTC) from yesterday to tomorrow: a holiday list that closes
/// NYSE now, whatever the hour.
fn holidays_around_now() -> String {
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let days: Vec<String> = [-1i64, 0, 1]
        .iter()
        .map(|d| {
            format!(
                "\"{}\"",
                today.checked_add(jiff::Span::new().days(*d)).unwrap()
            )
        })
        .collect();
    format!("[calendar.nyse]\nholidays = [{}]\n", days.join(", "))
}

fn ready_code(a: &Running) -> (u16, serde_json::Value) {
    let (code, body) = get(a.addr, "/readyz");
    (code, serde_json::from_str(&body).unwrap_or_default())
}

#[test]
fn readyz_waits_for_data_and_names_what_is_wrong() {
    let s = sim();
    let feeds = format!(
        "{}{}",
        ws_feed_toml("good", &s.url(), "SIG_TOKEN", ""),
        ws_feed_toml("lacking", &s.url(), "MISSING_TOKEN", "")
    );
    let a = start("http-ready", &feeds, "");
    // Live with data: only the lacking feed keeps the agent from ready.
    assert!(wait_for(Duration::from_secs(15), || {
        ready_code(&a).1["not_ready"]
            .as_array()
            .is_some_and(|r| r.len() == 1)
    }));
    let (code, r) = ready_code(&a);
    assert_eq!(code, 503, "{r}");
    assert_eq!(r["ready"], false);
    let reasons = r["not_ready"].as_array().unwrap();
    assert_eq!(reasons.len(), 1, "{r}");
    assert_eq!(reasons[0]["feed"], "lacking");
    assert_eq!(reasons[0]["state"], "waiting");
    assert!(reasons[0]["since"].as_str().unwrap().ends_with('Z'));
    assert!(
        reasons[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("MISSING_TOKEN")
    );
    assert!(
        reasons[0]["action"]
            .as_str()
            .unwrap()
            .contains("set-credential")
    );

    let (code, h) = get(a.addr, "/healthz");
    assert_eq!(code, 200, "{h}");
    assert!(h.contains("\"healthy\":true"), "{h}");

    let (code, st) = get(a.addr, "/status");
    assert_eq!(code, 200);
    let doc: serde_json::Value = serde_json::from_str(&st).unwrap();
    assert_eq!(doc["schema"], 1);
    assert_eq!(doc["feeds"].as_array().unwrap().len(), 2);

    let (code, m) = get(a.addr, "/metrics");
    assert_eq!(code, 200);
    for family in [
        "brokerguard_feed_up{feed=\"good\",broker=\"websocket\"} 1",
        "brokerguard_feed_state{feed=\"lacking\",broker=\"websocket\",state=\"waiting\"} 1",
        "brokerguard_credential_present{credential=\"MISSING_TOKEN\"} 0",
        "brokerguard_credential_present{credential=\"SIG_TOKEN\"} 1",
        "brokerguard_ready 0",
        "# TYPE process_resident_memory_bytes gauge",
    ] {
        assert!(m.contains(family), "{family} not in\n{m}");
    }
    for (_, body) in [(0, &m), (0, &st), (0, &h)] {
        assert!(!body.contains(CANARY), "the secret leaked");
    }

    // Without the lacking feed's vote the agent is ready.
    let feeds = format!(
        "{}{}",
        ws_feed_toml("good", &s.url(), "SIG_TOKEN", ""),
        ws_feed_toml("lacking", &s.url(), "MISSING_TOKEN", "required = false")
    );
    let b = start("http-ready2", &feeds, "");
    assert!(
        wait_for(Duration::from_secs(15), || ready_code(&b).0 == 200),
        "{:?}",
        ready_code(&b)
    );
    assert_eq!(ready_code(&b).1["not_ready"], serde_json::json!([]));
    drop((a, b));
    s.stop();
}

#[test]
fn a_quiet_feed_whose_market_is_closed_is_ready() {
    // Nothing listens on port 9 of loopback: the feed can only back off.
    let feeds = ws_feed_toml(
        "stocks",
        "ws://127.0.0.1:9/",
        "SIG_TOKEN",
        "calendar = \"nyse\"",
    );
    let a = start(
        "http-closed",
        &format!("{}{feeds}", holidays_around_now()),
        "",
    );
    assert!(
        wait_for(Duration::from_secs(15), || ready_code(&a).0 == 200),
        "{:?} {}",
        ready_code(&a),
        stderr_of(a.dir.path())
    );
    let doc: serde_json::Value = serde_json::from_str(&get(a.addr, "/status").1).unwrap();
    assert_eq!(doc["feeds"][0]["market"], "closed");
    assert_ne!(doc["feeds"][0]["state"], "live");
    let (_, m) = get(a.addr, "/metrics");
    assert!(
        m.contains("brokerguard_market_open{feed=\"stocks\",broker=\"websocket\"} 0"),
        "{m}"
    );
}

#[test]
fn rule_breakers_are_answered_or_dropped_in_time_and_the_workers_stay_available() {
    let a = start("http-rules", "", "");
    let addr = a.addr;
    assert_eq!(get(addr, "/nosuch").0, 404);
    assert_eq!(
        call(addr, "POST /status HTTP/1.1\r\nContent-Length: 0\r\n\r\n").0,
        405
    );
    assert_eq!(call(addr, "DELETE / HTTP/1.1\r\n\r\n").0, 405);
    assert_eq!(call(addr, "garbage\r\n\r\n").0, 400);
    let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000));
    assert_eq!(call(addr, &long).0, 431);
    assert_eq!(
        call(addr, "POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n").0,
        413
    );
    assert_eq!(
        call(addr, "HEAD /kite/callback?request_token=x HTTP/1.1\r\n\r\n").0,
        405,
        "a HEAD must not spend a request token"
    );
    let (code, h) = call(addr, "HEAD /healthz HTTP/1.1\r\n\r\n");
    assert_eq!((code, h.as_str()), (200, ""));

    // Slow-loris: more clients than workers drip a byte a second. Each is
    // cut off when its head deadline (5 s) passes, and meanwhile an honest
    // client is answered (by the accept thread's 503 at worst, never a hang).
    let loris: Vec<std::thread::JoinHandle<(u16, Duration)>> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                for b in b"GET /healthz HTTP/1.1\r\n".iter().take(10) {
                    if s.write_all(&[*b]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(700));
                }
                let mut out = Vec::new();
                let _ = s.read_to_end(&mut out);
                let text = String::from_utf8_lossy(&out).into_owned();
                let code = text
                    .split(' ')
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                (code, started.elapsed())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let (code, _) = get(addr, "/healthz");
    assert!(code == 200 || code == 503, "got {code}");
    assert!(t.elapsed() < Duration::from_secs(7), "{:?}", t.elapsed());
    for l in loris {
        let (code, took) = l.join().unwrap();
        assert_eq!(code, 408, "a slow client gets 408");
        assert!(
            took < Duration::from_secs(9),
            "cut off at its deadline, took {took:?}"
        );
    }
    // Afterwards the workers answer at once.
    let t = Instant::now();
    assert_eq!(get(addr, "/healthz").0, 200);
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn the_textfile_is_written_for_node_exporter() {
    let dir = TempDir::new("http-textfile");
    let prom = dir.join("bg.prom");
    let body = format!(
        "{}[metrics]\ntextfile = \"{}\"\n",
        agent_toml(dir.path(), ""),
        prom.display()
    );
    let cfg = write_config(dir.path(), &body);
    let mut child = spawn_agent(dir.path(), &cfg, &[]);
    assert!(wait_for(Duration::from_secs(15), || {
        std::fs::read_to_string(&prom).is_ok_and(|t| t.contains("brokerguard_build_info{version="))
    }));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&prom).unwrap().permissions().mode() & 0o777,
        0o644
    );
    stop_agent(&mut child);
}

/// With `[ha]`, `/metrics` says whether this agent leads and the epoch, and
/// `/status` (what the page draws) names the role and the lease's holder.
#[test]
fn with_failover_the_metrics_and_status_show_the_role() {
    use common::ha::{Etcd, etcd_binary};
    let Some(bin) = etcd_binary() else {
        assert!(
            std::env::var("BROKERGUARD_REQUIRE_ETCD").as_deref() != Ok("1"),
            "BROKERGUARD_REQUIRE_ETCD=1 but no etcd binary: apt-get install etcd-server"
        );
        eprintln!(
            "SKIP: no etcd binary (apt-get install etcd-server); failover metrics not tested"
        );
        return;
    };
    let etcd = Etcd::start(&bin);
    let s = sim();
    let extra = format!(
        "[ha]\netcd = [\"{}\"]\ncluster = \"http\"\nnode = \"solo\"\nlease = \"2s\"\n",
        etcd.url()
    );
    let a = start(
        "http-ha",
        &ws_feed_toml("good", &s.url(), "SIG_TOKEN", ""),
        &extra,
    );
    let mut text = String::new();
    assert!(
        wait_for(Duration::from_secs(20), || {
            text = get(a.addr, "/metrics").1;
            text.contains("brokerguard_ha_leader 1\n")
        }),
        "{text}\n{}",
        stderr_of(a.dir.path())
    );
    let epoch: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("brokerguard_ha_epoch "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no epoch: {text}"));
    assert!(epoch > 0, "{text}");
    let (code, body) = get(a.addr, "/status");
    assert_eq!(code, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["agent"]["ha"]["role"], "leader", "{doc}");
    assert_eq!(doc["agent"]["ha"]["holder"], "solo", "{doc}");
    assert_eq!(doc["agent"]["ha"]["epoch"], epoch, "{doc}");
}

mod browser_login {
    use super::*;
    use brokerguard::sim::kite::{KiteSim, KiteSimConfig};

    const API_KEY: &str = "httpkey0000000a1";
    const API_SECRET: &str = "CanaryHttpKiteSecret000000000001";

    #[test]
    fn the_callback_exchanges_the_request_token_and_the_feed_goes_live_on_the_new_token() {
        let sim = KiteSim::start(KiteSimConfig {
            api_key: API_KEY.into(),
            api_secret: API_SECRET.into(),
            access_tokens: vec![],
            data_every: Some(Duration::from_millis(100)),
            heartbeat_every: Some(Duration::from_millis(300)),
            ..KiteSimConfig::default()
        })
        .unwrap();
        let feed = format!(
            "[[feed]]\nname = \"kmain\"\nbroker = \"kite\"\naccount = \"main\"\ninstruments = [408065]\n\
             url = \"{}\"\nrest_url = \"{}\"\ncalendar = \"always\"\nconnect_timeout = \"1s\"\nhandshake_timeout = \"2s\"\n",
            sim.ticker_url(),
            sim.rest_url()
        );
        let dir = TempDir::new("http-login");
        let cfg = write_config(
            dir.path(),
            &format!(
                "{}[http]\nlisten = \"127.0.0.1:0\"\n{feed}",
                agent_toml(dir.path(), "")
            ),
        );
        std::fs::write(
            dir.join("credentials.env"),
            format!("KITE_MAIN_API_KEY={API_KEY}\nKITE_MAIN_API_SECRET={API_SECRET}\n"),
        )
        .unwrap();
        let child = spawn_agent(dir.path(), &cfg, &[]);
        let addr = listening(dir.path());
        let a = Running {
            _agent: child,
            dir,
            addr,
        };
        assert!(wait_for(Duration::from_secs(15), || feed_state(
            a.dir.path(),
            "kmain"
        )
        .as_deref()
            == Some("waiting")));

        // The page offers the login, with the key (public) and never the secret.
        let (code, page) = get(addr, "/");
        assert_eq!(code, 200);
        assert!(
            page.contains(&format!("api_key={API_KEY}&redirect_params=account%3Dmain")),
            "{page}"
        );
        assert!(!page.contains(API_SECRET));

        // Kite's redirect back, with a request token the simulator issued.
        let request = sim.issue_request_token();
        let (code, outcome) = get(
            addr,
            &format!(
                "/kite/callback?action=login&type=login&status=success&request_token={request}&account=main"
            ),
        );
        assert_eq!(code, 200, "{outcome}");
        assert!(outcome.contains("data-outcome=\"ok\""), "{outcome}");
        assert!(
            outcome.contains("KITE_MAIN_ACCESS_TOKEN") && outcome.contains("hmac:"),
            "{outcome}"
        );
        assert!(!outcome.contains(&request) && !outcome.contains(API_SECRET));
        let written = std::fs::read_to_string(a.dir.join("credentials.env")).unwrap();
        let token = written
            .lines()
            .find_map(|l| l.strip_prefix("KITE_MAIN_ACCESS_TOKEN="))
            .expect("the token is written")
            .to_string();
        assert!(!outcome.contains(&token), "the token itself is never shown");
        assert!(
            wait_for(Duration::from_secs(15), || feed_state(
                a.dir.path(),
                "kmain"
            )
            .as_deref()
                == Some("live")),
            "{}",
            stderr_of(a.dir.path())
        );
        // The request token works once: a replay is refused, and says so.
        let (code, again) = get(
            addr,
            &format!("/kite/callback?status=success&request_token={request}"),
        );
        assert_eq!(code, 400);
        assert!(
            again.contains("data-outcome=\"failed\"") && again.contains("request token"),
            "{again}"
        );
        let (_, m) = get(addr, "/metrics");
        assert!(
            m.contains(
                "brokerguard_token_expiry_timestamp_seconds{credential=\"KITE_MAIN_ACCESS_TOKEN\"}"
            ),
            "{m}"
        );
        for text in [&m, &get(addr, "/status").1, &stderr_of(a.dir.path())] {
            assert!(
                !text.contains(&token) && !text.contains(API_SECRET) && !text.contains(&request)
            );
        }
        drop(a);
        sim.stop();
    }
}

mod exposed {
    use super::*;
    use brokerguard::secret::Secret;
    use std::process::Stdio;

    const PASSWORD: &str = "CanaryHttpPassword-2c71";

    fn fixture(name: &str) -> String {
        format!("{}/tests/fixtures/tls/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    fn tls_section(public: &str) -> String {
        format!(
            "[http]\nlisten = \"0.0.0.0:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\npublic = [{public}]\n",
            fixture("server.pem"),
            fixture("server.key")
        )
    }

    /// One request over TLS (trusting the fixtures' CA); status and body.
    fn call_tls(port: u16, path: &str, auth: Option<&str>) -> (u16, String, String) {
        use base64::Engine;
        let ca =
            native_tls::Certificate::from_pem(&std::fs::read(fixture("ca.pem")).unwrap()).unwrap();
        let connector = native_tls::TlsConnector::builder()
            .add_root_certificate(ca)
            .build()
            .unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut s = connector.connect("localhost", tcp).unwrap();
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n");
        if let Some(a) = auth {
            let b64 = base64::engine::general_purpose::STANDARD.encode(a);
            req.push_str(&format!("Authorization: Basic {b64}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        answer(&mut s)
    }

    #[test]
    fn off_loopback_it_needs_tls_and_the_password_except_on_public_paths() {
        let dir = TempDir::new("http-exposed");
        let hash =
            brokerguard::http::auth::stored_form("HTTP_PASSWORD", Secret::new(PASSWORD)).unwrap();
        let cfg = write_config(
            dir.path(),
            &format!(
                "{}{}",
                agent_toml(dir.path(), ""),
                tls_section("\"/healthz\", \"/metrics\"")
            ),
        );
        std::fs::write(
            dir.join("credentials.env"),
            format!("HTTP_PASSWORD='{}'\n", hash.expose()),
        )
        .unwrap();
        let child = spawn_agent(dir.path(), &cfg, &[]);
        let addr = listening(dir.path());
        assert!(stderr_of(dir.path()).contains("listening on https://0.0.0.0:"));
        let a = Running {
            _agent: child,
            dir,
            addr,
        };
        let port = addr.port();

        // Plain HTTP gets no answer: the port speaks TLS only.
        let (code, _) = call(
            SocketAddr::from(([127, 0, 0, 1], port)),
            "GET /healthz HTTP/1.1\r\n\r\n",
        );
        assert_eq!(code, 0);
        // Public paths answer without the password.
        assert_eq!(call_tls(port, "/healthz", None).0, 200);
        assert_eq!(call_tls(port, "/metrics", None).0, 200);
        // Everything else asks for it, and a wrong one is refused.
        for path in ["/", "/status", "/readyz", "/timeline", "/kite/callback"] {
            let (code, head, _) = call_tls(port, path, None);
            assert_eq!(code, 401, "{path}");
            assert!(
                head.contains("WWW-Authenticate: Basic realm=\"brokerguard\""),
                "{head}"
            );
        }
        assert_eq!(call_tls(port, "/status", Some("ops:wrong")).0, 401);
        let (code, _, body) = call_tls(port, "/status", Some(&format!("ops:{PASSWORD}")));
        assert_eq!(code, 200, "{body}");
        assert!(body.contains("\"schema\": 1"));
        for text in [&body, &stderr_of(a.dir.path())] {
            assert!(!text.contains(PASSWORD) && !text.contains(&hash.expose()[20..]));
        }
    }

    #[test]
    fn off_loopback_it_refuses_to_start_without_the_password_or_tls() {
        let dir = TempDir::new("http-refused");
        let cfg = write_config(
            dir.path(),
            &format!("{}{}", agent_toml(dir.path(), ""), tls_section("")),
        );
        let mut child = spawn_agent(dir.path(), &cfg, &[]);
        let code = wait_exit(&mut child, Duration::from_secs(15)).and_then(|s| s.code());
        assert_eq!(code, Some(78), "{}", stderr_of(dir.path()));
        let err = stderr_of(dir.path());
        assert!(
            err.contains("set-credential HTTP_PASSWORD")
                && err.contains("alert=start_failed reason=http"),
            "{err}"
        );

        // Without TLS the configuration itself is refused, at its line.
        let dir = TempDir::new("http-refused-tls");
        let cfg = write_config(
            dir.path(),
            &format!(
                "{}[http]\nlisten = \"0.0.0.0:9187\"\n",
                agent_toml(dir.path(), "")
            ),
        );
        let mut child = spawn_agent(dir.path(), &cfg, &[]);
        let code = wait_exit(&mut child, Duration::from_secs(15)).and_then(|s| s.code());
        assert_eq!(code, Some(78));
        assert!(
            stderr_of(dir.path()).contains("needs TLS"),
            "{}",
            stderr_of(dir.path())
        );
    }

    #[test]
    fn set_credential_stores_the_password_as_an_argon2id_hash() {
        let dir = TempDir::new("http-setcred");
        let file = dir.join("credentials.env");
        std::fs::write(&file, "").unwrap();
        let mut c = std::process::Command::new(BIN)
            .args(["set-credential", "HTTP_PASSWORD", "--file"])
            .arg(&file)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin
            .take()
            .unwrap()
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .unwrap();
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains("HTTP_PASSWORD=") && text.contains("$argon2id$v=19$"),
            "{text}"
        );
        assert!(!text.contains(PASSWORD));
        assert!(!String::from_utf8_lossy(&out.stderr).contains(PASSWORD));
    }
}
