//! A Kraken feed's section of the configuration: read through
//! `config::Section` (every problem at its file:line:col, naming the feed
//! and the key) and printed back through `config::Shown` for `config
//! check`. The rules themselves are [`settings::plan`]'s; this module reads
//! the raw values and puts each problem where the operator wrote the value.

use super::keys::{DEFAULT_FALLBACK_RESET, key_set_names};
use super::settings::{
    self, Channel, DEFAULT_PRIVATE_URL, DEFAULT_PUBLIC_URL, FeedPlan, PublicPlan,
};
use crate::brokers::registry::BrokerSettings;
use crate::config::{FeedConfig, Section, Shown};
use std::time::Duration;

/// The `[[feed]]` keys of a Kraken feed besides the common ones.
pub const KEYS: &[&str] = &[
    "url",
    "rest_url",
    "account",
    "channels",
    "symbols",
    "depth",
    "ohlc_interval",
    "key_fallback_reset",
];

/// A Kraken feed's validated section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KrakenSettings {
    /// What the feed subscribes to: public or private, never both.
    pub plan: FeedPlan,
    /// Back to key set 1 after this long without a key error.
    pub key_fallback_reset: Duration,
}

impl Default for KrakenSettings {
    fn default() -> Self {
        KrakenSettings {
            plan: FeedPlan::Public(PublicPlan {
                channels: vec![Channel::Ticker],
                symbols: vec!["BTC/USD".to_string()],
                depth: settings::DEFAULT_DEPTH,
                ohlc_interval: None,
            }),
            key_fallback_reset: DEFAULT_FALLBACK_RESET,
        }
    }
}

impl BrokerSettings for KrakenSettings {
    crate::broker_settings_plumbing!();

    fn show(&self, out: &mut Shown<'_>) {
        let channels =
            |cs: &[Channel]| -> Vec<String> { cs.iter().map(|c| c.as_str().to_string()).collect() };
        match &self.plan {
            FeedPlan::Public(p) => {
                out.strings("channels", &channels(&p.channels));
                out.strings("symbols", &p.symbols);
                out.integer("depth", i64::from(p.depth));
                if let Some(i) = p.ohlc_interval {
                    out.integer("ohlc_interval", i64::from(i));
                }
            }
            FeedPlan::Private(p) => out.strings("channels", &channels(&p.channels)),
        }
        out.duration("key_fallback_reset", self.key_fallback_reset);
    }
}

/// The feed's Kraken settings (the defaults for a feed of another broker).
pub fn settings_of(feed: &FeedConfig) -> KrakenSettings {
    feed.settings::<KrakenSettings>()
        .cloned()
        .unwrap_or_default()
}

/// Reads a non-negative integer key that must fit a `u32`; reports
/// `what_fits` when it does not.
fn small_integer(s: &mut Section<'_, '_, '_, '_>, key: &str, what_fits: &str) -> Option<u32> {
    let n = s.integer(key)?;
    match u32::try_from(n) {
        Ok(v) => Some(v),
        Err(_) => {
            let place = s.place().to_string();
            s.report(key, format!("{place}: {what_fits}, not {n}"));
            None
        }
    }
}

