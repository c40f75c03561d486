//! `brokerguard demo`: the real agent against the built-in simulator,
//! offline, for about 30 s. A fault every few seconds; the timeline shows
//! what the simulator did and what the agent saw and did (read from the
//! agent's own fan-out socket, as a trading bot would), then a summary.

use crate::credentials::Secret;
use crate::credentials::setcred::set_credential;
use crate::daemon::{self, RunOptions};
use crate::sim::{Fault, SimConfig, Simulator};
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the demo observed through the fan-out socket.
#[derive(Default, Debug)]
struct Observed {
    data_lines: u64,
    first_seq: u64,
    last_seq: u64,
    seq_gaps: u64,
    recoveries: u64,
    longest_gap: Duration,
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
alert_after = "6s"
credential_check = "5s"

[[feed]]
name = "signals"
broker = "websocket"
url = "{url}"
auth = '{{"type":"auth","token":"${{DEMO_TOKEN}}"}}'
auth_ok = "auth_ok"
auth_error = "auth_failed"
subscribe = ['{{"type":"subscribe","channel":"signals"}}']
poll = '{{"type":"get_signals"}}'
poll_every = "2s"
ping_every = "1s"
pong_timeout = "2s"
stall_after = "3s"
connect_timeout = "2s"
handshake_timeout = "2s"
backoff = {{ initial = "250ms", max = "2s", stable_after = "5s", parked_retry = "30s" }}
"#
    )
}

/// Runs the demo for `duration` (the fault schedule fits in 30 s).
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
        data_every: Some(Duration::from_millis(250)),
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
    println!(
        "brokerguard demo: the agent against a simulated signal server at {}",
        sim.url()
    );
    println!("  every few seconds the server misbehaves; watch the agent notice and recover.\n");
    if std::env::var_os("RUST_LOG").is_none() {
        crate::logging::init(log::LevelFilter::Error);
    } else {
        crate::logging::init(log::LevelFilter::Info);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut opts = RunOptions::new(config_path);
    opts.stop = Some(stop.clone());
    opts.handle_signals = false;
    opts.init_logging = false;
    let agent = std::thread::Builder::new()
        .name("agent".into())
        .spawn(move || daemon::run(opts))
        .map_err(|e| e.to_string())?;

    let observed = Arc::new(Mutex::new(Observed::default()));
    let socket = dir.join("run").join("feeds.sock");
    let reader = spawn_timeline(socket, start, observed.clone(), stop.clone());

    let faults: Vec<(u64, &str, Option<Fault>)> = vec![
        (
            4,
            "server answers every client message by closing with code 1000 (the 3-hour outage)",
            Some(Fault::CloseOnClientMessage { code: 1000 }),
        ),
        (7, "server healthy again", None),
        (
            10,
            "server hangs: connection open, but no data and no pongs (a stall)",
            Some(Fault::SilentNoPongs),
        ),
        (15, "server healthy again", None),
        (16, "TCP connection reset", Some(Fault::Reset)),
        (17, "server healthy again", None),
        (
            24,
            "server refuses connections (process down)",
            Some(Fault::RefuseConnections),
        ),
        (26, "server back", None),
    ];
    let mut injected = 0;
    let mut rotated = false;
    let mut next = faults.into_iter().peekable();
    while start.elapsed() < duration {
        let t = start.elapsed().as_secs();
        while let Some((at, what, fault)) = next.peek().cloned() {
            if at > t {
                break;
            }
            println!("{}  SERVER  {what}", stamp(start));
            match fault {
                Some(f) => {
                    injected += 1;
                    sim.set_fault(f);
                }
                None => sim.clear_fault(),
            }
            next.next();
        }
        if t >= 19 && !rotated {
            rotated = true;
            injected += 1;
            println!(
                "{}  SERVER  the day token expires: the server only accepts a new one",
                stamp(start)
            );
            sim.set_tokens([token2.clone()]);
            sim.set_fault(Fault::CloseWithCode { code: 1000 });
            let rotate_at = start + Duration::from_secs(21);
            while Instant::now() < rotate_at && start.elapsed() < duration {
                std::thread::sleep(Duration::from_millis(50));
            }
            sim.clear_fault();
            println!(
                "{}  OPERATOR  writes the new token with `brokerguard set-credential DEMO_TOKEN`",
                stamp(start)
            );
            set_credential(&creds, "DEMO_TOKEN", &Secret::new(token2.clone()))
                .map_err(|e| e.to_string())?;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let agent_result = agent
        .join()
        .map_err(|_| "the agent thread panicked".to_string())?;
    let _ = reader.join();
    sim.stop();
    agent_result.map_err(|e| e.to_string())?;

    let o = observed.lock().unwrap_or_else(|p| p.into_inner());
    println!("\nsummary");
    println!("  faults injected        {injected}");
    println!("  recoveries             {}", o.recoveries);
    println!(
        "  longest gap            {}",
        crate::timefmt::human(o.longest_gap)
    );
    println!(
        "  messages delivered     {} (seq {}..{}, gaps {})",
        o.data_lines, o.first_seq, o.last_seq, o.seq_gaps
    );
    println!(
        "  the agent never needed a restart; the bot reading feeds.sock saw every outage as an event line"
    );
    Ok(())
}

fn spawn_timeline(
    socket: PathBuf,
    start: Instant,
    observed: Arc<Mutex<Observed>>,
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
        let mut last_report = Instant::now();
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
            let mut o = observed.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(seq) = v.get("seq").and_then(|s| s.as_u64()) {
                if o.last_seq != 0 && seq != o.last_seq + 1 {
                    o.seq_gaps += 1;
                }
                if o.first_seq == 0 {
                    o.first_seq = seq;
                }
                o.last_seq = seq;
                o.data_lines += 1;
                if last_report.elapsed() >= Duration::from_secs(5) {
                    last_report = Instant::now();
                    println!(
                        "{}  BOT     {} messages received so far (seq {})",
                        stamp(start),
                        o.data_lines,
                        seq
                    );
                }
                continue;
            }
            match v.get("event").and_then(|e| e.as_str()) {
                Some("state") => {
                    let state = v.get("state").and_then(|s| s.as_str()).unwrap_or("?");
                    match v.get("error").and_then(|e| e.as_str()) {
                        Some(err) => println!("{}  AGENT   {state:<14} {err}", stamp(start)),
                        None => println!("{}  AGENT   {state}", stamp(start)),
                    }
                }
                Some("reconnected") => {
                    let down = Duration::from_millis(
                        v.get("down_ms").and_then(|d| d.as_u64()).unwrap_or(0),
                    );
                    o.recoveries += 1;
                    o.longest_gap = o.longest_gap.max(down);
                    println!(
                        "{}  AGENT   recovered: live again after {}",
                        stamp(start),
                        crate::timefmt::human(down)
                    );
                }
                _ => {}
            }
        }
    })
}
