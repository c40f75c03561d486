//! The Alpaca trade-updates (order events) protocol core (PROTOCOLS.md
//! §2.4): `wss://paper-api.alpaca.markets/stream` for paper keys,
//! `wss://api.alpaca.markets/stream` for live ones. Pure: messages and
//! time in, [`Action`]s out.
//!
//! | what arrives | actions |
//! | --- | --- |
//! | the upgrade | the auth message at once (the server does not greet) |
//! | `authorization` `authorized` | `LayerPassed{auth}`, `Ready` |
//! | `authorization` `unauthorized` | auth error naming paper vs live: parked until the credential changes |
//! | listen (after `Ready`) | `{"action":"listen","data":{"streams":["trade_updates"]}}` |
//! | `listening` with `trade_updates` | `Subscribed` (not data); without it a config error |
//! | `trade_updates` | `Data`: the event as one line |
//! | a binary frame (the paper endpoint sends them) | read as UTF-8 JSON, the same as text |
//! | timer | a WebSocket ping at once after listen, then every 10 s; its pong is a `Heartbeat` |
//!
//! Order events are sparse (none while the bot does not trade), and the
//! stream sends nothing else: the pong of each ping is what proves it
//! alive, so a quiet account is not a stall while a dead connection is.

use super::core::{Identity, Keepalive, one_line};
use crate::clock::Mono;
use crate::feed::{Action, FeedError, Inbound, Layer, Outbound, ProtocolCore};
use crate::peertext::short;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The listen message.
pub const LISTEN: &str = r#"{"action":"listen","data":{"streams":["trade_updates"]}}"#;

/// The core of one trade-updates connection.
pub struct UpdatesCore {
    who: Arc<Identity>,
    paper: bool,
    ready: bool,
    listening: bool,
    keepalive: Keepalive,
}

impl UpdatesCore {
    pub fn new(who: Arc<Identity>, paper: bool, keepalive: Keepalive) -> Self {
        UpdatesCore {
            who,
            paper,
            ready: false,
            listening: false,
            keepalive,
        }
    }

    fn kind(&self) -> &'static str {
        if self.paper { "paper" } else { "live" }
    }

    fn on_message(&mut self, text: &str) -> Vec<Action> {
        let v: Value = match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return vec![Action::Fail(FeedError::protocol(format!(
                    "feed {}: the trade-updates stream sent something that is not a JSON object \
                     ({} bytes)",
                    self.who.feed,
                    text.len()
                )))];
            }
        };
        let stream = v.get("stream").and_then(Value::as_str).unwrap_or("");
        let data = v.get("data").unwrap_or(&Value::Null);
        match stream {
            "authorization" => self.on_authorization(data),
            "listening" => self.on_listening(data),
            "trade_updates" => vec![Action::Data(one_line(text).into_owned())],
            other => vec![Action::Log {
                level: log::Level::Debug,
                message: format!(
                    "feed {}: ignored a trade-stream message on \"{}\"",
                    self.who.feed,
                    short(other)
                ),
            }],
        }
    }

    fn on_authorization(&mut self, data: &Value) -> Vec<Action> {
        let status = data.get("status").and_then(Value::as_str).unwrap_or("");
        if status == "authorized" && !self.ready {
            self.ready = true;
            return vec![
                Action::LayerPassed {
                    layer: Layer::Auth,
                    detail: format!(
                        "Alpaca's {} trading stream accepted key {}",
                        self.kind(),
                        self.who.key_id.fingerprint()
                    ),
                },
                Action::Ready,
            ];
        }
        if status == "authorized" {
            return Vec::new();
        }
        let other = if self.paper { "live" } else { "paper" };
        vec![Action::Fail(
            FeedError::auth(format!(
                "feed {}: Alpaca's {} trading stream refused the key ({}); paper and live keys \
                 differ: if this is a {other} key set paper = {}, else set the current pair with \
                 `sudo brokerguard set-credential {}` and `… {}`; the feed waits for the change",
                self.who.feed,
                self.kind(),
                short(if status.is_empty() {
                    "no status"
                } else {
                    status
                }),
                !self.paper,
                self.who.key_name,
                self.who.secret_name
            ))
            .at(Layer::Auth),
        )]
    }

    fn on_listening(&mut self, data: &Value) -> Vec<Action> {
        let streams: Vec<&str> = data
            .get("streams")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if streams.contains(&"trade_updates") {
            if self.listening {
                return Vec::new();
            }
            self.listening = true;
            return vec![Action::Subscribed {
                detail: format!("trade_updates ({})", self.kind()),
            }];
        }
        vec![Action::Fail(
            FeedError::config(format!(
                "feed {}: Alpaca's trading stream did not listen to trade_updates (it listens to \
                 [{}]); is `url` Alpaca's trading stream ({})?",
                self.who.feed,
                streams
                    .iter()
                    .map(|s| short(s))
                    .collect::<Vec<_>>()
                    .join(", "),
                super::settings::Stream::TradeUpdates.default_url(self.paper)
            ))
            .at(Layer::Data),
        )]
    }
}

impl ProtocolCore for UpdatesCore {
    fn open(&mut self, _now: Mono) -> Vec<Action> {
        vec![Action::Send(Outbound::Text(self.who.auth_message()))]
    }

    fn subscribe(&mut self, now: Mono) -> Vec<Action> {
        vec![Action::send_text(LISTEN), self.keepalive.ping_now(now)]
    }

