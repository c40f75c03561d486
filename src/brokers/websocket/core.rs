//! The generic JSON WebSocket protocol (a bot's own signal server) as a
//! pure core: the configured auth message and its reply, subscribe
//! messages and their acknowledgements, a poll message, heartbeats. What
//! the server's replies look like comes from the configuration (`auth_ok`,
//! `auth_error`, `subscribe_ok`, `heartbeat`), so nothing here knows a
//! particular server.

use crate::clock::Mono;
use crate::feed::{Action, FeedError, Inbound, Layer, Outbound, ProtocolCore};
use crate::secret::Secret;
use crate::timefmt::human;
use std::time::Duration;

/// How a server's replies are recognised (from the configuration).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replies {
    /// A reply matching this accepts the auth message.
    pub auth_ok: Option<String>,
    /// A reply matching this, while the auth reply is awaited, rejects
    /// the credentials.
    pub auth_error: Option<String>,
    /// A reply matching this, while subscriptions are unconfirmed,
    /// confirms one: not data.
    pub subscribe_ok: Option<String>,
    /// A message whose `type`, `channel`, `event` or `T` field equals this
    /// is a heartbeat: it proves the feed alive and is not data.
    pub heartbeat: Option<String>,
}

/// A configured reply pattern: a JSON object (`'{"type":"auth_failed"}'`)
/// matches a message that is a JSON object with those fields equal;
/// anything else matches as a substring of the message's text.
#[derive(Clone, Debug, PartialEq)]
pub enum Pattern {
    Contains(String),
    Fields(serde_json::Map<String, serde_json::Value>),
}

impl Pattern {
    pub fn new(text: &str) -> Pattern {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(fields)) if text.trim_start().starts_with('{') => {
                Pattern::Fields(fields)
            }
            _ => Pattern::Contains(text.to_string()),
        }
    }

    pub fn matches(&self, text: &str) -> bool {
        match self {
            Pattern::Contains(part) => text.contains(part.as_str()),
            Pattern::Fields(want) => {
                // The substring test keeps the parse off ordinary data: every
                // wanted key must at least appear in the text.
                if !want.keys().all(|k| text.contains(k.as_str())) {
                    return false;
                }
                let Ok(serde_json::Value::Object(got)) =
                    serde_json::from_str::<serde_json::Value>(text)
                else {
                    return false;
                };
                want.iter().all(|(k, v)| got.get(k) == Some(v))
            }
        }
    }

    /// How the pattern reads in an error message.
    fn describe(&self) -> String {
        match self {
            Pattern::Contains(part) => format!("\"{part}\""),
            Pattern::Fields(f) => serde_json::Value::Object(f.clone()).to_string(),
        }
    }
}

/// One connection's protocol. Messages already have credentials
/// substituted (they are secrets).
///
/// Each reply pattern is matched only in its own phase: `auth_error` while
/// the auth reply is awaited, `subscribe_ok` while subscriptions are
/// unconfirmed. Afterwards a message containing the same text is data (a
/// signal whose text says "denied" must neither park the feed nor vanish).
#[derive(Clone, Debug)]
pub struct JsonWsCore {
    pub auth: Option<Secret>,
    pub subscribe: Vec<Secret>,
    pub poll: Option<Secret>,
    auth_ok: Option<Pattern>,
    auth_error: Option<Pattern>,
    subscribe_ok: Option<Pattern>,
    heartbeat: Option<String>,
    /// The auth reply has arrived (or none is awaited).
    authenticated: bool,
    /// The auth message was sent and its reply has not arrived: the only
    /// time `auth_error` is looked for.
    awaiting_auth_reply: bool,
    /// Subscriptions sent and not yet confirmed: the only time
    /// `subscribe_ok` is looked for.
    unconfirmed: usize,
}

