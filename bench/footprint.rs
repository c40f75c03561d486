//! The real agent's footprint beside the stack it replaces, its scale
//! line, and its single-instance lock: `cargo bench --bench footprint`
//! (bench/run.sh runs it with every baseline; `-- ten scale idle race`
//! picks parts).
//!
//! (a) Ten generic WebSocket feeds at 1 msg/s each (a heartbeat every 5 s
//! when idle) against the in-process simulator, read by a bot: the agent
//! (the static release binary and the bench build) through its fan-out
//! socket, the Python stack (`bench/baseline.py`: asyncio + websockets)
//! and websocat (one process per feed) through their stdout. For each, a
//! fresh simulator and program per run, runs interleaved, and after the
//! feeds flow: CPU over a window (every thread's on-CPU time, ns), then
//! VmRSS, PSS, anonymous pages, the working set (pages referenced during
//! the window, after `clear_refs`), threads, descriptors.
//! (b) Scale: the agent at 1, 10, 100 and 500 feeds (same rate), with
//! the unit's TasksMax and LimitNOFILE beside the threads and descriptors.
//! (c) Idle RSS with no feeds. (d) The lock race: 50 copies started at once
//! against one runtime folder must leave exactly one running and 49 exits
//! with 75; then a SIGKILL of the survivor and a new start that must take
//! the lock over at once.
//!
//! Each figure is printed; the tables also go to bench/RESULTS.md.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/mod.rs"]
mod support;

use brokerguard::sim::{SimConfig, Simulator};
use common::{
    BIN, TempDir, agent_toml, spawn_agent, status_json, stderr_of, stop_agent, write_config,
};
use std::path::Path;
use std::process::Child;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use support::proc::{self as sysproc, Sample};
use support::programs::{self, Program, Setup};
use support::report::{Report, fmt, ratio, verdict};
use support::{ProcFigures, load_average, median, ms, proc_figures, worst};

const TOKEN: &str = "bench-token-91ab";
const FEEDS: usize = 10;
const RUNS: usize = 3;
/// Settling time after every feed delivered data, then the CPU window.
const SETTLE: Duration = Duration::from_secs(5);
const WINDOW: Duration = Duration::from_secs(30);
const SCALE: [usize; 4] = [1, 10, 100, 500];
const AGENT_RUNS: usize = 3;
const RACERS: usize = 50;
const RACE_ROUNDS: usize = 5;
const EX_TEMPFAIL: i32 = 75;
const MIB: f64 = 1024.0;

fn wait_or_fail(dir: &Path, what: &str, deadline: Duration, cond: impl FnMut() -> bool) {
    if !common::wait_for(deadline, cond) {
        panic!("timed out waiting for {what}; stderr:\n{}", stderr_of(dir));
    }
}

fn stop(dir: &Path, mut agent: common::Agent) {
    let code = stop_agent(&mut agent);
    assert_eq!(code, Some(0), "agent stop; stderr:\n{}", stderr_of(dir));
}

/// One measured run of `program` with `feeds` feeds.
struct Run {
    sample: Sample,
    cpu_ms_per_min: f64,
    lines_per_s: f64,
    /// Resident pages by kind (kind, KiB, referenced KiB), and wake-ups per
    /// second by thread (name, per second, threads), for the first process.
    pages: Vec<(String, u64, u64)>,
    wakeups: Vec<(String, f64, u64)>,
}

