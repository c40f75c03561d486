//! Zerodha Kite Connect (`broker = "kite"`): the KiteTicker binary feed,
//! the daily login, token expiry and the limits a configuration must
//! respect (PROTOCOLS.md §3).
//!
//! The pure pieces:
//! - [`ticker`]: binary frames → ticks with pykiteconnect's field names;
//! - [`core`]: the ticker protocol core and the upgrade status classifier;
//! - [`login`], [`rest`]: the checksum exchange and the profile check;
//! - [`url`]: URL-encoding of credentials into the ticker URL and forms;
//! - [`expiry`]: 06:00 IST expiry and the `token_expiring` rule;
//! - [`watch`]: one feed's token state, its status notes and alerts;
//! - [`limits`]: 3 000 instruments per connection, 3 connections per key;
//! - [`credentials`]: field names and their format checks;
//! - [`section`]: the feed's keys, read at file:line:col and printed back.
//!
//! What touches the world:
//! - [`adapter`]: the ticker WebSocket, driven by the session driver;
//! - [`client`]: the REST calls over the HTTP client;
//! - [`records`]: when each token was issued, in the state folder;
//! - [`login_cmd`]: `brokerguard kite-login`;
//! - this file: the registry entry ([`BROKER`]).

pub mod adapter;
pub mod browser;
pub mod client;
pub mod core;
pub mod credentials;
pub mod expiry;
pub mod limits;
pub mod login;
pub mod login_cmd;
pub mod records;
pub mod rest;
pub mod section;
pub mod ticker;
pub mod url;
pub mod watch;

#[cfg(test)]
mod tests;

/// The broker's name in the configuration (`broker = "kite"`).
pub const NAME: &str = "kite";
/// The ticker's endpoint when a feed sets no `url`.
pub const DEFAULT_TICKER_URL: &str = "wss://ws.kite.trade";
/// The REST root when a feed sets no `rest_url`.
pub const DEFAULT_REST_URL: &str = "https://api.kite.trade";

pub use adapter::KiteAdapter;
pub use core::{TickerConfig, TickerCore, TickerCounters, TickerCounts, classify_upgrade};
pub use section::KiteSettings;
pub use ticker::Mode;

use self::credentials::{FIELD_ACCESS_TOKEN, FIELD_API_KEY, FIELD_API_SECRET, credential_name};
use self::limits::KeyUse;
use self::watch::TokenWatch;
use super::registry::{
    Broker, BrokerCommand, BrowserLogin, BuildContext, BuildError, ConfigRules, CredentialField,
    Diagnostics, FeedDefaults, FeedsProblem, LoginLink, LoginResult, Lookup, NoteSeries, Settings,
};
use crate::calendar::{Calendar, CalendarKind};
use crate::config::{FeedConfig, Section};
use crate::credentials::format::FormatProblem;
use crate::feed::{Adapter, ErrorClass, FeedError, Layer};
use crate::secret::Secret;
use std::sync::Arc;

/// The registry entry.
pub static BROKER: KiteBroker = KiteBroker;

pub struct KiteBroker;

/// The feed's account ("" when unset: the configuration refuses that).
fn account_of(feed: &FeedConfig) -> &str {
    feed.account.as_deref().unwrap_or("")
}

/// The NSE calendar with the configured holidays: the token rule's day,
/// whatever calendar the feed's own stall detection follows.
fn nse_calendar(ctx: &BuildContext<'_>) -> Option<Arc<Calendar>> {
    match Calendar::new(CalendarKind::Nse, ctx.calendars.holidays(CalendarKind::Nse)) {
        Ok(c) => Some(Arc::new(c)),
        Err(e) => {
            log::warn!("token_expiring cannot be judged: {e}");
            None
        }
    }
}

/// The feed's token watch as of now: its fingerprint, and the issue time
/// recorded in the state folder (by `kite-login`, or a first success).
fn token_watch(feed: &FeedConfig, ctx: &BuildContext<'_>, token: Option<&Secret>) -> TokenWatch {
    let issued = token
        .and_then(|t| records::load(&ctx.state_dir, t))
        .map(|r| (&r).into());
    TokenWatch::new(
        account_of(feed),
        token.map(Secret::fingerprint),
        issued,
        nse_calendar(ctx),
        section::of(feed).token_alert_before,
    )
}

/// The REST root of a feed.
pub fn rest_root(feed: &FeedConfig) -> &str {
    feed.rest_url.as_deref().unwrap_or(DEFAULT_REST_URL)
}