impl JsonWsCore {
    pub fn new(
        auth: Option<Secret>,
        subscribe: Vec<Secret>,
        poll: Option<Secret>,
        replies: Replies,
    ) -> Self {
        let pattern = |p: &Option<String>| p.as_deref().map(Pattern::new);
        JsonWsCore {
            auth,
            subscribe,
            poll,
            auth_ok: pattern(&replies.auth_ok),
            auth_error: pattern(&replies.auth_error),
            subscribe_ok: pattern(&replies.subscribe_ok),
            heartbeat: replies.heartbeat,
            authenticated: false,
            awaiting_auth_reply: false,
            unconfirmed: 0,
        }
    }

    fn text(&mut self, t: &str) -> Vec<Action> {
        if self.awaiting_auth_reply {
            if let Some(err) = self.auth_error.as_ref().filter(|p| p.matches(t)) {
                return vec![Action::Fail(
                    FeedError::auth(format!(
                        "server rejected the credentials (reply matched auth_error {})",
                        err.describe()
                    ))
                    .at(Layer::Auth),
                )];
            }
            if self.authenticated {
                // No auth_ok to wait for: the first reply after the auth
                // message was not a rejection, so the auth phase is over.
                self.awaiting_auth_reply = false;
            } else if self.auth_ok.as_ref().is_some_and(|p| p.matches(t)) {
                self.authenticated = true;
                self.awaiting_auth_reply = false;
                return vec![
                    Action::LayerPassed {
                        layer: Layer::Auth,
                        detail: "accepted (reply matched auth_ok)".into(),
                    },
                    Action::Ready,
                ];
            }
        }
        if self.unconfirmed > 0 {
            if let Some(ok) = self.subscribe_ok.as_ref().filter(|p| p.matches(t)) {
                self.unconfirmed -= 1;
                return vec![Action::Subscribed {
                    detail: format!("reply matched subscribe_ok {}", ok.describe()),
                }];
            }
        }
        if self
            .heartbeat
            .as_deref()
            .is_some_and(|hb| is_heartbeat(t, hb))
        {
            return vec![Action::Heartbeat];
        }
        vec![Action::Data(t.to_string())]
    }
}

impl ProtocolCore for JsonWsCore {
    fn open(&mut self, _now: Mono) -> Vec<Action> {
        let Some(auth) = &self.auth else {
            self.authenticated = true;
            return vec![Action::Ready];
        };
        let mut out = vec![Action::Send(Outbound::Text(auth.clone()))];
        self.awaiting_auth_reply = self.auth_ok.is_some() || self.auth_error.is_some();
        if self.auth_ok.is_none() {
            self.authenticated = true;
            out.push(Action::LayerPassed {
                layer: Layer::Auth,
                detail: "sent (set auth_ok to verify the reply)".into(),
            });
            out.push(Action::Ready);
        }
        out
    }

    fn subscribe(&mut self, _now: Mono) -> Vec<Action> {
        if self.subscribe_ok.is_some() {
            self.unconfirmed = self.subscribe.len();
        }
        self.subscribe
            .iter()
            .map(|s| Action::Send(Outbound::Text(s.clone())))
            .collect()
    }

    fn receive(&mut self, msg: Inbound<'_>, _now: Mono) -> Vec<Action> {
        match msg {
            Inbound::Text(t) => self.text(t),
            // A signal server has no binary messages of its own: hand them
            // over intact, base64 in a JSON string.
            Inbound::Binary(b) | Inbound::Frame(b) => {
                use base64::Engine;
                let enc = base64::engine::general_purpose::STANDARD.encode(b);
                vec![Action::Data(serde_json::Value::String(enc).to_string())]
            }
            Inbound::Pong => vec![Action::Pong],
        }
    }

    fn not_ready(&self, waited: Duration) -> FeedError {
        FeedError::timeout(format!(
            "timeout (auth): no auth reply within {} (nothing matched auth_ok)",
            human(waited)
        ))
        .at(Layer::Auth)
    }

    fn has_keepalive(&self) -> bool {
        true
    }

    fn keepalive(&mut self, _now: Mono) -> Vec<Action> {
        vec![Action::Send(Outbound::Ping)]
    }

    fn has_poll(&self) -> bool {
        self.poll.is_some()
    }