/// Starts a simulator and `program` with `feeds` feeds, waits until every
/// feed delivers data, measures over the window, stops it (which must be a
/// clean exit for the agent and Python) and returns the figures.
fn measure(program: &Program, feeds: usize, sim_tick: Option<Duration>) -> Run {
    let dir = TempDir::new("bench-footprint");
    let sim = Simulator::start(SimConfig {
        tokens: vec![TOKEN.into()],
        data_every: Some(Duration::from_secs(1)),
        heartbeat_every: Some(Duration::from_secs(5)),
        tick: sim_tick,
        ..SimConfig::default()
    })
    .expect("start simulator");
    std::fs::write(dir.join("credentials.env"), format!("SIG_TOKEN={TOKEN}\n")).unwrap();
    let setup = Setup::new(sim.url(), feeds);
    let running = program.start(dir.path(), &setup);
    let deadline = Duration::from_secs(30 + feeds as u64 / 5);
    if !running.wait_flowing(&setup.feeds, deadline) {
        panic!(
            "{}: not every one of {feeds} feeds delivered data within {deadline:?}; stderr:\n{}",
            running.label,
            running.stderr()
        );
    }
    std::thread::sleep(SETTLE);
    let before = running.sample();
    let switches0 = sysproc::switches_by_thread(running.pids[0]);
    sysproc::clear_refs(&running.pids);
    let from = Instant::now();
    std::thread::sleep(WINDOW);
    let after = running.sample();
    let window = from.elapsed();
    let pages = sysproc::page_classes(running.pids[0]);
    let wakeups = sysproc::switches_by_thread(running.pids[0])
        .into_iter()
        .map(|(name, (n, threads))| {
            let n0 = switches0.get(&name).map_or(0, |e| e.0);
            (
                name,
                n.saturating_sub(n0) as f64 / window.as_secs_f64(),
                threads,
            )
        })
        .collect();
    let lines = running
        .lines
        .snapshot()
        .iter()
        .filter(|l| l.at >= from && l.line["seq"].is_u64())
        .count();
    let label = running.label.clone();
    let log = running.stderr();
    let codes = running.stop();
    if !matches!(program, Program::Websocat { .. }) {
        assert!(
            codes.iter().all(|c| *c == Some(0)),
            "{label} did not exit 0 on SIGTERM: {codes:?}; stderr:\n{log}"
        );
    }
    sim.stop();
    Run {
        sample: after,
        cpu_ms_per_min: after.cpu_ns.saturating_sub(before.cpu_ns) as f64 / 1e6 * 60.0
            / window.as_secs_f64(),
        lines_per_s: lines as f64 / window.as_secs_f64(),
        pages,
        wakeups,
    }
}

/// Median and worst of one figure of `runs`, as "median / worst".
fn mw(runs: &[Run], f: impl Fn(&Run) -> f64, digits: usize) -> String {
    let v: Vec<f64> = runs.iter().map(f).collect();
    format!("{} / {}", fmt(median(&v), digits), fmt(worst(&v), digits))
}

fn med(runs: &[Run], f: impl Fn(&Run) -> f64) -> f64 {
    median(&runs.iter().map(f).collect::<Vec<_>>())
}

