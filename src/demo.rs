//! `brokerguard demo`: the real agent against the built-in simulator,
//! offline, in about 30 s. Five faults, one after another; each step waits
//! until the fault's effect shows on the agent's own fan-out socket (read
//! as a trading bot reads it), ends the fault, and waits until data flows
//! again before the next one. A recovery is counted only then: data on a
//! connection made after the fault ended, with the gap measured from the
//! last data before it. So every run shows every effect and every
//! recovery, or says plainly which one it did not see.

use crate::credentials::setcred::set_credential;
use crate::daemon::{self, RunOptions};
use crate::secret::Secret;
use crate::sim::{Fault, SimConfig, SimHandle, Simulator};
use crate::timefmt::human;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The longest a step waits for a fault's effect, or for its recovery.
const STEP_DEADLINE: Duration = Duration::from_secs(12);
/// The most a step waits for steady data after a recovery.
const STEADY: Duration = Duration::from_secs(5);
/// The demo feed's `backoff.stable_after`: an outage is over once data has
/// kept flowing this long, so the next fault waits for it (and a little
/// more) and every fault is an outage of its own.
const STABLE_AFTER: Duration = Duration::from_secs(2);
/// How long each fault is held once its effect is seen.
const HOLD: Duration = Duration::from_millis(1500);

/// What the bot saw on feeds.sock.
#[derive(Default, Debug)]
struct Seen {
    /// Arrival of every data line, in order.
    data: Vec<Instant>,
    first_seq: u64,
    last_seq: u64,
    seq_gaps: u64,
    /// Every state event: (arrival, state, error).
    states: Vec<(Instant, String, Option<String>)>,
    /// Every `reconnected` event: (arrival, down_ms).
    reconnected: Vec<(Instant, u64)>,
    /// Every `flapping` event: (arrival, connections).
    flapping: Vec<(Instant, u64)>,
}

/// The bot's view, shared with the reader thread, with a condvar so steps
/// wait on conditions instead of sleeping.
#[derive(Default)]
struct Shared {
    seen: Mutex<Seen>,
    changed: Condvar,
}

