//! The fan-out: `cargo bench --bench fanout` (`-- throughput idle flood
//! latency` picks parts; `inproc` or `e2e` one of the latency parts).
//!
//! (a) Throughput: publish with 0, 1 and 10 subscribers reading as fast as
//! they can, in process. Lines/s, the median of several runs, for the
//! publishing side (what a feed thread pays) and for delivery (until every
//! subscriber has read every line).
//!
//! (b) Latency at 10 k msg/s, in process: a thread publishes through the
//! agent's real fan-out, as a feed thread does once it has a frame, one
//! line every 100 µs, each carrying its publish time; a subscriber on the
//! Unix socket stamps each line as it reads it. That is the issue's "feed
//! thread receives a frame → a subscriber reads its line", without the
//! loopback hop before it.
//!
//! (d) Idle connections, in process: a bot reads a feed published at
//! 1 000 lines/s while 1 000 more connections open, subscribe to a feed
//! with no traffic and sit idle, then close: the process's threads, descriptors and RSS before, with them and
//! after, and whether the bot saw every line.
//!
//! (e) The subscribe flood, in process: a normal subscriber reads a feed
//! published at 1 000 lines/s; then 200 clients each send subscribe
//! requests for 10 000 made-up names (60 KB each) as fast as the fan-out
//! takes them. The CPU of the fan-out's threads and the publishing thread
//! (% of one core) and the normal subscriber's rate, before and during.
//!
//! (c) Latency at 10 k msg/s, end to end: the real agent holds one feed on the
//! simulator, which floods 10 000 data messages a second, each stamped
//! with the wall clock just before it is written (`SimConfig::stamp_sends`,
//! a hook of the simulator: the agent's path carries no benchmark code);
//! a bot reads the fan-out socket and stamps each line as it reads it.
//! Latency is read minus sent: the loopback TCP hop, the feed thread, the
//! fan-out queue and the Unix socket, so an upper bound of "frame
//! received to line read". The Python stack is measured the same way
//! (its stdout). p50/p99/max per run, median and worst of the runs.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use brokerguard::fanout::{Fanout, FanoutSettings};
use brokerguard::sim::{Fault, SimConfig, Simulator};
use support::programs::{self, Program, Setup};
use support::report::{Report, fmt, ratio, verdict};
use support::{load_average, percentile, worst};

const RUNS: usize = 5;
const LINES: usize = 100_000;
/// A typical small ticker message.
const MESSAGE: &str = r#"{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":97000.1,"bid_qty":0.5,"ask":97000.2,"ask_qty":1.25,"last":97000.1,"volume":1234.5}]}"#;

fn socket_path(run: usize, subscribers: usize) -> PathBuf {
    std::env::temp_dir().join(format!(
        "bg-fanout-bench-{}-{subscribers}-{run}.sock",
        std::process::id()
    ))
}

/// The fan-out with one configured feed besides "ticks" (the flood's
/// normal feed), `queue_lines` per subscriber, room for `max_subscribers`.
fn start_fanout(path: &Path, queue_lines: usize, max_subscribers: usize) -> Fanout {
    Fanout::start(
        path,
        FanoutSettings {
            feeds: vec!["ticks".into(), "other".into()],
            queue_lines,
            queue_bytes: 256 << 20,
            max_subscribers,
        },
    )
    .expect("start fan-out")
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

fn reader(path: &Path, lines: usize) -> thread::JoinHandle<()> {
    let stream = UnixStream::connect(path).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    thread::spawn(move || {
        let mut reader = BufReader::with_capacity(64 * 1024, stream);
        let mut line = Vec::with_capacity(512);
        for _ in 0..lines {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).expect("read");
            assert!(n > 0, "fan-out closed the connection early");
        }
    })
}

