//! The broker registry: one table of broker specs, the only list of
//! brokers in the program. Configuration parsing, credentials, `doctor`,
//! `check`, status and the daemon ask it; none of them spells a broker's
//! name. A broker is one folder under `src/brokers/` plus one line in
//! [`BROKERS`] (docs/ARCHITECTURE.md, "Adding a broker").

use crate::clock::Clock;
use crate::config::{FeedConfig, Section, Shown};
use crate::credentials::format::FormatProblem;
use crate::feed::{Adapter, FeedError, Layer};
use crate::secret::Secret;
use std::any::Any;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Every broker this build can drive, in the order they are listed to
/// operators.
pub static BROKERS: &[&dyn Broker] = &[
    &super::websocket::BROKER,
    &super::kraken::BROKER,
    &super::kite::BROKER,
    &super::ibkr::BROKER,
    &super::coinbase::BROKER,
    &super::alpaca::BROKER,
];

/// The broker named `name`, if this build has it.
pub fn find(name: &str) -> Option<BrokerRef> {
    BROKERS
        .iter()
        .find(|b| b.name() == name)
        .map(|b| BrokerRef(*b))
}

/// The names of the brokers this build has.
pub fn names() -> Vec<&'static str> {
    BROKERS.iter().map(|b| b.name()).collect()
}

/// One credential a feed reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialField {
    /// The credential's name, e.g. `KRAKEN_MASTER_API_KEY`.
    pub name: String,
    /// The broker's field it fills (`API_KEY`, ...), or
    /// [`crate::credentials::required::TEMPLATE_FIELD`] for a `${NAME}`.
    pub field: String,
    /// A credential the feed can run without (a fallback key set).
    pub optional: bool,
}

/// A rule broken by several feeds of one broker together (more feeds on
/// one API key than the broker allows connections), found by
/// [`Broker::check_feeds`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedsProblem {
    /// Which of the feeds handed to `check_feeds` it is reported at.
    pub feed: usize,
    /// The key of that feed it is reported at (its value's line:col when
    /// the key is written, else the feed's table).
    pub key: &'static str,
    pub message: String,
}

/// A browser login for a feed's account (a day token's broker): the
/// operator page shows it as a button.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginLink {
    /// How the button names the broker ("Log in with <label>").
    pub label: &'static str,
    /// The account it logs in.
    pub account: String,
    /// The broker's login page (it may carry the app's public key, never a
    /// secret).
    pub url: String,
}

/// A series `/metrics` writes for each feed of a broker from one of the
/// feed's `info` notes (`Action::Note`) whose value is a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoteSeries {
    /// The note's key in `feeds[].info`.
    pub note: &'static str,
    /// The metric's name (`brokerguard_<broker>_...`, Prometheus' naming guide).
    pub name: &'static str,
    pub help: &'static str,
    /// A counter (`_total`) rather than a gauge.
    pub counter: bool,
}

/// What a login callback did, for the page that shows it (never a secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginResult {
    pub account: String,
    /// What happened, as the CLI would print it (fingerprints only).
    pub text: String,
    /// The feeds that reconnect with the new token.
    pub feeds: Vec<String>,
}

/// Resolves a credential name to its value (where credentials are known).
pub type Lookup<'a> = &'a (dyn Fn(&str) -> Option<Secret> + Sync);

/// What building an adapter may need besides the feed's configuration.
pub struct BuildContext<'a> {
    /// Resolves a credential name to its value.
    pub lookup: &'a (dyn Fn(&str) -> Option<Secret> + Sync),
    pub clock: Arc<dyn Clock>,
    /// `agent.state_dir` (nonce counters).
    pub state_dir: PathBuf,
    /// Where every REST response's `Date` is recorded (the clock-drift check).
    pub drift: Arc<crate::net::http::ClockDrift>,
    /// The `[calendar.*]` holidays.
    pub calendars: crate::config::CalendarsConfig,
    /// `agent.alert_after`: the default of each feed's `alert_after`.
    pub alert_after: std::time::Duration,
}

