//! Alpaca end to end: the real `brokerguard` binary against the Alpaca
//! simulator (`src/sim/alpaca`, its own implementation of the streams and
//! REST), over loopback. Every assertion is on what an operator or the bot
//! can see — status.json, the journal (stderr), the fan-out socket, the
//! commands' output — or on what the simulator counted.
//!
//! The keys are canaries: no test may find them in a log, status.json,
//! the fan-out or a command's output.

mod common;

use brokerguard::sim::alpaca::{AlpacaFault, AlpacaSim, AlpacaSimConfig, AlpacaSimHandle, SimKey};
use common::agent::{failed_layer, write_private_creds as write_creds};
use common::*;
use serde_json::Value;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

/// Generous: most waits end in well under a second, but the machine is
/// shared and builds run beside the tests.
const SLOW: Duration = Duration::from_secs(20);
/// How long "nothing happens" is watched for.
const QUIET: Duration = Duration::from_millis(3000);

const LIVE_ID: &str = "AKCANARYLIVE00000001";
const LIVE_SECRET: &str = "canary-live-secret-0000000000000000000001";
const PAPER_ID: &str = "PKCANARYPAPER0000001";
const PAPER_SECRET: &str = "canary-paper-secret-000000000000000000001";

fn keys() -> Vec<SimKey> {
    vec![
        SimKey {
            key_id: LIVE_ID.into(),
            secret: LIVE_SECRET.into(),
            paper: false,
        },
        SimKey {
            key_id: PAPER_ID.into(),
            secret: PAPER_SECRET.into(),
            paper: true,
        },
    ]
}

fn start_sim(adjust: impl FnOnce(&mut AlpacaSimConfig)) -> AlpacaSimHandle {
    let mut cfg = AlpacaSimConfig {
        keys: keys(),
        data_every: Duration::from_millis(100),
        ..AlpacaSimConfig::default()
    };
    adjust(&mut cfg);
    AlpacaSim::start(cfg).expect("the simulator starts")
}

/// Account `main` holds the live key, `paper` the paper key.
fn creds() -> String {
    format!(
        "ALPACA_MAIN_API_KEY_ID={LIVE_ID}\nALPACA_MAIN_API_SECRET_KEY={LIVE_SECRET}\n\
         ALPACA_PAPER_API_KEY_ID={PAPER_ID}\nALPACA_PAPER_API_SECRET_KEY={PAPER_SECRET}\n"
    )
}

const TIMING: &str = r#"stall_after = "2s"
connect_timeout = "1s"
handshake_timeout = "2s"
backoff = { initial = "100ms", max = "1s", stable_after = "2s", parked_retry = "10m" }"#;

/// A market-data feed at `url`.
fn market_feed(name: &str, url: &str, rest: &str, stream: &str, symbols: &str) -> String {
    format!(
        "\n[[feed]]\nname = \"{name}\"\nbroker = \"alpaca\"\naccount = \"main\"\nstream = \"{stream}\"\n\
         url = \"{url}\"\nrest_url = \"{rest}\"\nchannels = [\"trades\", \"quotes\", \"bars\"]\n\
         symbols = {symbols}\n{TIMING}\n"
    )
}

fn test_feed(name: &str, sim: &AlpacaSimHandle) -> String {
    market_feed(
        name,
        &sim.stocks_url("test"),
        &sim.rest_url(false),
        "test",
        r#"["FAKEPACA"]"#,
    )
}

/// A running agent in its own folder; stopped when dropped.
struct Agent {
    dir: TempDir,
    child: common::Agent,
}

