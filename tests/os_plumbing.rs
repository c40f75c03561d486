//! OS-facing plumbing against the real kernel: the pidfile lock raced by 50
//! processes and taken over after SIGKILL, the signal thread, sd_notify on
//! fake sockets, journald detection, atomic status writes and `observe`.
//!
//! Where a separate process is needed, the test binary re-executes itself
//! running only `child_process_entry` with a role in `BG_OS_ROLE`; the child
//! reports on stdout with lines starting `CHILD:`.

use std::collections::HashSet;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use brokerguard::daemon::lock::{self, LockError, LockHolder, PidLock};
use brokerguard::daemon::signals::{self, Signal};
use brokerguard::status::schema::{AgentStatus, FeedStatus, StatusDoc};
use brokerguard::status::show::{self, Observed};
use brokerguard::status::write::write_atomic;
use brokerguard::systemd::notify::{self, Notifier};

const ROLE_VAR: &str = "BG_OS_ROLE";
const DIR_VAR: &str = "BG_OS_DIR";
const LEVEL_VAR: &str = "BG_OS_LEVEL";
const DEADLINE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- helpers

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("bg-os-{tag}-{}-{nanos}-{n}", std::process::id()));
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// This test binary, set up to run only `child_process_entry` as `role`.
fn child_command(role: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--ignored",
        "--exact",
        "child_process_entry",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ])
    .env(ROLE_VAR, role)
    .env_remove("RUST_LOG")
    .env_remove("NOTIFY_SOCKET")
    .env_remove("JOURNAL_STREAM")
    .stdin(Stdio::null())
    .stdout(Stdio::piped());
    c
}

