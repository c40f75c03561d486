//! The HTTP listener's cost: `cargo bench --bench http`.
//!
//! 1. **Scrape cost at 100 feeds**: `http::metrics::render` of a
//!    publication of 100 feeds (with Kite-like info notes) into a reused
//!    buffer, 5 000 times: p50 / p99 / worst; and 2 000 real `GET
//!    /metrics` over loopback against the in-process listener (connect,
//!    request, read to the close): p50 / p99. Target: p99 < 2 ms.
//! 2. **Allocations per feed**: heap allocations of one render at 10 and at
//!    100 feeds, counted by this binary's global allocator, with the
//!    buffer already grown: equal counts mean nothing is allocated per
//!    feed beyond the text.
//! 3. **RSS with the listener on**: the real agent (the static release
//!    binary when bench/run.sh built it), idle with no feeds, with and
//!    without `[http]`; then 10 live feeds with the listener on, after
//!    the page's worth of requests (every endpoint, the timeline). Targets:
//!    the listener adds ≤ 256 KiB idle; 10 feeds stay ≤ 5 MiB.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use brokerguard::http::board::{Board, FeedExtra, Liveness, Published};
use brokerguard::http::metrics::{Inputs, render};
use brokerguard::http::process::ProcessStats;
use brokerguard::status::schema::{CredentialStatus, FeedStatus, StatusDoc};
use common::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use support::programs::{Program, agent_best};
use support::{load_average, median, percentile, proc_figures};

/// Counts every allocation (and reallocation) of this process.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded as received.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded as received.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn published(feeds: usize) -> Published {
    let states = ["live", "backoff", "live", "parked", "live"];
    let doc = StatusDoc {
        feeds: (0..feeds)
            .map(|i| FeedStatus {
                name: format!("feed-{i:03}"),
                broker: "kite".into(),
                state: states[i % states.len()].into(),
                since: "2026-12-06T09:00:00Z".into(),
                messages: 1000 * i as u64,
                reconnects: i as u64 % 4,
                restarts: 1,
                last_message_age_ms: Some(250 + i as u64),
                market: Some("open".into()),
                flapping: (i % 17 == 0).then_some(3),
                info: [
                    ("frames_dropped".to_string(), (i % 3).to_string()),
                    (
                        "token_expires".to_string(),
                        "2026-12-07T00:30:00Z (06:00 IST)".to_string(),
                    ),
                ]
                .into_iter()
                .collect(),
                ..FeedStatus::default()
            })
            .collect(),
        credentials: (0..feeds)
            .map(|i| CredentialStatus {
                name: format!("KITE_A{i:03}_ACCESS_TOKEN"),
                present: true,
                fingerprint: Some("hmac:0badc0de".into()),
                ..CredentialStatus::default()
            })
            .collect(),
        ..StatusDoc::default()
    };
    let extra = (0..feeds)
        .map(|i| FeedExtra {
            credentials: vec![format!("KITE_A{i:03}_ACCESS_TOKEN")],
            token: Some((
                format!("KITE_A{i:03}_ACCESS_TOKEN"),
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000),
            )),
            login: None,
        })
        .collect();
    Published {
        doc,
        extra,
        config: Arc::new(
            brokerguard::config::parse_str("", Path::new("bench.toml")).expect("empty config"),
        ),
    }
}

fn inputs() -> Inputs {
    Inputs {
        fanout: Default::default(),
        process: ProcessStats {
            resident_bytes: 4_000_000,
            cpu_seconds: 1.25,
            open_fds: 40,
        },
        started_at: SystemTime::now(),
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// This thread's CPU time: what a scrape costs the machine, whatever else
/// runs on it (wall time on a shared, loaded machine is mostly waiting).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// This process's CPU time (all threads, user and system).
fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn render_cost() {
    let p = published(100);
    let inputs = inputs();
    let mut buf = String::new();
    render(&p, &inputs, &mut buf);
    let bytes = buf.len();
    let (mut wall, mut cpu) = (Vec::with_capacity(5000), Vec::with_capacity(5000));
    for _ in 0..5000 {
        let (start, start_cpu) = (Instant::now(), thread_cpu());
        render(&p, &inputs, &mut buf);
        cpu.push(us(thread_cpu() - start_cpu));
        wall.push(us(start.elapsed()));
    }
    let p99 = percentile(&cpu, 99.0);
    println!(
        "http.render_100_feeds_cpu_us p50={:.0} p99={p99:.0} worst={:.0} bytes={bytes} (5000 renders into a reused buffer, thread CPU time; target p99 < 2000: {})",
        median(&cpu),
        cpu.iter().cloned().fold(0.0, f64::max),
        if p99 < 2000.0 { "PASS" } else { "FAIL" }
    );
    println!(
        "http.render_100_feeds_wall_us p50={:.0} p99={:.0} (the same renders, wall clock: preemption on a shared machine included)",
        median(&wall),
        percentile(&wall, 99.0)
    );
}

fn allocations() {
    let count = |feeds: usize| {
        let p = published(feeds);
        let inputs = inputs();
        let mut buf = String::new();
        render(&p, &inputs, &mut buf);
        buf.reserve(buf.len());
        let before = ALLOCS.load(Ordering::Relaxed);
        render(&p, &inputs, &mut buf);
        ALLOCS.load(Ordering::Relaxed) - before
    };
    let (ten, hundred) = (count(10), count(100));
    println!(
        "http.render_allocations feeds10={ten} feeds100={hundred} per_feed={} (a warmed buffer; {})",
        (hundred as f64 - ten as f64) / 90.0,
        if ten == hundred {
            "PASS: none per feed"
        } else {
            "FAIL"
        }
    );
}

fn get(addr: SocketAddr, path: &str) -> (u16, usize) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: b\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let code = out
        .get(9..12)
        .and_then(|c| std::str::from_utf8(c).ok()?.parse().ok())
        .unwrap_or(0);
    (code, out.len())
}

fn scrape_over_loopback() {
    let board = Arc::new(Board::new(
        published(100),
        Box::new(|| Liveness {
            watchdog_beat_age: Some(Duration::ZERO),
            main_tick_age: Duration::ZERO,
            main_stuck_after: Duration::from_secs(5),
        }),
        Box::new(Default::default),
        SystemTime::now(),
    ));
    let cfg = brokerguard::config::HttpConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls_cert: None,
        tls_key: None,
        public: vec![],
    };
    let http = brokerguard::http::Http::start(&cfg, board, None).expect("start the listener");
    let addr = http.local_addr();
    for _ in 0..50 {
        get(addr, "/metrics");
    }
    let mut t = Vec::with_capacity(2000);
    let mut size = 0;
    let cpu_start = process_cpu();
    for _ in 0..2000 {
        let start = Instant::now();
        let (code, n) = get(addr, "/metrics");
        t.push(us(start.elapsed()));
        assert_eq!(code, 200);
        size = n;
    }
    let p99 = percentile(&t, 99.0);
    println!(
        "http.scrape_100_feeds_wall_us p50={:.0} p99={:.0} worst={:.0} bytes={size} (2000 GET /metrics over loopback, connect to close, client and server on this machine; p99 < 2000: {}; load average {})",
        median(&t),
        p99,
        t.iter().cloned().fold(0.0, f64::max),
        if p99 < 2000.0 { "yes" } else { "no" },
        load_average()
    );
    println!(
        "http.scrape_100_feeds_process_cpu_us per_scrape={:.0} (this process's CPU over the 2000 scrapes: the listener's worker and the client together, an upper bound of the server's)",
        us(process_cpu() - cpu_start) / 2000.0
    );
    http.stop();
}

