//! A Coinbase feed's section of the configuration: read through
//! `config::Section` (every problem at its file:line:col, naming the feed
//! and the key) and printed back through `config::Shown` for `config
//! check`. The rules are [`settings::plan`]'s; this module reads the raw
//! values and puts each problem where the operator wrote the value.

use super::settings::{self, Channel, DEFAULT_MARKET_URL, DEFAULT_USER_URL, Endpoint, OnGap, Plan};
use crate::brokers::registry::BrokerSettings;
use crate::config::{FeedConfig, Section, Shown};

/// The `[[feed]]` keys of a Coinbase feed besides the common ones.
pub const KEYS: &[&str] = &[
    "url",
    "rest_url",
    "account",
    "channels",
    "symbols",
    "on_sequence_gap",
];

/// A Coinbase feed's validated section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoinbaseSettings {
    pub plan: Plan,
    pub on_gap: OnGap,
}

impl Default for CoinbaseSettings {
    fn default() -> Self {
        CoinbaseSettings {
            plan: Plan {
                channels: vec![Channel::Ticker],
                symbols: vec!["BTC-USD".to_string()],
                endpoint: Endpoint::Market,
            },
            on_gap: OnGap::Resync,
        }
    }
}

impl BrokerSettings for CoinbaseSettings {
    crate::broker_settings_plumbing!();

    fn show(&self, out: &mut Shown<'_>) {
        let channels: Vec<String> = self
            .plan
            .channels
            .iter()
            .map(|c| c.as_str().to_string())
            .collect();
        out.strings("channels", &channels);
        if !self.plan.symbols.is_empty() {
            out.strings("symbols", &self.plan.symbols);
        }
        out.string("on_sequence_gap", self.on_gap.as_str());
    }
}

/// The feed's Coinbase settings (the defaults for a feed of another broker).
pub fn settings_of(feed: &FeedConfig) -> CoinbaseSettings {
    feed.settings::<CoinbaseSettings>()
        .cloned()
        .unwrap_or_default()
}

/// Reads and checks a Coinbase feed's keys; `None` after any problem.
pub fn parse(s: &mut Section<'_, '_, '_, '_>, feed: &FeedConfig) -> Option<CoinbaseSettings> {
    let place = s.place().to_string();
    let mut ok = true;
    let channels = s.string_list("channels");
    if channels.is_none() && !s.has("channels") {
        s.report_missing(
            "channels",
            format!(
                "{place}: a Coinbase feed needs channels, e.g. channels = [\"ticker\", \"level2\"] \
                 (with symbols) or [\"user\"] (with account)"
            ),
        );
    }
    let symbols = s.string_list("symbols");
    ok &= symbols.is_some() || !s.has("symbols");
    let on_gap = match s.choice("on_sequence_gap", "a choice", &["resync", "alert"]) {
        Some(v) => OnGap::parse(v),
        None if s.has("on_sequence_gap") => {
            ok = false;
            None
        }
        None => Some(OnGap::Resync),
    };
    let channels = channels?;
    let plan = match settings::plan(&channels, symbols.as_deref().unwrap_or(&[])) {
        Ok(p) => p,
        Err(problems) => {
            for p in problems {
                let message = format!("{place}: {p}");
                // At the value, or the table when the key is absent.
                s.report(p.field(), message);
            }
            return None;
        }
    };
    if plan.endpoint == Endpoint::User && feed.account.is_none() && !s.has("account") {
        s.report_missing(
            "account",
            format!(
                "{place}: the user channels need a CDP API key: add account = \"main\" (its \
                 credentials are then COINBASE_MAIN_API_KEY_NAME and COINBASE_MAIN_API_SECRET)"
            ),
        );
        ok = false;
    }
    let wrong_endpoint = match (plan.endpoint, feed.url.as_deref()) {
        (Endpoint::User, Some(DEFAULT_MARKET_URL)) => Some(DEFAULT_USER_URL),
        (Endpoint::Market, Some(DEFAULT_USER_URL)) => Some(DEFAULT_MARKET_URL),
        _ => None,
    };
    if let Some(right) = wrong_endpoint {
        s.report(
            "url",
            format!(
                "{place}: these channels are served on {right}; use that url (or leave url out)"
            ),
        );
        ok = false;
    }
    (ok && on_gap.is_some()).then(|| CoinbaseSettings {
        plan,
        on_gap: on_gap.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn load(text: &str) -> Result<crate::config::Config, String> {
        crate::config::parse_str(text, Path::new("bg.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn feeds_load_and_show_again() {
        let text = r#"
[[feed]]
name = "cbmd"
broker = "coinbase"
channels = ["ticker", "level2", "market_trades"]
symbols = ["BTC-USD", "ETH-USD"]

[[feed]]
name = "cbuser"
broker = "coinbase"
account = "main"
channels = ["user"]
on_sequence_gap = "alert"
"#;
        let cfg = load(text).unwrap();
        let md = settings_of(&cfg.feeds[0]);
        assert_eq!(
            md.plan.channels,
            vec![Channel::Ticker, Channel::Level2, Channel::MarketTrades]
        );
        assert_eq!(md.on_gap, OnGap::Resync);
        let user = settings_of(&cfg.feeds[1]);
        assert_eq!(user.plan.endpoint, Endpoint::User);
        assert_eq!(user.on_gap, OnGap::Alert);
        let shown = crate::config::effective_toml(&cfg);
        let again = load(&shown).unwrap_or_else(|e| panic!("{e}\n{shown}"));
        assert_eq!(settings_of(&again.feeds[0]), md);
        assert_eq!(settings_of(&again.feeds[1]), user);
    }

    #[test]
    fn bad_input_names_the_feed_and_the_field() {
        let rows: &[(&str, &str, &str)] = &[
            (
                r#"channels = ["orders"]
symbols = ["BTC-USD"]"#,
                "feed[0].channels:",
                "unknown channel \"orders\"",
            ),
            (
                r#"channels = ["level2"]"#,
                "feed[0].symbols:",
                "at least one product id",
            ),
            (
                r#"symbols = ["BTC-USD"]"#,
                "feed[0].channels:",
                "needs channels",
            ),
            (
                r#"channels = ["user"]"#,
                "feed[0].account:",
                "COINBASE_MAIN_API_KEY_NAME",
            ),
            (
                r#"channels = ["ticker"]
symbols = ["BTC-USD"]
on_sequence_gap = "ignore""#,
                "feed[0].on_sequence_gap:",
                "ignore",
            ),
            (
                r#"channels = ["ticker", "user"]
symbols = ["BTC-USD"]
account = "main""#,
                "feed[0].channels:",
                "split them into two feeds",
            ),
            (
                r#"channels = ["user"]
account = "main"
url = "wss://advanced-trade-ws.coinbase.com""#,
                "feed[0].url:",
                "advanced-trade-ws-user",
            ),
        ];
        for (keys, needle, also) in rows {
            let text = format!("[[feed]]\nname = \"c\"\nbroker = \"coinbase\"\n{keys}\n");
            let err = load(&text).expect_err(keys);
            assert!(
                err.lines()
                    .any(|l| l.starts_with("bg.toml:") && l.contains(needle) && l.contains(also)),
                "{keys}: want {needle:?} … {also:?} in\n{err}"
            );
        }
    }
}