/// One run: (publish lines/s, delivered lines/s).
fn run(run: usize, subscribers: usize) -> (f64, f64) {
    let path = socket_path(run, subscribers);
    // A queue as long as the run, so the benchmark measures throughput and
    // not which reader the scheduler starved.
    let fanout = start_fanout(&path, LINES + 16, 64);
    let publisher = fanout.publisher();
    let readers: Vec<_> = (0..subscribers).map(|_| reader(&path, LINES)).collect();
    wait_until("subscribers", || fanout.stats().subscribers == subscribers);

    let start = Instant::now();
    let now = SystemTime::now();
    for _ in 0..LINES {
        publisher.data("ticks", MESSAGE, now);
    }
    let published = start.elapsed();
    for r in readers {
        r.join().expect("reader");
    }
    let delivered = start.elapsed();
    assert_eq!(fanout.stats().dropped_slow, 0);
    fanout.stop();
    let rate = |d: Duration| LINES as f64 / d.as_secs_f64();
    (rate(published), rate(delivered))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn throughput(report: &mut Report) {
    println!(
        "fan-out: {LINES} lines of {} bytes per run, median of {RUNS} runs",
        MESSAGE.len()
    );
    let mut rows = Vec::new();
    let mut one = (f64::NAN, f64::NAN);
    let mut ten = (f64::NAN, f64::NAN);
    for subscribers in [0, 1, 10] {
        let (publish, delivered): (Vec<f64>, Vec<f64>) =
            (0..RUNS).map(|i| run(i, subscribers)).unzip();
        let worst_delivered = delivered.iter().copied().fold(f64::MAX, f64::min);
        let (p, d) = (median(publish), median(delivered));
        if subscribers == 0 {
            println!("{subscribers:>2} subscribers: publish {p:>12.0} lines/s");
        } else {
            println!(
                "{subscribers:>2} subscribers: publish {p:>12.0} lines/s, delivered to all {d:>10.0} lines/s"
            );
        }
        if subscribers == 1 {
            one = (d, worst_delivered);
        }
        if subscribers == 10 {
            ten = (d, worst_delivered);
        }
        rows.push(vec![
            subscribers.to_string(),
            fmt(p, 0),
            if subscribers == 0 {
                "—".into()
            } else {
                format!("{} / {}", fmt(d, 0), fmt(worst_delivered, 0))
            },
        ]);
    }
    report.line(format!(
        "### Fan-out throughput\n\nIn process: {LINES} lines of {} bytes published as fast as a feed thread can, to subscribers reading as fast as they can; median of {RUNS} runs (delivered: median / slowest).\n",
        MESSAGE.len()
    ));
    report.table(
        &[
            "subscribers",
            "publish lines/s",
            "delivered to all, lines/s",
        ],
        &rows,
    );
    report.target([
        "fan-out: ≥ 1 M lines/s to one subscriber".into(),
        format!(
            "{} / {} lines/s (median / slowest run)",
            fmt(one.0, 0),
            fmt(one.1, 0)
        ),
        "—".into(),
        format!("{} of 1 M", ratio(one.0, 1_000_000.0)),
        verdict(one.0 >= 1_000_000.0),
    ]);
    report.target([
        "fan-out: ≥ 300 k lines/s to each of 10 subscribers".into(),
        format!(
            "{} / {} lines/s to each (median / slowest run)",
            fmt(ten.0, 0),
            fmt(ten.1, 0)
        ),
        "—".into(),
        format!("{} of 300 k", ratio(ten.0, 300_000.0)),
        verdict(ten.0 >= 300_000.0),
    ]);
    report.line("");
    report.save();
}

const LATENCY_RATE: u32 = 10_000;
const INPROC_LINES: usize = 100_000;

/// One in-process run: latencies (µs) from publish to read.
fn inproc_run(run: usize) -> Vec<f64> {
    let path = socket_path(run, 100 + run);
    let fanout = start_fanout(&path, 4096, 64);
    let publisher = fanout.publisher();
    let stream = UnixStream::connect(&path).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    wait_until("the subscriber", || fanout.stats().subscribers == 1);
    let base = Instant::now();
    let reader = thread::spawn(move || {
        let mut reader = BufReader::with_capacity(64 * 1024, stream);
        let mut line = Vec::with_capacity(512);
        let mut lat = Vec::with_capacity(INPROC_LINES);
        for _ in 0..INPROC_LINES {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).expect("read");
            assert!(n > 0, "fan-out closed the connection early");
            let read_ns = base.elapsed().as_nanos() as f64;
            let v: serde_json::Value = serde_json::from_slice(&line).expect("a JSON line");
            let sent_ns = v["data"]["sent_ns"].as_f64().expect("sent_ns");
            lat.push((read_ns - sent_ns) / 1000.0);
        }
        lat
    });
    let every = Duration::from_secs(1) / LATENCY_RATE;
    let now = SystemTime::now();
    for i in 0..INPROC_LINES {
        let due = base + every * i as u32;
        if let Some(left) = due.checked_duration_since(Instant::now()) {
            thread::sleep(left);
        }
        let sent_ns = base.elapsed().as_nanos();
        publisher.data(
            "ticks",
            &format!(r#"{{"channel":"ticker","n":{i},"sent_ns":{sent_ns}}}"#),
            now,
        );
    }
    let lat = reader.join().expect("reader");
    assert_eq!(fanout.stats().dropped_slow, 0);
    fanout.stop();
    lat
}

fn latency_inproc(report: &mut Report) {
    let runs: Vec<(f64, f64, f64)> = (0..LATENCY_RUNS)
        .map(|i| {
            let lat = inproc_run(i);
            let r = (percentile(&lat, 50.0), percentile(&lat, 99.0), worst(&lat));
            println!(
                "  in process run {i}: p50={:.0} us p99={:.0} us max={:.0} us lines={} load={}",
                r.0,
                r.1,
                r.2,
                lat.len(),
                load_average()
            );
            r
        })
        .collect();
    let col = |f: fn(&(f64, f64, f64)) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
    let (p50, p99, max) = (col(|r| r.0), col(|r| r.1), col(|r| r.2));
    report.line(format!(
        "### Fan-out latency at {LATENCY_RATE} msg/s, feed thread → subscriber\n\nIn process: one thread publishes through the agent's fan-out as a feed thread does once it has a frame, one line every 100 µs ({INPROC_LINES} per run), each with its publish time; one subscriber reads the Unix socket and stamps each line; {LATENCY_RUNS} runs; median / worst of the runs, µs.\n"
    ));
    report.table(
        &["p50 µs", "p99 µs", "max µs"],
        &[vec![
            format!("{} / {}", fmt(median(p50.clone()), 0), fmt(worst(&p50), 0)),
            format!("{} / {}", fmt(median(p99.clone()), 0), fmt(worst(&p99), 0)),
            format!("{} / {}", fmt(median(max.clone()), 0), fmt(worst(&max), 0)),
        ]],
    );
    report.target([
        format!("fan-out latency at {LATENCY_RATE} msg/s, feed thread → subscriber: p99 < 1 ms"),
        format!(
            "p99 {} / {} µs, p50 {} µs",
            fmt(median(p99.clone()), 0),
            fmt(worst(&p99), 0),
            fmt(median(p50), 0)
        ),
        "—".into(),
        format!("{} of 1 ms", ratio(median(p99.clone()), 1000.0)),
        verdict(worst(&p99) < 1000.0),
    ]);
    report.line("");
    report.save();
}
const LATENCY_RUNS: usize = 3;
const LATENCY_WARMUP: Duration = Duration::from_secs(3);
const LATENCY_WINDOW: Duration = Duration::from_secs(10);
const TOKEN: &str = "bench-token-lat1";

/// One latency run: (p50, p99, max) in µs, lines received per second, and
/// the program's CPU (ms per second).
struct LatencyRun {
    p50: f64,
    p99: f64,
    max: f64,
    rate: f64,
    cpu_ms_per_s: f64,
}

fn latency_run(program: &Program) -> LatencyRun {
    let dir = common::TempDir::new("bench-latency");
    let sim = Simulator::start(SimConfig {
        tokens: vec![TOKEN.into()],
        heartbeat_every: Some(Duration::from_secs(5)),
        fault: Some(Fault::Flood {
            per_sec: LATENCY_RATE,
        }),
        // The simulator writes what is due every millisecond: ten messages
        // a batch, not two hundred every 20 ms.
        tick: Some(Duration::from_millis(1)),
        stamp_sends: true,
        ..SimConfig::default()
    })
    .expect("start simulator");
    std::fs::write(dir.join("credentials.env"), format!("SIG_TOKEN={TOKEN}\n")).unwrap();
    let setup = Setup::new(sim.url(), 1);
    let running = program.start(dir.path(), &setup);
    assert!(
        running.wait_flowing(&setup.feeds, Duration::from_secs(20)),
        "{}: no data; stderr:\n{}",
        running.label,
        running.stderr()
    );
    thread::sleep(LATENCY_WARMUP);
    let _ = running.lines.take();
    let cpu0 = running.sample().cpu_ns;
    let from = Instant::now();
    thread::sleep(LATENCY_WINDOW);
    let cpu1 = running.sample().cpu_ns;
    let lines = running.lines.take();
    let window = from.elapsed();
    let label = running.label.clone();
    let codes = running.stop();
    sim.stop();
    assert!(
        codes.iter().all(|c| *c == Some(0)),
        "{label} did not exit 0: {codes:?}"
    );
    let lat: Vec<f64> = lines
        .iter()
        .filter_map(|l| {
            let sent = l.line["data"]["sent_ns"].as_u64()?;
            let read = l
                .wall
                .duration_since(SystemTime::UNIX_EPOCH)
                .ok()?
                .as_nanos() as f64;
            Some((read - sent as f64) / 1000.0)
        })
        .collect();
    LatencyRun {
        p50: percentile(&lat, 50.0),
        p99: percentile(&lat, 99.0),
        max: worst(&lat),
        rate: lat.len() as f64 / window.as_secs_f64(),
        cpu_ms_per_s: (cpu1.saturating_sub(cpu0)) as f64 / 1e6 / window.as_secs_f64(),
    }
}

fn latency(report: &mut Report) {
    let mut programs = vec![programs::agent_best()];
    programs.extend(programs::python());
    let mut rows = Vec::new();
    let mut agent_p99 = (f64::NAN, f64::NAN);
    let mut agent_p50 = f64::NAN;
    let mut medians = Vec::new();
    for p in &programs {
        let runs: Vec<LatencyRun> = (0..LATENCY_RUNS)
            .map(|i| {
                let r = latency_run(p);
                println!(
                    "  {} run {i}: p50={:.0} us p99={:.0} us max={:.0} us rate={:.0}/s cpu={:.1} ms/s load={}",
                    p.label(),
                    r.p50,
                    r.p99,
                    r.max,
                    r.rate,
                    r.cpu_ms_per_s,
                    load_average()
                );
                r
            })
            .collect();
        let col = |f: fn(&LatencyRun) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
        let (p50, p99, max, rate, cpu) = (
            col(|r| r.p50),
            col(|r| r.p99),
            col(|r| r.max),
            col(|r| r.rate),
            col(|r| r.cpu_ms_per_s),
        );
        if p.is_agent() {
            agent_p99 = (median(p99.clone()), worst(&p99));
            agent_p50 = median(p50.clone());
        }
        medians.push(median(p99.clone()));
        rows.push(vec![
            p.label(),
            format!("{} / {}", fmt(median(p50.clone()), 0), fmt(worst(&p50), 0)),
            format!("{} / {}", fmt(median(p99.clone()), 0), fmt(worst(&p99), 0)),
            format!("{} / {}", fmt(median(max.clone()), 0), fmt(worst(&max), 0)),
            fmt(median(rate), 0),
            fmt(median(cpu), 1),
        ]);
    }
    report.line(format!(
        "### Fan-out latency at {} msg/s, end to end\n\nOne feed flooded at {LATENCY_RATE} msg/s; simulator send (wall clock, just before the write) to the bot reading the line; {LATENCY_RUNS} runs of {} s after {} s of warm-up; median / worst of the runs, µs.\n",
        LATENCY_RATE,
        LATENCY_WINDOW.as_secs(),
        LATENCY_WARMUP.as_secs()
    ));
    report.table(
        &[
            "program",
            "p50 µs",
            "p99 µs",
            "max µs",
            "lines/s read",
            "CPU ms/s",
        ],
        &rows,
    );
    let py_p99 = medians.get(1).copied().unwrap_or(f64::NAN);
    report.target([
        format!("fan-out latency at {LATENCY_RATE} msg/s, simulator → agent → bot (no target; an upper bound)"),
        format!(
            "p99 {} / {} µs, p50 {} µs",
            fmt(agent_p99.0, 0),
            fmt(agent_p99.1, 0),
            fmt(agent_p50, 0)
        ),
        format!("Python p99 {} µs", fmt(py_p99, 0)),
        ratio(agent_p99.0, py_p99),
        "—".into(),
    ]);
    report.line("");
    report.save();
}

/// A thread publishing `feed` at `per_sec` lines/s until `stop`; returns
/// how many it published. Named, so its CPU can be told apart.
fn paced_publisher(
    fanout: &Fanout,
    feed: &'static str,
    per_sec: u32,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<u64> {
    let publisher = fanout.publisher();
    thread::Builder::new()
        .name("bench-publish".into())
        .spawn(move || {
            let every = Duration::from_secs(1) / per_sec;
            let base = Instant::now();
            let mut n: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                let due = base + every * n as u32;
                if let Some(left) = due.checked_duration_since(Instant::now()) {
                    thread::sleep(left);
                }
                publisher.data(feed, MESSAGE, SystemTime::now());
                n += 1;
            }
            n
        })
        .expect("spawn publisher")
}

/// A subscriber to `feed` counting the data lines it reads and checking
/// that their `seq`s have no gap; returns (lines, gaps) once the fan-out
/// closes the connection.
struct Bot {
    lines: Arc<AtomicU64>,
    thread: thread::JoinHandle<(u64, u64)>,
}

impl Bot {
    fn start(path: &Path, feed: &str) -> Bot {
        let stream = UnixStream::connect(path).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        (&stream)
            .write_all(format!("{{\"subscribe\":[\"{feed}\"]}}\n").as_bytes())
            .unwrap();
        let lines = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&lines);
        let thread = thread::Builder::new()
            .name("bench-bot".into())
            .spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                let (mut last, mut gaps) = (0u64, 0u64);
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(n) if n > 0 && line.ends_with('\n') => {}
                        _ => break,
                    }
                    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
                    if let Some(seq) = v["seq"].as_u64() {
                        if last != 0 && seq != last + 1 {
                            gaps += 1;
                        }
                        last = seq;
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                (counted.load(Ordering::Relaxed), gaps)
            })
            .expect("spawn the bot");
        Bot { lines, thread }
    }
}

