//! Credentials end to end, against the real binary and the in-process
//! simulator: token rotation through every way a file gets rewritten (the
//! feed reconnects with the new token, the PID stays), a feed on unchanged
//! credentials keeps its connection, malformed and half-written files keep
//! the last good values, deletion and restore are alerted at once, a parked
//! feed wakes on a new credential, `doctor` and `set-credential` as an
//! operator runs them, and the canary sweep over every output.
//!
//! Every assertion goes through what an operator or the bot can see: the
//! simulator's stats (which token it received, how many connections), the
//! agent's stderr, status.json, the fan-out socket and the commands' output.

mod common;
use brokerguard::credentials::dotenv;
use brokerguard::sim::{Fault, SimConfig, SimHandle, Simulator};
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const OLD: &str = "tok-old-5b2e91";
const NEW: &str = "tok-new-c4a7f3";
const OTHER: &str = "tok-other-81d0e2";

/// Generous: each of these normally takes well under a second, but the
/// machine is shared and builds run beside the tests.
const SLOW: Duration = Duration::from_secs(15);
/// How long "nothing happens" is watched for.
const QUIET: Duration = Duration::from_millis(1500);

/// A simulator sending data every 100 ms, or (`quiet`) only a heartbeat
/// every 5 s, so the feed's reads block for their whole tick.
fn sim_accepting(tokens: &[&str], quiet: bool) -> SimHandle {
    let (data_every, heartbeat_every) = if quiet {
        (None, Duration::from_secs(5))
    } else {
        (Some(Duration::from_millis(100)), Duration::from_millis(200))
    };
    Simulator::start(SimConfig {
        tokens: tokens.iter().map(|t| t.to_string()).collect(),
        data_every,
        heartbeat_every: Some(heartbeat_every),
        ..SimConfig::default()
    })
    .unwrap()
}

/// An agent with feed `sig` (needs `SIG_TOKEN`) on its own simulator and,
/// optionally, feed `other` (needs `OTHER_TOKEN`) on a second simulator.
struct Rig {
    dir: TempDir,
    sig: SimHandle,
    other: Option<SimHandle>,
    agent: Agent,
    bot: FanoutClient,
    /// Lines kept in the credentials file besides `SIG_TOKEN`.
    keep: String,
}

struct RigSpec<'a> {
    tag: &'a str,
    /// Tokens the `sig` simulator accepts at first.
    accepted: &'a [&'a str],
    /// The `SIG_TOKEN` the credentials file starts with.
    token: &'a str,
    with_other: bool,
    /// The credentials file is a symlink into `targets/`.
    symlinked: bool,
    /// Extra `[agent]` lines.
    agent_extra: &'a str,
    /// Extra feeds (TOML; `{SIG_URL}` is the `sig` simulator's URL).
    extra_feeds: String,
    /// The agent's environment.
    env: &'a [(&'a str, &'a str)],
    /// A fault the `sig` simulator has from the start.
    fault: Option<Fault>,
    log_level: &'a str,
    /// The `sig` simulator sends no data, only rare heartbeats.
    quiet: bool,
    /// `agent.preflight`: off by default, as the tests count the feeds' own
    /// connections and tokens; the canary sweep runs it.
    preflight: &'a str,
}

impl<'a> RigSpec<'a> {
    fn new(tag: &'a str) -> Self {
        RigSpec {
            tag,
            accepted: &[OLD],
            token: OLD,
            with_other: false,
            symlinked: false,
            agent_extra: "",
            extra_feeds: String::new(),
            env: &[],
            fault: None,
            log_level: "info",
            quiet: false,
            preflight: "off",
        }
    }
}

impl Rig {
    fn start(spec: RigSpec) -> Rig {
        let dir = TempDir::new(spec.tag);
        let sig = sim_accepting(spec.accepted, spec.quiet);
        if let Some(f) = spec.fault.clone() {
            sig.set_fault(f);
        }
        let other = spec.with_other.then(|| sim_accepting(&[OTHER], false));
        let keep = if spec.with_other {
            format!("# feed other\nOTHER_TOKEN={OTHER}\n")
        } else {
            "# brokerguard test credentials\n".to_string()
        };
        let creds = dir.join("credentials.env");
        let content = format!("{keep}SIG_TOKEN={}\n", spec.token);
        if spec.symlinked {
            std::fs::create_dir_all(dir.join("targets")).unwrap();
            std::fs::write(dir.join("targets/v0.env"), content).unwrap();
            std::os::unix::fs::symlink("targets/v0.env", &creds).unwrap();
        } else {
            std::fs::write(&creds, content).unwrap();
        }
        let mut body = agent_toml(
            dir.path(),
            &format!(
                "alert_after = \"2s\"\npreflight = \"{}\"\n{}",
                spec.preflight, spec.agent_extra
            ),
        )
        .replace(
            "log_level = \"info\"",
            &format!("log_level = \"{}\"", spec.log_level),
        );
        body.push_str(&ws_feed_toml("sig", &sig.url(), "SIG_TOKEN", ""));
        if let Some(o) = &other {
            body.push_str(&ws_feed_toml("other", &o.url(), "OTHER_TOKEN", ""));
        }
        body.push_str(&spec.extra_feeds.replace("{SIG_URL}", &sig.url()));
        let cfg = write_config(dir.path(), &body);
        let agent = spawn_agent(dir.path(), &cfg, spec.env);
        let bot = FanoutClient::connect(&dir.join("run/feeds.sock"), SLOW);
        Rig {
            dir,
            sig,
            other,
            agent,
            bot,
            keep,
        }
    }

