//! The agent and its baselines, started the same way against one
//! simulator and read the same way: the agent through its fan-out socket,
//! the Python stack (`bench/baseline.py`) and websocat through their
//! stdout, every line stamped with the instant it was read
//! ([`EventClient`]). Each gets the same feeds, token and timing knobs.
//!
//! Where they come from (bench/run.sh sets all of them):
//! - the agent: the bench build (`CARGO_BIN_EXE_brokerguard`), and the
//!   static release binary from `install.sh --build-only` when
//!   `BROKERGUARD_STATIC_BIN` names it;
//! - Python: `BROKERGUARD_BASELINE_PYTHON`, a venv's interpreter with the
//!   pinned `websockets` (bench/requirements.txt);
//! - websocat: `BROKERGUARD_WEBSOCAT` (`cargo install websocat`).
//!
//! A baseline that is not set is skipped, and the report says so.

use super::EventClient;
use super::proc::{Sample, sample};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// One program under test.
#[derive(Clone, Debug)]
pub enum Program {
    Agent { label: String, bin: PathBuf },
    Python { python: PathBuf },
    Websocat { bin: PathBuf },
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .filter(|p| p.exists())
}

/// The agent as the bench profile built it.
pub fn agent_bench() -> Program {
    Program::Agent {
        label: "brokerguard (bench build)".into(),
        bin: PathBuf::from(env!("CARGO_BIN_EXE_brokerguard")),
    }
}

/// The shipped static binary, when run.sh built it.
pub fn agent_static() -> Option<Program> {
    env_path("BROKERGUARD_STATIC_BIN").map(|bin| Program::Agent {
        label: "brokerguard (static release)".into(),
        bin,
    })
}

/// The static binary if built, else the bench build: the agent to quote.
pub fn agent_best() -> Program {
    agent_static().unwrap_or_else(agent_bench)
}

pub fn python() -> Option<Program> {
    env_path("BROKERGUARD_BASELINE_PYTHON").map(|python| Program::Python { python })
}

pub fn websocat() -> Option<Program> {
    env_path("BROKERGUARD_WEBSOCAT").map(|bin| Program::Websocat { bin })
}

/// What every program is given.
#[derive(Clone, Debug)]
pub struct Setup {
    pub url: String,
    pub feeds: Vec<String>,
    /// The credential's name in `<dir>/credentials.env`.
    pub token_name: String,
    pub stall_after: Duration,
    pub ping_every: Duration,
    pub pong_timeout: Duration,
    pub handshake_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub stable_after: Duration,
    /// Extra lines for the agent's `[agent]` table.
    pub agent_extra: String,
    /// Extra keys for each of the agent's `[[feed]]` tables.
    pub feed_extra: String,
}

