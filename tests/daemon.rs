//! The agent core, driven through the real binary: single instance, signals,
//! reload (SIGHUP and `brokerguard reload`), systemd notify, journald
//! prefixes and start failures at error priority, status exit codes, config
//! errors, and a stop that closes every live feed with 1000 without waiting
//! for read ticks.

mod common;
use brokerguard::sim::{SimConfig, SimHandle, SimTls, Simulator};
use common::*;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

fn no_feeds(dir: &TempDir) -> std::path::PathBuf {
    write_config(dir.path(), &agent_toml(dir.path(), ""))
}

fn pidfile_pid(dir: &TempDir) -> Option<u32> {
    std::fs::read_to_string(dir.join("run/brokerguard.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[test]
fn fifty_simultaneous_starts_leave_exactly_one_running() {
    let dir = TempDir::new("race");
    let cfg = no_feeds(&dir);
    let mut children: Vec<_> = (0..50)
        .map(|i| {
            let log = std::fs::File::create(dir.join(&format!("e{i}.log"))).unwrap();
            Command::new(BIN)
                .args(["run", "--config"])
                .arg(&cfg)
                .env_remove("NOTIFY_SOCKET")
                .stderr(log)
                .spawn()
                .unwrap()
        })
        .collect();
    // Every loser exits 75 on its own; exactly one stays.
    let mut losers = 0;
    let mut survivors = Vec::new();
    for (i, c) in children.iter_mut().enumerate() {
        let waited = wait_exit_quiet(c, Duration::from_secs(10));
        match waited {
            Some(code) => {
                assert_eq!(
                    code,
                    75,
                    "copy {i} exited {code}: {}",
                    std::fs::read_to_string(dir.join(&format!("e{i}.log"))).unwrap()
                );
                let err = std::fs::read_to_string(dir.join(&format!("e{i}.log"))).unwrap();
                assert!(
                    err.contains("another brokerguard is running (pid "),
                    "{err}"
                );
                losers += 1;
            }
            None => survivors.push(i),
        }
    }
    assert_eq!(
        survivors.len(),
        1,
        "survivors {survivors:?}, losers {losers}"
    );
    let winner = &mut children[survivors[0]];
    assert!(wait_for(Duration::from_secs(5), || pidfile_pid(&dir)
        == Some(winner.id())));
    assert_eq!(stop_agent(winner), Some(0));
}

/// Waits up to `d` for an exit; None if still running (left running).
fn wait_exit_quiet(c: &mut std::process::Child, d: Duration) -> Option<i32> {
    let end = Instant::now() + d;
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            return st.code();
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigkill_leaves_a_lock_the_next_start_takes_over() {
    let dir = TempDir::new("kill9");
    let cfg = no_feeds(&dir);
    let mut first = spawn_agent(dir.path(), &cfg, &[]);
    assert!(wait_for(Duration::from_secs(10), || pidfile_pid(&dir)
        == Some(first.id())));
    send_signal(&first, libc::SIGKILL);
    first.wait().unwrap();
    assert!(
        dir.join("run/brokerguard.pid").exists(),
        "SIGKILL leaves the pidfile behind"
    );
    let started = Instant::now();
    let mut second = spawn_agent(dir.path(), &cfg, &[]);
    assert!(wait_for(Duration::from_secs(10), || pidfile_pid(&dir)
        == Some(second.id())));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(stop_agent(&mut second), Some(0));
}

#[test]
fn sigterm_stops_gracefully_and_removes_the_pidfile() {
    let dir = TempDir::new("term");
    let cfg = no_feeds(&dir);
    let mut agent = spawn_agent(dir.path(), &cfg, &[]);
    assert!(wait_for(Duration::from_secs(10), || status_json(
        dir.path()
    )
    .is_some()));
    let t = Instant::now();
    send_signal(&agent, libc::SIGTERM);
    let st =
        wait_exit(&mut agent, Duration::from_secs(10)).expect("stopped within the stop timeout");
    assert_eq!(st.code(), Some(0), "{}", stderr_of(dir.path()));
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(!dir.join("run/brokerguard.pid").exists());
    assert!(stderr_of(dir.path()).contains("stopped cleanly"));
}

#[test]
fn sighup_reloads_a_good_config_and_keeps_the_old_one_on_a_bad_one() {
    let dir = TempDir::new("hup");
    let cfg = no_feeds(&dir);
    let mut agent = spawn_agent(dir.path(), &cfg, &[]);
    assert!(wait_for(Duration::from_secs(10), || status_json(
        dir.path()
    )
    .is_some()));
    // Good: a new log level, accepted.
    std::fs::write(
        &cfg,
        agent_toml(dir.path(), "").replace("log_level = \"info\"", "log_level = \"debug\""),
    )
    .unwrap();
    send_signal(&agent, libc::SIGHUP);
    assert!(wait_for(Duration::from_secs(5), || stderr_of(dir.path())
        .contains("configuration reloaded")));
    // Bad: an unknown key. Still running, error names the line.
    std::fs::write(
        &cfg,
        format!("{}bogus_key = 1\n", agent_toml(dir.path(), "")),
    )
    .unwrap();
    send_signal(&agent, libc::SIGHUP);
    assert!(wait_for(Duration::from_secs(5), || stderr_of(dir.path())
        .contains("alert=config_invalid")));
    let err = stderr_of(dir.path());
    assert!(err.contains("bogus_key"), "{err}");
    assert!(
        agent.try_wait().unwrap().is_none(),
        "still running after a bad reload"
    );
    assert_eq!(stop_agent(&mut agent), Some(0));
}

#[test]
fn notify_socket_gets_the_exact_messages() {
    let dir = TempDir::new("notify");
    let cfg = no_feeds(&dir);
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut agent = spawn_agent(
        dir.path(),
        &cfg,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    let mut got: Vec<String> = Vec::new();
    let recv_until = |got: &mut Vec<String>, pred: &dyn Fn(&str) -> bool| {
        let mut buf = [0u8; 4096];
        loop {
            let n = sock.recv(&mut buf).expect("a notify message within 10 s");
            let m = String::from_utf8_lossy(&buf[..n]).to_string();
            got.push(m.clone());
            if pred(&m) {
                return;
            }
        }
    };
    recv_until(&mut got, &|m| m == "READY=1");
    assert!(
        got.iter()
            .any(|m| m == "STATUS=running; no feeds configured"),
        "{got:?}"
    );
    recv_until(&mut got, &|m| m == "WATCHDOG=1");
    send_signal(&agent, libc::SIGHUP);
    recv_until(&mut got, &|m| m.starts_with("RELOADING=1"));
    let reloading = got.last().unwrap().clone();
    let usec = reloading
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .expect(&reloading);
    assert!(usec.parse::<u64>().unwrap() > 0);
    recv_until(&mut got, &|m| m == "READY=1");
    send_signal(&agent, libc::SIGTERM);
    recv_until(&mut got, &|m| m == "STOPPING=1");
    assert_eq!(
        wait_exit(&mut agent, Duration::from_secs(10)).and_then(|s| s.code()),
        Some(0)
    );
}

#[test]
fn journald_stderr_gets_priority_prefixes_without_timestamps() {
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new("journal");
    let cfg = no_feeds(&dir);
    let log = std::fs::File::create(dir.join("stderr.log")).unwrap();
    let meta = log.metadata().unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let mut agent = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .env("JOURNAL_STREAM", &stream)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("RUST_LOG")
        .stderr(log)
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(10), || stderr_of(dir.path())
        .contains("ready")));
    assert_eq!(stop_agent(&mut agent), Some(0));
    let text = stderr_of(dir.path());
    for line in text.lines() {
        assert!(
            line.starts_with("<6>") || line.starts_with("<5>") || line.starts_with("<4>"),
            "{line}"
        );
        assert!(
            !line.contains("T") || !line[3..].starts_with("20"),
            "timestamp in {line}"
        );
    }
    // Without a matching JOURNAL_STREAM: timestamped terminal lines.
    let dir2 = TempDir::new("terminal");
    let cfg2 = no_feeds(&dir2);
    let mut agent = spawn_agent(dir2.path(), &cfg2, &[("JOURNAL_STREAM", "1:1")]);
    assert!(wait_for(Duration::from_secs(10), || stderr_of(dir2.path())
        .contains("ready")));
    assert_eq!(stop_agent(&mut agent), Some(0));
    let first = stderr_of(dir2.path()).lines().next().unwrap().to_string();
    assert!(
        first.starts_with("20") && first.contains("Z INFO"),
        "{first}"
    );
}

fn status_code(cfg: &std::path::Path) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["status", "--config"])
        .arg(cfg)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn status_exit_codes_running_degraded_and_not_running() {
    let dir = TempDir::new("status");
    // A feed pointing at a closed port: degraded.
    let body = format!(
        "{}\n[[feed]]\nname = \"down\"\nbroker = \"websocket\"\nurl = \"ws://127.0.0.1:9/\"\n",
        agent_toml(dir.path(), "")
    );
    let cfg = write_config(dir.path(), &body);
    let (code, text) = status_code(&cfg);
    assert_eq!(code, 3, "{text}");
    // No configuration file at all, no agent: not running (3), and why.
    let (code, text) = status_code(&dir.join("missing.toml"));
    assert_eq!(code, 3, "{text}");
    assert!(
        text.contains("not running") && text.contains("missing.toml: cannot read"),
        "{text}"
    );
    let mut agent = spawn_agent(dir.path(), &cfg, &[]);
    assert!(wait_for(Duration::from_secs(10), || status_json(
        dir.path()
    )
    .is_some()));
    let (code, text) = status_code(&cfg);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("down"), "{text}");
    // No feeds: all live.
    let dir2 = TempDir::new("status2");
    let cfg2 = no_feeds(&dir2);
    let mut agent2 = spawn_agent(dir2.path(), &cfg2, &[]);
    assert!(wait_for(Duration::from_secs(10), || status_json(
        dir2.path()
    )
    .is_some()));
    assert_eq!(status_code(&cfg2).0, 0);
    // SIGKILL leaves a stale status.json: not running.
    send_signal(&agent2, libc::SIGKILL);
    agent2.wait().unwrap();
    assert!(dir2.join("run/status.json").exists());
    let (code, text) = status_code(&cfg2);
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("not running"), "{text}");
    assert_eq!(stop_agent(&mut agent), Some(0));
}