    fn creds(&self) -> PathBuf {
        self.dir.join("credentials.env")
    }

    fn config(&self) -> PathBuf {
        self.dir.join("brokerguard.toml")
    }

    fn log(&self) -> String {
        stderr_of(self.dir.path())
    }

    fn state(&self, feed: &str) -> Option<String> {
        feed_state(self.dir.path(), feed)
    }

    fn wait_state(&self, feed: &str, want: &str) {
        assert!(
            wait_for(SLOW, || self.state(feed).as_deref() == Some(want)),
            "feed {feed} never became {want} (now {:?}); stderr:\n{}",
            self.state(feed),
            self.log()
        );
    }

    fn wait_log(&self, needle: &str) {
        assert!(
            wait_log(self.dir.path(), needle, SLOW),
            "never logged {needle:?}; stderr:\n{}",
            self.log()
        );
    }

    /// Live on `token`, as the `sig` simulator saw it.
    fn wait_live_on(&self, token: &str) {
        assert!(
            self.sig.wait_for(
                |st| st.auth_ok >= 1 && st.tokens_seen.last().map(String::as_str) == Some(token),
                SLOW
            ),
            "sig never authenticated with the expected token: {:?}; stderr:\n{}",
            self.sig.stats(),
            self.log()
        );
        self.wait_state("sig", "live");
    }

    /// `sig` live after the simulator received `token` (when another feed
    /// shares the simulator, so the last token seen may be the other's).
    fn wait_live_after(&self, token: &str) {
        assert!(
            self.sig
                .wait_for(|st| st.tokens_seen.iter().any(|t| t == token), SLOW),
            "{token} never reached the simulator: {:?}; stderr:\n{}",
            self.sig.stats(),
            self.log()
        );
        self.wait_state("sig", "live");
    }

    /// The agent is the process we started, still running.
    fn assert_same_process(&mut self) {
        assert!(
            self.agent.try_wait().unwrap().is_none(),
            "the agent exited; stderr:\n{}",
            self.log()
        );
        let pid = status_json(self.dir.path()).map(|d| d["agent"]["pid"].clone());
        assert_eq!(
            pid,
            Some(serde_json::json!(self.agent.id())),
            "status.json names another pid"
        );
    }

    fn credential(&self, name: &str) -> serde_json::Value {
        credential_status(self.dir.path(), name).unwrap_or_default()
    }

    /// Rewrites the credentials file with `style` so `SIG_TOKEN` goes from
    /// `old` to `new`, with the simulator accepting only `new`; returns once
    /// the feed is subscribed again on `new`, the PID unchanged and the
    /// rotation logged. Returns the time from the write to the bot hearing
    /// "subscribed" (the new connection is up; "live" waits for the
    /// broker's next data, which a quiet feed sends seconds later).
    fn rotate(&mut self, style: WriteStyle, old: &str, new: &str) -> Duration {
        self.sig.set_tokens([new]);
        let before = self.sig.stats();
        let start = Instant::now();
        style.apply(&self.creds(), &self.keep, old, new);
        assert!(
            self.sig.wait_for(
                |st| st.auth_ok > before.auth_ok
                    && st.tokens_seen.last().map(String::as_str) == Some(new),
                SLOW
            ),
            "{style:?}: the feed never reconnected with the new token: {:?}; stderr:\n{}",
            self.sig.stats(),
            self.log()
        );
        assert!(self.sig.stats().connections_accepted > before.connections_accepted);
        // status.json said live before the rotation too: the bot's socket
        // tells the new connection apart.
        let took = self.wait_state_line_since(start, "subscribed") - start;
        assert!(
            wait_for(SLOW, || rotation_logged(
                &self.log(),
                "sig",
                "SIG_TOKEN",
                old,
                new,
                style.has_gap()
            )),
            "{style:?}: no token_rotated line {} -> {}; stderr:\n{}",
            fp(old),
            fp(new),
            self.log()
        );
        // Main rewrites status.json just after handing the feed its new
        // credentials; on loopback the feed may be live again first.
        assert!(
            wait_for(SLOW, || self.credential("SIG_TOKEN")["fingerprint"]
                == fp(new)),
            "{}",
            self.credential("SIG_TOKEN")
        );
        // A rotation is not a connection failure.
        assert!(
            !self.log().contains("feed=sig class="),
            "{style:?}: logged as a failure:\n{}",
            self.log()
        );
        self.assert_same_process();
        took
    }

