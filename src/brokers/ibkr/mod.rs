//! Interactive Brokers TWS / IB Gateway (`broker = "ibkr"`): the TWS API
//! socket protocol over raw TCP, with every failure layer named.
//!
//! - [`wire`]: `\0`-terminated fields, checked reading, [`wire::ProtocolError`];
//! - [`codec`]: the messages brokerguard sends and reads (greeting,
//!   START_API, reqCurrentTime, reqMktData, ticks, errors...);
//! - [`contract`]: a configured contract, its checks and its wire fields;
//! - [`codes`]: what TWS's error and notice codes mean;
//! - [`ticks`]: tick type names;
//! - [`core`]: the pure protocol core ([`core::TwsCore`]);
//! - [`settings`]: the feed's IBKR keys, their defaults and checks, the
//!   next-client-id rule;
//! - [`section`]: those keys read from the configuration file and printed back;
//! - [`reset_window`]: IB's nightly restart window;
//! - [`remedy`]: what an operator reads for each failure layer;
//! - [`adapter`]: framed TCP + a fresh core per connection, client id
//!   rotation on 326, session notes for status;
//! - this file: the registry entry ([`BROKER`]).

pub mod adapter;
pub mod codec;
pub mod codes;
pub mod contract;
pub mod core;
pub mod remedy;
pub mod reset_window;
pub mod section;
pub mod settings;
pub mod ticks;
pub mod wire;

pub use adapter::IbkrAdapter;
pub use contract::Contract;
pub use core::{SessionFacts, SessionReport, TwsCore, TwsCoreConfig};
pub use settings::{ClientIds, IbkrKeys, IbkrSettings};

use super::registry::{
    Broker, BuildContext, BuildError, ConfigRules, CredentialField, Diagnostics, FeedDefaults,
    Settings,
};
use crate::calendar::{Calendar, CalendarKind};
use crate::config::{FeedConfig, Section};
use crate::feed::{Adapter, ErrorClass, FeedError, Layer};
use std::sync::OnceLock;
use std::time::SystemTime;

/// The broker's name in the configuration (`broker = "ibkr"`).
pub const NAME: &str = "ibkr";

/// The registry entry.
pub static BROKER: IbkrBroker = IbkrBroker;

pub struct IbkrBroker;

/// The settings of a feed (every default for a feed of another broker).
fn settings_of(feed: &FeedConfig) -> IbkrSettings {
    feed.settings::<IbkrSettings>()
        .cloned()
        .unwrap_or_else(default_settings)
}

fn default_settings() -> IbkrSettings {
    IbkrSettings {
        host: settings::DEFAULT_HOST.to_string(),
        port: settings::DEFAULT_PORT,
        client_ids: ClientIds {
            first: settings::DEFAULT_CLIENT_ID,
            range: None,
        },
        contracts: Vec::new(),
        reset_window: None,
    }
}

/// `host:port`, with brackets around an IPv6 address.
pub fn target_of(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!(
            "[{}]:{port}",
            host.trim_start_matches('[').trim_end_matches(']')
        )
    } else {
        format!("{host}:{port}")
    }
}

/// The calendar whose zone `reset_window` is read in: the feed's own, and
/// for a 24/7 feed (no stock contracts) New York's, the zone IB publishes
/// its North American reset schedule in.
pub fn reset_zone_kind(calendar: CalendarKind) -> CalendarKind {
    match calendar {
        CalendarKind::Always => CalendarKind::Nyse,
        other => other,
    }
}

/// One calendar per kind, built once: only its zone is used (for UTC
/// offsets), so holidays do not matter. `None` when the zone is missing.
fn zone_calendar(kind: CalendarKind) -> Option<&'static Calendar> {
    static CALENDARS: [OnceLock<Option<Calendar>>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let i = CalendarKind::ALL.iter().position(|k| *k == kind)?;
    CALENDARS[i]
        .get_or_init(|| match Calendar::new(kind, &[]) {
            Ok(c) => Some(c),
            Err(e) => {
                log::warn!("reset_window cannot be judged: {e}");
                None
            }
        })
        .as_ref()
}

