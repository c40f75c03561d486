//! Coinbase end to end: the real `brokerguard` binary against the Coinbase
//! simulator (`src/sim/coinbase`, its own implementation of the WebSocket,
//! the JWT checks and REST), over loopback. Assertions are on what an
//! operator or the bot can see — status.json, the journal (stderr), the
//! fan-out socket, the commands' output — or on what the simulator
//! counted (connections, each message, each JWT it verified).
//!
//! Keys are made at test time from the OS random source; none is committed.

mod common;

use base64::Engine;
use brokerguard::sim::coinbase::{
    CoinbaseFault, CoinbaseSim, CoinbaseSimConfig, CoinbaseSimHandle, SimKey,
};
use common::agent::{
    SLOW, TestAgent as Agent, check_json, failed_layer, layer_of,
    write_private_creds as write_creds,
};
use common::cdp_keys::{TestKey, ec_key, ed25519_key};
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(2500);
const KEY_NAME: &str = "organizations/sim-org/apiKeys/sim-key-1";

fn start_sim(key: &TestKey, adjust: impl FnOnce(&mut CoinbaseSimConfig)) -> CoinbaseSimHandle {
    let mut cfg = CoinbaseSimConfig {
        keys: vec![SimKey {
            name: KEY_NAME.into(),
            public_key: key.public.clone(),
        }],
        data_every: Duration::from_millis(100),
        heartbeat_every: Duration::from_millis(200),
        ..CoinbaseSimConfig::default()
    };
    adjust(&mut cfg);
    CoinbaseSim::start(cfg).expect("the simulator starts")
}

/// The credentials of account `main`, the PEM's newlines escaped.
fn creds(key: &TestKey) -> String {
    format!(
        "COINBASE_MAIN_API_KEY_NAME={KEY_NAME}\nCOINBASE_MAIN_API_SECRET=\"{}\"\n",
        key.secret.trim_end().replace('\n', "\\n")
    )
}

const TIMING: &str = r#"stall_after = "2s"
connect_timeout = "1s"
handshake_timeout = "2s"
backoff = { initial = "100ms", max = "1s", stable_after = "2s", parked_retry = "10m" }"#;

fn feed(name: &str, url: &str, rest: &str, channels: &str, symbols: &str, extra: &str) -> String {
    format!(
        "\n[[feed]]\nname = \"{name}\"\nbroker = \"coinbase\"\nurl = \"{url}\"\nrest_url = \"{rest}\"\n\
         channels = {channels}\n{}{TIMING}\n{extra}\n",
        if symbols.is_empty() {
            String::new()
        } else {
            format!("symbols = {symbols}\n")
        }
    )
}

fn market_feed(name: &str, sim: &CoinbaseSimHandle, channels: &str, extra: &str) -> String {
    feed(
        name,
        &sim.ws_url(),
        &sim.rest_url(),
        channels,
        r#"["BTC-USD", "ETH-USD"]"#,
        extra,
    )
}

/// The agent, its feeds logged at debug level (canaries must stay out of
/// that too).
fn start_agent(tag: &str, feeds: &str, creds: &str) -> Agent {
    Agent::start(tag, feeds, creds, "debug")
}

/// A bot on the agent's fan-out socket, subscribed to `feed`.
fn bot_of(agent: &Agent, feed: &str) -> FanoutClient {
    let bot = FanoutClient::connect(&agent.socket(), SLOW);
    bot.send(&format!("{{\"subscribe\":[\"{feed}\"]}}"));
    assert!(wait_for(SLOW, || bot
        .count(|v| v.get("subscribed").is_some())
        == 1));
    bot
}

/// Neither the private key, nor any JWT (nor its signature), nor a line of
/// the key's PEM is in the journal, status.json or what `bot` received.
fn assert_no_secrets(
    agent: &Agent,
    key: &TestKey,
    sim: &CoinbaseSimHandle,
    bot: Option<&FanoutClient>,
) {
    let status = std::fs::read_to_string(agent.dir.join("run/status.json")).unwrap_or_default();
    let fanout = bot
        .map(|b| format!("{:?}", b.snapshot()))
        .unwrap_or_default();
    let log = agent.log();
    let mut canaries: Vec<String> = key
        .secret
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .map(String::from)
        .collect();
    canaries.push(key.secret.trim().to_string());
    for jwt in sim.received_jwts() {
        let token = jwt.split_once(' ').unwrap().1.to_string();
        canaries.push(token.rsplit('.').next().unwrap().to_string());
        canaries.push(token);
    }
    for c in canaries {
        assert!(!log.contains(&c), "the journal shows a secret");
        assert!(!status.contains(&c), "status.json shows a secret");
        assert!(!fanout.contains(&c), "the fan-out shows a secret");
    }
}

