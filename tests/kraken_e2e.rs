//! Kraken end to end: the real `brokerguard` binary against the Kraken
//! simulator (`src/sim/kraken`, its own implementation of REST and
//! WebSocket v2), over loopback. Every assertion is on what an operator or
//! the bot can see — status.json, the journal (stderr), the fan-out socket,
//! the commands' output — or on what the simulator counted (connections,
//! tokens issued, nonces accepted and refused, REST calls).
//!
//! Books on the fan-out are verified here the way a bot would: each
//! symbol's book is rebuilt from the messages the agent forwarded, and
//! every message's checksum (computed by the simulator's own book code)
//! must match. A forwarded update that failed verification would show up
//! as a mismatch.

mod common;

use base64::Engine;
use brokerguard::brokers::kraken::book::{Book, BookKind, parse_book_message};
use brokerguard::sim::kraken::{KrakenFault, KrakenSim, KrakenSimConfig, KrakenSimHandle, SimKey};
use common::agent::{
    TestAgent as Agent, check_json, failed_layer, layer_of, write_private_creds as write_creds,
};
use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Generous: most waits end in well under a second, but the machine is
/// shared and builds run beside the tests.
const SLOW: Duration = Duration::from_secs(20);
/// How long "nothing happens" is watched for.
const QUIET: Duration = Duration::from_millis(2500);

const KEY_ONE: &str = "SIMKEYONE0canary0apikey0000000000000000000000000000000001";
const KEY_TWO: &str = "SIMKEYTWO0canary0apikey0000000000000000000000000000000002";

fn secret(fill: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([fill; 64])
}

/// A simulator that accepts KEY_ONE (secret of 1s) and KEY_TWO (2s),
/// sending data every 100 ms and heartbeats after 200 ms of quiet.
fn start_sim(adjust: impl FnOnce(&mut KrakenSimConfig)) -> KrakenSimHandle {
    let mut cfg = KrakenSimConfig {
        keys: vec![
            SimKey {
                api_key: KEY_ONE.into(),
                secret_b64: secret(1),
            },
            SimKey {
                api_key: KEY_TWO.into(),
                secret_b64: secret(2),
            },
        ],
        data_every: Duration::from_millis(100),
        heartbeat_every: Duration::from_millis(200),
        ..KrakenSimConfig::default()
    };
    adjust(&mut cfg);
    KrakenSim::start(cfg).expect("the simulator starts")
}

/// Two free loopback ports, for a simulator started after the bot has
/// joined the fan-out (so it sees every book from its first snapshot).
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

/// The simulator's URLs on ports chosen before it starts.
fn urls_for(ws: u16, rest: u16) -> (String, String) {
    (
        format!("ws://127.0.0.1:{ws}/v2"),
        format!("http://127.0.0.1:{rest}"),
    )
}

/// Credentials of account `master`: key set 1 and, with `fallback`, set 2.
fn master_creds(fallback: bool) -> String {
    let mut s = format!(
        "KRAKEN_MASTER_API_KEY={KEY_ONE}\nKRAKEN_MASTER_API_SECRET={}\n",
        secret(1)
    );
    if fallback {
        s += &format!(
            "KRAKEN_MASTER_API_KEY_2={KEY_TWO}\nKRAKEN_MASTER_API_SECRET_2={}\n",
            secret(2)
        );
    }
    s
}

/// Timeouts short enough for tests; parked feeds retry only after 10
/// minutes, so a wake-up inside a test is the agent's own doing.
const TIMING: &str = r#"stall_after = "2s"
ping_every = "1s"
pong_timeout = "2s"
connect_timeout = "1s"
handshake_timeout = "2s"
backoff = { initial = "100ms", max = "1s", stable_after = "2s", parked_retry = "10m" }"#;

fn public_feed(
    name: &str,
    sim: &KrakenSimHandle,
    channels: &str,
    symbols: &str,
    extra: &str,
) -> String {
    public_feed_at(
        name,
        &sim.ws_url(),
        &sim.rest_url(),
        channels,
        symbols,
        extra,
    )
}

