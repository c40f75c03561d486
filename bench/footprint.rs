//! The real agent's footprint and its single-instance lock:
//! `cargo bench --bench footprint`.
//!
//! (c) RSS and threads of `run` with 10 live websocket feeds (simulator data
//! every 100 ms on each, one bot reading the fan-out socket), after 10 s of
//! traffic; (d) idle RSS of `run` with no feeds; both from /proc/PID/status,
//! median of several agents. (e) The lock race: 50 copies started at once
//! against one runtime folder must leave exactly one running and 49 exits
//! with 75; then a SIGKILL of the survivor and a new start that must take
//! the lock over at once.
//!
//! Each figure is one line `footprint.NAME key=value ...` for pasting.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/mod.rs"]
mod support;

use brokerguard::sim::SimHandle;
use common::{
    BIN, TempDir, agent_toml, spawn_agent, status_json, stderr_of, stop_agent, write_config,
};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use support::{EventClient, ProcFigures, median, ms, proc_figures, token_sim};

const TOKEN: &str = "bench-token-91ab";
const FEEDS: usize = 10;
const TRAFFIC: Duration = Duration::from_secs(10);
const AGENT_RUNS: usize = 3;
const RACERS: usize = 50;
const RACE_ROUNDS: usize = 5;
const EX_TEMPFAIL: i32 = 75;

fn feeds_config(dir: &Path, sim: &SimHandle) -> String {
    let mut body = agent_toml(dir, "");
    for i in 0..FEEDS {
        body.push_str(&format!(
            r#"
[[feed]]
name = "f{i}"
broker = "websocket"
url = "{url}"
auth = '{{"type":"auth","token":"${{SIG_TOKEN}}"}}'
auth_ok = "auth_ok"
auth_error = "auth_failed"
subscribe = ['{{"type":"subscribe","channel":"signals"}}']
"#,
            url = sim.url()
        ));
    }
    body
}

fn wait_or_fail(dir: &Path, what: &str, deadline: Duration, cond: impl FnMut() -> bool) {
    if !common::wait_for(deadline, cond) {
        panic!("timed out waiting for {what}; stderr:\n{}", stderr_of(dir));
    }
}

fn stop(dir: &Path, mut agent: Child) {
    let code = stop_agent(&mut agent);
    assert_eq!(code, Some(0), "agent stop; stderr:\n{}", stderr_of(dir));
}

/// (c) One agent with 10 live feeds: its figures after the traffic period,
/// and the data lines the bot received during it.
fn ten_feeds() -> (ProcFigures, usize) {
    let dir = TempDir::new("bench-rss10");
    let sim = token_sim(dir.path(), TOKEN, Duration::from_millis(500));
    let cfg = write_config(dir.path(), &feeds_config(dir.path(), &sim));
    let agent = spawn_agent(dir.path(), &cfg, &[]);
    let bot = EventClient::connect(&dir.join("run/feeds.sock"), Duration::from_secs(10));
    wait_or_fail(dir.path(), "10 live feeds", Duration::from_secs(30), || {
        status_json(dir.path()).is_some_and(|d| {
            let feeds = d["feeds"].as_array().cloned().unwrap_or_default();
            feeds.len() == FEEDS && feeds.iter().all(|f| f["state"] == "live")
        })
    });
    bot.clear();
    std::thread::sleep(TRAFFIC);
    let figures = proc_figures(agent.id());
    let lines = bot.count(|v| v["seq"].is_u64());
    let expected = FEEDS * (TRAFFIC.as_millis() / 100) as usize;
    assert!(
        lines >= expected * 8 / 10,
        "only {lines} data lines in {TRAFFIC:?} (expected about {expected}); stderr:\n{}",
        stderr_of(dir.path())
    );
    stop(dir.path(), agent);
    sim.stop();
    (figures, lines)
}