impl Agent {
    fn start(tag: &str, feeds: &str, creds: &str) -> Agent {
        let dir = TempDir::new(tag);
        write_creds(dir.path(), creds);
        let body = agent_toml(dir.path(), "alert_after = \"30s\"\n") + feeds;
        let cfg = write_config(dir.path(), &body);
        let child = spawn_agent(dir.path(), &cfg, &[]);
        Agent { dir, child }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn log(&self) -> String {
        stderr_of(self.path())
    }

    fn state(&self, feed: &str) -> Option<String> {
        feed_state(self.path(), feed)
    }

    fn wait_state(&self, feed: &str, want: &str) {
        assert!(
            wait_for(SLOW, || self.state(feed).as_deref() == Some(want)),
            "feed {feed} never became {want} (is {:?})\n{}",
            self.state(feed),
            self.log()
        );
    }

    fn bot(&self) -> FanoutClient {
        FanoutClient::connect(&self.path().join("run/feeds.sock"), SLOW)
    }

    /// Everything an outsider could read: the journal and status.json.
    fn visible(&self) -> String {
        format!(
            "{}{}",
            self.log(),
            std::fs::read_to_string(self.path().join("run/status.json")).unwrap_or_default()
        )
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        stop_agent(&mut self.child);
    }
}

fn assert_no_secret(what: &str, text: &str) {
    for s in [LIVE_SECRET, PAPER_SECRET] {
        assert!(!text.contains(s), "a secret reached {what}:\n{text}");
    }
}

fn data_of<'a>(line: &'a Value, feed: &str) -> Option<&'a Value> {
    (line["feed"] == feed).then(|| line.get("data")).flatten()
}