impl Shared {
    /// Waits until `cond` holds or `deadline` passes; returns whether it held.
    fn wait(&self, deadline: Instant, mut cond: impl FnMut(&Seen) -> bool) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if cond(&seen) {
                return true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            seen = self
                .changed
                .wait_timeout(seen, left.min(Duration::from_millis(100)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// One fault of the script.
struct Step {
    what: &'static str,
    fault: Fault,
    /// Called instead of clearing the fault (the token rotation).
    special: Option<Special>,
}

#[derive(Clone, Copy)]
enum Special {
    RotateToken,
}

/// The five faults, in the order they are injected.
fn script() -> [Step; 5] {
    [
        Step {
            what: "answers every client message (the login) by closing with code 1000: each \
                   connection dies as soon as it is made, and the feed flaps",
            fault: Fault::CloseOnClientMessage { code: 1000 },
            special: None,
        },
        Step {
            what: "hangs: the connection stays open, but no data and no pongs (a stall)",
            fault: Fault::SilentNoPongs,
            special: None,
        },
        Step {
            what: "resets the TCP connection",
            fault: Fault::Reset,
            special: None,
        },
        Step {
            what: "the day token expires: the server closes and accepts only a new one",
            fault: Fault::CloseWithCode { code: 1000 },
            special: Some(Special::RotateToken),
        },
        Step {
            what: "refuses connections (the broker process is down)",
            fault: Fault::RefuseConnections,
            special: None,
        },
    ]
}

/// How one step went.
struct Outcome {
    effect: Option<String>,
    recovered: Option<Duration>,
}

fn stamp(start: Instant) -> String {
    format!("{:>6.1}s", start.elapsed().as_secs_f64())
}

fn random_token(tag: &str) -> String {
    let mut bytes = [0u8; 12];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("demo-{tag}-{hex}")
}

fn demo_config(dir: &Path, url: &str) -> String {
    let d = dir.display();
    format!(
        r#"# Written by `brokerguard demo`.
[agent]
runtime_dir = "{d}/run"
state_dir = "{d}/state"
credential_files = ["{d}/credentials.env"]
log_level = "error"
alert_after = "4s"
credential_check = "5s"

[[feed]]
name = "signals"
broker = "websocket"
url = "{url}"
auth = '{{"type":"auth","token":"${{DEMO_TOKEN}}"}}'
auth_ok = "auth_ok"
auth_error = "auth_failed"
subscribe = ['{{"type":"subscribe","channel":"signals"}}']
subscribe_ok = '"type":"subscribed"'
poll = '{{"type":"get_signals"}}'
poll_every = "700ms"
ping_every = "500ms"
pong_timeout = "1s"
stall_after = "2s"
connect_timeout = "2s"
handshake_timeout = "2s"
backoff = {{ initial = "200ms", max = "1s", stable_after = "{stable}", parked_retry = "30s" }}
"#,
        stable = crate::timefmt::human(STABLE_AFTER)
    )
}

/// Runs the demo; `duration` bounds the whole run (the script takes about
/// 30 s; a fault that would start after it is skipped and reported).
pub fn run(duration: Duration) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("brokerguard-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let result = run_in(&dir, duration);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(dir: &Path, duration: Duration) -> Result<(), String> {
    let token1 = random_token("a");
    let token2 = random_token("b");
    let sim = Simulator::start(SimConfig {
        tokens: [token1.clone()].into_iter().collect(),
        data_every: Some(Duration::from_millis(200)),
        heartbeat_every: Some(Duration::from_millis(500)),
        ..SimConfig::default()
    })
    .map_err(|e| format!("cannot start the simulator: {e}"))?;
    let creds = dir.join("credentials.env");
    set_credential(&creds, "DEMO_TOKEN", &Secret::new(token1.clone()))
        .map_err(|e| e.to_string())?;
    let config_path = dir.join("brokerguard.toml");
    std::fs::write(&config_path, demo_config(dir, &sim.url())).map_err(|e| e.to_string())?;

    let start = Instant::now();
    let end = start + duration;
    println!(
        "brokerguard demo: the agent against a simulated signal server at {}",
        sim.url()
    );
    println!(
        "  five faults, one at a time; each is held until its effect shows, then ended, and the\n  \
         next starts once data flows again. Timeline as the bot on feeds.sock sees it.\n"
    );
    crate::logging::init(if std::env::var_os("RUST_LOG").is_none() {
        log::LevelFilter::Error
    } else {
        log::LevelFilter::Info
    });

    let stop = Arc::new(AtomicBool::new(false));
    let agent = start_agent(config_path, stop.clone())?;

    let shared = Arc::new(Shared::default());
    let socket = dir.join("run").join("feeds.sock");
    let reader = spawn_reader(socket, start, shared.clone(), stop.clone());

    let steps = script();

    let mut outcomes = Vec::new();
    let flowing = shared.wait(start + STEP_DEADLINE, |s| s.data.len() >= 3);
    if flowing {
        println!("{}  BOT     data flowing", stamp(start));
        for step in &steps {
            if Instant::now() >= end {
                println!(
                    "{}  DEMO    out of time: the remaining faults are skipped",
                    stamp(start)
                );
                break;
            }
            let tokens = (token2.as_str(), &creds);
            outcomes.push(run_step(&sim, &shared, start, step, tokens)?);
        }
    } else {
        println!(
            "{}  DEMO    no data reached the bot: nothing to show",
            stamp(start)
        );
    }
    stop.store(true, Ordering::Relaxed);
    let agent_result = agent
        .join()
        .map_err(|_| "the agent thread panicked".to_string())?;
    let _ = reader.join();
    sim.stop();
    agent_result.map_err(|e| e.to_string())?;

    let seen = shared.seen.lock().unwrap_or_else(|p| p.into_inner());
    summary(&outcomes, &seen, flowing, steps.len())
}

/// The agent on its own thread, as `brokerguard run` would run it, until
/// `stop` is set.
fn start_agent(
    config_path: PathBuf,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<Result<(), daemon::DaemonError>>, String> {
    let mut opts = RunOptions::new(config_path);
    opts.stop = Some(stop);
    opts.handle_signals = false;
    opts.init_logging = false;
    std::thread::Builder::new()
        .name("agent".into())
        .spawn(move || daemon::run(opts))
        .map_err(|e| e.to_string())
}

/// Prints the summary; an error unless every one of the `steps` faults
/// showed its effect and its recovery.
fn summary(outcomes: &[Outcome], seen: &Seen, flowing: bool, steps: usize) -> Result<(), String> {
    let effects = outcomes.iter().filter(|o| o.effect.is_some()).count();
    let recovered: Vec<Duration> = outcomes.iter().filter_map(|o| o.recovered).collect();
    println!("\nsummary");
    println!("  faults injected        {}", outcomes.len());
    println!("  effects seen           {effects}/{}", outcomes.len());
    println!(
        "  recoveries             {}/{}",
        recovered.len(),
        outcomes.len()
    );
    if let Some(longest) = recovered.iter().max() {
        println!("  longest gap in data    {}", human(*longest));
    }
    println!(
        "  messages delivered     {} (seq {}..{}, gaps {})",
        seen.data.len(),
        seen.first_seq,
        seen.last_seq,
        seen.seq_gaps
    );
    let all = flowing && outcomes.len() == steps && effects == steps && recovered.len() == steps;
    if all {
        println!(
            "  the agent never needed a restart; the bot saw every outage as an event line and every message in order"
        );
        Ok(())
    } else {
        Err("not every fault showed its effect and its recovery (see the timeline)".into())
    }
}

/// One fault: set it, wait for its effect, end it, wait for data again.
fn run_step(
    sim: &SimHandle,
    shared: &Shared,
    start: Instant,
    step: &Step,
    (new_token, creds): (&str, &PathBuf),
) -> Result<Outcome, String> {
    let (states_before, data_before) = {
        let s = shared.seen.lock().unwrap_or_else(|p| p.into_inner());
        (s.states.len(), s.data.len())
    };
    println!("{}  SERVER  {}", stamp(start), step.what);
    if let Some(Special::RotateToken) = step.special {
        sim.set_tokens([new_token.to_string()]);
    }
    sim.set_fault(step.fault.clone());
    // The effect: the feed leaves live.
    let deadline = Instant::now() + STEP_DEADLINE;
    let left_live = shared.wait(deadline, |s| {
        s.states[states_before..]
            .iter()
            .any(|(_, st, _)| st != "live")
    });
    let effect = if left_live {
        let s = shared.seen.lock().unwrap_or_else(|p| p.into_inner());
        s.states[states_before..]
            .iter()
            .find(|(_, st, _)| st != "live")
            .map(|(_, st, e)| format!("{st}: {}", e.clone().unwrap_or_default()))
    } else {
        println!(
            "{}  DEMO    effect NOT seen within {}",
            stamp(start),
            human(STEP_DEADLINE)
        );
        None
    };
    // Hold the fault a moment so its effect is visible, then end it.
    let hold_until = Instant::now() + HOLD;
    shared.wait(hold_until, |_| false);
    match step.special {
        Some(Special::RotateToken) => {
            sim.clear_fault();
            shared.wait(Instant::now() + STEP_DEADLINE, |s| {
                s.states[states_before..]
                    .iter()
                    .any(|(_, st, _)| st == "parked")
            });
            println!(
                "{}  OPERATOR  writes the new token with `brokerguard set-credential DEMO_TOKEN`",
                stamp(start)
            );
            set_credential(creds, "DEMO_TOKEN", &Secret::new(new_token.to_string()))
                .map_err(|e| e.to_string())?;
        }
        None => sim.clear_fault(),
    }
    let cleared = Instant::now();
    println!("{}  SERVER  healthy again", stamp(start));
    // The recovery: data on a connection made after the fault ended.
    let recovered = shared.wait(cleared + STEP_DEADLINE, |s| {
        // Data after the fault ended, on a connection made after it ended.
        let data_after = s.data.last().is_some_and(|t| *t >= cleared);
        let reconnected_after = s.reconnected.iter().any(|(t, _)| *t >= cleared);
        data_after && reconnected_after
    });
    let gap = if recovered {
        let s = shared.seen.lock().unwrap_or_else(|p| p.into_inner());
        // The longest silence the bot saw between the last data before the
        // fault and the first data after it ended.
        let lines = &s.data[data_before.saturating_sub(1)..];
        let gap = lines
            .windows(2)
            .map(|w| w[1].duration_since(w[0]))
            .max()
            .unwrap_or_default();
        println!(
            "{}  BOT     recovered: data flowing again, longest gap {}",
            stamp(start),
            human(gap)
        );
        drop(s);
        // Let data keep flowing for stable_after, so the agent has called
        // this outage over before the next fault.
        let back = {
            let s = shared.seen.lock().unwrap_or_else(|p| p.into_inner());
            s.data.iter().copied().find(|t| *t >= cleared)
        }
        .unwrap_or(cleared);
        let stable = back + STABLE_AFTER + Duration::from_millis(300);
        shared.wait(Instant::now() + STEADY, |s| {
            s.data.last().is_some_and(|t| *t >= stable)
        });
        let total = shared
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .data
            .len();
        println!(
            "{}  BOT     {} so far, in order",
            stamp(start),
            crate::count::count(total, "message", "messages")
        );
        Some(gap)
    } else {
        println!(
            "{}  DEMO    recovery NOT seen within {}",
            stamp(start),
            human(STEP_DEADLINE)
        );
        None
    };
    Ok(Outcome {
        effect,
        recovered: gap,
    })
}

fn spawn_reader(
    socket: PathBuf,
    start: Instant,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let stream = loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            match UnixStream::connect(&socket) {
                Ok(s) => break s,
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while !stop.load(Ordering::Relaxed) {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(_) => return,
            }
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let now = Instant::now();
            let mut s = shared.seen.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(seq) = v.get("seq").and_then(|s| s.as_u64()) {
                if s.last_seq != 0 && seq != s.last_seq + 1 {
                    s.seq_gaps += 1;
                }
                if s.first_seq == 0 {
                    s.first_seq = seq;
                }
                s.last_seq = seq;
                s.data.push(now);
            } else {
                match v.get("event").and_then(|e| e.as_str()) {
                    Some("state") => {
                        let state = v["state"].as_str().unwrap_or("?").to_string();
                        let err = v.get("error").and_then(|e| e.as_str()).map(String::from);
                        match &err {
                            Some(e) => println!("{}  AGENT   {state:<14} {e}", stamp(start)),
                            None => println!("{}  AGENT   {state}", stamp(start)),
                        }
                        s.states.push((now, state, err));
                    }
                    Some("reconnected") => {
                        let down = v["down_ms"].as_u64().unwrap_or(0);
                        println!(
                            "{}  AGENT   reconnected: data again after {}",
                            stamp(start),
                            human(Duration::from_millis(down))
                        );
                        s.reconnected.push((now, down));
                    }
                    Some("flapping") => {
                        let n = v["connections"].as_u64().unwrap_or(0);
                        println!(
                            "{}  AGENT   flapping: {} died before they were stable",
                            stamp(start),
                            crate::count::count(n as usize, "connection", "connections")
                        );
                        s.flapping.push((now, n));
                    }
                    _ => {}
                }
            }
            drop(s);
            shared.changed.notify_all();
        }
    })
}
