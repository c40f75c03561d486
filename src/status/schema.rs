//! The `status.json` document, schema 1 (docs/ARCHITECTURE.md, "Contracts").
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
    /// The last clock offset read from a broker's `Date` header, if any
    /// REST call was made: how far the server's clock is ahead (negative:
    /// behind), from which host, when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<ClockStatus>,
    /// The outcome of the last reload (SIGHUP); absent before the first.
    /// (Boxed: most documents never have one, and they are moved around.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<Box<ReloadStatus>>,
    /// Failover (`[ha]`); absent for a single agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ha: Option<Box<HaSection>>,
}

/// This agent's failover role and who holds the lease.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaSection {
    pub node: String,
    pub cluster: String,
    /// `starting`, `leader` or `standby`.
    pub role: String,
    /// The leadership's epoch (the leader key's etcd create revision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
    /// The node holding the lease, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// RFC 3339 UTC of the last change of role or holder.
    pub since: String,
    pub etcd_reachable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub lease_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClockStatus {
    /// Server minus local clock, in milliseconds.
    pub offset_ms: i64,
    /// Half-width of the estimate (the Date header has 1 s resolution).
    pub uncertainty_ms: u64,
    pub host: String,
    /// RFC 3339 UTC of the reading.
    pub at: String,
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
    /// connecting | handshaking | authenticating | subscribing |
    /// subscribed (waiting for the first data) | live (data arrived on
    /// this connection) | closed (its market is closed; quiet) | degraded |
    /// backoff | parked | waiting | crashed (a panic; it restarts after a
    /// backoff) | stopped
    pub state: String,
    /// RFC 3339 UTC: when the feed entered `state`.
    pub since: String,
    /// Milliseconds since the last data or heartbeat message; null before the first.
    pub last_message_age_ms: Option<u64>,
    pub messages: u64,
    pub reconnects: u64,
    pub restarts: u64,
    /// Panics caught in the feed's thread since start (a bug each; the
    /// feed restarted after each).
    #[serde(default)]
    pub crashes: u64,
    pub consecutive_failures: u64,
    /// The last error the feed had; it stays after the feed recovers.
    pub last_error: Option<String>,
    /// RFC 3339 UTC: when `last_error` happened. A feed `live` since a
    /// later moment (and not flapping) has recovered from it: the error is
    /// history, not the current problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<String>,
    /// While in backoff: milliseconds until the next attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
    /// Facts the broker reports about the session (client id in use, key
    /// set in use, token expiry, market state), never a secret.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub info: std::collections::BTreeMap<String, String>,
    /// `closed`, `pre_open` or `open` for a feed that follows a market
    /// calendar (absent for 24/7 markets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market: Option<String>,
    /// While the feed is flapping: its short-lived connections within the
    /// flap window (its `alert_after`). A flapping feed is not live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flapping: Option<usize>,
    /// `required = false` in its configuration: the agent's readiness
    /// (`/readyz`) does not wait for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// The outage under way: since the last data the bot received (absent
    /// while the feed delivers). The same record the journal's
    /// `feed_down`/`feed_recovered` and the bot's `reconnected` tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outage: Option<OutageStatus>,
    /// The last outage that ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_outage: Option<OutageStatus>,
    /// The last REST check of the feed's credentials (brokers that have one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_checked: Option<CheckStatus>,
}

/// One outage of a feed (`feed::outage::Outage`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutageStatus {
    /// RFC 3339 UTC: the last data before it (the feed's start if it had
    /// delivered nothing before).
    pub since: String,
    /// RFC 3339 UTC: the first data on the connection that then kept
    /// delivering for `stable_after`; absent while it lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// How long it lasted, or has lasted so far.
    pub down_ms: u64,
    /// Connections that subscribed during it.
    pub connections: u32,
    /// Failed attempts and ended connections during it.
    pub errors: u32,
    /// What began it.
    pub cause: Option<String>,
    /// The latest error on the way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckStatus {
    /// RFC 3339 UTC.
    pub at: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CredentialStatus {
    pub name: String,
    pub present: bool,
    /// `systemd:<dir>`, `file:<path>`, `env`; null when missing.
    pub source: Option<String>,
    /// `hmac:xxxxxxxx` (keyed, see `secret::fingerprint`); null when missing.
    pub fingerprint: Option<String>,
    /// Problems with the value's format (never the value itself).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// No feed needs it (a fallback key set): its absence is not a problem.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

impl From<crate::credentials::CredentialState> for CredentialStatus {
    fn from(c: crate::credentials::CredentialState) -> Self {
        CredentialStatus {
            name: c.name,
            present: c.present,
            source: c.source,
            fingerprint: c.fingerprint,
            problems: c.problems,
            optional: c.optional,
        }
    }
}

impl StatusDoc {
    /// Every feed live, or quiet in a closed market, and none flapping
    /// (zero feeds counts as healthy).
    pub fn all_live(&self) -> bool {
        use crate::feed::FeedState;
        let healthy = [FeedState::Live.as_str(), FeedState::Closed.as_str()];
        self.feeds
            .iter()
            .all(|f| healthy.contains(&f.state.as_str()) && f.flapping.is_none())
    }
}
