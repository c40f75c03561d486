//! A panic costs only the thread it happened on (issue 19, item 3): a feed
//! thread that panics is shown crashed, `alert=feed_crashed` names the code
//! location and never the panic's message, the feed runs again after a
//! backoff, the other feed never stops delivering, the agent keeps writing
//! status.json and systemd keeps hearing `WATCHDOG=1`. The fan-out's I/O
//! thread crashing costs the bots a reconnect, nothing more.
//!
//! Panics are injected through the test-only `fault-injection` feature
//! (`threads::fault`): a trigger file in `BROKERGUARD_FAULT_INJECT_DIR`
//! holding a canary, which ends up in the panic's message.

mod common;
use brokerguard::sim::{SimConfig, SimHandle, Simulator};
use common::*;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "canary-token-panic-41c7";
/// Put in the panic's message by the injected fault.
const CANARY: &str = "CANARY-panic-message-9e2d71";

fn data_sim() -> SimHandle {
    Simulator::start(SimConfig {
        tokens: vec![TOKEN.into()],
        data_every: Some(Duration::from_millis(20)),
        heartbeat_every: Some(Duration::from_millis(200)),
        ..SimConfig::default()
    })
    .unwrap()
}

/// Makes the thread watching `point` panic with the canary in the message
/// (written then renamed, so the thread never reads half a file).
fn trigger(faults: &Path, point: &str) {
    let tmp = faults.join(format!(".tmp-{point}"));
    std::fs::write(&tmp, format!("a value that must never be shown: {CANARY}")).unwrap();
    std::fs::rename(&tmp, faults.join(format!("panic-{point}"))).unwrap();
}

/// The `seq` numbers of `feed`'s data lines, in arrival order.
fn seqs(bot: &FanoutClient, feed: &str) -> Vec<u64> {
    bot.snapshot()
        .iter()
        .filter(|v| v["feed"] == feed)
        .filter_map(|v| v["seq"].as_u64())
        .collect()
}

/// Collects every `WATCHDOG=1` systemd would receive, with its arrival.
fn watchdog_pings(sock: UnixDatagram) -> Arc<Mutex<Vec<Instant>>> {
    let pings = Arc::new(Mutex::new(Vec::new()));
    let p = pings.clone();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // Ends with the test process; its socket file goes with the TempDir.
        loop {
            match sock.recv(&mut buf) {
                Ok(n) if &buf[..n] == b"WATCHDOG=1" => p.lock().unwrap().push(Instant::now()),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return,
            }
        }
    });
    pings
}

