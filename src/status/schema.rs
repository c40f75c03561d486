//! The `status.json` document, schema 1 (DESIGN.md "status.json").
//! Fields may be added; none may be renamed without changing `schema`.

use serde::{Deserialize, Serialize};

pub const SCHEMA: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusDoc {
    pub schema: u32,
    pub agent: AgentStatus,
    pub feeds: Vec<FeedStatus>,
    pub credentials: Vec<CredentialStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub pid: u32,
    pub version: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// RFC 3339 UTC of this write; a reader can tell a frozen agent.
    #[serde(default)]
    pub updated_at: String,
    /// The one-line summary also sent to systemd as `STATUS=`.
    #[serde(default)]
    pub summary: String,
    /// Path of the configuration in force.
    #[serde(default)]
    pub config: String,
    /// The outcome of the last reload (SIGHUP); absent before the first.
    /// (Boxed: most documents never have one, and they are moved around.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<Box<ReloadStatus>>,
}

/// What the last reload did. `brokerguard reload` reads `generation`
/// before it signals and waits for a larger one, so an earlier reload's
/// outcome is never taken for its own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadStatus {
    /// Reloads handled since the agent started: 1 for the first.
    pub generation: u64,
    /// `applied`, or `rejected` (the running configuration was kept).
    pub result: String,
    /// RFC 3339 UTC: when the reload finished.
    pub at: String,
    /// For a rejected configuration, each problem as `config check` prints
    /// it: `file:line:col: key: message`. Never contains a secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl ReloadStatus {
    pub const APPLIED: &'static str = "applied";
    pub const REJECTED: &'static str = "rejected";
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FeedStatus {
    pub name: String,
    pub broker: String,
    /// connecting | handshaking | authenticating | subscribing | live | backoff | parked | stopped
    pub state: String,
    /// RFC 3339 UTC: when the feed entered `state`.
    pub since: String,
    /// Milliseconds since the last data or heartbeat message; null before the first.
    pub last_message_age_ms: Option<u64>,
    pub messages: u64,
    pub reconnects: u64,
    pub restarts: u64,
    pub consecutive_failures: u64,
    pub last_error: Option<String>,
    /// While in backoff: milliseconds until the next attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CredentialStatus {
    pub name: String,
    pub present: bool,
    /// `systemd:<dir>`, `file:<path>`, `env`; null when missing.
    pub source: Option<String>,
    /// `sha256:xxxxxxxx`; null when missing.
    pub fingerprint: Option<String>,
    /// Problems with the value's format (never the value itself).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl StatusDoc {
    /// Every feed live (and at least... zero feeds counts as healthy).
    pub fn all_live(&self) -> bool {
        self.feeds.iter().all(|f| f.state == "live")
    }
}
