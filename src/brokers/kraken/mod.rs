//! Kraken (Spot), `broker = "kraken"`: signed REST calls whose nonces never
//! collide, fallback key sets, and the WebSocket v2 public and private
//! feeds with verified order books (PROTOCOLS.md §1).
//!
//! - `sign`: the `API-Sign` HMAC and the decoded private key;
//! - `rest`: request builder and the classification of answers;
//! - `keys`: key sets of an account and the fallback between them;
//! - `call`: one private call under the nonce-conflict and fallback rules;
//! - `book`: order books kept as decimal text, and Kraken's CRC32;
//! - `core`: the WebSocket v2 protocol core;
//! - `settings`: the configuration rules, endpoints and credential checks;
//! - `section`: the feed's section, read at file:line:col;
//! - `client`: signed calls over HTTP with the host's nonce store;
//! - `adapter`: connects a feed (a fresh token per private connection);
//! - `remedy`: Kraken's advice per failed layer, and `doctor`'s notes.
//!
//! This file is the registry entry: it ties the pieces to the
//! `brokers::registry::Broker` trait.

pub mod adapter;
pub mod book;
pub mod call;
pub mod client;
pub mod core;
pub mod keys;
pub mod remedy;
pub mod rest;
pub mod section;
pub mod settings;
pub mod sign;

pub use self::core::KrakenCore;
pub use call::{CallError, CallEvent, CallReport, HttpReply, call_private};
pub use keys::{KeyFallback, KeySet, KeySets, load_key_sets};
pub use rest::{KrakenError, PrivateRequest, Reply, parse_response, private_request};
pub use section::KrakenSettings;
pub use settings::{Channel, FeedPlan, PrivatePlan, PublicPlan};
pub use sign::{ApiSecret, SecretFormatError, api_sign};

use self::adapter::KrakenAdapter;
use self::client::SignedRest;
use self::keys::{KeySetProblem, KeySetsError, all_key_set_names};
use self::rest::{KrakenError as Rejection, parse_balance};
use self::section::settings_of;
use super::registry::{
    Broker, BuildContext, BuildError, ConfigRules, CredentialField, Diagnostics, FeedDefaults,
    Settings,
};
use super::ws_options;
use crate::config::{FeedConfig, Section};
use crate::credentials::format::FormatProblem;
use crate::feed::{Adapter, FeedError, Layer};
use crate::secret::Secret;
use std::collections::BTreeMap;

/// The registry entry.
pub static BROKER: KrakenBroker = KrakenBroker;

pub struct KrakenBroker;

impl KrakenBroker {
    /// The signed REST calls of a feed that names an account.
    fn signed(feed: &FeedConfig, ctx: &BuildContext<'_>) -> Option<Result<SignedRest, FeedError>> {
        let account = feed.account.as_deref()?;
        let s = settings_of(feed);
        Some(SignedRest::for_feed(
            feed,
            ctx,
            account,
            s.key_fallback_reset,
        ))
    }
}

