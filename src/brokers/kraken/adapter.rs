//! Connects a Kraken feed. A public feed opens WebSocket v2 and runs the
//! core; a private feed first fetches a fresh `GetWebSocketsToken` through
//! the signed REST calls (a token per connection, as Kraken advises; it
//! expires 15 minutes after issue), then opens the private endpoint with
//! it. A REST failure classifies the connection attempt: a rejected key is
//! auth (parked until the credentials change), a lockout, rate limit or
//! outage a long backoff with Kraken's reason as the feed's last error.
//! The key set that fetched the token is the session note `key_set`.

use super::client::SignedRest;
use super::core::KrakenCore;
use super::rest::parse_ws_token;
use super::settings::FeedPlan;
use crate::clock::Clock;
use crate::feed::{Adapter, ConnectProgress, FeedError, FeedState, Layer, Session};
use crate::net::ws::WsOptions;
use crate::timefmt::human;
use std::sync::Arc;

/// The session note that names the key set in use (status.json
/// `feeds[].info.key_set`).
pub const KEY_SET_NOTE: &str = "key_set";

pub struct KrakenAdapter {
    pub(super) feed: String,
    pub(super) url: String,
    pub(super) opts: WsOptions,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) plan: FeedPlan,
    /// The signed REST calls (private feeds).
    pub(super) rest: Option<SignedRest>,
}

impl KrakenAdapter {
    /// A fresh WebSocket token for one private connection.
    fn fetch_token(
        &self,
        rest: &SignedRest,
        progress: &mut dyn ConnectProgress,
    ) -> Result<crate::secret::Secret, FeedError> {
        progress.phase(FeedState::Authenticating);
        let called = match rest.call("GetWebSocketsToken") {
            Ok(c) => c,
            Err(f) => {
                progress.note(KEY_SET_NOTE, &f.key_set.to_string());
                if f.answered && f.error.layer == Some(Layer::Auth) {
                    // Kraken answered: the way to its REST endpoint works.
                    let base = crate::net::redact_url(&self.feed_rest_base());
                    let host = rest_base(&base);
                    progress.layer_passed(Layer::Dns, &format!("REST endpoint {host} answered"));
                    progress.layer_passed(Layer::Tcp, &format!("REST endpoint {host} answered"));
                    if host.starts_with("https://") {
                        progress.layer_passed(Layer::Tls, "REST endpoint certificate verified");
                    }
                }
                return Err(FeedError {
                    message: format!("feed {}: {}", self.feed, f.error.message),
                    ..f.error
                });
            }
        };
        let token = parse_ws_token(&called.reply.result).map_err(|e| {
            FeedError::protocol(format!("feed {}: GetWebSocketsToken: {e}", self.feed))
                .at(Layer::Auth)
        })?;
        log::debug!(
            "feed={} fetched a WebSocket token ({}) with key set {}",
            self.feed,
            token.token,
            called.key_set
        );
        let expires = token
            .expires
            .map(|d| format!(", usable for {}", human(d)))
            .unwrap_or_default();
        let redrawn = match called.redraws {
            0 => String::new(),
            n => format!(
                " after {}",
                crate::count::count(n as usize, "fresh nonce", "fresh nonces")
            ),
        };
        progress.layer_passed(
            Layer::Auth,
            &format!(
                "GetWebSocketsToken accepted with key set {}{redrawn}: a fresh token for this connection{expires}",
                called.key_set
            ),
        );
        progress.note(KEY_SET_NOTE, &called.key_set.to_string());
        Ok(token.token)
    }

    fn feed_rest_base(&self) -> String {
        self.rest
            .as_ref()
            .map(|r| r.base().to_string())
            .unwrap_or_default()
    }
}

/// The scheme and host of a REST base URL, for messages.
fn rest_base(base: &str) -> &str {
    match base.find("://") {
        Some(i) => {
            let after = &base[i + 3..];
            let end = after.find('/').map_or(base.len(), |j| i + 3 + j);
            &base[..end]
        }
        None => base,
    }
}

impl Adapter for KrakenAdapter {
    fn connect(
        &mut self,
        progress: &mut dyn ConnectProgress,
    ) -> Result<Box<dyn Session>, FeedError> {
        let core = match (&self.plan, &self.rest) {
            (FeedPlan::Public(p), _) => KrakenCore::public(&self.feed, p.clone()),
            (FeedPlan::Private(p), Some(rest)) => {
                let token = self.fetch_token(rest, progress)?;
                KrakenCore::private(&self.feed, p.clone(), token)
            }
            (FeedPlan::Private(_), None) => {
                return Err(FeedError::config(format!(
                    "feed {}: a private feed needs account = \"...\" for its API key",
                    self.feed
                ))
                .at(Layer::Credentials));
            }
        };
        crate::brokers::connect_ws(
            Box::new(core),
            self.clock.clone(),
            &self.url,
            &self.opts,
            progress,
        )
    }

    fn has_ping(&self) -> bool {
        // The core's keepalive: {"method":"ping"} answered by a pong.
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_bases_lose_their_paths() {
        assert_eq!(
            rest_base("https://api.kraken.com"),
            "https://api.kraken.com"
        );
        assert_eq!(
            rest_base("http://127.0.0.1:8791/x/y"),
            "http://127.0.0.1:8791"
        );
        assert_eq!(rest_base("nonsense"), "nonsense");
    }
}
