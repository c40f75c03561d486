//! What an operator should do when a Kraken feed fails a layer, and what
//! `doctor` says about a Kraken feed (the key set in use, who owns the
//! key's nonces): the places where Kraken knows better than the generic
//! advice.

use super::adapter::KEY_SET_NOTE;
use super::keys::key_set_names;
use super::section::settings_of;
use super::settings::{DEFAULT_PRIVATE_URL, DEFAULT_PUBLIC_URL, DEFAULT_REST_URL};
use crate::config::FeedConfig;
use crate::feed::{ErrorClass, FeedError, Layer};
use crate::net::Phase;
use std::collections::BTreeMap;

/// Kraken's own status page, where outages and maintenance are announced.
pub const STATUS_PAGE: &str = "https://status.kraken.com";

/// The first key set's credential names, for fixes (`MAIN` when the feed
/// names no account).
fn names(feed: &FeedConfig) -> (String, String) {
    let n = key_set_names(feed.account.as_deref().unwrap_or("main"), 1);
    (n.key, n.secret)
}

/// The advice for `layer` failing with `error`, when Kraken's differs
/// from the generic one.
pub fn remedy(feed: &FeedConfig, layer: Layer, error: &FeedError) -> Option<String> {
    let timeout = error.is_timeout();
    let private = settings_of(feed).plan.is_private();
    let endpoint = if private {
        DEFAULT_PRIVATE_URL
    } else {
        DEFAULT_PUBLIC_URL
    };
    match (layer, error.class) {
        // The signed REST call (a private feed's token) failed on the way.
        (Layer::Dns | Layer::Tcp | Layer::Tls | Layer::Handshake | Layer::Auth, _)
            if error.message.contains("Kraken REST") =>
        {
            Some(format!(
                "the Kraken REST API (`rest_url`, default {DEFAULT_REST_URL}) could not be \
                 reached: check the host name, outbound HTTPS and {STATUS_PAGE}"
            ))
        }
        // An active refusal: the net error already asks whether the server
        // runs; a firewall that drops packets does not refuse.
        (Layer::Tcp, _) if error.is_refused() => Some(format!(
            "is `url` right (Kraken's is {endpoint})? Outages are announced at {STATUS_PAGE}"
        )),
        (Layer::Tcp, _) => Some(format!(
            "is `url` right (Kraken's is {endpoint}) and outbound port 443 open? \
             Outages are announced at {STATUS_PAGE}"
        )),
        (Layer::Handshake, _) if error.timed_out_in(Phase::WsHandshake) => Some(format!(
            "the server accepted the TCP connection but never answered the WebSocket \
                 upgrade: is `url` a Kraken endpoint ({endpoint}), and not another service's \
                 port? Outages at {STATUS_PAGE}"
        )),
        (Layer::Handshake, _) if timeout => Some(format!(
            "the server accepted the connection but sent no Kraken WebSocket v2 status \
             message: is `url` a v2 endpoint ({endpoint})? Outages at {STATUS_PAGE}"
        )),
        (Layer::Handshake, _) => Some(format!(
            "the WebSocket upgrade was refused: check the path of `url` (Kraken's is {endpoint})"
        )),
        (Layer::Auth, ErrorClass::Auth) => {
            let (key, secret) = names(feed);
            Some(format!(
                "check the API key at Kraken (Settings → API): {}the credential check needs \
                 \"Funds permissions - Query\"; replace it with `{}` and `{}`: a running agent \
                 uses the new key at once",
                if private {
                    "a private feed needs \"WebSocket interface - On\"; "
                } else {
                    ""
                },
                crate::fixcmd::command(&format!("set-credential {key}")),
                crate::fixcmd::command(&format!("set-credential {secret}"))
            ))
        }
        (Layer::Auth, ErrorClass::RateLimited { .. }) => {
            let n = key_set_names(feed.account.as_deref().unwrap_or("main"), 2);
            Some(format!(
                "Kraken refuses calls with this key for now (see the reason); brokerguard waits \
                 and retries by itself. A fallback key set ({} / {}) keeps the feed going \
                 through a lockout",
                n.key, n.secret
            ))
        }
        (Layer::Data, ErrorClass::Config) => Some(format!(
            "the feed stays parked (no retries) until its configuration changes: fix it, run \
             `{}`, then reload",
            crate::fixcmd::command("config check")
        )),
        (Layer::Data, ErrorClass::Stalled) => Some(format!(
            "Kraken sends a heartbeat about every second once a channel is subscribed: silence \
             means the subscription or the connection is broken; check {STATUS_PAGE}"
        )),
        _ => None,
    }
}

