//! The fault soak: `cargo bench --bench soak -- [--duration 10m] [--seed N]`
//! (bench/run.sh runs ten minutes; `.ci/run` runs 60 s).
//!
//! Ten generic WebSocket feeds, each with its own canary token, hold
//! connections to the in-process simulator (data every 100 ms) while it
//! misbehaves: first every fault once (so every code path is paged in
//! before the memory baseline), then, for the duration, a random fault
//! from the whole list with 1 to 3 s between one fault's end and the next:
//!
//! - close 1000, 1001, 1011; abort without close (a TCP reset); malformed
//!   frames: one-shot, to every open connection;
//! - stall with pongs: no data, pings still answered, for 2.5-4 s
//!   (`stall_after` is 2 s);
//! - server down and back: connections dropped without a close, new ones
//!   refused, for 1-3 s;
//! - reject auth, slow handshake: the server drops everyone (as when it
//!   restarts) and, for 1-3 s, rejects every token or answers the upgrade
//!   only after 0.3-1.5 s (`handshake_timeout` is 1 s).
//!
//! A bot reads every line of the fan-out socket. The report: per feed, the
//! share of time live (state events), the share with data flowing (a data
//! line at most 500 ms after the last, on a live connection), and the best
//! possible given the faults (an ideal client loses the time the server
//! cannot deliver: the fault's hold, and a first-data period after every
//! forced reconnect); faults against what the agent saw (disruptions,
//! `reconnected` events, which come with the first data after an outage;
//! flapping events, three short-lived connections within `alert_after`).
//!
//! It fails (exit 1) on: a connection that authenticated and lived a second
//! without subscribing; one that subscribed twice; a gap or repeat in a
//! feed's `seq` on the fan-out; a feed not live with data at the end; more
//! descriptors at the end than after the warm-up, or RSS grown by more than
//! 256 KiB or 5%; a canary token in any output (the agent's log, status.json,
//! `brokerguard status`, every fan-out line); a non-zero exit on SIGTERM.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/mod.rs"]
mod support;

use brokerguard::sim::{Fault, SimConfig, SimHandle, Simulator};
use common::{TempDir, status_json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};
use support::proc::{self as sysproc, Sample};
use support::programs::{self, Setup};
use support::report::{Report, fmt, ratio};
use support::{Stamped, load_average};

const FEEDS: usize = 10;
const DATA_EVERY: Duration = Duration::from_millis(100);
const STALL_AFTER: Duration = Duration::from_secs(2);
const STABLE_AFTER: Duration = Duration::from_secs(2);
/// A data line this long after the last still counts as data flowing.
const FLOWING_GAP: Duration = Duration::from_millis(500);
/// Allowed RSS growth between the warm-up and the end.
const RSS_SLACK_KIB: u64 = 256;

/// One kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Close1000,
    Close1001,
    Close1011,
    Abort,
    Stall,
    RejectAuth,
    ServerDown,
    SlowHandshake,
    Malformed,
}

const KINDS: [Kind; 9] = [
    Kind::Close1000,
    Kind::Close1001,
    Kind::Close1011,
    Kind::Abort,
    Kind::Stall,
    Kind::RejectAuth,
    Kind::ServerDown,
    Kind::SlowHandshake,
    Kind::Malformed,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Close1000 => "close 1000",
            Kind::Close1001 => "close 1001",
            Kind::Close1011 => "close 1011",
            Kind::Abort => "abort (TCP reset)",
            Kind::Stall => "stall with pongs",
            Kind::RejectAuth => "reject auth",
            Kind::ServerDown => "server down and back",
            Kind::SlowHandshake => "slow handshake",
            Kind::Malformed => "malformed frames",
        }
    }
}

/// xorshift64*: reproducible with `--seed`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn range(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = (hi - lo).as_micros() as u64;
        lo + Duration::from_micros(self.next() % span.max(1))
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[(self.next() % v.len() as u64) as usize]
    }
}

