//! Broker adapters. The only place that knows the list of brokers: the
//! daemon, `check` and `doctor` call [`build`] with a feed's configuration
//! and its credentials and get back something the feed engine can drive.

pub mod kite;
pub mod websocket;

use crate::config::{BrokerKind, FeedConfig};
use crate::credentials::Secret;
use crate::feed::Adapter;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// A credential the feed needs is not set.
    MissingCredential { feed: String, name: String },
    /// The broker has no adapter in this build yet.
    Unsupported { feed: String, broker: &'static str },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::MissingCredential { feed, name } => write!(
                f,
                "feed {feed}: credential {name} is not set; add it with `sudo brokerguard set-credential {name}` \
                 and reload (`sudo systemctl reload brokerguard`)"
            ),
            BuildError::Unsupported { feed, broker } => write!(
                f,
                "feed {feed}: broker \"{broker}\" has no adapter in this build yet; use broker = \"websocket\" \
                 or remove the feed"
            ),
        }
    }
}

impl std::error::Error for BuildError {}

/// Whether this build can drive feeds of this broker.
pub fn available(kind: BrokerKind) -> bool {
    matches!(kind, BrokerKind::Websocket)
}

/// Builds the adapter for one feed. `lookup` resolves a credential name.
pub fn build(
    feed: &FeedConfig,
    lookup: &dyn Fn(&str) -> Option<Secret>,
) -> Result<Box<dyn Adapter>, BuildError> {
    match feed.broker {
        BrokerKind::Websocket => Ok(Box::new(websocket::WebsocketAdapter::new(feed, lookup)?)),
        other => Err(BuildError::Unsupported {
            feed: feed.name.clone(),
            broker: other.as_str(),
        }),
    }
}

/// Replaces every `${NAME}` in `template` with the credential's value. The
/// result holds secrets, so it is a [`Secret`] too.
pub fn substitute(
    feed: &str,
    template: &str,
    lookup: &dyn Fn(&str) -> Option<Secret>,
) -> Result<Secret, BuildError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find('}') else {
            out.push_str(&rest[i..]);
            rest = "";
            break;
        };
        let name = &after[..j];
        let value = lookup(name).ok_or_else(|| BuildError::MissingCredential {
            feed: feed.to_string(),
            name: name.to_string(),
        })?;
        out.push_str(&json_escape_inner(value.expose()));
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    Ok(Secret::new(out))
}

/// Escapes a value for use inside a JSON string literal, so a secret with
/// a quote or backslash cannot break (or inject into) the message.
fn json_escape_inner(v: &str) -> String {
    let quoted = serde_json::to_string(v).unwrap_or_default();
    quoted[1..quoted.len() - 1].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_and_escapes() {
        let lookup = |n: &str| (n == "TOK").then(|| Secret::new("a\"b"));
        let s = substitute("f", r#"{"token":"${TOK}"}"#, &lookup).unwrap();
        assert_eq!(s.expose(), r#"{"token":"a\"b"}"#);
        let err = substitute("f", "${NOPE}", &lookup).unwrap_err();
        assert!(err.to_string().contains("set-credential NOPE"));
    }
}
