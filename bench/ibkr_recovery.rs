//! How long a mute TWS costs: `cargo bench --bench ibkr_recovery`.
//!
//! The real agent holds an IBKR feed (one AAPL contract) on the in-process
//! TWS simulator, which streams ticks every 100 ms. Then TWS stops
//! answering `reqCurrentTime` (ticks keep coming, so only the keepalive can
//! tell: the hardest case for detection). Measured from the moment the
//! fault is in force on the connection to
//! - `detect`: the feed's first non-live state event on the fan-out socket,
//! - `session`: the simulator's next API session ready (START_API answered),
//! - `live`: the feed's `live` state event on the fan-out socket,
//!
//! over several runs, once with the shipped defaults (ping_every 15s,
//! pong_timeout 10s: the bound is their sum) and once with short ones
//! (1s / 1s). The fault is cleared after each new session, and each run
//! starts at an unrelated phase of the keepalive schedule, after the feed
//! has been live for longer than `stable_after` (2s here), so each outage
//! meets a reset backoff, as one after a quiet day does: the first retry
//! is immediate.
//!
//! Each figure is one line `ibkr_recovery.NAME key=value ...` for pasting.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/mod.rs"]
mod support;

use brokerguard::sim::ibkr::{TwsFault, TwsSim, TwsSimConfig, TwsSimHandle};
use common::{Agent, TempDir, agent_toml, spawn_agent, stderr_of, stop_agent, write_config};
use std::time::{Duration, Instant};
use support::{EventClient, load_average, median, ms_between, worst};

const FEED: &str = "tws";

struct Bench {
    dir: TempDir,
    sim: TwsSimHandle,
    agent: Agent,
    bot: EventClient,
}

impl Bench {
    fn start(tag: &str, keys: &str) -> Bench {
        let dir = TempDir::new(tag);
        let sim = TwsSim::start(TwsSimConfig {
            tick_every: Duration::from_millis(100),
            ..TwsSimConfig::default()
        })
        .expect("start the TWS simulator");
        let body = format!(
            r#"{agent}
[[feed]]
name = "{FEED}"
broker = "ibkr"
port = {port}
calendar = "always"
contracts = [{{ symbol = "AAPL", sec_type = "STK", exchange = "SMART", currency = "USD" }}]
backoff = {{ stable_after = "{stable}" }}
{keys}
"#,
            agent = agent_toml(dir.path(), "preflight = \"off\""),
            port = sim.port(),
            stable = "2s",
        );
        let cfg = write_config(dir.path(), &body);
        let agent = spawn_agent(dir.path(), &cfg, &[]);
        let bot = EventClient::connect(&dir.join("run/feeds.sock"), Duration::from_secs(10));
        let b = Bench {
            dir,
            sim,
            agent,
            bot,
        };
        if !b
            .sim
            .wait_for(|s| s.sessions_ready >= 1, Duration::from_secs(15))
        {
            b.fail("no API session");
        }
        b.bot
            .wait_line(Instant::now(), Duration::from_secs(10), |v| {
                v["feed"] == FEED && v["seq"].is_u64()
            })
            .unwrap_or_else(|| b.fail("no data"));
        b
    }

    fn fail(&self, what: &str) -> ! {
        panic!("{what}; agent stderr:\n{}", stderr_of(self.dir.path()))
    }

    /// One run: TWS stops answering reqCurrentTime; returns (detect,
    /// session, live) in ms after the fault.
    fn mute_run(&self, limit: Duration) -> (f64, f64, f64) {
        let sessions = self.sim.stats().sessions_ready;
        // set_fault returns once the connection has seen the fault.
        self.sim.set_fault(TwsFault::NoCurrentTime);
        let fault_at = Instant::now();
        if !self.sim.wait_for(|s| s.sessions_ready > sessions, limit) {
            self.fail("no new session within the limit");
        }
        let session_at = Instant::now();
        self.sim.clear_fault();
        let down = self
            .bot
            .wait_state(FEED, fault_at, Duration::from_secs(5), |s| s != "live")
            .unwrap_or_else(|| self.fail("no state event"));
        let live = self
            .bot
            .wait_state(FEED, down.at, Duration::from_secs(10), |s| s == "live")
            .unwrap_or_else(|| self.fail("never live again"));
        (
            ms_between(fault_at, down.at),
            ms_between(fault_at, session_at),
            ms_between(fault_at, live.at),
        )
    }

    fn finish(mut self) {
        let code = stop_agent(&mut self.agent);
        if code != Some(0) {
            self.fail(&format!("agent exited with {code:?}"));
        }
        self.sim.stop();
    }
}

fn series(name: &str, keys: &str, bound: Duration, runs: usize, gaps: &[Duration]) {
    let b = Bench::start(name, keys);
    let (mut detect, mut session, mut live) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        // A different phase of the keepalive schedule each run.
        std::thread::sleep(gaps[i % gaps.len()]);
        let (d, s, l) = b.mute_run(bound + Duration::from_secs(10));
        eprintln!("  {name} run {i}: detect {d:.0} ms, session {s:.0} ms, live {l:.0} ms");
        detect.push(d);
        session.push(s);
        live.push(l);
    }
    b.finish();
    println!(
        "ibkr_recovery.{name} runs={runs} bound_ms={} detect_median_ms={:.0} detect_worst_ms={:.0} \
         session_median_ms={:.0} session_worst_ms={:.0} live_median_ms={:.0} live_worst_ms={:.0} load={}",
        bound.as_millis(),
        median(&detect),
        worst(&detect),
        median(&session),
        worst(&session),
        median(&live),
        worst(&live),
        load_average()
    );
}

fn main() {
    // `cargo bench` passes --bench; nothing else is accepted.
    if std::env::args().skip(1).any(|a| a != "--bench") {
        eprintln!("usage: cargo bench --bench ibkr_recovery");
        std::process::exit(64);
    }
    let ms = Duration::from_millis;
    series(
        "mute_defaults",
        "",
        Duration::from_secs(25),
        5,
        &[ms(3100), ms(7300), ms(2700), ms(11900), ms(5300)],
    );
    series(
        "mute_short",
        "ping_every = \"1s\"\npong_timeout = \"1s\"",
        Duration::from_secs(2),
        10,
        &[ms(2230), ms(2610), ms(2090), ms(2870), ms(2450)],
    );
}