/// This process's threads, descriptors and RSS (KiB).
fn own_figures() -> (u64, u64, u64) {
    let f = support::proc_figures(std::process::id());
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    (f.threads, fds, f.vm_rss_kib)
}

/// On-CPU nanoseconds of this process's threads whose name starts with
/// one of `prefixes`.
fn threads_cpu_ns(prefixes: &[&str]) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| prefixes.iter().any(|p| c.starts_with(p)))
        })
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

const IDLE_CONNECTIONS: usize = 1000;
const PACED_RATE: u32 = 1000;

fn idle(report: &mut Report) {
    let path = socket_path(0, 7000);
    let fanout = start_fanout(&path, 4096, IDLE_CONNECTIONS + 16);
    let stop = Arc::new(AtomicBool::new(false));
    let bot = Bot::start(&path, "ticks");
    wait_until("the bot", || fanout.stats().subscribers == 1);
    let publisher = paced_publisher(&fanout, "ticks", PACED_RATE, Arc::clone(&stop));
    wait_until("the bot's first line", || {
        bot.lines.load(Ordering::Relaxed) > 0
    });
    thread::sleep(Duration::from_secs(1));
    let before = own_figures();
    // Idle: subscribed to a feed with no traffic, never reading.
    let idle: Vec<UnixStream> = (0..IDLE_CONNECTIONS)
        .map(|_| {
            let s = UnixStream::connect(&path).expect("connect an idle client");
            (&s).write_all(b"{\"subscribe\":[\"other\"]}\n").unwrap();
            s
        })
        .collect();
    wait_until("the idle connections", || {
        fanout.stats().subscribers == IDLE_CONNECTIONS + 1
    });
    thread::sleep(Duration::from_secs(2));
    let with = own_figures();
    drop(idle);
    wait_until("the idle connections to go", || {
        fanout.stats().subscribers == 1
    });
    thread::sleep(Duration::from_secs(2));
    let after = own_figures();
    stop.store(true, Ordering::Relaxed);
    let published = publisher.join().expect("publisher");
    wait_until("the bot to read every line", || {
        bot.lines.load(Ordering::Relaxed) >= published
    });
    fanout.stop();
    let (read, gaps) = bot.thread.join().expect("bot");
    // The idle clients' own ends are in this process too: one descriptor each.
    let agent_fds = with.1.saturating_sub(IDLE_CONNECTIONS as u64);
    println!(
        "idle: threads {} -> {} -> {}, fds {} -> {} (+{IDLE_CONNECTIONS} client ends) -> {}, RSS {} -> {} -> {} KiB; bot read {read} of {published} lines, {gaps} gaps",
        before.0, with.0, after.0, before.1, agent_fds, after.1, before.2, with.2, after.2
    );
    report.line(format!(
        "### Fan-out: {IDLE_CONNECTIONS} idle connections\n\nIn process: a bot reads a feed published at {PACED_RATE} lines/s; {IDLE_CONNECTIONS} more connections open, subscribe to a feed with no traffic and stay idle (the fan-out allows {} subscribers here, so every one is accepted), then close. The process's figures before, with them, and 2 s after they closed (descriptors without the clients' own ends).\n",
        IDLE_CONNECTIONS + 16
    ));
    let mib = |k: u64| fmt(k as f64 / 1024.0, 1);
    report.table(
        &["", "threads", "descriptors", "RSS MiB"],
        &[
            vec![
                "before".into(),
                before.0.to_string(),
                before.1.to_string(),
                mib(before.2),
            ],
            vec![
                format!("with {IDLE_CONNECTIONS} idle"),
                with.0.to_string(),
                agent_fds.to_string(),
                mib(with.2),
            ],
            vec![
                "after they closed".into(),
                after.0.to_string(),
                after.1.to_string(),
                mib(after.2),
            ],
        ],
    );
    report.line(format!(
        "\nThe bot read {read} of {published} lines, {gaps} gaps in `seq`.\n"
    ));
    let grew_kib = with.2.saturating_sub(before.2);
    report.target([
        format!("fan-out: {IDLE_CONNECTIONS} idle connections add no thread and < 2 MiB RSS; the bot sees every line"),
        format!(
            "threads {} → {}, RSS +{} MiB (+{} MiB after they closed), bot {read}/{published} lines",
            before.0,
            with.0,
            mib(grew_kib),
            mib(after.2.saturating_sub(before.2))
        ),
        "—".into(),
        "—".into(),
        verdict(with.0 == before.0 && grew_kib < 2048 && read == published && gaps == 0),
    ]);
    report.line("");
    report.save();
}