    /// When the bot was told `sig` is in `state`, after `start`.
    fn wait_state_line_since(&self, start: Instant, state: &str) -> Instant {
        let live = |v: &serde_json::Value| {
            v["feed"] == "sig" && v["event"] == "state" && v["state"] == state
        };
        let mut at = None;
        assert!(
            wait_for(SLOW, || {
                at = self.bot.first_after(start, live);
                at.is_some()
            }),
            "the bot never heard sig is {state} again; stderr:\n{}",
            self.log()
        );
        at.unwrap()
    }

    /// Stops the agent (exit 0) and the simulators; the folder stays until drop.
    fn finish(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        assert_eq!(stop_agent(&mut self.agent), Some(0), "{}", self.log());
        self.sig.stop();
        if let Some(o) = &self.other {
            o.stop();
        }
    }
}

/// `token_rotated feed=... name=... old=... new=...` from `old` to `new`.
/// Styles with a moment where the file is empty or gone (`has_gap`) may be
/// seen in two steps (old → none → new) when the writer is slow under load.
fn rotation_logged(log: &str, feed: &str, name: &str, old: &str, new: &str, gap: bool) -> bool {
    let line = |o: &str, n: &str| format!("token_rotated feed={feed} name={name} old={o} new={n}");
    log.contains(&line(&fp(old), &fp(new)))
        || (gap && log.contains(&line(&fp(old), "none")) && log.contains(&line("none", &fp(new))))
}

/// The ways operators, editors and tools rewrite a file (issue 4, item 6).
#[derive(Clone, Copy, Debug, PartialEq)]
enum WriteStyle {
    /// Write a temporary file in the same folder, then rename it over.
    RenameOver,
    /// `cp new.env credentials.env` (opens the existing file with O_TRUNC).
    CpOver,
    /// ftruncate to zero, then write into the same inode.
    TruncateAndWrite,
    /// `sed -i` (writes a new file in the folder and renames it over).
    SedInPlace,
    /// unlink, then create a new file of the same name.
    DeleteAndRecreate,
    /// The credentials file is a symlink; a new link to a new target is
    /// renamed over it (an atomic swap).
    SymlinkSwap,
}

impl WriteStyle {
    /// Every style, in an order that starts on a symlinked file: the swap,
    /// then writes through the link (`cp`, truncate), then the styles that
    /// replace the link with a plain file.
    const ALL: [WriteStyle; 6] = [
        WriteStyle::SymlinkSwap,
        WriteStyle::CpOver,
        WriteStyle::TruncateAndWrite,
        WriteStyle::SedInPlace,
        WriteStyle::RenameOver,
        WriteStyle::DeleteAndRecreate,
    ];

    /// The file is empty or absent for a moment.
    fn has_gap(self) -> bool {
        matches!(
            self,
            WriteStyle::CpOver | WriteStyle::TruncateAndWrite | WriteStyle::DeleteAndRecreate
        )
    }

    fn apply(self, file: &Path, keep: &str, old: &str, new: &str) {
        use std::io::{Seek, Write};
        let content = format!("{keep}SIG_TOKEN={new}\n");
        let dir = file.parent().unwrap();
        match self {
            WriteStyle::RenameOver => replace_by_rename(file, &content),
            WriteStyle::CpOver => {
                let staged = dir.join("staged.env");
                std::fs::write(&staged, &content).unwrap();
                run_tool(Command::new("cp").arg(&staged).arg(file));
            }
            WriteStyle::TruncateAndWrite => {
                let mut f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
                f.set_len(0).unwrap();
                f.rewind().unwrap();
                f.write_all(content.as_bytes()).unwrap();
            }
            WriteStyle::SedInPlace => {
                run_tool(
                    Command::new("sed")
                        .arg("-i")
                        .arg(format!("s/^SIG_TOKEN={old}$/SIG_TOKEN={new}/"))
                        .arg(file),
                );
                let now = std::fs::read_to_string(file).unwrap();
                assert!(now.contains(new), "sed did not rewrite the file: {now}");
            }
            WriteStyle::DeleteAndRecreate => {
                std::fs::remove_file(file).unwrap();
                std::fs::write(file, &content).unwrap();
            }
            WriteStyle::SymlinkSwap => {
                assert!(
                    std::fs::symlink_metadata(file)
                        .unwrap()
                        .file_type()
                        .is_symlink(),
                    "set up the rig with symlinked = true"
                );
                let target = format!("targets/{new}.env");
                std::fs::write(dir.join(&target), &content).unwrap();
                let link = dir.join("credentials.env.new-link");
                std::os::unix::fs::symlink(&target, &link).unwrap();
                std::fs::rename(&link, file).unwrap();
            }
        }
    }
}

