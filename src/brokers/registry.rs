//! The broker registry: one table of broker specs, the only list of
//! brokers in the program. Configuration parsing, credentials, `doctor`,
//! `check`, status and the daemon ask it; none of them spells a broker's
//! name. A broker is one folder under `src/brokers/` plus one line in
//! [`BROKERS`] (docs/ARCHITECTURE.md, "Adding a broker").

pub use super::capability::{BrowserLogin, ConfigRules, Diagnostics, FeedDefaults};
pub use super::command::{BrokerCommand, CommandContext, CommandFlag};
use crate::clock::Clock;
use crate::config::{FeedConfig, Section, Shown};
use crate::feed::Adapter;
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
/// [`ConfigRules::check_feeds`].
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
/// Made by [`BuildContext::for_config`] (or [`BuildContext::new`] where
/// there is no configuration), then `with_clock`/`with_drift` where the
/// caller shares its own.
#[derive(Clone)]
pub struct BuildContext<'a> {
    /// Resolves a credential name to its value.
    pub lookup: Lookup<'a>,
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

impl<'a> BuildContext<'a> {
    /// A context with no configuration at hand (tests, a lone adapter):
    /// the system clock, a drift record of its own, no holidays and the
    /// default `agent.alert_after`.
    pub fn new(lookup: Lookup<'a>, state_dir: PathBuf) -> Self {
        BuildContext {
            lookup,
            clock: Arc::new(crate::clock::SystemClock::new()),
            state_dir,
            drift: Arc::default(),
            calendars: crate::config::CalendarsConfig::default(),
            alert_after: crate::config::AgentConfig::defaults().alert_after,
        }
    }

    /// A context for `cfg`'s feeds: its state folder, holidays and
    /// `agent.alert_after`.
    pub fn for_config(cfg: &crate::config::Config, lookup: Lookup<'a>) -> Self {
        BuildContext {
            calendars: cfg.calendars.clone(),
            alert_after: cfg.agent.alert_after,
            ..Self::new(lookup, cfg.agent.state_dir.clone())
        }
    }

    /// The same, timed by `clock` (the agent's, or a test's fake).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        BuildContext { clock, ..self }
    }

    /// The same, recording REST `Date`s in `drift` (the agent's shared record).
    pub fn with_drift(self, drift: Arc<crate::net::http::ClockDrift>) -> Self {
        BuildContext { drift, ..self }
    }

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

/// Everything the program knows about one broker: a required core (six
/// methods) and optional capabilities (see [`super::capability`]), each
/// `None` unless the broker has it. Callers use the facade on `dyn Broker`
/// (`broker.remedy(..)`), which answers the generic way for a broker
/// without the capability.
pub trait Broker: Sync {
    /// The value of `broker = "..."`.
    fn name(&self) -> &'static str;

    /// The keys of a `[[feed]]` table this broker reads besides the common
    /// ones (timeouts, backoff, stall_after, ...): its own keys and which
    /// of the shared ones (`url`, `rest_url`, `account`) it takes.
    fn keys(&self) -> &'static [&'static str];

    /// Reads and validates this broker's keys of one feed. Problems are
    /// reported through `section` (with file:line:col); `None` when the
    /// section is unusable. `feed` holds the common keys already read.
    fn parse(&self, section: &mut Section<'_, '_, '_, '_>, feed: &FeedConfig) -> Option<Settings>;

    /// The settings of a feed with every default (tests, the demo).
    fn default_settings(&self) -> Settings;

    /// The credentials a feed of this broker reads.
    fn credentials(&self, feed: &FeedConfig) -> Vec<CredentialField>;

    /// Builds the adapter the feed engine drives.
    fn build(
        &self,
        feed: &FeedConfig,
        ctx: &BuildContext<'_>,
    ) -> Result<Box<dyn Adapter>, BuildError>;

    /// Its default endpoint, message bound and market calendar.
    fn defaults(&self) -> Option<&dyn FeedDefaults> {
        None
    }

    /// Its checks of a configuration and credentials beyond the generic ones.
    fn rules(&self) -> Option<&dyn ConfigRules> {
        None
    }

    /// What it tells an operator (remedies, a REST check, `doctor` facts,
    /// expected outages, metrics).
    fn diagnostics(&self) -> Option<&dyn Diagnostics> {
        None
    }

    /// Its day token's browser login.
    fn browser_login(&self) -> Option<&dyn BrowserLogin> {
        None
    }

    /// The subcommands it adds to the command line (`brokerguard NAME`).
    fn commands(&self) -> &'static [BrokerCommand] {
        &[]
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
    fn check_credential(
        &self,
        field: &str,
        value: &Secret,
    ) -> Vec<crate::credentials::format::FormatProblem> {
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