impl BuildContext<'_> {
    /// The calendar a feed follows (its `calendar`, else its broker's),
    /// with the configured holidays; `None` for a 24/7 market.
    pub fn calendar_of(
        &self,
        feed: &FeedConfig,
    ) -> Result<Option<Arc<crate::calendar::Calendar>>, crate::calendar::CalendarError> {
        let kind = feed.calendar.unwrap_or_else(|| feed.broker.calendar(feed));
        if kind == crate::calendar::CalendarKind::Always {
            return Ok(None);
        }
        crate::calendar::Calendar::new(kind, self.calendars.holidays(kind)).map(|c| {
            Some(Arc::new(
                c.with_early_closes(self.calendars.early_closes(kind)),
            ))
        })
    }

    /// An HTTP client with the feed's timeouts and private CA, recording
    /// the server's clock in [`BuildContext::drift`].
    pub fn http_client(
        &self,
        feed: &FeedConfig,
    ) -> Result<crate::net::http::HttpClient, crate::net::NetError> {
        let opts = crate::net::http::HttpOptions {
            connect_timeout: feed.connect_timeout,
            response_timeout: feed.handshake_timeout,
            body_timeout: feed.handshake_timeout,
            ca_file: feed.tls_ca_file.clone(),
            ..crate::net::http::HttpOptions::default()
        };
        Ok(crate::net::http::HttpClient::new(opts)?.with_drift(self.drift.clone()))
    }
}

/// Why an adapter could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// A credential the feed needs is not set.
    MissingCredential { feed: String, name: String },
    /// The configuration cannot be used as written (a check only the
    /// adapter can make).
    Invalid { feed: String, message: String },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::MissingCredential { feed, name } => write!(
                f,
                "waiting for credential {name} (feed {feed}); set it with `{}` \
                 and the feed starts at once (no reload needed)",
                crate::fixcmd::command(&format!("set-credential {name}"))
            ),
            BuildError::Invalid { feed, message } => write!(f, "feed {feed}: {message}"),
        }
    }
}

impl std::error::Error for BuildError {}

/// A broker's typed configuration section: the keys of a `[[feed]]` table
/// that belong to this broker, parsed and validated.
pub trait BrokerSettings: Any + fmt::Debug + Send + Sync {
    fn as_any(&self) -> &dyn Any;
    /// Equality with another broker's settings (false across brokers).
    fn eq_dyn(&self, other: &dyn BrokerSettings) -> bool;
    /// Writes the section's keys for `config check` (secrets redacted).
    fn show(&self, out: &mut Shown<'_>);
}

/// A feed's broker settings, shared and comparable.
#[derive(Clone)]
pub struct Settings(Arc<dyn BrokerSettings>);

impl Settings {
    pub fn new<S: BrokerSettings>(s: S) -> Self {
        Settings(Arc::new(s))
    }

    /// The settings as the broker's own type.
    pub fn get<S: BrokerSettings>(&self) -> Option<&S> {
        self.0.as_any().downcast_ref::<S>()
    }

    pub fn show(&self, out: &mut Shown<'_>) {
        self.0.show(out)
    }
}

impl PartialEq for Settings {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_dyn(other.0.as_ref())
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Implements [`BrokerSettings`]' plumbing for a `PartialEq` type.
#[macro_export]
macro_rules! broker_settings_plumbing {
    () => {
        fn as_any(&self) -> &dyn ::std::any::Any {
            self
        }
        fn eq_dyn(&self, other: &dyn $crate::brokers::registry::BrokerSettings) -> bool {
            other
                .as_any()
                .downcast_ref::<Self>()
                .is_some_and(|o| o == self)
        }
    };
}

/// Everything the program knows about one broker.
pub trait Broker: Sync {
    /// The value of `broker = "..."`.
    fn name(&self) -> &'static str;

    /// The keys of a `[[feed]]` table this broker reads besides the common
    /// ones (timeouts, backoff, stall_after, ...): its own keys and which
    /// of the shared ones (`url`, `rest_url`, `account`) it takes.
    fn keys(&self) -> &'static [&'static str];

