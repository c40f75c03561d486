//! The offline audit: the credentials (set, missing, malformed,
//! env-only), the credentials files (owner, group, mode), the service's
//! group, the systemd unit, the running agent's clock, the brokers' rules
//! across feeds, and what failover guarantees. Every problem comes with
//! the exact commands that fix it on this host.

use super::host::{self, Host};
use super::report::{
    CredState, CredentialReport, DoctorProblem, DoctorReport, FileReport, PlatformReport,
};
use crate::config::required_credentials;
use crate::config::{self, Config};
use crate::credentials::format::Severity;
use crate::credentials::permissions::{self, CLIENTS_GROUP, ModeProblem};
use crate::credentials::required::{Required, distinct_names};
use crate::credentials::store::{self, CredProblem, CredentialStore, Sources};
use crate::fixcmd::sh_quote;
use crate::os::fs::{SERVICE_GROUP, SERVICE_USER};
use crate::timefmt::human;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Audits, with file ages computed from `now`.
pub fn audit_at(cfg: &Config, sources: &Sources, host: &dyn Host, now: SystemTime) -> DoctorReport {
    let required = required_credentials(cfg);
    let platform = host::platform(host, &*sources.env);
    let cmds = Commands::new(cfg, &platform);
    let outcome = CredentialStore::load(sources, &required);
    let mut problems: Vec<DoctorProblem> = outcome
        .problems
        .iter()
        .map(|p| credential_problem(p, &cmds, host.is_root()))
        .collect();
    problems.extend(cross_feed_problems(cfg, &outcome.store));
    let credentials = credential_reports(&required, &outcome.store, &outcome.problems, now);
    let files: Vec<FileReport> = sources
        .files
        .iter()
        .map(|f| file_report(host, f, &outcome.problems, &mut problems))
        .collect();
    problems.extend(service_group_problem(host));
    problems.extend(unit_problem(&platform));
    let agent = host.running_agent(&cfg.agent.runtime_dir);
    problems.extend(
        agent
            .as_ref()
            .and_then(|a| clock_problem(a.clock.as_ref()?)),
    );
    DoctorReport {
        ok: problems.iter().all(|p| p.severity != Severity::Error),
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

/// What `doctor` says failover guarantees, for a configuration with `[ha]`;
/// each broker whose keys the nonce floor protects says what that means
/// to it ([`crate::brokers::registry::Broker::failover_guarantee`]).
fn failover_note(cfg: &Config) -> Option<String> {
    let ha = cfg.ha.as_ref()?;
    let guarantees: Vec<&str> = crate::brokers::registry::BROKERS
        .iter()
        .filter_map(|b| b.failover_guarantee())
        .collect();
    let so = if guarantees.is_empty() {
        String::new()
    } else {
        format!(", so {}", guarantees.join(" and "))
    };
    Some(format!(
        "node {} of cluster {} (lease {}): private feeds run only on the agent holding the etcd \
         lease, and stop on their own clock half a lease after the last renewal, before a standby \
         can win; a new leader's nonces start above the last nonce the old leader recorded in \
         etcd (every second) plus {} of microseconds (half a lease and two seconds: the most the \
         old leader can have signed after its last record), and above this host's clock{so}; a \
         standby makes no signed REST check",
        ha.node,
        ha.cluster,
        human(ha.lease),
        human(ha.lease / 2 + std::time::Duration::from_secs(2))
    ))
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

/// Members of the service's group besides the service user read every
/// secret: the bot's user belongs in [`CLIENTS_GROUP`] (older instructions
/// said otherwise, so upgraded hosts have this).
fn service_group_problem(host: &dyn Host) -> Option<DoctorProblem> {
    let extra: Vec<String> = host::group_members(host, SERVICE_GROUP)
        .into_iter()
        .filter(|m| m != SERVICE_USER)
        .collect();
    if extra.is_empty() {
        return None;
    }
    Some(DoctorProblem {
        severity: Severity::Warning,
        message: format!(
            "group {SERVICE_GROUP}, which reads the credentials files, has members besides the service user: {}; they can read every secret",
            extra.join(", ")
        ),
        fix: extra
            .iter()
            .map(|m| {
                let m = sh_quote(m);
                format!(
                    "sudo gpasswd -d {m} {SERVICE_GROUP} && sudo usermod -aG {CLIENTS_GROUP} {m}"
                )
            })
            .collect(),
        note: Some(format!(
            "group {CLIENTS_GROUP} reads status.json and connects to feeds.sock, nothing more; a user's new groups apply from its next login (restart the bot)"
        )),
    })
}

/// Without a unit (and outside a container) nothing restarts the agent.
fn unit_problem(platform: &PlatformReport) -> Option<DoctorProblem> {
    (platform.systemd_unit.is_none() && platform.container.is_none()).then(|| DoctorProblem {
        severity: Severity::Warning,
        message: "no systemd unit brokerguard.service is installed: nothing restarts the agent after a crash or a reboot".into(),
        fix: vec!["sudo ./install.sh".into(), "sudo systemctl enable --now brokerguard".into()],
        note: Some("run install.sh from the unpacked release folder".into()),
    })
}

/// The running agent's last reading of this host's clock against a
/// broker's, when it is off by more than signed APIs accept.
fn clock_problem(clock: &crate::status::schema::ClockStatus) -> Option<DoctorProblem> {
    let beyond = clock
        .offset_ms
        .unsigned_abs()
        .saturating_sub(clock.uncertainty_ms);
    (beyond > crate::net::http::DRIFT_LIMIT.as_millis() as u64).then(|| DoctorProblem {
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
    })
}

/// The commands of fixes, adapted to this host.
pub(super) struct Commands {
    /// The configuration audited: every brokerguard command suggested
    /// carries it (see `fixcmd`).
    config: PathBuf,
    reload: String,
}

impl Commands {
    pub(super) fn new(cfg: &Config, platform: &PlatformReport) -> Commands {
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

/// A credential source's problem, with its fix on this host.
pub(super) fn credential_problem(p: &CredProblem, cmds: &Commands, is_root: bool) -> DoctorProblem {
    let mk = |fix: Vec<String>, note: Option<String>| DoctorProblem {
        severity: p.severity(),
        message: p.to_string(),
        fix,
        note,
    };
    match p {
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
        CredProblem::FileMissing { file } => mk(
            create_file_commands(file),
            Some("then add each credential with set-credential".into()),
        ),
        // Most likely the operator's own account lacks access, as intended.
        CredProblem::FileUnreadable { .. } if !is_root => mk(
            vec![cmds.brokerguard("doctor")],
            Some("the file is for root and the service group; audit it as root".into()),
        ),
        CredProblem::FileUnreadable { file, .. } => {
            mk(vec![permissions::restrict_command(file)], None)
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
    }
}

/// What to run to create a missing credentials file (and its folder).
fn create_file_commands(file: &Path) -> Vec<String> {
    let mut fix = Vec::new();
    if let Some(dir) = file.parent().filter(|d| !d.exists()) {
        fix.push(format!(
            "sudo install -d -m 0750 -o root -g {SERVICE_GROUP} {}",
            sh_quote(&dir.display().to_string())
        ));
    }
    fix.push(format!(
        "sudo install -m 0640 -o root -g {SERVICE_GROUP} /dev/null {}",
        sh_quote(&file.display().to_string())
    ));
    fix
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
            let mut feeds: Vec<String> = Vec::new();
            for r in required.iter().filter(|r| r.name == name) {
                if !feeds.contains(&r.feed) {
                    feeds.push(r.feed.clone());
                }
            }
            let fmt: Vec<&CredProblem> = problems
                .iter()
                .filter(|p| matches!(p, CredProblem::Format { name: n, .. } if n == name))
                .collect();
            let cred = store.get(name);
            let state = match cred {
                None if store::all_optional(required, name) => CredState::NotSet,
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

/// A credentials file's report; its loose modes are added to `problems`.
fn file_report(
    host: &dyn Host,
    path: &Path,
    load_problems: &[CredProblem],
    problems: &mut Vec<DoctorProblem>,
) -> FileReport {
    let error = load_problems
        .iter()
        .find(|p| p.file() == Some(path) && !matches!(p, CredProblem::FileMissing { .. }))
        .map(|p| p.reason());
    let facts = host.file(path);
    let Some(stat) = facts.stat else {
        return FileReport {
            path: path.to_path_buf(),
            exists: false,
            symlink_target: facts.symlink_target,
            owner: None,
            group: None,
            mode: None,
            error,
        };
    };
    for p in permissions::mode_problems(stat.mode, stat.gid, &stat.group) {
        problems.push(mode_problem(path, stat.mode, &stat.group, p));
    }
    FileReport {
        path: path.to_path_buf(),
        exists: true,
        symlink_target: facts.symlink_target,
        owner: Some(stat.owner),
        group: Some(stat.group),
        mode: Some(format!("{:04o}", stat.mode)),
        error,
    }
}

/// A loose mode of credentials file `path`, said with its fix.
fn mode_problem(path: &Path, mode: u32, group: &str, p: ModeProblem) -> DoctorProblem {
    let shown = path.display();
    let message = match p {
        ModeProblem::OpenToEveryone { writable } => format!(
            "credentials file {shown} has mode {mode:04o}: every user on this host can {} it",
            if writable { "change" } else { "read" }
        ),
        ModeProblem::GroupWritable => {
            format!("credentials file {shown} has mode {mode:04o}: group {group} can change it")
        }
        ModeProblem::GroupReadable { clients } => format!(
            "credentials file {shown} is readable by group {group}{}; only root and group {SERVICE_GROUP} should read it",
            if clients {
                " (the bot's group: the bot's user can read every secret in it)"
            } else {
                ""
            }
        ),
    };
    DoctorProblem {
        severity: if p.is_error() {
            Severity::Error
        } else {
            Severity::Warning
        },
        message,
        fix: vec![permissions::restrict_command(path)],
        note: None,
    }
}
