//! The audit against a fake host (no root, no machine files): permission
//! modes, platforms, the service's group, the running agent's clock and
//! the fixes offered; then against a host folder on disk with real
//! credentials files, text and JSON.

use super::audit::{Commands, credential_problem};
use super::host::{FileFacts, FileStat};
use super::*;
use crate::brokers::websocket::WsSettings;
use crate::brokers::{BrokerRef, registry::Settings, websocket};
use crate::config::{self, AgentConfig, FeedConfig};
use crate::credentials::format::Severity;
use crate::credentials::store::CredProblem;
use crate::credentials::store::tests::temp_dir;
use crate::status::schema::ClockStatus;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn cfg(files: Vec<PathBuf>) -> Config {
    let mut agent = AgentConfig::defaults();
    agent.credential_files = files;
    let ws_feed = |name: &str, auth: &str, poll: Option<&str>| {
        let mut f = FeedConfig::new(name, BrokerRef(&websocket::BROKER));
        f.url = Some("ws://h:1".into());
        f.settings = Settings::new(WsSettings {
            auth: Some(auth.into()),
            poll: poll.map(String::from),
            ..WsSettings::default()
        });
        f
    };
    let k = ws_feed("master", "${MASTER_API_KEY}", Some("${MASTER_API_SECRET}"));
    let ws = ws_feed("signals", "${SIGNALS_TOKEN}", None);
    Config {
        path: PathBuf::from(config::DEFAULT_PATH),
        agent,
        feeds: vec![k, ws],
        calendars: Default::default(),
        http: None,
        metrics: Default::default(),
        alerts: Default::default(),
        ha: None,
    }
}

/// A host made of answers: host files by path, credentials files' stats,
/// whether this is root, and the running agent.
#[derive(Default)]
struct FakeHost {
    files: BTreeMap<&'static str, &'static str>,
    creds: BTreeMap<PathBuf, FileFacts>,
    root: bool,
    agent: Option<AgentReport>,
}

impl FakeHost {
    /// A systemd host (so no "no unit" warning) with `files` besides.
    fn with(files: &[(&'static str, &'static str)]) -> FakeHost {
        let mut h = FakeHost::default();
        h.files.insert(host::UNIT_PATHS[0], "[Unit]\n");
        h.files.extend(files.iter().copied());
        h
    }

    fn stat(mut self, path: &Path, mode: u32, gid: u32, group: &str) -> FakeHost {
        let stat = FileStat {
            owner: "root".into(),
            group: group.into(),
            gid,
            mode,
        };
        self.creds.insert(
            path.to_path_buf(),
            FileFacts {
                symlink_target: None,
                stat: Some(stat),
            },
        );
        self
    }
}

impl Host for FakeHost {
    fn find(&self, rel: &str) -> Option<PathBuf> {
        self.files
            .contains_key(rel)
            .then(|| Path::new("/").join(rel))
    }
    fn read(&self, rel: &str) -> Option<String> {
        self.files.get(rel).map(|s| s.to_string())
    }
    fn file(&self, path: &Path) -> FileFacts {
        self.creds.get(path).cloned().unwrap_or_default()
    }
    fn is_root(&self) -> bool {
        self.root
    }
    fn running_agent(&self, _runtime_dir: &Path) -> Option<AgentReport> {
        self.agent.clone()
    }
}

/// A configuration whose three credentials are all in one real file
/// (the store reads it); the host's answers are the fake's.
struct Rig {
    dir: PathBuf,
    file: PathBuf,
    cfg: Config,
}

impl Rig {
    fn new(tag: &str) -> Rig {
        let dir = temp_dir(tag);
        let file = dir.join("credentials.env");
        fs::write(
            &file,
            "MASTER_API_KEY=k\nMASTER_API_SECRET=s\nSIGNALS_TOKEN=t\n",
        )
        .unwrap();
        let cfg = cfg(vec![file.clone()]);
        Rig { dir, file, cfg }
    }

