//! The real binary against the TWS simulator (`src/sim/ibkr`): `check`
//! names each failure layer with its remedy and exits 1; in `run`, a client
//! id in use moves to the next id of the range (status shows it), 1100
//! degrades the feed, 1102 restores it with nothing re-sent, 1101 re-sends
//! market data on the same connection, an unanswered reqCurrentTime
//! restarts the connection within ping_every + pong_timeout, error 200
//! parks the feed as a configuration error, ticks reach the bot with the
//! contract's symbol, a quiet feed outside NYSE hours is not a stall, and a
//! disconnect inside `reset_window` is a notice, not `alert=feed_down`.
//! Every wait has a deadline; nothing sleeps a fixed time to "let it happen".

mod common;
use brokerguard::calendar::{Calendar, CalendarKind};
use brokerguard::sim::ibkr::{TwsFault, TwsSim, TwsSimConfig, TwsSimHandle};
use common::*;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const FEED: &str = "tws";
const AAPL: &str =
    r#"contracts = [{ symbol = "AAPL", sec_type = "STK", exchange = "SMART", currency = "USD" }]"#;
/// Every test's feed runs 24/7 unless it says otherwise, so the stall and
/// keepalive rules apply whatever the hour in New York.
const ALWAYS: &str = "calendar = \"always\"";

/// A simulator with a tick round every 100 ms.
fn sim() -> TwsSimHandle {
    sim_with(TwsSimConfig {
        tick_every: Duration::from_millis(100),
        ..TwsSimConfig::default()
    })
}

fn sim_with(cfg: TwsSimConfig) -> TwsSimHandle {
    TwsSim::start(cfg).expect("start the TWS simulator")
}

/// An ibkr `[[feed]]` on `port` with short timeouts, plus `extra` keys.
fn feed_toml(port: u16, extra: &str) -> String {
    format!(
        r#"
[[feed]]
name = "{FEED}"
broker = "ibkr"
port = {port}
connect_timeout = "1s"
handshake_timeout = "1s"
backoff = {{ initial = "100ms", max = "1s", stable_after = "2s", parked_retry = "10m" }}
{extra}
"#
    )
}

struct Rig {
    dir: TempDir,
    sim: TwsSimHandle,
    agent: Agent,
    bot: FanoutClient,
}

impl Rig {
    fn start(tag: &str, sim: TwsSimHandle, agent_extra: &str, extra: &str) -> Rig {
        let dir = TempDir::new(tag);
        let body = agent_toml(dir.path(), &format!("preflight = \"off\"\n{agent_extra}"))
            + &feed_toml(sim.port(), extra);
        let cfg = write_config(dir.path(), &body);
        let agent = spawn_agent(dir.path(), &cfg, &[]);
        let bot = FanoutClient::connect(&dir.join("run/feeds.sock"), Duration::from_secs(10));
        Rig {
            dir,
            sim,
            agent,
            bot,
        }
    }

    fn log(&self) -> String {
        stderr_of(self.dir.path())
    }

    fn state(&self) -> Option<String> {
        feed_state(self.dir.path(), FEED)
    }

    fn field(&self, name: &str) -> serde_json::Value {
        feed_field(self.dir.path(), FEED, name).unwrap_or(serde_json::Value::Null)
    }

    fn info(&self, key: &str) -> Option<String> {
        self.field("info")[key].as_str().map(String::from)
    }

    fn last_error(&self) -> String {
        self.field("last_error")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn wait_state(&self, want: &str, d: Duration) {
        assert!(
            wait_for(d, || self.state().as_deref() == Some(want)),
            "feed never became {want} (now {:?}, last_error {:?}); stderr:\n{}",
            self.state(),
            self.last_error(),
            self.log()
        );
    }

    fn data_lines(&self) -> Vec<serde_json::Value> {
        self.bot
            .snapshot()
            .into_iter()
            .filter(|v| v["feed"] == FEED && v.get("data").is_some())
            .collect()
    }

    /// New data lines reach the bot.
    fn assert_flowing(&self) {
        let seen = self.data_lines().len();
        assert!(
            wait_for(Duration::from_secs(10), || self.data_lines().len()
                > seen + 3),
            "no data flowing (state {:?}); stderr:\n{}",
            self.state(),
            self.log()
        );
    }

    fn finish(mut self) {
        assert_eq!(stop_agent(&mut self.agent), Some(0), "{}", self.log());
        self.sim.stop();
    }
}

// ---- check: each failure layer, its remedy, exit 1 ----

fn check(dir: &TempDir, port: u16, extra: &str) -> (CliRun, serde_json::Value) {
    let body = agent_toml(dir.path(), "") + &feed_toml(port, extra);
    let cfg = write_config(dir.path(), &body);
    let cfg = cfg.to_str().unwrap();
    let text = run_cli(&["check", "--config", cfg], &[], None);
    let json = run_cli(&["check", "--json", "--config", cfg], &[], None);
    assert_eq!(text.code, json.code, "{text:?}\n{json:?}");
    let report: serde_json::Value =
        serde_json::from_str(&json.stdout).unwrap_or_else(|e| panic!("{e}: {}", json.stdout));
    (text, report[0].clone())
}

fn outcome(report: &serde_json::Value, layer: &str) -> (String, String) {
    let l = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["layer"] == layer)
        .unwrap_or_else(|| panic!("no layer {layer} in {report}"));
    (
        l["outcome"].as_str().unwrap().to_string(),
        l["detail"].as_str().unwrap().to_string(),
    )
}