#[test]
fn config_errors_name_file_line_and_column_and_exit_78() {
    let dir = TempDir::new("cfgerr");
    let body = format!(
        "{}\n[[feed]]\nname = \"Bad Name\"\nbroker = \"websocket\"\nurl = \"ws://127.0.0.1:1/\"\nstal_after = \"5s\"\n",
        agent_toml(dir.path(), "")
    );
    let cfg = write_config(dir.path(), &body);
    for args in [vec!["config", "check"], vec!["run"]] {
        let out = Command::new(BIN)
            .args(&args)
            .arg("--config")
            .arg(&cfg)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(78), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let file = cfg.display().to_string();
        assert!(err.contains(&format!("{file}:9:")), "{err}");
        assert!(err.contains(&format!("{file}:12:1")), "{err}");
        assert!(err.contains("stall_after"), "did you mean: {err}");
    }
    let out = Command::new(BIN).args(["run", "--bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn shipped_examples_validate() {
    let root = env!("CARGO_MANIFEST_DIR");
    for f in ["etc/brokerguard.toml", "etc/dev.toml"] {
        let out = Command::new(BIN)
            .args(["config", "check", "--config"])
            .arg(format!("{root}/{f}"))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// stderr into `<dir>/stderr.log` with `$JOURNAL_STREAM` naming that file,
/// as systemd connects a service's stderr to the journal.
fn journal_command(dir: &TempDir, args: &[&str]) -> Command {
    use std::os::unix::fs::MetadataExt;
    let log = std::fs::File::create(dir.join("stderr.log")).unwrap();
    let meta = log.metadata().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .env_remove("NOTIFY_SOCKET")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(log);
    cmd
}

#[test]
fn failed_starts_end_with_error_priority_alerts_naming_the_problem() {
    // A bad configuration (exit 78): every problem at file:line:col, at <3>.
    let dir = TempDir::new("startfail");
    let body = format!(
        "{}\n[[feed]]\nname = \"Bad Name\"\nbroker = \"websocket\"\nurl = \"ws://127.0.0.1:1/\"\nstal_after = \"5s\"\n",
        agent_toml(dir.path(), "")
    );
    let cfg = write_config(dir.path(), &body);
    let cfg_s = cfg.to_str().unwrap();
    let st = journal_command(&dir, &["run", "--config", cfg_s])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(78));
    let err = stderr_of(dir.path());
    let file = cfg.display().to_string();
    assert!(
        err.lines()
            .all(|l| l.starts_with("<3>alert=start_failed reason=config ")),
        "{err}"
    );
    assert!(err.contains(&format!("file={file} problems=2")), "{err}");
    assert!(err.contains(&format!("at={file}:9:")), "{err}");
    assert!(
        err.contains(&format!("at={file}:12:1 key=feed[0].stal_after")),
        "{err}"
    );
    assert!(err.contains("stall_after"), "did you mean: {err}");

    // A missing file is a configuration problem too.
    let missing = dir.join("nope.toml");
    let st = journal_command(&dir, &["run", "--config", missing.to_str().unwrap()])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(78));
    let err = stderr_of(dir.path());
    assert!(
        err.starts_with(&format!(
            "<3>alert=start_failed reason=config file={}",
            missing.display()
        )),
        "{err}"
    );

    // The lock held by a running agent (exit 75): the holder's pid, at <3>.
    let good = TempDir::new("startfail-lock");
    let good_cfg = no_feeds(&good);
    let mut first = spawn_agent(good.path(), &good_cfg, &[]);
    assert!(wait_for(Duration::from_secs(10), || pidfile_pid(&good)
        == Some(first.id())));
    let st = journal_command(&dir, &["run", "--config", good_cfg.to_str().unwrap()])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(75));
    let err = stderr_of(dir.path());
    let alert = err
        .lines()
        .find(|l| l.starts_with("<3>"))
        .unwrap_or_else(|| panic!("no <3> line: {err}"));
    assert!(
        alert.starts_with(&format!(
            "<3>alert=start_failed reason=locked pid={} ",
            first.id()
        )),
        "{err}"
    );
    // Nothing but alerts at error priority.
    assert!(
        err.lines()
            .filter(|l| l.starts_with("<3>"))
            .all(|l| l.starts_with("<3>alert=")),
        "{err}"
    );
    assert_eq!(stop_agent(&mut first), Some(0));
}

fn reload_cli(cfg: &std::path::Path) -> CliRun {
    run_cli(
        &[
            "reload",
            "--config",
            cfg.to_str().unwrap(),
            "--timeout",
            "10s",
        ],
        &[],
        None,
    )
}

fn quiet_sim(
    tokens: &[&str],
    tls: Option<SimTls>,
) -> (SimHandle, std::sync::mpsc::Receiver<String>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let sim = Simulator::start(SimConfig {
        tokens: tokens.iter().map(|t| t.to_string()).collect(),
        data_every: None,
        // Rare heartbeats: the feeds' reads block for their whole tick.
        heartbeat_every: Some(Duration::from_secs(5)),
        tls,
        events: Some(tx),
        ..SimConfig::default()
    })
    .unwrap();
    (sim, rx)
}

#[test]
fn reload_command_reports_applied_rejected_and_not_running() {
    let dir = TempDir::new("reloadcmd");
    let (sim, _events) = quiet_sim(&["tok-reload-1"], None);
    std::fs::write(dir.join("credentials.env"), "SIG_TOKEN=tok-reload-1\n").unwrap();
    let base = agent_toml(dir.path(), "preflight = \"off\"");
    let one = format!("{base}{}", ws_feed_toml("a", &sim.url(), "SIG_TOKEN", ""));
    let cfg = write_config(dir.path(), &one);
    let mut agent = spawn_agent(dir.path(), &cfg, &[]);
    assert!(
        wait_for(Duration::from_secs(15), || feed_state(dir.path(), "a")
            .as_deref()
            == Some("live")),
        "{}",
        stderr_of(dir.path())
    );

    // Applied: once the command returns, the new feed is already in status.json.
    let two = format!("{one}{}", ws_feed_toml("b", &sim.url(), "SIG_TOKEN", ""));
    std::fs::write(&cfg, &two).unwrap();
    let r = reload_cli(&cfg);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.contains("applied (reload 1)"), "{r:?}");
    assert!(
        feed_state(dir.path(), "b").is_some(),
        "{:?}",
        status_json(dir.path())
    );
    assert!(wait_for(Duration::from_secs(15), || feed_state(
        dir.path(),
        "b"
    )
    .as_deref()
        == Some("live")));

    // Rejected: 78, the problems at file:line:col, and the old feeds untouched.
    let connections = sim.stats().connections_accepted;
    std::fs::write(&cfg, format!("{two}stal_after = \"5s\"\n")).unwrap();
    let r = reload_cli(&cfg);
    assert_eq!(r.code, Some(78), "{r:?}");
    let file = cfg.display().to_string();
    assert!(r.stderr.contains(&format!("{file}:")), "{r:?}");
    assert!(r.stderr.contains("stal_after"), "{r:?}");
    assert!(
        r.stderr.contains("keeps running the configuration it had"),
        "{r:?}"
    );
    let doc = status_json(dir.path()).unwrap();
    assert_eq!(doc["agent"]["reload"]["generation"], 2, "{doc}");
    assert_eq!(doc["agent"]["reload"]["result"], "rejected", "{doc}");
    assert!(
        holds_for(Duration::from_millis(500), || {
            feed_state(dir.path(), "a").as_deref() == Some("live")
                && feed_state(dir.path(), "b").as_deref() == Some("live")
                && sim.stats().connections_accepted == connections
        }),
        "a rejected reload disturbed the running feeds: {:?}",
        status_json(dir.path())
    );
    assert!(agent.try_wait().unwrap().is_none(), "the agent exited");
    // `status` shows the running agent's state, the rejection under it.
    let (code, text) = status_code(&cfg);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("pid ") && text.contains("live"), "{text}");
    assert!(
        text.contains("reload   2 rejected") && text.contains("stal_after"),
        "{text}"
    );
    // A typo in --config: the file is missing (78), whoever runs.
    let typo = dir.join("nope.toml");
    let r = reload_cli(&typo);
    assert_eq!(r.code, Some(78), "{r:?}");
    assert!(
        r.stderr
            .contains("nope.toml: cannot read the configuration")
            && !r.stderr.contains("not running"),
        "{r:?}"
    );

    // A good file again: applied, the next generation.
    std::fs::write(&cfg, &two).unwrap();
    let r = reload_cli(&cfg);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.contains("applied (reload 3)"), "{r:?}");

    // No agent: 3.
    assert_eq!(stop_agent(&mut agent), Some(0));
    let r = reload_cli(&cfg);
    assert_eq!(r.code, Some(3), "{r:?}");
    assert!(r.stderr.contains("not running"), "{r:?}");
    sim.stop();
}