const FLOOD_CLIENTS: usize = 200;
const FLOOD_NAMES: usize = 10_000;
const FLOOD_WINDOW: Duration = Duration::from_secs(5);

/// `{"subscribe":["aaa","aab",...]}`: 10 000 made-up three-letter names,
/// 60 KB.
fn flood_request() -> Vec<u8> {
    let letters = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = b"{\"subscribe\":[".to_vec();
    for i in 0..FLOOD_NAMES {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.push(letters[i / 36 / 36 % 36]);
        out.push(letters[i / 36 % 36]);
        out.push(letters[i % 36]);
        out.push(b'"');
    }
    out.extend_from_slice(b"]}\n");
    out
}

/// The fan-out's threads, before (accept, a writer and a reader per
/// subscriber) and after (one I/O thread), and the publishing thread. Not
/// a bare "fanout": unnamed threads carry the bench binary's name.
const FANOUT_THREADS: &[&str] = &[
    "fanout-io",
    "fanout-accept",
    "fanout-w",
    "fanout-r",
    "bench-publish",
];

/// One window: (normal subscriber lines/s, fan-out + publisher CPU % of a core).
fn flood_window(bot: &Bot) -> (f64, f64) {
    let lines0 = bot.lines.load(Ordering::Relaxed);
    let cpu0 = threads_cpu_ns(FANOUT_THREADS);
    let from = Instant::now();
    thread::sleep(FLOOD_WINDOW);
    let cpu1 = threads_cpu_ns(FANOUT_THREADS);
    let lines1 = bot.lines.load(Ordering::Relaxed);
    let secs = from.elapsed().as_secs_f64();
    (
        (lines1 - lines0) as f64 / secs,
        (cpu1.saturating_sub(cpu0)) as f64 / 1e9 / secs * 100.0,
    )
}