impl Broker for IbkrBroker {
    fn name(&self) -> &'static str {
        NAME
    }

    fn keys(&self) -> &'static [&'static str] {
        section::KEYS
    }

    fn parse(&self, s: &mut Section<'_, '_, '_, '_>, _feed: &FeedConfig) -> Option<Settings> {
        section::parse(s).map(Settings::new)
    }

    fn default_settings(&self) -> Settings {
        Settings::new(default_settings())
    }

    fn credentials(&self, _feed: &FeedConfig) -> Vec<CredentialField> {
        // TWS / IB Gateway holds the login; the API socket takes none.
        Vec::new()
    }

    fn build(
        &self,
        feed: &FeedConfig,
        ctx: &BuildContext<'_>,
    ) -> Result<Box<dyn Adapter>, BuildError> {
        let s = settings_of(feed);
        let opts = adapter::framed_options(
            feed.connect_timeout,
            feed.handshake_timeout,
            feed.write_timeout,
            feed.max_message_bytes,
        );
        Ok(Box::new(IbkrAdapter::new(
            feed.name.clone(),
            s.host,
            s.port,
            s.client_ids,
            s.contracts,
            opts,
            ctx.clock.clone(),
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
}

impl FeedDefaults for IbkrBroker {
    /// The largest TWS messages (a day of historical bars, contract
    /// details) are a few hundred KB; nothing needs 16 MiB.
    fn max_message_bytes(&self) -> usize {
        4 << 20
    }

    fn calendar(&self, feed: &FeedConfig) -> CalendarKind {
        if settings_of(feed)
            .contracts
            .iter()
            .any(|c| c.sec_type == "STK")
        {
            CalendarKind::Nyse
        } else {
            CalendarKind::Always
        }
    }

    fn target(&self, feed: &FeedConfig) -> String {
        let s = settings_of(feed);
        target_of(&s.host, s.port)
    }
}

impl ConfigRules for IbkrBroker {
    fn hint(&self, key: &str) -> Option<String> {
        match key {
            "url" | "rest_url" => Some(remedy::NO_URL.to_string()),
            "account" => Some(remedy::NO_ACCOUNT.to_string()),
            _ => None,
        }
    }

    fn warnings(&self, feed: &FeedConfig) -> Vec<String> {
        let s = settings_of(feed);
        let mut out = Vec::new();
        if feed.ping_every + feed.pong_timeout > feed.stall_after && s.contracts.is_empty() {
            // Without market data the keepalive's answers are the only
            // data: a stall would be declared between two of them.
            out.push(format!(
                "feed \"{}\": without contracts the only sign of life is the reqCurrentTime answer every \
                 ping_every ({}); make stall_after longer than ping_every + pong_timeout",
                feed.name,
                crate::timefmt::human(feed.ping_every)
            ));
        }
        out
    }
}

impl Diagnostics for IbkrBroker {
    fn note_series(&self) -> &'static [crate::brokers::registry::NoteSeries] {
        &[crate::brokers::registry::NoteSeries {
            note: adapter::NOTE_CLIENT_ID,
            name: "brokerguard_ibkr_client_id",
            help: "The TWS API client id the feed's session holds.",
            counter: false,
        }]
    }

    fn remedy(&self, feed: &FeedConfig, layer: Layer, error: &FeedError) -> Option<String> {
        let s = settings_of(feed);
        let timeout = error.is_timeout();
        let text = match layer {
            Layer::Tcp if timeout => return None,
            Layer::Tcp => remedy::tcp_refused(&s.host, s.port),
            Layer::Handshake | Layer::Auth | Layer::Data if error.class == ErrorClass::Config => {
                // The message names the contract or the version to fix.
                return Some(String::new());
            }
            Layer::Handshake => remedy::HANDSHAKE_UNANSWERED.to_string(),
            Layer::Auth if error.class == ErrorClass::GoingAway => {
                // 326: the message is the client id text.
                return Some(String::new());
            }
            Layer::Auth => remedy::SESSION_NOT_READY.to_string(),
            _ => return None,
        };
        // The adapter and the core put the remedy in the message already
        // (status and the journal show it); do not say it twice.
        Some(if error.message.contains(&text) {
            String::new()
        } else {
            text
        })
    }

    fn expected_outage(
        &self,
        feed: &FeedConfig,
        down_since: SystemTime,
        now: SystemTime,
    ) -> Option<String> {
        let window = settings_of(feed).reset_window?;
        let kind = reset_zone_kind(feed.calendar.unwrap_or_else(|| self.calendar(feed)));
        let cal = zone_calendar(kind)?;
        reset_window::expected_outage(
            &window,
            kind.zone_name().unwrap_or("UTC"),
            |t| cal.utc_offset_at(t),
            down_since,
            now,
        )
    }
}

#[cfg(test)]
mod tests;
