//! Coinbase Advanced Trade, `broker = "coinbase"`: the market data and
//! user WebSockets with a fresh JWT (ES256 or EdDSA, by the key's form)
//! for every subscribe message and REST call, `heartbeats` always on,
//! every `sequence_num` gap seen, and level 2 books (PROTOCOLS.md §5).
//!
//! - `settings`: the pure configuration rules, endpoints, credential checks;
//! - `section`: the feed's section, read at file:line:col;
//! - `jwt`: CDP keys in every accepted form, and the JWTs they sign;
//! - `book`: level 2 books from `l2_data`;
//! - `core`: the pure WebSocket protocol core (table-tested in `core_tests`);
//! - `adapter`: connects a feed;
//! - `rest`: the accounts check's request and answer, pure;
//! - `client`: the accounts check over HTTP.
//!
//! This file is the registry entry.

pub mod adapter;
pub mod book;
pub mod client;
pub mod core;
pub mod jwt;
pub mod rest;
pub mod section;
pub mod settings;

pub use jwt::{Algorithm, CdpKey, KeyError, KeyForm};
pub use section::CoinbaseSettings;

use self::adapter::CoinbaseAdapter;
use self::jwt::Minter;
use self::section::settings_of;
use self::settings::{DEFAULT_MARKET_URL, DEFAULT_REST_URL, KEY_NAME_FIELD, SECRET_FIELD};
use super::registry::{
    Broker, BuildContext, BuildError, ConfigRules, CredentialField, Diagnostics, FeedDefaults,
    Settings,
};
use super::ws_options;
use crate::config::{FeedConfig, Section};
use crate::credentials::format::FormatProblem;
use crate::credentials::required::credential_name;
use crate::feed::{Adapter, FeedError, Layer};
use crate::secret::Secret;
use std::sync::Arc;

/// The registry entry.
pub static BROKER: CoinbaseBroker = CoinbaseBroker;

pub struct CoinbaseBroker;

/// The credential names of an account: (key name, private key).
pub fn credential_names(account: &str) -> (String, String) {
    (
        credential_name(settings::BROKER, account, KEY_NAME_FIELD),
        credential_name(settings::BROKER, account, SECRET_FIELD),
    )
}

/// Why a feed's key cannot be had.
enum KeyProblem {
    Missing(String),
    Unusable(String),
}

/// The feed's CDP key, when it names an account.
fn load_key(
    feed: &FeedConfig,
    lookup: &(dyn Fn(&str) -> Option<Secret> + Sync),
) -> Option<Result<CdpKey, KeyProblem>> {
    let account = feed.account.as_deref()?;
    let (name_var, secret_var) = credential_names(account);
    let Some(name) = lookup(&name_var) else {
        return Some(Err(KeyProblem::Missing(name_var)));
    };
    let Some(secret) = lookup(&secret_var) else {
        return Some(Err(KeyProblem::Missing(secret_var)));
    };
    Some(CdpKey::parse(name.expose(), secret.expose()).map_err(|e| {
        KeyProblem::Unusable(format!(
            "{secret_var}: {e}; set it with `sudo brokerguard set-credential {secret_var}` \
                 (the feed waits until then)"
        ))
    }))
}

fn rest_base(feed: &FeedConfig) -> String {
    feed.rest_url
        .clone()
        .unwrap_or_else(|| DEFAULT_REST_URL.to_string())
}