fn run_tool(cmd: &mut Command) {
    let st = cmd.status().unwrap();
    assert!(st.success(), "{cmd:?} failed: {st}");
}

fn rotation_through(style: WriteStyle) {
    let tag = format!("rot{}", style as u8);
    let mut spec = RigSpec::new(&tag);
    spec.symlinked = style == WriteStyle::SymlinkSwap;
    let mut rig = Rig::start(spec);
    rig.wait_live_on(OLD);
    rig.assert_same_process();
    rig.rotate(style, OLD, NEW);
    if style == WriteStyle::SymlinkSwap {
        let link = std::fs::read_link(rig.creds()).unwrap();
        assert_eq!(link, PathBuf::from(format!("targets/{NEW}.env")));
    }
    rig.finish();
}

#[test]
fn rotation_by_rename_over() {
    rotation_through(WriteStyle::RenameOver);
}

#[test]
fn rotation_by_cp_over() {
    rotation_through(WriteStyle::CpOver);
}

#[test]
fn rotation_by_truncate_and_write() {
    rotation_through(WriteStyle::TruncateAndWrite);
}

#[test]
fn rotation_by_sed_in_place() {
    rotation_through(WriteStyle::SedInPlace);
}

#[test]
fn rotation_by_delete_and_recreate() {
    rotation_through(WriteStyle::DeleteAndRecreate);
}

#[test]
fn rotation_by_symlink_swap() {
    rotation_through(WriteStyle::SymlinkSwap);
}

#[test]
fn every_write_style_in_turn_on_one_agent() {
    // Six rotations in a row: each is seen, and the process is never restarted.
    let mut rig = Rig::start(RigSpec {
        symlinked: true,
        ..RigSpec::new("rotall")
    });
    rig.wait_live_on(OLD);
    let mut old = OLD.to_string();
    for (i, style) in WriteStyle::ALL.into_iter().enumerate() {
        let new = format!("tok-turn{i}-{}", 1000 + i);
        rig.rotate(style, &old, &new);
        // The first three keep the link (and write through it); `sed -i`,
        // rename and recreate leave a plain file.
        let link = std::fs::symlink_metadata(rig.creds())
            .unwrap()
            .file_type()
            .is_symlink();
        assert_eq!(link, i < 3, "{style:?}");
        old = new;
    }
    rig.finish();
}

#[test]
fn rotation_on_a_quiet_feed_takes_well_under_a_second() {
    // With no data arriving, the feed's read blocks for a whole tick (1 s);
    // the new token must not wait for it. The best of three, so one slow
    // moment of a loaded machine does not fail the test; waiting for the
    // tick takes about a second every time.
    let mut rig = Rig::start(RigSpec {
        quiet: true,
        ..RigSpec::new("quiet")
    });
    rig.wait_live_on(OLD);
    let mut old = OLD.to_string();
    let mut took = Vec::new();
    for i in 0..3 {
        let new = format!("tok-quiet{i}-5e0a");
        took.push(rig.rotate(WriteStyle::RenameOver, &old, &new));
        old = new;
    }
    let best = took.iter().min().unwrap();
    assert!(
        *best < Duration::from_millis(600),
        "rotations took {took:?}; stderr:\n{}",
        rig.log()
    );
    rig.finish();
}

#[test]
fn a_feed_on_unchanged_credentials_keeps_its_connection() {
    let mut rig = Rig::start(RigSpec {
        with_other: true,
        ..RigSpec::new("keep")
    });
    rig.wait_live_on(OLD);
    rig.wait_state("other", "live");
    let other = rig.other.as_ref().unwrap();
    assert!(other.wait_for(|st| st.auth_ok == 1, SLOW));
    let before = other.stats();
    let reconnects = feed_field(rig.dir.path(), "other", "reconnects");

    // The whole file is rewritten; only SIG_TOKEN's value differs.
    rig.rotate(WriteStyle::RenameOver, OLD, NEW);

    let other = rig.other.as_ref().unwrap();
    assert!(
        holds_for(QUIET, || {
            let st = other.stats();
            st.connections_accepted == before.connections_accepted
                && st.live_connections == 1
                && rig.state("other").as_deref() == Some("live")
        }),
        "feed other was touched: before {before:?}, now {:?}; stderr:\n{}",
        other.stats(),
        rig.log()
    );
    assert_eq!(other.stats().tokens_seen, vec![OTHER.to_string()]);
    assert_eq!(
        feed_field(rig.dir.path(), "other", "reconnects"),
        reconnects
    );
    assert!(!rig.log().contains("token_rotated feed=other"));
    assert!(!rig.log().contains("feed=other reconnecting"));
    rig.finish();
}