/// A port on which nothing listens (bound, then released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn check_names_each_failure_layer_with_its_remedy_and_exits_1() {
    let dir = TempDir::new("ibchk");
    // Nothing listens: tcp.
    let port = free_port();
    let (text, r) = check(&dir, port, AAPL);
    assert_eq!(text.code, Some(1), "{text:?}");
    let (o, detail) = outcome(&r, "tcp");
    assert_eq!(o, "fail", "{r}");
    assert!(
        detail.contains(&format!(
            "nothing listens on 127.0.0.1:{port}: start TWS/IB Gateway"
        )) && detail.contains("TWS 7497 paper / 7496 live, Gateway 4002 / 4001"),
        "{detail}"
    );
    assert_eq!(outcome(&r, "handshake").0, "skip");
    assert!(text.stdout.contains("FAIL tcp"), "{}", text.stdout);
    assert_eq!(r["target"], format!("127.0.0.1:{port}"));

    // Accepts and never answers the greeting: handshake, the four causes.
    let mute = sim_with(TwsSimConfig {
        fault: Some(TwsFault::NoGreetingReply),
        ..TwsSimConfig::default()
    });
    let (text, r) = check(&dir, mute.port(), AAPL);
    assert_eq!(text.code, Some(1), "{text:?}");
    assert_eq!(outcome(&r, "tcp").0, "pass");
    let (o, detail) = outcome(&r, "handshake");
    assert_eq!(o, "fail", "{r}");
    for cause in [
        "Enable ActiveX and Socket Clients",
        "incoming connection",
        "Trusted IPs",
        "no other program is listening on that port",
    ] {
        assert!(detail.contains(cause), "{cause}: {detail}");
    }
    assert_eq!(
        detail.matches("Enable ActiveX").count(),
        1,
        "said once: {detail}"
    );
    assert_eq!(outcome(&r, "auth").0, "skip");
    mute.stop();

    // Greeting answered, no nextValidId: auth, session not ready.
    let login = sim_with(TwsSimConfig {
        fault: Some(TwsFault::NoNextValidId),
        ..TwsSimConfig::default()
    });
    let (text, r) = check(&dir, login.port(), AAPL);
    assert_eq!(text.code, Some(1), "{text:?}");
    assert_eq!(outcome(&r, "handshake").0, "pass");
    let (o, detail) = outcome(&r, "auth");
    assert_eq!(o, "fail", "{r}");
    assert!(
        detail.contains("no managedAccounts and nextValidId")
            && detail.contains(
                "API session not ready: TWS is still logging in, or Read-Only API blocks it"
            ),
        "{detail}"
    );
    login.stop();

    // The client id is held, no range: auth, the client id text.
    let held = sim();
    held.hold_client_id(1);
    let (text, r) = check(&dir, held.port(), AAPL);
    assert_eq!(text.code, Some(1), "{text:?}");
    let (o, detail) = outcome(&r, "auth");
    assert_eq!(o, "fail", "{r}");
    assert!(
        detail.contains("client id 1 is already in use (TWS error 326)")
            && detail.contains("client_id_range"),
        "{detail}"
    );
    // With a range the check moves on to the next id and passes.
    let (text, r) = check(
        &dir,
        held.port(),
        &format!("{AAPL}\nclient_id_range = [1, 3]"),
    );
    assert_eq!(text.code, Some(0), "{text:?}");
    assert!(outcome(&r, "auth").1.contains("client id 2"), "{r}");
    assert_eq!(outcome(&r, "data").0, "pass");
    assert_eq!(outcome(&r, "tls").1, "not used (no TLS on this connection)");
    held.stop();

    // A feed without contracts passes on the session's own answer.
    let plain = sim();
    let (text, r) = check(&dir, plain.port(), "");
    assert_eq!(text.code, Some(0), "{text:?}");
    assert_eq!(
        outcome(&r, "data"),
        ("pass".to_string(), "first heartbeat received".to_string())
    );
    assert_eq!(plain.stats().mkt_data_requests(0), 0);
    plain.stop();
}

