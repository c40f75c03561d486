//! `brokerguard doctor`: an offline audit of the credentials and the host.
//!
//! For every required credential: set / missing / malformed / env-only, its
//! source, fingerprint and file age. For every credentials file: owner,
//! group, mode (loose modes are refused the way sudo-rs refuses loose
//! config files). The platform: systemd unit installed, running under
//! systemd, DigitalOcean droplet (from DMI / cloud-init data, offline),
//! container. Every problem comes with the exact commands that fix it on
//! this host. Host files are read under `platform_root` so tests can fake a
//! host; the environment comes from [`Sources::env`].
//!
//! [`DoctorReport::ok`] is false when any problem is an error: a missing,
//! malformed or environment-only credential (the outage this tool exists
//! for), a broken or missing credentials file, a file every user can read
//! or the group can change. Warnings
//! (a value of an unusual shape, group read access by any group but the
//! service's own, members of the service's group besides the service user,
//! no systemd unit) are printed but do not fail the audit.
//!
//! The bot's user belongs in [`CLIENTS_GROUP`], which can read status.json
//! and connect to feeds.sock but read nothing under /etc/brokerguard. Older
//! instructions put it in the service's group instead, which reads every
//! secret: that is what the group-members warning finds on upgraded hosts.

use super::format::Severity;
use super::required::{Required, distinct_names, required_names};
use super::store::{CredProblem, CredentialStore, Sources};
use crate::config::{self, Config};
use crate::fixcmd::sh_quote;
use crate::timefmt::human;
use serde::Serialize;
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The group the service runs as; it may read the credentials files.
pub const SERVICE_GROUP: &str = "brokerguard";
/// The service's user: the only member [`SERVICE_GROUP`] needs.
pub const SERVICE_USER: &str = "brokerguard";
/// The bot's group: status.json and feeds.sock, never a credential.
pub const CLIENTS_GROUP: &str = "brokerguard-clients";
/// Where the unit is looked for (under the platform root).
pub const UNIT_PATHS: [&str; 3] = [
    "etc/systemd/system/brokerguard.service",
    "lib/systemd/system/brokerguard.service",
    "usr/lib/systemd/system/brokerguard.service",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredState {
    Set,
    Missing,
    Malformed,
    EnvOnly,
    /// Not set, and no feed needs it (a fallback key set).
    NotSet,
}

impl CredState {
    fn as_str(self) -> &'static str {
        match self {
            CredState::Set => "set",
            CredState::Missing => "missing",
            CredState::Malformed => "malformed",
            CredState::EnvOnly => "env-only",
            CredState::NotSet => "not set",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct CredentialReport {
    pub name: String,
    pub feeds: Vec<String>,
    pub state: CredState,
    /// `systemd:<dir>`, `file:<path>`, `env`.
    pub source: Option<String>,
    pub fingerprint: Option<String>,
    /// Seconds since the file holding it was last modified.
    pub file_age_s: Option<u64>,
    /// Format problems (never the value).
    pub problems: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FileReport {
    pub path: PathBuf,
    pub exists: bool,
    /// Where a symlink points.
    pub symlink_target: Option<PathBuf>,
    pub owner: Option<String>,
    pub group: Option<String>,
    /// Octal, e.g. `0640`.
    pub mode: Option<String>,
    /// Parse result: `null` when fine.
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PlatformReport {
    /// Path of the installed unit, if any.
    pub systemd_unit: Option<PathBuf>,
    /// This process runs under systemd (`$INVOCATION_ID` or `$NOTIFY_SOCKET`).
    pub under_systemd: bool,
    /// How a DigitalOcean droplet was recognised, if it was.
    pub digitalocean: Option<String>,
    /// The droplet id from cloud-init, when known.
    pub droplet_id: Option<String>,
    /// The container kind (`docker`, `podman`, or `/run/systemd/container`'s text).
    pub container: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DoctorProblem {
    pub severity: Severity,
    /// What is wrong (never a value).
    pub message: String,
    /// Commands that fix it on this host, in order.
    pub fix: Vec<String>,
    /// A step that is not a command, if any.
    pub note: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DoctorReport {
    pub ok: bool,
    pub config: PathBuf,
    pub credentials: Vec<CredentialReport>,
    pub files: Vec<FileReport>,
    pub platform: PlatformReport,
    pub problems: Vec<DoctorProblem>,
    /// `--online`: each feed's credentials proven against its broker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online: Option<Vec<OnlineCheck>>,
    /// What the running agent reports (from its status.json), if one runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentReport>,
    /// What each feed's broker has to say about it (the key set in use, who
    /// owns the key's nonces), see [`crate::brokers::registry::Broker::doctor_notes`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub feed_notes: Vec<FeedNotes>,
    /// What each feed's broker knows of its session from local state (a
    /// day token's expiry, the market's next opening); feeds without any
    /// are left out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<SessionReport>,
    /// With `[ha]`: what failover guarantees about keys and nonces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failover: Option<String>,
}

/// What `doctor` says failover guarantees, for a configuration with `[ha]`.
fn failover_note(cfg: &Config) -> Option<String> {
    let ha = cfg.ha.as_ref()?;
    Some(format!(
        "node {} of cluster {} (lease {}): private feeds run only on the agent holding the etcd \
         lease, and stop on their own clock half a lease after the last renewal, before a standby \
         can win; a new leader's nonces start above the last nonce the old leader recorded in \
         etcd (every second) plus {} of microseconds (half a lease and two seconds: the most the \
         old leader can have signed after its last record), and above this host's clock, so \
         Kraken never sees a key's nonce go back; a standby makes no signed REST check",
        ha.node,
        ha.cluster,
        human(ha.lease),
        human(ha.lease / 2 + std::time::Duration::from_secs(2))
    ))
}

/// The running agent's view, for the parts of the audit only it knows.
#[derive(Clone, Debug, Serialize)]
pub struct AgentReport {
    pub pid: u32,
    /// The last clock offset read from a broker's `Date` header.
    pub clock: Option<crate::status::schema::ClockStatus>,
    /// Per feed, what its broker reports (key set in use, client id, token expiry).
    pub feeds: Vec<(String, std::collections::BTreeMap<String, String>)>,
}

/// Reads the running agent's status.json, if one runs.
fn agent_report(runtime_dir: &Path) -> Option<AgentReport> {
    match crate::status::show::observe(runtime_dir) {
        crate::status::show::Observed::Running(doc) => Some(AgentReport {
            pid: doc.agent.pid,
            clock: doc.agent.clock.clone(),
            feeds: doc
                .feeds
                .iter()
                .filter(|f| !f.info.is_empty())
                .map(|f| (f.name.clone(), f.info.clone()))
                .collect(),
        }),
        _ => None,
    }
}

/// A broker's notes about one feed, for `doctor`.
#[derive(Clone, Debug, Serialize)]
pub struct FeedNotes {
    pub feed: String,
    pub broker: String,
    /// One fact per line, never a secret.
    pub notes: Vec<String>,
}

/// One feed's session facts ([`crate::brokers::registry::Broker::session_facts`]).
#[derive(Clone, Debug, Serialize)]
pub struct SessionReport {
    pub feed: String,
    pub broker: String,
    /// In the broker's order; never a secret.
    pub facts: Vec<(String, String)>,
}

/// Every feed's session facts, from local state only (no connection).
pub fn session_facts(cfg: &Config, ctx: &crate::brokers::BuildContext<'_>) -> Vec<SessionReport> {
    cfg.feeds
        .iter()
        .filter_map(|f| {
            let facts = f.broker.session_facts(f, ctx);
            (!facts.is_empty()).then(|| SessionReport {
                feed: f.name.clone(),
                broker: f.broker.name().to_string(),
                facts: facts.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            })
        })
        .collect()
}

/// The brokers' rules across feeds, judged with the credentials in hand
/// (two accounts holding one API key share its connections).
fn cross_feed_problems(cfg: &Config, store: &CredentialStore) -> Vec<DoctorProblem> {
    let lookup = |name: &str| store.get(name).map(|c| c.value.clone());
    let mut out = Vec::new();
    for b in crate::brokers::registry::BROKERS {
        let feeds: Vec<&config::FeedConfig> = cfg
            .feeds
            .iter()
            .filter(|f| f.broker.name() == b.name())
            .collect();
        if feeds.is_empty() {
            continue;
        }
        for p in b.check_feeds(&feeds, Some(&lookup)) {
            let feed = feeds.get(p.feed).map_or("?", |f| f.name.as_str());
            out.push(DoctorProblem {
                severity: Severity::Error,
                message: format!("feed {feed}: {}", p.message),
                fix: Vec::new(),
                note: Some(format!(
                    "change {} in {} and check it with {}",
                    p.key,
                    cfg.path.display(),
                    crate::fixcmd::with_config(&cfg.path, "config check")
                )),
            });
        }
    }
    out
}

/// One feed's REST credential check (`doctor --online`).
#[derive(Clone, Debug, Serialize)]
pub struct OnlineCheck {
    pub feed: String,
    pub broker: String,
    /// `ok`, `rejected` (the broker refused the credentials), `failed` (the
    /// check could not be made), `not_available` (no REST check for this feed).
    pub outcome: &'static str,
    /// The error class when it did not pass.
    pub class: Option<&'static str>,
    /// What was proven, or why not (never a secret).
    pub detail: String,
}

/// Proves every feed's credentials against its broker's REST API.
pub fn online_checks(cfg: &Config, ctx: &crate::brokers::BuildContext<'_>) -> Vec<OnlineCheck> {
    cfg.feeds
        .iter()
        .map(|f| {
            let (outcome, class, detail) = match f.broker.validate_credentials(f, ctx) {
                None => (
                    "not_available",
                    None,
                    "no REST credential check for this feed (its broker has none, or the feed uses no key)".to_string(),
                ),
                Some(Ok(d)) => ("ok", None, d),
                Some(Err(e)) if e.class == crate::feed::ErrorClass::Auth => {
                    ("rejected", Some(e.class.as_str()), e.message)
                }
                Some(Err(e)) => ("failed", Some(e.class.as_str()), e.message),
            };
            OnlineCheck {
                feed: f.name.clone(),
                broker: f.broker.name().to_string(),
                outcome,
                class,
                detail,
            }
        })
        .collect()
}

/// Audits now.
pub fn audit(cfg: &Config, sources: &Sources, platform_root: &Path) -> DoctorReport {
    audit_at(cfg, sources, platform_root, SystemTime::now())
}

/// Audits, with file ages computed from `now`.
pub fn audit_at(
    cfg: &Config,
    sources: &Sources,
    platform_root: &Path,
    now: SystemTime,
) -> DoctorReport {
    let required = required_names(cfg);
    let platform = detect_platform(platform_root, sources);
    let cmds = Commands::new(cfg, &platform);
    let outcome = CredentialStore::load(sources, &required);
    let mut problems = Vec::new();

    for p in &outcome.problems {
        if let Some(dp) = doctor_problem(p, &cmds) {
            problems.push(dp);
        }
    }
    problems.extend(cross_feed_problems(cfg, &outcome.store));
    let credentials = credential_reports(&required, &outcome.store, &outcome.problems, now);
    let files: Vec<FileReport> = sources
        .files
        .iter()
        .map(|f| file_report(f, &outcome.problems, &mut problems))
        .collect();
    let extra = group_members(platform_root, SERVICE_GROUP)
        .into_iter()
        .filter(|m| m != SERVICE_USER)
        .collect::<Vec<_>>();
    if !extra.is_empty() {
        problems.push(DoctorProblem {
            severity: Severity::Warning,
            message: format!(
                "group {SERVICE_GROUP}, which reads the credentials files, has members besides the service user: {}; they can read every secret",
                extra.join(", ")
            ),
            fix: extra
                .iter()
                .map(|m| {
                    let m = sh_quote(m);
                    format!("sudo gpasswd -d {m} {SERVICE_GROUP} && sudo usermod -aG {CLIENTS_GROUP} {m}")
                })
                .collect(),
            note: Some(format!(
                "group {CLIENTS_GROUP} reads status.json and connects to feeds.sock, nothing more; a user's new groups apply from its next login (restart the bot)"
            )),
        });
    }
    if platform.systemd_unit.is_none() && platform.container.is_none() {
        problems.push(DoctorProblem {
            severity: Severity::Warning,
            message: "no systemd unit brokerguard.service is installed: nothing restarts the agent after a crash or a reboot".into(),
            fix: vec!["sudo ./install.sh".into(), "sudo systemctl enable --now brokerguard".into()],
            note: Some("run install.sh from the unpacked release folder".into()),
        });
    }
    let agent = agent_report(&cfg.agent.runtime_dir);
    if let Some(clock) = agent.as_ref().and_then(|a| a.clock.as_ref()) {
        let beyond = clock
            .offset_ms
            .unsigned_abs()
            .saturating_sub(clock.uncertainty_ms);
        if beyond > crate::net::http::DRIFT_LIMIT.as_millis() as u64 {
            problems.push(DoctorProblem {
                severity: Severity::Error,
                message: format!(
                    "this host's clock is {} ms off {}'s (at {}): signed broker APIs reject skewed requests",
                    clock.offset_ms, clock.host, clock.at
                ),
                fix: vec![
                    "timedatectl status".into(),
                    "sudo systemctl restart systemd-timesyncd".into(),
                ],
                note: None,
            });
        }
    }
    let ok = problems.iter().all(|p| p.severity != Severity::Error);
    DoctorReport {
        ok,
        config: cfg.path.clone(),
        credentials,
        files,
        platform,
        problems,
        online: None,
        agent,
        feed_notes: Vec::new(),
        sessions: Vec::new(),
        failover: failover_note(cfg),
    }
}

/// Credentials files that every user on the host can read or change,
/// with their modes: said out loud at `config check` and at start, not only
/// by `doctor`.
pub fn open_to_everyone(files: &[PathBuf]) -> Vec<(PathBuf, u32)> {
    files
        .iter()
        .filter_map(|f| {
            let mode = std::fs::metadata(f).ok()?.mode() & 0o7777;
            (mode & 0o007 != 0).then(|| (f.clone(), mode))
        })
        .collect()
}

/// `config check`'s warnings about the `${NAME}`s (and broker credential
/// names) the configuration needs that no credential source defines: the
/// feeds that need them would wait. A source this user cannot read makes
/// the answer unknown, and is said instead of a false "not defined".
pub fn undefined_credentials(cfg: &Config, sources: &Sources) -> Vec<String> {
    let required = required_names(cfg);
    let outcome = CredentialStore::load(sources, &required);
    let unreadable: Vec<String> = outcome
        .problems
        .iter()
        .filter_map(|p| match p {
            CredProblem::FileUnreadable { file, .. } => Some(file.display().to_string()),
            CredProblem::SystemdUnreadable { path, .. } => Some(path.display().to_string()),
            _ => None,
        })
        .collect();
    if !unreadable.is_empty() {
        return vec![format!(
            "cannot tell which credentials are defined: {} cannot be read by this user; \
             run {}",
            unreadable.join(", "),
            crate::fixcmd::with_config(&cfg.path, "config check")
        )];
    }
    let files = cfg
        .agent
        .credential_files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    outcome
        .problems
        .iter()
        .filter_map(|p| match p {
            CredProblem::Missing { name, feeds } => Some(format!(
                "${{{name}}} (feed {}) is defined by no credential source ({}, \
                 $CREDENTIALS_DIRECTORY, the environment): the feed will wait for it; set it: {}",
                feeds.join(", "),
                if files.is_empty() {
                    "no credential_files"
                } else {
                    &files
                },
                crate::fixcmd::with_config(&cfg.path, &format!("set-credential {name}"))
            )),
            _ => None,
        })
        .collect()
}

/// What to run to close a credentials file to other users.
pub fn tighten_command(file: &Path) -> String {
    let f = sh_quote(&file.display().to_string());
    format!(
        "sudo chmod 0640 {f} && sudo chown root:{SERVICE_GROUP} {f} (a file of your own: chmod 600 {f})"
    )
}

/// The commands of fixes, adapted to this host.
struct Commands {
    /// The configuration audited: every brokerguard command suggested
    /// carries it (see `fixcmd`).
    config: PathBuf,
    reload: String,
}

impl Commands {
    fn new(cfg: &Config, platform: &PlatformReport) -> Commands {
        let reload = if platform.systemd_unit.is_some() {
            "sudo systemctl reload brokerguard".to_string()
        } else {
            format!(
                "sudo kill -HUP \"$(cat {})\"",
                sh_quote(&cfg.agent.pidfile().display().to_string())
            )
        };
        Commands {
            config: cfg.path.clone(),
            reload,
        }
    }

    /// `sudo brokerguard ARGS`, with the audited configuration.
    fn brokerguard(&self, args: &str) -> String {
        crate::fixcmd::with_config(&self.config, args)
    }

    /// A running agent reads the new value at once (its watcher sees the
    /// file replaced): no reload is needed, so none is suggested.
    fn set(&self, name: &str) -> Vec<String> {
        vec![self.brokerguard(&format!("set-credential {name}"))]
    }
}

fn doctor_problem(p: &CredProblem, cmds: &Commands) -> Option<DoctorProblem> {
    let mk = |fix: Vec<String>, note: Option<String>| DoctorProblem {
        severity: p.severity(),
        message: p.to_string(),
        fix,
        note,
    };
    Some(match p {
        CredProblem::FileInvalid { file, line, .. } => mk(
            vec![format!(
                "sudoedit {}",
                sh_quote(&file.display().to_string())
            )],
            Some(format!(
                "correct line {line}, or rewrite the value with set-credential; a running agent reads \
                 the file again as soon as it is saved (`{}` if its watcher is off)",
                cmds.reload
            )),
        ),
        CredProblem::FileMissing { file } => {
            let f = sh_quote(&file.display().to_string());
            let mut fix = Vec::new();
            if let Some(dir) = file.parent().filter(|d| !d.exists()) {
                fix.push(format!(
                    "sudo install -d -m 0750 -o root -g {SERVICE_GROUP} {}",
                    sh_quote(&dir.display().to_string())
                ));
            }
            fix.push(format!(
                "sudo install -m 0640 -o root -g {SERVICE_GROUP} /dev/null {f}"
            ));
            mk(
                fix,
                Some("then add each credential with set-credential".into()),
            )
        }
        CredProblem::FileUnreadable { file, .. } => {
            if !crate::os::user::is_root() {
                // Most likely the operator's own account lacks access, as intended.
                mk(
                    vec![cmds.brokerguard("doctor")],
                    Some("the file is for root and the service group; audit it as root".into()),
                )
            } else {
                let f = sh_quote(&file.display().to_string());
                mk(
                    vec![format!(
                        "sudo chmod 0640 {f} && sudo chown root:{SERVICE_GROUP} {f}"
                    )],
                    None,
                )
            }
        }
        CredProblem::SystemdUnreadable { .. } => mk(
            vec![],
            Some(
                "check LoadCredential=/SetCredential= in the unit (systemctl cat brokerguard)"
                    .into(),
            ),
        ),
        CredProblem::Missing { name, .. } | CredProblem::Format { name, .. } => mk(
            cmds.set(name),
            Some(
                "a running agent picks the value up at once and the feed starts; no reload needed"
                    .into(),
            ),
        ),
        CredProblem::EnvOnly { name } => DoctorProblem {
            severity: Severity::Error,
            message: p.to_string(),
            fix: cmds.set(name),
            note: Some(format!(
                "paste the current value when asked; then remove {name} from the service's environment (Environment=/EnvironmentFile= or the deploy script)"
            )),
        },
    })
}

fn credential_reports(
    required: &[Required],
    store: &CredentialStore,
    problems: &[CredProblem],
    now: SystemTime,
) -> Vec<CredentialReport> {
    distinct_names(required)
        .into_iter()
        .map(|name| {
            let feeds = {
                let mut v: Vec<String> = Vec::new();
                for r in required.iter().filter(|r| r.name == name) {
                    if !v.contains(&r.feed) {
                        v.push(r.feed.clone());
                    }
                }
                v
            };
            let fmt: Vec<&CredProblem> = problems
                .iter()
                .filter(|p| matches!(p, CredProblem::Format { name: n, .. } if n == name))
                .collect();
            let cred = store.get(name);
            let state = match cred {
                None if super::store::all_optional(required, name) => CredState::NotSet,
                None => CredState::Missing,
                Some(_) if fmt.iter().any(|p| p.severity() == Severity::Error) => {
                    CredState::Malformed
                }
                Some(c) if c.env_only() => CredState::EnvOnly,
                Some(_) => CredState::Set,
            };
            CredentialReport {
                name: name.to_string(),
                feeds,
                state,
                source: cred.map(|c| c.source.to_string()),
                fingerprint: cred.map(|c| c.fingerprint()),
                file_age_s: cred
                    .and_then(|c| c.file_mtime)
                    .map(|m| now.duration_since(m).map(|d| d.as_secs()).unwrap_or(0)),
                problems: fmt.iter().map(|p| p.reason()).collect(),
            }
        })
        .collect()
}

fn file_report(
    path: &Path,
    load_problems: &[CredProblem],
    problems: &mut Vec<DoctorProblem>,
) -> FileReport {
    let error = load_problems
        .iter()
        .find(|p| p.file() == Some(path) && !matches!(p, CredProblem::FileMissing { .. }))
        .map(|p| p.reason());
    let symlink_target = std::fs::read_link(path).ok();
    let Ok(meta) = std::fs::metadata(path) else {
        return FileReport {
            path: path.to_path_buf(),
            exists: false,
            symlink_target,
            owner: None,
            group: None,
            mode: None,
            error,
        };
    };
    let owner = user_name(meta.uid());
    let group = group_name(meta.gid());
    let mode = meta.mode() & 0o7777;
    let f = sh_quote(&path.display().to_string());
    let fix_perms = vec![format!(
        "sudo chmod 0640 {f} && sudo chown root:{SERVICE_GROUP} {f}"
    )];
    let shown = path.display();
    if mode & 0o007 != 0 {
        problems.push(DoctorProblem {
            severity: Severity::Error,
            message: format!(
                "credentials file {shown} has mode {mode:04o}: every user on this host can {} it",
                if mode & 0o002 != 0 { "change" } else { "read" }
            ),
            fix: fix_perms.clone(),
            note: None,
        });
    }
    if mode & 0o020 != 0 {
        problems.push(DoctorProblem {
            severity: Severity::Error,
            message: format!(
                "credentials file {shown} has mode {mode:04o}: group {group} can change it"
            ),
            fix: fix_perms.clone(),
            note: None,
        });
    }
    if mode & 0o040 != 0 && meta.gid() != 0 && group != SERVICE_GROUP {
        let whose = if group == CLIENTS_GROUP {
            " (the bot's group: the bot's user can read every secret in it)"
        } else {
            ""
        };
        problems.push(DoctorProblem {
            severity: Severity::Warning,
            message: format!(
                "credentials file {shown} is readable by group {group}{whose}; only root and group {SERVICE_GROUP} should read it"
            ),
            fix: fix_perms,
            note: None,
        });
    }
    FileReport {
        path: path.to_path_buf(),
        exists: true,
        symlink_target,
        owner: Some(owner),
        group: Some(group),
        mode: Some(format!("{mode:04o}")),
        error,
    }
}

/// The listed members of `group` in `<root>/etc/group` (none if it is
/// missing or unreadable).
fn group_members(root: &Path, group: &str) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(root.join("etc/group")) else {
        return Vec::new();
    };
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && f[0] == group)
        .map(|f| {
            f[3].split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn detect_platform(root: &Path, sources: &Sources) -> PlatformReport {
    let read = |rel: &str| std::fs::read_to_string(root.join(rel)).ok();
    let systemd_unit = UNIT_PATHS.iter().map(|p| root.join(p)).find(|p| p.exists());
    let under_systemd = ["INVOCATION_ID", "NOTIFY_SOCKET"]
        .iter()
        .any(|v| (sources.env)(v).is_some_and(|s| !s.is_empty()));
    let digitalocean = if read("sys/class/dmi/id/sys_vendor")
        .is_some_and(|v| v.trim() == "DigitalOcean")
    {
        Some("DMI sys_vendor is DigitalOcean".to_string())
    } else if read("var/lib/cloud/instance/datasource").is_some_and(|v| v.contains("DigitalOcean"))
    {
        Some("cloud-init datasource is DigitalOcean".to_string())
    } else if read("var/lib/cloud/data/status.json")
        .is_some_and(|v| v.contains("DataSourceDigitalOcean"))
    {
        Some("cloud-init status names DataSourceDigitalOcean".to_string())
    } else {
        None
    };
    let droplet_id = digitalocean
        .as_ref()
        .and_then(|_| read("var/lib/cloud/data/instance-id"))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let container = if root.join(".dockerenv").exists() {
        Some("docker".to_string())
    } else if root.join("run/.containerenv").exists() {
        Some("podman".to_string())
    } else {
        read("run/systemd/container")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    PlatformReport {
        systemd_unit,
        under_systemd,
        digitalocean,
        droplet_id,
        container,
    }
}

fn user_name(uid: u32) -> String {
    crate::os::user::user_name_or_id(uid)
}

fn group_name(gid: u32) -> String {
    crate::os::user::group_name_or_id(gid)
}

impl DoctorReport {
    /// Adds `--online` results: a rejection is an error (the credential
    /// must be replaced), a check that could not be made a warning.
    pub fn add_online(&mut self, checks: Vec<OnlineCheck>) {
        for c in &checks {
            let feed_names: Vec<&str> = self
                .credentials
                .iter()
                .filter(|r| r.feeds.contains(&c.feed))
                .map(|r| r.name.as_str())
                .collect();
            match c.outcome {
                "rejected" => {
                    self.ok = false;
                    self.problems.push(DoctorProblem {
                        severity: Severity::Error,
                        message: format!(
                            "feed {} ({}): the broker rejected the credentials: {}",
                            c.feed, c.broker, c.detail
                        ),
                        fix: feed_names
                            .iter()
                            .map(|n| {
                                crate::fixcmd::with_config(
                                    &self.config,
                                    &format!("set-credential {n}"),
                                )
                            })
                            .collect(),
                        note: Some(
                            "a running agent picks a new value up at once; no reload needed".into(),
                        ),
                    });
                }
                "failed" => self.problems.push(DoctorProblem {
                    severity: Severity::Warning,
                    message: format!(
                        "feed {} ({}): the credentials could not be checked: {}",
                        c.feed, c.broker, c.detail
                    ),
                    fix: vec![crate::fixcmd::with_config(
                        &self.config,
                        &format!("check {}", c.feed),
                    )],
                    note: None,
                }),
                _ => {}
            }
        }
        self.online = Some(checks);
    }

    /// Adds each feed's broker notes. `running` gives a feed's `info` in
    /// the running agent's status.json (`None` when no agent runs).
    pub fn add_feed_notes(
        &mut self,
        cfg: &Config,
        running: &dyn Fn(&str) -> Option<std::collections::BTreeMap<String, String>>,
    ) {
        for f in &cfg.feeds {
            let info = running(&f.name);
            let notes = f.broker.doctor_notes(f, info.as_ref());
            if !notes.is_empty() {
                self.feed_notes.push(FeedNotes {
                    feed: f.name.clone(),
                    broker: f.broker.name().to_string(),
                    notes,
                });
            }
        }
    }

    /// Adds each feed's session facts (see [`session_facts`]).
    pub fn add_sessions(&mut self, sessions: Vec<SessionReport>) {
        self.sessions = sessions;
    }

    /// No problem of error severity.
    pub fn ok(&self) -> bool {
        self.ok
    }

    /// Pretty JSON (for `doctor --json`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("doctor report serializes")
    }

    /// The human report.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "brokerguard doctor (config {})", self.config.display());
        let _ = writeln!(out, "\nCredentials");
        if self.credentials.is_empty() {
            let _ = writeln!(out, "  (the configuration needs none)");
        }
        let w = self
            .credentials
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0);
        for c in &self.credentials {
            let age = c
                .file_age_s
                .map(|s| format!("  changed {} ago", human(std::time::Duration::from_secs(s))))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:w$}  {:9}  {}  {}{}  (feed {})",
                c.name,
                c.state.as_str(),
                c.source.as_deref().unwrap_or("-"),
                c.fingerprint.as_deref().unwrap_or("-"),
                age,
                c.feeds.join(", "),
            );
            for p in &c.problems {
                let _ = writeln!(out, "  {:w$}  value {p}", "");
            }
        }
        let _ = writeln!(out, "\nCredential files");
        for f in &self.files {
            if !f.exists {
                let _ = writeln!(out, "  {}  missing", f.path.display());
                continue;
            }
            let link = f
                .symlink_target
                .as_ref()
                .map(|t| format!(" -> {}", t.display()))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {}{link}  {}:{} {}  {}",
                f.path.display(),
                f.owner.as_deref().unwrap_or("?"),
                f.group.as_deref().unwrap_or("?"),
                f.mode.as_deref().unwrap_or("?"),
                f.error.as_deref().unwrap_or("parses"),
            );
        }
        if !self.sessions.is_empty() {
            let _ = writeln!(out, "\nSessions");
            for r in &self.sessions {
                let _ = writeln!(out, "  {} ({})", r.feed, r.broker);
                for (k, v) in &r.facts {
                    let _ = writeln!(out, "    {:<16} {v}", k.replace('_', " "));
                }
            }
        }
        if let Some(checks) = &self.online {
            let _ = writeln!(out, "\nOnline checks (the brokers' REST APIs)");
            for c in checks {
                let _ = writeln!(
                    out,
                    "  {:<16} {:<10} {:<13} {}",
                    c.feed, c.broker, c.outcome, c.detail
                );
            }
        }
        if !self.feed_notes.is_empty() {
            let _ = writeln!(out, "\nFeeds");
            for n in &self.feed_notes {
                let _ = writeln!(out, "  {} ({})", n.feed, n.broker);
                for line in &n.notes {
                    let _ = writeln!(out, "    {line}");
                }
            }
        }
        let p = &self.platform;
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let _ = writeln!(out, "\nPlatform");
        let _ = writeln!(
            out,
            "  systemd unit: {}",
            p.systemd_unit
                .as_ref()
                .map(|u| u.display().to_string())
                .unwrap_or_else(|| "not installed".into())
        );
        let _ = writeln!(out, "  running under systemd: {}", yes_no(p.under_systemd));
        let _ = writeln!(
            out,
            "  DigitalOcean droplet: {}",
            match (&p.digitalocean, &p.droplet_id) {
                (Some(how), Some(id)) => format!("yes, id {id} ({how})"),
                (Some(how), None) => format!("yes ({how})"),
                _ => "no".into(),
            }
        );
        let _ = writeln!(
            out,
            "  container: {}",
            p.container.as_deref().unwrap_or("no")
        );
        if let Some(a) = &self.agent {
            let _ = writeln!(out, "\nRunning agent (pid {})", a.pid);
            match &a.clock {
                Some(c) => {
                    let _ = writeln!(
                        out,
                        "  clock: {:+} ms from {} (±{} ms, at {})",
                        c.offset_ms, c.host, c.uncertainty_ms, c.at
                    );
                }
                None => {
                    let _ = writeln!(out, "  clock: no broker REST call yet");
                }
            }
            for (feed, info) in &a.feeds {
                let facts: Vec<String> = info.iter().map(|(k, v)| format!("{k} {v}")).collect();
                let _ = writeln!(out, "  {feed}: {}", facts.join(", "));
            }
        }
        if self.problems.is_empty() {
            let _ = writeln!(out, "\nAll good.");
            return out;
        }
        let errors = self
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count();
        let _ = writeln!(
            out,
            "\nProblems: {}, {}",
            crate::count::count(errors, "error", "errors"),
            crate::count::count(self.problems.len() - errors, "warning", "warnings")
        );
        for p in &self.problems {
            let sev = match p.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let _ = writeln!(out, "\n  {sev}: {}", p.message);
            if let Some(n) = &p.note {
                let _ = writeln!(out, "    ({n})");
            }
            if !p.fix.is_empty() {
                let _ = writeln!(out, "    fix:");
                for c in &p.fix {
                    let _ = writeln!(out, "      {c}");
                }
            }
        }
        if let Some(f) = &self.failover {
            let _ = writeln!(out, "\nFailover\n  {f}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brokers::websocket::WsSettings;
    use crate::brokers::{BrokerRef, registry::Settings, websocket};
    use crate::config::{AgentConfig, FeedConfig};
    use crate::credentials::store::tests::temp_dir;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

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
        let r = audit(&c, &sources, &root);
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
    fn members_of_the_service_group_besides_the_service_user_are_flagged() {
        let d = temp_dir("docgrp");
        let root = d.join("root");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(
            root.join("etc/group"),
            "root:x:0:\nbrokerguard:x:998:brokerguard,alice,bob\nbrokerguard-clients:x:997:carol\n",
        )
        .unwrap();
        let f = d.join("credentials.env");
        fs::write(&f, "SIGNALS_TOKEN=abc\n").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        let c = cfg(vec![f.clone()]);
        let sources = Sources::fixed(None, vec![f], &[]);
        let r = audit(&c, &sources, &root);
        let text = r.to_text();
        assert!(
            text.contains("has members besides the service user: alice, bob"),
            "{text}"
        );
        for m in ["alice", "bob"] {
            let fix = format!(
                "sudo gpasswd -d {m} brokerguard && sudo usermod -aG brokerguard-clients {m}"
            );
            assert!(text.contains(&fix), "{fix}\n{text}");
        }
        assert!(!text.contains("carol"), "{text}");

        // Only the service user in its group: nothing to say.
        fs::write(root.join("etc/group"), "brokerguard:x:998:brokerguard\n").unwrap();
        let r = audit(&c, &sources, &root);
        assert!(!r.to_text().contains("members besides"), "{}", r.to_text());
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
        let r = audit(&c, &Sources::fixed(None, vec![f.clone()], &[]), &root);
        assert!(r.ok(), "{}", r.to_text());
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(r.platform.container.as_deref(), Some("lxc"));
        assert!(r.to_text().contains("All good."));

        // Break the file: the fix names the file, and the config path is carried along.
        fs::write(&f, "SIGNALS_TOKEN=t\nbroken\n").unwrap();
        let r = audit(&c, &Sources::fixed(None, vec![f.clone()], &[]), &root);
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
}