    fn audit(&self, host: &FakeHost, env: &[(&str, &str)]) -> DoctorReport {
        let sources = Sources::fixed(None, vec![self.file.clone()], env);
        audit(&self.cfg, &sources, host)
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn messages(r: &DoctorReport) -> Vec<(Severity, String)> {
    r.problems
        .iter()
        .map(|p| (p.severity, p.message.clone()))
        .collect()
}

#[test]
fn a_credentials_file_mode_is_judged_with_its_fix() {
    let rig = Rig::new("docmode");
    let fix = crate::credentials::permissions::restrict_command(&rig.file);
    // mode, gid, group → (severity, what the message says) per problem.
    type Case = (u32, u32, &'static str, &'static [(Severity, &'static str)]);
    let cases: &[Case] = &[
        (0o640, 998, "brokerguard", &[]),
        (0o600, 0, "root", &[]),
        (
            0o644,
            998,
            "brokerguard",
            &[(Severity::Error, "every user on this host can read it")],
        ),
        (
            0o602,
            998,
            "brokerguard",
            &[(Severity::Error, "every user on this host can change it")],
        ),
        (
            0o660,
            998,
            "brokerguard",
            &[(Severity::Error, "group brokerguard can change it")],
        ),
        (
            0o640,
            997,
            "brokerguard-clients",
            &[(
                Severity::Warning,
                "readable by group brokerguard-clients (the bot's group: the bot's user can read every secret in it)",
            )],
        ),
        (
            0o640,
            1000,
            "alice",
            &[(
                Severity::Warning,
                "readable by group alice; only root and group brokerguard should read it",
            )],
        ),
    ];
    for (mode, gid, group, want) in cases {
        let host = FakeHost::with(&[]).stat(&rig.file, *mode, *gid, group);
        let r = rig.audit(&host, &[]);
        let got = messages(&r);
        assert_eq!(got.len(), want.len(), "{mode:04o} {group}: {got:?}");
        for ((sev, msg), (want_sev, want_msg)) in got.iter().zip(want.iter()) {
            assert_eq!(sev, want_sev, "{mode:04o} {group}");
            assert!(msg.contains(want_msg), "{mode:04o} {group}: {msg}");
        }
        assert!(r.problems.iter().all(|p| p.fix == vec![fix.clone()]));
        assert_eq!(
            r.ok(),
            want.iter().all(|(s, _)| *s == Severity::Warning),
            "{mode:04o} {group}"
        );
        assert_eq!(r.files[0].mode, Some(format!("{mode:04o}")));
        assert_eq!(r.files[0].group.as_deref(), Some(*group));
    }
    // A file the host cannot inspect is shown missing, with no mode problem.
    let r = rig.audit(&FakeHost::with(&[]), &[]);
    assert!(!r.files[0].exists && r.problems.is_empty());
    assert!(r.to_text().contains("credentials.env  missing"));
}

#[test]
fn the_platform_is_read_from_host_files_and_the_environment() {
    let rig = Rig::new("docplat");
    // host files, env → (unit, under systemd, droplet, droplet id, container, unit warning)
    type Want = (
        Option<&'static str>,
        bool,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        bool,
    );
    let owned = |s: Option<&str>| s.map(String::from);
    type HostFiles = &'static [(&'static str, &'static str)];
    type Env = &'static [(&'static str, &'static str)];
    let cases: &[(HostFiles, Env, Want)] = &[
        (&[], &[], (None, false, None, None, None, true)),
        (
            &[("lib/systemd/system/brokerguard.service", "")],
            &[("INVOCATION_ID", "abc")],
            (
                Some("/lib/systemd/system/brokerguard.service"),
                true,
                None,
                None,
                None,
                false,
            ),
        ),
        (
            &[],
            &[("NOTIFY_SOCKET", ""), ("INVOCATION_ID", "")],
            (None, false, None, None, None, true),
        ),
        (
            &[(".dockerenv", "")],
            &[],
            (None, false, None, None, Some("docker"), false),
        ),
        (
            &[
                ("run/.containerenv", ""),
                ("run/systemd/container", "lxc\n"),
            ],
            &[],
            (None, false, None, None, Some("podman"), false),
        ),
        (
            &[("run/systemd/container", "lxc\n")],
            &[],
            (None, false, None, None, Some("lxc"), false),
        ),
        (
            &[
                ("sys/class/dmi/id/sys_vendor", "DigitalOcean\n"),
                ("var/lib/cloud/data/instance-id", "512345678\n"),
            ],
            &[("NOTIFY_SOCKET", "/run/systemd/notify")],
            (
                None,
                true,
                Some("DMI sys_vendor is DigitalOcean"),
                Some("512345678"),
                None,
                true,
            ),
        ),
        (
            &[(
                "var/lib/cloud/instance/datasource",
                "DataSourceDigitalOcean: ...",
            )],
            &[],
            (
                None,
                false,
                Some("cloud-init datasource is DigitalOcean"),
                None,
                None,
                true,
            ),
        ),
        (
            &[
                (
                    "var/lib/cloud/data/status.json",
                    "{\"datasource\": \"DataSourceDigitalOcean\"}",
                ),
                ("var/lib/cloud/data/instance-id", "\n"),
            ],
            &[],
            (
                None,
                false,
                Some("cloud-init status names DataSourceDigitalOcean"),
                None,
                None,
                true,
            ),
        ),
        // An instance id without a DigitalOcean sign is not a droplet's.
        (
            &[("var/lib/cloud/data/instance-id", "i-0abc\n")],
            &[],
            (None, false, None, None, None, true),
        ),
    ];
    for (files, env, want) in cases {
        let mut host = FakeHost::default().stat(&rig.file, 0o640, 998, "brokerguard");
        host.files.extend(files.iter().copied());
        let r = rig.audit(&host, env);
        let p = &r.platform;
        let got = (
            p.systemd_unit.as_ref().map(|u| u.display().to_string()),
            p.under_systemd,
            p.digitalocean.clone(),
            p.droplet_id.clone(),
            p.container.clone(),
            r.problems
                .iter()
                .any(|p| p.message.starts_with("no systemd unit")),
        );
        let (unit, systemd, droplet, id, container, warned) = *want;
        let want = (
            owned(unit),
            systemd,
            owned(droplet),
            owned(id),
            owned(container),
            warned,
        );
        assert_eq!(got, want, "{files:?} {env:?}");
        // No unit is a warning only.
        assert!(r.ok(), "{:?}", r.problems);
    }
}

#[test]
fn members_of_the_service_group_besides_the_service_user_are_warned_of() {
    let rig = Rig::new("docmembers");
    let cases: &[(&'static str, &[&str])] = &[
        ("", &[]),
        ("root:x:0:\nbrokerguard:x:998:\n", &[]),
        ("brokerguard:x:998:brokerguard\n", &[]),
        (
            "root:x:0:\nbrokerguard:x:998:brokerguard, alice,bob\nbrokerguard-clients:x:997:carol\n",
            &["alice", "bob"],
        ),
        ("brokerguard-clients:x:997:alice\n", &[]),
        ("brokerguard:x:998\n", &[]),
    ];
    for (group_file, extra) in cases {
        let host =
            FakeHost::with(&[("etc/group", group_file)]).stat(&rig.file, 0o640, 998, "brokerguard");
        let r = rig.audit(&host, &[]);
        let found: Vec<&DoctorProblem> = r
            .problems
            .iter()
            .filter(|p| p.message.contains("has members besides the service user"))
            .collect();
        if extra.is_empty() {
            assert!(found.is_empty(), "{group_file:?}: {:?}", r.problems);
            continue;
        }
        assert_eq!(found.len(), 1, "{group_file:?}");
        assert_eq!(found[0].severity, Severity::Warning);
        assert!(found[0].message.contains(&extra.join(", ")));
        let fixes: Vec<String> = extra
            .iter()
            .map(|m| {
                format!(
                    "sudo gpasswd -d {m} brokerguard && sudo usermod -aG brokerguard-clients {m}"
                )
            })
            .collect();
        assert_eq!(found[0].fix, fixes);
        assert!(r.ok());
    }
}

#[test]
fn a_running_agents_clock_off_beyond_the_drift_limit_is_an_error() {
    let rig = Rig::new("docclock");
    // offset, uncertainty → an error?
    let cases = [
        (0, 0, false),
        (2_000, 0, false),
        (2_001, 0, true),
        (-2_500, 0, true),
        (2_500, 600, false),
        (-3_001, 1_000, true),
    ];
    for (offset_ms, uncertainty_ms, error) in cases {
        let mut host = FakeHost::with(&[]).stat(&rig.file, 0o640, 998, "brokerguard");
        host.agent = Some(AgentReport {
            pid: 42,
            clock: Some(ClockStatus {
                offset_ms,
                uncertainty_ms,
                host: "api.example".into(),
                at: "2026-12-06T12:00:00Z".into(),
            }),
            feeds: vec![("signals".into(), [("token".into(), "day".into())].into())],
        });
        let r = rig.audit(&host, &[]);
        assert_eq!(!r.ok(), error, "{offset_ms} ±{uncertainty_ms}");
        let text = r.to_text();
        assert!(text.contains("\nRunning agent (pid 42)\n"), "{text}");
        assert!(
            text.contains(&format!(
                "  clock: {offset_ms:+} ms from api.example (±{uncertainty_ms} ms, at 2026-12-06T12:00:00Z)"
            )),
            "{text}"
        );
        assert!(text.contains("  signals: token day\n"), "{text}");
        assert_eq!(
            text.contains("this host's clock is"),
            error,
            "{offset_ms}: {text}"
        );
    }
    // An agent before its first REST call; and no agent at all.
    let mut host = FakeHost::with(&[]).stat(&rig.file, 0o640, 998, "brokerguard");
    host.agent = Some(AgentReport {
        pid: 7,
        clock: None,
        feeds: Vec::new(),
    });
    assert!(
        rig.audit(&host, &[])
            .to_text()
            .contains("clock: no broker REST call yet")
    );
    host.agent = None;
    let r = rig.audit(&host, &[]);
    assert!(r.agent.is_none() && !r.to_text().contains("Running agent"));
    assert!(r.to_json().find("\"agent\"").is_none());
}

#[test]
fn each_source_problem_gets_the_fix_for_this_host() {
    let c = cfg(Vec::new());
    let with_unit = PlatformReport {
        systemd_unit: Some("/etc/systemd/system/brokerguard.service".into()),
        ..PlatformReport::default()
    };
    let file = PathBuf::from("/etc/brokerguard/credentials.env");
    let systemd = Commands::new(&c, &with_unit);
    let bare = Commands::new(&c, &PlatformReport::default());
    let unreadable = CredProblem::FileUnreadable {
        file: file.clone(),
        error: "Permission denied".into(),
    };
    let missing = CredProblem::Missing {
        name: "SIGNALS_TOKEN".into(),
        feeds: vec!["signals".into()],
    };
    let env_only = CredProblem::EnvOnly {
        name: "SIGNALS_TOKEN".into(),
    };
    // problem, commands, root → (severity, first fix, note starts with)
    let cases: Vec<(&CredProblem, &Commands, bool, Severity, &str, &str)> = vec![
        (
            &unreadable,
            &systemd,
            false,
            Severity::Error,
            "sudo brokerguard doctor",
            "the file is for root",
        ),
        (
            &unreadable,
            &systemd,
            true,
            Severity::Error,
            "sudo chmod 0640 /etc/brokerguard/credentials.env && sudo chown root:brokerguard /etc/brokerguard/credentials.env",
            "",
        ),
        (
            &missing,
            &bare,
            false,
            Severity::Error,
            "sudo brokerguard set-credential SIGNALS_TOKEN",
            "a running agent picks the value up at once",
        ),
        (
            &env_only,
            &bare,
            true,
            Severity::Error,
            "sudo brokerguard set-credential SIGNALS_TOKEN",
            "paste the current value when asked; then remove SIGNALS_TOKEN",
        ),
    ];
    for (p, cmds, root, sev, fix, note) in cases {
        let d = credential_problem(p, cmds, root);
        assert_eq!(d.severity, sev, "{p:?}");
        assert_eq!(d.fix[0], fix, "{p:?}");
        assert!(
            d.note.as_deref().unwrap_or("").starts_with(note),
            "{p:?}: {d:?}"
        );
    }
    // A broken file: the reload named is the unit's, or a signal to the pid.
    let invalid = |cmds: &Commands| {
        let p = CredProblem::FileInvalid {
            file: file.clone(),
            line: 3,
            problem: crate::credentials::dotenv::DotenvProblem::MissingEquals,
        };
        credential_problem(&p, cmds, true).note.unwrap()
    };
    assert!(invalid(&systemd).contains("`sudo systemctl reload brokerguard`"));
    assert!(invalid(&bare).contains("`sudo kill -HUP \"$(cat "));
}

#[test]
fn failover_says_what_each_broker_is_guaranteed() {
    let rig = Rig::new("docha");
    let mut c = cfg(vec![rig.file.clone()]);
    assert!(
        audit(
            &c,
            &Sources::fixed(None, Vec::new(), &[]),
            &FakeHost::with(&[])
        )
        .failover
        .is_none()
    );
    let mut ha = config::HaConfig::defaults();
    ha.node = "a".into();
    c.ha = Some(ha);
    let note = audit(
        &c,
        &Sources::fixed(None, Vec::new(), &[]),
        &FakeHost::with(&[]),
    )
    .failover
    .unwrap();
    assert!(
        note.starts_with("node a of cluster brokerguard (lease 10s)"),
        "{note}"
    );
    let said: Vec<&str> = crate::brokers::registry::BROKERS
        .iter()
        .filter_map(|b| b.failover_guarantee())
        .collect();
    assert!(!said.is_empty());
    assert!(
        note.contains(&format!(
            "host's clock, so {}; a standby",
            said.join(" and ")
        )),
        "{note}"
    );
}

#[test]
fn reports_missing_env_only_and_loose_modes_with_fixes() {
    let d = temp_dir("doc");
    let root = d.join("root");
    fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
    fs::write(
        root.join("etc/systemd/system/brokerguard.service"),
        "[Unit]\n",
    )
    .unwrap();
    fs::create_dir_all(root.join("sys/class/dmi/id")).unwrap();
    fs::write(root.join("sys/class/dmi/id/sys_vendor"), "DigitalOcean\n").unwrap();
    fs::create_dir_all(root.join("var/lib/cloud/data")).unwrap();
    fs::write(root.join("var/lib/cloud/data/instance-id"), "512345678\n").unwrap();
    let f = d.join("credentials.env");
    let secret = "CANARY-secret-5f3a";
    fs::write(&f, format!("MASTER_API_SECRET={secret}\n")).unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
    let c = cfg(vec![f.clone()]);
    let sources = Sources::fixed(
        None,
        vec![f.clone()],
        &[
            ("SIGNALS_TOKEN", "CANARY-env-token"),
            ("INVOCATION_ID", "abc"),
        ],
    );
    let r = audit(&c, &sources, &SystemHost::at(&root));
    assert!(!r.ok());
    let states: Vec<(&str, CredState)> = r
        .credentials
        .iter()
        .map(|c| (c.name.as_str(), c.state))
        .collect();
    assert_eq!(
        states,
        vec![
            ("MASTER_API_KEY", CredState::Missing),
            ("MASTER_API_SECRET", CredState::Set),
            ("SIGNALS_TOKEN", CredState::EnvOnly),
        ]
    );
    assert!(r.credentials[1].file_age_s.is_some());
    assert_eq!(r.files[0].mode.as_deref(), Some("0644"));
    assert!(r.platform.under_systemd);
    assert_eq!(r.platform.droplet_id.as_deref(), Some("512345678"));
    assert!(r.platform.systemd_unit.is_some());
    let text = r.to_text();
    for needle in [
        "sudo brokerguard set-credential MASTER_API_KEY",
        "picks the value up at once and the feed starts; no reload needed",
        "sudo brokerguard set-credential SIGNALS_TOKEN",
        &format!(
            "sudo chmod 0640 {} && sudo chown root:brokerguard {}",
            f.display(),
            f.display()
        ),
        "every user on this host can read it",
        "env-only",
        "DigitalOcean droplet: yes, id 512345678",
    ] {
        assert!(text.contains(needle), "{needle}\n{text}");
    }
    let json = r.to_json();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["credentials"][2]["state"], "env_only");
    for shown in [&text, &json] {
        assert!(!shown.contains("CANARY"));
    }
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn all_good_when_everything_is_in_a_tight_file() {
    let d = temp_dir("docok");
    let root = d.join("root");
    fs::create_dir_all(root.join("run/systemd")).unwrap();
    fs::write(root.join("run/systemd/container"), "lxc\n").unwrap();
    let f = d.join("credentials.env");
    fs::write(
        &f,
        "MASTER_API_KEY=k\nMASTER_API_SECRET=s\nSIGNALS_TOKEN=t\n",
    )
    .unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    let mut c = cfg(vec![f.clone()]);
    c.path = d.join("my config.toml");
    let host = SystemHost::at(&root);
    let r = audit(&c, &Sources::fixed(None, vec![f.clone()], &[]), &host);
    assert!(r.ok(), "{}", r.to_text());
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.platform.container.as_deref(), Some("lxc"));
    assert!(r.to_text().contains("All good."));

    // Break the file: the fix names the file, and the config path is carried along.
    fs::write(&f, "SIGNALS_TOKEN=t\nbroken\n").unwrap();
    let r = audit(&c, &Sources::fixed(None, vec![f.clone()], &[]), &host);
    assert!(!r.ok());
    let text = r.to_text();
    assert!(
        text.contains(&format!("{}:2: missing '='", f.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("sudoedit {}", f.display())),
        "{text}"
    );
    assert!(text.contains(" --config '"), "{text}");
    assert!(text.contains("sudo kill -HUP"), "{text}");
    fs::remove_dir_all(&d).unwrap();
}