/// (a) The side-by-side table.
fn ten_feeds(report: &mut Report) {
    let mut programs: Vec<Program> = Vec::new();
    programs.extend(programs::agent_static());
    programs.push(programs::agent_bench());
    let python = programs::python();
    let websocat = programs::websocat();
    programs.extend(python.clone());
    programs.extend(websocat.clone());
    let mut runs: Vec<Vec<Run>> = programs.iter().map(|_| Vec::new()).collect();
    for r in 0..RUNS {
        for (i, p) in programs.iter().enumerate() {
            let run = measure(p, FEEDS, None);
            println!(
                "  run {r} {}: VmRSS={} kB PSS={} kB anon={} kB referenced={} kB threads={} fds={} cpu={:.1} ms/min lines/s={:.1} load={}",
                p.label(),
                run.sample.rss_kib,
                run.sample.pss_kib,
                run.sample.anon_kib,
                run.sample.referenced_kib,
                run.sample.threads,
                run.sample.fds,
                run.cpu_ms_per_min,
                run.lines_per_s,
                load_average()
            );
            runs[i].push(run);
        }
    }
    report.line(format!(
        "### 10 feeds at 1 msg/s, side by side\n\n{FEEDS} generic WebSocket feeds against the in-process simulator (data every 1 s, a heartbeat after 5 s idle), read by a bot; {RUNS} fresh runs each, interleaved; CPU over {} s after the feeds flow, then memory. Median / worst.\n",
        WINDOW.as_secs()
    ));
    let rows: Vec<Vec<String>> = programs
        .iter()
        .zip(&runs)
        .map(|(p, r)| {
            vec![
                p.label(),
                mw(r, |x| x.sample.rss_kib as f64 / MIB, 2),
                mw(r, |x| x.sample.pss_kib as f64 / MIB, 2),
                mw(r, |x| x.sample.anon_kib as f64 / MIB, 2),
                mw(r, |x| x.sample.referenced_kib as f64 / MIB, 2),
                mw(r, |x| x.cpu_ms_per_min, 1),
                fmt(med(r, |x| x.sample.threads as f64), 0),
                fmt(med(r, |x| x.sample.fds as f64), 0),
                fmt(med(r, |x| x.lines_per_s), 1),
            ]
        })
        .collect();
    report.table(
        &[
            "program",
            "RSS MiB",
            "PSS MiB",
            "anonymous MiB",
            "working set MiB",
            "CPU ms/min",
            "threads",
            "FDs",
            "data lines/s",
        ],
        &rows,
    );
    let agent = &runs[0];
    let agent_label = programs[0].label();
    let rss = med(agent, |x| x.sample.rss_kib as f64);
    let worst_rss = worst(
        &agent
            .iter()
            .map(|x| x.sample.rss_kib as f64)
            .collect::<Vec<_>>(),
    );
    let cpu = med(agent, |x| x.cpu_ms_per_min);
    let mut targets: Vec<[String; 5]> = Vec::new();
    let py = programs
        .iter()
        .position(|p| matches!(p, Program::Python { .. }))
        .map(|i| &runs[i]);
    let py_rss = py.map_or(f64::NAN, |r| med(r, |x| x.sample.rss_kib as f64));
    let py_cpu = py.map_or(f64::NAN, |r| med(r, |x| x.cpu_ms_per_min));
    targets.push([
        "10 feeds: RSS ≤ 5 MiB".into(),
        format!(
            "{} / {} MiB ({agent_label})",
            fmt(rss / MIB, 2),
            fmt(worst_rss / MIB, 2)
        ),
        format!("Python {} MiB", fmt(py_rss / MIB, 2)),
        format!("{} of 5 MiB", ratio(worst_rss, 5.0 * MIB)),
        verdict(worst_rss <= 5.0 * MIB),
    ]);
    targets.push([
        "10 feeds: RSS ≥ 5× below Python".into(),
        format!("{} / {} MiB", fmt(rss / MIB, 2), fmt(worst_rss / MIB, 2)),
        format!("Python {} MiB", fmt(py_rss / MIB, 2)),
        format!("{} below", ratio(py_rss, rss)),
        if py.is_some() {
            verdict(py_rss >= 5.0 * worst_rss)
        } else {
            "not run".into()
        },
    ]);
    let worst_cpu = worst(&agent.iter().map(|x| x.cpu_ms_per_min).collect::<Vec<_>>());
    targets.push([
        "10 feeds: CPU no higher than Python".into(),
        format!("{} / {} ms/min", fmt(cpu, 1), fmt(worst_cpu, 1)),
        format!("Python {} ms/min", fmt(py_cpu, 1)),
        ratio(cpu, py_cpu),
        if py.is_some() {
            verdict(worst_cpu <= py_cpu)
        } else {
            "not run".into()
        },
    ]);
    if let Some(i) = programs
        .iter()
        .position(|p| matches!(p, Program::Websocat { .. }))
    {
        let ws_pss = med(&runs[i], |x| x.sample.pss_kib as f64);
        let ws_rss = med(&runs[i], |x| x.sample.rss_kib as f64);
        let ws_cpu = med(&runs[i], |x| x.cpu_ms_per_min);
        targets.push([
            "10 feeds beside websocat (no target)".into(),
            format!("RSS {} MiB, CPU {} ms/min", fmt(rss / MIB, 2), fmt(cpu, 1)),
            format!(
                "websocat ×10: RSS {} MiB (PSS {}), CPU {} ms/min",
                fmt(ws_rss / MIB, 2),
                fmt(ws_pss / MIB, 2),
                fmt(ws_cpu, 1)
            ),
            format!(
                "{} below its PSS, CPU {}",
                ratio(ws_pss, rss),
                ratio(cpu, ws_cpu)
            ),
            "—".into(),
        ]);
    } else {
        report.line(format!(
            "websocat not run: {}.\n",
            std::env::var("BROKERGUARD_WEBSOCAT_NOTE")
                .unwrap_or_else(|_| "BROKERGUARD_WEBSOCAT is not set".into())
        ));
    }
    if py.is_none() {
        report.line(
            "Python baseline not run: set BROKERGUARD_BASELINE_PYTHON (bench/run.sh does).\n",
        );
    }
    for t in targets {
        report.target(t);
    }
    report.line("");
    // Where the agent's pages and wake-ups go, from its first run.
    let first = &runs[0][0];
    let total: u64 = first.pages.iter().map(|p| p.1).sum();
    report.line(format!(
        "#### Where the pages go ({agent_label}, run 0, /proc/PID/smaps)\n\nResident KiB by mapping, and how much of it was referenced during the {} s window (the steady-state working set; the rest was touched at start-up, or mapped by the kernel's fault-around, 64 KiB around each page faulted in).\n",
        WINDOW.as_secs()
    ));
    let mut rows: Vec<Vec<String>> = first
        .pages
        .iter()
        .map(|(k, rss, referenced)| vec![k.clone(), rss.to_string(), referenced.to_string()])
        .collect();
    rows.push(vec![
        "total".into(),
        total.to_string(),
        first.pages.iter().map(|p| p.2).sum::<u64>().to_string(),
    ]);
    report.table(
        &["mapping", "resident KiB", "referenced in the window KiB"],
        &rows,
    );
    report.line(format!(
        "#### Where the wake-ups go ({agent_label}, run 0)\n\nVoluntary context switches per second by thread over the window (each one a wake-up after a sleep); 10 feeds at 1 msg/s and one bot make 10 messages/s.\n"
    ));
    let mut rows: Vec<Vec<String>> = first
        .wakeups
        .iter()
        .map(|(name, per_s, threads)| vec![name.clone(), threads.to_string(), fmt(*per_s, 2)])
        .collect();
    rows.push(vec![
        "total".into(),
        first.wakeups.iter().map(|w| w.2).sum::<u64>().to_string(),
        fmt(first.wakeups.iter().map(|w| w.1).sum::<f64>(), 2),
    ]);
    report.table(&["thread", "threads", "wake-ups/s"], &rows);
    report.save();
}

