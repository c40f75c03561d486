//! Fan-out publish throughput with 0, 1 and 10 subscribers reading as fast
//! as they can: `cargo bench --bench fanout`. Prints lines/s, the median of
//! several runs, for the publishing side (what a feed thread pays) and for
//! delivery (until every subscriber has read every line).

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use brokerguard::fanout::Fanout;

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

fn main() {
    println!(
        "fan-out: {LINES} lines of {} bytes per run, median of {RUNS} runs",
        MESSAGE.len()
    );
    for subscribers in [0, 1, 10] {
        let (publish, delivered): (Vec<f64>, Vec<f64>) =
            (0..RUNS).map(|i| run(i, subscribers)).unzip();
        if subscribers == 0 {
            println!(
                "{subscribers:>2} subscribers: publish {:>12.0} lines/s",
                median(publish)
            );
        } else {
            println!(
                "{subscribers:>2} subscribers: publish {:>12.0} lines/s, delivered to all {:>10.0} lines/s",
                median(publish),
                median(delivered)
            );
        }
    }
}