fn public_feed_at(
    name: &str,
    ws: &str,
    rest: &str,
    channels: &str,
    symbols: &str,
    extra: &str,
) -> String {
    format!(
        "\n[[feed]]\nname = \"{name}\"\nbroker = \"kraken\"\nurl = \"{ws}\"\nrest_url = \"{rest}\"\n\
         channels = {channels}\nsymbols = {symbols}\n{TIMING}\n{extra}\n"
    )
}

fn private_feed(name: &str, sim: &KrakenSimHandle, account: &str, extra: &str) -> String {
    format!(
        "\n[[feed]]\nname = \"{name}\"\nbroker = \"kraken\"\naccount = \"{account}\"\nurl = \"{}\"\n\
         rest_url = \"{}\"\nchannels = [\"executions\", \"balances\"]\n{TIMING}\n{extra}\n",
        sim.ws_auth_url(),
        sim.rest_url()
    )
}

/// A fan-out subscriber that keeps every line as the agent wrote it (a
/// book's decimals must reach the checksum as Kraken sent them).
struct RawBot {
    lines: Arc<Mutex<Vec<String>>>,
    _stream: UnixStream,
}

impl RawBot {
    fn connect(socket: &Path) -> RawBot {
        let mut stream = None;
        assert!(
            wait_for(SLOW, || {
                stream = UnixStream::connect(socket).ok();
                stream.is_some()
            }),
            "fan-out socket {} never accepted",
            socket.display()
        );
        let stream = stream.unwrap();
        let reader = stream.try_clone().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(reader);
            loop {
                let mut line = String::new();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => sink.lock().unwrap().push(line),
                }
            }
        });
        RawBot {
            lines,
            _stream: stream,
        }
    }

    /// Subscribes to `feed` and waits for the agent's answer: from then on
    /// the bot gets every line of it.
    fn subscribe(&self, feed: &str) {
        use std::io::Write;
        let mut s = &self._stream;
        writeln!(s, "{{\"subscribe\":[\"{feed}\"]}}").unwrap();
        assert!(
            wait_for(SLOW, || self
                .raw()
                .iter()
                .any(|l| l.contains("\"subscribed\""))),
            "the fan-out never confirmed the subscription"
        );
    }

    fn raw(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn values(&self) -> Vec<Value> {
        self.raw()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn count(&self, pred: impl Fn(&Value) -> bool) -> usize {
        self.values().iter().filter(|v| pred(v)).count()
    }
}

/// What the bot saw of the books.
#[derive(Debug, Default)]
struct BookTally {
    snapshots: usize,
    updates: usize,
    /// Snapshots that arrived after a resync event for their symbol.
    snapshots_after_resync: usize,
}

/// Rebuilds every book from the data lines in order and checks each
/// message's checksum; a resync event drops that symbol's book, as a bot
/// is told to. Panics on any mismatch or on an update without a snapshot.
fn verify_books(raw: &[String], depth: usize) -> BookTally {
    #[derive(serde::Deserialize)]
    struct Line<'a> {
        #[serde(borrow)]
        data: Option<&'a serde_json::value::RawValue>,
        event: Option<String>,
        symbol: Option<String>,
    }
    let mut books: HashMap<String, Book> = HashMap::new();
    let mut resynced: Vec<String> = Vec::new();
    let mut tally = BookTally::default();
    for line in raw {
        let l: Line = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if l.event.as_deref() == Some("resync") {
            let s = l.symbol.expect("a resync names its symbol");
            books.remove(&s);
            resynced.push(s);
            continue;
        }
        let Some(data) = l.data else { continue };
        let text = data.get();
        if !text.contains("\"channel\":\"book\"") {
            continue;
        }
        let msg = parse_book_message(text).unwrap_or_else(|e| panic!("{e}: {text}"));
        for e in &msg.entries {
            match msg.kind {
                BookKind::Snapshot => {
                    let mut b = Book::new(depth);
                    b.apply_snapshot(&e.bids, &e.asks);
                    books.insert(e.symbol.clone(), b);
                    tally.snapshots += 1;
                    if let Some(i) = resynced.iter().position(|s| *s == e.symbol) {
                        resynced.remove(i);
                        tally.snapshots_after_resync += 1;
                    }
                }
                BookKind::Update => {
                    let b = books
                        .get_mut(&e.symbol)
                        .unwrap_or_else(|| panic!("an update of {} before its snapshot", e.symbol));
                    b.apply_update(&e.bids, &e.asks);
                    tally.updates += 1;
                }
            }
            let book = &books[&e.symbol];
            assert_eq!(
                book.checksum(),
                e.checksum,
                "{}: the bot's book does not verify after {text}",
                e.symbol
            );
        }
    }
    tally
}