/// The address from the agent's `http: listening on http://ADDR/` line.
fn listening(dir: &Path) -> SocketAddr {
    let mut addr = None;
    assert!(wait_for(Duration::from_secs(15), || {
        addr = stderr_of(dir).lines().find_map(|l| {
            let rest = l.split("http: listening on http://").nth(1)?;
            rest.trim_end().trim_end_matches('/').parse().ok()
        });
        addr.is_some()
    }));
    addr.unwrap()
}

fn agent_rss(bin: &Path, feeds: usize, http: bool) -> u64 {
    let dir = TempDir::new(&format!("bench-http-{feeds}-{http}"));
    let sim = (feeds > 0)
        .then(|| support::token_sim(dir.path(), "bench-http-token", Duration::from_secs(5)));
    let mut body = agent_toml(dir.path(), "preflight = \"off\"");
    if http {
        body.push_str("[http]\nlisten = \"127.0.0.1:0\"\n");
    }
    if let Some(s) = &sim {
        for i in 0..feeds {
            body.push_str(&ws_feed_toml(&format!("f{i}"), &s.url(), "SIG_TOKEN", ""));
        }
    }
    let cfg = write_config(dir.path(), &body);
    let mut agent = common::spawn_agent_bin(bin, dir.path(), &cfg, &[]);
    assert!(wait_for(Duration::from_secs(20), || {
        status_json(dir.path()).is_some_and(|d| {
            d["feeds"]
                .as_array()
                .is_some_and(|f| f.len() == feeds && f.iter().all(|f| f["state"] == "live"))
        })
    }));
    if http {
        let addr = listening(dir.path());
        for path in [
            "/",
            "/status",
            "/readyz",
            "/healthz",
            "/metrics",
            "/timeline",
        ] {
            let (code, _) = get(addr, path);
            assert_eq!(code, 200, "{path}");
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    let rss = proc_figures(agent.id()).vm_rss_kib;
    stop_agent(&mut agent);
    if let Some(s) = sim {
        s.stop();
    }
    rss
}

fn rss() {
    let Program::Agent { label, bin } = agent_best() else {
        unreachable!("agent_best is the agent")
    };
    let runs = 5;
    let (mut off, mut on, mut ten) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        off.push(agent_rss(&bin, 0, false) as f64);
        on.push(agent_rss(&bin, 0, true) as f64);
        ten.push(agent_rss(&bin, 10, true) as f64);
    }
    let added = median(&on) - median(&off);
    println!("http.rss_kib binary=\"{label}\" ({runs} runs each, median)");
    println!(
        "http.rss_idle_kib off={:.0} on={:.0} added={added:.0} (target ≤ 256: {})",
        median(&off),
        median(&on),
        if added <= 256.0 { "PASS" } else { "FAIL" }
    );
    println!(
        "http.rss_10_feeds_with_listener_kib median={:.0} worst={:.0} (after one request to every endpoint; target ≤ 5120: {})",
        median(&ten),
        ten.iter().cloned().fold(0.0, f64::max),
        if median(&ten) <= 5120.0 {
            "PASS"
        } else {
            "FAIL"
        }
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    println!("http: load average {}", load_average());
    if wanted("render") {
        render_cost();
        allocations();
    }
    if wanted("scrape") {
        scrape_over_loopback();
    }
    if wanted("rss") {
        rss();
    }
}
