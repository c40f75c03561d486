//! Helpers shared by the integration tests: temporary folders, the real
//! binary, waiting on conditions with deadlines, reading status.json and
//! the fan-out socket.
#![allow(dead_code)]

pub mod ha;

pub mod agent;
pub mod cdp_keys;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_brokerguard");

/// A temporary folder removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "bg-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, s: &str) -> PathBuf {
        self.0.join(s)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `cond` every 10 ms until it is true or `deadline` passes.
pub fn wait_for(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The `[agent]` table for a test folder, plus `extra` lines.
pub fn agent_toml(dir: &Path, extra: &str) -> String {
    let d = dir.display();
    format!(
        "[agent]\nruntime_dir = \"{d}/run\"\nstate_dir = \"{d}/state\"\ncredential_files = [\"{d}/credentials.env\"]\nlog_level = \"info\"\n{extra}\n"
    )
}

/// The fingerprint key every test agent's state folder (`<dir>/state`, as
/// [`agent_toml`] sets it) holds, so tests compute the fingerprints it shows.
pub fn test_fingerprint_key() -> brokerguard::secret::fingerprint::FingerprintKey {
    brokerguard::secret::fingerprint::FingerprintKey::from_bytes([0x42; 32])
}

/// A value's fingerprint as a test agent shows it.
#[allow(dead_code)]
pub fn fp(v: &str) -> String {
    test_fingerprint_key().fingerprint(v.as_bytes())
}

pub fn write_config(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("brokerguard.toml");
    std::fs::write(&p, body).unwrap();
    let state = dir.join("state");
    if !state
        .join(brokerguard::secret::fingerprint::KEY_FILE)
        .exists()
    {
        brokerguard::secret::fingerprint::write_key_file(&state, &test_fingerprint_key()).unwrap();
    }
    if !dir.join("credentials.env").exists() {
        std::fs::write(dir.join("credentials.env"), "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("credentials.env"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    p
}

/// `brokerguard run --config PATH` with stderr captured to `<dir>/stderr.log`.
pub fn spawn_agent(dir: &Path, config: &Path, envs: &[(&str, &str)]) -> Agent {
    spawn_agent_bin(Path::new(BIN), dir, config, envs)
}

/// [`spawn_agent`] with another build of the agent (a benchmark's static
/// release binary).
pub fn spawn_agent_bin(bin: &Path, dir: &Path, config: &Path, envs: &[(&str, &str)]) -> Agent {
    let log = std::fs::File::create(dir.join("stderr.log")).unwrap();
    let mut cmd = agent_command(bin, config);
    cmd.stderr(log);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Agent(Some(cmd.spawn().unwrap()))
}

/// A running agent that is stopped when dropped, so no test leaves one
/// behind, whatever it asserts or forgets. Used as a `Child` (it derefs to
/// one): `stop_agent(&mut agent)`, `agent.id()`.
///
/// On drop an agent still running gets SIGTERM, then SIGKILL if it has not
/// exited within 10 s, and is reaped; then its PID must be gone, or the
/// test fails (unless it is already failing).
pub struct Agent(Option<Child>);

impl Agent {
    /// Hands the child over to a caller that stops and reaps it itself.
    pub fn into_child(mut self) -> Child {
        self.0
            .take()
            .expect("an agent holds its child until dropped")
    }
}

impl std::ops::Deref for Agent {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0
            .as_ref()
            .expect("an agent holds its child until dropped")
    }
}

impl std::ops::DerefMut for Agent {
    fn deref_mut(&mut self) -> &mut Child {
        self.0
            .as_mut()
            .expect("an agent holds its child until dropped")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        let pid = child.id();
        if child.try_wait().ok().flatten().is_none() {
            send_signal(&child, libc::SIGTERM);
            // wait_exit kills and reaps it when the deadline passes.
            wait_exit(&mut child, Duration::from_secs(10));
        }
        let _ = child.wait();
        if !std::thread::panicking() {
            assert!(!process_exists(pid), "agent pid {pid} outlived its test");
        }
    }
}

/// Whether a process with this PID exists (a zombie counts: not reaped).
pub fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// `brokerguard` processes whose parent is this test process (still
/// running, or exited and not reaped).
pub fn agent_children() -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // "pid (comm) state ppid ...": comm may hold spaces, so split at its ')'.
            let Some((head, tail)) = stat.rsplit_once(')') else {
                return false;
            };
            let ppid = tail
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u32>().ok());
            head.ends_with("(brokerguard") && ppid == Some(me)
        })
        .collect()
}

/// `bin run --config config` with no stdin or stdout and none of systemd's
/// or the caller's logging variables, so the agent runs as a plain child.
pub fn agent_command(bin: &Path, config: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .env_remove("WATCHDOG_USEC")
        .env_remove("RUST_LOG");
    cmd
}

pub fn stderr_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
}