fn tls_fixture(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

#[test]
fn sigterm_closes_every_live_feed_with_1000_without_waiting_for_read_ticks() {
    let dir = TempDir::new("faststop");
    let (ws, ws_events) = quiet_sim(&["tok-stop"], None);
    let (wss, wss_events) = quiet_sim(
        &["tok-stop"],
        Some(SimTls {
            cert_pem: std::fs::read(tls_fixture("server.pem")).unwrap(),
            key_pem: std::fs::read(tls_fixture("server.key")).unwrap(),
        }),
    );
    std::fs::write(dir.join("credentials.env"), "SIG_TOKEN=tok-stop\n").unwrap();
    let mut body = agent_toml(dir.path(), "preflight = \"off\"");
    for i in 0..3 {
        body.push_str(&ws_feed_toml(&format!("ws{i}"), &ws.url(), "SIG_TOKEN", ""));
    }
    let ca = format!("tls_ca_file = \"{}\"", tls_fixture("ca.pem").display());
    for i in 0..2 {
        body.push_str(&ws_feed_toml(
            &format!("wss{i}"),
            &wss.url(),
            "SIG_TOKEN",
            &ca,
        ));
    }
    let cfg = write_config(dir.path(), &body);
    let mut agent = spawn_agent(dir.path(), &cfg, &[]);
    let all_live = || {
        status_json(dir.path()).is_some_and(|d| {
            d["feeds"]
                .as_array()
                .is_some_and(|f| f.len() == 5 && f.iter().all(|f| f["state"] == "live"))
        })
    };
    assert!(
        wait_for(Duration::from_secs(20), all_live),
        "{}",
        stderr_of(dir.path())
    );
    let t = Instant::now();
    send_signal(&agent, libc::SIGTERM);
    let st = wait_exit(&mut agent, Duration::from_secs(15)).expect("stopped");
    let took = t.elapsed();
    let log = stderr_of(dir.path());
    assert_eq!(st.code(), Some(0), "{log}");
    assert!(log.contains("stopped cleanly"), "{log}");
    // Each feed's read blocks for up to a second and the watchdog ticked once
    // a second: a stop that waited for either took a second or more.
    assert!(
        took < Duration::from_millis(600),
        "stop took {took:?}:\n{log}"
    );
    ws.stop();
    wss.stop();
    let closed = |rx: &std::sync::mpsc::Receiver<String>| {
        rx.try_iter()
            .filter(|e| e.ends_with("closed by client (Some(1000))"))
            .count()
    };
    assert_eq!(closed(&ws_events), 3, "ws feeds closed with 1000:\n{log}");
    assert_eq!(closed(&wss_events), 2, "wss feeds closed with 1000:\n{log}");
}

/// Insecure set-ups are said out loud, not only by `doctor`: a credentials
/// file every user can read is a warning at `config check` and an
/// error-level alert at start; a literal secret in `auth` is a warning
/// naming the key and the fix (and never the secret).
#[test]
fn insecure_setups_are_said_out_loud() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("insecure");
    let canary = "CANARY-literal-7c2d";
    let body = agent_toml(dir.path(), "preflight = \"off\"")
        + &format!(
            "[[feed]]\nname = \"sig\"\nbroker = \"websocket\"\nurl = \"ws://127.0.0.1:9/\"\nauth = '{{\"token\":\"{canary}\"}}'\n"
        );
    let cfg = write_config(dir.path(), &body);
    let creds = dir.join("credentials.env");
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg_s = cfg.to_string_lossy().to_string();
    let check = run_cli(&["config", "check", "--config", &cfg_s], &[], None);
    assert_eq!(check.code, Some(0), "{}", check.all());
    assert!(
        check.stderr.contains(&format!(
            "warning: credentials file {} has mode 0644: every user on this host can read it",
            creds.display()
        )),
        "{}",
        check.stderr
    );
    assert!(
        check
            .stderr
            .contains("warning: feed \"sig\": auth has no ${NAME} reference"),
        "{}",
        check.stderr
    );
    assert!(!check.all().contains(canary), "{}", check.all());

    let mut agent = spawn_agent(dir.path(), &cfg, &[]);
    assert!(
        wait_for(Duration::from_secs(10), || stderr_of(dir.path())
            .contains("ERROR alert=insecure_credentials file=")),
        "{}",
        stderr_of(dir.path())
    );
    stop_agent(&mut agent);
    assert!(!stderr_of(dir.path()).contains(canary));
}

