//! What a broker may add to the required core of [`Broker`]: four optional
//! capabilities, each a trait whose every method has the generic answer as
//! its default, reached through `Broker`'s accessors (`None`: the broker
//! has none of it). A broker implements only what it has:
//!
//! ```text
//! impl Broker for ExamplexBroker { ... fn rules(&self) -> Option<&dyn ConfigRules> { Some(self) } }
//! impl ConfigRules for ExamplexBroker { fn check_credential(...) { ... } }
//! ```
//!
//! Callers never reach for a capability: the facade on `dyn Broker`
//! (`broker.remedy(..)`, `broker.target(..)`, ...) answers with the
//! broker's capability or else the generic default, in one place.
//!
//! [`Broker`]: super::registry::Broker

use super::registry::{
    Broker, BuildContext, FeedsProblem, LoginLink, LoginResult, Lookup, NoteSeries,
};
use crate::calendar::CalendarKind;
use crate::config::{Config, FeedConfig};
use crate::credentials::format::FormatProblem;
use crate::feed::{FeedError, Layer};
use crate::secret::Secret;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// What a feed of the broker takes when it does not say: its endpoint, the
/// largest message it accepts, its market's calendar; and how its endpoint
/// is shown.
pub trait FeedDefaults {
    /// The endpoint used when the feed sets no `url`.
    fn default_url(&self) -> Option<&'static str> {
        None
    }

    /// What the feed connects to, for reports (never a secret).
    fn target(&self, feed: &FeedConfig) -> String {
        generic_target(feed, self.default_url())
    }

    /// The largest message a feed of this broker accepts unless it sets
    /// `max_message_bytes`: sized to what the broker really sends, so a
    /// lying peer cannot make the agent buffer 16 MiB per feed.
    fn max_message_bytes(&self) -> usize {
        GENERIC_MAX_MESSAGE_BYTES
    }

    /// The market calendar the feed follows unless it sets `calendar`.
    fn calendar(&self, feed: &FeedConfig) -> CalendarKind {
        let _ = feed;
        CalendarKind::Always
    }
}

/// The bound on a message of a broker that sets none.
pub const GENERIC_MAX_MESSAGE_BYTES: usize = 16 << 20;

/// The feed's `url` (else `default_url`), redacted.
pub fn generic_target(feed: &FeedConfig, default_url: Option<&str>) -> String {
    crate::net::redact_url(feed.url.as_deref().or(default_url).unwrap_or(""))
}

/// Checks of a configuration and its credentials beyond the generic ones.
pub trait ConfigRules {
    /// What to say about a `[[feed]]` key this broker does not take (e.g.
    /// `account` on a feed that names its credentials itself), instead of
    /// the generic "unknown key".
    fn hint(&self, key: &str) -> Option<String> {
        let _ = key;
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
}

/// What the broker can tell an operator: advice for a failed layer, a REST
/// proof of the credentials, facts for `doctor`, expected outages and the
/// series `/metrics` writes.
pub trait Diagnostics {
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
        down_since: SystemTime,
        now: SystemTime,
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
        running: Option<&BTreeMap<String, String>>,
    ) -> Vec<String> {
        let _ = (feed, running);
        Vec::new()
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

    /// What failover's nonce floor (a new leader's nonces start above the
    /// old leader's last) guarantees this broker, as a clause `doctor`
    /// completes "…, so " with; `None` when its keys use no nonce.
    fn failover_guarantee(&self) -> Option<&'static str> {
        None
    }

    /// The series `/metrics` writes from this broker's `info` notes.
    fn note_series(&self) -> &'static [NoteSeries] {
        &[]
    }
}

