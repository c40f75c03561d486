//! The generic JSON WebSocket adapter (`broker = "websocket"`): a bot's own
//! signal server. Auth, subscribe and poll messages come from the
//! configuration with `${NAME}` credentials substituted at build time.

use super::{BuildError, substitute};
use crate::config::FeedConfig;
use crate::credentials::Secret;
use crate::feed::{Adapter, ConnectProgress, FeedError, FeedState, Incoming, Session};
use crate::net::error::NetError;
use crate::net::ws::{self, WsConn, WsEvent, WsOptions};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub struct WebsocketAdapter {
    url: String,
    opts: WsOptions,
    auth: Option<Secret>,
    auth_ok: Option<String>,
    auth_error: Option<String>,
    subscribe: Vec<Secret>,
    poll: Option<Secret>,
    heartbeat: Option<String>,
}

impl WebsocketAdapter {
    pub fn new(
        f: &FeedConfig,
        lookup: &dyn Fn(&str) -> Option<Secret>,
    ) -> Result<Self, BuildError> {
        let sub = |t: &String| substitute(&f.name, t, lookup);
        Ok(WebsocketAdapter {
            url: f.url.clone().unwrap_or_default(),
            opts: ws_options(f),
            auth: f.auth.as_ref().map(sub).transpose()?,
            auth_ok: f.auth_ok.clone(),
            auth_error: f.auth_error.clone(),
            subscribe: f.subscribe.iter().map(sub).collect::<Result<_, _>>()?,
            poll: f.poll.as_ref().map(sub).transpose()?,
            heartbeat: f.heartbeat.clone(),
        })
    }
}

/// Transport options from a feed's configuration.
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

/// Maps a transport error to a feed error class.
pub fn classify(e: NetError, while_authenticating: bool) -> FeedError {
    match e {
        NetError::Closed { code, ref reason } => {
            FeedError::from_close(code, reason, while_authenticating)
        }
        NetError::HttpStatus { status } if status == 401 || status == 403 => FeedError::auth(
            format!("server refused the WebSocket upgrade with HTTP {status}"),
        ),
        NetError::HttpStatus { status: 429 } => FeedError::new(
            crate::feed::ErrorClass::RateLimited { retry_after: None },
            "server refused the WebSocket upgrade with HTTP 429 (rate limited)",
        ),
        NetError::Protocol(_)
        | NetError::TooLarge
        | NetError::HttpStatus { .. }
        | NetError::InvalidRequest(_) => FeedError::protocol(e.to_string()),
        other => FeedError::network(other.to_string()),
    }
}

impl Adapter for WebsocketAdapter {
    fn connect(
        &mut self,
        progress: &mut dyn ConnectProgress,
    ) -> Result<Box<dyn Session>, FeedError> {
        progress.phase(FeedState::Handshaking);
        let conn = ws::connect(&self.url, &self.opts).map_err(|e| classify(e, false))?;
        let intr = conn.interrupter();
        progress.socket_opened(Box::new(move || intr.shutdown()));
        let mut session = WsSession {
            conn,
            pending: VecDeque::new(),
            auth_error: self.auth_error.clone(),
            heartbeat: self.heartbeat.clone(),
            subscribe: self.subscribe.clone(),
            poll: self.poll.clone(),
        };
        if let Some(auth) = &self.auth {
            progress.phase(FeedState::Authenticating);
            session
                .conn
                .send_text(auth.expose())
                .map_err(|e| classify(e, true))?;
            if let Some(ok) = &self.auth_ok {
                session.await_auth(ok, self.opts.handshake_timeout)?;
            }
        }
        Ok(Box::new(session))
    }

    fn has_ping(&self) -> bool {
        true
    }
}

struct WsSession {
    conn: WsConn,
    /// Messages that arrived before the auth reply, delivered after.
    pending: VecDeque<Incoming>,
    auth_error: Option<String>,
    heartbeat: Option<String>,
    subscribe: Vec<Secret>,
    poll: Option<Secret>,
}

impl WsSession {
    fn await_auth(&mut self, ok: &str, timeout: Duration) -> Result<(), FeedError> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.conn.read().map_err(|e| classify(e, true))? {
                None => {}
                Some(WsEvent::Text(t)) if t.contains(ok) => return Ok(()),
                Some(WsEvent::Close { code, reason }) => {
                    return Err(FeedError::from_close(code, &reason, true));
                }
                Some(ev) => {
                    let inc = self.incoming(ev)?;
                    if inc != Incoming::Idle {
                        self.pending.push_back(inc);
                    }
                }
            }
        }
        Err(FeedError::network(format!(
            "timeout (auth): no auth reply within {}",
            crate::timefmt::human(timeout)
        )))
    }

    fn incoming(&self, ev: WsEvent) -> Result<Incoming, FeedError> {
        Ok(match ev {
            WsEvent::Text(t) => {
                if let Some(err) = &self.auth_error {
                    if t.contains(err.as_str()) {
                        return Err(FeedError::auth(format!(
                            "server rejected the credentials (reply matched auth_error \"{err}\")"
                        )));
                    }
                }
                if self
                    .heartbeat
                    .as_deref()
                    .is_some_and(|hb| is_heartbeat(&t, hb))
                {
                    Incoming::Heartbeat
                } else {
                    Incoming::Data(t)
                }
            }
            WsEvent::Binary(b) => {
                use base64::Engine;
                let enc = base64::engine::general_purpose::STANDARD.encode(b);
                Incoming::Data(serde_json::Value::String(enc).to_string())
            }
            WsEvent::Pong(_) => Incoming::Pong,
            WsEvent::Ping => Incoming::Idle,
            WsEvent::Close { code, reason } => {
                return Err(FeedError::from_close(code, &reason, false));
            }
        })
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

impl Session for WsSession {
    fn subscribe(&mut self) -> Result<(), FeedError> {
        for s in &self.subscribe {
            self.conn
                .send_text(s.expose())
                .map_err(|e| classify(e, false))?;
        }
        Ok(())
    }

    fn read(&mut self) -> Result<Incoming, FeedError> {
        self.read_within(crate::feed::runner::TICK)
    }

    fn read_within(&mut self, limit: Duration) -> Result<Incoming, FeedError> {
        if let Some(p) = self.pending.pop_front() {
            return Ok(p);
        }
        match self
            .conn
            .read_within(limit)
            .map_err(|e| classify(e, false))?
        {
            None => Ok(Incoming::Idle),
            Some(ev) => self.incoming(ev),
        }
    }

    fn ping(&mut self) -> Result<(), FeedError> {
        self.conn.send_ping(b"bg").map_err(|e| classify(e, false))
    }

    fn poll(&mut self) -> Result<bool, FeedError> {
        match &self.poll {
            None => Ok(false),
            Some(p) => {
                self.conn
                    .send_text(p.expose())
                    .map_err(|e| classify(e, false))?;
                Ok(true)
            }
        }
    }

    fn close(&mut self) {
        self.conn.close(1000, "brokerguard closing");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