#[test]
fn malformed_and_half_written_files_keep_the_last_good_token() {
    let mut rig = Rig::start(RigSpec::new("malf"));
    rig.wait_live_on(OLD);
    let file = rig.creds();
    let before = rig.sig.stats();
    // Even if the agent took the new value, the simulator would take it too:
    // "no new connection" is what shows the old value stayed in force.
    rig.sig.set_tokens([OLD, NEW]);

    // A line without '=' on line 2.
    replace_by_rename(&file, "# comment\nSIG_TOKEN\n");
    rig.wait_log(&format!(
        "alert=credentials_invalid file={} line=2",
        file.display()
    ));
    let stays = |rig: &Rig| {
        holds_for(QUIET, || {
            rig.sig.stats().connections_accepted == before.connections_accepted
                && rig.state("sig").as_deref() == Some("live")
        })
    };
    assert!(
        stays(&rig),
        "the feed reconnected: {:?}\n{}",
        rig.sig.stats(),
        rig.log()
    );
    let c = rig.credential("SIG_TOKEN");
    assert_eq!(c["present"], true, "{c}");
    assert_eq!(c["fingerprint"], fp(OLD), "{c}");

    // Caught half-written: the value's closing quote has not arrived yet.
    let half = format!("SIG_TOKEN=\"{}", &NEW[..7]);
    std::fs::write(&file, half).unwrap();
    rig.wait_log(&format!(
        "alert=credentials_invalid file={} line=1",
        file.display()
    ));
    assert!(
        stays(&rig),
        "the feed reconnected: {:?}\n{}",
        rig.sig.stats(),
        rig.log()
    );
    assert_eq!(rig.credential("SIG_TOKEN")["fingerprint"], fp(OLD));
    assert!(!rig.log().contains("token_rotated"), "{}", rig.log());
    assert!(!rig.log().contains("credential_lost"), "{}", rig.log());

    // A good file: the rotation goes from the old value kept in force.
    rig.rotate(WriteStyle::RenameOver, OLD, NEW);
    rig.finish();
}

#[test]
fn deletion_is_alerted_at_once_and_restore_recovers() {
    // The periodic check is an hour away: what is seen comes from the watcher.
    let mut rig = Rig::start(RigSpec {
        agent_extra: "credential_check = \"1h\"",
        ..RigSpec::new("del")
    });
    rig.wait_live_on(OLD);
    std::fs::remove_file(rig.creds()).unwrap();
    rig.wait_log(&format!(
        "alert=credential_lost name=SIG_TOKEN fingerprint={}",
        fp(OLD)
    ));
    assert!(
        wait_for(SLOW, || rig.credential("SIG_TOKEN")["present"] == false),
        "{}",
        rig.credential("SIG_TOKEN")
    );
    // Without its credential the feed waits and says which one it needs.
    rig.wait_state("sig", "waiting");
    let err = feed_field(rig.dir.path(), "sig", "last_error").unwrap_or_default();
    assert!(err.to_string().contains("SIG_TOKEN"), "{err}");

    let before = rig.sig.stats();
    std::fs::write(rig.creds(), format!("SIG_TOKEN={OLD}\n")).unwrap();
    rig.wait_log(&format!(
        "alert=credential_restored name=SIG_TOKEN fingerprint={}",
        fp(OLD)
    ));
    assert!(
        rig.sig.wait_for(|st| st.auth_ok > before.auth_ok, SLOW),
        "{:?}",
        rig.sig.stats()
    );
    rig.wait_state("sig", "live");
    assert_eq!(rig.credential("SIG_TOKEN")["present"], true);
    rig.assert_same_process();
    rig.finish();
}

#[test]
fn a_feed_parked_on_a_rejected_token_wakes_on_the_new_one() {
    // The simulator already wants the new token; the file still has the old.
    let mut rig = Rig::start(RigSpec {
        accepted: &[NEW],
        ..RigSpec::new("park")
    });
    rig.wait_state("sig", "parked");
    rig.wait_log("alert=credential_rejected feed=sig");
    assert!(rig.sig.stats().auth_failed >= 1);
    // Parked retries are ten minutes apart: only the new credential wakes it.
    rig.rotate(WriteStyle::RenameOver, OLD, NEW);
    assert_eq!(rig.sig.stats().auth_ok, 1);
    rig.finish();
}

#[test]
fn a_feed_parked_by_a_rejecting_broker_wakes_on_a_credential_change() {
    let mut rig = Rig::start(RigSpec {
        fault: Some(Fault::RejectAuth),
        ..RigSpec::new("parkfault")
    });
    rig.wait_state("sig", "parked");
    rig.wait_log("alert=credential_rejected feed=sig");
    // The broker is fine again, but nothing tells the feed so.
    rig.sig.clear_fault();
    let parked = rig.sig.stats();
    assert!(
        holds_for(QUIET, || rig.sig.stats().connections_accepted
            == parked.connections_accepted),
        "a parked feed retried on its own"
    );
    rig.rotate(WriteStyle::RenameOver, OLD, NEW);
    rig.finish();
}