/// `doctor`'s notes about a Kraken feed that signs with a key: which key
/// set is in use (from the running agent, else the first), and that
/// brokerguard owns the key's nonces.
pub fn doctor_notes(feed: &FeedConfig, running: Option<&BTreeMap<String, String>>) -> Vec<String> {
    let Some(account) = feed.account.as_deref() else {
        return vec![
            "public market data: no API key is used (set `account` to have `check` and \
             validate_every prove one)"
                .to_string(),
        ];
    };
    let in_use = running.and_then(|info| info.get(KEY_SET_NOTE));
    let set: u8 = in_use.and_then(|s| s.parse().ok()).unwrap_or(1);
    let n = key_set_names(account, set);
    let source = match (running, in_use) {
        (Some(_), Some(_)) => "as the running agent reports",
        (Some(_), None) => "the running agent has not used it yet",
        (None, _) => "no agent running; an agent starts with key set 1",
    };
    vec![
        format!("key set in use: {set} ({} / {}), {source}", n.key, n.secret),
        format!(
            "brokerguard draws this key's nonces (microseconds since 1970, shared by every \
             brokerguard process on this host): a bot that signs its own calls with {} \
             (krakenex and Kraken's examples use milliseconds) gets EAPI:Invalid nonce; give \
             the bot its own API key",
            n.key
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brokers::BrokerRef;
    use crate::feed::Cause;

    fn feed(account: Option<&str>) -> FeedConfig {
        let mut f = FeedConfig::new("kexec", BrokerRef(&super::super::BROKER));
        f.account = account.map(String::from);
        f
    }

    #[test]
    fn remedies_name_what_to_change() {
        let f = feed(Some("master"));
        let auth = FeedError::auth("Kraken GetWebSocketsToken: EAPI:Invalid key");
        let r = remedy(&f, Layer::Auth, &auth).unwrap();
        assert!(
            r.contains("set-credential KRAKEN_MASTER_API_KEY")
                && r.contains("set-credential KRAKEN_MASTER_API_SECRET"),
            "{r}"
        );
        let lockout = FeedError::new(ErrorClass::RateLimited { retry_after: None }, "lockout");
        let r = remedy(&f, Layer::Auth, &lockout).unwrap();
        assert!(r.contains("KRAKEN_MASTER_API_KEY_2"), "{r}");
        let mute = FeedError::timeout("timeout (handshake): no status message");
        assert!(
            remedy(&f, Layer::Handshake, &mute)
                .unwrap()
                .contains("v2 status")
        );
        let silent_port =
            FeedError::network("timeout (WebSocket handshake) after 3s to ws://127.0.0.1:9/v2")
                .because(Cause::Timeout(Some(Phase::WsHandshake)));
        let r = remedy(&f, Layer::Handshake, &silent_port).unwrap();
        assert!(r.contains("never answered the WebSocket upgrade"), "{r}");
        let refused = FeedError::config("Kraken refused the subscription to book XDG/USD");
        assert!(
            remedy(&f, Layer::Data, &refused)
                .unwrap()
                .contains("stays parked")
        );
        assert!(remedy(&f, Layer::Dns, &FeedError::network("no such host")).is_none());
        // An active refusal on any port: no firewall or port-443 hint, and
        // not the refusal's own question again.
        let refused = crate::net::NetError::Connect {
            addr: "127.0.0.1:18799".parse().unwrap(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        let refused = FeedError::network(refused.to_string()).because(Cause::Refused);
        let r = remedy(&f, Layer::Tcp, &refused).unwrap();
        assert!(
            !r.contains("443") && !r.contains("server running") && r.contains("`url`"),
            "{r}"
        );
        let dropped = FeedError::network("timeout (TCP connect) after 5s to ws.kraken.com:443")
            .because(Cause::Timeout(Some(Phase::Connect)));
        let r = remedy(&f, Layer::Tcp, &dropped).unwrap();
        assert!(r.contains("outbound port 443 open"), "{r}");
        let rest = FeedError::network("Kraken REST GetWebSocketsToken: cannot connect to h:1");
        assert!(
            remedy(&f, Layer::Tcp, &rest)
                .unwrap()
                .contains("`rest_url`")
        );
    }

    #[test]
    fn doctor_says_which_key_set_and_who_owns_the_nonces() {
        let f = feed(Some("master"));
        let offline = doctor_notes(&f, None);
        assert!(
            offline[0].starts_with("key set in use: 1 (KRAKEN_MASTER_API_KEY / "),
            "{offline:?}"
        );
        assert!(offline[0].contains("no agent running"));
        assert!(offline[1].contains("EAPI:Invalid nonce"));
        let mut info = BTreeMap::new();
        info.insert("key_set".to_string(), "2".to_string());
        let live = doctor_notes(&f, Some(&info));
        assert!(
            live[0].starts_with("key set in use: 2 (KRAKEN_MASTER_API_KEY_2 / KRAKEN_MASTER_API_SECRET_2), as the running agent reports"),
            "{live:?}"
        );
        assert!(doctor_notes(&feed(None), None)[0].starts_with("public market data"));
    }
}
