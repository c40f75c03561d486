//! Helpers the benchmarks share beyond tests/common: a fan-out subscriber
//! that stamps every line with the instant it arrived (so latencies are
//! measured from the agent's own state events, not from polling a file),
//! `/proc/PID/status` figures, and medians. `proc` samples memory and CPU
//! of any process, `programs` starts the agent and the baselines the same
//! way against one simulator, and `report` writes the figures that
//! `bench/run.sh` gathers into bench/RESULTS.md.
#![allow(dead_code)]

pub mod proc;
pub mod programs;
pub mod report;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A line received from the fan-out socket and when it arrived.
#[derive(Clone, Debug)]
pub struct Stamped {
    pub at: Instant,
    /// The same instant on the wall clock, to compare with a time another
    /// thread stamped (the simulator's `sent_ns`).
    pub wall: std::time::SystemTime,
    pub line: serde_json::Value,
}

#[derive(Default)]
struct Received {
    lines: Vec<Stamped>,
    closed: bool,
}

/// A fan-out subscriber reading in a background thread; waiters are woken
/// on every line, so the stamp-to-waiter delay is a thread wake-up.
pub struct EventClient {
    received: Arc<(Mutex<Received>, Condvar)>,
    stream: UnixStream,
}

impl EventClient {
    /// Reads lines from any byte stream (a baseline's stdout): each line
    /// is handed to `map`, which returns the JSON to keep (or nothing), so
    /// every program's output is read and stamped the same way.
    pub fn from_readers(
        readers: Vec<Box<dyn Read + Send>>,
        map: fn(usize, serde_json::Value) -> Option<serde_json::Value>,
    ) -> EventClient {
        let received: Arc<(Mutex<Received>, Condvar)> = Arc::default();
        let open = Arc::new(std::sync::atomic::AtomicUsize::new(readers.len()));
        for (i, reader) in readers.into_iter().enumerate() {
            let sink = received.clone();
            let open = open.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(reader);
                let mut text = String::new();
                loop {
                    text.clear();
                    let n = r.read_line(&mut text);
                    let at = Instant::now();
                    let wall = std::time::SystemTime::now();
                    let (lock, cond) = &*sink;
                    match n {
                        Ok(0) | Err(_) => {
                            if open.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
                                lock.lock().unwrap().closed = true;
                                cond.notify_all();
                            }
                            return;
                        }
                        Ok(_) => {
                            let Some(line) =
                                serde_json::from_str(&text).ok().and_then(|v| map(i, v))
                            else {
                                continue;
                            };
                            lock.lock().unwrap().lines.push(Stamped { at, wall, line });
                            cond.notify_all();
                        }
                    }
                }
            });
        }
        let (stream, _) = UnixStream::pair().expect("socket pair");
        EventClient { received, stream }
    }

    /// Connects, retrying until the agent has created the socket.
    pub fn connect(socket: &Path, deadline: Duration) -> EventClient {
        let end = Instant::now() + deadline;
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(e) => {
                    // The agent's own words say why (tests/common's
                    // spawn_agent_bin writes them beside `run/`).
                    let stderr = socket
                        .parent()
                        .and_then(Path::parent)
                        .map(|d| std::fs::read_to_string(d.join("stderr.log")).unwrap_or_default())
                        .unwrap_or_default();
                    assert!(
                        Instant::now() < end,
                        "fan-out socket {} never accepted: {e}; the agent's stderr:\n{stderr}",
                        socket.display()
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        };
        let reader = stream.try_clone().expect("clone fan-out stream");
        let mut client = EventClient::from_readers(vec![Box::new(reader)], |_, v| Some(v));
        client.stream = stream;
        client
    }

    /// The first line received at or after `after` that satisfies `pred`,
    /// waiting at most `deadline`.
    pub fn wait_line(
        &self,
        after: Instant,
        deadline: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<Stamped> {
        let end = Instant::now() + deadline;
        let (lock, cond) = &*self.received;
        let mut got = lock.lock().unwrap();
        let mut checked = 0;
        loop {
            if let Some(s) = got.lines[checked..]
                .iter()
                .find(|s| s.at >= after && pred(&s.line))
            {
                return Some(s.clone());
            }
            checked = got.lines.len();
            if got.closed {
                return None;
            }
            let left = end.checked_duration_since(Instant::now())?;
            got = cond.wait_timeout(got, left).unwrap().0;
        }
    }

    /// The first `state` event of `feed` after `after` whose state `want` accepts.
    pub fn wait_state(
        &self,
        feed: &str,
        after: Instant,
        deadline: Duration,
        want: impl Fn(&str) -> bool,
    ) -> Option<Stamped> {
        self.wait_line(after, deadline, |v| {
            v["feed"] == feed && v["event"] == "state" && v["state"].as_str().is_some_and(&want)
        })
    }

    /// The last line received before `before` that satisfies `pred`.
    pub fn last_before(
        &self,
        before: Instant,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<Stamped> {
        let got = self.received.0.lock().unwrap();
        got.lines
            .iter()
            .rev()
            .find(|s| s.at < before && pred(&s.line))
            .cloned()
    }

    /// Drops what was received so far (long runs keep memory flat).
    pub fn clear(&self) {
        self.received.0.lock().unwrap().lines.clear();
    }

    pub fn count(&self, pred: impl Fn(&serde_json::Value) -> bool) -> usize {
        let got = self.received.0.lock().unwrap();
        got.lines.iter().filter(|s| pred(&s.line)).count()
    }

    /// Every line received so far (a copy).
    pub fn snapshot(&self) -> Vec<Stamped> {
        self.received.0.lock().unwrap().lines.clone()
    }

    /// Takes the lines received so far, leaving none (long runs read as they go).
    pub fn take(&self) -> Vec<Stamped> {
        std::mem::take(&mut self.received.0.lock().unwrap().lines)
    }
}

impl Drop for EventClient {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Memory and thread figures of a process, from `/proc/PID/status`.
#[derive(Clone, Copy, Debug)]
pub struct ProcFigures {
    pub vm_rss_kib: u64,
    pub vm_hwm_kib: u64,
    pub threads: u64,
}

pub fn proc_figures(pid: u32) -> ProcFigures {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    ProcFigures {
        vm_rss_kib: field("VmRSS:"),
        vm_hwm_kib: field("VmHWM:"),
        threads: field("Threads:"),
    }
}

pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn worst(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.iter().copied().fold(f64::MIN, f64::max)
}

/// The p-th percentile (0..=100, nearest rank) of `v`.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Signed milliseconds from `from` to `to`.
pub fn ms_between(from: Instant, to: Instant) -> f64 {
    if to >= from {
        ms(to - from)
    } else {
        -ms(from - to)
    }
}

/// The machine's 1-minute load average, printed beside timing figures
/// (the build machine is shared).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "?".into())
}

/// A simulator that accepts `token` and sends data every 100 ms, and the
/// matching `SIG_TOKEN` line in `<dir>/credentials.env`.
pub fn token_sim(
    dir: &Path,
    token: &str,
    heartbeat_every: Duration,
) -> brokerguard::sim::SimHandle {
    let sim = brokerguard::sim::Simulator::start(brokerguard::sim::SimConfig {
        tokens: vec![token.into()],
        data_every: Some(Duration::from_millis(100)),
        heartbeat_every: Some(heartbeat_every),
        ..brokerguard::sim::SimConfig::default()
    })
    .expect("start simulator");
    std::fs::write(dir.join("credentials.env"), format!("SIG_TOKEN={token}\n")).unwrap();
    sim
}