/// A spawned child whose `CHILD:` lines arrive on a channel; killed on drop.
struct Kid {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Kid {
    fn spawn(mut cmd: Command) -> Kid {
        let mut child = cmd.spawn().expect("spawn child");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("CHILD:") {
                    if tx.send(rest.to_string()).is_err() {
                        break;
                    }
                }
            }
        });
        Kid { child, lines }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next `CHILD:` line, within the deadline.
    fn line(&self) -> String {
        self.lines
            .recv_timeout(DEADLINE)
            .expect("child reported within the deadline")
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.pid() as i32, sig) }, 0);
    }

    /// Waits for the exit, within the deadline.
    fn wait(&mut self) -> ExitStatus {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < end,
                "child {} did not exit in time",
                self.pid()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn say(msg: &str) {
    let mut out = io::stdout().lock();
    writeln!(out, "CHILD:{msg}").unwrap();
    out.flush().unwrap();
}

/// Parks a child until the parent kills it (bounded, so nothing leaks).
fn park() -> ! {
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end {
        thread::sleep(Duration::from_millis(50));
    }
    std::process::exit(99);
}

fn doc_with_pid(pid: u32, feeds: usize) -> StatusDoc {
    StatusDoc {
        schema: 1,
        agent: AgentStatus {
            pid,
            version: "0.1.0".into(),
            started_at: "2026-11-22T09:00:00Z".into(),
            updated_at: "2026-11-22T09:00:01Z".into(),
            summary: format!("{feeds} feeds"),
            config: "/etc/brokerguard/brokerguard.toml".into(),
            clock: None,
            reload: None,
            ha: None,
        },
        feeds: (0..feeds)
            .map(|i| FeedStatus {
                name: format!("feed{i}"),
                broker: "websocket".into(),
                state: "live".into(),
                since: "2026-11-22T09:00:01Z".into(),
                last_message_age_ms: Some(i as u64),
                messages: i as u64 * 1000,
                reconnects: 0,
                restarts: 0,
                consecutive_failures: 0,
                last_error: Some("x".repeat(i * 7)),
                last_error_at: None,
                retry_in_ms: None,
                info: Default::default(),
                credentials_checked: None,
                optional: false,
                market: None,
                flapping: None,
                ..Default::default()
            })
            .collect(),
        credentials: vec![],
    }
}

// ------------------------------------------------------------- the child

#[test]
#[ignore = "helper: run as a child process by the other tests"]
fn child_process_entry() {
    let role = std::env::var(ROLE_VAR).expect("run by the other tests with BG_OS_ROLE set");
    let dir = std::env::var_os(DIR_VAR).map(PathBuf::from);
    match role.as_str() {
        "lock" => {
            // Barrier: every racer's stdin is the same pipe; its EOF starts all at once.
            let mut sink = Vec::new();
            io::stdin().read_to_end(&mut sink).unwrap();
            match PidLock::acquire(&dir.unwrap()) {
                Ok(held) => {
                    say(&format!("acquired {}", held.pid()));
                    park();
                }
                Err(LockError::Held { pid }) => {
                    say(&format!(
                        "held {}",
                        pid.map_or("unknown".to_string(), |p| p.to_string())
                    ));
                    std::process::exit(75);
                }
                Err(e) => {
                    say(&format!("error {e}"));
                    std::process::exit(71);
                }
            }
        }
        "signals" => {
            let _thread = signals::spawn(|sig| match sig {
                Signal::Stop => say("stop"),
                Signal::Reload => say("reload"),
                Signal::DumpBlackbox => say("dump"),
                Signal::StepDown => say("step-down"),
            })
            .unwrap();
            say("ready");
            park();
        }
        "signals_close" => {
            let thread = signals::spawn(|_| {}).unwrap();
            thread.close();
            say("closed");
            std::process::exit(0);
        }
        "notify_env" => {
            match Notifier::from_env() {
                Some(n) => {
                    n.ready().unwrap();
                    say("sent");
                }
                None => say("none"),
            }
            std::process::exit(0);
        }
        "log" => {
            let level = std::env::var(LEVEL_VAR)
                .ok()
                .and_then(|l| l.parse().ok())
                .unwrap_or(log::LevelFilter::Info);
            brokerguard::logging::init(level);
            brokerguard::alert::Alert::new(brokerguard::alert::AlertKind::FeedDown)
                .with("feed", "x")
                .emit();
            log::error!("plain failure");
            log::warn!("a warning");
            log::info!("an info");
            brokerguard::alert::Alert::new(brokerguard::alert::AlertKind::FeedRecovered)
                .with("feed", "x")
                .emit();
            log::debug!("a debug");
            std::process::exit(0);
        }
        other => panic!("unknown role {other}"),
    }
}

// ------------------------------------------------------------------ lock

#[test]
fn fifty_racers_leave_one_holder_and_sigkill_frees_the_lock_at_once() {
    let dir = TempDir::new("race");
    let (start_r, start_w) = io::pipe().unwrap();
    let mut kids: Vec<Kid> = (0..50)
        .map(|_| {
            let mut c = child_command("lock");
            c.env(DIR_VAR, dir.path())
                .stdin(start_r.try_clone().unwrap());
            Kid::spawn(c)
        })
        .collect();
    drop(start_r);
    drop(start_w); // go

    let reports: Vec<String> = kids.iter().map(Kid::line).collect();
    let winners: Vec<usize> = (0..kids.len())
        .filter(|&i| reports[i].starts_with("acquired "))
        .collect();
    assert_eq!(winners.len(), 1, "exactly one holder: {reports:?}");
    let w = winners[0];
    let winner_pid = kids[w].pid();
    assert_eq!(reports[w], format!("acquired {winner_pid}"));
    let mut named = 0;
    for (i, report) in reports.iter().enumerate() {
        if i == w {
            continue;
        }
        // A loser names the winner (or, if it lost before the PID was
        // written, says unknown); never anyone else.
        assert!(
            report == &format!("held {winner_pid}") || report == "held unknown",
            "{report}"
        );
        named += usize::from(report == &format!("held {winner_pid}"));
        assert_eq!(kids[i].wait().code(), Some(75), "loser exits 75");
    }
    eprintln!("lock race: 1 holder, 49 refused ({named} named the holder's pid)");

    let pidfile = dir.path().join(lock::PIDFILE_NAME);
    assert_eq!(
        fs::read_to_string(&pidfile).unwrap(),
        format!("{winner_pid}\n")
    );
    assert_eq!(
        fs::metadata(&pidfile).unwrap().permissions().mode() & 0o777,
        0o644
    );
    assert_eq!(
        lock::holder(dir.path()).unwrap(),
        Some(LockHolder {
            pid: Some(winner_pid)
        })
    );

    // status sees the live holder's own document as running...
    let status = dir.path().join(show::STATUS_FILE_NAME);
    write_atomic(&status, &doc_with_pid(winner_pid, 2)).unwrap();
    assert_eq!(
        show::observe(dir.path()),
        Observed::Running(Box::new(doc_with_pid(winner_pid, 2)))
    );

    // ...and after SIGKILL: the file stays, the lock is free, status says so,
    // and a new start takes it over immediately.
    kids[w].child.kill().unwrap();
    assert_eq!(kids[w].wait().signal(), Some(libc::SIGKILL));
    assert!(
        pidfile.exists(),
        "a SIGKILLed holder leaves its file behind"
    );
    assert_eq!(lock::holder(dir.path()).unwrap(), None);
    assert_eq!(
        show::observe(dir.path()),
        Observed::NotRunning { stale: true }
    );
    let t = Instant::now();
    let held = PidLock::acquire(dir.path()).expect("takeover of a dead holder's file");
    assert!(
        t.elapsed() < Duration::from_millis(50),
        "takeover took {:?}",
        t.elapsed()
    );
    assert_eq!(
        fs::read_to_string(&pidfile).unwrap(),
        format!("{}\n", std::process::id())
    );
    drop(held);
    assert!(!pidfile.exists(), "release removes the pidfile");
}

#[test]
fn second_acquire_names_the_holder_and_release_cleans_up() {
    let dir = TempDir::new("second");
    let runtime = dir.path().join("run/nested");
    assert_eq!(
        lock::holder(&runtime).unwrap(),
        None,
        "missing folder and file: not running"
    );
    let first = PidLock::acquire(&runtime).unwrap();
    assert!(runtime.is_dir(), "runtime folder created");
    let me = std::process::id();
    assert_eq!(first.pid(), me);
    match PidLock::acquire(&runtime) {
        Err(e @ LockError::Held { pid: Some(p) }) => {
            assert_eq!(p, me);
            assert_eq!(
                e.to_string(),
                format!("another brokerguard is running (pid {me})")
            );
        }
        other => panic!("expected Held, got {other:?}"),
    }
    assert_eq!(
        lock::holder(&runtime).unwrap(),
        Some(LockHolder { pid: Some(me) })
    );
    // A PID being written (no newline yet) is not read as a cut-off number.
    let pidfile = runtime.join(lock::PIDFILE_NAME);
    fs::write(&pidfile, "12").unwrap();
    assert_eq!(
        lock::holder(&runtime).unwrap(),
        Some(LockHolder { pid: None })
    );
    fs::write(&pidfile, format!("{me}\n")).unwrap();
    // The probe must not stand in the way of the holder or of a later start.
    first.release();
    assert!(!runtime.join(lock::PIDFILE_NAME).exists());
    assert_eq!(lock::holder(&runtime).unwrap(), None);
    let again = PidLock::acquire(&runtime).unwrap();
    drop(again);
}

#[test]
fn lock_descriptor_is_close_on_exec() {
    let dir = TempDir::new("cloexec");
    let held = PidLock::acquire(dir.path()).unwrap();
    let mut found = false;
    for entry in fs::read_dir("/proc/self/fd").unwrap().map_while(Result::ok) {
        if fs::read_link(entry.path()).ok().as_deref() == Some(held.path()) {
            let fd: i32 = entry.file_name().to_str().unwrap().parse().unwrap();
            // SAFETY: F_GETFD only reads the descriptor's flags.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            assert!(
                flags >= 0 && flags & libc::FD_CLOEXEC != 0,
                "fd {fd} flags {flags}"
            );
            found = true;
        }
    }
    assert!(found, "the lock's descriptor is open while held");
}

