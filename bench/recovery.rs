//! How fast the real agent recovers, beside the Python stack, against the
//! in-process simulator: `cargo bench --bench recovery` (`-- server_return
//! stall close token` picks parts; bench/run.sh runs them all).
//!
//! One feed (data every 100 ms, a heartbeat after 200 ms idle), backoff
//! `initial = 500ms, max = 4s, stable_after = 1s`, the same schedule in
//! both programs (bench/baseline.py copies the agent's: first retry
//! immediate, then exponential steps with equal jitter). Each part runs at
//! least 20 times per program on one long-lived program, waiting after
//! each run until the connection has been stable for `stable_after`, so
//! every run starts from a reset backoff. Times are taken from the
//! programs' own lines (the agent's fan-out `state` events, the baseline's
//! stdout), stamped as the bench reads them.
//!
//! (a) Server back → live: the broker refuses connections until the feed
//! is in backoff at a chosen depth (2 to 4 failures), then comes back;
//! from the fault cleared to `live`, and how far that is beyond the retry
//! the program had scheduled (the agent's `retry_in_ms` in status.json,
//! the baseline's in its backoff line). Target: within the step + 20 ms.
//!
//! (b) Stall detection: the broker keeps answering pings but sends no data
//! (`stall_after = "2s"`); from the fault in force to the first non-live
//! state. Target: within `stall_after` + 1 s.
//!
//! (c) Close 1000: the broker closes the connection with 1000; from the
//! program's line saying so to `live` again, and to the first data after
//! it (the simulator sends its first data 100 ms after a subscription).
//!
//! (d) Token rename → live: the broker accepts only a new token and the
//! credentials file is replaced by rename (as `set-credential` does); from
//! the rename to `live` on the new token. The baseline has no file watch
//! (the stack it stands for needed a restart every morning): its figure is
//! a restart (SIGTERM, wait, start) from the rename to its `live`.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/mod.rs"]
mod support;

use brokerguard::sim::{Fault, SimHandle};
use common::{TempDir, status_json};
use std::time::{Duration, Instant};
use support::programs::{self, Program, Running, Setup};
use support::report::{Report, fmt, ratio, verdict};
use support::{load_average, median, ms_between, token_sim, worst};

const TOKEN: &str = "bench-token-5c2e";
const FEED: &str = "f0";
const RUNS: usize = 20;
const STABLE_AFTER: Duration = Duration::from_secs(1);
const STALL_AFTER: Duration = Duration::from_secs(2);

struct Bench {
    dir: TempDir,
    sim: SimHandle,
    program: Program,
    setup: Setup,
    running: Option<Running>,
}

fn is_data(v: &serde_json::Value) -> bool {
    v["feed"] == FEED && v["seq"].is_u64()
}

impl Bench {
    fn start(program: &Program, tag: &str) -> Bench {
        let dir = TempDir::new(tag);
        let sim = token_sim(dir.path(), TOKEN, Duration::from_millis(200));
        let mut setup = Setup::new(sim.url(), 1);
        setup.stall_after = STALL_AFTER;
        setup.handshake_timeout = Duration::from_secs(1);
        setup.backoff_initial = Duration::from_millis(500);
        setup.backoff_max = Duration::from_secs(4);
        setup.stable_after = STABLE_AFTER;
        setup.feed_extra = "connect_timeout = \"1s\"".into();
        let mut b = Bench {
            dir,
            sim,
            program: program.clone(),
            setup,
            running: None,
        };
        b.launch();
        b
    }

    fn launch(&mut self) {
        let running = self.program.start(self.dir.path(), &self.setup);
        if !running.wait_flowing(&self.setup.feeds, Duration::from_secs(20)) {
            panic!("{}: no data; stderr:\n{}", running.label, running.stderr());
        }
        self.running = Some(running);
        // Live before the data that was just seen: stable soon after now.
        self.wait_stable(Instant::now());
    }

