//! The feed engine against the simulator: every fault class ends with the
//! feed live again and data flowing, asserted through status.json and the
//! fan-out socket, with deadlines and no fixed sleeps.

mod common;
use brokerguard::sim::{Fault, SimConfig, SimHandle, Simulator};
use common::*;
use std::time::{Duration, Instant};

const TOKEN: &str = "canary-token-6d1f0a";

struct Scenario {
    dir: TempDir,
    sim: SimHandle,
    agent: Agent,
    bot: FanoutClient,
}

/// A websocket feed named `sig` on the simulator, with `extra` feed keys.
/// Dropped, it stops the agent (`common::Agent`) and the simulator.
fn scenario(tag: &str, sim_cfg: SimConfig, extra: &str) -> Scenario {
    scenario_with(tag, sim_cfg, "alert_after = \"2s\"", extra)
}

/// [`scenario`] with `agent` keys in `[agent]` (besides `preflight`).
fn scenario_with(tag: &str, sim_cfg: SimConfig, agent: &str, extra: &str) -> Scenario {
    let dir = TempDir::new(tag);
    let sim = Simulator::start(SimConfig {
        tokens: vec![TOKEN.into()],
        ..sim_cfg
    })
    .unwrap();
    std::fs::write(dir.join("credentials.env"), format!("SIG_TOKEN={TOKEN}\n")).unwrap();
    // No start-up preflight here: these tests count the feed's own connections.
    let body = agent_toml(dir.path(), &format!("{agent}\npreflight = \"off\""))
        + &ws_feed_toml("sig", &sim.url(), "SIG_TOKEN", extra);
    let cfg = write_config(dir.path(), &body);
    let agent = spawn_agent(dir.path(), &cfg, &[]);
    let bot = FanoutClient::connect(&dir.join("run/feeds.sock"), Duration::from_secs(10));
    Scenario {
        dir,
        sim,
        agent,
        bot,
    }
}

impl Scenario {
    fn state(&self) -> Option<String> {
        feed_state(self.dir.path(), "sig")
    }

    fn wait_state(&self, want: &str, d: Duration) {
        assert!(
            wait_for(d, || self.state().as_deref() == Some(want)),
            "feed never became {want} (now {:?}); stderr:\n{}",
            self.state(),
            stderr_of(self.dir.path())
        );
    }

    fn wait_not_live(&self, d: Duration) {
        assert!(
            wait_for(d, || self.state().is_some_and(|s| s != "live")),
            "feed stayed live; stderr:\n{}",
            stderr_of(self.dir.path())
        );
    }

    fn max_seq(&self) -> u64 {
        self.bot
            .snapshot()
            .iter()
            .filter_map(|v| v["seq"].as_u64())
            .max()
            .unwrap_or(0)
    }

    /// Live, and new data reaches the bot.
    fn assert_flowing(&self) {
        self.wait_state("live", Duration::from_secs(10));
        let seen = self.max_seq();
        assert!(
            wait_for(Duration::from_secs(10), || self.max_seq() > seen + 2),
            "no data after recovery; stderr:\n{}",
            stderr_of(self.dir.path())
        );
    }

    fn last_error(&self) -> String {
        feed_field(self.dir.path(), "sig", "last_error")
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    }

    fn finish(mut self) {
        assert_eq!(
            stop_agent(&mut self.agent),
            Some(0),
            "{}",
            stderr_of(self.dir.path())
        );
        let log = stderr_of(self.dir.path());
        assert!(!log.contains(TOKEN), "the token leaked into the log");
        for v in self.bot.snapshot() {
            assert!(!v.to_string().contains(TOKEN), "token in fan-out line {v}");
        }
        self.sim.stop();
    }
}

fn data_sim() -> SimConfig {
    SimConfig {
        data_every: Some(Duration::from_millis(50)),
        heartbeat_every: Some(Duration::from_millis(200)),
        ..SimConfig::default()
    }
}