fn doctor_rig(tag: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(tag);
    let mut body = agent_toml(dir.path(), "");
    body.push_str(&ws_feed_toml("sig", "ws://127.0.0.1:9/", "SIG_TOKEN", ""));
    let cfg = write_config(dir.path(), &body);
    (dir, cfg)
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn doctor(cfg: &Path, json: bool, env: &[(&str, &str)]) -> CliRun {
    let cfg = cfg.to_str().unwrap();
    let mut args = vec!["doctor", "--config", cfg];
    if json {
        args.push("--json");
    }
    run_cli(&args, env, None)
}

fn doctor_json(cfg: &Path, env: &[(&str, &str)]) -> (Option<i32>, serde_json::Value) {
    let r = doctor(cfg, true, env);
    let v = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("doctor --json is not JSON ({e}): {}", r.all()));
    (r.code, v)
}

#[test]
fn doctor_flags_an_environment_only_credential() {
    let (dir, cfg) = doctor_rig("docenv");
    let creds = dir.join("credentials.env");
    std::fs::write(&creds, "# SIG_TOKEN is not here\n").unwrap();
    chmod(&creds, 0o600);
    let env = [("SIG_TOKEN", "tok-env-only-77aa01")];

    let r = doctor(&cfg, false, &env);
    assert_eq!(r.code, Some(1), "{}", r.all());
    for needle in [
        "SIG_TOKEN",
        "env-only",
        "only in the process environment",
        "lost on the next restart",
        "set-credential SIG_TOKEN",
    ] {
        assert!(
            r.stdout.contains(needle),
            "{needle:?} missing:\n{}",
            r.all()
        );
    }
    let (code, v) = doctor_json(&cfg, &env);
    assert_eq!(code, Some(1));
    assert_eq!(v["ok"], false);
    assert_eq!(v["credentials"][0]["name"], "SIG_TOKEN");
    assert_eq!(v["credentials"][0]["state"], "env_only");
    assert_eq!(v["credentials"][0]["source"], "env");

    // Moved into the file, it is no longer env-only (the file comes first).
    std::fs::write(&creds, "SIG_TOKEN=tok-file-0c9d\n").unwrap();
    let (code, v) = doctor_json(&cfg, &env);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["credentials"][0]["state"], "set");
}

#[test]
fn doctor_warns_on_loose_permissions_and_passes_a_tight_file() {
    let (dir, cfg) = doctor_rig("docperm");
    let creds = dir.join("credentials.env");
    std::fs::write(&creds, "SIG_TOKEN=tok-perm-41f2\n").unwrap();
    let shown = creds.display().to_string();
    let fix = format!("sudo chmod 0640 {shown} && sudo chown root:brokerguard {shown}");

    // Readable by every user: an error, with the file and the fix.
    chmod(&creds, 0o644);
    let r = doctor(&cfg, false, &[]);
    assert_eq!(r.code, Some(1), "{}", r.all());
    assert!(
        r.stdout.contains(&format!(
            "credentials file {shown} has mode 0644: every user on this host can read it"
        )),
        "{}",
        r.all()
    );
    assert!(r.stdout.contains(&fix), "{}", r.all());
    let (_, v) = doctor_json(&cfg, &[]);
    let problems = v["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p["message"].as_str().unwrap_or("").contains(&shown) && p["fix"][0] == fix),
        "{v}"
    );
    assert_eq!(v["files"][0]["mode"], "0644");

    // Readable by a group other than root and the service's: a warning only.
    chmod(&creds, 0o640);
    std::os::unix::fs::chown(&creds, None, Some(100)).unwrap();
    let r = doctor(&cfg, false, &[]);
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert!(r.stdout.contains(&format!(
        "warning: credentials file {shown} is readable by group"
    )));
    assert!(r.stdout.contains(&fix), "{}", r.all());

    // Tight: all good.
    std::os::unix::fs::chown(&creds, None, Some(0)).unwrap();
    chmod(&creds, 0o600);
    let r = doctor(&cfg, false, &[]);
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert!(!r.stdout.contains("has mode"), "{}", r.all());
    assert!(!r.stdout.contains("readable by group"), "{}", r.all());
    let (code, v) = doctor_json(&cfg, &[]);
    assert_eq!(code, Some(0));
    assert_eq!(v["ok"], true);
    assert_eq!(v["credentials"][0]["state"], "set");
    assert_eq!(v["credentials"][0]["source"], format!("file:{shown}"));
    assert_eq!(v["credentials"][0]["fingerprint"], fp("tok-perm-41f2"));
    assert!(
        v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["severity"] != "error"),
        "{v}"
    );
}

