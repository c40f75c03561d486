//! The fan-out: `cargo bench --bench fanout` (`-- throughput latency`
//! picks parts).
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

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use brokerguard::fanout::Fanout;
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
    let fanout = Fanout::start(&path, LINES + 16).expect("start fan-out");
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
        "fan-out: ≥ 200 k msg/s to one subscriber".into(),
        format!(
            "{} / {} lines/s (median / slowest run)",
            fmt(one.0, 0),
            fmt(one.1, 0)
        ),
        "—".into(),
        format!("{} of 200 k", ratio(one.1, 200_000.0)),
        verdict(one.1 >= 200_000.0),
    ]);
    report.line("");
    report.save();
}

const LATENCY_RATE: u32 = 10_000;
const INPROC_LINES: usize = 100_000;

/// One in-process run: latencies (µs) from publish to read.
fn inproc_run(run: usize) -> Vec<f64> {
    let path = socket_path(run, 100 + run);
    let fanout = Fanout::start(&path, 4096).expect("start fan-out");
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
    if wanted("latency") {
        latency_inproc(&mut report);
        latency(&mut report);
    }
}
