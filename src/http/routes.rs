//! What each path answers. GET (and HEAD) only: nothing here changes
//! state but the login callback, which a browser reaches by a redirect
//! (a GET) from the broker's login page.
//!
//! | path | answer |
//! | --- | --- |
//! | `/healthz` | 200 while main and the watchdog thread run, else 503 |
//! | `/readyz` | 200 when [`crate::status::ready::readiness`] says ready, else 503 with the reasons |
//! | `/status` | the status document (status.json) |
//! | `/metrics` | Prometheus text 0.0.4 |
//! | `/timeline` | each feed's last 24 hours, a minute a slot |
//! | `/` | the operator page |
//! | `/<broker>/callback` | a browser login's return: the token exchange |

use super::auth::BasicAuth;
use super::board::{Board, Liveness};
use super::metrics::{self, Inputs};
use super::request::{Method, Request};
use super::server::{Handler, Head};
use crate::status::ready::readiness;
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// The broker whose browser login returns to `path` (`/<broker>/callback`).
fn callback_broker(path: &str) -> Option<&'static dyn crate::brokers::registry::Broker> {
    let name = path.strip_prefix('/')?.strip_suffix("/callback")?;
    crate::brokers::registry::BROKERS
        .iter()
        .copied()
        .find(|b| b.name() == name)
}

/// The watchdog thread beats about once a second; this many seconds
/// without a beat means it is not running.
pub const WATCHDOG_SILENT_AFTER: Duration = Duration::from_secs(5);

/// The paths answered, for 404 versus 405.
const PATHS: &[&str] = &[
    "/",
    "/healthz",
    "/readyz",
    "/status",
    "/metrics",
    "/timeline",
];

/// The listener's routes over what main published.
pub struct Routes {
    pub board: Arc<Board>,
    /// Off loopback: the password every path but `public` asks for.
    pub auth: Option<Arc<BasicAuth>>,
    pub public: Vec<String>,
}

impl Handler for Routes {
    fn handle(&self, req: &Request, body: &mut String) -> Head {
        if let Some(auth) = &self.auth {
            let open = self.public.contains(&req.path);
            if !open && !auth.check(req.authorization.as_deref()) {
                body.push_str("unauthorized: this listener asks for the password set with `brokerguard set-credential HTTP_PASSWORD`\n");
                return Head::new(401, TEXT).with("WWW-Authenticate", super::auth::CHALLENGE);
            }
        }
        if !matches!(req.method, Method::Get | Method::Head) {
            body.push_str("method not allowed: this listener answers GET and HEAD\n");
            return Head::new(405, TEXT).with("Allow", "GET, HEAD");
        }
        match req.path.as_str() {
            "/healthz" => self.healthz(body),
            "/readyz" => self.readyz(body),
            "/status" => {
                let p = self.board.latest();
                body.push_str(&serde_json::to_string_pretty(&p.doc).unwrap_or_default());
                body.push('\n');
                Head::new(200, JSON)
            }
            "/metrics" => {
                let p = self.board.latest();
                let inputs = Inputs {
                    fanout: self.board.fanout(),
                    process: super::process::read(),
                    started_at: self.board.started_at,
                };
                metrics::render(&p, &inputs, body);
                Head::new(200, metrics::CONTENT_TYPE)
            }
            "/timeline" => {
                self.board.timeline().to_json(SystemTime::now(), body);
                Head::new(200, JSON)
            }
            "/" => {
                super::page::render(&self.board.latest(), body);
                Head::new(200, HTML).with("Content-Security-Policy", super::page::page_policy())
            }
            path => match callback_broker(path) {
                // The exchange spends the request token: only a GET (the
                // browser following the redirect) may do it.
                Some(_) if req.method == Method::Head => {
                    body.push_str("method not allowed: the login callback answers GET only\n");
                    Head::new(405, TEXT).with("Allow", "GET")
                }
                Some(b) => self.login_callback(b, req, body),
                None => not_found(req, body),
            },
        }
    }
}

fn not_found(req: &Request, body: &mut String) -> Head {
    let _ = writeln!(
        body,
        "not found: {} is not a path of this listener; try {}",
        crate::peertext::sanitize(&req.path, crate::peertext::MAX_PEER_TEXT),
        PATHS.join(" ")
    );
    Head::new(404, TEXT)
}

impl Routes {
    /// A browser login's return: the broker's token exchange, then a page
    /// that shows the outcome and the account's feeds reconnecting.
    fn login_callback(
        &self,
        broker: &dyn crate::brokers::registry::Broker,
        req: &Request,
        body: &mut String,
    ) -> Head {
        let p = self.board.latest();
        let get = |name: &str| super::request::query_param(&req.query, name);
        let Some(result) = broker.login_callback(&p.config, &get, SystemTime::now()) else {
            return not_found(req, body);
        };
        match &result {
            Ok(r) => log::info!(
                "http: browser login for {} account {} done; feeds {} reconnect",
                broker.name(),
                r.account,
                r.feeds.join(", ")
            ),
            Err(e) => log::warn!("http: browser login for {} failed: {e}", broker.name()),
        }
        super::page::login_outcome(&result, body);
        let status = if result.is_ok() { 200 } else { 400 };
        Head::new(status, HTML).with("Content-Security-Policy", super::page::login_policy())
    }

    fn healthz(&self, body: &mut String) -> Head {
        let l = self.board.liveness();
        let (ok, why) = healthy(&l);
        let _ = write!(
            body,
            "{}",
            serde_json::json!({
                "healthy": ok,
                "watchdog_beat_age_ms": l.watchdog_beat_age.map(|d| d.as_millis() as u64),
                "main_tick_age_ms": l.main_tick_age.as_millis() as u64,
                "problem": why,
            })
        );
        body.push('\n');
        Head::new(if ok { 200 } else { 503 }, JSON)
    }

    fn readyz(&self, body: &mut String) -> Head {
        if !self.board.is_published() {
            body.push_str("{\"ready\":false,\"starting\":true,\"not_ready\":[]}\n");
            return Head::new(503, JSON);
        }
        let p = self.board.latest();
        let r = readiness(&p.doc);
        body.push_str(&serde_json::to_string_pretty(&r).unwrap_or_default());
        body.push('\n');
        Head::new(if r.ready { 200 } else { 503 }, JSON)
    }
}

/// Whether the agent's own threads run, and if not, which one is stuck.
pub fn healthy(l: &Liveness) -> (bool, Option<&'static str>) {
    match l.watchdog_beat_age {
        None => (false, Some("the watchdog thread has not started")),
        Some(age) if age > WATCHDOG_SILENT_AFTER => (
            false,
            Some(
                "the watchdog thread has stopped beating: the agent is stuck; systemd restarts it when WatchdogSec= is set",
            ),
        ),
        Some(_) if l.main_tick_age > l.main_stuck_after => (
            false,
            Some("the main loop is stuck: systemd restarts the agent when WatchdogSec= is set"),
        ),
        Some(_) => (true, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_needs_both_threads() {
        let l = |w: Option<u64>, m: u64| Liveness {
            watchdog_beat_age: w.map(Duration::from_secs),
            main_tick_age: Duration::from_secs(m),
            main_stuck_after: Duration::from_secs(5),
        };
        assert_eq!(healthy(&l(Some(1), 0)), (true, None));
        assert!(!healthy(&l(None, 0)).0);
        assert!(healthy(&l(Some(10), 0)).1.unwrap().contains("watchdog"));
        assert!(healthy(&l(Some(1), 10)).1.unwrap().contains("main loop"));
    }
}