#[test]
fn set_credential_writes_the_file_and_the_running_agent_rotates() {
    let mut rig = Rig::start(RigSpec::new("setcred"));
    rig.wait_live_on(OLD);
    let file = rig.creds();
    chmod(&file, 0o600);
    rig.sig.set_tokens([NEW]);
    let before = rig.sig.stats();
    let start = Instant::now();

    let r = run_cli(
        &[
            "set-credential",
            "SIG_TOKEN",
            "--file",
            file.to_str().unwrap(),
            // The state folder holds the fingerprint key the agent uses.
            "--config",
            rig.config().to_str().unwrap(),
        ],
        &[],
        Some(&format!("{NEW}\n")),
    );
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert!(!r.all().contains(NEW), "set-credential printed the value");
    assert!(r.all().contains(&fp(NEW)), "{}", r.all());

    let text = std::fs::read_to_string(&file).unwrap();
    let entries = dotenv::parse(&text, &file).unwrap();
    let values: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.name.as_str(), e.value.expose()))
        .collect();
    assert_eq!(values, vec![("SIG_TOKEN", NEW)]);
    assert!(
        text.starts_with("# brokerguard test credentials\n"),
        "{text}"
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600);

    assert!(
        rig.sig.wait_for(
            |st| st.auth_ok > before.auth_ok
                && st.tokens_seen.last().map(String::as_str) == Some(NEW),
            SLOW
        ),
        "{:?}\n{}",
        rig.sig.stats(),
        rig.log()
    );
    rig.wait_state_line_since(start, "live");
    rig.wait_log(&format!(
        "token_rotated feed=sig name=SIG_TOKEN old={} new={}",
        fp(OLD),
        fp(NEW)
    ));
    rig.assert_same_process();
    rig.finish();
}

/// Canary values: distinctive, so a leak anywhere is unmistakable.
const CANARIES: [&str; 7] = [
    "cnry-A-9d41e07b3f", // startup value of SIG_TOKEN
    "cnry-B-52c8aa61d0", // rotated to
    "cnry-C-e3b7f09a14", // on a malformed line
    "cnry-D-07aa9c5e2b", // rejected by the broker
    "cnry-E-b16f3d8c70", // environment-only, for the second feed
    "cnry-F-4c2e91d7a6", // written with set-credential
    "cnry-G-8f0d2b6e13", // refused by set-credential (two lines)
];