/// One fault injected: what, when, and what an ideal client would lose.
struct Injected {
    kind: Kind,
    detail: String,
    at: Instant,
    unavoidable: Duration,
}

/// Applies `kind`, holds it, clears it; returns what was injected.
fn inject(sim: &SimHandle, kind: Kind, rng: &mut Rng) -> Injected {
    let at = Instant::now();
    let hold = rng.range(Duration::from_secs(1), Duration::from_secs(3));
    let (detail, unavoidable) = match kind {
        Kind::Close1000 | Kind::Close1001 | Kind::Close1011 => {
            let code = match kind {
                Kind::Close1000 => 1000,
                Kind::Close1001 => 1001,
                _ => 1011,
            };
            sim.set_fault(Fault::CloseWithCode { code });
            (String::new(), DATA_EVERY)
        }
        Kind::Abort => {
            sim.set_fault(Fault::Reset);
            (String::new(), DATA_EVERY)
        }
        Kind::Malformed => {
            sim.set_fault(Fault::Malformed);
            (String::new(), DATA_EVERY)
        }
        Kind::Stall => {
            let hold = rng.range(Duration::from_millis(2500), Duration::from_secs(4));
            sim.set_fault(Fault::SilentWithPongs);
            std::thread::sleep(hold);
            (format!("{} ms", hold.as_millis()), hold)
        }
        Kind::ServerDown => {
            sim.set_fault(Fault::RefuseConnections);
            std::thread::sleep(hold);
            (format!("{} ms", hold.as_millis()), hold + DATA_EVERY)
        }
        Kind::RejectAuth => {
            // Everyone dropped (the server restarts), then every token
            // refused while it lasts.
            sim.set_fault(Fault::RefuseConnections);
            sim.set_fault(Fault::RejectAuth);
            std::thread::sleep(hold);
            (format!("{} ms", hold.as_millis()), hold + DATA_EVERY)
        }
        Kind::SlowHandshake => {
            let delay = rng.range(Duration::from_millis(300), Duration::from_millis(1500));
            sim.set_fault(Fault::RefuseConnections);
            sim.set_fault(Fault::SlowHandshake {
                delay_ms: delay.as_millis() as u64,
            });
            std::thread::sleep(hold);
            (
                format!("{} ms for {} ms", delay.as_millis(), hold.as_millis()),
                delay.min(hold) + DATA_EVERY,
            )
        }
    };
    sim.clear_fault();
    Injected {
        kind,
        detail,
        at,
        unavoidable,
    }
}

/// What the bot saw of one feed.
#[derive(Default)]
struct Track {
    last_seq: Option<u64>,
    seq_errors: Vec<String>,
    live_since: Option<Instant>,
    last_data: Option<Instant>,
    live: Duration,
    flowing: Duration,
    disruptions: u32,
    recoveries: u32,
    flapping: u32,
}

/// The length of [a, b] inside the window.
fn clip(a: Instant, b: Instant, window: (Instant, Instant)) -> Duration {
    let lo = a.max(window.0);
    let hi = b.min(window.1);
    hi.checked_duration_since(lo).unwrap_or_default()
}

impl Track {
    fn line(&mut self, s: &Stamped, window: (Instant, Instant)) {
        let v = &s.line;
        if let Some(seq) = v["seq"].as_u64() {
            if let Some(last) = self.last_seq {
                if seq != last + 1 {
                    self.seq_errors.push(format!("seq {seq} after {last}"));
                }
            }
            self.last_seq = Some(seq);
            if let Some(d) = self.last_data {
                let gap = s.at.saturating_duration_since(d).min(FLOWING_GAP);
                self.flowing += clip(d, d + gap, window);
            }
            self.last_data = Some(s.at);
            return;
        }
        match v["event"].as_str() {
            Some("state") => {
                let live = v["state"] == "live";
                match (self.live_since, live) {
                    (None, true) => self.live_since = Some(s.at),
                    (Some(since), false) => {
                        self.live += clip(since, s.at, window);
                        self.live_since = None;
                        if s.at >= window.0 && s.at <= window.1 {
                            self.disruptions += 1;
                        }
                        // The connection is gone: data flowed at most until now.
                        if let Some(d) = self.last_data.take() {
                            let end = s.at.min(d + FLOWING_GAP);
                            self.flowing += clip(d, end, window);
                        }
                    }
                    _ => {}
                }
            }
            Some("reconnected") if s.at >= window.0 && s.at <= window.1 => self.recoveries += 1,
            Some("flapping") if s.at >= window.0 && s.at <= window.1 => self.flapping += 1,
            _ => {}
        }
    }

