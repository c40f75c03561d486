//! Alpaca (`broker = "alpaca"`): market data (`v2/iex`, `v2/sip`,
//! `v1beta3/crypto/us`, `v2/test`) and trade updates, one stream per key
//! and endpoint held by the agent and shared with every local bot through
//! the fan-out (PROTOCOLS.md §2).
//!
//! The pure pieces:
//! - [`settings`]: streams, channels, symbols, endpoints, credential shapes;
//! - [`core`]: the market-data protocol core (and the keepalive both use);
//! - [`updates`]: the trade-updates protocol core;
//! - [`errors`]: every error code and what the feed does about it;
//! - [`rest`]: the `/v2/account` request, its answer and the verdict.
//!
//! What touches the world:
//! - [`section`]: the feed's keys, read at file:line:col and printed back;
//! - [`adapter`]: the WebSocket, driven by the session driver;
//! - [`client`]: the REST check over the HTTP client;
//! - this file: the registry entry ([`BROKER`]).

pub mod adapter;
pub mod client;
pub mod core;
pub mod errors;
pub mod rest;
pub mod section;
pub mod settings;
pub mod updates;

pub use section::AlpacaSettings;
pub use settings::{Channel, Plan, Stream};

use self::adapter::AlpacaAdapter;
use self::core::{FeedMemory, Identity};
use self::section::settings_of;
use self::settings::{FIELD_KEY_ID, FIELD_SECRET, NAME};
use super::registry::{
    Broker, BuildContext, BuildError, ConfigRules, CredentialField, Diagnostics, FeedDefaults,
    FeedsProblem, Lookup, Settings,
};
use crate::calendar::CalendarKind;
use crate::config::{FeedConfig, Section};
use crate::credentials::format::FormatProblem;
use crate::credentials::required::credential_name;
use crate::feed::{Adapter, ErrorClass, FeedError, Layer};
use crate::secret::Secret;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The registry entry.
pub static BROKER: AlpacaBroker = AlpacaBroker;

pub struct AlpacaBroker;

/// The rule `config check` and `doctor` enforce, in Alpaca's words.
pub const CONNECTION_RULE: &str = "Alpaca allows one connection per key and endpoint: a second \
     one (another bot, a second copy) is refused with 406 \"connection limit exceeded\"";

/// The feed's credential names (key id, secret).
pub fn credential_names(feed: &FeedConfig) -> (String, String) {
    let account = feed.account.as_deref().unwrap_or("main");
    (
        credential_name(NAME, account, FIELD_KEY_ID),
        credential_name(NAME, account, FIELD_SECRET),
    )
}

/// The endpoint a feed connects to (its `url`, else the stream's).
pub fn endpoint(feed: &FeedConfig) -> String {
    feed.url
        .clone()
        .unwrap_or_else(|| settings_of(feed).plan.default_url())
}

/// The REST base of a feed's account check.
pub fn rest_base(feed: &FeedConfig) -> String {
    feed.rest_url
        .clone()
        .unwrap_or_else(|| settings_of(feed).plan.default_rest_url().to_string())
}