    /// What to say about a `[[feed]]` key this broker does not take (e.g.
    /// `account` on a feed that names its credentials itself), instead of
    /// the generic "unknown key".
    fn hint(&self, key: &str) -> Option<String> {
        let _ = key;
        None
    }

    /// Reads and validates this broker's keys of one feed. Problems are
    /// reported through `section` (with file:line:col); `None` when the
    /// section is unusable. `feed` holds the common keys already read.
    fn parse(&self, section: &mut Section<'_, '_, '_, '_>, feed: &FeedConfig) -> Option<Settings>;

    /// The settings of a feed with every default (tests, the demo).
    fn default_settings(&self) -> Settings;

    /// The credentials a feed of this broker reads.
    fn credentials(&self, feed: &FeedConfig) -> Vec<CredentialField>;

    /// Broker-specific format checks of one credential value (the generic
    /// ones — empty, whitespace, quotes — are made for every broker).
    fn check_credential(&self, field: &str, value: &Secret) -> Vec<FormatProblem> {
        let _ = (field, value);
        Vec::new()
    }

    /// Whether a credential field holds a multi-line value (a PEM key).
    fn multiline_field(&self, field: &str) -> bool {
        let _ = field;
        false
    }

    /// The market calendar the feed follows unless it sets `calendar`.
    fn calendar(&self, feed: &FeedConfig) -> crate::calendar::CalendarKind {
        let _ = feed;
        crate::calendar::CalendarKind::Always
    }

    /// The largest message a feed of this broker accepts unless it sets
    /// `max_message_bytes`: sized to what the broker really sends, so a
    /// lying peer cannot make the agent buffer 16 MiB per feed.
    fn max_message_bytes(&self) -> usize {
        16 << 20
    }

    /// The endpoint used when the feed sets no `url`.
    fn default_url(&self) -> Option<&'static str> {
        None
    }

    /// What the feed connects to, for reports (never a secret).
    fn target(&self, feed: &FeedConfig) -> String {
        let url = feed.url.as_deref().or(self.default_url()).unwrap_or("");
        crate::net::redact_url(url)
    }

    /// Builds the adapter the feed engine drives.
    fn build(
        &self,
        feed: &FeedConfig,
        ctx: &BuildContext<'_>,
    ) -> Result<Box<dyn Adapter>, BuildError>;

    /// What to do when `layer` failed with `error`, when the broker knows
    /// better than the generic advice (e.g. TWS settings for a mute port).
    fn remedy(&self, feed: &FeedConfig, layer: Layer, error: &FeedError) -> Option<String> {
        let _ = (feed, layer, error);
        None
    }

    /// Proves the feed's credentials with a cheap authenticated REST call
    /// (`doctor --online`, the credential monitor's `validate_every`).
    /// `None`: this broker has no REST check. `Ok` says what was proven;
    /// an error's class tells a rejection (auth) from an outage.
    fn validate_credentials(
        &self,
        feed: &FeedConfig,
        ctx: &BuildContext<'_>,
    ) -> Option<Result<String, FeedError>> {
        let _ = (feed, ctx);
        None
    }

    /// Whether an outage of this feed that began at `down_since` is
    /// expected at `now` (a broker's daily restart window): it is logged as
    /// a notice instead of `alert=feed_down` until it outlasts the window.
    /// Returns why it is expected.
    fn expected_outage(
        &self,
        feed: &FeedConfig,
        down_since: std::time::SystemTime,
        now: std::time::SystemTime,
    ) -> Option<String> {
        let _ = (feed, down_since, now);
        None
    }

    /// Facts about a feed for `doctor` that only the broker knows (the key
    /// set in use, who owns the key's nonces), one line each, never a
    /// secret. `running`: the feed's `info` notes from the running agent's
    /// status.json (see `Action::Note`); `None` when no agent runs.
    fn doctor_notes(
        &self,
        feed: &FeedConfig,
        running: Option<&std::collections::BTreeMap<String, String>>,
    ) -> Vec<String> {
        let _ = (feed, running);
        Vec::new()
    }