impl Broker for KrakenBroker {
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
        Settings::new(KrakenSettings::default())
    }

    /// Key set 1 is required once the feed names an account; sets 2 and 3
    /// are optional fallbacks. A public feed without an account needs none.
    fn credentials(&self, feed: &FeedConfig) -> Vec<CredentialField> {
        let Some(account) = feed.account.as_deref() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for names in all_key_set_names(account) {
            let suffix = if names.index == 1 {
                String::new()
            } else {
                format!("_{}", names.index)
            };
            for (name, field) in [(names.key, "API_KEY"), (names.secret, "API_SECRET")] {
                out.push(CredentialField {
                    name,
                    field: format!("{field}{suffix}"),
                    optional: names.index > 1,
                });
            }
        }
        out
    }

    fn build(
        &self,
        feed: &FeedConfig,
        ctx: &BuildContext<'_>,
    ) -> Result<Box<dyn Adapter>, BuildError> {
        let s = settings_of(feed);
        let rest = match &s.plan {
            FeedPlan::Public(_) => None,
            FeedPlan::Private(_) => {
                let account = feed.account.as_deref().ok_or_else(|| BuildError::Invalid {
                    feed: feed.name.clone(),
                    message: "private channels need account = \"...\" for the API key".into(),
                })?;
                // The key sets' own errors name the credential and the fix.
                if let Err(e) = load_key_sets(account, ctx.lookup) {
                    return Err(match e {
                        KeySetsError::Missing { key, .. } => BuildError::MissingCredential {
                            feed: feed.name.clone(),
                            name: key,
                        },
                        KeySetsError::Unusable(KeySetProblem::Incomplete { missing, .. }) => {
                            BuildError::MissingCredential {
                                feed: feed.name.clone(),
                                name: missing,
                            }
                        }
                        KeySetsError::Unusable(p) => BuildError::Invalid {
                            feed: feed.name.clone(),
                            message: format!(
                                "{p}; set the private key exactly as Kraken showed it with \
                                 `{}` (the feed waits until then)",
                                crate::fixcmd::command("set-credential NAME")
                            ),
                        },
                    });
                }
                let rest = SignedRest::for_feed(feed, ctx, account, s.key_fallback_reset).map_err(
                    |e| BuildError::Invalid {
                        feed: feed.name.clone(),
                        message: e.message,
                    },
                )?;
                Some(rest)
            }
        };
        Ok(Box::new(KrakenAdapter {
            feed: feed.name.clone(),
            url: feed
                .url
                .clone()
                .unwrap_or_else(|| s.plan.default_url().to_string()),
            opts: ws_options(feed),
            clock: ctx.clock.clone(),
            plan: s.plan,
            rest,
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

impl FeedDefaults for KrakenBroker {
    /// A book snapshot of depth 1 000 is about 100 KB per symbol.
    fn max_message_bytes(&self) -> usize {
        4 << 20
    }

    fn default_url(&self) -> Option<&'static str> {
        Some(settings::DEFAULT_PUBLIC_URL)
    }

    fn target(&self, feed: &FeedConfig) -> String {
        let url = feed
            .url
            .as_deref()
            .unwrap_or(settings_of(feed).plan.default_url());
        crate::net::redact_url(url)
    }
}

impl ConfigRules for KrakenBroker {
    fn check_credential(&self, field: &str, value: &Secret) -> Vec<FormatProblem> {
        settings::check_credential(field, value.expose())
    }

    fn warnings(&self, feed: &FeedConfig) -> Vec<String> {
        match settings_of(feed).plan {
            FeedPlan::Public(p) => settings::symbol_warnings(&p.symbols)
                .into_iter()
                .map(|w| format!("feed \"{}\": {w}", feed.name))
                .collect(),
            FeedPlan::Private(_) => Vec::new(),
        }
    }
}

impl Diagnostics for KrakenBroker {
    fn note_series(&self) -> &'static [crate::brokers::registry::NoteSeries] {
        &[crate::brokers::registry::NoteSeries {
            note: adapter::KEY_SET_NOTE,
            name: "brokerguard_kraken_key_set",
            help: "The Kraken key set a private feed signs with: 1 the primary, 2 and up a fallback (key_fallback).",
            counter: false,
        }]
    }

    fn remedy(&self, feed: &FeedConfig, layer: Layer, error: &FeedError) -> Option<String> {
        remedy::remedy(feed, layer, error)
    }

    /// `Balance`, when the feed names an account (a public feed without one
    /// has nothing to prove). A private feed's key needs "WebSocket
    /// interface", not "Query Funds": Kraken refusing Balance for lack of
    /// that permission still proves the key and its signature.
    fn validate_credentials(
        &self,
        feed: &FeedConfig,
        ctx: &BuildContext<'_>,
    ) -> Option<Result<String, FeedError>> {
        let rest = match Self::signed(feed, ctx)? {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        let private = settings_of(feed).plan.is_private();
        Some(match rest.call("Balance") {
            Ok(called) => {
                let assets = parse_balance(&called.reply.result).map_or(0, |b| b.len());
                let redrawn = match called.redraws {
                    0 => String::new(),
                    n => format!(
                        " after {}",
                        crate::count::count(n as usize, "fresh nonce", "fresh nonces")
                    ),
                };
                Ok(format!(
                    "Kraken accepted Balance with key set {}{redrawn} ({assets} asset(s))",
                    called.key_set
                ))
            }
            Err(f) if private && f.kraken == Some(Rejection::PermissionDenied) => Ok(format!(
                "Kraken knows key set {} (Balance refused for lack of \"Funds permissions - \
                 Query\", which this private feed does not need)",
                f.key_set
            )),
            Err(f) => Err(f.error),
        })
    }

    fn doctor_notes(
        &self,
        feed: &FeedConfig,
        running: Option<&BTreeMap<String, String>>,
    ) -> Vec<String> {
        remedy::doctor_notes(feed, running)
    }

    fn failover_guarantee(&self) -> Option<&'static str> {
        Some("Kraken never sees a key's nonce go back")
    }
}