impl Broker for KiteBroker {
    fn name(&self) -> &'static str {
        NAME
    }

    fn keys(&self) -> &'static [&'static str] {
        section::KEYS
    }

    fn parse(&self, s: &mut Section<'_, '_, '_, '_>, feed: &FeedConfig) -> Option<Settings> {
        section::parse(s, feed).map(Settings::new)
    }

    fn default_settings(&self) -> Settings {
        Settings::new(KiteSettings::default())
    }

    fn credentials(&self, feed: &FeedConfig) -> Vec<CredentialField> {
        let Some(account) = feed.account.as_deref() else {
            return Vec::new();
        };
        [
            (FIELD_API_KEY, false),
            (FIELD_ACCESS_TOKEN, false),
            // Only `kite-login` needs it (for the checksum).
            (FIELD_API_SECRET, true),
        ]
        .into_iter()
        .map(|(field, optional)| CredentialField {
            name: credential_name(account, field),
            field: field.to_string(),
            optional,
        })
        .collect()
    }

    fn build(
        &self,
        feed: &FeedConfig,
        ctx: &BuildContext<'_>,
    ) -> Result<Box<dyn Adapter>, BuildError> {
        let s = section::of(feed);
        let account = account_of(feed);
        let need = |field: &str| {
            let name = credential_name(account, field);
            (ctx.lookup)(&name).ok_or(BuildError::MissingCredential {
                feed: feed.name.clone(),
                name,
            })
        };
        let api_key = need(FIELD_API_KEY)?;
        let token = need(FIELD_ACCESS_TOKEN)?;
        let base = feed.url.as_deref().unwrap_or(DEFAULT_TICKER_URL);
        let watch = token_watch(feed, ctx, Some(&token));
        Ok(Box::new(KiteAdapter::new(
            url::ticker_url(base, &api_key, &token),
            super::ws_options(feed),
            TickerConfig {
                feed: feed.name.clone(),
                account: account.to_string(),
                instruments: s.instruments,
                mode: s.mode,
            },
            ctx.clock.clone(),
            ctx.state_dir.clone(),
            watch,
        )))
    }

    fn defaults(&self) -> Option<&dyn FeedDefaults> {
        Some(self)
    }

    fn rules(&self) -> Option<&dyn ConfigRules> {
        Some(self)
    }

    fn diagnostics(&self) -> Option<&dyn Diagnostics> {
        Some(self)
    }

    fn browser_login(&self) -> Option<&dyn BrowserLogin> {
        Some(self)
    }

    fn commands(&self) -> &'static [BrokerCommand] {
        login_cmd::COMMANDS
    }
}

impl FeedDefaults for KiteBroker {
    fn calendar(&self, _feed: &FeedConfig) -> CalendarKind {
        CalendarKind::Nse
    }

    /// A ticker frame holds at most 3 000 instruments in full mode (184 bytes each): under 600 KB.
    fn max_message_bytes(&self) -> usize {
        1 << 20
    }

    fn default_url(&self) -> Option<&'static str> {
        Some(DEFAULT_TICKER_URL)
    }
}

impl ConfigRules for KiteBroker {
    fn check_credential(&self, field: &str, value: &Secret) -> Vec<FormatProblem> {
        credentials::check_format(field, value)
    }

    fn check_feeds(&self, feeds: &[&FeedConfig], lookup: Option<Lookup<'_>>) -> Vec<FeedsProblem> {
        // A key is its fingerprint where the credentials are known (two
        // accounts may hold one key), else its account.
        let keys: Vec<String> = feeds
            .iter()
            .map(|f| {
                let account = account_of(f);
                lookup
                    .and_then(|l| l(&credential_name(account, FIELD_API_KEY)))
                    .map_or_else(|| format!("of account {account}"), |k| k.fingerprint())
            })
            .collect();
        let uses: Vec<KeyUse<'_>> = feeds
            .iter()
            .zip(&keys)
            .map(|(f, key)| KeyUse {
                feed: &f.name,
                key,
                instruments: section::of(f).instruments.len(),
            })
            .collect();
        limits::over_connection_limit(&uses)
            .into_iter()
            .map(|(feed, message)| FeedsProblem {
                feed,
                key: "account",
                message,
            })
            .collect()
    }
}

