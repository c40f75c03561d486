//! Which credentials a configuration needs: each feed's broker lists its
//! own (`Broker::credentials`) and hands over its value rules as data
//! (`credentials::format::Rules`); `[alerts]` needs the `${NAME}`s its
//! templates reference. Here, above `credentials`, because it reads the
//! configuration, which `credentials` does not. `doctor`, the monitor and
//! status.json all work from this one list.

use super::{Config, FeedConfig};
use crate::credentials::format::Rules;
use crate::credentials::required::{ALERTS_CONSUMER, Required, TEMPLATE_FIELD};

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

/// The `${NAME}`s of the `[alerts]` templates. They are checked like a
/// generic feed's template references (the generic broker's rules).
pub fn alerts_required(cfg: &Config) -> Vec<Required> {
    let broker = Rules::generic();
    let mut out: Vec<Required> = Vec::new();
    for t in cfg.alerts.templates() {
        for name in super::template_names(t) {
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
pub fn required_credentials(cfg: &Config) -> Vec<Required> {
    let mut out: Vec<Required> = cfg.feeds.iter().flat_map(feed_required).collect();
    out.extend(alerts_required(cfg));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AgentConfig;
    use std::path::PathBuf;

    #[test]
    fn template_references_are_required_once_per_feed() {
        let text = "[[feed]]\nname = \"signals\"\nbroker = \"websocket\"\nurl = \"ws://127.0.0.1\"\n\
                    auth = '{\"t\":\"${SIGNALS_TOKEN}\",\"u\":\"${SIGNALS_TOKEN}\"}'\n\
                    poll = '{\"k\":\"${OTHER}\"}'\n";
        let mut cfg = crate::config::parse_str(text, std::path::Path::new("t.toml")).unwrap();
        cfg.agent = AgentConfig::defaults();
        cfg.path = PathBuf::from("t.toml");
        let got: Vec<(String, String, String)> = required_credentials(&cfg)
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