// ---- run ----

#[test]
fn client_id_in_use_moves_to_the_next_id_and_status_shows_it() {
    let sim = sim();
    sim.hold_client_id(10);
    let rig = Rig::start(
        "ib326",
        sim,
        "",
        &format!("{AAPL}\n{ALWAYS}\nclient_id_range = [10, 12]"),
    );
    rig.wait_state("live", Duration::from_secs(10));
    assert!(
        wait_for(Duration::from_secs(5), || rig.info("client_id").as_deref()
            == Some("11")),
        "status info {}",
        rig.field("info")
    );
    assert_eq!(rig.info("server_version").as_deref(), Some("176"));
    assert_eq!(rig.info("accounts").as_deref(), Some("DU1234567"));
    let st = rig.sim.stats();
    assert_eq!(st.client_ids_rejected, [10]);
    assert_eq!(st.client_ids_seen, [10, 11]);
    assert!(
        rig.log()
            .contains("TWS refused client id 10 (326, in use): trying client id 11"),
        "{}",
        rig.log()
    );
    rig.assert_flowing();
    rig.finish();
}

#[test]
fn client_id_in_use_without_a_range_waits_a_short_backoff_and_retries() {
    let sim = sim();
    sim.hold_client_id(1);
    let rig = Rig::start("ib326b", sim, "", &format!("{AAPL}\n{ALWAYS}"));
    assert!(
        rig.sim.wait_for(
            |s| s.client_ids_rejected.len() >= 2,
            Duration::from_secs(15)
        ),
        "{}",
        rig.log()
    );
    let t = Instant::now();
    assert!(
        rig.last_error().contains("client id 1 is already in use"),
        "{}",
        rig.last_error()
    );
    // The old socket goes away: the next attempt gets the id.
    rig.sim.release_client_id(1);
    rig.wait_state("live", Duration::from_secs(10));
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert_eq!(rig.info("client_id").as_deref(), Some("1"));
    rig.finish();
}

#[test]
fn connectivity_lost_1100_degrades_and_1102_restores_with_nothing_resent() {
    let rig = Rig::start("ib1102", sim(), "", &format!("{AAPL}\n{ALWAYS}"));
    rig.wait_state("live", Duration::from_secs(10));
    rig.assert_flowing();
    assert_eq!(rig.sim.notify(1100), 1);
    rig.wait_state("degraded", Duration::from_secs(5));
    assert!(rig.last_error().contains("(1100)"), "{}", rig.last_error());
    let st = rig.sim.stats();
    assert_eq!((st.connections_accepted, st.mkt_data_requests(0)), (1, 1));
    assert_eq!(rig.sim.notify(1102), 1);
    rig.wait_state("live", Duration::from_secs(5));
    rig.assert_flowing();
    // Data maintained: nothing was asked again, on no new connection.
    let st = rig.sim.stats();
    assert_eq!(
        (
            st.connections_accepted,
            st.mkt_data_requests(0),
            st.mkt_data_cancels
        ),
        (1, 1, 0),
        "{st:?}"
    );
    assert!(
        rig.log()
            .contains("restored: connectivity between TWS and IB restored, data maintained (1102)")
    );
    rig.finish();
}

#[test]
fn data_lost_1101_rerequests_market_data_on_the_same_connection() {
    let rig = Rig::start("ib1101", sim(), "", &format!("{AAPL}\n{ALWAYS}"));
    rig.wait_state("live", Duration::from_secs(10));
    rig.assert_flowing();
    rig.sim.notify(1100);
    rig.wait_state("degraded", Duration::from_secs(5));
    rig.sim.notify(1101);
    assert!(
        rig.sim
            .wait_for(|s| s.mkt_data_requests(0) == 2, Duration::from_secs(5)),
        "{:?}\n{}",
        rig.sim.stats(),
        rig.log()
    );
    rig.wait_state("live", Duration::from_secs(5));
    // The simulator dropped the subscription on 1101: data flows only
    // because the agent asked again, on the same connection.
    rig.assert_flowing();
    let st = rig.sim.stats();
    assert_eq!(
        (st.connections_accepted, st.sessions_ready),
        (1, 1),
        "{st:?}"
    );
    rig.finish();
}