impl Broker for AlpacaBroker {
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
        Settings::new(AlpacaSettings::default())
    }

    fn credentials(&self, feed: &FeedConfig) -> Vec<CredentialField> {
        let (key, secret) = credential_names(feed);
        vec![
            CredentialField {
                name: key,
                field: FIELD_KEY_ID.into(),
                optional: false,
            },
            CredentialField {
                name: secret,
                field: FIELD_SECRET.into(),
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
        let (key_name, secret_name) = credential_names(feed);
        let need = |name: &str| {
            (ctx.lookup)(name).ok_or_else(|| BuildError::MissingCredential {
                feed: feed.name.clone(),
                name: name.to_string(),
            })
        };
        let key_id = need(&key_name)?;
        let secret = need(&secret_name)?;
        Ok(Box::new(AlpacaAdapter {
            url: endpoint(feed),
            opts: super::ws_options(feed),
            clock: ctx.clock.clone(),
            plan: Arc::new(s.plan),
            who: Arc::new(Identity {
                feed: feed.name.clone(),
                key_id,
                secret,
                key_name,
                secret_name,
            }),
            memory: Arc::new(FeedMemory::default()),
            ping_every: feed.ping_every,
            pong_timeout: feed.pong_timeout,
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

impl FeedDefaults for AlpacaBroker {
    fn calendar(&self, feed: &FeedConfig) -> CalendarKind {
        if settings_of(feed).plan.stream.follows_nyse() {
            CalendarKind::Nyse
        } else {
            CalendarKind::Always
        }
    }

    fn default_url(&self) -> Option<&'static str> {
        // The stream's own default is `target`'s; this one only says wss://.
        Some(settings::DEFAULT_URL)
    }

    fn target(&self, feed: &FeedConfig) -> String {
        crate::net::redact_url(&endpoint(feed))
    }
}

impl ConfigRules for AlpacaBroker {
    fn check_credential(&self, field: &str, value: &Secret) -> Vec<FormatProblem> {
        settings::check_credential(field, value.expose())
    }

    /// One connection per key and endpoint: a second feed on the same key
    /// and endpoint is refused here, before Alpaca answers it with 406.
    fn check_feeds(&self, feeds: &[&FeedConfig], lookup: Option<Lookup<'_>>) -> Vec<FeedsProblem> {
        let mut holders: BTreeMap<(String, String), &str> = BTreeMap::new();
        let mut out = Vec::new();
        for (i, f) in feeds.iter().enumerate() {
            let (key_name, _) = credential_names(f);
            // Where credentials are known, two accounts may hold one key.
            let key = lookup.and_then(|l| l(&key_name)).map_or_else(
                || format!("of account {}", f.account.as_deref().unwrap_or("main")),
                |k| k.fingerprint(),
            );
            let url = crate::net::redact_url(&endpoint(f));
            match holders.get(&(key.clone(), url.clone())) {
                Some(first) => out.push(FeedsProblem {
                    feed: i,
                    key: "account",
                    message: format!(
                        "feeds \"{first}\" and \"{}\" both open {url} with API key {key}; \
                         {CONNECTION_RULE}. Use one feed with all the symbols and channels, and \
                         let every bot read it from brokerguard's fan-out",
                        f.name
                    ),
                }),
                None => {
                    holders.insert((key, url), &f.name);
                }
            }
        }
        out
    }
}

impl Diagnostics for AlpacaBroker {
    fn remedy(&self, feed: &FeedConfig, layer: Layer, error: &FeedError) -> Option<String> {
        let default = settings_of(feed).plan.default_url();
        match (layer, error.class) {
            // These messages name their own fix (the credential, paper vs
            // live, the plan, the other program holding the stream).
            // `check` beside a running agent: the agent is the other program.
            (
                Layer::Auth | Layer::Data,
                ErrorClass::RateLimited {
                    retry_after: Some(wait),
                },
            ) if wait >= errors::CONNECTION_LIMIT_WAIT => Some(
                "if brokerguard runs, it is the program holding the stream: `brokerguard status` \
                 shows the feed live, and a bot reads it from feeds.sock"
                    .into(),
            ),
            (_, ErrorClass::Auth | ErrorClass::Config | ErrorClass::RateLimited { .. }) => {
                Some(String::new())
            }
            (Layer::Tcp, _) if error.is_refused() => Some(format!(
                "is `url` right (Alpaca's for this stream is {default})?"
            )),
            (Layer::Tcp | Layer::Dns, _) => Some(format!(
                "is `url` right (Alpaca's for this stream is {default}) and outbound port 443 \
                 open? Outages are announced at https://status.alpaca.markets"
            )),
            (Layer::Handshake, _) => Some(format!(
                "the server did not speak Alpaca's stream protocol: is `url` an Alpaca stream \
                 ({default})?"
            )),
            (Layer::Data, ErrorClass::Stalled) => Some(
                "Alpaca answers every WebSocket ping; a silent connection is broken on the way \
                 or at Alpaca (stocks are quiet outside market hours: stream = \"test\" is not); \
                 the running feed restarts it by itself"
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
        let (key_name, secret_name) = credential_names(feed);
        let get = |name: &str| {
            (ctx.lookup)(name).ok_or_else(|| {
                FeedError::new(ErrorClass::MissingCredential, format!("{name} is not set"))
                    .at(Layer::Credentials)
            })
        };
        let (key_id, secret) = match (get(&key_name), get(&secret_name)) {
            (Ok(k), Ok(s)) => (k, s),
            (Err(e), _) | (_, Err(e)) => return Some(Err(e)),
        };
        let client = match ctx.http_client(feed) {
            Ok(c) => c,
            Err(e) => return Some(Err(FeedError::network(e.to_string()).at(Layer::Auth))),
        };
        Some(client::validate(
            &client,
            &rest_base(feed),
            &key_id,
            &secret,
            settings_of(feed).plan.paper,
            (&key_name, &secret_name),
        ))
    }

    fn doctor_notes(
        &self,
        feed: &FeedConfig,
        _running: Option<&BTreeMap<String, String>>,
    ) -> Vec<String> {
        vec![format!(
            "{CONNECTION_RULE}; this feed holds {}: other programs on this key should read \
             it from brokerguard's fan-out (feeds.sock) instead of connecting themselves",
            crate::net::redact_url(&endpoint(feed))
        )]
    }

    fn session_facts(
        &self,
        feed: &FeedConfig,
        ctx: &BuildContext<'_>,
    ) -> Vec<(&'static str, String)> {
        let mut facts = vec![("endpoint", crate::net::redact_url(&endpoint(feed)))];
        if let Ok(Some(cal)) = ctx.calendar_of(feed) {
            facts.push(("market", format!("NYSE {}", cal.state_at(ctx.clock.wall()))));
        }
        facts
    }
}

#[cfg(test)]
mod tests;