#[test]
fn unwritable_runtime_dir_is_an_io_error_naming_the_path() {
    let dir = TempDir::new("unwritable");
    // A regular file where the folder should be: fails even as root.
    let blocker = dir.path().join("file");
    fs::write(&blocker, "").unwrap();
    let runtime = blocker.join("run");
    match PidLock::acquire(&runtime) {
        Err(e @ LockError::Io { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&runtime.display().to_string()), "{text}");
            assert!(text.contains("agent.runtime_dir"), "{text}");
        }
        other => panic!("expected Io, got {other:?}"),
    }
}

// --------------------------------------------------------------- signals

#[test]
fn sighup_reloads_sigterm_stops_and_a_second_sigterm_exits_143() {
    let mut kid = Kid::spawn(child_command("signals"));
    assert_eq!(kid.line(), "ready");
    kid.signal(libc::SIGHUP);
    assert_eq!(kid.line(), "reload");
    kid.signal(libc::SIGHUP);
    assert_eq!(kid.line(), "reload");
    kid.signal(libc::SIGTERM);
    assert_eq!(kid.line(), "stop");
    kid.signal(libc::SIGTERM);
    assert_eq!(kid.wait().code(), Some(143));
}

#[test]
fn a_second_sigint_exits_130() {
    let mut kid = Kid::spawn(child_command("signals"));
    assert_eq!(kid.line(), "ready");
    kid.signal(libc::SIGINT);
    assert_eq!(kid.line(), "stop");
    kid.signal(libc::SIGINT);
    assert_eq!(kid.wait().code(), Some(130));
}

