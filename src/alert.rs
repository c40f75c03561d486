//! Typed alerts: the `alert=<kind> key=value ...` journal lines that
//! operators' scripts and `journalctl -u brokerguard -p err` rely on
//! (docs/ARCHITECTURE.md, "Alerts").
//!
//! One type, one `Display`, one escaping rule for every call site: a value
//! is written as is when it has no whitespace, quote, `=` or backslash, and
//! in double quotes (with `\"` and `\\`) otherwise; control characters
//! become spaces so one alert is always one journal line. The kind decides
//! the priority: recoveries are notices (5), everything else is an error
//! (3). [`Alert::emit`] logs through a dedicated target that `logging`
//! recognises, so no code has to look at a message's text to know it is an
//! alert.
//!
//! Besides the journal, an alert goes to one optional [`set_dispatch`]
//! hook (the webhooks of `crate::alerts`): a non-blocking hand-off, so a
//! slow webhook never delays the thread that raised the alert.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Alerts emitted since the process started, by [`AlertKind::index`].
static RAISED: [AtomicU64; AlertKind::ALL.len()] =
    [const { AtomicU64::new(0) }; AlertKind::ALL.len()];

/// How many alerts of `kind` this process has emitted.
pub fn raised(kind: AlertKind) -> u64 {
    RAISED[kind.index()].load(Ordering::Relaxed)
}

/// The `log` target of alert records (see `crate::logging`).
pub const ALERT_TARGET: &str = "brokerguard::alert";

/// Every kind of alert, with its wire name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertKind {
    FeedDown,
    FeedRecovered,
    FeedFlapping,
    /// A feed thread panicked (a bug): the feed restarts after a backoff.
    FeedCrashed,
    /// Another thread of the agent panicked (a bug).
    ThreadCrashed,
    CredentialLost,
    CredentialRestored,
    CredentialRejected,
    CredentialsInvalid,
    CredentialMalformed,
    ConfigInvalid,
    StartFailed,
    WaveMissed,
    TokenExpiring,
    NonceConflict,
    KeyFallback,
    BookResync,
    ClockDrift,
    ConnectionLimit,
    InsecureCredentials,
    StatusUnwritable,
    DailyReport,
    HaTakeover,
    HaFenced,
    HaEtcdUnreachable,
}

impl AlertKind {
    pub const ALL: [AlertKind; 25] = [
        AlertKind::FeedDown,
        AlertKind::FeedRecovered,
        AlertKind::FeedFlapping,
        AlertKind::FeedCrashed,
        AlertKind::ThreadCrashed,
        AlertKind::CredentialLost,
        AlertKind::CredentialRestored,
        AlertKind::CredentialRejected,
        AlertKind::CredentialsInvalid,
        AlertKind::CredentialMalformed,
        AlertKind::ConfigInvalid,
        AlertKind::StartFailed,
        AlertKind::WaveMissed,
        AlertKind::TokenExpiring,
        AlertKind::NonceConflict,
        AlertKind::KeyFallback,
        AlertKind::BookResync,
        AlertKind::ClockDrift,
        AlertKind::ConnectionLimit,
        AlertKind::InsecureCredentials,
        AlertKind::StatusUnwritable,
        AlertKind::DailyReport,
        AlertKind::HaTakeover,
        AlertKind::HaFenced,
        AlertKind::HaEtcdUnreachable,
    ];

    /// The kind's place in [`AlertKind::ALL`].
    pub fn index(self) -> usize {
        AlertKind::ALL
            .iter()
            .position(|k| *k == self)
            .unwrap_or_default()
    }