    fn receive(&mut self, msg: Inbound<'_>, _now: Mono) -> Vec<Action> {
        match msg {
            Inbound::Text(t) => self.on_message(t),
            Inbound::Binary(b) | Inbound::Frame(b) => match std::str::from_utf8(b) {
                Ok(t) => self.on_message(t),
                Err(_) => vec![Action::Fail(FeedError::protocol(format!(
                    "feed {}: the trade-updates stream sent a binary frame that is not UTF-8 \
                     JSON ({} bytes)",
                    self.who.feed,
                    b.len()
                )))],
            },
            Inbound::Pong => {
                self.keepalive.pong();
                vec![Action::Heartbeat]
            }
        }
    }

    fn not_ready(&self, waited: Duration) -> FeedError {
        FeedError::timeout(format!(
            "timeout (auth): Alpaca's {} trading stream did not answer the authentication \
             within {}",
            self.kind(),
            crate::timefmt::human(waited)
        ))
        .at(Layer::Auth)
    }

    fn has_keepalive(&self) -> bool {
        false
    }

    fn keepalive(&mut self, _now: Mono) -> Vec<Action> {
        Vec::new()
    }

    fn tick(&mut self, now: Mono) -> Vec<Action> {
        self.keepalive.tick(now).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    const SECRET: &str = "canary-updates-secret-77aa";

    fn core(paper: bool) -> UpdatesCore {
        UpdatesCore::new(
            Arc::new(Identity {
                feed: "orders".into(),
                key_id: Secret::new("PKCANARY000000000009"),
                secret: Secret::new(SECRET),
                key_name: "ALPACA_MAIN_API_KEY_ID".into(),
                secret_name: "ALPACA_MAIN_API_SECRET_KEY".into(),
            }),
            paper,
            Keepalive::new(Duration::from_secs(10), Duration::from_secs(5)),
        )
    }

    fn at(s: u64) -> Mono {
        Mono(Duration::from_secs(s))
    }

    const AUTHORIZED: &str =
        r#"{"stream":"authorization","data":{"action":"authenticate","status":"authorized"}}"#;
    const LISTENING: &str = r#"{"stream":"listening","data":{"streams":["trade_updates"]}}"#;
    const FILL: &str = r#"{"stream":"trade_updates","data":{"event":"fill","price":"179.08","qty":"1","order":{"id":"61e69015-8549-4bfd-b9c3-01e75843f47d","symbol":"AAPL","side":"buy","filled_qty":"1"}}}"#;

    #[test]
    fn auth_listen_and_updates_in_text_and_binary_frames() {
        let mut c = core(true);
        let out = c.open(at(0));
        let Action::Send(Outbound::Text(auth)) = &out[0] else {
            panic!()
        };
        assert!(auth.expose().contains(SECRET));
        // The paper endpoint answers in binary frames.
        let out = c.receive(Inbound::Binary(AUTHORIZED.as_bytes()), at(0));
        assert!(matches!(
            out[..],
            [
                Action::LayerPassed {
                    layer: Layer::Auth,
                    ..
                },
                Action::Ready
            ]
        ));
        assert_eq!(
            c.subscribe(at(0)),
            vec![Action::send_text(LISTEN), Action::Send(Outbound::Ping)]
        );
        // The pong proves a quiet account's stream alive.
        assert_eq!(c.receive(Inbound::Pong, at(0)), vec![Action::Heartbeat]);
        let out = c.receive(Inbound::Binary(LISTENING.as_bytes()), at(0));
        assert!(matches!(out[..], [Action::Subscribed { .. }]), "{out:?}");
        let out = c.receive(Inbound::Binary(FILL.as_bytes()), at(1));
        assert_eq!(out, vec![Action::Data(FILL.to_string())]);
        let pretty =
            serde_json::to_string_pretty(&serde_json::from_str::<Value>(FILL).unwrap()).unwrap();
        let out = c.receive(Inbound::Text(&pretty), at(1));
        let [Action::Data(line)] = &out[..] else {
            panic!("{out:?}")
        };
        assert!(!line.contains('\n'));
        assert_eq!(
            serde_json::from_str::<Value>(line).unwrap(),
            serde_json::from_str::<Value>(FILL).unwrap()
        );
    }

    #[test]
    fn an_unauthorized_key_is_parked_naming_paper_or_live() {
        let mut c = core(false);
        c.open(at(0));
        let out = c.receive(
            Inbound::Text(
                r#"{"stream":"authorization","data":{"action":"authenticate","status":"unauthorized"}}"#,
            ),
            at(0),
        );
        let [Action::Fail(e)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(e.class, crate::feed::ErrorClass::Auth);
        assert!(e.message.contains("live trading stream"), "{e}");
        assert!(
            e.message
                .contains("if this is a paper key set paper = true"),
            "{e}"
        );
        assert!(!e.message.contains(SECRET));
    }

    #[test]
    fn listening_without_trade_updates_is_a_configuration_error() {
        let mut c = core(true);
        c.open(at(0));
        c.receive(Inbound::Text(AUTHORIZED), at(0));
        let out = c.receive(
            Inbound::Text(r#"{"stream":"listening","data":{"streams":[]}}"#),
            at(0),
        );
        assert!(
            matches!(&out[..], [Action::Fail(e)] if e.class == crate::feed::ErrorClass::Config)
        );
        assert!(matches!(
            &c.receive(Inbound::Binary(&[0xff, 0xfe]), at(0))[..],
            [Action::Fail(_)]
        ));
    }
}