/// (b) The scale line.
fn scale(report: &mut Report) {
    let program = programs::agent_best();
    // The simulator's connection threads look at their faults every 250 ms
    // instead of 20: at 500 connections its own wake-ups would otherwise
    // take the CPU the agent is measured on.
    let tick = Some(Duration::from_millis(250));
    let mut rows = Vec::new();
    let mut figures: Vec<(usize, Run)> = Vec::new();
    for n in SCALE {
        let run = measure(&program, n, tick);
        println!(
            "  scale {n:>3} feeds: VmRSS={} kB threads={} fds={} cpu={:.1} ms/min lines/s={:.1} load={}",
            run.sample.rss_kib,
            run.sample.threads,
            run.sample.fds,
            run.cpu_ms_per_min,
            run.lines_per_s,
            load_average()
        );
        figures.push((n, run));
    }
    let tasks_max = sysproc::unit_setting("TasksMax").unwrap_or_else(|| "unset".into());
    let nofile = sysproc::unit_setting("LimitNOFILE").unwrap_or_else(|| "unset".into());
    let (n0, r0) = (&figures[0].0, &figures[0].1);
    for (n, r) in &figures {
        let per_feed = if *n > *n0 {
            (r.sample.rss_kib as f64 - r0.sample.rss_kib as f64) / (*n - *n0) as f64
        } else {
            f64::NAN
        };
        rows.push(vec![
            n.to_string(),
            fmt(r.sample.rss_kib as f64 / MIB, 2),
            fmt(per_feed, 1),
            fmt(r.cpu_ms_per_min, 1),
            fmt(r.cpu_ms_per_min / *n as f64, 2),
            r.sample.threads.to_string(),
            r.sample.fds.to_string(),
            fmt(r.lines_per_s, 1),
        ]);
    }
    report.line(format!(
        "### Scale\n\n{} against the in-process simulator, every feed at 1 msg/s; one run per size, CPU over {} s. The unit allows TasksMax={tasks_max}, LimitNOFILE={nofile}; every feed delivered data at every size (a limit hit would have failed the run).\n",
        program.label(),
        WINDOW.as_secs()
    ));
    report.table(
        &[
            "feeds",
            "RSS MiB",
            "KiB per extra feed",
            "CPU ms/min",
            "CPU ms/min per feed",
            "threads",
            "FDs",
            "data lines/s",
        ],
        &rows,
    );
    if let Some((_, r)) = figures.iter().find(|(n, _)| *n == 100) {
        let rss100 = r.sample.rss_kib as f64;
        report.target([
            "100 feeds: RSS ≤ 16 MiB".into(),
            format!("{} MiB", fmt(rss100 / MIB, 2)),
            "—".into(),
            format!("{} of 16 MiB", ratio(rss100, 16.0 * MIB)),
            verdict(rss100 <= 16.0 * MIB),
        ]);
    }
    if let (Some((_, small)), Some((_, big))) = (
        figures.iter().find(|(n, _)| *n == 10),
        figures.iter().find(|(n, _)| *n == 500),
    ) {
        let per_feed = (big.sample.rss_kib as f64 - small.sample.rss_kib as f64) / 490.0;
        let tasks: u64 = tasks_max.parse().unwrap_or(u64::MAX);
        let files: u64 = nofile.parse().unwrap_or(u64::MAX);
        report.target([
            "scale to 500 feeds: linear, no limit hit".into(),
            format!(
                "{} KiB and {} ms/min CPU per extra feed; {} threads, {} FDs at 500",
                fmt(per_feed, 1),
                fmt((big.cpu_ms_per_min - small.cpu_ms_per_min) / 490.0, 2),
                big.sample.threads,
                big.sample.fds
            ),
            format!("unit: TasksMax={tasks_max}, LimitNOFILE={nofile}"),
            format!(
                "{} of TasksMax, {} of LimitNOFILE",
                ratio(big.sample.threads as f64, tasks as f64),
                ratio(big.sample.fds as f64, files as f64)
            ),
            verdict(big.sample.threads < tasks && big.sample.fds < files),
        ]);
    }
    report.line("");
    report.save();
}