#[test]
fn canary_values_appear_in_no_output() {
    let [a, b, c, d, e, f, g] = CANARIES;
    let mut rig = Rig::start(RigSpec {
        accepted: &[a, e],
        token: a,
        // RUST_LOG=trace too: no directive may lift the cap on tungstenite's frame logs.
        env: &[("ENV_TOKEN", e), ("RUST_LOG", "trace")],
        // Everything the agent and its crates can log.
        log_level: "trace",
        // The start-up preflight authenticates too: its output is swept as well.
        preflight: "warn",
        extra_feeds: ws_feed_toml("envfeed", "{SIG_URL}", "ENV_TOKEN", ""),
        ..RigSpec::new("canary")
    });
    // Collected output of every kind, checked at the end.
    let mut outputs: Vec<(String, String)> = Vec::new();
    let snap = |rig: &Rig, what: &str, outputs: &mut Vec<(String, String)>| {
        let s = std::fs::read_to_string(rig.dir.join("run/status.json")).unwrap_or_default();
        outputs.push((format!("status.json {what}"), s));
    };
    let cfg = rig.config();
    let cfg_s = cfg.to_str().unwrap().to_string();

    // Startup, with its preflight.
    rig.wait_log("preflight feed=sig");
    rig.wait_live_after(a);
    snap(&rig, "after startup", &mut outputs);

    rig.wait_state("envfeed", "live");
    assert!(
        rig.sig
            .wait_for(|st| st.tokens_seen.iter().any(|t| t == e), SLOW)
    );
    rig.wait_log("credential_env_only name=ENV_TOKEN");

    // Rotation.
    rig.sig.set_tokens([b, e]);
    let before = rig.sig.stats();
    let start = Instant::now();
    replace_by_rename(&rig.creds(), &format!("{}SIG_TOKEN={b}\n", rig.keep));
    assert!(rig.sig.wait_for(
        |st| st.auth_ok > before.auth_ok && st.tokens_seen.iter().any(|t| t == b),
        SLOW
    ));
    rig.wait_state_line_since(start, "live");
    assert!(wait_for(
        SLOW,
        || rig.credential("SIG_TOKEN")["fingerprint"] == fp(b)
    ));
    snap(&rig, "after rotation", &mut outputs);

    // Malformed lines that hold a canary value.
    for (i, bad) in [
        format!("SIG_TOKEN {c}\n"),
        format!("SIG_TOKEN=\"{c}\n"),
        format!("SIG_TOKEN='{c}\n"),
        format!("SIG_TOKEN=\"{c}\" trailing\n"),
        format!("{c}=x\n"),
    ]
    .iter()
    .enumerate()
    {
        // Each problem differs, so each is alerted anew.
        let alert = format!(
            "alert=credentials_invalid file={} line=2",
            rig.creds().display()
        );
        let seen = rig.log().matches(&alert).count();
        replace_by_rename(&rig.creds(), &format!("# malformed {i}\n{bad}"));
        assert!(
            wait_for(SLOW, || rig.log().matches(&alert).count() > seen),
            "malformed {i}: no alert; stderr:\n{}",
            rig.log()
        );
        assert_eq!(rig.credential("SIG_TOKEN")["fingerprint"], fp(b));
        let r = doctor(&cfg, false, &[("ENV_TOKEN", e)]);
        outputs.push((format!("doctor text, malformed {i}"), r.all()));
        let r = doctor(&cfg, true, &[("ENV_TOKEN", e)]);
        outputs.push((format!("doctor json, malformed {i}"), r.all()));
    }
    replace_by_rename(&rig.creds(), &format!("{}SIG_TOKEN={b}\n", rig.keep));
    snap(&rig, "after malformed files", &mut outputs);

    // Doctor (env-only credential present), config check, status --json.
    for (what, args) in [
        ("doctor text", vec!["doctor", "--config", &cfg_s]),
        ("doctor json", vec!["doctor", "--json", "--config", &cfg_s]),
        ("config check", vec!["config", "check", "--config", &cfg_s]),
        ("status json", vec!["status", "--json", "--config", &cfg_s]),
        ("status text", vec!["status", "--config", &cfg_s]),
    ] {
        let r = run_cli(&args, &[("ENV_TOKEN", e)], None);
        assert!(r.code.is_some(), "{what}: killed");
        outputs.push((what.to_string(), r.all()));
    }
    let dj = outputs
        .iter()
        .find(|(w, _)| w == "doctor json")
        .map(|(_, o)| o.clone())
        .unwrap();
    assert!(dj.contains("env_only"), "{dj}");

    // A failing auth: the broker rejects the new value; the feed parks.
    rig.sig.set_tokens([e]);
    replace_by_rename(&rig.creds(), &format!("{}SIG_TOKEN={d}\n", rig.keep));
    rig.wait_state("sig", "parked");
    rig.wait_log("alert=credential_rejected feed=sig");
    assert!(rig.sig.stats().tokens_seen.iter().any(|t| t == d));
    snap(&rig, "after rejected auth", &mut outputs);
    let r = run_cli(&["status", "--json", "--config", &cfg_s], &[], None);
    outputs.push(("status json, parked".into(), r.all()));

    // set-credential: accepted, then refused (with an error message).
    rig.sig.set_tokens([f, e]);
    let file = rig.creds();
    let file_s = file.to_str().unwrap();
    let r = run_cli(
        &["set-credential", "SIG_TOKEN", "--file", file_s],
        &[],
        Some(&format!("{f}\n")),
    );
    assert_eq!(r.code, Some(0), "{}", r.all());
    outputs.push(("set-credential".into(), r.all()));
    rig.wait_live_after(f);
    let r = run_cli(
        &["set-credential", "SIG_TOKEN", "--file", file_s],
        &[],
        Some(&format!("{g}\nsecond-line\n")),
    );
    assert_eq!(r.code, Some(1), "{}", r.all());
    outputs.push(("set-credential refused".into(), r.all()));
    let r = run_cli(
        &["set-credential", "bad-name", "--file", file_s],
        &[],
        Some(&format!("{g}\n")),
    );
    assert_ne!(r.code, Some(0), "{}", r.all());
    outputs.push(("set-credential bad name".into(), r.all()));
    snap(&rig, "after set-credential", &mut outputs);

    // The canaries really were in use.
    let seen = rig.sig.stats().tokens_seen;
    for t in [a, b, d, e, f] {
        assert!(seen.iter().any(|s| s == t), "{t} never reached the broker");
    }
    assert!(std::fs::read_to_string(&file).unwrap().contains(f));

    let fanout: Vec<String> = rig.bot.snapshot().iter().map(|v| v.to_string()).collect();
    assert!(!fanout.is_empty());
    rig.stop_all();
    let log = rig.log();
    assert!(log.contains("stopped cleanly"), "{log}");
    outputs.push(("agent stderr".into(), log));
    drop(rig);
    for (i, line) in fanout.into_iter().enumerate() {
        outputs.push((format!("fan-out line {i}"), line));
    }

    let mut leaks = Vec::new();
    for (what, text) in &outputs {
        for canary in CANARIES {
            // The distinctive tail too, in case a value is shown cut or re-cased.
            let tail = &canary[7..];
            if let Some(line) = text
                .lines()
                .find(|l| l.contains(canary) || l.to_lowercase().contains(tail))
            {
                leaks.push(format!("{canary} in {what}: {line}"));
            }
        }
    }
    assert!(leaks.is_empty(), "canary leaks: {leaks:#?}");
    assert!(outputs.len() > 20);
}
