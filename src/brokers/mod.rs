//! Brokers: one folder each (`websocket/`, ...), listed once in
//! [`registry::BROKERS`]. Everything else asks the registry; nothing
//! outside this folder spells a broker's name. What the brokers share
//! lives here: `${NAME}` substitution, the WebSocket transport options
//! built from a feed's common keys, and connecting a core over a WebSocket.
//!
//! See docs/ARCHITECTURE.md ("Adding a broker").

/// The generic advice for a rejected key, where the error cannot name the
/// credential; `check` drops it when the broker's remedy names the
/// `set-credential` commands themselves (see `preflight`).
pub fn set_credential_hint() -> String {
    format!(
        "set the current one with `{}`",
        crate::fixcmd::command("set-credential NAME")
    )
}

pub mod alpaca;
pub mod capability;
pub mod coinbase;
pub mod command;
pub mod ibkr;
pub mod kite;
pub mod kraken;
pub mod registry;
pub mod websocket;

pub use registry::{BrokerRef, BuildContext, BuildError, find, names};

use crate::clock::Clock;
use crate::config::FeedConfig;
use crate::feed::{ConnectProgress, FeedError, ProtocolCore, Session, session};
use crate::net::ws::{self, WsOptions};
use crate::secret::Secret;
use std::sync::Arc;

/// Transport options from a feed's common keys.
pub fn ws_options(f: &FeedConfig) -> WsOptions {
    WsOptions {
        connect_timeout: f.connect_timeout,
        handshake_timeout: f.handshake_timeout,
        write_timeout: f.write_timeout,
        read_tick: crate::feed::runner::TICK,
        max_message_bytes: f.max_message_bytes,
        ca_file: f.tls_ca_file.clone(),
        headers: Vec::new(),
    }
}

/// Runs `core` over a WebSocket to `url` (the feed's handshake timeout
/// bounding its greeting and authentication): the session the engine drives.
pub fn connect_ws(
    core: Box<dyn ProtocolCore>,
    clock: Arc<dyn Clock>,
    url: &str,
    opts: &WsOptions,
    progress: &mut dyn ConnectProgress,
) -> Result<Box<dyn Session>, FeedError> {
    session::connect(core, clock, opts.handshake_timeout, progress, |observe| {
        ws::connect_observed(url, opts, observe)
    })
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