    fn run(&self) -> &Running {
        self.running.as_ref().expect("program running")
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "{}: {what}; stderr:\n{}",
            self.program.label(),
            self.running
                .as_ref()
                .map(|r| r.stderr())
                .unwrap_or_default()
        )
    }

    /// The first `state` line of the feed after `after` that `want` accepts.
    fn wait_state(
        &self,
        after: Instant,
        deadline: Duration,
        want: impl Fn(&str) -> bool,
    ) -> Option<support::Stamped> {
        self.run().lines.wait_state(FEED, after, deadline, want)
    }

    /// The first data line after `after`.
    fn wait_data(&self, after: Instant) -> Instant {
        self.run()
            .lines
            .wait_line(after, Duration::from_secs(10), is_data)
            .unwrap_or_else(|| self.fail("no data"))
            .at
    }

    /// Sleeps until a connection that went live at `live_at` has been live
    /// longer than `stable_after`, so the next failure starts the backoff
    /// from its first step; then forgets the lines read so far.
    fn wait_stable(&self, live_at: Instant) {
        let due = live_at + STABLE_AFTER + Duration::from_millis(300);
        if let Some(left) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(left);
        }
        self.run().lines.clear();
    }

    /// The agent's feed entry in status.json.
    fn feed_status(&self) -> Option<serde_json::Value> {
        let doc = status_json(self.dir.path())?;
        doc["feeds"]
            .as_array()?
            .iter()
            .find(|f| f["name"] == FEED)
            .cloned()
    }

    /// Waits for a backoff with at least `depth` failures after `after`:
    /// when it began, the failures, and the step scheduled (ms).
    fn backoff_at_depth(&self, after: Instant, depth: u64) -> (Instant, u64, f64) {
        let mut after = after;
        loop {
            let backoff = self
                .wait_state(after, Duration::from_secs(30), |s| s == "backoff")
                .unwrap_or_else(|| self.fail("the feed never entered backoff"));
            after = backoff.at + Duration::from_nanos(1);
            if !self.program.is_agent() {
                let failures = backoff.line["failures"].as_u64().unwrap_or(0);
                if failures >= depth {
                    let step = backoff.line["retry_in_ms"].as_f64().unwrap_or(f64::NAN);
                    return (backoff.at, failures, step);
                }
                continue;
            }
            // status.json is rewritten on every state change: read it until
            // it shows this backoff, or the feed has already moved on.
            loop {
                if let Some(f) = self.feed_status() {
                    let failures = f["consecutive_failures"].as_u64().unwrap_or(0);
                    if f["state"] == "backoff" && failures >= depth {
                        if let Some(retry) = f["retry_in_ms"].as_u64() {
                            // The document may already be of a later backoff
                            // whose line is still on its way: take it only
                            // when no later state line comes.
                            std::thread::sleep(Duration::from_millis(5));
                            let newer = self.wait_state(after, Duration::ZERO, |_| true).is_some();
                            if !newer {
                                return (backoff.at, failures, retry as f64);
                            }
                            break;
                        }
                    }
                }
                let moved_on = self
                    .wait_state(after, Duration::ZERO, |s| s != "backoff")
                    .is_some();
                if moved_on {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    fn finish(mut self) {
        if let Some(r) = self.running.take() {
            let label = r.label.clone();
            let log = r.stderr();
            let codes = r.stop();
            assert!(
                codes.iter().all(|c| *c == Some(0)),
                "{label} exited {codes:?}; stderr:\n{log}"
            );
        }
        self.sim.stop();
    }
}

/// (a) One server-return run: (to live ms, overshoot ms, step ms).
fn server_return(b: &Bench, depth: u64) -> (f64, f64, f64) {
    let fault_at = Instant::now();
    b.sim.set_fault(Fault::RefuseConnections);
    let (entered, _failures, step_ms) = b.backoff_at_depth(fault_at, depth);
    let cleared_at = Instant::now();
    b.sim.clear_fault();
    let live = b
        .wait_state(cleared_at, Duration::from_secs(30), |s| s == "live")
        .unwrap_or_else(|| b.fail("never live after the server returned"));
    // The retry was scheduled `step` after the backoff began (status.json
    // is written a few ms later: this over-states the overshoot).
    let scheduled = entered + Duration::from_secs_f64(step_ms / 1000.0);
    let to_live = ms_between(cleared_at, live.at);
    let remaining = ms_between(cleared_at, scheduled).max(0.0);
    b.wait_data(live.at);
    b.wait_stable(live.at);
    (to_live, to_live - remaining, step_ms)
}

/// (b) One stall run: from the fault in force to the first non-live state.
fn stall(b: &Bench) -> f64 {
    b.sim.set_fault(Fault::SilentWithPongs);
    let in_force = Instant::now();
    let left = b
        .wait_state(in_force, Duration::from_secs(30), |s| s != "live")
        .unwrap_or_else(|| b.fail("the stall was never detected"));
    b.sim.clear_fault();
    let live = b
        .wait_state(left.at, Duration::from_secs(30), |s| s == "live")
        .unwrap_or_else(|| b.fail("never live after the stall"));
    b.wait_data(live.at);
    b.wait_stable(live.at);
    ms_between(in_force, left.at)
}

/// (c) One close-1000 run: (to live, to first data) in ms, from the
/// program's line saying the connection ended (the simulator's thread acts
/// on a fault at its next 20 ms tick: counting from the fault set would
/// measure that).
fn close_1000(b: &Bench) -> (f64, f64) {
    let set = Instant::now();
    b.sim.set_fault(Fault::CloseWithCode { code: 1000 });
    let down = b
        .wait_state(set, Duration::from_secs(10), |s| s != "live")
        .unwrap_or_else(|| b.fail("the close went unnoticed"));
    let at = down.at;
    let live = b
        .wait_state(down.at, Duration::from_secs(30), |s| s == "live")
        .unwrap_or_else(|| b.fail("never live after the close"));
    let data = b.wait_data(live.at);
    b.sim.clear_fault();
    b.wait_stable(live.at);
    (ms_between(at, live.at), ms_between(at, data))
}

/// (d) One rotation: (to live on the new token, to first data) in ms.
fn rotation(b: &mut Bench, i: usize) -> (f64, f64) {
    let new = format!("bench-token-rot{i:03}");
    b.sim.set_tokens([new.clone()]);
    let path = b.dir.join("credentials.env");
    let tmp = path.with_extension("tmp-write");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).unwrap();
        f.write_all(format!("SIG_TOKEN={new}\n").as_bytes())
            .unwrap();
        f.sync_all().unwrap();
    }
    let at = Instant::now();
    std::fs::rename(&tmp, &path).unwrap();
    if !b.program.is_agent() {
        // No file watch: the operator's restart is the recovery.
        let old = b.running.take().expect("running");
        let log = old.stderr();
        let codes = old.stop();
        assert!(
            codes.iter().all(|c| *c == Some(0)),
            "restart: exit {codes:?}; stderr:\n{log}"
        );
        b.running = Some(b.program.start(b.dir.path(), &b.setup));
    }
    let live = b
        .wait_state(at, Duration::from_secs(30), |s| s == "live")
        .unwrap_or_else(|| b.fail("never live on the new token"));
    let data = b.wait_data(live.at);
    b.wait_stable(live.at);
    (ms_between(at, live.at), ms_between(at, data))
}

/// Figures of one part for one program.
#[derive(Default)]
struct Part {
    values: Vec<f64>,
}

impl Part {
    fn mw(&self) -> String {
        format!(
            "{} / {}",
            fmt(median(&self.values), 1),
            fmt(worst(&self.values), 1)
        )
    }
}

/// Every part for one program, in order: to live, overshoot, step, stall,
/// close → live, close → data, rename → live, rename → data.
fn measure(program: &Program, wanted: &dyn Fn(&str) -> bool) -> Vec<Part> {
    let mut parts: Vec<Part> = (0..8).map(|_| Part::default()).collect();
    let label = program.label();
    if wanted("server_return") {
        let b = Bench::start(program, "bench-return");
        for i in 0..RUNS {
            let (live, over, step) = server_return(&b, 2 + (i as u64 % 3));
            println!(
                "  {label} return {i:>2}: to_live_ms={live:.1} overshoot_ms={over:.1} step_ms={step:.0}"
            );
            parts[0].values.push(live);
            parts[1].values.push(over);
            parts[2].values.push(step);
        }
        b.finish();
    }
    if wanted("stall") {
        let b = Bench::start(program, "bench-stall");
        for i in 0..RUNS {
            let d = stall(&b);
            println!("  {label} stall {i:>2}: detected_ms={d:.1}");
            parts[3].values.push(d);
        }
        b.finish();
    }
    if wanted("close") {
        let b = Bench::start(program, "bench-close");
        for i in 0..RUNS {
            let (live, data) = close_1000(&b);
            println!("  {label} close {i:>2}: to_live_ms={live:.1} to_data_ms={data:.1}");
            parts[4].values.push(live);
            parts[5].values.push(data);
        }
        b.finish();
    }
    if wanted("token") {
        let mut b = Bench::start(program, "bench-rotation");
        for i in 0..RUNS {
            let (live, data) = rotation(&mut b, i);
            println!("  {label} rename {i:>2}: to_live_ms={live:.1} to_data_ms={data:.1}");
            parts[6].values.push(live);
            parts[7].values.push(data);
        }
        b.finish();
    }
    parts
}

fn main() {
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    println!("recovery: load average {}", load_average());
    // `-- python` or `-- agent` measures only that program.
    let only_python = only.iter().any(|o| o == "python");
    let only_agent = only.iter().any(|o| o == "agent");
    let wanted = |part: &str| {
        let parts: Vec<&String> = only
            .iter()
            .filter(|o| *o != "python" && *o != "agent")
            .collect();
        parts.is_empty() || parts.iter().any(|o| part.contains(o.as_str()))
    };
    let agent = programs::agent_best();
    let a = if only_python {
        (0..8).map(|_| Part::default()).collect()
    } else {
        measure(&agent, &wanted)
    };
    let python = programs::python().filter(|_| !only_agent);
    let p = python.as_ref().map(|py| measure(py, &wanted));
    let stall_limit = (STALL_AFTER + Duration::from_secs(1)).as_secs_f64() * 1000.0;
    let py = |i: usize| p.as_ref().map_or("not run".into(), |p| p[i].mw());
    let rat = |i: usize| {
        p.as_ref().map_or("n/a".into(), |p| {
            ratio(median(&a[i].values), median(&p[i].values))
        })
    };
    let mut rows = Vec::new();
    let mut row = |name: &str, target: &str, i: usize, ok: Option<bool>| {
        if a[i].values.is_empty() {
            return;
        }
        rows.push(vec![
            name.to_string(),
            target.to_string(),
            a[i].mw(),
            py(i),
            rat(i),
            ok.map_or("—".into(), verdict),
        ]);
    };
    row(
        "server back → live, beyond the scheduled retry (ms)",
        "≤ 20",
        1,
        Some(worst(&a[1].values) <= 20.0),
    );
    row(
        "server back → live (ms), backoff steps 2-4 failures deep",
        "step + 20",
        0,
        None,
    );
    row("the backoff step waited out (ms)", "—", 2, None);
    row(
        "stall detected, from the fault in force (ms)",
        &format!("≤ {stall_limit:.0} (stall_after + 1 s)"),
        3,
        Some(worst(&a[3].values) <= stall_limit),
    );
    row("close 1000 seen → live (ms)", "—", 4, None);
    row("close 1000 seen → first data (ms)", "—", 5, None);
    row(
        "token rename → live (ms); Python: restart → live",
        "—",
        6,
        None,
    );
    row("token rename → first data (ms)", "—", 7, None);
    let mut report = Report::new("recovery");
    report.line(format!(
        "### Recovery\n\nOne feed, data every 100 ms, backoff initial 500 ms / max 4 s / stable_after 1 s in both programs, stall_after 2 s; {RUNS} runs per part and program. Median / worst; ratio = brokerguard's median / Python's ({}).\n",
        agent.label()
    ));
    report.table(
        &[
            "part",
            "target",
            "brokerguard",
            "Python",
            "ratio",
            "verdict",
        ],
        &rows,
    );
    if python.is_none() {
        report.line(
            "Python baseline not run: set BROKERGUARD_BASELINE_PYTHON (bench/run.sh does).\n",
        );
    }
    let mut target = |name: &str, i: usize, ok: Option<bool>| {
        if a[i].values.is_empty() {
            return;
        }
        report.target([
            name.to_string(),
            format!("{} ms", a[i].mw()),
            format!("Python {} ms", py(i)),
            rat(i),
            ok.map_or("—".into(), verdict),
        ]);
    };
    target(
        "recovery: server back → live within the backoff step + 20 ms (beyond the step)",
        1,
        Some(worst(&a[1].values) <= 20.0),
    );
    target(
        &format!("recovery: stall detected within stall_after + 1 s ({stall_limit:.0} ms)"),
        3,
        Some(worst(&a[3].values) <= stall_limit),
    );
    target("recovery: close 1000 → live (no target)", 4, None);
    target(
        "recovery: token rename → live (no target; Python: restart)",
        6,
        None,
    );
    report.line("");
    report.save();
}
