//! An Alpaca feed's section of the configuration, read through
//! `config::Section` (each problem at its file:line:col, naming the feed
//! and the key) and printed back through `config::Shown` for `config
//! check`. The rules are [`settings::plan`]'s; this module reads the raw
//! values and puts each problem where the operator wrote the value.

use super::settings::{self, FIELD_KEY_ID, FIELD_SECRET, NAME, Plan, Stream};
use crate::brokers::registry::BrokerSettings;
use crate::config::{FeedConfig, Section, Shown};
use crate::credentials::required::credential_name;

/// The `[[feed]]` keys of an Alpaca feed besides the common ones.
pub const KEYS: &[&str] = &[
    "url", "rest_url", "account", "stream", "channels", "symbols", "paper",
];

/// An Alpaca feed's validated section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlpacaSettings {
    pub plan: Plan,
}

impl Default for AlpacaSettings {
    fn default() -> Self {
        AlpacaSettings {
            plan: Plan {
                stream: Stream::Test,
                channels: vec![settings::Channel::Trades],
                symbols: vec![settings::TEST_SYMBOL.to_string()],
                paper: false,
            },
        }
    }
}

impl BrokerSettings for AlpacaSettings {
    crate::broker_settings_plumbing!();

    fn show(&self, out: &mut Shown<'_>) {
        let p = &self.plan;
        out.string("stream", p.stream.as_str());
        if p.stream.is_market_data() {
            let channels: Vec<String> = p.channels.iter().map(|c| c.as_str().into()).collect();
            out.strings("channels", &channels);
            out.strings("symbols", &p.symbols);
        }
        out.boolean("paper", p.paper);
    }
}

/// The feed's Alpaca settings (the defaults for a feed of another broker).
pub fn settings_of(feed: &FeedConfig) -> AlpacaSettings {
    feed.settings::<AlpacaSettings>()
        .cloned()
        .unwrap_or_default()
}

/// Reads and checks an Alpaca feed's keys; `None` after any problem (each
/// reported at its place). `feed` holds the common keys (`url`, `account`).
pub fn parse(s: &mut Section<'_, '_, '_, '_>, feed: &FeedConfig) -> Option<AlpacaSettings> {
    let place = s.place().to_string();
    let mut ok = true;
    let stream = s
        .choice("stream", "stream", &Stream::NAMES)
        .and_then(Stream::parse);
    if stream.is_none() {
        ok = false;
        if !s.has("stream") {
            s.report_missing(
                "stream",
                format!(
                    "{place}: an Alpaca feed needs stream = one of \"iex\", \"sip\", \"crypto\", \
                     \"test\" (market data) or \"trade_updates\" (the account's order events)"
                ),
            );
        }
    }
    let channels = s.string_list("channels");
    ok &= channels.is_some() || !s.has("channels");
    let symbols = s.string_list("symbols");
    ok &= symbols.is_some() || !s.has("symbols");
    let paper = s.boolean("paper");
    ok &= paper.is_some() || !s.has("paper");
    if feed.account.is_none() && !s.has("account") {
        s.report_missing(
            "account",
            format!(
                "{place}: Alpaca streams sign in with an API key: add account = \"main\" (its \
                 credentials are then {} and {})",
                credential_name(NAME, "main", FIELD_KEY_ID),
                credential_name(NAME, "main", FIELD_SECRET)
            ),
        );
        ok = false;
    }
    let stream = stream?;
    let plan = match settings::plan(
        stream,
        channels.as_deref(),
        symbols.as_deref(),
        paper.unwrap_or(false),
    ) {
        Ok(p) => p,
        Err(problems) => {
            for p in problems {
                let message = format!("{place}: {p}");
                if s.has(p.field()) {
                    s.report(p.field(), message);
                } else {
                    s.report_missing(p.field(), message);
                }
            }
            return None;
        }
    };
    ok.then_some(AlpacaSettings { plan })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brokers::alpaca::settings::Channel;
    use std::path::Path;

    fn load(text: &str) -> Result<crate::config::Config, String> {
        crate::config::parse_str(text, Path::new("bg.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn feeds_load_and_show_again() {
        let text = r#"
[[feed]]
name = "stocks"
broker = "alpaca"
account = "main"
stream = "sip"
channels = ["trades", "quotes", "dailyBars"]
symbols = ["AAPL", "MSFT"]
# Every Alpaca default endpoint is wss://.
tls_ca_file = "/etc/brokerguard/ca.pem"

[[feed]]
name = "orders"
broker = "alpaca"
account = "main"
stream = "trade_updates"
paper = true
"#;
        let cfg = load(text).unwrap();
        let stocks = settings_of(&cfg.feeds[0]);
        assert_eq!(stocks.plan.stream, Stream::Sip);
        assert_eq!(
            stocks.plan.channels,
            [Channel::Trades, Channel::Quotes, Channel::DailyBars]
        );
        assert!(!stocks.plan.paper);
        let orders = settings_of(&cfg.feeds[1]);
        assert_eq!(orders.plan.stream, Stream::TradeUpdates);
        assert!(orders.plan.paper);
        let shown = crate::config::effective_toml(&cfg);
        let again = load(&shown).unwrap_or_else(|e| panic!("{e}\n{shown}"));
        assert_eq!(settings_of(&again.feeds[0]), stocks);
        assert_eq!(settings_of(&again.feeds[1]), orders);
    }

    #[test]
    fn bad_input_names_the_feed_and_the_key() {
        let rows: &[(&str, &str)] = &[
            (
                "account = \"main\"\nchannels = [\"trades\"]\nsymbols = [\"AAPL\"]",
                "feed[0].stream: [[feed]] \"a\": an Alpaca feed needs stream",
            ),
            (
                "account = \"main\"\nstream = \"sipp\"\nchannels = [\"trades\"]\nsymbols = [\"AAPL\"]",
                "feed[0].stream:",
            ),
            (
                "stream = \"iex\"\nchannels = [\"trades\"]\nsymbols = [\"AAPL\"]",
                "ALPACA_MAIN_API_KEY_ID and ALPACA_MAIN_API_SECRET_KEY",
            ),
            (
                "account = \"main\"\nstream = \"iex\"\nchannels = [\"trades\"]\nsymbols = [\"aapl\"]",
                "feed[0].symbols: [[feed]] \"a\": \"aapl\" is not a symbol of the iex stream",
            ),
            (
                "account = \"main\"\nstream = \"crypto\"\nsymbols = [\"BTC/USD\"]",
                "feed[0].channels: [[feed]] \"a\": the crypto stream needs channels",
            ),
            (
                "account = \"main\"\nstream = \"trade_updates\"\nsymbols = [\"AAPL\"]",
                "feed[0].symbols: [[feed]] \"a\": trade updates",
            ),
            (
                "account = \"main\"\nstream = \"test\"\nchannels = [\"trades\"]\nsymbols = [\"FAKEPACA\"]\npaper = \"yes\"",
                "feed[0].paper:",
            ),
        ];
        for (keys, needle) in rows {
            let text = format!("[[feed]]\nname = \"a\"\nbroker = \"alpaca\"\n{keys}\n");
            let err = load(&text).expect_err(keys);
            assert!(
                err.lines()
                    .any(|l| l.starts_with("bg.toml:") && l.contains(needle)),
                "{keys}: want {needle:?} in\n{err}"
            );
        }
    }
}