/// Messages an operator reads are whole and plain: names quoted, not
/// debug-formatted; a count agrees with its noun.
#[test]
fn check_and_config_check_messages_read_plainly() {
    let dir = TempDir::new("msgs");
    let body = agent_toml(dir.path(), "")
        + "[[feed]]\nname = \"sig\"\nbroker = \"websocket\"\nurl = \"ws://127.0.0.1:9/\"\n";
    let cfg = write_config(dir.path(), &body);
    let cfg_s = cfg.to_string_lossy().to_string();
    let check = run_cli(&["check", "nosuch", "--config", &cfg_s], &[], None);
    assert_eq!(check.code, Some(64), "{}", check.all());
    assert!(
        check.stderr.contains("no feed named \"nosuch\"")
            && check.stderr.contains("its feeds are \"sig\""),
        "{}",
        check.stderr
    );
    assert!(!check.stderr.contains("[\""), "{}", check.stderr);
    let shown = run_cli(&["config", "check", "--config", &cfg_s], &[], None);
    assert!(
        shown.stderr.contains("configuration is valid (1 feed)"),
        "{}",
        shown.stderr
    );
}

/// A configuration with one feed, "sig", whose credential SIG_TOKEN is not
/// set (an empty credentials file), at a path that is not the default.
fn feed_without_its_credential(tag: &str) -> (TempDir, std::path::PathBuf, String) {
    let dir = TempDir::new(tag);
    let body = agent_toml(dir.path(), "preflight = \"off\"")
        + &ws_feed_toml("sig", "ws://127.0.0.1:9/", "SIG_TOKEN", "");
    let cfg = write_config(dir.path(), &body);
    let cfg_s = cfg.to_string_lossy().to_string();
    (dir, cfg, cfg_s)
}