impl Setup {
    /// The agent's defaults, `feeds` named f0, f1, ...
    pub fn new(url: String, feeds: usize) -> Setup {
        Setup {
            url,
            feeds: (0..feeds).map(|i| format!("f{i}")).collect(),
            token_name: "SIG_TOKEN".into(),
            stall_after: Duration::from_secs(30),
            ping_every: Duration::from_secs(15),
            pong_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            stable_after: Duration::from_secs(30),
            agent_extra: String::new(),
            feed_extra: String::new(),
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

fn secs(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

/// The agent's configuration for `setup` in `dir`.
pub fn agent_config(dir: &Path, s: &Setup) -> String {
    let mut body = crate::common::agent_toml(dir, &s.agent_extra);
    for name in &s.feeds {
        body.push_str(&format!(
            r#"
[[feed]]
name = "{name}"
broker = "websocket"
url = "{url}"
auth = '{{"type":"auth","token":"${{{token}}}"}}'
auth_ok = "auth_ok"
auth_error = "auth_failed"
subscribe = ['{{"type":"subscribe","channel":"signals"}}']
subscribe_ok = '"type":"subscribed"'
stall_after = "{stall}"
ping_every = "{ping}"
pong_timeout = "{pong}"
handshake_timeout = "{hs}"
backoff = {{ initial = "{bi}", max = "{bm}", stable_after = "{st}" }}
{extra}
"#,
            url = s.url,
            token = s.token_name,
            stall = ms(s.stall_after),
            ping = ms(s.ping_every),
            pong = ms(s.pong_timeout),
            hs = ms(s.handshake_timeout),
            bi = ms(s.backoff_initial),
            bm = ms(s.backoff_max),
            st = ms(s.stable_after),
            extra = s.feed_extra,
        ));
    }
    body
}

/// A started program.
pub struct Running {
    pub label: String,
    pub pids: Vec<u32>,
    children: Vec<Child>,
    /// Kept open: websocat ends when its stdin does.
    _stdins: Vec<ChildStdin>,
    pub lines: EventClient,
    pub dir: PathBuf,
}

/// A websocat line (the simulator's own message) in the fan-out's shape.
fn websocat_line(i: usize, v: serde_json::Value) -> Option<serde_json::Value> {
    (v["type"] == "data")
        .then(|| serde_json::json!({"feed": format!("f{i}"), "seq": v["n"].clone(), "data": v}))
}

fn keep(_: usize, v: serde_json::Value) -> Option<serde_json::Value> {
    Some(v)
}

impl Program {
    pub fn label(&self) -> String {
        match self {
            Program::Agent { label, .. } => label.clone(),
            Program::Python { .. } => "Python asyncio + websockets".into(),
            Program::Websocat { .. } => "websocat (one process per feed)".into(),
        }
    }

    pub fn is_agent(&self) -> bool {
        matches!(self, Program::Agent { .. })
    }

    /// Starts the program in `dir` (which holds `credentials.env`), its
    /// output captured in `dir`. Panics if it cannot be started at all.
    pub fn start(&self, dir: &Path, s: &Setup) -> Running {
        let token_file = dir.join("credentials.env");
        match self {
            Program::Agent { label, bin } => {
                let cfg = dir.join("brokerguard.toml");
                std::fs::write(&cfg, agent_config(dir, s)).unwrap();
                let child = crate::common::spawn_agent_bin(bin, dir, &cfg, &[]).into_child();
                let lines =
                    EventClient::connect(&dir.join("run/feeds.sock"), Duration::from_secs(20));
                Running {
                    label: label.clone(),
                    pids: vec![child.id()],
                    children: vec![child],
                    _stdins: Vec::new(),
                    lines,
                    dir: dir.to_path_buf(),
                }
            }
            Program::Python { python } => {
                let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/baseline.py");
                let log = std::fs::File::create(dir.join("stderr.log")).unwrap();
                let mut child = Command::new(python)
                    .arg(script)
                    .args(["--url", &s.url])
                    .arg("--token-file")
                    .arg(&token_file)
                    .args(["--token-name", &s.token_name])
                    .args(["--feeds", &s.feeds.join(",")])
                    .args(["--stall-after", &secs(s.stall_after)])
                    .args(["--ping-every", &secs(s.ping_every)])
                    .args(["--pong-timeout", &secs(s.pong_timeout)])
                    .args(["--handshake-timeout", &secs(s.handshake_timeout)])
                    .args(["--backoff-initial", &secs(s.backoff_initial)])
                    .args(["--backoff-max", &secs(s.backoff_max)])
                    .args(["--stable-after", &secs(s.stable_after)])
                    .env("PYTHONDONTWRITEBYTECODE", "1")
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(log)
                    .spawn()
                    .unwrap_or_else(|e| panic!("start {}: {e}", python.display()));
                let out = child.stdout.take().unwrap();
                Running {
                    label: self.label(),
                    pids: vec![child.id()],
                    children: vec![child],
                    _stdins: Vec::new(),
                    lines: EventClient::from_readers(vec![Box::new(out)], keep),
                    dir: dir.to_path_buf(),
                }
            }
            Program::Websocat { bin } => {
                let token = std::fs::read_to_string(&token_file)
                    .unwrap()
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{}=", s.token_name)))
                    .unwrap_or_default()
                    .to_string();
                let mut children = Vec::new();
                let mut stdins = Vec::new();
                let mut outs: Vec<Box<dyn std::io::Read + Send>> = Vec::new();
                for _ in &s.feeds {
                    let mut child = Command::new(bin)
                        .args(["-t", "--ping-interval"])
                        .arg(s.ping_every.as_secs().max(1).to_string())
                        .arg(&s.url)
                        .stdin(Stdio::piped())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
                    let mut stdin = child.stdin.take().unwrap();
                    writeln!(stdin, r#"{{"type":"auth","token":"{token}"}}"#).unwrap();
                    writeln!(stdin, r#"{{"type":"subscribe","channel":"signals"}}"#).unwrap();
                    outs.push(Box::new(child.stdout.take().unwrap()));
                    stdins.push(stdin);
                    children.push(child);
                }
                Running {
                    label: self.label(),
                    pids: children.iter().map(|c| c.id()).collect(),
                    children,
                    _stdins: stdins,
                    lines: EventClient::from_readers(outs, websocat_line),
                    dir: dir.to_path_buf(),
                }
            }
        }
    }
}

impl Running {
    /// Waits until every feed in `feeds` has delivered a data line.
    pub fn wait_flowing(&self, feeds: &[String], deadline: Duration) -> bool {
        let end = Instant::now() + deadline;
        loop {
            let lines = self.lines.snapshot();
            let all = feeds.iter().all(|f| {
                lines
                    .iter()
                    .any(|l| l.line["feed"] == f.as_str() && l.line["seq"].is_u64())
            });
            if all {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn sample(&self) -> Sample {
        sample(&self.pids)
    }

    /// What the program logged (agent and Python: stderr).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    /// SIGTERM to each process, then its exit code (None: killed after 15 s,
    /// or ended by the signal).
    pub fn stop(mut self) -> Vec<Option<i32>> {
        for c in &self.children {
            // SAFETY: the pid is our child's, not yet reaped.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
        }
        let label = self.label.clone();
        self.children
            .iter_mut()
            .map(|c| {
                use std::os::unix::process::ExitStatusExt;
                let status = crate::common::wait_exit(c, Duration::from_secs(15));
                match status {
                    None => eprintln!("{label}: still running 15 s after SIGTERM; killed"),
                    Some(s) if s.code().is_none() => {
                        eprintln!("{label}: ended by signal {:?}", s.signal())
                    }
                    Some(_) => {}
                }
                status.and_then(|s| s.code())
            })
            .collect()
    }
}