/// The claims of a recorded JWT (`"ws <jwt>"`), decoded without checking.
fn claims_of(recorded: &str) -> (Value, Value) {
    let token = recorded.split_once(' ').unwrap().1;
    let mut parts = token.split('.');
    let dec = |s: &str| -> Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap(),
        )
        .unwrap()
    };
    (dec(parts.next().unwrap()), dec(parts.next().unwrap()))
}

#[test]
fn an_ec_key_signs_a_fresh_jwt_for_every_subscribe_and_books_reach_the_bot() {
    let key = ec_key();
    let sim = start_sim(&key, |_| {});
    let feeds = market_feed(
        "cbbook",
        &sim,
        r#"["level2", "ticker", "market_trades"]"#,
        "account = \"main\"",
    );
    let agent = start_agent("cb-ec", &feeds, &creds(&key));
    let bot = bot_of(&agent, "cbbook");
    agent.wait_state("cbbook", "live");
    assert!(
        wait_for(SLOW, || bot.count(|v| v["data"]["channel"] == "l2_data")
            >= 10),
        "{:?}",
        sim.stats()
    );
    assert!(bot.count(|v| v["data"]["channel"] == "ticker") >= 1);
    assert!(bot.count(|v| v["data"]["channel"] == "market_trades") >= 1);
    // Answers and heartbeats are not data.
    assert_eq!(bot.count(|v| v["data"]["channel"] == "subscriptions"), 0);
    assert_eq!(bot.count(|v| v["data"]["channel"] == "heartbeats"), 0);
    let st = sim.stats();
    assert_eq!(st.connections, 1, "{st:?}");
    assert_eq!(
        st.messages_per_connection[0],
        [
            "subscribe heartbeats",
            "subscribe level2 BTC-USD,ETH-USD",
            "subscribe ticker BTC-USD,ETH-USD",
            "subscribe market_trades BTC-USD,ETH-USD"
        ]
    );
    assert!(st.last_subscribe_ms[0] < 5000, "{st:?}");
    assert_eq!((st.jwts_refused, st.jwts_reused), (0, 0));
    assert_eq!(st.unauthenticated_messages, 0);
    // Every WebSocket JWT is fresh (its own nonce), ES256, without `uri`
    // (the validator's REST call has one of its own).
    let jwts: Vec<String> = sim
        .received_jwts()
        .into_iter()
        .filter(|j| j.starts_with("ws "))
        .collect();
    let nonces: BTreeSet<String> = jwts
        .iter()
        .map(|j| {
            let (h, c) = claims_of(j);
            assert_eq!(h["alg"], "ES256");
            assert_eq!(h["kid"], KEY_NAME);
            assert!(c.get("uri").is_none(), "{c}");
            assert_eq!(c["exp"].as_u64().unwrap() - c["nbf"].as_u64().unwrap(), 120);
            h["nonce"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(nonces.len(), 4);
    assert_eq!(agent.field("cbbook", "info")["jwt"], "ES256");
    assert_no_secrets(&agent, &key, &sim, Some(&bot));
}

#[test]
fn an_ed25519_user_feed_marks_the_first_event_as_a_snapshot() {
    let key = ed25519_key();
    let sim = start_sim(&key, |_| {});
    let feeds = feed(
        "cbuser",
        &sim.ws_user_url(),
        &sim.rest_url(),
        r#"["user"]"#,
        "",
        "account = \"main\"",
    );
    let agent = start_agent("cb-ed", &feeds, &creds(&key));
    let bot = bot_of(&agent, "cbuser");
    agent.wait_state("cbuser", "live");
    assert!(wait_for(SLOW, || bot
        .count(|v| v["data"]["channel"] == "user")
        >= 2));
    let lines = bot.snapshot();
    let marker = lines
        .iter()
        .position(|v| v["event"] == "snapshot")
        .expect("a snapshot event");
    assert_eq!(lines[marker]["channel"], "user");
    assert_eq!(lines[marker]["open_orders"], 2);
    let first_user = lines
        .iter()
        .position(|v| v["data"]["channel"] == "user")
        .unwrap();
    assert_eq!(first_user, marker + 1, "the marker comes right before it");
    assert_eq!(lines[first_user]["data"]["events"][0]["type"], "snapshot");
    assert_eq!(bot.count(|v| v["event"] == "snapshot"), 1);
    let (h, _) = claims_of(&sim.received_jwts()[0]);
    assert_eq!(h["alg"], "EdDSA");
    assert_eq!(sim.stats().jwts_refused, 0);
    assert_no_secrets(&agent, &key, &sim, Some(&bot));
}

#[test]
fn heartbeats_alone_keep_a_feed_live_and_silence_restarts_it() {
    let key = ec_key();
    // Only heartbeats after the answers: no market data at all.
    let quiet = start_sim(&key, |c| c.data_every = Duration::from_secs(3600));
    let mute = start_sim(&key, |_| {});
    let stall = "stall_after = \"1s\"";
    let feeds = market_feed("quiet", &quiet, r#"["ticker"]"#, "")
        .replace("stall_after = \"2s\"", stall)
        + &market_feed("mute", &mute, r#"["ticker"]"#, "").replace("stall_after = \"2s\"", stall);
    let agent = start_agent("cb-heartbeat", &feeds, "");
    assert!(quiet.wait_for(|s| s.heartbeats_sent >= 3, SLOW));
    agent.wait_state("mute", "live");
    mute.set_fault(CoinbaseFault::Silent);
    assert!(
        holds_for(QUIET, || agent.state("quiet").as_deref() != Some("backoff")),
        "quiet went {:?}; stderr:\n{}",
        agent.state("quiet"),
        agent.log()
    );
    assert_eq!(quiet.stats().connections, 1, "{:?}", quiet.stats());
    assert_eq!(agent.field("quiet", "restarts"), 0);
    assert!(
        mute.wait_for(|s| s.connections >= 2, SLOW),
        "the silent feed was never restarted: {:?}; stderr:\n{}",
        mute.stats(),
        agent.log()
    );
    assert!(
        wait_log(agent.path(), "feed=mute class=stalled", SLOW),
        "{}",
        agent.log()
    );
    assert!(!agent.log().contains("feed=quiet class=stalled"));
}

#[test]
fn a_sequence_gap_resyncs_and_resubscribes_without_reconnecting() {
    let key = ec_key();
    let sim = start_sim(&key, |_| {});
    let feeds = market_feed("cbbook", &sim, r#"["level2"]"#, "account = \"main\"");
    let agent = start_agent("cb-gap", &feeds, &creds(&key));
    let bot = bot_of(&agent, "cbbook");
    agent.wait_state("cbbook", "live");
    assert!(wait_for(SLOW, || bot
        .count(|v| v["data"]["channel"] == "l2_data")
        >= 5));
    sim.set_fault(CoinbaseFault::DropSequenceOnce);
    assert!(
        wait_for(SLOW, || bot.count(|v| v["event"] == "resync") == 1),
        "no resync; stderr:\n{}",
        agent.log()
    );
    let resync = bot
        .snapshot()
        .into_iter()
        .find(|v| v["event"] == "resync")
        .unwrap();
    assert_eq!(
        resync,
        serde_json::json!({"feed": "cbbook", "event": "resync", "reason": "sequence", "missed": 1})
    );
    // Fresh snapshots follow on the same connection.
    assert!(
        sim.wait_for(|s| s.l2_snapshots_sent >= 4, SLOW),
        "{:?}",
        sim.stats()
    );
    let st = sim.stats();
    assert_eq!(st.connections, 1, "a resync needs no reconnect: {st:?}");
    assert_eq!(st.sequence_skips, 1);
    let msgs = &st.messages_per_connection[0];
    assert!(
        msgs.ends_with(&[
            "unsubscribe level2 BTC-USD,ETH-USD".to_string(),
            "subscribe level2 BTC-USD,ETH-USD".to_string()
        ]),
        "{msgs:?}"
    );
    assert_eq!(st.jwts_reused, 0, "every message had its own JWT");
    assert!(wait_for(
        SLOW,
        || agent.field("cbbook", "info")["sequence_gaps"] == "1"
    ));
    assert_eq!(agent.field("cbbook", "reconnects"), 0);
    assert_no_secrets(&agent, &key, &sim, Some(&bot));
}

#[test]
fn a_1001_or_1006_close_reconnects_and_the_feed_is_live_again() {
    let key = ec_key();
    let sim = start_sim(&key, |_| {});
    let feeds = market_feed("cbtick", &sim, r#"["ticker"]"#, "");
    let agent = start_agent("cb-goaway", &feeds, "");
    let bot = bot_of(&agent, "cbtick");
    agent.wait_state("cbtick", "live");
    sim.set_fault(CoinbaseFault::GoAway);
    assert!(sim.wait_for(|s| s.connections >= 2 && s.closed_going_away == 1, SLOW));
    let before = bot.count(|v| v["data"]["channel"] == "ticker");
    assert!(wait_for(SLOW, || bot
        .count(|v| v["data"]["channel"] == "ticker")
        > before + 3));
    agent.wait_state("cbtick", "live");
    assert!(
        wait_log(agent.path(), "going_away", SLOW),
        "{}",
        agent.log()
    );
    // A cut without a close frame (1006) reconnects too.
    sim.disconnect_all();
    assert!(
        sim.wait_for(|s| s.connections >= 3, SLOW),
        "{:?}",
        sim.stats()
    );
    let before = bot.count(|v| v["data"]["channel"] == "ticker");
    assert!(wait_for(SLOW, || bot
        .count(|v| v["data"]["channel"] == "ticker")
        > before + 3));
    agent.wait_state("cbtick", "live");
    // A public feed signs nothing.
    assert_eq!(sim.stats().jwts_accepted, 0);
}

#[test]
fn a_refused_jwt_parks_the_feed_naming_the_cause_without_a_retry_loop() {
    let key = ec_key();
    let sim = start_sim(&key, |c| c.fault = Some(CoinbaseFault::RejectJwt));
    let feeds = market_feed("cbbook", &sim, r#"["level2"]"#, "account = \"main\"");
    let agent = start_agent("cb-reject", &feeds, &creds(&key));
    agent.wait_state("cbbook", "parked");
    let err = agent.field("cbbook", "last_error");
    assert!(
        err.as_str()
            .is_some_and(|e| e.contains("Coinbase refused the JWT")),
        "{err}"
    );
    assert!(
        holds_for(QUIET, || sim.stats().connections == 1),
        "retried: {:?}",
        sim.stats()
    );
    assert_no_secrets(&agent, &key, &sim, None);
}

#[test]
fn a_malformed_key_is_a_doctor_error_and_parks_without_connecting() {
    let key = ec_key();
    let sim = start_sim(&key, |_| {});
    let feeds = market_feed("cbbook", &sim, r#"["level2"]"#, "account = \"main\"");
    let creds = format!(
        "COINBASE_MAIN_API_KEY_NAME={KEY_NAME}\nCOINBASE_MAIN_API_SECRET=CANARY-not-a-key-value\n"
    );
    let agent = start_agent("cb-malformed", &feeds, &creds);
    let doctor = run_cli(&["doctor", "--config", &agent.config()], &[], None);
    assert_eq!(doctor.code, Some(1), "{}", doctor.all());
    assert!(
        doctor
            .stdout
            .lines()
            .any(|l| l.contains("COINBASE_MAIN_API_SECRET") && l.contains("malformed")),
        "{}",
        doctor.stdout
    );
    assert!(
        doctor.stdout.contains("BEGIN EC PRIVATE KEY") && doctor.stdout.contains("Ed25519"),
        "{}",
        doctor.stdout
    );
    agent.wait_state("cbbook", "parked");
    assert!(holds_for(QUIET, || sim.stats().connections == 0));
    for out in [agent.log(), doctor.all()] {
        assert!(!out.contains("CANARY-not-a-key"), "the value leaked");
    }
}

/// `doctor --online --json` for a user feed on `sim` with account `main`.
fn doctor_online(dir: &Path, sim: &CoinbaseSimHandle) -> CliRun {
    let body = agent_toml(dir, "")
        + &feed(
            "cbuser",
            &sim.ws_user_url(),
            &sim.rest_url(),
            r#"["user"]"#,
            "",
            "account = \"main\"",
        );
    let cfg = write_config(dir, &body).display().to_string();
    run_cli(
        &["doctor", "--online", "--json", "--config", &cfg],
        &[],
        None,
    )
}

#[test]
fn doctor_online_proves_the_key_with_a_rest_jwt_and_names_a_far_clock() {
    let key = ed25519_key();
    let sim = start_sim(&key, |_| {});
    let dir = TempDir::new("cb-doctor");
    write_creds(dir.path(), &creds(&key));
    let ok = doctor_online(dir.path(), &sim);
    let doc: Value =
        serde_json::from_str(&ok.stdout).unwrap_or_else(|e| panic!("{e}: {}", ok.all()));
    assert_eq!(doc["online"][0]["outcome"], "ok", "{}", ok.stdout);
    assert!(
        doc["online"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("EdDSA JWT for GET /api/v3/brokerage/accounts (2 account(s))"),
        "{}",
        ok.stdout
    );
    let rest: Vec<String> = sim
        .received_jwts()
        .into_iter()
        .filter(|j| j.starts_with("rest "))
        .collect();
    assert_eq!(rest.len(), 1);
    let (_, claims) = claims_of(&rest[0]);
    let port = sim.rest_url().rsplit(':').next().unwrap().to_string();
    assert_eq!(
        claims["uri"],
        format!("GET 127.0.0.1:{port}/api/v3/brokerage/accounts")
    );
    // Coinbase's clock 5 minutes ahead and the key refused: the clock is named.
    drop(sim);
    let sim = start_sim(&key, |c| {
        c.date_skew_secs = 300;
        c.fault = Some(CoinbaseFault::RejectJwt);
    });
    let refused = doctor_online(dir.path(), &sim);
    assert_eq!(refused.code, Some(1), "{}", refused.all());
    let doc: Value = serde_json::from_str(&refused.stdout).unwrap();
    assert_eq!(doc["online"][0]["class"], "auth");
    assert!(
        doc["online"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("the clock is the likely cause"),
        "{}",
        refused.stdout
    );
}

#[test]
fn check_names_each_failure_layer() {
    let key = ec_key();
    let good = start_sim(&key, |_| {});
    let silent = start_sim(&key, |c| c.fault = Some(CoinbaseFault::Silent));
    let refusing = start_sim(&key, |c| c.fault = Some(CoinbaseFault::RejectJwt));
    let mute = TcpListener::bind("127.0.0.1:0").unwrap();
    let mute_port = mute.local_addr().unwrap().port();
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = TempDir::new("cb-check");
    write_creds(dir.path(), &creds(&key));
    let mut body = agent_toml(dir.path(), "");
    body += &market_feed("ok", &good, r#"["level2"]"#, "account = \"main\"");
    body += &market_feed("refused", &good, r#"["ticker"]"#, "")
        .replace(&good.ws_url(), &format!("ws://127.0.0.1:{closed}"));
    body += &market_feed("mute", &good, r#"["ticker"]"#, "")
        .replace(&good.ws_url(), &format!("ws://127.0.0.1:{mute_port}"));
    body += &market_feed("rejected", &refusing, r#"["ticker"]"#, "account = \"main\"");
    body += &market_feed("nodata", &silent, r#"["ticker"]"#, "");
    body += &market_feed("nokey", &good, r#"["ticker"]"#, "account = \"other\"");
    body += &feed(
        "symbol",
        &good.ws_url(),
        &good.rest_url(),
        r#"["ticker"]"#,
        r#"["BTC-USD", "XDG-USD"]"#,
        "",
    );
    let cfg = write_config(dir.path(), &body).display().to_string();
    let (out, reports) = check_json(&cfg);
    assert_eq!(out.code, Some(1), "{}", out.all());
    let failed = |feed: &str| failed_layer(&reports, feed);
    assert_eq!(
        failed("ok"),
        (String::new(), String::new()),
        "{}",
        out.stdout
    );
    assert_eq!(layer_of(&reports, "ok", "auth")["outcome"], "pass");
    for (feed, layer, text) in [
        ("nokey", "credentials", "COINBASE_OTHER_API_KEY_NAME"),
        ("refused", "tcp", "advanced-trade-ws"),
        ("mute", "handshake", "timeout"),
        ("rejected", "auth", "Coinbase refused the JWT"),
        ("nodata", "data", "nothing within"),
        ("symbol", "data", "XDG-USD"),
    ] {
        let (l, detail) = failed(feed);
        assert_eq!(l, layer, "{feed}: {detail}");
        assert!(detail.contains(text), "{feed}: {detail}");
    }
    let text = run_cli(&["check", "--config", &cfg], &[], None);
    // The operator's view, kept for the record (`cargo test -- --nocapture`).
    println!("{}", text.stdout);
    drop(mute);
}