    /// Closes the open intervals at `end`.
    fn finish(&mut self, end: Instant, window: (Instant, Instant)) {
        if let Some(since) = self.live_since.take() {
            self.live += clip(since, end, window);
        }
        if let Some(d) = self.last_data.take() {
            self.flowing += clip(d, (d + FLOWING_GAP).min(end), window);
        }
    }
}

struct Args {
    duration: Duration,
    seed: u64,
}

fn args() -> Args {
    let mut a = Args {
        duration: Duration::from_secs(600),
        seed: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--duration" => {
                let v = it.next().expect("--duration needs a value, e.g. 60s");
                a.duration = brokerguard::config::parse_duration(&v).expect("--duration");
            }
            "--seed" => {
                a.seed = it
                    .next()
                    .and_then(|s| s.parse::<u64>().ok())
                    .expect("--seed N")
                    | 1
            }
            // cargo bench passes --bench.
            _ => {}
        }
    }
    a
}

fn canary(i: usize, rng: &mut Rng) -> String {
    format!("canary-f{i}-{:016x}", rng.next())
}

/// The agent's `[agent]` and per-feed settings for the soak.
fn setup(url: String) -> Setup {
    let mut s = Setup::new(url, FEEDS);
    s.stall_after = STALL_AFTER;
    s.ping_every = Duration::from_secs(1);
    s.pong_timeout = Duration::from_secs(2);
    s.handshake_timeout = Duration::from_secs(1);
    s.backoff_initial = Duration::from_millis(100);
    s.backoff_max = Duration::from_secs(1);
    s.stable_after = STABLE_AFTER;
    // Small flight recorders, full after the warm-up: the RSS check is for
    // leaks, and a ring still filling up (bounded by design, 1 MiB a feed
    // by default) would read as growth.
    s.agent_extra =
        "alert_after = \"10s\"\npreflight = \"off\"\nblackbox_entries = 20\nblackbox_bytes = 4096"
            .into();
    s
}

/// The agent's configuration: `setup`, but each feed with its own token
/// and channel (so the simulator's records tell the feeds apart).
fn agent_config(dir: &std::path::Path, s: &Setup) -> String {
    let mut body = programs::agent_config(dir, s);
    for (i, f) in s.feeds.iter().enumerate() {
        body = body.replacen(
            "\"token\":\"${SIG_TOKEN}\"",
            &format!("\"token\":\"${{F{i}_TOKEN}}\""),
            1,
        );
        body = body.replacen(
            "\"channel\":\"signals\"",
            &format!("\"channel\":\"{f}\""),
            1,
        );
    }
    body = body.replace(
        "stable_after = \"2000ms\" }",
        "stable_after = \"2000ms\", parked_retry = \"2s\" }",
    );
    body
}

/// Every feed live with data flowing since `after`.
fn all_flowing(lines: &[Stamped], feeds: &[String], after: Instant) -> bool {
    feeds.iter().all(|f| {
        let last_state = lines
            .iter()
            .rev()
            .find(|l| l.line["feed"] == f.as_str() && l.line["event"] == "state");
        let live_ok = last_state.is_none_or(|l| l.line["state"] == "live");
        let data = lines
            .iter()
            .any(|l| l.at >= after && l.line["feed"] == f.as_str() && l.line["seq"].is_u64());
        live_ok && data
    })
}

fn min_fds(pid: u32) -> u64 {
    (0..5)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            sysproc::sample(&[pid]).fds
        })
        .min()
        .unwrap_or(0)
}