    /// The name after `alert=`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::FeedDown => "feed_down",
            AlertKind::FeedRecovered => "feed_recovered",
            AlertKind::FeedFlapping => "feed_flapping",
            AlertKind::FeedCrashed => "feed_crashed",
            AlertKind::ThreadCrashed => "thread_crashed",
            AlertKind::CredentialLost => "credential_lost",
            AlertKind::CredentialRestored => "credential_restored",
            AlertKind::CredentialRejected => "credential_rejected",
            AlertKind::CredentialsInvalid => "credentials_invalid",
            AlertKind::CredentialMalformed => "credential_malformed",
            AlertKind::ConfigInvalid => "config_invalid",
            AlertKind::StartFailed => "start_failed",
            AlertKind::WaveMissed => "wave_missed",
            AlertKind::TokenExpiring => "token_expiring",
            AlertKind::NonceConflict => "nonce_conflict",
            AlertKind::KeyFallback => "key_fallback",
            AlertKind::BookResync => "book_resync",
            AlertKind::ClockDrift => "clock_drift",
            AlertKind::ConnectionLimit => "connection_limit",
            AlertKind::InsecureCredentials => "insecure_credentials",
            AlertKind::StatusUnwritable => "status_unwritable",
            AlertKind::DailyReport => "daily_report",
            AlertKind::HaTakeover => "ha_takeover",
            AlertKind::HaFenced => "ha_fenced",
            AlertKind::HaEtcdUnreachable => "ha_etcd_unreachable",
        }
    }

    /// Good news (a recovery): logged at notice priority, not error.
    pub fn is_recovery(self) -> bool {
        matches!(
            self,
            AlertKind::FeedRecovered | AlertKind::CredentialRestored
        )
    }

    /// How bad it is: recoveries and the daily report are notices,
    /// everything else an error.
    pub fn severity(self) -> Severity {
        if self.is_recovery() || self == AlertKind::DailyReport {
            Severity::Notice
        } else {
            Severity::Error
        }
    }

    /// The `log` level an alert of this kind is recorded at (a recovery is
    /// an info record on the notice target, see [`crate::notice!`]).
    pub fn level(self) -> log::Level {
        if self.severity() == Severity::Notice {
            log::Level::Info
        } else {
            log::Level::Error
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad an alert is, in rising order (a webhook's `min_severity`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Good news or information: a recovery, a test.
    Notice,
    /// Something is wrong and may need a person.
    Error,
}

impl Severity {
    pub const NAMES: &'static [&'static str] = &["notice", "error"];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Notice => "notice",
            Severity::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "notice" => Some(Severity::Notice),
            "error" => Some(Severity::Error),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where every emitted alert is also handed (the webhooks). It must not
/// block: it only queues.
pub type Dispatch = Arc<dyn Fn(&Alert) + Send + Sync>;

static DISPATCH: RwLock<Option<Dispatch>> = RwLock::new(None);

/// Installs (or with `None` removes) the hook every [`Alert::emit`] calls
/// after logging. One per process: the agent's alerts service.
pub fn set_dispatch(hook: Option<Dispatch>) {
    *DISPATCH.write().unwrap_or_else(|p| p.into_inner()) = hook;
}

fn dispatch(alert: &Alert) {
    let hook = DISPATCH
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .cloned();
    if let Some(hook) = hook {
        hook(alert);
    }
}

/// One alert: a kind and its fields, in the order they are written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub kind: AlertKind,
    pub fields: Vec<(&'static str, String)>,
}

impl Alert {
    pub fn new(kind: AlertKind) -> Self {
        Alert {
            kind,
            fields: Vec::new(),
        }
    }

    /// Adds `key=value`. Values must never hold a secret: pass
    /// fingerprints, names and redacted endpoints only.
    pub fn with(mut self, key: &'static str, value: impl fmt::Display) -> Self {
        self.fields.push((key, value.to_string()));
        self
    }

    /// Adds `key=value` when `value` is `Some`.
    pub fn with_opt(self, key: &'static str, value: Option<impl fmt::Display>) -> Self {
        match value {
            Some(v) => self.with(key, v),
            None => self,
        }
    }

    /// The value of a field, for tests and callers that route on it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Writes the alert to the log at its kind's priority, and counts it
    /// (`brokerguard_alerts_total`).
    pub fn emit(&self) {
        RAISED[self.kind.index()].fetch_add(1, Ordering::Relaxed);
        if self.kind.severity() == Severity::Notice {
            crate::notice!("{self}");
        } else {
            log::error!(target: ALERT_TARGET, "{self}");
        }
        dispatch(self);
    }
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "alert={}", self.kind)?;
        for (k, v) in &self.fields {
            write!(f, " {k}={}", escape(v))?;
        }
        Ok(())
    }
}

/// A value as written in an alert line: bare when safe, else quoted.
pub fn escape(v: &str) -> String {
    let one_line: String = v
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let bare = !one_line.is_empty()
        && !one_line
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '=' | '\\'));
    if bare {
        return one_line;
    }
    let mut out = String::with_capacity(one_line.len() + 2);
    out.push('"');
    for c in one_line.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_escapes_one_way() {
        let a = Alert::new(AlertKind::FeedDown)
            .with("feed", "signals")
            .with("last_error", "server closed the connection with code 1000")
            .with("odd", "a\"b\\c=d\ne")
            .with("empty", "");
        assert_eq!(
            a.to_string(),
            "alert=feed_down feed=signals last_error=\"server closed the connection with code 1000\" \
             odd=\"a\\\"b\\\\c=d e\" empty=\"\""
        );
    }

    #[test]
    fn names_are_unique_and_recoveries_are_notices() {
        let mut names: Vec<&str> = AlertKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), AlertKind::ALL.len());
        assert_eq!(AlertKind::FeedRecovered.level(), log::Level::Info);
        assert_eq!(AlertKind::FeedDown.level(), log::Level::Error);
        let a = Alert::new(AlertKind::ClockDrift).with_opt("offset", Some("2.4s"));
        assert_eq!(a.get("offset"), Some("2.4s"));
        assert_eq!(a.get("host"), None);
    }
}
