//! Which credentials the configuration needs (substitution happens in `crate::brokers`).
//!
//! Each feed's broker lists its own (`Broker::credentials`, reached through
//! the feed's configuration) and hands over its value rules as data
//! ([`Rules`]); this module names no broker.
//!
//! Broker feeds need `<BROKER>_<ACCOUNT>_<FIELD>` (docs/ARCHITECTURE.md, "Credentials");
//! generic WebSocket feeds need the `${NAME}`s their templates reference.
//! `doctor`, the monitor and status.json all work from this one list.

use super::format::Rules;
use crate::config::{Config, FeedConfig};

/// Field of a `${NAME}` reference in a generic feed's templates.
pub const TEMPLATE_FIELD: &str = "TEMPLATE";

/// One credential one feed needs. A name shared by several feeds appears once per feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Required {
    pub name: String,
    /// The feed that needs it.
    pub feed: String,
    /// The rules its value is checked by (its broker's, or the generic ones).
    pub broker: Rules,
    /// `API_KEY`, `API_SECRET`, `ACCESS_TOKEN`, ... or [`TEMPLATE_FIELD`].
    pub field: String,
    /// The feed runs without it (e.g. a fallback key set): its absence is
    /// shown, not alerted.
    pub optional: bool,
}

/// `<BROKER>_<ACCOUNT>_<FIELD>` in upper case, e.g. `EXCH_MASTER_API_KEY`.
/// Characters that cannot appear in a name (`-`, `.`) become `_`.
pub fn credential_name(broker: &str, account: &str, field: &str) -> String {
    name_part(&format!("{broker}_{account}_{field}"))
}

/// `part` as it stands in a credential name: upper case, with every
/// character that cannot appear in a name (`-`, `.`) made `_`. The one rule
/// every broker's names follow.
pub fn name_part(part: &str) -> String {
    part.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The credentials one feed needs, as its broker lists them.
pub fn feed_required(feed: &FeedConfig) -> Vec<Required> {
    let mut out: Vec<Required> = Vec::new();
    for c in feed.broker.credentials(feed) {
        if !out.iter().any(|r| r.name == c.name) {
            out.push(Required {
                name: c.name,
                feed: feed.name.clone(),
                broker: Rules::new(feed.broker),
                field: c.field,
                optional: c.optional,
            });
        }
    }
    out
}

/// What stands in [`Required::feed`] for the `[alerts]` section (webhook
/// URLs, bot tokens, heartbeat URLs), which needs credentials like a feed.
pub const ALERTS_CONSUMER: &str = "alerts";

/// The `${NAME}`s of the `[alerts]` templates. They are checked like a
/// generic feed's template references (the generic broker's rules).
pub fn alerts_required(cfg: &Config) -> Vec<Required> {
    let broker = Rules::generic();
    let mut out: Vec<Required> = Vec::new();
    for t in cfg.alerts.templates() {
        for name in crate::config::template_names(t) {
            if !out.iter().any(|r| r.name == name) {
                out.push(Required {
                    name,
                    feed: ALERTS_CONSUMER.to_string(),
                    broker: broker.clone(),
                    field: TEMPLATE_FIELD.to_string(),
                    optional: false,
                });
            }
        }
    }
    out
}

/// Every credential the configuration needs, feed by feed, in config
/// order, then those of `[alerts]`.
pub fn required_names(cfg: &Config) -> Vec<Required> {
    let mut out: Vec<Required> = cfg.feeds.iter().flat_map(feed_required).collect();
    out.extend(alerts_required(cfg));
    out
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

    #[test]
    fn names_are_upper_case_with_underscores() {
        assert_eq!(
            credential_name("exch", "user-daivon", "API_SECRET"),
            "EXCH_USER_DAIVON_API_SECRET"
        );
    }

    #[test]
    fn template_references_are_required_once_per_feed() {
        let text = "[[feed]]\nname = \"signals\"\nbroker = \"websocket\"\nurl = \"ws://127.0.0.1\"\n\
                    auth = '{\"t\":\"${SIGNALS_TOKEN}\",\"u\":\"${SIGNALS_TOKEN}\"}'\n\
                    poll = '{\"k\":\"${OTHER}\"}'\n";
        let mut cfg = crate::config::parse_str(text, std::path::Path::new("t.toml")).unwrap();
        cfg.agent = AgentConfig::defaults();
        cfg.path = PathBuf::from("t.toml");
        let got: Vec<(String, String, String)> = required_names(&cfg)
            .into_iter()
            .map(|r| (r.name, r.feed, r.field))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "SIGNALS_TOKEN".into(),
                    "signals".into(),
                    TEMPLATE_FIELD.into()
                ),
                ("OTHER".into(), "signals".into(), TEMPLATE_FIELD.into()),
            ]
        );
    }
}