#[test]
fn signal_thread_closes_on_request() {
    let mut kid = Kid::spawn(child_command("signals_close"));
    assert_eq!(kid.line(), "closed");
    assert_eq!(kid.wait().code(), Some(0));
}

#[test]
fn signals_reach_a_channel() {
    let (tx, rx) = mpsc::channel();
    let thread = signals::spawn_sender(tx, |s| ("event", s)).unwrap();
    // SAFETY: signal-hook's handler for SIGHUP is installed by spawn_sender.
    assert_eq!(
        unsafe { libc::kill(std::process::id() as i32, libc::SIGHUP) },
        0
    );
    assert_eq!(
        rx.recv_timeout(DEADLINE).unwrap(),
        ("event", Signal::Reload)
    );
    thread.close();
}

// ---------------------------------------------------------------- notify

fn recv_text(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock
        .recv(&mut buf)
        .expect("datagram within the read timeout");
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

fn assert_protocol(sock: &UnixDatagram, n: &Notifier) {
    n.ready().unwrap();
    assert_eq!(recv_text(sock), "READY=1");
    n.status("2/3 feeds live;\nkraken: backoff 8s (auth rejected)")
        .unwrap();
    assert_eq!(
        recv_text(sock),
        "STATUS=2/3 feeds live; kraken: backoff 8s (auth rejected)"
    );
    n.watchdog().unwrap();
    assert_eq!(recv_text(sock), "WATCHDOG=1");
    let before = notify::monotonic_usec();
    n.reloading().unwrap();
    let after = notify::monotonic_usec();
    let msg = recv_text(sock);
    let usec: u64 = msg
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .expect(&msg)
        .parse()
        .unwrap();
    assert!(
        before <= usec && usec <= after,
        "{before} <= {usec} <= {after}"
    );
    n.stopping().unwrap();
    assert_eq!(recv_text(sock), "STOPPING=1");
    n.send("FDSTORE=0\nEXTRA=é").unwrap();
    assert_eq!(recv_text(sock), "FDSTORE=0\nEXTRA=é");
}

#[test]
fn notify_to_a_path_socket_is_byte_exact() {
    let dir = TempDir::new("notify");
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    let n = Notifier::from_socket_var(path.as_os_str()).unwrap();
    assert_protocol(&sock, &n);
}

fn abstract_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("brokerguard-test-{}-{nanos}", std::process::id())
}