/// The bot on the agent's fan-out socket, keeping lines as written.
fn bot_of(agent: &Agent) -> RawBot {
    RawBot::connect(&agent.socket())
}

fn is_book(v: &Value, kind: &str) -> bool {
    v["data"]["channel"] == "book" && v["data"]["type"] == kind
}

#[test]
fn a_public_book_feed_is_live_and_every_book_on_the_fanout_verifies() {
    let (ws_port, rest_port) = free_ports();
    let (ws, rest) = urls_for(ws_port, rest_port);
    let feeds = public_feed_at(
        "kbook",
        &ws,
        &rest,
        r#"["book", "ticker"]"#,
        r#"["BTC/USD", "ETH/USD"]"#,
        "depth = 10",
    );
    let agent = Agent::start("kr-book", &feeds, "", "info");
    let bot = bot_of(&agent);
    bot.subscribe("kbook");
    // Kraken comes up only now: the bot sees every book from its snapshot.
    let sim = start_sim(|c| {
        c.ws_port = ws_port;
        c.rest_port = rest_port;
    });
    agent.wait_state("kbook", "live");
    assert!(
        wait_for(SLOW, || bot.count(|v| is_book(v, "update")) >= 20),
        "too few book updates reached the bot: {:?}",
        sim.stats()
    );
    let tally = verify_books(&bot.raw(), 10);
    assert!(tally.snapshots >= 2 && tally.updates >= 20, "{tally:?}");
    assert!(bot.count(|v| v["data"]["channel"] == "ticker") >= 2);
    assert_eq!(bot.count(|v| v["event"] == "resync"), 0);
    // Subscriptions are confirmations, not data: none reaches the bot.
    assert_eq!(bot.count(|v| v["data"]["method"] == "subscribe"), 0);
    let st = sim.stats();
    assert_eq!(st.connections, 1, "{st:?}");
    let subs = &st.subscribes_per_connection[0];
    for want in [
        "book BTC/USD",
        "book ETH/USD",
        "ticker BTC/USD",
        "ticker ETH/USD",
    ] {
        assert!(subs.iter().any(|s| s == want), "{want}: {subs:?}");
    }
    // A public feed signs nothing.
    assert_eq!(st.rest_calls, 0);
}