    /// What failover's nonce floor (a new leader's nonces start above the
    /// old leader's last) guarantees this broker, as a clause `doctor`
    /// completes "…, so " with; `None` when its keys use no nonce.
    fn failover_guarantee(&self) -> Option<&'static str> {
        None
    }

    /// Warnings about a feed that loads but is risky as written (a literal
    /// secret in the configuration), without any secret in them.
    fn warnings(&self, feed: &FeedConfig) -> Vec<String> {
        let _ = feed;
        Vec::new()
    }

    /// Rules across all of this broker's feeds (how many connections one
    /// key may open), checked once every feed has parsed: by `config check`
    /// and every load with `lookup` = `None` (only the configuration is
    /// known), and by `doctor` with the credentials, so feeds whose
    /// accounts differ but hold the same key are caught too.
    fn check_feeds(&self, feeds: &[&FeedConfig], lookup: Option<Lookup<'_>>) -> Vec<FeedsProblem> {
        let _ = (feeds, lookup);
        Vec::new()
    }

    /// The series `/metrics` writes from this broker's `info` notes.
    fn note_series(&self) -> &'static [NoteSeries] {
        &[]
    }

    /// The day token a feed runs on: its credential's name and when it
    /// expires, from the feed's `info` notes (status.json).
    fn token_expiry(
        &self,
        feed: &FeedConfig,
        info: &std::collections::BTreeMap<String, String>,
    ) -> Option<(String, std::time::SystemTime)> {
        let _ = (feed, info);
        None
    }

    /// Where the holder of the feed's account logs in, for a broker whose
    /// token comes from a browser login.
    fn login_link(&self, feed: &FeedConfig, lookup: Lookup<'_>) -> Option<LoginLink> {
        let _ = (feed, lookup);
        None
    }

    /// The browser's return from [`Broker::login_link`]'s page (the HTTP
    /// listener's `/<broker>/callback?…`, with its query's `get`): the
    /// token exchange, the new token written where the credential watcher
    /// sees it. `None`: this broker has no browser login. An error says
    /// what to do, never a secret.
    fn login_callback(
        &self,
        cfg: &crate::config::Config,
        get: &dyn Fn(&str) -> Option<String>,
        now: std::time::SystemTime,
    ) -> Option<Result<LoginResult, String>> {
        let _ = (cfg, get, now);
        None
    }

    /// Facts about a feed's session an operator reads in `doctor` (when a
    /// day token expires, when the market opens next), from local state
    /// only: no connection is made, and never a secret.
    fn session_facts(
        &self,
        feed: &FeedConfig,
        ctx: &BuildContext<'_>,
    ) -> Vec<(&'static str, String)> {
        let _ = (feed, ctx);
        Vec::new()
    }
}

/// A broker from the registry: compared and shown by name.
#[derive(Clone, Copy)]
pub struct BrokerRef(pub &'static dyn Broker);

impl BrokerRef {
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl std::ops::Deref for BrokerRef {
    type Target = dyn Broker;
    fn deref(&self) -> &Self::Target {
        self.0
    }
}

impl PartialEq for BrokerRef {
    fn eq(&self, other: &Self) -> bool {
        self.0.name() == other.0.name()
    }
}

impl Eq for BrokerRef {}

impl fmt::Debug for BrokerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

/// A broker's value rules as `credentials` takes them: plain data it can
/// check with, since it names no broker.
impl crate::credentials::format::CredentialRules for BrokerRef {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn multiline_field(&self, field: &str) -> bool {
        self.0.multiline_field(field)
    }
    fn check_credential(&self, field: &str, value: &Secret) -> Vec<FormatProblem> {
        self.0.check_credential(field, value)
    }
}

impl fmt::Display for BrokerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        let mut n = names();
        let len = n.len();
        n.sort();
        n.dedup();
        assert_eq!(n.len(), len);
        for name in names() {
            assert_eq!(find(name).map(|b| b.name()), Some(name));
        }
        assert!(find("nosuch").is_none());
    }
}