pub fn status_json(dir: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("run/status.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// The state of feed `name` in status.json.
pub fn feed_state(dir: &Path, name: &str) -> Option<String> {
    feed_field(dir, name, "state").and_then(|v| v.as_str().map(String::from))
}

pub fn feed_field(dir: &Path, name: &str, field: &str) -> Option<serde_json::Value> {
    let doc = status_json(dir)?;
    doc["feeds"]
        .as_array()?
        .iter()
        .find(|f| f["name"] == name)
        .map(|f| f[field].clone())
}

pub fn send_signal(child: &Child, sig: i32) {
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

/// Waits for the child to exit within `deadline`; kills it otherwise.
pub fn wait_exit(child: &mut Child, deadline: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Stops an agent with SIGTERM and returns its exit code.
pub fn stop_agent(child: &mut Child) -> Option<i32> {
    send_signal(child, libc::SIGTERM);
    wait_exit(child, Duration::from_secs(15)).and_then(|s| s.code())
}

/// A fan-out subscriber that collects lines in a background thread.
pub struct FanoutClient {
    pub lines: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    /// When each line of `lines` arrived (same index).
    pub arrived: std::sync::Arc<std::sync::Mutex<Vec<Instant>>>,
    stream: UnixStream,
}

impl FanoutClient {
    pub fn connect(socket: &Path, deadline: Duration) -> FanoutClient {
        let mut stream = None;
        assert!(
            wait_for(deadline, || {
                stream = UnixStream::connect(socket).ok();
                stream.is_some()
            }),
            "fan-out socket {} never accepted",
            socket.display()
        );
        let stream = stream.unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let reader = stream.try_clone().unwrap();
        let sink = lines.clone();
        let arrived = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let times = arrived.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(reader);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if let Ok(v) = serde_json::from_str(&line) {
                            // Both under the lines lock, so the indexes match.
                            let mut l = sink.lock().unwrap();
                            times.lock().unwrap().push(Instant::now());
                            l.push(v);
                        }
                    }
                }
            }
        });
        FanoutClient {
            lines,
            arrived,
            stream,
        }
    }

    /// When the first line matching `pred` that arrived at or after `since` came.
    pub fn first_after(
        &self,
        since: Instant,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<Instant> {
        let lines = self.lines.lock().unwrap();
        let times = self.arrived.lock().unwrap();
        lines
            .iter()
            .zip(times.iter())
            .find(|(v, t)| **t >= since && pred(v))
            .map(|(_, t)| *t)
    }

    pub fn send(&self, line: &str) {
        use std::io::Write;
        let mut s = &self.stream;
        s.write_all(line.as_bytes()).unwrap();
        s.write_all(b"\n").unwrap();
    }

    pub fn count(&self, pred: impl Fn(&serde_json::Value) -> bool) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|v| pred(v))
            .count()
    }

    pub fn snapshot(&self) -> Vec<serde_json::Value> {
        self.lines.lock().unwrap().clone()
    }
}

/// Checks `cond` every 10 ms for the whole of `window`; false as soon as it
/// fails. For "nothing happens" assertions, which need a window to watch.
pub fn holds_for(window: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + window;
    loop {
        if !cond() {
            return false;
        }
        if Instant::now() >= end {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the agent's stderr contains `needle`.
pub fn wait_log(dir: &Path, needle: &str, deadline: Duration) -> bool {
    wait_for(deadline, || stderr_of(dir).contains(needle))
}

/// The `credentials` entry of status.json for `name`.
pub fn credential_status(dir: &Path, name: &str) -> Option<serde_json::Value> {
    let doc = status_json(dir)?;
    doc["credentials"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
}

/// A generic websocket `[[feed]]` table speaking the simulator's protocol,
/// authenticating with `${token_var}`, plus `extra` feed keys. The
/// simulator's subscription acknowledgement matches `subscribe_ok`, so it
/// is not data (as in README's first feed). Parked feeds
/// retry only after 10 minutes, so a wake-up inside a test is the agent's doing.
pub fn ws_feed_toml(name: &str, url: &str, token_var: &str, extra: &str) -> String {
    format!(
        r#"
[[feed]]
name = "{name}"
broker = "websocket"
url = "{url}"
auth = '{{"type":"auth","token":"${{{token_var}}}"}}'
auth_ok = "auth_ok"
auth_error = "auth_failed"
subscribe = ['{{"type":"subscribe","channel":"signals"}}']
subscribe_ok = '"type":"subscribed"'
connect_timeout = "1s"
handshake_timeout = "1s"
backoff = {{ initial = "100ms", max = "1s", stable_after = "2s", parked_retry = "10m" }}
{extra}
"#
    )
}

/// Replaces `path` the way editors and `set-credential` do: a temporary file
/// in the same folder, fsync, rename over.
pub fn replace_by_rename(path: &Path, content: &str) {
    use std::io::Write;
    let tmp = path.with_extension("tmp-write");
    let mut f = std::fs::File::create(&tmp).unwrap();
    f.write_all(content.as_bytes()).unwrap();
    f.sync_all().unwrap();
    drop(f);
    std::fs::rename(&tmp, path).unwrap();
}

/// What a short-lived `brokerguard` command printed.
#[derive(Debug)]
pub struct CliRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    /// stdout and stderr together, for "never printed" checks.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `brokerguard ARGS` with exactly the environment `envs` (nothing
/// inherited, so no stray `$CREDENTIALS_DIRECTORY` or `$INVOCATION_ID`), and
/// `stdin` piped in when given. Killed after 30 s.
pub fn run_cli(args: &[&str], envs: &[(&str, &str)], stdin: Option<&str>) -> CliRun {
    use std::io::{Read, Write};
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        let mut w = child.stdin.take().unwrap();
        w.write_all(input.as_bytes()).unwrap();
    }
    // Read both pipes on threads so a full pipe cannot block the child.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = wait_exit(&mut child, Duration::from_secs(30));
    CliRun {
        code: status.and_then(|s| s.code()),
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}