#[test]
fn a_corrupted_checksum_resyncs_that_book_without_reconnecting() {
    let (ws_port, rest_port) = free_ports();
    let (ws, rest) = urls_for(ws_port, rest_port);
    let feeds = public_feed_at("kbook", &ws, &rest, r#"["book"]"#, r#"["BTC/USD"]"#, "");
    let agent = Agent::start("kr-resync", &feeds, "", "info");
    let bot = bot_of(&agent);
    bot.subscribe("kbook");
    let sim = start_sim(|c| {
        c.ws_port = ws_port;
        c.rest_port = rest_port;
    });
    agent.wait_state("kbook", "live");
    assert!(wait_for(SLOW, || bot.count(|v| is_book(v, "update")) >= 5));
    sim.set_fault(KrakenFault::CorruptChecksumOnce);
    assert!(
        wait_for(SLOW, || bot.count(|v| v["event"] == "resync") == 1),
        "no resync event; stderr:\n{}",
        agent.log()
    );
    let resync = bot
        .values()
        .into_iter()
        .find(|v| v["event"] == "resync")
        .unwrap();
    assert_eq!(
        resync,
        serde_json::json!({"feed": "kbook", "event": "resync", "reason": "checksum", "symbol": "BTC/USD"})
    );
    // A fresh snapshot follows, then updates that verify against it.
    assert!(
        wait_for(SLOW, || {
            let raw = bot.raw();
            let t = verify_books(&raw, 10);
            t.snapshots_after_resync == 1 && t.snapshots == 2
        }),
        "no fresh snapshot after the resync: {:?}",
        sim.stats()
    );
    let before = bot.count(|v| is_book(v, "update"));
    assert!(wait_for(SLOW, || bot.count(|v| is_book(v, "update")) >= before + 5));
    // Every message the bot got verifies: the corrupted update was not forwarded.
    let tally = verify_books(&bot.raw(), 10);
    assert_eq!(tally.snapshots_after_resync, 1, "{tally:?}");
    let st = sim.stats();
    assert_eq!(st.corrupted_checksums_sent, 1, "{st:?}");
    assert_eq!(st.connections, 1, "a resync needs no reconnect: {st:?}");
    assert!(st.unsubscribes >= 1 && st.resubscribes >= 1, "{st:?}");
    assert_eq!(agent.field("kbook", "reconnects"), 0);
    agent.wait_log("checksum mismatch");
    assert!(
        !agent.log().contains("alert=book_resync"),
        "one resync is no alert"
    );
}

#[test]
fn heartbeats_keep_a_quiet_feed_alive_and_silence_without_them_is_a_stall() {
    // Data once (the snapshot), then only heartbeats every 200 ms.
    let quiet = start_sim(|c| c.data_every = Duration::from_secs(3600));
    // Data once, then nothing at all.
    let mute = start_sim(|c| {
        c.data_every = Duration::from_secs(3600);
        c.heartbeat_every = Duration::from_secs(3600);
    });
    let stall = "stall_after = \"1s\"";
    let feeds = public_feed("quiet", &quiet, r#"["ticker"]"#, r#"["BTC/USD"]"#, "")
        .replace("stall_after = \"2s\"", stall)
        + &public_feed("mute", &mute, r#"["ticker"]"#, r#"["BTC/USD"]"#, "")
            .replace("stall_after = \"2s\"", stall);
    let agent = Agent::start("kr-heartbeat", &feeds, "", "info");
    agent.wait_state("quiet", "live");
    assert!(
        quiet.wait_for(|s| s.heartbeats_sent >= 5, SLOW),
        "{:?}",
        quiet.stats()
    );
    // Far beyond stall_after with heartbeats flowing: still live, one connection.
    assert!(
        holds_for(QUIET, || agent.state("quiet").as_deref() == Some("live")),
        "quiet went {:?}; stderr:\n{}",
        agent.state("quiet"),
        agent.log()
    );
    assert_eq!(quiet.stats().connections, 1, "{:?}", quiet.stats());
    assert_eq!(agent.field("quiet", "restarts"), 0);
    // The same silence without heartbeats is a stall: restarted.
    assert!(
        mute.wait_for(|s| s.connections >= 2, SLOW),
        "the mute feed was never restarted: {:?}; stderr:\n{}",
        mute.stats(),
        agent.log()
    );
    agent.wait_log("feed=mute class=stalled");
    assert!(!agent.log().contains("feed=quiet class=stalled"));
}

#[test]
fn maintenance_is_degraded_in_status_not_a_stall() {
    let sim = start_sim(|_| {});
    let feeds = public_feed("kbook", &sim, r#"["book"]"#, r#"["BTC/USD"]"#, "")
        .replace("stall_after = \"2s\"", "stall_after = \"1s\"");
    let agent = Agent::start("kr-maint", &feeds, "", "info");
    agent.wait_state("kbook", "live");
    sim.set_fault(KrakenFault::Maintenance);
    agent.wait_state("kbook", "degraded");
    let err = agent.field("kbook", "last_error");
    assert!(
        err.as_str().is_some_and(|e| e.contains("maintenance")),
        "{err}"
    );
    // Beyond stall_after in maintenance: no stall, no reconnect.
    assert!(
        holds_for(QUIET, || agent.state("kbook").as_deref()
            == Some("degraded")),
        "left degraded: {:?}; stderr:\n{}",
        agent.state("kbook"),
        agent.log()
    );
    sim.clear_fault();
    agent.wait_state("kbook", "live");
    assert_eq!(sim.stats().connections, 1, "{:?}", sim.stats());
    assert_eq!(agent.field("kbook", "restarts"), 0);
    agent.wait_log("Kraken system status: maintenance");
}

#[test]
fn a_private_feed_fetches_a_fresh_token_for_every_connection() {
    let sim = start_sim(|_| {});
    let feeds = private_feed("kexec", &sim, "master", "");
    // Everything logged, as an operator chasing a problem would.
    let agent = Agent::start_with_env(
        "kr-token",
        &feeds,
        &master_creds(false),
        "trace",
        &[("RUST_LOG", "trace")],
    );
    let bot = bot_of(&agent);
    agent.wait_state("kexec", "live");
    assert!(sim.wait_for(
        |s| {
            s.subscribes_per_connection
                .first()
                .is_some_and(|c| c.len() == 2)
        },
        SLOW
    ));
    assert_eq!(agent.info("kexec", "key_set").as_deref(), Some("1"));
    let st = sim.stats();
    assert_eq!((st.connections, st.tokens_issued), (1, 1), "{st:?}");
    // A forced reconnect (the network drops the socket): a new token.
    sim.disconnect_all();
    assert!(
        sim.wait_for(
            |s| s
                .subscribes_per_connection
                .get(1)
                .is_some_and(|c| c.len() == 2),
            SLOW
        ),
        "never resubscribed: {:?}; stderr:\n{}",
        sim.stats(),
        agent.log()
    );
    agent.wait_state("kexec", "live");
    let st = sim.stats();
    assert_eq!(st.connections, 2, "{st:?}");
    assert_eq!(
        st.tokens_issued, st.connections,
        "one token per connection: {st:?}"
    );
    assert_eq!(st.tokens_refused, 0, "{st:?}");
    assert_eq!(
        st.subscribes_per_connection[1],
        vec!["executions".to_string(), "balances".to_string()]
    );
    assert!(wait_for(SLOW, || bot
        .count(|v| v["data"]["channel"] == "balances")
        >= 2));
    assert!(wait_for(SLOW, || bot
        .count(|v| v["event"] == "reconnected")
        == 1));
    // Canaries: no token, key or private key anywhere an operator or the bot looks.
    let tokens = sim.issued_tokens();
    assert_eq!(tokens.len(), 2);
    let status = std::fs::read_to_string(agent.dir.join("run/status.json")).unwrap();
    let outputs = [agent.log(), status, bot.raw().concat()];
    for secret in tokens
        .iter()
        .map(String::as_str)
        .chain([KEY_ONE, &secret(1)])
    {
        for (i, out) in outputs.iter().enumerate() {
            assert!(!out.contains(secret), "output {i} holds a secret");
        }
    }
    assert!(agent.log().contains("fetched a WebSocket token (hmac:"));
}

#[test]
fn a_locked_out_key_set_falls_back_to_the_next_with_an_alert() {
    let sim = start_sim(|c| {
        c.fault = Some(KrakenFault::Lockout {
            key: Some(KEY_ONE.into()),
        })
    });
    let feeds = private_feed("kexec", &sim, "master", "");
    let agent = Agent::start("kr-fallback", &feeds, &master_creds(true), "info");
    agent.wait_state("kexec", "live");
    agent.wait_log("alert=key_fallback account=master from=1 to=2 reason=lockout");
    assert_eq!(agent.info("kexec", "key_set").as_deref(), Some("2"));
    let st = sim.stats();
    assert_eq!(st.nonces_seen.get(KEY_TWO).map(Vec::len), Some(1), "{st:?}");
    assert!(!st.nonces_seen.contains_key(KEY_ONE), "{st:?}");
    assert_eq!(st.rest_errors.get("EGeneral:Temporary lockout"), Some(&1));
    // doctor tells which set the running agent uses.
    let out = run_cli(&["doctor", "--config", &agent.config()], &[], None);
    assert!(
        out.stdout.contains(
            "key set in use: 2 (KRAKEN_MASTER_API_KEY_2 / KRAKEN_MASTER_API_SECRET_2), as the running agent reports"
        ),
        "{}",
        out.all()
    );
    // The fallback keeps being used: the next connection does not try set 1 again.
    sim.disconnect_all();
    assert!(
        sim.wait_for(|s| s.tokens_issued == 2, SLOW),
        "{:?}",
        sim.stats()
    );
    assert_eq!(
        sim.stats().rest_errors.get("EGeneral:Temporary lockout"),
        Some(&1)
    );
    let status = run_cli(&["status", "--config", &agent.config()], &[], None);
    assert!(
        status
            .stdout
            .lines()
            .any(|l| l.starts_with("kexec") && l.contains("key set 2")),
        "{}",
        status.all()
    );
}

#[test]
fn an_invalid_key_parks_the_feed_without_a_retry_storm() {
    let sim = start_sim(|c| c.fault = Some(KrakenFault::InvalidKey { key: None }));
    let feeds = private_feed("kexec", &sim, "master", "");
    let agent = Agent::start("kr-invalid", &feeds, &master_creds(false), "info");
    agent.wait_state("kexec", "parked");
    let err = agent.field("kexec", "last_error");
    let err = err.as_str().unwrap_or_default();
    assert!(
        err.contains("EAPI:Invalid key") && err.contains("KRAKEN_MASTER_API_KEY"),
        "{err}"
    );
    agent.wait_log("alert=credential_rejected feed=kexec");
    // The credential validator finds out on its own too (its first check
    // is at start): one Balance, with the broker, account and class named.
    agent.wait_log(
        "alert=credential_rejected feed=kexec broker=kraken account=master class=auth error=",
    );
    assert!(
        sim.wait_for(|s| s.rest_calls == 2, SLOW),
        "{:?}",
        sim.stats()
    );
    let calls = sim.stats().rest_calls;
    assert!(
        holds_for(QUIET, || sim.stats().rest_calls == calls),
        "kept calling: {:?}",
        sim.stats()
    );
    assert_eq!(sim.stats().connections, 0, "no WebSocket without a token");
    assert_eq!(agent.state("kexec").as_deref(), Some("parked"));
}

#[test]
fn a_lockout_or_an_outage_is_a_long_backoff_with_the_reason_in_status() {
    let locked = start_sim(|c| {
        c.fault = Some(KrakenFault::Lockout {
            key: Some(KEY_ONE.into()),
        })
    });
    let down = start_sim(|c| c.fault = Some(KrakenFault::Unavailable));
    let feeds =
        private_feed("locked", &locked, "master", "") + &private_feed("down", &down, "beta", "");
    let creds = master_creds(false)
        + &format!(
            "KRAKEN_BETA_API_KEY={KEY_TWO}\nKRAKEN_BETA_API_SECRET={}\n",
            secret(2)
        );
    let agent = Agent::start("kr-backoff", &feeds, &creds, "info");
    agent.wait_state("locked", "backoff");
    agent.wait_state("down", "backoff");
    let reason = |feed: &str| {
        agent
            .field(feed, "last_error")
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let retry = |feed: &str| agent.field(feed, "retry_in_ms").as_u64().unwrap_or(0);
    assert!(
        reason("locked").contains("EGeneral:Temporary lockout"),
        "{}",
        reason("locked")
    );
    assert!(
        retry("locked") > 14 * 60 * 1000,
        "Kraken's ~15 min: {}",
        retry("locked")
    );
    assert!(
        reason("down").contains("EService:Unavailable"),
        "{}",
        reason("down")
    );
    assert!(retry("down") >= 4_000, "a long backoff: {}", retry("down"));
    // The feed's token fetch, and the validator's first Balance: then quiet.
    assert!(
        locked.wait_for(|s| s.rest_calls == 2, SLOW),
        "{:?}",
        locked.stats()
    );
    assert!(
        down.wait_for(|s| s.rest_calls == 2, SLOW),
        "{:?}",
        down.stats()
    );
    let (l, d) = (locked.stats().rest_calls, down.stats().rest_calls);
    assert!(holds_for(QUIET, || locked.stats().rest_calls == l
        && down.stats().rest_calls == d));
}

#[test]
fn config_check_names_the_feed_and_field_of_what_kraken_does_not_offer() {
    let dir = TempDir::new("kr-config");
    let body = agent_toml(dir.path(), "")
        + r#"
[[feed]]
name = "kbook"
broker = "kraken"
channels = ["book", "candles"]
symbols = ["BTC/USD"]
depth = 20

[[feed]]
name = "kmixed"
broker = "kraken"
account = "master"
channels = ["ticker", "executions"]
symbols = ["BTC/USD"]
"#;
    let cfg = write_config(dir.path(), &body);
    let out = run_cli(
        &["config", "check", "--config", &cfg.display().to_string()],
        &[],
        None,
    );
    assert_eq!(out.code, Some(78), "{}", out.all());
    for (key, text) in [
        (
            "feed[0].depth",
            "[[feed]] \"kbook\": Kraken offers book depths 10, 25, 100, 500 and 1000, not 20",
        ),
        (
            "feed[0].channels",
            "[[feed]] \"kbook\": unknown channel \"candles\"",
        ),
        ("feed[1].channels", "split them into two feeds"),
    ] {
        assert!(
            out.stderr
                .lines()
                .any(|l| l.contains(&format!(": {key}: ")) && l.contains(text)),
            "{key}: {text}\n{}",
            out.stderr
        );
    }
}

#[test]
fn a_malformed_secret_is_a_doctor_error_and_parks_without_calling_kraken() {
    let sim = start_sim(|_| {});
    let feeds = private_feed("kexec", &sim, "master", "");
    let creds = format!(
        "KRAKEN_MASTER_API_KEY={KEY_ONE}\nKRAKEN_MASTER_API_SECRET=CANARY*not*base64*value\n"
    );
    let agent = Agent::start("kr-malformed", &feeds, &creds, "info");
    let doctor = run_cli(&["doctor", "--config", &agent.config()], &[], None);
    assert_eq!(doctor.code, Some(1), "{}", doctor.all());
    assert!(
        doctor
            .stdout
            .lines()
            .any(|l| l.contains("KRAKEN_MASTER_API_SECRET") && l.contains("malformed")),
        "{}",
        doctor.stdout
    );
    assert!(
        doctor.stdout.contains("is not valid base64"),
        "{}",
        doctor.stdout
    );
    agent.wait_state("kexec", "parked");
    let err = agent.field("kexec", "last_error");
    assert!(
        err.as_str().is_some_and(
            |e| e.contains("KRAKEN_MASTER_API_SECRET") && e.contains("not valid base64")
        ),
        "{err}"
    );
    assert!(holds_for(QUIET, || sim.stats().rest_calls == 0
        && sim.stats().connections == 0));
    for out in [agent.log(), doctor.all()] {
        assert!(!out.contains("CANARY*not*base64"), "the value leaked");
    }
}

#[test]
fn a_symbol_kraken_refuses_parks_the_feed_naming_it() {
    let sim = start_sim(|_| {});
    let feeds = public_feed(
        "kbook",
        &sim,
        r#"["book"]"#,
        r#"["BTC/USD", "XDG/USD"]"#,
        "",
    );
    let agent = Agent::start("kr-symbol", &feeds, "", "info");
    agent.wait_state("kbook", "parked");
    let err = agent.field("kbook", "last_error");
    assert!(
        err.as_str()
            .is_some_and(|e| e.contains("XDG/USD") && e.contains("symbols")),
        "{err}"
    );
    assert!(sim.wait_for(|s| s.subscribes_refused == 1, SLOW));
    assert!(
        holds_for(QUIET, || {
            let s = sim.stats();
            s.subscribes_refused == 1 && s.connections == 1
        }),
        "retried: {:?}",
        sim.stats()
    );
}

#[test]
fn doctor_online_proves_the_key_and_names_the_class_of_a_rejection() {
    let sim = start_sim(|_| {});
    let dir = TempDir::new("kr-doctor");
    write_creds(dir.path(), &master_creds(false));
    let body = agent_toml(dir.path(), "") + &private_feed("kexec", &sim, "master", "");
    let cfg = write_config(dir.path(), &body).display().to_string();
    let ok = run_cli(
        &["doctor", "--online", "--json", "--config", &cfg],
        &[],
        None,
    );
    let doc: Value =
        serde_json::from_str(&ok.stdout).unwrap_or_else(|e| panic!("{e}: {}", ok.all()));
    assert_eq!(doc["online"][0]["outcome"], "ok", "{}", ok.stdout);
    assert!(
        doc["online"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("Kraken accepted Balance with key set 1"),
        "{}",
        ok.stdout
    );
    assert_eq!(sim.stats().nonces_seen[KEY_ONE].len(), 1);
    // Optional fallback sets that are not set are shown, not problems.
    let creds = doc["credentials"].as_array().unwrap();
    let fallback = creds
        .iter()
        .find(|c| c["name"] == "KRAKEN_MASTER_API_KEY_2")
        .unwrap();
    assert_eq!(fallback["state"], "not_set", "{fallback}");
    assert!(
        doc["feed_notes"][0]["notes"][0]
            .as_str()
            .unwrap()
            .starts_with("key set in use: 1")
    );

    sim.set_fault(KrakenFault::InvalidKey { key: None });
    let rejected = run_cli(&["doctor", "--online", "--config", &cfg], &[], None);
    assert_eq!(rejected.code, Some(1), "{}", rejected.all());
    assert!(
        rejected
            .stdout
            .lines()
            .any(|l| l.contains("kexec") && l.contains("rejected")),
        "{}",
        rejected.stdout
    );
    let json = run_cli(
        &["doctor", "--online", "--json", "--config", &cfg],
        &[],
        None,
    );
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["online"][0]["outcome"], "rejected");
    assert_eq!(doc["online"][0]["class"], "auth");
    assert!(
        doc["online"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("EAPI:Invalid key")
    );
    assert_eq!(json.code, Some(1));
}

#[test]
fn a_skewed_date_from_kraken_raises_the_clock_drift_alert() {
    let sim = start_sim(|c| c.date_skew_secs = 120);
    let feeds = private_feed("kexec", &sim, "master", "");
    let agent = Agent::start("kr-drift", &feeds, &master_creds(false), "info");
    agent.wait_state("kexec", "live");
    agent.wait_log("alert=clock_drift");
    let status = status_json(agent.path()).unwrap();
    assert!(!status["agent"]["clock"].is_null(), "{}", status["agent"]);
}

/// A listener that accepts connections and never says a word.
fn mute_listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

#[test]
fn check_names_each_failure_layer() {
    let good = start_sim(|_| {});
    let silent = start_sim(|c| c.fault = Some(KrakenFault::Silent));
    let refusing = start_sim(|c| c.fault = Some(KrakenFault::InvalidKey { key: None }));
    let (_mute, mute_port) = mute_listener();
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = TempDir::new("kr-check");
    write_creds(dir.path(), &master_creds(false));
    let mut body = agent_toml(dir.path(), "");
    body += &public_feed(
        "ok",
        &good,
        r#"["book"]"#,
        r#"["BTC/USD"]"#,
        "account = \"master\"",
    );
    body += &public_feed("refused", &good, r#"["ticker"]"#, r#"["BTC/USD"]"#, "")
        .replace(&good.ws_url(), &format!("ws://127.0.0.1:{closed}/v2"));
    body += &public_feed("mute", &good, r#"["ticker"]"#, r#"["BTC/USD"]"#, "")
        .replace(&good.ws_url(), &format!("ws://127.0.0.1:{mute_port}/v2"));
    body += &private_feed("rejected", &refusing, "master", "");
    body += &public_feed("nodata", &silent, r#"["book"]"#, r#"["BTC/USD"]"#, "");
    // One symbol Kraken does not list among good ones: refused a moment
    // after the first data of the others.
    body += &public_feed(
        "symbol",
        &good,
        r#"["book"]"#,
        r#"["BTC/USD", "XDG/USD"]"#,
        "",
    );
    let cfg = write_config(dir.path(), &body).display().to_string();
    let (out, reports) = check_json(&cfg);
    assert_eq!(out.code, Some(1), "{}", out.all());
    let failed = |feed: &str| failed_layer(&reports, feed);
    let ok = reports.iter().find(|r| r["feed"] == "ok").unwrap();
    let auth = layer_of(&reports, "ok", "auth");
    assert_eq!(auth["outcome"], "pass", "{ok}");
    assert!(
        auth["detail"].as_str().unwrap().contains("Balance"),
        "{auth}"
    );
    assert_eq!(failed("ok"), (String::new(), String::new()), "{ok}");
    for (feed, layer, text) in [
        ("refused", "tcp", "Kraken's is wss://ws.kraken.com/v2"),
        ("mute", "handshake", "timeout"),
        ("rejected", "auth", "EAPI:Invalid key"),
        ("nodata", "data", "nothing within"),
        ("symbol", "data", "XDG/USD"),
    ] {
        let (l, detail) = failed(feed);
        assert_eq!(l, layer, "{feed}: {detail}");
        assert!(detail.contains(text), "{feed}: {detail}");
    }
    // The text form is what an operator reads.
    let text = run_cli(&["check", "symbol", "--config", &cfg], &[], None);
    assert!(text.stdout.contains("FAIL data"), "{}", text.all());
}
