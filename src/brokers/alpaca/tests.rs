//! The registry entry's rules: one connection per key and endpoint,
//! refused at file:line:col by `config check` and named by `doctor`;
//! credentials, calendars and endpoints per stream.

use super::*;
use std::path::Path;

fn parse(text: &str) -> Result<crate::config::Config, String> {
    crate::config::parse_str(text, Path::new("bg.toml")).map_err(|e| e.to_string())
}

fn feed_toml(name: &str, account: &str, stream: &str) -> String {
    let market = if stream == "trade_updates" {
        String::new()
    } else {
        let symbol = match stream {
            "crypto" => "BTC/USD",
            "test" => "FAKEPACA",
            _ => "AAPL",
        };
        format!("channels = [\"trades\"]\nsymbols = [\"{symbol}\"]\n")
    };
    format!(
        "[[feed]]\nname = \"{name}\"\nbroker = \"alpaca\"\naccount = \"{account}\"\nstream = \"{stream}\"\n{market}\n"
    )
}

#[test]
fn two_feeds_on_one_key_and_endpoint_are_refused_at_the_second() {
    let text = format!(
        "{}{}",
        feed_toml("stocks", "main", "iex"),
        feed_toml("more_stocks", "main", "iex")
    );
    let err = parse(&text).unwrap_err();
    let line = err
        .lines()
        .find(|l| l.contains("feed[1].account"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        line.starts_with("bg.toml:12:11: feed[1].account: "),
        "{line}"
    );
    for needle in [
        "feeds \"stocks\" and \"more_stocks\" both open wss://stream.data.alpaca.markets:443/v2/iex",
        "406",
        "Use one feed with all the symbols",
    ] {
        assert!(line.contains(needle), "{needle}: {line}");
    }
    // Other endpoints of the same key, or other accounts, are fine.
    let fine = [
        feed_toml("a", "main", "iex"),
        feed_toml("b", "main", "crypto"),
        feed_toml("c", "main", "test"),
        feed_toml("d", "main", "trade_updates"),
        feed_toml("e", "other", "iex"),
    ]
    .concat();
    assert!(parse(&fine).is_ok(), "{:?}", parse(&fine).err());
}

#[test]
fn with_credentials_known_two_accounts_on_one_key_are_refused() {
    let text = format!(
        "{}{}",
        feed_toml("a", "main", "sip"),
        feed_toml("b", "backup", "sip")
    );
    let cfg = parse(&text).unwrap();
    let feeds: Vec<&FeedConfig> = cfg.feeds.iter().collect();
    let canary = "canary-key-shared-0001";
    let same = |name: &str| name.ends_with("_API_KEY_ID").then(|| Secret::new(canary));
    let p = BROKER.check_feeds(&feeds, Some(&same));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].feed, p[0].key), (1, "account"));
    assert!(p[0].message.contains(&Secret::new(canary).fingerprint()));
    assert!(!p[0].message.contains(canary));
    let distinct = |name: &str| Some(Secret::new(format!("{name}-value")));
    assert!(BROKER.check_feeds(&feeds, Some(&distinct)).is_empty());
    // doctor names the rule.
    let notes = BROKER.doctor_notes(&cfg.feeds[0], None);
    assert!(
        notes[0].contains("one connection per key and endpoint"),
        "{notes:?}"
    );
    assert!(notes[0].contains("fan-out"));
}

#[test]
fn credentials_calendars_and_endpoints_per_stream() {
    let text = [
        feed_toml("stocks", "main", "iex"),
        feed_toml("coins", "main", "crypto"),
        feed_toml("fake", "main", "test"),
        feed_toml("orders", "main", "trade_updates"),
    ]
    .concat();
    let cfg = parse(&text).unwrap();
    let names: Vec<String> = BROKER
        .credentials(&cfg.feeds[0])
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(
        names,
        ["ALPACA_MAIN_API_KEY_ID", "ALPACA_MAIN_API_SECRET_KEY"]
    );
    let kinds: Vec<CalendarKind> = cfg.feeds.iter().map(|f| BROKER.calendar(f)).collect();
    assert_eq!(
        kinds,
        [
            CalendarKind::Nyse,
            CalendarKind::Always,
            CalendarKind::Always,
            CalendarKind::Always
        ]
    );
    let targets: Vec<String> = cfg.feeds.iter().map(|f| BROKER.target(f)).collect();
    assert_eq!(
        targets,
        [
            "wss://stream.data.alpaca.markets:443/v2/iex",
            "wss://stream.data.alpaca.markets:443/v1beta3/crypto/us",
            "wss://stream.data.alpaca.markets:443/v2/test",
            "wss://api.alpaca.markets:443/stream",
        ]
    );
    assert_eq!(rest_base(&cfg.feeds[0]), "https://api.alpaca.markets");
}
