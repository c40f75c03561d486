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
