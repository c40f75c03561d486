//! The generic JSON WebSocket protocol the simulator speaks (the one a bot's
//! own signal server speaks): auth, subscribe, get_signals, data and
//! heartbeats. Pure: a client message and the session state in, replies and
//! notes for the stats out; no I/O, no clock.

use super::fault::Fault;
use serde_json::{Value, json};
use std::collections::HashSet;

/// Per-connection protocol state.
#[derive(Debug, Default)]
pub(crate) struct Session {
    pub authed: bool,
    /// Channels currently subscribed (no duplicates).
    pub channels: Vec<String>,
    /// Data messages sent on this connection (the `n` of the last one).
    pub data_n: u64,
    pub signal_polls: u64,
}

/// What to do after one client message.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub replies: Vec<String>,
    /// Close the connection with this code and reason after the replies.
    pub close: Option<(u16, String)>,
    pub token_seen: Option<String>,
    /// Some(true) auth accepted, Some(false) rejected.
    pub auth: Option<bool>,
    pub subscribed: Option<String>,
}

fn error(reason: &str) -> String {
    json!({"type": "error", "reason": reason}).to_string()
}

impl Session {
    /// Whether the client may send requests (auth done, or none required).
    pub fn authenticated(&self, tokens: &HashSet<String>) -> bool {
        self.authed || tokens.is_empty()
    }

    /// Handles one text message from the client.
    pub fn on_text(
        &mut self,
        text: &str,
        tokens: &HashSet<String>,
        fault: Option<&Fault>,
    ) -> Outcome {
        let mut out = Outcome::default();
        let was_authenticated = self.authenticated(tokens);
        if let (Some(Fault::CloseOnClientMessage { code }), true) = (fault, was_authenticated) {
            out.close = Some((*code, String::new()));
            return out;
        }
        let msg: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(_) => {
                out.replies.push(error("invalid JSON"));
                return out;
            }
        };
        let kind = msg.get("type").and_then(Value::as_str).unwrap_or("");
        if kind == "auth" {
            let token = msg
                .get("token")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let accepted = !matches!(fault, Some(Fault::RejectAuth))
                && (tokens.is_empty() || tokens.contains(&token));
            out.token_seen = Some(token);
            out.auth = Some(accepted);
            if accepted {
                self.authed = true;
                out.replies.push(json!({"type": "auth_ok"}).to_string());
            } else {
                self.authed = false;
                out.replies
                    .push(json!({"type": "auth_failed", "reason": "invalid token"}).to_string());
                out.close = Some((1008, "invalid token".into()));
            }
            return out;
        }
        if !was_authenticated {
            out.replies.push(error("not authenticated"));
            return out;
        }
        match kind {
            "subscribe" => match msg.get("channel").and_then(Value::as_str) {
                Some(channel) => {
                    if !self.channels.iter().any(|c| c == channel) {
                        self.channels.push(channel.to_string());
                    }
                    out.subscribed = Some(channel.to_string());
                    out.replies
                        .push(json!({"type": "subscribed", "channel": channel}).to_string());
                }
                None => out.replies.push(error("subscribe needs a \"channel\"")),
            },
            "unsubscribe" => {
                let channel = msg.get("channel").and_then(Value::as_str).unwrap_or("");
                self.channels.retain(|c| c != channel);
                out.replies
                    .push(json!({"type": "unsubscribed", "channel": channel}).to_string());
            }
            "get_signals" => {
                self.signal_polls += 1;
                out.replies
                    .push(json!({"type": "signals", "n": self.signal_polls}).to_string());
            }
            "ping" => out.replies.push(json!({"type": "pong"}).to_string()),
            "" => out.replies.push(error("message needs a \"type\"")),
            _ => out.replies.push(error("unknown type")),
        }
        out
    }

    /// The next data message for `channel`, numbered per connection.
    #[cfg(test)]
    pub fn next_data(&mut self, channel: &str, ts: &str) -> String {
        self.next_data_stamped(channel, ts, None)
    }

    /// [`next_data`](Self::next_data), with `"sent_ns"` when given (a
    /// latency benchmark's send time, ns since the Unix epoch).
    pub fn next_data_stamped(&mut self, channel: &str, ts: &str, sent_ns: Option<u128>) -> String {
        self.data_n += 1;
        let mut msg = json!({"type": "data", "channel": channel, "n": self.data_n, "ts": ts});
        if let Some(ns) = sent_ns {
            msg["sent_ns"] = json!(ns as u64);
        }
        msg.to_string()
    }
}

pub(crate) fn heartbeat() -> String {
    json!({"type": "heartbeat"}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(t: &[&str]) -> HashSet<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn auth_then_subscribe_then_poll() {
        let tk = tokens(&["good"]);
        let mut s = Session::default();
        let o = s.on_text(r#"{"type":"subscribe","channel":"x"}"#, &tk, None);
        assert_eq!(
            o.replies,
            vec![r#"{"reason":"not authenticated","type":"error"}"#]
        );
        let o = s.on_text(r#"{"type":"auth","token":"bad"}"#, &tk, None);
        assert_eq!(o.auth, Some(false));
        assert_eq!(o.close, Some((1008, "invalid token".into())));
        assert_eq!(o.token_seen.as_deref(), Some("bad"));
        let o = s.on_text(r#"{"type":"auth","token":"good"}"#, &tk, None);
        assert_eq!(o.auth, Some(true));
        assert_eq!(o.replies, vec![r#"{"type":"auth_ok"}"#]);
        let o = s.on_text(r#"{"type":"subscribe","channel":"signals"}"#, &tk, None);
        assert_eq!(o.subscribed.as_deref(), Some("signals"));
        assert_eq!(s.channels, vec!["signals"]);
        let o = s.on_text(r#"{"type":"get_signals"}"#, &tk, None);
        let v: Value = serde_json::from_str(&o.replies[0]).unwrap();
        assert_eq!(v, json!({"type": "signals", "n": 1}));
    }

    #[test]
    fn no_tokens_means_no_auth_and_faults_change_answers() {
        let none = HashSet::new();
        let mut s = Session::default();
        let o = s.on_text(r#"{"type":"get_signals"}"#, &none, None);
        assert!(o.replies[0].contains("signals"));
        let o = s.on_text(
            r#"{"type":"auth","token":"any"}"#,
            &none,
            Some(&Fault::RejectAuth),
        );
        assert_eq!(o.auth, Some(false));
        let o = s.on_text(
            "{}",
            &none,
            Some(&Fault::CloseOnClientMessage { code: 1000 }),
        );
        assert_eq!(o.close, Some((1000, String::new())));
        assert!(o.replies.is_empty());
    }

    #[test]
    fn data_messages_count_per_connection() {
        let mut s = Session::default();
        let a: Value = serde_json::from_str(&s.next_data("c", "2026-01-01T00:00:00.000Z")).unwrap();
        let b: Value = serde_json::from_str(&s.next_data("c", "2026-01-01T00:00:00.000Z")).unwrap();
        assert_eq!((a["n"].as_u64(), b["n"].as_u64()), (Some(1), Some(2)));
        assert_eq!(b["type"], "data");
        assert!(b.get("sent_ns").is_none());
    }

    #[test]
    fn a_stamped_data_message_carries_its_send_time() {
        let mut s = Session::default();
        let ts = "2026-01-01T00:00:00.000Z";
        let v: Value = serde_json::from_str(&s.next_data_stamped("c", ts, Some(42))).unwrap();
        assert_eq!(
            (v["n"].as_u64(), v["sent_ns"].as_u64()),
            (Some(1), Some(42))
        );
    }
}