impl Diagnostics for KiteBroker {
    fn remedy(&self, feed: &FeedConfig, layer: Layer, error: &FeedError) -> Option<String> {
        let account = account_of(feed);
        match layer {
            Layer::Credentials => Some(format!(
                "the access token comes from the daily login ({}); the api_key and api_secret \
                 from the Kite developer console ({})",
                rest::login_command(account),
                crate::fixcmd::command(&format!(
                    "set-credential {}",
                    credential_name(account, FIELD_API_KEY)
                ))
            )),
            // The adapter's messages name the remedy (kite-login, the
            // connection limit); do not say it twice.
            Layer::Auth if error.class == ErrorClass::Auth => Some(String::new()),
            _ if matches!(error.class, ErrorClass::RateLimited { .. }) => Some(String::new()),
            Layer::Handshake if error.class == ErrorClass::GoingAway => {
                Some("the feed retries by itself after a short random delay".into())
            }
            Layer::Data if error.class == ErrorClass::Stalled => Some(
                "Kite sends a 1-byte heartbeat about every second even when nothing trades, so a silent \
                 ticker is broken on Kite's side or on the way; the running feed restarts it by itself"
                    .into(),
            ),
            _ => None,
        }
    }

    fn validate_credentials(
        &self,
        feed: &FeedConfig,
        ctx: &BuildContext<'_>,
    ) -> Option<Result<String, FeedError>> {
        let account = account_of(feed);
        let get = |field: &str| {
            let name = credential_name(account, field);
            (ctx.lookup)(&name).ok_or_else(|| {
                FeedError::new(ErrorClass::MissingCredential, format!("{name} is not set"))
                    .at(Layer::Credentials)
            })
        };
        let (key, token) = match (get(FIELD_API_KEY), get(FIELD_ACCESS_TOKEN)) {
            (Ok(k), Ok(t)) => (k, t),
            (Err(e), _) | (_, Err(e)) => return Some(Err(e)),
        };
        let client = match ctx.http_client(feed) {
            Ok(c) => c,
            Err(e) => return Some(Err(FeedError::network(e.to_string()).at(Layer::Auth))),
        };
        let profile = match client::profile(&client, rest_root(feed), &key, &token, account) {
            Ok(p) => p,
            Err(e) => return Some(Err(e.to_feed_error())),
        };
        let now = ctx.clock.wall();
        let mut watch = token_watch(feed, ctx, Some(&token));
        if let Some(rec) = watch.worked(now) {
            if ctx.state_dir.is_dir() {
                let _ = records::save(&ctx.state_dir, &rec, now);
            }
        }
        let expires = watch
            .facts(now)
            .into_iter()
            .find(|(k, _)| *k == "token_expires")
            .map(|(_, v)| v)
            .unwrap_or_default();
        let name = profile
            .user_name
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        Some(Ok(format!(
            "GET /user/profile answered for {}{name} (access token {}, expires {expires})",
            profile.user_id,
            token.fingerprint()
        )))
    }

    fn note_series(&self) -> &'static [NoteSeries] {
        &[
            NoteSeries {
                note: "frames_dropped",
                name: "brokerguard_kite_frames_dropped_total",
                help: "Kite binary frames dropped because their lengths lied (the connection is kept).",
                counter: true,
            },
            NoteSeries {
                note: "texts_dropped",
                name: "brokerguard_kite_texts_dropped_total",
                help: "Kite text messages dropped as unparsable.",
                counter: true,
            },
        ]
    }

    fn session_facts(
        &self,
        feed: &FeedConfig,
        ctx: &BuildContext<'_>,
    ) -> Vec<(&'static str, String)> {
        let token = (ctx.lookup)(&credential_name(account_of(feed), FIELD_ACCESS_TOKEN));
        let now = ctx.clock.wall();
        let watch = token_watch(feed, ctx, token.as_ref());
        let mut facts = watch.facts(now);
        if let Some(nse) = nse_calendar(ctx) {
            facts.push(("market", format!("NSE {}", nse.state_at(now))));
        }
        facts
    }
}

impl BrowserLogin for KiteBroker {
    fn token_expiry(
        &self,
        feed: &FeedConfig,
        info: &std::collections::BTreeMap<String, String>,
    ) -> Option<(String, std::time::SystemTime)> {
        // "2026-11-28T00:30:00Z (06:00 IST)", as `watch::TokenWatch::facts` writes it.
        let at: jiff::Timestamp = info.get("token_expires")?.split(' ').next()?.parse().ok()?;
        Some((
            credential_name(account_of(feed), FIELD_ACCESS_TOKEN),
            std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(u64::try_from(at.as_second()).ok()?),
        ))
    }

    fn login_link(&self, feed: &FeedConfig, lookup: Lookup<'_>) -> Option<LoginLink> {
        browser::login_link(feed, lookup)
    }

    fn login_callback(
        &self,
        cfg: &crate::config::Config,
        get: &dyn Fn(&str) -> Option<String>,
        now: std::time::SystemTime,
    ) -> Result<LoginResult, String> {
        browser::callback(cfg, get, now)
    }
}