/// Waits until the feed "sig" is `waiting` for its credential.
fn wait_sig_waiting(dir: &TempDir) {
    assert!(
        wait_for(Duration::from_secs(10), || feed_state(dir.path(), "sig")
            .as_deref()
            == Some("waiting")),
        "{}",
        stderr_of(dir.path())
    );
}

/// Every fix command printed (in the log, `status`, `doctor`, `check`)
/// carries the operator's `--config` when it is not the default, so a
/// pasted fix acts on the same configuration.
#[test]
fn every_fix_command_printed_carries_the_operators_config() {
    let (dir, cfg, cfg_s) = feed_without_its_credential("fixcfg");
    let mut agent = spawn_agent(dir.path(), &cfg, &[]);
    wait_sig_waiting(&dir);
    let (_, status) = status_code(&cfg);
    assert_eq!(stop_agent(&mut agent), Some(0));
    let doctor = run_cli(&["doctor", "--config", &cfg_s], &[], None);
    let check = run_cli(&["check", "--config", &cfg_s], &[], None);
    let flag = format!("--config {cfg_s}");
    for (what, text) in [
        ("log", stderr_of(dir.path())),
        ("status", status),
        ("doctor", doctor.all()),
        ("check", check.all()),
    ] {
        let fixes: Vec<&str> = text
            .split("sudo brokerguard ")
            .skip(1)
            .map(|rest| rest.split(['`', ')', '\n', '"']).next().unwrap_or(""))
            .collect();
        assert!(
            fixes
                .iter()
                .any(|f| f.starts_with("set-credential SIG_TOKEN")),
            "{what} suggests no set-credential: {text}"
        );
        for f in fixes {
            assert!(f.ends_with(&flag), "{what}: `{f}` lacks {flag}: {text}");
        }
    }
}