impl Broker for CoinbaseBroker {
    fn name(&self) -> &'static str {
        settings::BROKER
    }

    fn keys(&self) -> &'static [&'static str] {
        section::KEYS
    }

    fn parse(&self, section: &mut Section<'_, '_, '_, '_>, feed: &FeedConfig) -> Option<Settings> {
        section::parse(section, feed).map(Settings::new)
    }

    fn default_settings(&self) -> Settings {
        Settings::new(CoinbaseSettings::default())
    }

    fn credentials(&self, feed: &FeedConfig) -> Vec<CredentialField> {
        let Some(account) = feed.account.as_deref() else {
            return Vec::new();
        };
        let (name, secret) = credential_names(account);
        vec![
            CredentialField {
                name,
                field: KEY_NAME_FIELD.into(),
                optional: false,
            },
            CredentialField {
                name: secret,
                field: SECRET_FIELD.into(),
                optional: false,
            },
        ]
    }

    fn build(
        &self,
        feed: &FeedConfig,
        ctx: &BuildContext<'_>,
    ) -> Result<Box<dyn Adapter>, BuildError> {
        let s = settings_of(feed);
        let minter = match load_key(feed, ctx.lookup) {
            None => None,
            Some(Ok(key)) => Some(Arc::new(Minter::new(Arc::new(key), ctx.clock.clone()))),
            Some(Err(KeyProblem::Missing(name))) => {
                return Err(BuildError::MissingCredential {
                    feed: feed.name.clone(),
                    name,
                });
            }
            Some(Err(KeyProblem::Unusable(message))) => {
                return Err(BuildError::Invalid {
                    feed: feed.name.clone(),
                    message,
                });
            }
        };
        Ok(Box::new(CoinbaseAdapter {
            feed: feed.name.clone(),
            url: feed
                .url
                .clone()
                .unwrap_or_else(|| s.plan.endpoint.default_url().to_string()),
            opts: ws_options(feed),
            clock: ctx.clock.clone(),
            plan: s.plan,
            on_gap: s.on_gap,
            minter,
            counters: Arc::default(),
        }))
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
}

impl FeedDefaults for CoinbaseBroker {
    fn default_url(&self) -> Option<&'static str> {
        Some(DEFAULT_MARKET_URL)
    }

    fn target(&self, feed: &FeedConfig) -> String {
        let url = feed
            .url
            .as_deref()
            .unwrap_or(settings_of(feed).plan.endpoint.default_url());
        crate::net::redact_url(url)
    }
}

impl ConfigRules for CoinbaseBroker {
    fn check_credential(&self, field: &str, value: &Secret) -> Vec<FormatProblem> {
        settings::check_credential(field, value.expose())
    }

    fn multiline_field(&self, field: &str) -> bool {
        field == SECRET_FIELD
    }

    fn warnings(&self, feed: &FeedConfig) -> Vec<String> {
        settings::symbol_warnings(&settings_of(feed).plan)
            .into_iter()
            .map(|w| format!("feed \"{}\": {w}", feed.name))
            .collect()
    }
}

impl Diagnostics for CoinbaseBroker {
    fn remedy(&self, feed: &FeedConfig, layer: Layer, error: &FeedError) -> Option<String> {
        let _ = error;
        match layer {
            Layer::Auth if feed.account.is_some() => {
                let (name, secret) = credential_names(feed.account.as_deref().unwrap_or(""));
                Some(format!(
                    "check the CDP API key: `sudo brokerguard set-credential {name}` (its \
                     organizations/…/apiKeys/… name) and `sudo brokerguard set-credential \
                     {secret}` (its private key, EC or Ed25519); a JWT is valid 2 minutes from \
                     this host's clock, so check the clock too (`timedatectl`)"
                ))
            }
            Layer::Tcp | Layer::Dns | Layer::Handshake => Some(format!(
                "check `url`: Coinbase's are {} (market data) and {} (user)",
                settings::DEFAULT_MARKET_URL,
                settings::DEFAULT_USER_URL
            )),
            Layer::Data => Some(
                "Coinbase answers every subscribe and sends a heartbeat every second once \
                 subscribed: check `channels` and `symbols`"
                    .to_string(),
            ),
            _ => None,
        }
    }

    /// `GET /api/v3/brokerage/accounts` with a JWT for that one call, when
    /// the feed names an account.
    fn validate_credentials(
        &self,
        feed: &FeedConfig,
        ctx: &BuildContext<'_>,
    ) -> Option<Result<String, FeedError>> {
        let key = match load_key(feed, ctx.lookup)? {
            Ok(k) => k,
            Err(KeyProblem::Missing(name)) => {
                return Some(Err(FeedError::new(
                    crate::feed::ErrorClass::MissingCredential,
                    format!("credential {name} is not set"),
                )
                .at(Layer::Credentials)));
            }
            Err(KeyProblem::Unusable(m)) => {
                return Some(Err(FeedError::auth(m).at(Layer::Credentials)));
            }
        };
        let minter = Minter::new(Arc::new(key), ctx.clock.clone());
        let http = match ctx.http_client(feed) {
            Ok(h) => h,
            Err(e) => return Some(Err(FeedError::network(e.to_string()).at(Layer::Auth))),
        };
        Some(client::check_accounts(&http, &minter, &rest_base(feed)))
    }
}