#[test]
fn close_1000_on_every_send_never_leaves_the_feed_falsely_live() {
    let s = scenario(
        "c1000",
        data_sim(),
        "poll = '{\"type\":\"get_signals\"}'\npoll_every = \"200ms\"",
    );
    s.assert_flowing();
    s.sim.set_fault(Fault::CloseOnClientMessage { code: 1000 });
    s.wait_not_live(Duration::from_secs(5));
    assert!(
        wait_for(Duration::from_secs(5), || s
            .last_error()
            .contains("code 1000")),
        "{}",
        s.last_error()
    );
    // While the fault lasts, the feed keeps cycling; it never sits "live" on a dead connection.
    let before = s.sim.stats().connections_accepted;
    assert!(s.sim.wait_for(
        |st| st.connections_accepted >= before + 2,
        Duration::from_secs(10)
    ));
    s.sim.clear_fault();
    s.assert_flowing();
    s.finish();
}

#[test]
fn stall_with_pongs_is_detected_and_restarted() {
    let s = scenario(
        "stallp",
        data_sim(),
        "stall_after = \"1s\"\nping_every = \"200ms\"\npong_timeout = \"1s\"",
    );
    s.assert_flowing();
    let t = Instant::now();
    s.sim.set_fault(Fault::SilentWithPongs);
    s.wait_not_live(Duration::from_secs(5));
    let detected = t.elapsed();
    assert!(s.last_error().contains("no data"), "{}", s.last_error());
    assert!(
        detected >= Duration::from_millis(900),
        "detected after {detected:?}, before stall_after"
    );
    s.sim.clear_fault();
    s.assert_flowing();
    s.finish();
}

#[test]
fn stall_without_pongs_is_detected() {
    let s = scenario(
        "stalln",
        data_sim(),
        "stall_after = \"3s\"\nping_every = \"200ms\"\npong_timeout = \"600ms\"",
    );
    s.assert_flowing();
    s.sim.set_fault(Fault::SilentNoPongs);
    s.wait_not_live(Duration::from_secs(5));
    s.sim.clear_fault();
    s.assert_flowing();
    s.finish();
}

#[test]
fn tcp_reset_reconnects() {
    let s = scenario("reset", data_sim(), "");
    s.assert_flowing();
    let before = s.sim.stats().handshakes_completed;
    s.sim.set_fault(Fault::Reset);
    assert!(
        s.sim
            .wait_for(|st| st.resets_sent >= 1, Duration::from_secs(5))
    );
    s.sim.clear_fault();
    assert!(s.sim.wait_for(
        |st| st.handshakes_completed > before,
        Duration::from_secs(10)
    ));
    s.assert_flowing();
    s.finish();
}

#[test]
fn refused_then_accepted() {
    let s = scenario("refuse", data_sim(), "");
    s.assert_flowing();
    s.sim.set_fault(Fault::RefuseConnections);
    s.wait_not_live(Duration::from_secs(5));
    assert!(
        wait_for(Duration::from_secs(5), || s
            .last_error()
            .contains("refused")),
        "{}",
        s.last_error()
    );
    s.sim.clear_fault();
    s.assert_flowing();
    s.finish();
}

#[test]
fn handshake_that_never_completes_times_out_by_name() {
    let s = scenario(
        "nohs",
        SimConfig {
            fault: Some(Fault::AcceptNoHandshake),
            ..data_sim()
        },
        "",
    );
    assert!(
        wait_for(Duration::from_secs(10), || s
            .last_error()
            .contains("timeout")),
        "{}",
        s.last_error()
    );
    assert!(s.last_error().contains("handshake"), "{}", s.last_error());
    s.sim.clear_fault();
    s.assert_flowing();
    s.finish();
}