/// Reads and checks a Kraken feed's keys; `None` after any problem (each
/// reported at its place). `feed` holds the common keys (`url`, `account`).
pub fn parse(s: &mut Section<'_, '_, '_, '_>, feed: &FeedConfig) -> Option<KrakenSettings> {
    let place = s.place().to_string();
    let mut ok = true;
    let channels = s.string_list("channels");
    if channels.is_none() {
        ok = false;
        if !s.has("channels") {
            s.report_missing(
                "channels",
                format!(
                    "{place}: a Kraken feed needs channels: any of \"ticker\", \"book\", \"trade\", \
                     \"ohlc\" (public market data, with symbols) or \"executions\", \"balances\" \
                     (private, with account), e.g. channels = [\"book\"]"
                ),
            );
        }
    }
    let symbols = s.string_list("symbols");
    ok &= symbols.is_some() || !s.has("symbols");
    let depth = small_integer(
        s,
        "depth",
        "Kraken offers book depths 10, 25, 100, 500 and 1000",
    );
    ok &= depth.is_some() || !s.has("depth");
    let interval = small_integer(
        s,
        "ohlc_interval",
        "Kraken offers OHLC intervals of 1, 5, 15, 30, 60, 240, 1440, 10080 and 21600 minutes",
    );
    ok &= interval.is_some() || !s.has("ohlc_interval");
    let reset = s.positive_duration("key_fallback_reset");
    ok &= reset.is_some() || !s.has("key_fallback_reset");
    let channels = channels?;
    let plan = match settings::plan(
        &channels,
        symbols.as_deref().unwrap_or(&[]),
        depth,
        interval,
    ) {
        Ok(plan) => plan,
        Err(problems) => {
            for p in problems {
                let message = format!("{place}: {}", p.detail());
                // At the value, or the table when the key is absent.
                s.report(p.field(), message);
            }
            return None;
        }
    };
    if plan.is_private() && feed.account.is_none() && !s.has("account") {
        let names = key_set_names("main", 1);
        s.report_missing(
            "account",
            format!(
                "{place}: private channels sign in with an API key: add account = \"main\" \
                 (its credentials are then {} and {})",
                names.key, names.secret
            ),
        );
        ok = false;
    }
    // The two default endpoints serve different channels.
    let wrong_endpoint = match (&plan, feed.url.as_deref()) {
        (FeedPlan::Private(_), Some(DEFAULT_PUBLIC_URL)) => Some(DEFAULT_PRIVATE_URL),
        (FeedPlan::Public(_), Some(DEFAULT_PRIVATE_URL)) => Some(DEFAULT_PUBLIC_URL),
        _ => None,
    };
    if let Some(right) = wrong_endpoint {
        s.report(
            "url",
            format!(
                "{place}: {} channels are served on {right}; use that url (or leave url out)",
                if plan.is_private() {
                    "private"
                } else {
                    "public"
                }
            ),
        );
        ok = false;
    }
    ok.then_some(KrakenSettings {
        plan,
        key_fallback_reset: reset.unwrap_or(DEFAULT_FALLBACK_RESET),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brokers::kraken::settings::PrivatePlan;
    use std::path::Path;

    fn load(feed: &str) -> Result<crate::config::Config, String> {
        crate::config::parse_str(feed, Path::new("bg.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_public_and_a_private_feed_load_and_show_again() {
        let text = r#"
[[feed]]
name = "kbook"
broker = "kraken"
channels = ["book", "ticker"]
symbols = ["BTC/USD", "ETH/USD"]
depth = 25

[[feed]]
name = "kexec"
broker = "kraken"
account = "master"
channels = ["executions", "balances"]
key_fallback_reset = "30m"
"#;
        let cfg = load(text).unwrap();
        let public = settings_of(&cfg.feeds[0]);
        assert_eq!(
            public.plan,
            FeedPlan::Public(PublicPlan {
                channels: vec![Channel::Book, Channel::Ticker],
                symbols: vec!["BTC/USD".into(), "ETH/USD".into()],
                depth: 25,
                ohlc_interval: None,
            })
        );
        assert_eq!(public.key_fallback_reset, Duration::from_secs(3600));
        let private = settings_of(&cfg.feeds[1]);
        assert_eq!(
            private.plan,
            FeedPlan::Private(PrivatePlan {
                channels: vec![Channel::Executions, Channel::Balances]
            })
        );
        assert_eq!(private.key_fallback_reset, Duration::from_secs(1800));
        // What config check prints loads again to the same settings.
        let shown = crate::config::effective_toml(&cfg);
        let again = load(&shown).unwrap_or_else(|e| panic!("{e}\n{shown}"));
        assert_eq!(settings_of(&again.feeds[0]), public);
        assert_eq!(settings_of(&again.feeds[1]), private);
    }

    /// (feed keys, the key path and text every problem must show)
    type BadRow = (&'static str, &'static [(&'static str, &'static str)]);

    #[test]
    fn bad_input_names_the_feed_and_the_field() {
        let rows: &[BadRow] = &[
            (
                r#"channels = ["book"]
symbols = ["BTC/USD"]
depth = 20"#,
                &[(
                    "feed[0].depth: [[feed]] \"k\": Kraken offers book depths 10, 25, 100, 500 and 1000, not 20",
                    "",
                )],
            ),
            (
                r#"channels = ["book"]
symbols = ["BTC/USD"]
depth = -1"#,
                &[(
                    "feed[0].depth: [[feed]] \"k\": Kraken offers book depths",
                    "not -1",
                )],
            ),
            (
                r#"channels = ["candles"]
symbols = ["BTC/USD"]"#,
                &[(
                    "feed[0].channels: [[feed]] \"k\": unknown channel \"candles\"",
                    "",
                )],
            ),
            (
                r#"channels = ["ticker", "executions"]
symbols = ["BTC/USD"]
account = "main""#,
                &[("feed[0].channels:", "split them into two feeds")],
            ),
            (
                r#"channels = ["executions"]"#,
                &[(
                    "feed[0].account: [[feed]] \"k\": private channels sign in with an API key",
                    "KRAKEN_MAIN_API_KEY",
                )],
            ),
            (
                r#"channels = ["book"]"#,
                &[(
                    "feed[0].symbols: [[feed]] \"k\": a feed of public channels needs",
                    "",
                )],
            ),
            (
                r#"symbols = ["BTC/USD"]"#,
                &[(
                    "feed[0].channels: [[feed]] \"k\": a Kraken feed needs channels",
                    "",
                )],
            ),
            (
                r#"channels = ["ohlc"]
symbols = ["BTCUSD"]
ohlc_interval = 2"#,
                &[
                    (
                        "feed[0].symbols:",
                        "\"BTCUSD\" is not a WebSocket v2 symbol",
                    ),
                    ("feed[0].ohlc_interval:", "not 2"),
                ],
            ),
            (
                r#"channels = ["balances"]
account = "main"
url = "wss://ws.kraken.com/v2""#,
                &[("feed[0].url:", "wss://ws-auth.kraken.com/v2")],
            ),
            (
                r#"channels = ["ticker"]
symbols = ["BTC/USD"]
key_fallback_reset = "0s""#,
                &[("feed[0].key_fallback_reset:", "")],
            ),
        ];
        for (keys, wants) in rows {
            let text = format!("[[feed]]\nname = \"k\"\nbroker = \"kraken\"\n{keys}\n");
            let err = load(&text).expect_err(keys);
            for (needle, also) in *wants {
                assert!(
                    err.lines().any(|l| l.starts_with("bg.toml:")
                        && l.contains(needle)
                        && l.contains(also)),
                    "{keys}: want {needle:?} … {also:?} in\n{err}"
                );
            }
        }
    }
}
