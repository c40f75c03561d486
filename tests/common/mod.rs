//! Helpers shared by the integration tests: temporary folders, the real
//! binary, waiting on conditions with deadlines, reading status.json and
//! the fan-out socket.
#![allow(dead_code)]

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

pub fn write_config(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("brokerguard.toml");
    std::fs::write(&p, body).unwrap();
    if !dir.join("credentials.env").exists() {
        std::fs::write(dir.join("credentials.env"), "").unwrap();
    }
    p
}

/// `brokerguard run --config PATH` with stderr captured to `<dir>/stderr.log`.
pub fn spawn_agent(dir: &Path, config: &Path, envs: &[(&str, &str)]) -> Child {
    let log = std::fs::File::create(dir.join("stderr.log")).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    cmd.env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .env_remove("WATCHDOG_USEC")
        .env_remove("RUST_LOG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
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
        std::thread::spawn(move || {
            let mut r = BufReader::new(reader);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if let Ok(v) = serde_json::from_str(&line) {
                            sink.lock().unwrap().push(v);
                        }
                    }
                }
            }
        });
        FanoutClient { lines, stream }
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