fn flood(report: &mut Report) {
    let path = socket_path(0, 8000);
    // Room for every flooding client, so the request limits are what is
    // measured, not the subscriber cap.
    let fanout = start_fanout(&path, 4096, FLOOD_CLIENTS + 16);
    let stop = Arc::new(AtomicBool::new(false));
    let bot = Bot::start(&path, "ticks");
    wait_until("the bot", || fanout.stats().subscribers == 1);
    let publisher = paced_publisher(&fanout, "ticks", PACED_RATE, Arc::clone(&stop));
    thread::sleep(Duration::from_secs(1));
    let quiet = flood_window(&bot);
    let request = Arc::new(flood_request());
    let sent = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..FLOOD_CLIENTS)
        .map(|_| {
            let (request, stop, sent) =
                (Arc::clone(&request), Arc::clone(&stop), Arc::clone(&sent));
            let stream = UnixStream::connect(&path).expect("connect a flooding client");
            thread::Builder::new()
                .name("bench-flood".into())
                .stack_size(64 * 1024)
                .spawn(move || {
                    stream
                        .set_write_timeout(Some(Duration::from_millis(200)))
                        .unwrap();
                    stream.set_nonblocking(false).unwrap();
                    let mut sink = [0u8; 16 * 1024];
                    while !stop.load(Ordering::Relaxed) {
                        match (&stream).write_all(&request) {
                            Ok(()) => {
                                sent.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e)
                                if e.kind() == std::io::ErrorKind::WouldBlock
                                    || e.kind() == std::io::ErrorKind::TimedOut => {}
                            Err(_) => break,
                        }
                        // Read (and drop) whatever answers are there, so the
                        // client is not dropped for falling behind.
                        stream.set_nonblocking(true).unwrap();
                        while let Ok(n) = (&stream).read(&mut sink) {
                            if n == 0 {
                                return;
                            }
                        }
                        stream.set_nonblocking(false).unwrap();
                    }
                })
                .expect("spawn a flooding client")
        })
        .collect();
    thread::sleep(Duration::from_secs(1));
    let flooded = flood_window(&bot);
    let requests = sent.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    let published = publisher.join().expect("publisher");
    wait_until("the bot to read every line", || {
        bot.lines.load(Ordering::Relaxed) >= published
    });
    let stats = fanout.stats();
    fanout.stop();
    let (read, gaps) = bot.thread.join().expect("bot");
    println!(
        "flood: quiet {:.0} lines/s at {:.1} % CPU; flooded {:.0} lines/s at {:.1} % CPU; {requests} requests written; bot read {read} of {published}, {gaps} gaps; {} dropped",
        quiet.0, quiet.1, flooded.0, flooded.1, stats.dropped_slow
    );
    report.line(format!(
        "### Fan-out: the subscribe flood\n\nIn process: a normal subscriber reads a feed published at {PACED_RATE} lines/s; then {FLOOD_CLIENTS} clients each write subscribe requests for {FLOOD_NAMES} made-up names ({} bytes each) in a loop, reading and discarding the answers. {}-second windows before and during the flood; CPU is that of the fan-out's threads and the publishing thread, % of one core ({requests} requests written in all).\n",
        request.len(),
        FLOOD_WINDOW.as_secs()
    ));
    report.table(
        &["", "normal subscriber lines/s", "fan-out CPU %"],
        &[
            vec!["quiet".into(), fmt(quiet.0, 0), fmt(quiet.1, 1)],
            vec!["flooded".into(), fmt(flooded.0, 0), fmt(flooded.1, 1)],
        ],
    );
    report.line(format!(
        "\nThe normal subscriber read {read} of {published} lines, {gaps} gaps in `seq`.\n"
    ));
    report.target([
        format!("fan-out under the {FLOOD_CLIENTS}-client subscribe flood: CPU < 10 %, the normal subscriber's rate unchanged"),
        format!(
            "CPU {} % (quiet {} %), {} lines/s (quiet {})",
            fmt(flooded.1, 1),
            fmt(quiet.1, 1),
            fmt(flooded.0, 0),
            fmt(quiet.0, 0)
        ),
        "—".into(),
        ratio(flooded.0, quiet.0),
        verdict(flooded.1 < 10.0 && flooded.0 >= quiet.0 * 0.97 && read == published),
    ]);
    report.line("");
    report.save();
}

fn main() {
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |part: &str| only.is_empty() || only.iter().any(|o| part.contains(o.as_str()));
    let mut report = Report::new("fanout");
    if wanted("throughput") {
        throughput(&mut report);
    }
    if wanted("idle") {
        idle(&mut report);
    }
    if wanted("flood") {
        flood(&mut report);
    }
    if wanted("latency-inproc") {
        latency_inproc(&mut report);
    }
    if wanted("latency-e2e") {
        latency(&mut report);
    }
}