#[test]
fn batched_market_data_reaches_the_bot_one_line_per_message_with_nothing_lost() {
    // The bot joins before the simulator exists, so it sees every message.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let rest = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let feed = market_feed(
        "fake",
        &format!("ws://127.0.0.1:{port}/v2/test"),
        &format!("http://127.0.0.1:{rest}/live"),
        "test",
        r#"["FAKEPACA"]"#,
    );
    let agent = Agent::start("al-batch", &feed, &creds());
    let bot = agent.bot();
    let sim = start_sim(|c| {
        c.ws_port = port;
        c.rest_port = rest;
    });
    agent.wait_state("fake", "live");
    assert!(
        wait_for(SLOW, || bot.count(|l| data_of(l, "fake").is_some()) >= 30),
        "{}",
        agent.log()
    );
    // Stop the data, then every message the simulator sent is a line.
    sim.set_fault(AlpacaFault::Silent);
    let sent = || sim.stats().messages_sent as usize;
    assert!(
        wait_for(SLOW, || bot.count(|l| data_of(l, "fake").is_some())
            == sent()),
        "sent {} in {} frames, the bot got {}",
        sent(),
        sim.stats().frames_sent,
        bot.count(|l| data_of(l, "fake").is_some())
    );
    let lines = bot.snapshot();
    let data: Vec<&Value> = lines.iter().filter_map(|l| data_of(l, "fake")).collect();
    // Three channels a frame: each frame became three lines, in order.
    assert!(sim.stats().frames_sent * 3 == sim.stats().messages_sent);
    for chunk in data.chunks(3) {
        let types: Vec<&str> = chunk.iter().map(|d| d["T"].as_str().unwrap()).collect();
        assert_eq!(types, ["b", "q", "t"], "{chunk:?}");
        assert!(chunk.iter().all(|d| d["S"] == "FAKEPACA"));
    }
    // Acknowledgements are not data; seq has no gap.
    assert!(
        data.iter()
            .all(|d| d["T"] != "subscription" && d["T"] != "success")
    );
    let seqs: Vec<u64> = lines
        .iter()
        .filter(|l| l["feed"] == "fake" && l.get("data").is_some())
        .map(|l| l["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let all: String = lines.iter().map(|l| l.to_string()).collect();
    assert_no_secret("the fan-out", &all);
    assert_no_secret("the journal or status", &agent.visible());
    assert!(!agent.visible().contains(LIVE_ID));
}

#[test]
fn a_second_connection_on_the_key_is_406_with_an_alert_and_no_storm() {
    let sim = start_sim(|_| {});
    // Another program holds the key's iex stream.
    let mut other = tungstenite::connect(sim.stocks_url("iex")).unwrap().0;
    other.read().unwrap();
    other
        .send(tungstenite::Message::text(format!(
            r#"{{"action":"auth","key":"{LIVE_ID}","secret":"{LIVE_SECRET}"}}"#
        )))
        .unwrap();
    let answer = other.read().unwrap().into_text().unwrap();
    assert!(answer.contains("authenticated"), "{answer}");
    let feed = market_feed(
        "stocks",
        &sim.stocks_url("iex"),
        &sim.rest_url(false),
        "iex",
        r#"["AAPL"]"#,
    );
    let agent = Agent::start("al-406", &feed, &creds());
    assert!(
        wait_log(agent.path(), "alert=connection_limit", SLOW),
        "{}",
        agent.log()
    );
    let log = agent.log();
    assert!(
        log.contains("another program holds this key's stream"),
        "{log}"
    );
    assert!(log.contains("retry_in=1m30s"), "{log}");
    // The alert comes from the connection; the state follows it.
    agent.wait_state("stocks", "backoff");
    // No second attempt: the simulator sees one 406 and nothing more.
    assert!(holds_for(QUIET, || {
        let s = sim.stats();
        s.errors_sent.get(&406) == Some(&1) && s.connections == 2
    }));
    let err = feed_field(agent.path(), "stocks", "last_error").unwrap();
    assert!(err.as_str().unwrap().contains("Alpaca error 406"), "{err}");
    assert_no_secret("the journal or status", &agent.visible());
}

#[test]
fn a_rejected_key_parks_the_feed_until_the_credential_changes() {
    let sim = start_sim(|_| {});
    let wrong = creds().replace(LIVE_SECRET, "canary-wrong-secret-00000000000000000009");
    let agent = Agent::start("al-402", &test_feed("fake", &sim), &wrong);
    agent.wait_state("fake", "parked");
    assert!(wait_log(agent.path(), "alert=credential_rejected", SLOW));
    let log = agent.log();
    assert!(log.contains("Alpaca error 402 (auth failed)"), "{log}");
    assert!(
        log.contains("set-credential ALPACA_MAIN_API_KEY_ID"),
        "{log}"
    );
    // Parked: no retry loop.
    assert!(holds_for(QUIET, || sim.stats().errors_sent.get(&402) == Some(&1)));
    // The right secret wakes it, without a reload.
    write_creds(agent.path(), &creds());
    agent.wait_state("fake", "live");
    assert_no_secret("the journal or status", &agent.visible());
    assert!(!agent.visible().contains("canary-wrong-secret"));
}

#[test]
fn a_symbol_left_out_of_the_subscription_parks_with_its_name() {
    let sim = start_sim(|_| {});
    let feed = market_feed(
        "stocks",
        &sim.stocks_url("iex"),
        &sim.rest_url(false),
        "iex",
        r#"["AAPL", "ZZZQ"]"#,
    );
    let agent = Agent::start("al-sym", &feed, &creds());
    agent.wait_state("stocks", "parked");
    assert!(wait_log(agent.path(), "alert=config_invalid", SLOW));
    let err = feed_field(agent.path(), "stocks", "last_error").unwrap();
    let err = err.as_str().unwrap();
    assert!(err.contains("did not subscribe trades ZZZQ"), "{err}");
    assert!(err.contains("remove \"ZZZQ\" in `symbols`"), "{err}");
    assert!(holds_for(QUIET, || sim.stats().subscribes == 1));
}

#[test]
fn configuration_codes_park_and_server_codes_retry() {
    for (code, want_state, needle) in [
        (409, "parked", "use stream = \"iex\""),
        (411, "parked", "trading API key"),
        (500, "backoff", "Alpaca's side failed"),
    ] {
        let sim = start_sim(|c| c.fault = Some(AlpacaFault::Error(code)));
        let feed = market_feed(
            "stocks",
            &sim.stocks_url("sip"),
            &sim.rest_url(false),
            "sip",
            r#"["AAPL"]"#,
        );
        let agent = Agent::start(&format!("al-{code}"), &feed, &creds());
        assert!(
            wait_for(SLOW, || feed_field(agent.path(), "stocks", "last_error")
                .and_then(|e| e.as_str().map(|s| s.contains(needle)))
                .unwrap_or(false)),
            "{code}: {}",
            agent.log()
        );
        if want_state == "parked" {
            agent.wait_state("stocks", "parked");
            assert!(holds_for(QUIET, || sim.stats().errors_sent.get(&code) == Some(&1)));
        } else {
            // A server error is retried, with backoff.
            assert!(wait_for(SLOW, || sim.stats().errors_sent.get(&code) >= Some(&2)));
        }
    }
}

#[test]
fn trade_updates_in_binary_frames_reach_the_bot() {
    let sim = start_sim(|_| {});
    let feed = format!(
        "\n[[feed]]\nname = \"orders\"\nbroker = \"alpaca\"\naccount = \"paper\"\nstream = \"trade_updates\"\n\
         paper = true\nurl = \"{}\"\nrest_url = \"{}\"\n{TIMING}\n",
        sim.trading_url(true),
        sim.rest_url(true)
    );
    let agent = Agent::start("al-updates", &feed, &creds());
    let bot = agent.bot();
    agent.wait_state("orders", "live");
    assert!(wait_for(SLOW, || bot
        .count(|l| data_of(l, "orders").is_some())
        >= 4));
    assert!(sim.stats().binary_frames_sent >= 4);
    let lines = bot.snapshot();
    let events: Vec<&Value> = lines.iter().filter_map(|l| data_of(l, "orders")).collect();
    assert!(events.iter().all(|e| e["stream"] == "trade_updates"));
    assert!(events.iter().any(|e| e["data"]["event"] == "fill"));
    assert_no_secret(
        "the fan-out",
        &lines.iter().map(|l| l.to_string()).collect::<String>(),
    );
    assert_no_secret("the journal or status", &agent.visible());
}

#[test]
fn closes_and_silence_reconnect() {
    let sim = start_sim(|_| {});
    let agent = Agent::start("al-close", &test_feed("fake", &sim), &creds());
    agent.wait_state("fake", "live");
    for fault in [
        AlpacaFault::Close(1000),
        AlpacaFault::Close(1001),
        AlpacaFault::Drop,
    ] {
        let before = sim.stats().authenticated;
        sim.set_fault(fault.clone());
        sim.clear_fault();
        assert!(
            wait_for(SLOW, || sim.stats().authenticated > before),
            "{fault}: {}",
            agent.log()
        );
        agent.wait_state("fake", "live");
    }
    // Silence with the socket open (pings still answered): a stall, restarted.
    let before = sim.stats().authenticated;
    sim.set_fault(AlpacaFault::Silent);
    assert!(
        wait_log(agent.path(), "no data for", SLOW),
        "{}",
        agent.log()
    );
    sim.clear_fault();
    assert!(
        wait_for(SLOW, || sim.stats().authenticated > before),
        "{}",
        agent.log()
    );
    agent.wait_state("fake", "live");
    // 407 is reported with the read figures before Alpaca closes.
    sim.set_fault(AlpacaFault::SlowClient);
    assert!(
        wait_log(agent.path(), "reads too slowly", SLOW),
        "{}",
        agent.log()
    );
    sim.clear_fault();
    assert!(agent.log().contains("read buffer 4096 bytes"));
    agent.wait_state("fake", "live");
}

#[test]
fn check_names_each_failure_layer() {
    let good = start_sim(|_| {});
    let limited = start_sim(|c| c.fault = Some(AlpacaFault::ConnectionLimit));
    let silent = start_sim(|c| c.fault = Some(AlpacaFault::Silent));
    let mute = TcpListener::bind("127.0.0.1:0").unwrap();
    let mute_port = mute.local_addr().unwrap().port();
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = TempDir::new("al-check");
    // `wrongkind` holds the paper key but says paper = false.
    write_creds(
        dir.path(),
        &(creds()
            + &format!(
                "ALPACA_WRONGKIND_API_KEY_ID={PAPER_ID}\nALPACA_WRONGKIND_API_SECRET_KEY={PAPER_SECRET}\n\
                 ALPACA_BAD_API_KEY_ID={LIVE_ID}\nALPACA_BAD_API_SECRET_KEY=canary-bad-00000000000000000000000000009\n"
            )),
    );
    let mut body = agent_toml(dir.path(), "");
    body += &test_feed("ok", &good);
    body += &test_feed("refused", &good).replace(
        &good.stocks_url("test"),
        &format!("ws://127.0.0.1:{closed}/v2/test"),
    );
    body += &test_feed("mute", &good).replace(
        &good.stocks_url("test"),
        &format!("ws://127.0.0.1:{mute_port}/v2/test"),
    );
    body += &market_feed(
        "badkey",
        &good.stocks_url("iex"),
        &good.rest_url(false),
        "iex",
        r#"["AAPL"]"#,
    )
    .replace("account = \"main\"", "account = \"bad\"");
    body += &market_feed(
        "wrongkind",
        &good.stocks_url("sip"),
        &good.rest_url(false),
        "sip",
        r#"["AAPL"]"#,
    )
    .replace("account = \"main\"", "account = \"wrongkind\"");
    body += &test_feed("limit", &limited);
    body += &test_feed("nodata", &silent);
    body += &market_feed(
        "symbol",
        &good.stocks_url("iex"),
        &good.rest_url(false),
        "iex",
        r#"["AAPL", "ZZZQ"]"#,
    );
    let cfg = write_config(dir.path(), &body).display().to_string();
    let text = run_cli(&["check", "--config", &cfg], &[], None);
    println!("{}", text.stdout);
    assert_eq!(text.code, Some(1), "{}", text.all());
    assert_no_secret("check's output", &text.all());
    let out = run_cli(&["check", "--json", "--config", &cfg], &[], None);
    let reports: Vec<Value> =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.all()));
    let failed = |feed: &str| failed_layer(&reports, feed);
    assert_eq!(failed("ok"), (String::new(), String::new()));
    // The stream takes a paper key for market data; the REST check says
    // what the key is.
    assert_eq!(failed("wrongkind"), (String::new(), String::new()));
    assert!(
        text.stdout
            .contains("the key is a paper key (the paper endpoint accepts it): set paper = true")
    );
    for (feed, layer, needle) in [
        ("refused", "tcp", "refused"),
        ("mute", "handshake", "timeout"),
        ("badkey", "auth", "402"),
        (
            "limit",
            "auth",
            "if brokerguard runs, it is the program holding the stream",
        ),
        ("nodata", "data", ""),
        ("symbol", "data", "ZZZQ"),
    ] {
        let (l, detail) = failed(feed);
        assert_eq!(l, layer, "{feed}: {detail}\n{}", text.stdout);
        assert!(detail.contains(needle), "{feed}: {detail}");
    }
}