/// A credential that was never set is missing (the feed waits), not lost;
/// `config check` warns about a `${NAME}` no credential source defines.
#[test]
fn a_never_set_credential_is_missing_not_lost_and_config_check_warns() {
    let (dir, cfg, cfg_s) = feed_without_its_credential("neverset");
    let check = run_cli(&["config", "check", "--config", &cfg_s], &[], None);
    assert_eq!(check.code, Some(0), "{}", check.all());
    assert!(
        check
            .stderr
            .contains("warning: ${SIG_TOKEN} (feed sig) is defined by no credential source"),
        "{}",
        check.stderr
    );
    let mut agent = spawn_agent(dir.path(), &cfg, &[]);
    assert!(
        wait_log(
            dir.path(),
            "WARN credential_missing name=SIG_TOKEN reason=\"not set: the feeds that need it wait",
            Duration::from_secs(10)
        ),
        "{}",
        stderr_of(dir.path())
    );
    // The feed waits for it (once ready, the credential watcher runs).
    wait_sig_waiting(&dir);
    // Set for the first time: said as set, never as lost or restored.
    let tmp = dir.join("credentials.env.new");
    std::fs::write(&tmp, "SIG_TOKEN=tok-never-1\n").unwrap();
    std::fs::rename(&tmp, dir.join("credentials.env")).unwrap();
    assert!(
        wait_log(
            dir.path(),
            "credential_set name=SIG_TOKEN fingerprint=hmac:",
            Duration::from_secs(10)
        ),
        "{}",
        stderr_of(dir.path())
    );
    assert_eq!(stop_agent(&mut agent), Some(0));
    let log = stderr_of(dir.path());
    assert!(
        !log.contains("credential_lost") && !log.contains("credential_restored"),
        "{log}"
    );
    // Defined now: no warning.
    let check = run_cli(&["config", "check", "--config", &cfg_s], &[], None);
    assert!(!check.stderr.contains("defined by no"), "{}", check.stderr);
}

