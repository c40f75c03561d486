//! Which credentials the configuration needs (substitution happens in `crate::brokers`).
//!
//! Broker feeds need `<BROKER>_<ACCOUNT>_<FIELD>` (DESIGN.md "Configuration");
//! generic WebSocket feeds need the `${NAME}`s their templates reference.
//! `doctor`, the monitor and status.json all work from this one list.

use crate::config::{BrokerKind, Config, FeedConfig};

/// Field of a `${NAME}` reference in a generic feed's templates.
pub const TEMPLATE_FIELD: &str = "TEMPLATE";

/// One credential one feed needs. A name shared by several feeds appears once per feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Required {
    pub name: String,
    /// The feed that needs it.
    pub feed: String,
    pub broker: BrokerKind,
    /// `API_KEY`, `API_SECRET`, `ACCESS_TOKEN`, ... or [`TEMPLATE_FIELD`].
    pub field: String,
}

/// The fields a broker adapter reads, in the order they are listed.
pub fn broker_fields(broker: BrokerKind) -> &'static [&'static str] {
    match broker {
        BrokerKind::Kraken | BrokerKind::Alpaca => &["API_KEY", "API_SECRET"],
        BrokerKind::Kite => &["API_KEY", "ACCESS_TOKEN"],
        BrokerKind::Coinbase => &["API_KEY_NAME", "API_PRIVATE_KEY"],
        BrokerKind::Ibkr | BrokerKind::Websocket => &[],
    }
}

/// `<BROKER>_<ACCOUNT>_<FIELD>` in upper case, e.g. `KRAKEN_MASTER_API_KEY`.
/// Characters that cannot appear in a name (`-`, `.`) become `_`.
pub fn credential_name(broker: BrokerKind, account: &str, field: &str) -> String {
    let raw = format!("{}_{}_{}", broker.as_str(), account, field);
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The credentials one feed needs.
pub fn feed_required(feed: &FeedConfig) -> Vec<Required> {
    let mk = |name: String, field: &str| Required {
        name,
        feed: feed.name.clone(),
        broker: feed.broker,
        field: field.to_string(),
    };
    let mut out: Vec<Required> = Vec::new();
    let account = feed.account.as_deref().unwrap_or("default");
    for field in broker_fields(feed.broker) {
        out.push(mk(credential_name(feed.broker, account, field), field));
    }
    // Any feed may also reference credentials in its templates.
    for name in feed.template_refs() {
        if !out.iter().any(|r| r.name == name) {
            out.push(mk(name, TEMPLATE_FIELD));
        }
    }
    out
}

/// Every credential the configuration needs, feed by feed, in config order.
pub fn required_names(cfg: &Config) -> Vec<Required> {
    cfg.feeds.iter().flat_map(feed_required).collect()
}

/// The distinct names in `required`, first-seen order.
pub fn distinct_names(required: &[Required]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for r in required {
        if !out.contains(&r.name.as_str()) {
            out.push(&r.name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AgentConfig;
    use std::path::PathBuf;

    fn cfg(feeds: Vec<FeedConfig>) -> Config {
        Config {
            path: PathBuf::from("t.toml"),
            agent: AgentConfig::defaults(),
            feeds,
            calendars: Default::default(),
        }
    }

    fn broker(name: &str, kind: BrokerKind, account: &str) -> FeedConfig {
        let mut f = FeedConfig::new(name, kind);
        f.account = Some(account.to_string());
        f
    }

    #[test]
    fn names_per_broker() {
        let mut ws = FeedConfig::new("signals", BrokerKind::Websocket);
        ws.auth = Some(r#"{"token":"${SIGNALS_TOKEN}"}"#.into());
        let c = cfg(vec![
            ws,
            broker("k", BrokerKind::Kraken, "master"),
            broker("a", BrokerKind::Alpaca, "paper"),
            broker("z", BrokerKind::Kite, "main"),
            broker("c", BrokerKind::Coinbase, "user-daivon"),
            broker("i", BrokerKind::Ibkr, "x"),
        ]);
        let got: Vec<(String, String, String)> = required_names(&c)
            .into_iter()
            .map(|r| (r.name, r.feed, r.field))
            .collect();
        let want = [
            ("SIGNALS_TOKEN", "signals", TEMPLATE_FIELD),
            ("KRAKEN_MASTER_API_KEY", "k", "API_KEY"),
            ("KRAKEN_MASTER_API_SECRET", "k", "API_SECRET"),
            ("ALPACA_PAPER_API_KEY", "a", "API_KEY"),
            ("ALPACA_PAPER_API_SECRET", "a", "API_SECRET"),
            ("KITE_MAIN_API_KEY", "z", "API_KEY"),
            ("KITE_MAIN_ACCESS_TOKEN", "z", "ACCESS_TOKEN"),
            ("COINBASE_USER_DAIVON_API_KEY_NAME", "c", "API_KEY_NAME"),
            (
                "COINBASE_USER_DAIVON_API_PRIVATE_KEY",
                "c",
                "API_PRIVATE_KEY",
            ),
        ];
        let want: Vec<(String, String, String)> = want
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect();
        assert_eq!(got, want);
    }
}