#[test]
fn a_panicking_feed_thread_costs_only_its_own_feed() {
    let dir = TempDir::new("panic-feed");
    let (sim_a, sim_b) = (data_sim(), data_sim());
    let faults = dir.join("faults");
    std::fs::create_dir_all(&faults).unwrap();
    std::fs::write(dir.join("credentials.env"), format!("SIG_TOKEN={TOKEN}\n")).unwrap();
    let body = agent_toml(dir.path(), "preflight = \"off\"\nalert_after = \"30s\"")
        + &ws_feed_toml("a", &sim_a.url(), "SIG_TOKEN", "")
        + &ws_feed_toml("b", &sim_b.url(), "SIG_TOKEN", "");
    let cfg = write_config(dir.path(), &body);
    let notify = dir.join("notify.sock");
    let pings = watchdog_pings(UnixDatagram::bind(&notify).unwrap());
    let mut agent = spawn_agent(
        dir.path(),
        &cfg,
        &[
            ("NOTIFY_SOCKET", notify.to_str().unwrap()),
            // systemd's WatchdogSec=2s: a keep-alive every second.
            ("WATCHDOG_USEC", "2000000"),
            ("BROKERGUARD_FAULT_INJECT_DIR", faults.to_str().unwrap()),
        ],
    );
    let bot = FanoutClient::connect(&dir.join("run/feeds.sock"), Duration::from_secs(10));
    let both_live = || {
        feed_state(dir.path(), "a").as_deref() == Some("live")
            && feed_state(dir.path(), "b").as_deref() == Some("live")
    };
    assert!(
        wait_for(Duration::from_secs(15), both_live),
        "feeds never both live; stderr:\n{}",
        stderr_of(dir.path())
    );
    assert!(wait_for(Duration::from_secs(10), || pings
        .lock()
        .unwrap()
        .len()
        >= 2));

    let crashed_at = Instant::now();
    trigger(&faults, "feed-a");
    assert!(
        wait_log(
            dir.path(),
            "alert=feed_crashed feed=a at=",
            Duration::from_secs(10)
        ),
        "no alert=feed_crashed; stderr:\n{}",
        stderr_of(dir.path())
    );
    let log = stderr_of(dir.path());
    let alert = log
        .lines()
        .find(|l| l.contains("alert=feed_crashed"))
        .unwrap()
        .to_string();
    // The location is where the feed thread's code panicked, not a value.
    assert!(
        alert.contains("at=src/feed/runner.rs:"),
        "the alert names the code location: {alert}"
    );
    // The bot hears the feed crashed, with the location and no value.
    assert!(
        wait_for(Duration::from_secs(5), || bot.count(|v| v["feed"] == "a"
            && v["event"] == "state"
            && v["state"] == "crashed")
            == 1),
        "no crashed state event: {:?}",
        bot.snapshot()
    );
    let event = bot
        .snapshot()
        .into_iter()
        .find(|v| v["state"] == "crashed")
        .unwrap();
    assert!(
        event["error"]
            .as_str()
            .is_some_and(|e| e.contains("crashed at src/feed/runner.rs:")),
        "{event}"
    );

    // Respawned: live again, and new data of `a` reaches the bot.
    let a_before = seqs(&bot, "a").last().copied().unwrap_or(0);
    assert!(
        wait_for(Duration::from_secs(15), || feed_state(dir.path(), "a")
            .as_deref()
            == Some("live")
            && seqs(&bot, "a").last().is_some_and(|&s| s > a_before + 5)),
        "feed a never came back; stderr:\n{}",
        stderr_of(dir.path())
    );
    assert_eq!(feed_field(dir.path(), "a", "crashes"), Some(1.into()));
    assert!(
        feed_field(dir.path(), "a", "last_error")
            .and_then(|v| v.as_str().map(String::from))
            .is_some_and(|e| e.starts_with("crashed at src/feed/runner.rs:")),
        "last_error says where it crashed"
    );

    // `b` never stopped: no state change after a's crash, and every
    // one of its lines arrived, seq without a gap, through the crash.
    assert_eq!(
        bot.first_after(crashed_at, |v| v["feed"] == "b" && v["event"] == "state"),
        None,
        "b changed state after a's crash"
    );
    let b = seqs(&bot, "b");
    assert!(
        b.windows(2).all(|w| w[1] == w[0] + 1),
        "b's seq has a gap: {b:?}"
    );
    let b_during = bot.first_after(crashed_at + Duration::from_millis(500), |v| {
        v["feed"] == "b" && v["seq"].is_u64()
    });
    assert!(b_during.is_some(), "b delivered through a's crash");

    // The process kept running, writing status.json and telling systemd
    // all is well: no keep-alive gap reaching WatchdogSec.
    assert!(agent.try_wait().unwrap().is_none(), "the agent exited");
    let status_at = |d: &Path| {
        std::fs::metadata(d.join("run/status.json"))
            .and_then(|m| m.modified())
            .ok()
    };
    let before = status_at(dir.path());
    assert!(
        wait_for(Duration::from_secs(5), || status_at(dir.path()) > before),
        "status.json is no longer written"
    );
    let window: Vec<Instant> = pings
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|t| *t >= crashed_at - Duration::from_secs(2))
        .collect();
    assert!(window.len() >= 3, "WATCHDOG=1 stopped: {window:?}");
    let longest = window
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    assert!(
        longest < Duration::from_secs(2),
        "WATCHDOG=1 paused for {longest:?} around the crash"
    );
    assert!(
        !stderr_of(dir.path()).contains("withholding WATCHDOG=1"),
        "{}",
        stderr_of(dir.path())
    );

    assert_eq!(stop_agent(&mut agent), Some(0), "{}", stderr_of(dir.path()));
    let log = stderr_of(dir.path());
    assert!(
        !log.contains(CANARY),
        "the panic's message reached the log:\n{log}"
    );
    assert!(!log.contains(TOKEN), "the token reached the log");
    assert!(
        log.contains("thread 'feed-a' panicked at src/feed/runner.rs:"),
        "the hook names the thread and the location:\n{log}"
    );
    let status = std::fs::read_to_string(dir.join("run/status.json")).unwrap_or_default();
    assert!(!status.contains(CANARY));
    assert!(
        !bot.snapshot()
            .iter()
            .any(|v| v.to_string().contains(CANARY))
    );
}

#[test]
fn a_panicking_fanout_thread_costs_the_bots_a_reconnect() {
    let dir = TempDir::new("panic-fanout");
    let sim = data_sim();
    let faults = dir.join("faults");
    std::fs::create_dir_all(&faults).unwrap();
    std::fs::write(dir.join("credentials.env"), format!("SIG_TOKEN={TOKEN}\n")).unwrap();
    let body = agent_toml(dir.path(), "preflight = \"off\"")
        + &ws_feed_toml("sig", &sim.url(), "SIG_TOKEN", "");
    let cfg = write_config(dir.path(), &body);
    let mut agent = spawn_agent(
        dir.path(),
        &cfg,
        &[("BROKERGUARD_FAULT_INJECT_DIR", faults.to_str().unwrap())],
    );
    let socket = dir.join("run/feeds.sock");
    let bot = FanoutClient::connect(&socket, Duration::from_secs(10));
    assert!(
        wait_for(Duration::from_secs(15), || seqs(&bot, "sig").len() > 3),
        "no data; stderr:\n{}",
        stderr_of(dir.path())
    );
    trigger(&faults, "fanout-io");
    assert!(
        wait_log(
            dir.path(),
            "alert=thread_crashed thread=fanout-io at=src/fanout/io.rs:",
            Duration::from_secs(10)
        ),
        "stderr:\n{}",
        stderr_of(dir.path())
    );
    // A new connection is served by the restarted thread, from the same
    // socket file, with the feed's seq running on.
    let last = seqs(&bot, "sig").last().copied().unwrap_or(0);
    let again = FanoutClient::connect(&socket, Duration::from_secs(10));
    assert!(
        wait_for(Duration::from_secs(10), || seqs(&again, "sig")
            .first()
            .is_some_and(|&s| s > last)),
        "no data to a new subscriber after the crash; stderr:\n{}",
        stderr_of(dir.path())
    );
    assert_eq!(feed_state(dir.path(), "sig").as_deref(), Some("live"));
    assert_eq!(stop_agent(&mut agent), Some(0), "{}", stderr_of(dir.path()));
    assert!(!stderr_of(dir.path()).contains(CANARY));
}