/// (d) One agent with no feeds, a few seconds after it is ready.
fn idle() -> ProcFigures {
    let dir = TempDir::new("bench-idle");
    let cfg = write_config(dir.path(), &agent_toml(dir.path(), ""));
    let agent = spawn_agent(dir.path(), &cfg, &[]);
    wait_or_fail(dir.path(), "status.json", Duration::from_secs(10), || {
        status_json(dir.path()).is_some()
    });
    std::thread::sleep(Duration::from_secs(3));
    let figures = proc_figures(agent.id());
    stop(dir.path(), agent);
    figures
}

struct Race {
    survivors: usize,
    exit_codes: Vec<i32>,
    /// Losers whose error named the survivor's pid.
    named_survivor: usize,
    /// Spread of the 50 spawn() returns.
    spawn_spread: Duration,
    takeover: Duration,
}

/// (e) One lock race, then a SIGKILL takeover.
fn race(round: usize) -> Race {
    let dir = TempDir::new(&format!("bench-race{round}"));
    let cfg = write_config(dir.path(), &agent_toml(dir.path(), ""));
    let barrier = Arc::new(Barrier::new(RACERS));
    let threads: Vec<_> = (0..RACERS)
        .map(|i| {
            let barrier = barrier.clone();
            let cfg = cfg.clone();
            let log = std::fs::File::create(dir.join(&format!("racer{i}.log"))).unwrap();
            std::thread::spawn(move || {
                barrier.wait();
                let child = Command::new(BIN)
                    .arg("run")
                    .arg("--config")
                    .arg(&cfg)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .env_remove("NOTIFY_SOCKET")
                    .env_remove("JOURNAL_STREAM")
                    .env_remove("WATCHDOG_USEC")
                    .env_remove("RUST_LOG")
                    .spawn()
                    .expect("spawn racer");
                (child, Instant::now())
            })
        })
        .collect();
    let mut children: Vec<(usize, Child, Instant)> = threads
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let (c, at) = t.join().unwrap();
            (i, c, at)
        })
        .collect();
    let first = children.iter().map(|c| c.2).min().unwrap();
    let last = children.iter().map(|c| c.2).max().unwrap();

    let mut exit_codes = Vec::new();
    let mut running: Vec<(usize, Child)> = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    // Every loser must exit on its own; then the survivors are what is left.
    while !children.is_empty() {
        let mut still = Vec::new();
        for (i, mut c, at) in children {
            match c.try_wait().unwrap() {
                Some(st) => exit_codes.push(st.code().unwrap_or(-1)),
                None => still.push((i, c, at)),
            }
        }
        children = still;
        if children.len() <= 1 && exit_codes.len() + children.len() == RACERS {
            // Give a would-be second survivor no excuse: the one left must
            // be the one holding the lock (its pid in status.json).
            let ok = children.len() == 1 && {
                let pid = children[0].1.id() as u64;
                common::wait_for(Duration::from_secs(10), || {
                    status_json(dir.path()).is_some_and(|d| d["agent"]["pid"] == pid)
                })
            };
            if ok || children.is_empty() {
                running.extend(children.drain(..).map(|(i, c, _)| (i, c)));
                break;
            }
        }
        if Instant::now() > end {
            running.extend(children.drain(..).map(|(i, c, _)| (i, c)));
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let survivors = running.len();
    assert_eq!(
        survivors, 1,
        "round {round}: {survivors} copies still running; exit codes {exit_codes:?}"
    );
    let (_, mut winner) = running.pop().unwrap();
    let pid = winner.id();
    let named_survivor = (0..RACERS)
        .map(|i| std::fs::read_to_string(dir.join(&format!("racer{i}.log"))).unwrap_or_default())
        .filter(|log| log.contains(&format!("another brokerguard is running (pid {pid})")))
        .count();

    // SIGKILL leaves the pidfile behind with its lock free: a new start
    // must take it over at once.
    winner.kill().unwrap();
    winner.wait().unwrap();
    let started = Instant::now();
    let next = spawn_agent(dir.path(), &cfg, &[]);
    let next_pid = next.id() as u64;
    wait_or_fail(dir.path(), "the takeover", Duration::from_secs(10), || {
        status_json(dir.path()).is_some_and(|d| d["agent"]["pid"] == next_pid)
    });
    let takeover = started.elapsed();
    stop(dir.path(), next);
    Race {
        survivors,
        exit_codes,
        named_survivor,
        spawn_spread: last - first,
        takeover,
    }
}

fn main() {
    let size = std::fs::metadata(BIN).map(|m| m.len()).unwrap_or(0);
    println!(
        "footprint: {BIN} ({size} bytes; bench profile, system OpenSSL, not the static build)"
    );

    let mut rss = Vec::new();
    for i in 0..AGENT_RUNS {
        let (f, lines) = ten_feeds();
        println!(
            "  10 feeds run {i}: VmRSS={} kB VmHWM={} kB threads={} data_lines_in_10s={lines}",
            f.vm_rss_kib, f.vm_hwm_kib, f.threads
        );
        rss.push(f);
    }
    let med = |v: &[ProcFigures], f: fn(&ProcFigures) -> u64| {
        median(&v.iter().map(|p| f(p) as f64).collect::<Vec<_>>())
    };
    println!(
        "footprint.rss_10_live_feeds_kib median_vm_rss={:.0} median_vm_hwm={:.0} threads={:.0} runs={AGENT_RUNS} (after 10 s, data every 100 ms per feed)",
        med(&rss, |p| p.vm_rss_kib),
        med(&rss, |p| p.vm_hwm_kib),
        med(&rss, |p| p.threads)
    );

    let mut idle_runs = Vec::new();
    for i in 0..AGENT_RUNS {
        let f = idle();
        println!(
            "  idle run {i}: VmRSS={} kB VmHWM={} kB threads={}",
            f.vm_rss_kib, f.vm_hwm_kib, f.threads
        );
        idle_runs.push(f);
    }
    println!(
        "footprint.idle_rss_no_feeds_kib median_vm_rss={:.0} median_vm_hwm={:.0} threads={:.0} runs={AGENT_RUNS}",
        med(&idle_runs, |p| p.vm_rss_kib),
        med(&idle_runs, |p| p.vm_hwm_kib),
        med(&idle_runs, |p| p.threads)
    );

    let mut rounds = Vec::new();
    for round in 0..RACE_ROUNDS {
        let r = race(round);
        let exit75 = r.exit_codes.iter().filter(|c| **c == EX_TEMPFAIL).count();
        println!(
            "  race {round}: survivors={} exit75={exit75} other_exits={:?} errors_naming_survivor={} spawn_spread_ms={:.1} kill9_takeover_ms={:.1}",
            r.survivors,
            r.exit_codes
                .iter()
                .filter(|c| **c != EX_TEMPFAIL)
                .collect::<Vec<_>>(),
            r.named_survivor,
            ms(r.spawn_spread),
            ms(r.takeover)
        );
        rounds.push((r, exit75));
    }
    let all_ok = rounds
        .iter()
        .all(|(r, exit75)| r.survivors == 1 && *exit75 == RACERS - 1);
    println!(
        "footprint.lock_race starts={RACERS} rounds={RACE_ROUNDS} survivors={:?} exit75={:?} result={}",
        rounds.iter().map(|(r, _)| r.survivors).collect::<Vec<_>>(),
        rounds.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        if all_ok { "PASS" } else { "FAIL" }
    );
    println!(
        "footprint.kill9_takeover_ms median={:.1} worst={:.1} (SIGKILL of the survivor, then a new start until its pid is in status.json)",
        median(
            &rounds
                .iter()
                .map(|(r, _)| ms(r.takeover))
                .collect::<Vec<_>>()
        ),
        support::worst(
            &rounds
                .iter()
                .map(|(r, _)| ms(r.takeover))
                .collect::<Vec<_>>()
        )
    );
    assert!(all_ok, "the lock race failed");
}