fn main() {
    let args = args();
    let mut rng = Rng(args.seed);
    let started = Instant::now();
    println!(
        "soak: {FEEDS} feeds, {} of random faults, seed {}, load average {}",
        brokerguard::timefmt::human(args.duration),
        args.seed,
        load_average()
    );
    let dir = TempDir::new("soak");
    let canaries: Vec<String> = (0..FEEDS).map(|i| canary(i, &mut rng)).collect();
    let sim = Simulator::start(SimConfig {
        tokens: canaries.clone(),
        data_every: Some(DATA_EVERY),
        heartbeat_every: Some(Duration::from_millis(500)),
        ..SimConfig::default()
    })
    .expect("start simulator");
    let creds: String = canaries
        .iter()
        .enumerate()
        .map(|(i, c)| format!("F{i}_TOKEN={c}\n"))
        .collect();
    std::fs::write(dir.join("credentials.env"), creds).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("credentials.env"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    let s = setup(sim.url());
    let program = programs::agent_best();
    std::fs::write(dir.join("soak.toml"), agent_config(dir.path(), &s)).unwrap();
    // Program::start writes its own configuration; start the agent on ours.
    let programs::Program::Agent { bin, .. } = &program else {
        unreachable!("agent_best is an agent")
    };
    let mut agent = common::spawn_agent_bin(bin, dir.path(), &dir.join("soak.toml"), &[]);
    let pid = agent.id();
    let bot = support::EventClient::connect(&dir.join("run/feeds.sock"), Duration::from_secs(20));
    let mut all_lines: Vec<Stamped> = Vec::new();
    let mut status_snapshots: Vec<String> = Vec::new();
    let mut failures: Vec<String> = Vec::new();

    let wait_all = |lines: &mut Vec<Stamped>, after: Instant, deadline: Duration| -> bool {
        let end = Instant::now() + deadline;
        loop {
            lines.extend(bot.take());
            if all_flowing(lines, &s.feeds, after) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    if !wait_all(&mut all_lines, started, Duration::from_secs(30)) {
        panic!(
            "the feeds never all flowed; agent log:\n{}",
            common::stderr_of(dir.path())
        );
    }

    // Warm-up: every fault once, in order.
    println!("warm-up: every fault once");
    let mut warmup = Vec::new();
    for kind in KINDS {
        warmup.push(inject(&sim, kind, &mut rng));
        std::thread::sleep(Duration::from_secs(1));
        all_lines.extend(bot.take());
    }
    let settled = Instant::now();
    if !wait_all(&mut all_lines, settled, Duration::from_secs(30)) {
        failures.push("not every feed flowed again after the warm-up".into());
    }
    std::thread::sleep(STABLE_AFTER + Duration::from_millis(500));
    let start_fds = min_fds(pid);
    let start: Sample = sysproc::sample(&[pid]);
    let window_start = Instant::now();
    println!(
        "baseline after warm-up: VmRSS={} kB anon={} kB fds={start_fds} threads={}",
        start.rss_kib, start.anon_kib, start.threads
    );

    // The soak proper.
    let mut injected: Vec<Injected> = Vec::new();
    let soak_end = window_start + args.duration;
    while Instant::now() < soak_end {
        let kind = rng.pick(&KINDS);
        let f = inject(&sim, kind, &mut rng);
        println!(
            "  {:>6.1}s {} {}",
            f.at.duration_since(window_start).as_secs_f64(),
            f.kind.name(),
            f.detail
        );
        injected.push(f);
        std::thread::sleep(rng.range(Duration::from_secs(1), Duration::from_secs(3)));
        all_lines.extend(bot.take());
        if let Ok(t) = std::fs::read_to_string(dir.join("run/status.json")) {
            status_snapshots.push(t);
        }
    }
    let last_fault = Instant::now();
    if !wait_all(&mut all_lines, last_fault, Duration::from_secs(30)) {
        failures.push("a feed was not live with data 30 s after the last fault".into());
    }
    std::thread::sleep(STABLE_AFTER + Duration::from_millis(500));
    let end_fds = min_fds(pid);
    let end: Sample = sysproc::sample(&[pid]);
    let stacks = sysproc::stack_high_water(pid);
    let window_end = Instant::now();
    all_lines.extend(bot.take());
    println!(
        "end: VmRSS={} kB anon={} kB fds={end_fds} threads={}",
        end.rss_kib, end.anon_kib, end.threads
    );

    // `brokerguard status` as an operator would run it.
    let status_out = common::run_cli(
        &[
            "status",
            "--config",
            dir.join("soak.toml").to_str().unwrap(),
        ],
        &[],
        None,
    );
    if let Some(doc) = status_json(dir.path()) {
        status_snapshots.push(doc.to_string());
    }
    let sim_stats = sim.stats();
    // SIGTERM: a clean stop.
    common::send_signal(&agent, libc::SIGTERM);
    let code = common::wait_exit(&mut agent, Duration::from_secs(30)).and_then(|s| s.code());
    if code != Some(0) {
        failures.push(format!("the agent exited {code:?} on SIGTERM"));
    }
    sim.stop();
    let agent_log = common::stderr_of(dir.path());

    // Per-feed accounting.
    let window = (window_start, window_end);
    let mut tracks: BTreeMap<String, Track> = s
        .feeds
        .iter()
        .map(|f| (f.clone(), Track::default()))
        .collect();
    for l in &all_lines {
        if let Some(t) = l.line["feed"].as_str().and_then(|f| tracks.get_mut(f)) {
            t.line(l, window);
        }
    }
    let window_len = window_end - window_start;
    let lost: Duration = injected.iter().map(|f| f.unavoidable).sum();
    let best = 1.0 - lost.as_secs_f64() / window_len.as_secs_f64();
    for (name, t) in tracks.iter_mut() {
        t.finish(window_end, window);
        for e in &t.seq_errors {
            failures.push(format!("feed {name}: {e} on the fan-out"));
        }
    }

    // The simulator's side: subscriptions per connection.
    for (i, subs) in sim_stats.subscribes_per_connection.iter().enumerate() {
        let mut seen = subs.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != subs.len() {
            failures.push(format!("connection {i} subscribed twice: {subs:?}"));
        }
        let times = &sim_stats.connection_times[i];
        if let Some(authed) = times.authed {
            let lived = times
                .ended
                .unwrap_or(window_end)
                .saturating_duration_since(authed);
            if subs.is_empty() && lived >= Duration::from_secs(1) {
                failures.push(format!(
                    "connection {i} was authenticated and lived {} ms without subscribing",
                    lived.as_millis()
                ));
            }
        }
    }

    // Resources.
    if end_fds > start_fds {
        failures.push(format!("descriptors grew from {start_fds} to {end_fds}"));
    }
    let rss_slack = RSS_SLACK_KIB.max(start.rss_kib / 20);
    if end.rss_kib > start.rss_kib + rss_slack {
        failures.push(format!(
            "RSS grew from {} to {} kB (allowed: {rss_slack} kB)",
            start.rss_kib, end.rss_kib
        ));
    }

    // Canaries in any output.
    let fanout_text: String = all_lines.iter().map(|l| l.line.to_string()).collect();
    let outputs: [(&str, &str); 4] = [
        ("the agent's log", &agent_log),
        ("status.json", &status_snapshots.join("\n")),
        ("brokerguard status", &status_out.all()),
        ("the fan-out", &fanout_text),
    ];
    for (what, text) in outputs {
        for c in &canaries {
            if text.contains(c.as_str()) {
                failures.push(format!("a canary token appeared in {what}"));
                break;
            }
        }
    }

    // The report.
    let alerts = |kind: &str| agent_log.matches(&format!("alert={kind} ")).count();
    let mut report = Report::new("soak");
    report.line(format!(
        "### Fault soak\n\n`cargo bench --bench soak -- --duration {}` (seed {}): {FEEDS} feeds with their own canary tokens, data every 100 ms, {} random faults in {} s after a warm-up of each fault once; stall_after 2 s, handshake_timeout 1 s, backoff 100 ms..1 s, stable_after 2 s, parked_retry 2 s. {}, load average {}.\n",
        brokerguard::timefmt::human(args.duration),
        args.seed,
        injected.len(),
        fmt(window_len.as_secs_f64(), 0),
        program.label(),
        load_average()
    ));
    let mut by_kind: BTreeMap<Kind, usize> = BTreeMap::new();
    for f in &injected {
        *by_kind.entry(f.kind).or_default() += 1;
    }
    report.line(format!(
        "Faults injected: {}.\n",
        by_kind
            .iter()
            .map(|(k, n)| format!("{} ×{n}", k.name()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let rows: Vec<Vec<String>> = tracks
        .iter()
        .map(|(name, t)| {
            let live = t.live.as_secs_f64() / window_len.as_secs_f64();
            let flowing = t.flowing.as_secs_f64() / window_len.as_secs_f64();
            vec![
                name.clone(),
                format!("{}%", fmt(live * 100.0, 1)),
                format!("{}%", fmt(flowing * 100.0, 1)),
                format!("{}%", fmt(best * 100.0, 1)),
                ratio(flowing, best),
                t.disruptions.to_string(),
                t.recoveries.to_string(),
                t.flapping.to_string(),
            ]
        })
        .collect();
    report.table(
        &[
            "feed",
            "live",
            "data flowing",
            "best possible",
            "flowing / best",
            "disruptions",
            "recoveries (reconnected)",
            "flapping",
        ],
        &rows,
    );
    report.line(format!(
        "Alerts in the agent's log: feed_flapping {}, feed_down {}, feed_recovered {}, credential_rejected {}. RSS {} → {} kB, descriptors {start_fds} → {end_fds}, threads {} → {}; SIGTERM exit {:?}.\n",
        alerts("feed_flapping"),
        alerts("feed_down"),
        alerts("feed_recovered"),
        alerts("credential_rejected"),
        start.rss_kib,
        end.rss_kib,
        start.threads,
        end.threads,
        code
    ));
    let flowing: Vec<f64> = tracks
        .values()
        .map(|t| t.flowing.as_secs_f64() / window_len.as_secs_f64())
        .collect();
    let worst_flowing = flowing.iter().copied().fold(f64::MAX, f64::min);
    report.target([
        format!("fault soak, {}", brokerguard::timefmt::human(args.duration)),
        format!(
            "data flowing {}% (worst feed {}%); {} faults, {} recoveries",
            fmt(support::median(&flowing) * 100.0, 1),
            fmt(worst_flowing * 100.0, 1),
            injected.len(),
            tracks.values().map(|t| t.recoveries).sum::<u32>()
        ),
        format!("best possible {}%", fmt(best * 100.0, 1)),
        format!("{} of best", ratio(worst_flowing, best)),
        if failures.is_empty() {
            "PASS".into()
        } else {
            format!("FAIL ({})", failures.len())
        },
    ]);
    report.line(format!(
        "Thread stacks after the soak (resident pages are each stack's high-water mark): {}.\n",
        stacks
            .iter()
            .map(|(size, n, max)| format!("{n} of {size} KiB, the deepest {max} KiB"))
            .collect::<Vec<_>>()
            .join("; ")
    ));
    if failures.is_empty() {
        report.line("Result: PASS (no connection without or with twice its subscriptions, no seq gap or repeat, every feed live with data at the end, no descriptor or RSS growth, no canary in any output, exit 0 on SIGTERM).\n");
    } else {
        report.line(format!("Result: FAIL\n\n- {}\n", failures.join("\n- ")));
    }
    report.save();
    println!(
        "soak: {} in {:.0} s",
        if failures.is_empty() { "PASS" } else { "FAIL" },
        started.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        eprintln!("agent log (last 40 lines):");
        for l in agent_log
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            eprintln!("  {l}");
        }
        std::process::exit(1);
    }
}