#[test]
fn unanswered_req_current_time_reconnects_within_ping_every_plus_pong_timeout() {
    let (ping_every, pong_timeout) = (Duration::from_millis(300), Duration::from_millis(700));
    let rig = Rig::start(
        "ibpong",
        sim(),
        "",
        &format!("{AAPL}\n{ALWAYS}\nping_every = \"300ms\"\npong_timeout = \"700ms\""),
    );
    rig.wait_state("live", Duration::from_secs(10));
    assert!(
        rig.sim
            .wait_for(|s| s.current_time_answered >= 2, Duration::from_secs(5))
    );
    let t = Instant::now();
    rig.sim.set_fault(TwsFault::NoCurrentTime);
    assert!(
        rig.sim
            .wait_for(|s| s.sessions_ready >= 2, Duration::from_secs(10)),
        "no new session; {}",
        rig.log()
    );
    let took = t.elapsed();
    // Ticks kept flowing the whole time: only the keepalive proves TWS answers.
    let budget = ping_every + pong_timeout + Duration::from_millis(800);
    assert!(
        took <= budget,
        "new session after {took:?}, budget {budget:?}"
    );
    assert!(rig.log().contains("no pong within"), "{}", rig.log());
    rig.sim.clear_fault();
    rig.wait_state("live", Duration::from_secs(5));
    rig.assert_flowing();
    rig.finish();
}

#[test]
fn a_contract_without_definition_parks_the_feed_as_a_configuration_error() {
    let rig = Rig::start(
        "ib200",
        sim(),
        "",
        &format!(
            "{ALWAYS}\ncontracts = [{{ symbol = \"AAPL\", sec_type = \"STK\", exchange = \"SMART\", currency = \"USD\" }}, {{ symbol = \"NOPE\", sec_type = \"STK\", exchange = \"SMART\", currency = \"USD\" }}]"
        ),
    );
    rig.wait_state("parked", Duration::from_secs(10));
    let e = rig.last_error();
    assert!(
        e.contains("contracts[1] (NOPE STK SMART USD)") && e.contains("error 200"),
        "{e}"
    );
    assert!(
        wait_log(
            rig.dir.path(),
            "alert=config_invalid feed=tws",
            Duration::from_secs(5)
        ),
        "{}",
        rig.log()
    );
    assert!(!rig.log().contains("alert=credential_rejected"));
    // No retry loop: one connection, one request per contract.
    assert!(holds_for(Duration::from_secs(2), || {
        let s = rig.sim.stats();
        s.connections_accepted == 1 && s.mkt_data_requests(0) == 2
    }));
    assert_eq!(rig.state().as_deref(), Some("parked"));
    rig.finish();
}

#[test]
fn ticks_and_tws_messages_reach_the_bot_with_the_contracts_symbol() {
    let rig = Rig::start("ibticks", sim(), "", &format!("{AAPL}\n{ALWAYS}"));
    rig.wait_state("live", Duration::from_secs(10));
    rig.assert_flowing();
    // TWS's notices are event lines for the bot (a farm OK, as TWS sends
    // at connect and after a farm comes back).
    assert_eq!(rig.sim.notify(2104), 1);
    assert!(
        wait_for(Duration::from_secs(5), || rig.bot.count(|v| v["feed"]
            == FEED
            && v["event"] == "tws_message"
            && v["code"] == 2104
            && v["severity"] == "warning")
            >= 1),
        "no tws_message event for 2104"
    );
    let lines = rig.data_lines();
    let kinds: Vec<&str> = lines
        .iter()
        .filter_map(|v| v["data"]["type"].as_str())
        .collect();
    for kind in ["tick_price", "tick_size", "tick_string"] {
        assert!(kinds.contains(&kind), "{kind} missing in {lines:?}");
    }
    for v in &lines {
        assert_eq!(v["data"]["symbol"], "AAPL", "{v}");
        assert_eq!(v["data"]["req_id"], 1000, "{v}");
    }
    let bid = lines
        .iter()
        .find(|v| v["data"]["tick"] == "bid")
        .expect("a bid tick");
    assert!(
        bid["data"]["price"].as_f64().is_some_and(|p| p > 0.0),
        "{bid}"
    );
    assert!(bid["data"]["size"].as_f64().is_some(), "{bid}");
    rig.finish();
}