#[test]
fn rejected_auth_parks_without_a_retry_storm() {
    let s = scenario(
        "auth",
        SimConfig {
            fault: Some(Fault::RejectAuth),
            ..data_sim()
        },
        "",
    );
    s.wait_state("parked", Duration::from_secs(10));
    let log = stderr_of(s.dir.path());
    assert!(log.contains("alert=credential_rejected feed=sig"), "{log}");
    // Watch for 30 s: a parked feed must not hammer the broker.
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        assert!(
            s.sim.stats().connections_accepted <= 1,
            "{:?}",
            s.sim.stats()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(s.state().as_deref(), Some("parked"));
    s.finish();
}

#[test]
fn close_1012_reconnects_after_a_randomized_delay() {
    let s = scenario("c1012", data_sim(), "");
    s.assert_flowing();
    let before = s.sim.stats().handshakes_completed;
    let t = Instant::now();
    s.sim.set_fault(Fault::CloseWithCode { code: 1012 });
    assert!(s.sim.wait_for(
        |st| st.handshakes_completed > before,
        Duration::from_secs(10)
    ));
    let delay = t.elapsed();
    assert!(
        delay >= Duration::from_millis(900),
        "reconnected after {delay:?}: not delayed"
    );
    s.sim.clear_fault();
    s.assert_flowing();
    s.finish();
}

#[test]
fn resubscribes_once_per_connection_and_seq_stays_continuous() {
    let s = scenario("resub", data_sim(), "");
    s.assert_flowing();
    for _ in 0..3 {
        let before = s.sim.stats().handshakes_completed;
        s.sim.set_fault(Fault::CloseWithCode { code: 1011 });
        assert!(s.sim.wait_for(
            |st| st.handshakes_completed > before,
            Duration::from_secs(10)
        ));
        s.sim.clear_fault();
        s.assert_flowing();
    }
    let stats = s.sim.stats();
    assert!(stats.subscribes_per_connection.len() >= 4);
    for (i, subs) in stats.subscribes_per_connection.iter().enumerate() {
        assert_eq!(subs, &vec!["signals".to_string()], "connection {i}");
    }
    let lines = s.bot.snapshot();
    let seqs: Vec<u64> = lines.iter().filter_map(|v| v["seq"].as_u64()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "seq gap: {seqs:?}"
    );
    assert!(lines.iter().filter(|v| v["event"] == "reconnected").count() >= 3);
    s.finish();
}

#[test]
fn missed_wave_raises_an_alert_from_the_wall_clock() {
    // Heartbeats keep the feed live, but no data arrives in the 1 s windows.
    let s = scenario(
        "wave",
        SimConfig {
            data_every: None,
            heartbeat_every: Some(Duration::from_millis(100)),
            ..SimConfig::default()
        },
        "expect = { every = \"1s\", offset = \"0s\", grace = \"300ms\" }",
    );
    s.wait_state("live", Duration::from_secs(10));
    assert!(
        wait_for(Duration::from_secs(6), || stderr_of(s.dir.path())
            .contains("alert=wave_missed feed=sig window=")),
        "{}",
        stderr_of(s.dir.path())
    );
    s.finish();
}

#[test]
fn feed_down_alert_then_recovered_notice() {
    let s = scenario("down", data_sim(), "");
    s.assert_flowing();
    s.sim.set_fault(Fault::RefuseConnections);
    assert!(
        wait_for(Duration::from_secs(10), || stderr_of(s.dir.path())
            .contains("alert=feed_down feed=sig")),
        "{}",
        stderr_of(s.dir.path())
    );
    s.sim.clear_fault();
    s.assert_flowing();
    assert!(wait_for(Duration::from_secs(5), || stderr_of(s.dir.path())
        .contains("alert=feed_recovered feed=sig downtime=")));
    s.finish();
}

#[test]
fn check_names_the_first_failing_layer_and_require_refuses_to_start() {
    let dir = TempDir::new("check");
    let good = Simulator::start(SimConfig {
        tokens: vec![TOKEN.into()],
        ..data_sim()
    })
    .unwrap();
    let hung = Simulator::start(SimConfig {
        fault: Some(Fault::AcceptNoHandshake),
        ..SimConfig::default()
    })
    .unwrap();
    std::fs::write(dir.join("credentials.env"), format!("SIG_TOKEN={TOKEN}\n")).unwrap();
    let body = format!(
        r#"{agent}
[[feed]]
name = "good"
broker = "websocket"
url = "{good}"
auth = '{{"type":"auth","token":"${{SIG_TOKEN}}"}}'
auth_ok = "auth_ok"
subscribe = ['{{"type":"subscribe","channel":"signals"}}']

[[feed]]
name = "hung"
broker = "websocket"
url = "{hung}"
handshake_timeout = "500ms"
"#,
        agent = agent_toml(dir.path(), "preflight = \"require\""),
        good = good.url(),
        hung = hung.url()
    );
    let cfg = write_config(dir.path(), &body);
    let out = std::process::Command::new(BIN)
        .args(["check", "--json", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let layer = |feed: usize, name: &str| {
        reports[feed]["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["layer"] == name)
            .unwrap()["outcome"]
            .clone()
    };
    assert_eq!(layer(0, "auth"), "pass");
    assert_eq!(layer(0, "data"), "pass");
    assert_eq!(layer(1, "tcp"), "pass");
    assert_eq!(layer(1, "handshake"), "fail");
    assert_eq!(layer(1, "auth"), "skip");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(TOKEN));
    let out = std::process::Command::new(BIN)
        .args(["check", "good", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = std::process::Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("feed=hung layer=handshake") && err.contains("nothing answers the protocol"),
        "{err}"
    );
}

/// In `run`, a feed's own first connection is its preflight: with "warn"
/// and with "require" the simulator sees exactly one connection per feed
/// (no second session that a one-connection-per-key broker would refuse).
#[test]
fn preflight_in_run_opens_exactly_one_connection_per_feed() {
    for mode in ["warn", "require"] {
        let dir = TempDir::new(&format!("pf1-{mode}"));
        let sim = Simulator::start(SimConfig {
            tokens: vec![TOKEN.into()],
            ..data_sim()
        })
        .unwrap();
        std::fs::write(dir.join("credentials.env"), format!("SIG_TOKEN={TOKEN}\n")).unwrap();
        let body = agent_toml(dir.path(), &format!("preflight = \"{mode}\""))
            + &ws_feed_toml("sig", &sim.url(), "SIG_TOKEN", "");
        let cfg = write_config(dir.path(), &body);
        let mut agent = spawn_agent(dir.path(), &cfg, &[]);
        assert!(
            wait_for(Duration::from_secs(15), || stderr_of(dir.path())
                .contains("preflight feed=sig passed every layer")),
            "{mode}: no preflight report; stderr:\n{}",
            stderr_of(dir.path())
        );
        assert!(
            wait_for(Duration::from_secs(5), || feed_state(dir.path(), "sig")
                .as_deref()
                == Some("live")),
            "{mode}: not live"
        );
        let stats = sim.stats();
        assert_eq!(
            (stats.connections_accepted, stats.auth_ok),
            (1, 1),
            "{mode}: the preflight must be the feed's own connection"
        );
        stop_agent(&mut agent);
    }
}

/// A feed whose market is closed (today is a holiday of its calendar) is
/// not restarted for silence: stall_after applies only while the market is
/// open, and status.json shows the market's state.
#[test]
fn a_quiet_feed_is_not_a_stall_while_its_market_is_closed() {
    let dir = TempDir::new("closed");
    let sim = Simulator::start(SimConfig {
        tokens: vec![TOKEN.into()],
        fault: Some(Fault::SilentWithPongs),
        ..SimConfig::default()
    })
    .unwrap();
    std::fs::write(dir.join("credentials.env"), format!("SIG_TOKEN={TOKEN}\n")).unwrap();
    // Yesterday, today and tomorrow (UTC) as holidays: whatever the date in
    // New York, the exchange is closed all day.
    let day = 86_400;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let dates: Vec<String> = [now - day, now, now + day]
        .iter()
        .map(|t| {
            format!(
                "\"{}\"",
                &brokerguard::timefmt::rfc3339(std::time::UNIX_EPOCH + Duration::from_secs(*t))
                    [..10]
            )
        })
        .collect();
    let body = agent_toml(dir.path(), "preflight = \"off\"")
        + &format!("[calendar.nyse]\nholidays = [{}]\n", dates.join(", "))
        + &ws_feed_toml(
            "sig",
            &sim.url(),
            "SIG_TOKEN",
            "calendar = \"nyse\"\nstall_after = \"1s\"\nping_every = \"300ms\"",
        );
    let cfg = write_config(dir.path(), &body);
    let mut agent = spawn_agent(dir.path(), &cfg, &[]);
    assert!(
        wait_for(Duration::from_secs(10), || feed_field(
            dir.path(),
            "sig",
            "market"
        )
        .and_then(|m| m.as_str().map(String::from))
        .as_deref()
            == Some("closed")),
        "no market state in status.json; stderr:\n{}",
        stderr_of(dir.path())
    );
    // Three times stall_after of silence: still the one connection, and
    // `closed` (quiet is expected), never `live`: nothing proved it live.
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < until {
        assert_eq!(feed_state(dir.path(), "sig").as_deref(), Some("closed"));
        std::thread::sleep(Duration::from_millis(100));
    }
    // A closed market's quiet feed is healthy: `status` exits 0.
    let status = std::process::Command::new(BIN)
        .args(["status", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    assert_eq!(
        sim.stats().connections_accepted,
        1,
        "{}",
        stderr_of(dir.path())
    );
    assert!(!stderr_of(dir.path()).contains("restarting"));
    stop_agent(&mut agent);
}

/// The seed outage, replayed: the server sends data and closes every
/// connection with 1000 on the first poll, forever. Each connection lives
/// less than stable_after, so the outage never ends: alert=feed_down fires
/// after alert_after although the feed keeps saying "live" for a moment on
/// each connection, alert=feed_flapping names it, status exits 1 and says
/// flapping, the bot gets a "flapping" event, and nothing says recovered.
#[test]
fn a_flapping_feed_is_down_and_loud() {
    let s = scenario(
        "flap",
        data_sim(),
        "poll = '{\"type\":\"get_signals\"}'\npoll_every = \"1s\"\nalert_after = \"5s\"",
    );
    s.wait_state("live", Duration::from_secs(10));
    s.sim.set_fault(Fault::CloseOnClientMessage { code: 1000 });
    let saw = |needle: &str| stderr_of(s.dir.path()).contains(needle);
    assert!(
        wait_for(Duration::from_secs(25), || saw(
            "alert=feed_flapping feed=sig"
        ) && saw(
            "alert=feed_down feed=sig"
        )),
        "no flapping/down alerts; stderr:\n{}",
        stderr_of(s.dir.path())
    );
    let line = stderr_of(s.dir.path())
        .lines()
        .find(|l| l.contains("alert=feed_flapping"))
        .unwrap()
        .to_string();
    assert!(
        line.contains("connections=") && line.contains("within=5s") && line.contains("last_error="),
        "{line}"
    );
    let status = std::process::Command::new(BIN)
        .args(["status", "--config"])
        .arg(s.dir.join("brokerguard.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(1), "{text}");
    assert!(text.contains("flapping"), "{text}");
    assert!(
        s.bot
            .snapshot()
            .iter()
            .any(|v| v["event"] == "flapping" && v["feed"] == "sig"),
        "no flapping event on feeds.sock"
    );
    assert!(!saw("alert=feed_recovered"), "{}", stderr_of(s.dir.path()));
}

/// A server that acknowledges the subscription and then sends nothing
/// (`brokerguard sim --fault silent`) fails `check` at the data layer: the
/// acknowledgement matches `subscribe_ok`, so it is not data.
#[test]
fn check_fails_at_data_when_the_server_only_acks() {
    let dir = TempDir::new("acks");
    let sim = Simulator::start(SimConfig {
        tokens: vec![TOKEN.into()],
        fault: Some(Fault::SilentWithPongs),
        ..SimConfig::default()
    })
    .unwrap();
    std::fs::write(dir.join("credentials.env"), format!("SIG_TOKEN={TOKEN}\n")).unwrap();
    let body = agent_toml(dir.path(), "")
        + &ws_feed_toml(
            "sig",
            &sim.url(),
            "SIG_TOKEN",
            // ws_feed_toml sets subscribe_ok = '"type":"subscribed"'.
            "stall_after = \"1s\"",
        );
    let cfg = write_config(dir.path(), &body);
    let out = std::process::Command::new(BIN)
        .args(["check", "--json", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let layers = reports[0]["layers"].as_array().unwrap();
    let outcome = |name: &str| {
        layers
            .iter()
            .find(|l| l["layer"] == name)
            .map(|l| l["outcome"].as_str().unwrap().to_string())
    };
    assert_eq!(outcome("auth").as_deref(), Some("pass"));
    assert_eq!(outcome("data").as_deref(), Some("fail"), "{layers:?}");
    assert_eq!(sim.stats().subscribes_per_connection[0], vec!["signals"]);
}

/// `1h2m`, `1m5s`, `10.1s`, `515ms` (`timefmt::human`) back to a duration.
fn parse_human(s: &str) -> Duration {
    if let Some(ms) = s.strip_suffix("ms") {
        return Duration::from_millis(ms.parse().unwrap());
    }
    let mut total = 0.0;
    let mut num = String::new();
    for c in s.chars() {
        match c {
            'h' => total += num.parse::<f64>().unwrap() * 3600.0,
            'm' => total += num.parse::<f64>().unwrap() * 60.0,
            's' => total += num.parse::<f64>().unwrap(),
            _ => {
                num.push(c);
                continue;
            }
        }
        num.clear();
    }
    Duration::from_secs_f64(total)
}

/// The value of `key=` in an alert line (bare or double-quoted).
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let at = line
        .find(&format!(" {key}="))
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
        + key.len()
        + 2;
    let rest = &line[at..];
    match rest.strip_prefix('"') {
        Some(q) => &q[..q.find('"').unwrap()],
        None => rest.split(' ').next().unwrap(),
    }
}

/// An RFC 3339 UTC instant as written by the agent, to a wall time.
fn wall_of(s: &str) -> std::time::SystemTime {
    let (date, time) = s.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<u64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe - 719_468) as u64;
    let ms: u64 = format!("{frac:0<3}")[..3].parse().unwrap();
    std::time::UNIX_EPOCH
        + Duration::from_secs(days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2])
        + Duration::from_millis(ms)
}

fn close_to(a: Duration, b: Duration, within: Duration) -> bool {
    a.max(b) - a.min(b) <= within
}

/// Seed 002's three silent hours, compressed: the server keeps answering
/// pings and sends no data. The feed is never `live` on a connection that
/// delivers nothing; `feed_down` comes `alert_after` after the last data the
/// bot received and again every `alert_repeat`; when data returns, the
/// bot's `down_ms`, `feed_recovered downtime=` and `feed_down since=` all
/// tell the gap the bot itself saw.
#[test]
fn a_server_that_answers_pings_and_sends_nothing_is_down_from_the_last_data() {
    let s = scenario_with(
        "zombie",
        data_sim(),
        "alert_after = \"3s\"\nalert_repeat = \"4s\"",
        "stall_after = \"2s\"\nping_every = \"300ms\"\npong_timeout = \"1s\"",
    );
    s.assert_flowing();
    let log = || stderr_of(s.dir.path());
    let is_data = |v: &serde_json::Value| v["feed"] == "sig" && v["seq"].is_u64();
    s.sim.set_fault(Fault::SilentWithPongs);
    let faulted = Instant::now();
    // When each feed_down line appeared, as the test saw it.
    let mut downs: Vec<Instant> = Vec::new();
    let hold = Duration::from_secs(9);
    while faulted.elapsed() < hold {
        let n = log().matches("alert=feed_down feed=sig").count();
        while downs.len() < n {
            downs.push(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // The last data the bot received, by its own clock and by the agent's stamp.
    let lines = s.bot.snapshot();
    let times = s.bot.arrived.lock().unwrap().clone();
    // (Nothing arrives while the fault holds: the last data line is it.)
    let (last_i, last) = lines
        .iter()
        .enumerate()
        .rev()
        .find(|(_, v)| is_data(v))
        .unwrap();
    let last_at = times[last_i];
    let last_ts = wall_of(last["ts"].as_str().unwrap());
    // Never live without data: after the stall, every state line until the
    // fault ends is something else, and connections kept being made.
    let states: Vec<String> = lines
        .iter()
        .zip(&times)
        .filter(|(v, t)| **t > last_at && v["event"] == "state")
        .map(|(v, _)| v["state"].as_str().unwrap().to_string())
        .collect();
    assert!(
        states.iter().filter(|st| *st == "subscribed").count() >= 2,
        "{states:?}"
    );
    assert!(
        !states.iter().any(|st| st == "live"),
        "{states:?}\n{}",
        log()
    );
    assert_ne!(s.state().as_deref(), Some("live"));
    // feed_down at alert_after after the last data, then every alert_repeat.
    assert!(downs.len() >= 2, "feed_down lines: {downs:?}\n{}", log());
    let first = downs[0].duration_since(last_at);
    let second = downs[1].duration_since(downs[0]);
    assert!(
        close_to(first, Duration::from_secs(3), Duration::from_secs(1)),
        "first feed_down {first:?} after the last data\n{}",
        log()
    );
    assert!(
        close_to(second, Duration::from_secs(4), Duration::from_secs(1)),
        "repeated after {second:?}\n{}",
        log()
    );
    let down_line = log()
        .lines()
        .find(|l| l.contains("alert=feed_down feed=sig"))
        .unwrap()
        .to_string();
    let since = wall_of(field(&down_line, "since"));
    assert!(
        close_to(
            since.duration_since(std::time::UNIX_EPOCH).unwrap(),
            last_ts.duration_since(std::time::UNIX_EPOCH).unwrap(),
            Duration::from_secs(1)
        ),
        "feed_down since={since:?}, the bot's last data at {last_ts:?}: {down_line}"
    );
    // status.json tells the same outage.
    let outage = feed_field(s.dir.path(), "sig", "outage").unwrap();
    assert_eq!(outage["since"].as_str(), Some(field(&down_line, "since")));
    assert!(outage["connections"].as_u64().unwrap() >= 2, "{outage}");

    // Data again: the gap the bot saw is the outage everyone tells.
    s.sim.clear_fault();
    let cleared = Instant::now();
    assert!(
        wait_for(Duration::from_secs(10), || s
            .bot
            .first_after(cleared, is_data)
            .is_some()),
        "no data after the fault ended\n{}",
        log()
    );
    let back_at = s.bot.first_after(cleared, is_data).unwrap();
    let gap = back_at.duration_since(last_at);
    let reconnected = |v: &serde_json::Value| v["event"] == "reconnected";
    assert!(
        wait_for(Duration::from_secs(5), || s
            .bot
            .first_after(cleared, reconnected)
            .is_some()),
        "no reconnected event"
    );
    let down_ms = s
        .bot
        .snapshot()
        .iter()
        .zip(s.bot.arrived.lock().unwrap().iter())
        .filter(|(v, t)| **t >= cleared && v["event"] == "reconnected")
        .map(|(v, _)| v["down_ms"].as_u64().unwrap())
        .next()
        .unwrap();
    assert!(
        close_to(Duration::from_millis(down_ms), gap, Duration::from_secs(1)),
        "down_ms {down_ms}, the bot's gap {gap:?}"
    );
    assert!(
        wait_for(Duration::from_secs(10), || log()
            .contains("alert=feed_recovered feed=sig")),
        "{}",
        log()
    );
    let recovered = log()
        .lines()
        .find(|l| l.contains("alert=feed_recovered feed=sig"))
        .unwrap()
        .to_string();
    let downtime = parse_human(field(&recovered, "downtime"));
    assert!(
        close_to(downtime, gap, Duration::from_secs(1)),
        "feed_recovered downtime {downtime:?}, the bot's gap {gap:?}: {recovered}"
    );
    assert_eq!(field(&recovered, "since"), field(&down_line, "since"));
    // Recovered only once data had kept flowing for stable_after (2 s).
    assert!(cleared.elapsed() >= Duration::from_secs(2));
    // status.json is rewritten at least every second: wait for the write
    // after the outage ended.
    let since = field(&down_line, "since").to_string();
    let ended = || {
        feed_field(s.dir.path(), "sig", "last_outage")
            .filter(|o| o["since"].as_str() == Some(since.as_str()))
    };
    assert!(
        wait_for(Duration::from_secs(5), || ended().is_some()),
        "status.json never showed the ended outage: {:?}",
        feed_field(s.dir.path(), "sig", "last_outage")
    );
    let last_outage = ended().unwrap();
    assert!(
        close_to(
            Duration::from_millis(last_outage["down_ms"].as_u64().unwrap()),
            gap,
            Duration::from_secs(1)
        ),
        "{last_outage}"
    );
    assert_eq!(
        feed_field(s.dir.path(), "sig", "outage"),
        Some(serde_json::Value::Null)
    );
    s.finish();
}

/// A harness that is dropped without `finish` (a failed assertion, a
/// forgotten stop) still stops its agent: nothing outlives the test.
#[test]
fn a_dropped_scenario_leaves_no_agent_behind() {
    let s = scenario("drop", data_sim(), "");
    s.wait_state("live", Duration::from_secs(10));
    let pid = s.agent.id();
    assert!(agent_children().contains(&pid));
    drop(s);
    assert!(!process_exists(pid), "agent {pid} outlived its harness");
    assert!(!agent_children().contains(&pid));
}