#[test]
fn notify_to_an_abstract_socket_is_byte_exact() {
    let name = abstract_name();
    let sock = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    let n = Notifier::from_socket_var(format!("@{name}").as_ref()).unwrap();
    assert_protocol(&sock, &n);
}

#[test]
fn notifier_from_env_uses_notify_socket() {
    let name = abstract_name() + "-env";
    let sock = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut c = child_command("notify_env");
    c.env("NOTIFY_SOCKET", format!("@{name}"));
    let mut kid = Kid::spawn(c);
    assert_eq!(kid.line(), "sent");
    assert_eq!(recv_text(&sock), "READY=1");
    assert_eq!(kid.wait().code(), Some(0));

    let mut kid = Kid::spawn(child_command("notify_env"));
    assert_eq!(kid.line(), "none", "no NOTIFY_SOCKET: no notifier");
    assert_eq!(kid.wait().code(), Some(0));
}

// --------------------------------------------------------------- logging

/// Runs the "log" child with stderr in a file; `journal` sets
/// JOURNAL_STREAM to that file's dev:ino (or to a mismatch).
fn child_log(journal: bool, level: &str, rust_log: Option<&str>) -> Vec<String> {
    let dir = TempDir::new("log");
    let path = dir.path().join("stderr");
    let file = fs::File::create(&path).unwrap();
    let meta = file.metadata().unwrap();
    let stream = if journal {
        format!("{}:{}", meta.dev(), meta.ino())
    } else {
        format!("{}:{}", meta.dev(), meta.ino() + 1)
    };
    let mut c = child_command("log");
    c.env("JOURNAL_STREAM", stream)
        .env(LEVEL_VAR, level)
        .stderr(file);
    if let Some(r) = rust_log {
        c.env("RUST_LOG", r);
    }
    let mut kid = Kid::spawn(c);
    assert_eq!(kid.wait().code(), Some(0));
    fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn journal_lines_carry_syslog_priorities() {
    let lines = child_log(true, "info", None);
    assert_eq!(
        lines,
        [
            "<3>alert=feed_down feed=x",
            "<4>plain failure",
            "<4>a warning",
            "<6>an info",
            "<5>alert=feed_recovered feed=x",
        ]
    );
}

#[test]
fn notices_pass_a_warn_level_and_rust_log_overrides() {
    let lines = child_log(true, "warn", None);
    assert_eq!(
        lines,
        [
            "<3>alert=feed_down feed=x",
            "<4>plain failure",
            "<4>a warning",
            "<5>alert=feed_recovered feed=x"
        ]
    );
    let lines = child_log(true, "warn", Some("debug"));
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert_eq!(lines[5], "<7>a debug");
}

#[test]
fn terminal_lines_are_timestamped_when_stderr_is_not_the_journal() {
    let lines = child_log(false, "info", None);
    let rest: Vec<&str> = lines
        .iter()
        .map(|l| {
            let (ts, rest) = l.split_at(24);
            let b = ts.as_bytes();
            assert!(
                b[4] == b'-' && b[10] == b'T' && b[19] == b'.' && b[23] == b'Z',
                "{l}"
            );
            assert!(ts.starts_with("20"), "{l}");
            rest
        })
        .collect();
    assert_eq!(
        rest,
        [
            " ERROR alert=feed_down feed=x",
            " WARN plain failure",
            " WARN a warning",
            " INFO an info",
            " NOTICE alert=feed_recovered feed=x",
        ]
    );
}

// ---------------------------------------------------------------- status

#[test]
fn write_atomic_never_shows_a_partial_file() {
    let dir = TempDir::new("atomic");
    let path = dir.path().join(show::STATUS_FILE_NAME);
    write_atomic(&path, &doc_with_pid(0, 40)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (path, done) = (path.clone(), done.clone());
        thread::spawn(move || {
            for i in 1..=400u32 {
                // Even writes are long, odd ones short: a torn read would mix them.
                let feeds = if i % 2 == 0 { 40 } else { 1 };
                write_atomic(&path, &doc_with_pid(i, feeds)).unwrap();
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut reads = 0;
    let mut seen = HashSet::new();
    while !done.load(Ordering::SeqCst) {
        let text = fs::read_to_string(&path).expect("the file is always there");
        let doc: StatusDoc =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("partial read ({e}): {text}"));
        let expect = if doc.agent.pid % 2 == 0 { 40 } else { 1 };
        assert_eq!(doc.feeds.len(), expect, "mixed document");
        seen.insert(doc.agent.pid);
        reads += 1;
    }
    writer.join().unwrap();
    assert!(
        reads > 0 && seen.len() > 1,
        "reader raced the writer ({reads} reads, {} versions)",
        seen.len()
    );
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [show::STATUS_FILE_NAME], "no temp files left");
    let last: StatusDoc = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(last.agent.pid, 400);
}

#[test]
fn write_atomic_error_names_the_file() {
    let dir = TempDir::new("atomic-err");
    let path = dir.path().join("missing-folder/status.json");
    let err = write_atomic(&path, &doc_with_pid(1, 1)).unwrap_err();
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn observe_trusts_the_lock_not_the_status_file() {
    let dir = TempDir::new("observe");
    let status = dir.path().join(show::STATUS_FILE_NAME);
    assert_eq!(
        show::observe(dir.path()),
        Observed::NotRunning { stale: false }
    );

    // A dead agent's leftovers: pidfile with a PID, status naming it, no lock.
    fs::write(dir.path().join(lock::PIDFILE_NAME), "999999\n").unwrap();
    write_atomic(&status, &doc_with_pid(999_999, 1)).unwrap();
    assert_eq!(
        show::observe(dir.path()),
        Observed::NotRunning { stale: true }
    );

    let held = PidLock::acquire(dir.path()).unwrap();
    // Held by us, but the file is still the dead agent's.
    assert_eq!(
        show::observe(dir.path()),
        Observed::NotRunning { stale: true }
    );
    let doc = doc_with_pid(held.pid(), 3);
    write_atomic(&status, &doc).unwrap();
    assert_eq!(show::observe(dir.path()), Observed::Running(Box::new(doc)));

    fs::write(&status, "{\"schema\": 1, \"agent\": ").unwrap();
    match show::observe(dir.path()) {
        Observed::Unreadable(why) => assert!(
            why.contains("status.json is not a valid status document"),
            "{why}"
        ),
        other => panic!("expected Unreadable, got {other:?}"),
    }
    fs::remove_file(&status).unwrap();
    match show::observe(dir.path()) {
        Observed::Unreadable(why) => assert!(why.contains("may still be starting"), "{why}"),
        other => panic!("expected Unreadable, got {other:?}"),
    }
    drop(held);
    assert_eq!(
        show::observe(dir.path()),
        Observed::NotRunning { stale: false }
    );
}

#[test]
fn status_table_renders_a_real_document() {
    let doc = doc_with_pid(4242, 2);
    let now = UNIX_EPOCH + Duration::from_secs(1_795_338_003); // 2 s after updated_at
    let text = show::render_table(&doc, now);
    assert!(
        text.starts_with("agent    pid 4242, version 0.1.0, up 3s"),
        "{text}"
    );
    let feed0 = text.lines().find(|l| l.starts_with("feed0")).expect(&text);
    assert_eq!(
        feed0.split_whitespace().collect::<Vec<_>>(),
        ["feed0", "websocket", "live", "2s", "0ms", "0", "0", "-"],
        "an empty last error shows as -"
    );
    assert!(text.contains("updated  2s ago"), "{text}");
    assert_eq!(show::health(&doc), show::Health::AllLive);
}