/// README's first feed: the file it writes is valid, and it sets
/// `alert_after` and `stable_after` short enough that its "Break it" step
/// shows `feed_down` and `feed_recovered` in seconds, and says how long each
/// takes.
#[test]
fn the_readme_first_feed_is_valid_and_shows_its_alerts_in_seconds() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("cat > run/first.toml <<'TOML'\n")
        .expect("README's first feed writes run/first.toml")
        + "cat > run/first.toml <<'TOML'\n".len();
    let end = start + readme[start..].find("\n   TOML\n").unwrap();
    let body: String = readme[start..end]
        .lines()
        .map(|l| l.strip_prefix("   ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let dir = TempDir::new("readme-first");
    let body = body.replace("./run", &dir.path().display().to_string());
    let cfg = write_config(dir.path(), &format!("{body}\n"));
    let out = run_cli(
        &["config", "check", "--config", cfg.to_str().unwrap()],
        &[],
        None,
    );
    assert_eq!(out.code, Some(0), "{}", out.all());
    // The feed's effective values (the agent's defaults come first).
    let feed = &out.stdout[out.stdout.find("[[feed]]").expect("a feed")..];
    let secs = |key: &str| -> u64 {
        let at = feed
            .find(&format!("{key} = \""))
            .unwrap_or_else(|| panic!("no {key} in:\n{feed}"));
        let v = feed[at..].split('"').nth(1).unwrap();
        brokerguard::config::parse_duration(v).unwrap().as_secs()
    };
    assert!(secs("alert_after") <= 10, "{}", out.stdout);
    assert!(secs("stable_after") <= 10, "{}", out.stdout);
    let step = &readme[readme.find("4. **Break it.**").unwrap()..];
    let step = &step[..step.find("\n\n").unwrap()];
    for said in [
        "`alert_after` after the last",
        "5 s with the file above",
        "for `stable_after` (5 s here",
    ] {
        assert!(step.contains(said), "{said:?} not in: {step}");
    }
}