#[test]
fn doctor_names_the_one_connection_rule() {
    let sim = start_sim(|_| {});
    let dir = TempDir::new("al-doctor");
    write_creds(dir.path(), &creds());
    let body = agent_toml(dir.path(), "") + &test_feed("fake", &sim);
    let cfg = write_config(dir.path(), &body).display().to_string();
    let out = run_cli(&["doctor", "--online", "--config", &cfg], &[], None);
    assert!(
        out.stdout.contains("one connection per key and endpoint"),
        "{}",
        out.all()
    );
    assert!(
        out.stdout
            .contains("/v2/account on the live endpoint answered"),
        "{}",
        out.all()
    );
    assert_no_secret("doctor", &out.all());
}

#[test]
fn a_skewed_date_from_alpaca_raises_the_clock_drift_alert() {
    let sim = start_sim(|c| c.date_skew_secs = 120);
    let agent = Agent::start("al-drift", &test_feed("fake", &sim), &creds());
    agent.wait_state("fake", "live");
    assert!(
        wait_log(agent.path(), "alert=clock_drift", SLOW),
        "{}",
        agent.log()
    );
    assert!(sim.stats().rest_calls >= 1);
    // status.json is rewritten after the alert.
    assert!(wait_for(SLOW, || status_json(agent.path())
        .is_some_and(|s| !s["agent"]["clock"].is_null())));
}

#[test]
fn a_quiet_trade_updates_stream_is_kept_alive_by_its_pongs() {
    // No order events at all: the account does not trade.
    let sim = start_sim(|c| c.fault = Some(AlpacaFault::Silent));
    let feed = format!(
        "\n[[feed]]\nname = \"orders\"\nbroker = \"alpaca\"\naccount = \"main\"\nstream = \"trade_updates\"\n\
         url = \"{}\"\nrest_url = \"{}\"\n{TIMING}\nping_every = \"500ms\"\n",
        sim.trading_url(false),
        sim.rest_url(false)
    );
    let agent = Agent::start("al-quiet", &feed, &creds());
    agent.wait_state("orders", "live");
    // Longer than stall_after (2s): pongs, not order events, prove it alive.
    assert!(
        holds_for(QUIET, || sim.stats().authenticated == 1
            && agent.state("orders").as_deref() == Some("live")),
        "{}",
        agent.log()
    );
    assert_eq!(sim.stats().updates_sent, 0);
    assert!(sim.stats().pings >= 3);
}