/// Yesterday, today and tomorrow (UTC) as `[calendar.nyse]` holidays:
/// whatever the date in New York, the exchange is closed all day.
fn nyse_closed_today() -> String {
    let day = 86_400;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let dates: Vec<String> = [now - day, now, now + day]
        .iter()
        .map(|t| {
            format!(
                "\"{}\"",
                &brokerguard::timefmt::rfc3339(UNIX_EPOCH + Duration::from_secs(*t))[..10]
            )
        })
        .collect();
    format!("[calendar.nyse]\nholidays = [{}]", dates.join(", "))
}

#[test]
fn a_quiet_feed_outside_nyse_hours_is_not_a_stall() {
    // One tick round at subscribe, then silence (the next is an hour away);
    // reqCurrentTime is still answered.
    let quiet = || {
        sim_with(TwsSimConfig {
            tick_every: Duration::from_secs(3600),
            ..TwsSimConfig::default()
        })
    };
    let keys = format!("{AAPL}\nstall_after = \"1s\"\nping_every = \"300ms\"");
    let rig = Rig::start("ibclosed", quiet(), &nyse_closed_today(), &keys);
    rig.wait_state("live", Duration::from_secs(10));
    assert!(
        wait_for(Duration::from_secs(5), || rig.field("market") == "closed"),
        "no market state (the default calendar of a stock feed is nyse): {}",
        rig.field("market")
    );
    // Quiet for stall_after in a closed market: `closed`, not `live`, and
    // not a stall. Three times stall_after of silence: the one connection.
    rig.wait_state("closed", Duration::from_secs(5));
    assert!(holds_for(Duration::from_secs(3), || rig.state().as_deref()
        == Some("closed")));
    assert_eq!(rig.sim.stats().connections_accepted, 1, "{}", rig.log());
    assert!(!rig.log().contains("restarting"));
    rig.finish();
    // The same silence on a 24/7 calendar is a stall: the rule is live.
    let rig = Rig::start("ibopen", quiet(), "", &format!("{keys}\n{ALWAYS}"));
    assert!(
        rig.sim
            .wait_for(|s| s.connections_accepted >= 2, Duration::from_secs(10)),
        "{}",
        rig.log()
    );
    assert!(rig.log().contains("no data for"), "{}", rig.log());
    rig.finish();
}

/// `HH:MM-HH:MM` in New York from `before` minutes ago to `after` minutes
/// from now (shifted by `shift` hours), for a window around the present.
fn window_around_now(shift_hours: i64, before: i64, after: i64) -> String {
    let cal = Calendar::new(CalendarKind::Nyse, &[]).unwrap();
    let now = SystemTime::now();
    let unix = now.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let local_min = (unix + i64::from(cal.utc_offset_at(now))) / 60 + shift_hours * 60;
    let hm = |m: i64| {
        let m = m.rem_euclid(24 * 60);
        format!("{:02}:{:02}", m / 60, m % 60)
    };
    format!("{}-{}", hm(local_min - before), hm(local_min + after))
}

#[test]
fn a_disconnect_inside_the_reset_window_is_a_notice_not_feed_down() {
    let keys = |window: &str| format!("{AAPL}\n{ALWAYS}\nreset_window = \"{window}\"");
    // The window holds the present: the outage is expected.
    let rig = Rig::start(
        "ibreset",
        sim(),
        "alert_after = \"1s\"",
        &keys(&window_around_now(0, 2, 30)),
    );
    rig.wait_state("live", Duration::from_secs(10));
    rig.sim.set_fault(TwsFault::RefuseConnections);
    assert!(
        wait_log(
            rig.dir.path(),
            "expected: it began inside reset_window",
            Duration::from_secs(10)
        ),
        "{}",
        rig.log()
    );
    assert!(
        holds_for(Duration::from_secs(2), || !rig
            .log()
            .contains("alert=feed_down feed=tws")),
        "{}",
        rig.log()
    );
    rig.sim.clear_fault();
    rig.wait_state("live", Duration::from_secs(10));
    rig.finish();
    // The window is twelve hours away: the usual alert.
    let rig = Rig::start(
        "ibreset2",
        sim(),
        "alert_after = \"1s\"",
        &keys(&window_around_now(12, 2, 30)),
    );
    rig.wait_state("live", Duration::from_secs(10));
    rig.sim.set_fault(TwsFault::RefuseConnections);
    assert!(
        wait_log(
            rig.dir.path(),
            "alert=feed_down feed=tws",
            Duration::from_secs(10)
        ),
        "{}",
        rig.log()
    );
    assert!(!rig.log().contains("reset_window"));
    rig.finish();
}
