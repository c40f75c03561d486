//! The audit as data: what `doctor` found, serialised as is for
//! `doctor --json` and rendered by [`super::render`] for people. Field
//! order is the JSON's order; scripts read it.

use crate::credentials::format::Severity;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

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
    pub fn as_str(self) -> &'static str {
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

#[derive(Clone, Debug, Default, Serialize)]
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

impl DoctorReport {
    /// No problem of error severity.
    pub fn ok(&self) -> bool {
        self.ok
    }
}

/// The running agent's view, for the parts of the audit only it knows.
#[derive(Clone, Debug, Serialize)]
pub struct AgentReport {
    pub pid: u32,
    /// The last clock offset read from a broker's `Date` header.
    pub clock: Option<crate::status::schema::ClockStatus>,
    /// Per feed, what its broker reports (key set in use, client id, token expiry).
    pub feeds: Vec<(String, BTreeMap<String, String>)>,
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
