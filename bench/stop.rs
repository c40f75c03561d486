//! Stop latency, end to end: `cargo bench --bench stop`.
//!
//! The real binary runs with no feeds, then with ten live websocket feeds
//! against the in-process simulator, quiet ones (a heartbeat every 5 s, no
//! data), so each feed sits in a blocking read for its whole read tick: the
//! case a stop used to wait for. Twenty times each, a fresh agent
//! is started, the bench waits until every feed is live, sends SIGTERM and
//! times the exit (`waitpid`). Prints every run, then the median and worst.
//!
//! Checks on the way: every stop exits 0 with "stopped cleanly" in the log,
//! and with feeds, the simulator saw each connection closed by the client
//! with code 1000 (the graceful close was not skipped to go faster).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use brokerguard::sim::{SimConfig, Simulator};
use common::*;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::{load_average, median, ms, worst};

const RUNS: usize = 20;
const DEADLINE: Duration = Duration::from_secs(30);

/// One stop of a fresh agent with `feeds` live feeds; returns SIGTERM → exit.
fn one_stop(run: usize, feeds: usize) -> Duration {
    let dir = TempDir::new(&format!("stop-bench-{feeds}-{run}"));
    let (events_tx, events) = mpsc::channel();
    let sim = Simulator::start(SimConfig {
        tokens: vec!["stop-bench-token".into()],
        data_every: None,
        heartbeat_every: Some(Duration::from_secs(5)),
        events: Some(events_tx),
        ..SimConfig::default()
    })
    .expect("start the simulator");
    std::fs::write(dir.join("credentials.env"), "SIG_TOKEN=stop-bench-token\n").unwrap();
    let mut body = agent_toml(dir.path(), "preflight = \"off\"");
    for i in 0..feeds {
        body.push_str(&ws_feed_toml(&format!("f{i}"), &sim.url(), "SIG_TOKEN", ""));
    }
    let cfg = write_config(dir.path(), &body);
    let mut agent = spawn_agent(dir.path(), &cfg, &[]);
    let all_live = || {
        status_json(dir.path()).is_some_and(|d| {
            d["feeds"]
                .as_array()
                .is_some_and(|f| f.len() == feeds && f.iter().all(|f| f["state"] == "live"))
        })
    };
    assert!(
        wait_for(DEADLINE, all_live),
        "run {run}: the feeds never all went live:\n{}",
        stderr_of(dir.path())
    );

    let start = Instant::now();
    send_signal(&agent, libc::SIGTERM);
    let status = agent.wait().expect("wait for the agent");
    let took = start.elapsed();
    let log = stderr_of(dir.path());
    assert_eq!(status.code(), Some(0), "run {run}: {log}");
    assert!(log.contains("stopped cleanly"), "run {run}: {log}");
    sim.stop();
    let closed_1000 = events
        .try_iter()
        .filter(|e| e.ends_with("closed by client (Some(1000))"))
        .count();
    assert_eq!(
        closed_1000, feeds,
        "run {run}: {feeds} feeds but {closed_1000} connections closed by the agent with 1000:\n{log}"
    );
    took
}

fn series(feeds: usize) -> Vec<f64> {
    println!("{feeds} live feeds:");
    let mut figures = Vec::with_capacity(RUNS);
    for run in 1..=RUNS {
        let took = ms(one_stop(run, feeds));
        println!("  run {run:>2}: SIGTERM -> exit {took:>7.1} ms");
        figures.push(took);
    }
    figures
}

fn main() {
    let none = series(0);
    let ten = series(10);
    println!();
    println!(
        "SIGTERM -> exit (waitpid), {RUNS} fresh agents each, load average {}:",
        load_average()
    );
    for (label, v) in [("no feeds      ", none), ("10 live feeds ", ten)] {
        println!(
            "  {label}: median {:.1} ms, worst {:.1} ms",
            median(&v),
            worst(&v)
        );
    }
    println!(
        "  (every feed closed with 1000 first; every thread joined: exit 0, \"stopped cleanly\")"
    );
    println!("  command: cargo bench --bench stop");
}