/// A day token that comes from a browser login: the operator page's
/// button, the callback that writes the token, and its expiry.
pub trait BrowserLogin {
    /// Where the holder of the feed's account logs in.
    fn login_link(&self, feed: &FeedConfig, lookup: Lookup<'_>) -> Option<LoginLink>;

    /// The browser's return from [`BrowserLogin::login_link`]'s page (the
    /// HTTP listener's `/<broker>/callback?…`, with its query's `get`): the
    /// token exchange, the new token written where the credential watcher
    /// sees it. An error says what to do, never a secret.
    fn login_callback(
        &self,
        cfg: &Config,
        get: &dyn Fn(&str) -> Option<String>,
        now: SystemTime,
    ) -> Result<LoginResult, String>;

    /// The day token a feed runs on: its credential's name and when it
    /// expires, from the feed's `info` notes (status.json).
    fn token_expiry(
        &self,
        feed: &FeedConfig,
        info: &BTreeMap<String, String>,
    ) -> Option<(String, SystemTime)>;
}

/// The facade callers use: each answer is the broker's capability's, or
/// the generic one when the broker has none.
impl dyn Broker + '_ {
    pub fn default_url(&self) -> Option<&'static str> {
        self.defaults().and_then(|d| d.default_url())
    }

    pub fn target(&self, feed: &FeedConfig) -> String {
        match self.defaults() {
            Some(d) => d.target(feed),
            None => generic_target(feed, None),
        }
    }

    pub fn max_message_bytes(&self) -> usize {
        self.defaults()
            .map_or(GENERIC_MAX_MESSAGE_BYTES, |d| d.max_message_bytes())
    }

    pub fn calendar(&self, feed: &FeedConfig) -> CalendarKind {
        self.defaults()
            .map_or(CalendarKind::Always, |d| d.calendar(feed))
    }

    pub fn hint(&self, key: &str) -> Option<String> {
        self.rules().and_then(|r| r.hint(key))
    }

    pub fn warnings(&self, feed: &FeedConfig) -> Vec<String> {
        self.rules().map(|r| r.warnings(feed)).unwrap_or_default()
    }

    pub fn check_feeds(
        &self,
        feeds: &[&FeedConfig],
        lookup: Option<Lookup<'_>>,
    ) -> Vec<FeedsProblem> {
        self.rules()
            .map(|r| r.check_feeds(feeds, lookup))
            .unwrap_or_default()
    }

    pub fn check_credential(&self, field: &str, value: &Secret) -> Vec<FormatProblem> {
        self.rules()
            .map(|r| r.check_credential(field, value))
            .unwrap_or_default()
    }

    pub fn multiline_field(&self, field: &str) -> bool {
        self.rules().is_some_and(|r| r.multiline_field(field))
    }

    pub fn remedy(&self, feed: &FeedConfig, layer: Layer, error: &FeedError) -> Option<String> {
        self.diagnostics()
            .and_then(|d| d.remedy(feed, layer, error))
    }

    pub fn validate_credentials(
        &self,
        feed: &FeedConfig,
        ctx: &BuildContext<'_>,
    ) -> Option<Result<String, FeedError>> {
        self.diagnostics()
            .and_then(|d| d.validate_credentials(feed, ctx))
    }

    pub fn expected_outage(
        &self,
        feed: &FeedConfig,
        down_since: SystemTime,
        now: SystemTime,
    ) -> Option<String> {
        self.diagnostics()
            .and_then(|d| d.expected_outage(feed, down_since, now))
    }

    pub fn doctor_notes(
        &self,
        feed: &FeedConfig,
        running: Option<&BTreeMap<String, String>>,
    ) -> Vec<String> {
        self.diagnostics()
            .map(|d| d.doctor_notes(feed, running))
            .unwrap_or_default()
    }

    pub fn session_facts(
        &self,
        feed: &FeedConfig,
        ctx: &BuildContext<'_>,
    ) -> Vec<(&'static str, String)> {
        self.diagnostics()
            .map(|d| d.session_facts(feed, ctx))
            .unwrap_or_default()
    }

    pub fn failover_guarantee(&self) -> Option<&'static str> {
        self.diagnostics().and_then(|d| d.failover_guarantee())
    }

    pub fn note_series(&self) -> &'static [NoteSeries] {
        self.diagnostics().map_or(&[], |d| d.note_series())
    }

    pub fn login_link(&self, feed: &FeedConfig, lookup: Lookup<'_>) -> Option<LoginLink> {
        self.browser_login()
            .and_then(|l| l.login_link(feed, lookup))
    }

    /// `None`: this broker has no browser login.
    pub fn login_callback(
        &self,
        cfg: &Config,
        get: &dyn Fn(&str) -> Option<String>,
        now: SystemTime,
    ) -> Option<Result<LoginResult, String>> {
        self.browser_login()
            .map(|l| l.login_callback(cfg, get, now))
    }

    pub fn token_expiry(
        &self,
        feed: &FeedConfig,
        info: &BTreeMap<String, String>,
    ) -> Option<(String, SystemTime)> {
        self.browser_login()
            .and_then(|l| l.token_expiry(feed, info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brokers::registry::{BrokerRef, BuildError, CredentialField, Settings};
    use crate::config::Section;
    use crate::feed::Adapter;

    /// A broker with the required core only, or with one capability.
    struct Fake {
        defaults: bool,
    }

    impl Broker for Fake {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn keys(&self) -> &'static [&'static str] {
            &[]
        }
        fn parse(&self, _: &mut Section<'_, '_, '_, '_>, _: &FeedConfig) -> Option<Settings> {
            None
        }
        fn default_settings(&self) -> Settings {
            crate::brokers::websocket::BROKER.default_settings()
        }
        fn credentials(&self, _: &FeedConfig) -> Vec<CredentialField> {
            Vec::new()
        }
        fn build(
            &self,
            feed: &FeedConfig,
            _: &BuildContext<'_>,
        ) -> Result<Box<dyn Adapter>, BuildError> {
            Err(BuildError::Invalid {
                feed: feed.name.clone(),
                message: "not built".into(),
            })
        }
        fn defaults(&self) -> Option<&dyn FeedDefaults> {
            self.defaults.then_some(self as &dyn FeedDefaults)
        }
    }

    impl FeedDefaults for Fake {
        fn default_url(&self) -> Option<&'static str> {
            Some("wss://user:pw@example.test/feed")
        }
    }

    static BARE: Fake = Fake { defaults: false };
    static WITH_DEFAULTS: Fake = Fake { defaults: true };

    #[test]
    fn a_broker_without_a_capability_gets_the_generic_answers() {
        let b = BrokerRef(&BARE);
        let mut feed = FeedConfig::new("f", b);
        assert_eq!(b.default_url(), None);
        feed.url = Some("wss://user:pw@example.test/x".into());
        let shown = b.target(&feed);
        assert!(
            shown.contains("example.test") && !shown.contains("pw"),
            "{shown}"
        );
        assert_eq!(b.max_message_bytes(), GENERIC_MAX_MESSAGE_BYTES);
        assert_eq!(b.calendar(&feed), CalendarKind::Always);
        assert_eq!(b.hint("account"), None);
        assert!(b.warnings(&feed).is_empty() && b.check_feeds(&[&feed], None).is_empty());
        assert!(b.check_credential("API_KEY", &Secret::new("x")).is_empty());
        assert!(!b.multiline_field("API_KEY"));
        let ctx = BuildContext::new(&|_: &str| None, "/nonexistent".into());
        assert!(b.validate_credentials(&feed, &ctx).is_none());
        assert!(b.session_facts(&feed, &ctx).is_empty());
        assert!(b.doctor_notes(&feed, None).is_empty() && b.note_series().is_empty());
        let now = SystemTime::now();
        assert_eq!(b.expected_outage(&feed, now, now), None);
        assert_eq!(b.login_link(&feed, &|_: &str| None), None);
        let cfg = crate::config::parse_str("", std::path::Path::new("t.toml")).unwrap();
        assert!(b.login_callback(&cfg, &|_| None, now).is_none());
        assert!(b.commands().is_empty());
    }

    #[test]
    fn a_capability_overrides_only_what_it_says() {
        let b = BrokerRef(&WITH_DEFAULTS);
        let mut feed = FeedConfig::new("f", b);
        assert_eq!(b.default_url(), Some("wss://user:pw@example.test/feed"));
        // `target` falls back to the broker's default endpoint, redacted.
        let shown = b.target(&feed);
        assert!(
            shown.contains("example.test") && !shown.contains("pw"),
            "{shown}"
        );
        feed.url = Some("ws://127.0.0.1:9/".into());
        assert_eq!(b.target(&feed), "ws://127.0.0.1:9/");
        assert_eq!(b.max_message_bytes(), GENERIC_MAX_MESSAGE_BYTES);
        assert_eq!(b.calendar(&feed), CalendarKind::Always);
    }
}