/// (c) One agent with no feeds, a few seconds after it is ready.
fn idle(bin: &Path) -> ProcFigures {
    let dir = TempDir::new("bench-idle");
    let cfg = write_config(dir.path(), &agent_toml(dir.path(), ""));
    let agent = common::spawn_agent_bin(bin, dir.path(), &cfg, &[]);
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

/// (d) One lock race, then a SIGKILL takeover.
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
                let child = common::agent_command(Path::new(BIN), &cfg)
                    .stderr(log)
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
    // The 500-feed run needs more descriptors than a default soft limit.
    brokerguard::daemon::process::tune();
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |part: &str| only.is_empty() || only.iter().any(|o| part.contains(o.as_str()));
    let mut report = Report::new("footprint");
    println!("footprint: load average {}", load_average());
    if wanted("ten") {
        ten_feeds(&mut report);
    }
    if wanted("scale") {
        scale(&mut report);
    }
    if wanted("idle") {
        let program = programs::agent_best();
        let Program::Agent { bin, .. } = &program else {
            unreachable!("agent_best is an agent")
        };
        let mut idle_runs = Vec::new();
        for i in 0..AGENT_RUNS {
            let f = idle(bin);
            println!(
                "  idle run {i}: VmRSS={} kB VmHWM={} kB threads={}",
                f.vm_rss_kib, f.vm_hwm_kib, f.threads
            );
            idle_runs.push(f);
        }
        let rss: Vec<f64> = idle_runs.iter().map(|p| p.vm_rss_kib as f64).collect();
        report.line(format!(
            "Idle, no feeds ({}): RSS median {} / worst {} MiB, {} threads.\n",
            program.label(),
            fmt(median(&rss) / MIB, 2),
            fmt(worst(&rss) / MIB, 2),
            idle_runs[0].threads
        ));
        report.save();
    }
    if wanted("race") {
        race_all();
    }
}

fn race_all() {
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
    let takeovers: Vec<f64> = rounds.iter().map(|(r, _)| ms(r.takeover)).collect();
    println!(
        "footprint.kill9_takeover_ms median={:.1} worst={:.1} (SIGKILL of the survivor, then a new start until its pid is in status.json)",
        median(&takeovers),
        worst(&takeovers)
    );
    assert!(all_ok, "the lock race failed");
}
