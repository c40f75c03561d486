//! Alert-to-webhook latency: from a feed's failure (the simulated broker
//! starts refusing and drops its connection) to the `feed_down` alert
//! arriving at a loopback webhook receiver, 20 times, with a hanging and an
//! unreachable webhook configured beside it (they must cost nothing).
//! `cargo bench --bench alerts` (or, quicker, a debug build:
//! `cargo test --bench alerts`).
//!
//! The agent runs with `alert_after = "100ms"`: the figure is the agent's
//! own path — the feed thread seeing the dead connection, the watchdog's
//! 1 s tick that raises `alert=feed_down` after `alert_after`, the hook, the
//! webhook worker and one HTTP POST — so it sits between `alert_after` and
//! `alert_after` + one watchdog tick + a few ms. With the default
//! `alert_after = "60s"` add 60 s: an alert is raised only for an outage
//! that lasts.
//!
//! Then the flight recorder's memory per feed: 100 recorders filled to
//! their bounds (1 000 entries, 1 MiB) with small ticker frames and with
//! large book frames, measured as the process's resident memory grows.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/alerts/receiver.rs"]
mod receiver;
#[path = "support/mod.rs"]
mod support;

use brokerguard::sim::{Fault, SimConfig, Simulator};
use common::*;
use receiver::{Receiver, Reply};
use std::time::{Duration, Instant};
use support::{median, ms_between, worst};

const RUNS: usize = 20;
const TOKEN: &str = "bench-token-alerts";

fn main() {
    recorder_memory();
    latency();
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn recorder_memory() {
    use brokerguard::feed::recorder::{
        DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, Direction, Recorder,
    };
    const FEEDS: usize = 100;
    let ticker = r#"{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":97000.1,"bid_qty":0.5,"ask":97000.2,"ask_qty":1.25,"last":97000.1,"volume":1234.5,"vwap":96800.3,"low":95000.0,"high":98000.0,"change":120.5,"change_pct":0.12}]}"#;
    let book = format!(
        r#"{{"channel":"book","type":"snapshot","data":[{{"symbol":"BTC/USD","bids":[{}],"checksum":1}}]}}"#,
        vec![r#"{"price":97000.1,"qty":0.5}"#; 120].join(",")
    );
    println!(
        "flight recorder memory per feed ({FEEDS} feeds, bounds {DEFAULT_MAX_ENTRIES} entries / {} KiB):",
        DEFAULT_MAX_BYTES >> 10
    );
    for (what, frame) in [("ticker frames", ticker.to_string()), ("book frames", book)] {
        let before = rss_kib();
        let recorders: Vec<_> = (0..FEEDS)
            .map(|i| {
                let r = Recorder::new(&format!("f{i}"), DEFAULT_MAX_ENTRIES, DEFAULT_MAX_BYTES);
                for _ in 0..(DEFAULT_MAX_ENTRIES * 2) {
                    r.text(Direction::In, &frame, std::time::SystemTime::now());
                }
                r
            })
            .collect();
        let after = rss_kib();
        let (entries, counted) = recorders[0].usage();
        println!(
            "  {what} of {} B: {entries} entries kept, {} KiB counted, {} KiB resident per feed",
            frame.len(),
            counted >> 10,
            (after.saturating_sub(before)) / FEEDS as u64
        );
        drop(recorders);
    }
}

fn latency() {
    let dir = TempDir::new("bench-alerts");
    let rx = Receiver::start();
    let hang = Receiver::with_default(Reply::Hang);
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sim = Simulator::start(SimConfig {
        tokens: vec![TOKEN.into()],
        data_every: Some(Duration::from_millis(100)),
        ..SimConfig::default()
    })
    .unwrap();
    let mut toml = agent_toml(dir.path(), "alert_after = \"100ms\"\nalert_repeat = \"1h\"");
    toml += &ws_feed_toml("f0", &sim.url(), "F0_TOKEN", "");
    toml += &format!(
        "\n[[alerts.webhook]]\nname = \"ops\"\nformat = \"json\"\nurl = \"{}\"\n\
         [[alerts.webhook]]\nname = \"hang\"\nformat = \"json\"\nurl = \"{}\"\n\
         [[alerts.webhook]]\nname = \"dead\"\nformat = \"json\"\nurl = \"http://127.0.0.1:{dead}/d\"\n",
        rx.url("/ops"),
        hang.url("/h")
    );
    let cfg = write_config(dir.path(), &toml);
    std::fs::write(dir.join("credentials.env"), format!("F0_TOKEN={TOKEN}\n")).unwrap();
    let mut agent = spawn_agent(dir.path(), &cfg, &[]);
    let count = |kind: &str| {
        rx.hits_on("/ops")
            .iter()
            .filter(|h| h.json()["alert"] == kind)
            .count()
    };
    let live = || feed_state(dir.path(), "f0").as_deref() == Some("live");
    assert!(
        wait_for(Duration::from_secs(20), live),
        "{}",
        stderr_of(dir.path())
    );

    let mut figures = Vec::new();
    for run in 0..RUNS {
        let downs = count("feed_down");
        let ups = count("feed_recovered");
        let failed_at = Instant::now();
        sim.set_fault(Fault::RefuseConnections);
        assert!(
            wait_for(Duration::from_secs(15), || count("feed_down") > downs),
            "run {run}: no feed_down\n{}",
            stderr_of(dir.path())
        );
        let hit = rx
            .hits_on("/ops")
            .into_iter()
            .filter(|h| h.json()["alert"] == "feed_down")
            .nth(downs)
            .unwrap();
        figures.push(ms_between(failed_at, hit.at));
        sim.clear_fault();
        assert!(
            wait_for(Duration::from_secs(30), || count("feed_recovered") > ups
                && live()),
            "run {run}: no recovery\n{}",
            stderr_of(dir.path())
        );
    }
    let _ = stop_agent(&mut agent);
    println!(
        "alert-to-webhook latency (feed failure -> feed_down at the receiver), {RUNS} runs, \
         alert_after = 100ms, watchdog tick 1s, a hanging and an unreachable webhook beside it:"
    );
    println!(
        "  median {:.0} ms, worst {:.0} ms (min {:.0} ms)",
        median(&figures),
        worst(&figures),
        figures.iter().copied().fold(f64::MAX, f64::min)
    );
    println!("  load average: {}", support::load_average());
}