    fn poll(&mut self, _now: Mono) -> Vec<Action> {
        self.poll
            .iter()
            .map(|p| Action::Send(Outbound::Text(p.clone())))
            .collect()
    }
}

/// A message is a heartbeat when its `type`, `channel`, `event` or `T`
/// field equals the configured name (the substring test keeps the JSON
/// parse off the path of ordinary data).
pub fn is_heartbeat(text: &str, name: &str) -> bool {
    if !text.contains(name) {
        return false;
    }
    let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(text) else {
        return false;
    };
    ["type", "channel", "event", "T"]
        .iter()
        .any(|k| m.get(*k).and_then(|v| v.as_str()) == Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core(auth: bool, replies: Replies) -> JsonWsCore {
        JsonWsCore::new(
            auth.then(|| Secret::new(r#"{"type":"auth","token":"CANARY"}"#)),
            vec![Secret::new(r#"{"type":"subscribe","channel":"s"}"#)],
            None,
            replies,
        )
    }

    fn replies() -> Replies {
        Replies {
            auth_ok: Some("auth_ok".into()),
            auth_error: Some("auth_failed".into()),
            subscribe_ok: Some("\"subscribed\"".into()),
            heartbeat: Some("heartbeat".into()),
        }
    }

    fn now() -> Mono {
        Mono::default()
    }

    #[test]
    fn without_auth_it_is_ready_at_once() {
        assert_eq!(core(false, replies()).open(now()), vec![Action::Ready]);
    }

    #[test]
    fn auth_waits_for_its_reply_when_auth_ok_is_set() {
        let mut c = core(true, replies());
        let a = c.open(now());
        assert!(matches!(&a[..], [Action::Send(Outbound::Text(_))]), "{a:?}");
        // Data before the reply is data; the reply makes the core ready.
        assert_eq!(
            c.receive(Inbound::Text(r#"{"type":"data"}"#), now()),
            vec![Action::Data(r#"{"type":"data"}"#.into())]
        );
        let a = c.receive(Inbound::Text(r#"{"type":"auth_ok"}"#), now());
        assert!(
            matches!(
                &a[..],
                [
                    Action::LayerPassed {
                        layer: Layer::Auth,
                        ..
                    },
                    Action::Ready
                ]
            ),
            "{a:?}"
        );
        // After auth, the same text is ordinary data again.
        assert!(matches!(
            &c.receive(Inbound::Text(r#"{"type":"auth_ok"}"#), now())[..],
            [Action::Data(_)]
        ));
    }

    #[test]
    fn auth_without_auth_ok_is_ready_once_sent() {
        let mut c = core(
            true,
            Replies {
                auth_ok: None,
                ..replies()
            },
        );
        let a = c.open(now());
        assert_eq!(a.len(), 3, "{a:?}");
        assert_eq!(a[2], Action::Ready);
    }

    #[test]
    fn replies_are_classified_in_their_phase() {
        let mut c = core(true, replies());
        c.open(now());
        // Before the auth reply: a rejection fails the connection.
        let a = c.receive(
            Inbound::Text(r#"{"type":"auth_failed","reason":"x"}"#),
            now(),
        );
        assert!(
            matches!(&a[..], [Action::Fail(e)] if e.class == crate::feed::ErrorClass::Auth),
            "{a:?}"
        );
        let mut c = core(true, replies());
        c.open(now());
        c.receive(Inbound::Text(r#"{"type":"auth_ok"}"#), now());
        c.subscribe(now());
        let cases: &[(&str, &str)] = &[
            (r#"{"type":"heartbeat"}"#, "heartbeat"),
            (r#"{"type":"data","note":"heartbeat"}"#, "data"),
            (r#"{"type":"subscribed","channel":"s"}"#, "subscribed"),
            // After auth, the rejection's text is data: a signal that
            // quotes it neither parks the feed nor vanishes.
            (r#"{"type":"auth_failed","reason":"x"}"#, "data"),
            // Once every subscription is confirmed, the ack's text is data.
            (r#"{"type":"subscribed","channel":"s"}"#, "data"),
            (r#"{"type":"signals","n":1}"#, "data"),
        ];
        for (text, want) in cases {
            let a = c.receive(Inbound::Text(text), now());
            let got = match &a[..] {
                [Action::Heartbeat] => "heartbeat",
                [Action::Data(_)] => "data",
                [Action::Subscribed { .. }] => "subscribed",
                [Action::Fail(e)] if e.class == crate::feed::ErrorClass::Auth => "fail",
                other => panic!("{text}: {other:?}"),
            };
            assert_eq!(got, *want, "{text}");
        }
    }

    #[test]
    fn without_auth_ok_only_the_first_reply_can_reject() {
        let r = Replies {
            auth_ok: None,
            ..replies()
        };
        let mut c = core(true, r.clone());
        c.open(now());
        let a = c.receive(Inbound::Text(r#"{"type":"auth_failed"}"#), now());
        assert!(matches!(&a[..], [Action::Fail(_)]), "{a:?}");
        let mut c = core(true, r);
        c.open(now());
        assert!(matches!(
            &c.receive(Inbound::Text(r#"{"type":"signals"}"#), now())[..],
            [Action::Data(_)]
        ));
        assert!(matches!(
            &c.receive(Inbound::Text(r#"{"type":"auth_failed"}"#), now())[..],
            [Action::Data(_)]
        ));
    }

    #[test]
    fn a_json_object_pattern_matches_fields_not_text() {
        let p = Pattern::new(r#"{"type":"error","code":401}"#);
        assert!(p.matches(r#"{"code":401,"type":"error","msg":"no"}"#));
        assert!(!p.matches(r#"{"type":"data","text":"\"type\":\"error\",\"code\":401"}"#));
        assert!(!p.matches(r#"{"type":"error","code":402}"#));
        assert!(!p.matches("not json type code"));
        // Not an object: a substring, as before.
        assert_eq!(
            Pattern::new(r#""type":"subscribed""#),
            Pattern::Contains(r#""type":"subscribed""#.into())
        );
        assert!(Pattern::new("denied").matches("access denied"));
        let mut c = core(
            true,
            Replies {
                auth_error: Some(r#"{"type":"error"}"#.into()),
                ..replies()
            },
        );
        c.open(now());
        assert!(matches!(
            &c.receive(
                Inbound::Text(r#"{"type":"note","text":"type error"}"#),
                now()
            )[..],
            [Action::Data(_)]
        ));
        assert!(matches!(
            &c.receive(Inbound::Text(r#"{"type":"error"}"#), now())[..],
            [Action::Fail(_)]
        ));
    }

    #[test]
    fn binary_is_base64_data_and_keepalive_is_a_ping() {
        let mut c = core(false, replies());
        assert_eq!(
            c.receive(Inbound::Binary(b"\x01\x02"), now()),
            vec![Action::Data("\"AQI=\"".into())]
        );
        assert_eq!(c.keepalive(now()), vec![Action::Send(Outbound::Ping)]);
        assert_eq!(c.receive(Inbound::Pong, now()), vec![Action::Pong]);
        assert!(!c.has_poll());
    }

    #[test]
    fn timeout_names_auth_and_no_secret() {
        let e = core(true, replies()).not_ready(Duration::from_secs(10));
        assert_eq!(e.layer, Some(Layer::Auth));
        assert!(e.message.contains("no auth reply within 10s"), "{e}");
        assert!(!e.message.contains("CANARY"));
    }

    #[test]
    fn heartbeat_matches_fields_not_substrings() {
        assert!(is_heartbeat(r#"{"type":"heartbeat"}"#, "heartbeat"));
        assert!(is_heartbeat(
            r#"{"channel":"heartbeat","n":1}"#,
            "heartbeat"
        ));
        assert!(!is_heartbeat(
            r#"{"type":"data","note":"heartbeat"}"#,
            "heartbeat"
        ));
        assert!(!is_heartbeat("heartbeat", "heartbeat"));
    }
}
