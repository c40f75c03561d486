//! The layered preflight behind `brokerguard check` and the agent's start:
//! credentials, DNS, TCP, TLS, protocol handshake, authentication, first
//! data. It names the first layer that fails and what to do about it, so
//! "the port is open but the API never answers" is a sentence in the
//! journal instead of an afternoon of guessing.

use crate::brokers;
use crate::config::FeedConfig;
use crate::credentials::Secret;
use crate::feed::{ConnectProgress, FeedState, Incoming, Interrupter};
use crate::net::error::{NetError, Phase};
use crate::net::{tcp, ws};
use crate::timefmt::human;
use serde::Serialize;
use std::time::{Duration, Instant};

/// The layers, in the order they are tried.
pub const LAYERS: [&str; 7] = [
    "credentials",
    "dns",
    "tcp",
    "tls",
    "handshake",
    "auth",
    "data",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// Not applicable (e.g. TLS on ws://) or not reached after a failure.
    Skip,
}

#[derive(Clone, Debug, Serialize)]
pub struct LayerResult {
    pub layer: &'static str,
    pub outcome: Outcome,
    pub millis: u64,
    /// What was found, or why it failed and what to do. Never a secret.
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct FeedReport {
    pub feed: String,
    pub broker: String,
    pub target: String,
    pub layers: Vec<LayerResult>,
}

impl FeedReport {
    pub fn passed(&self) -> bool {
        self.layers.iter().all(|l| l.outcome != Outcome::Fail)
    }

    /// The first failing layer, if any.
    pub fn failure(&self) -> Option<&LayerResult> {
        self.layers.iter().find(|l| l.outcome == Outcome::Fail)
    }

    pub fn to_text(&self) -> String {
        let mut s = format!("{} ({}) {}\n", self.feed, self.broker, self.target);
        for l in &self.layers {
            let tag = match l.outcome {
                Outcome::Pass => "ok  ",
                Outcome::Fail => "FAIL",
                Outcome::Skip => "-   ",
            };
            let ms = if l.outcome == Outcome::Skip {
                String::new()
            } else {
                format!(" ({}ms)", l.millis)
            };
            s.push_str(&format!("  {tag} {:<11} {}{ms}\n", l.layer, l.detail));
        }
        s
    }
}

struct Recorder {
    layers: Vec<LayerResult>,
    started: Instant,
}

impl Recorder {
    fn new() -> Self {
        Recorder {
            layers: Vec::new(),
            started: Instant::now(),
        }
    }
    /// Records a layer that took the time since the previous one.
    fn push(&mut self, layer: &'static str, outcome: Outcome, detail: impl Into<String>) {
        let millis = self.started.elapsed().as_millis() as u64;
        self.push_ms(layer, outcome, millis, detail);
    }
    fn push_ms(
        &mut self,
        layer: &'static str,
        outcome: Outcome,
        millis: u64,
        detail: impl Into<String>,
    ) {
        self.started = Instant::now();
        self.layers.push(LayerResult {
            layer,
            outcome,
            millis,
            detail: detail.into(),
        });
    }
    fn skip_rest(&mut self) {
        let done: Vec<&str> = self.layers.iter().map(|l| l.layer).collect();
        for l in LAYERS.iter().filter(|l| !done.contains(l)) {
            self.layers.push(LayerResult {
                layer: l,
                outcome: Outcome::Skip,
                millis: 0,
                detail: "not reached".into(),
            });
        }
    }
}

/// Phase reporting from the adapter, to tell a handshake failure from an auth one.
struct PhaseSeen(FeedState);

impl ConnectProgress for PhaseSeen {
    fn phase(&mut self, state: FeedState) {
        self.0 = state;
    }
    fn socket_opened(&mut self, _: Interrupter) {}
}

/// The error, with what to do when its own text does not already say it.
fn explain(e: &NetError) -> String {
    let advice = match e {
        NetError::Resolve { .. } => "check the host name and /etc/resolv.conf",
        NetError::Timeout(t) if t.phase == Phase::Connect => {
            "no answer to the TCP connect: a firewall drops packets, or the host is down"
        }
        NetError::HttpStatus { status: 401 | 403 } => {
            "the server refused the credentials at the upgrade"
        }
        NetError::HttpStatus { .. } => {
            "the server refused the WebSocket upgrade: check the URL path"
        }
        _ => "",
    };
    if advice.is_empty() {
        e.to_string()
    } else {
        format!("{e}: {advice}")
    }
}

const NO_PROTOCOL: &str = "the port is open but nothing answers the protocol: is the right service on that port, and is it healthy?";

/// Runs every layer for one feed. `lookup` resolves credentials.
pub fn check_feed(feed: &FeedConfig, lookup: &dyn Fn(&str) -> Option<Secret>) -> FeedReport {
    let url = feed.url.clone().unwrap_or_default();
    let mut r = Recorder::new();
    let report = |r: Recorder| FeedReport {
        feed: feed.name.clone(),
        broker: feed.broker.as_str().to_string(),
        target: crate::net::error::redact_url(&url),
        layers: r.layers,
    };
    // 1. credentials (and whether this build has the broker at all)
    let mut adapter = match brokers::build(feed, lookup) {
        Ok(a) => {
            let names = feed.template_refs();
            let what = if names.is_empty() {
                "none needed".to_string()
            } else {
                format!("set: {}", names.join(", "))
            };
            r.push("credentials", Outcome::Pass, what);
            a
        }
        Err(e) => {
            r.push("credentials", Outcome::Fail, e.to_string());
            r.skip_rest();
            return report(r);
        }
    };
    // 2-3. DNS and TCP
    let target = match ws::parse_target(&url) {
        Ok(t) => t,
        Err(e) => {
            r.push("dns", Outcome::Fail, e.to_string());
            r.skip_rest();
            return report(r);
        }
    };
    let addrs = match tcp::resolve(&target.host, target.port, feed.connect_timeout) {
        Ok(a) => {
            let list: Vec<String> = a.iter().map(|x| x.ip().to_string()).collect();
            r.push("dns", Outcome::Pass, list.join(", "));
            a
        }
        Err(e) => {
            r.push("dns", Outcome::Fail, explain(&e));
            r.skip_rest();
            return report(r);
        }
    };
    match tcp::connect(&target.host, target.port, feed.connect_timeout) {
        Ok(s) => {
            let peer = s
                .peer_addr()
                .map(|p| p.to_string())
                .unwrap_or_else(|_| format!("{:?}", addrs.first()));
            r.push("tcp", Outcome::Pass, format!("connected to {peer}"));
        }
        Err(e) => {
            r.push("tcp", Outcome::Fail, explain(&e));
            r.skip_rest();
            return report(r);
        }
    }
    // 4-6. TLS, handshake and auth through the real adapter, in one call:
    // its time goes to the layer that decided the outcome.
    let mut seen = PhaseSeen(FeedState::Connecting);
    r.started = Instant::now();
    let connected = adapter.connect(&mut seen);
    let ms = r.started.elapsed().as_millis() as u64;
    let tls_ok = if target.tls {
        Outcome::Pass
    } else {
        Outcome::Skip
    };
    let tls_note = if target.tls {
        "certificate verified (SNI, system store or tls_ca_file)"
    } else {
        "not used (ws://)"
    };
    let mut session = match connected {
        Ok(s) => {
            r.push_ms("tls", tls_ok, 0, tls_note);
            match &feed.auth {
                None => {
                    r.push_ms("handshake", Outcome::Pass, ms, "WebSocket upgrade accepted");
                    r.push_ms("auth", Outcome::Skip, 0, "no auth message configured");
                }
                Some(_) => {
                    r.push_ms("handshake", Outcome::Pass, 0, "WebSocket upgrade accepted");
                    let what = if feed.auth_ok.is_some() {
                        "accepted"
                    } else {
                        "sent (set auth_ok to verify the reply)"
                    };
                    r.push_ms("auth", Outcome::Pass, ms, what);
                }
            }
            s
        }
        Err(e) => {
            let tls_failed = e.message.starts_with("TLS") || e.message.contains("(TLS handshake)");
            if seen.0 == FeedState::Authenticating {
                r.push_ms("tls", tls_ok, 0, tls_note);
                r.push_ms("handshake", Outcome::Pass, 0, "WebSocket upgrade accepted");
                r.push_ms(
                    "auth",
                    Outcome::Fail,
                    ms,
                    format!("{}: check the credential and the auth message", e.message),
                );
            } else if target.tls && tls_failed {
                r.push_ms("tls", Outcome::Fail, ms, e.message);
            } else {
                r.push_ms("tls", tls_ok, 0, tls_note);
                let detail = if e.message.contains("timeout") {
                    format!("{}: {NO_PROTOCOL}", e.message)
                } else {
                    e.message
                };
                r.push_ms("handshake", Outcome::Fail, ms, detail);
            }
            r.skip_rest();
            return report(r);
        }
    };
    // 7. first data
    r.started = Instant::now();
    let wait = feed.stall_after.min(Duration::from_secs(15));
    let data = session.subscribe().and_then(|_| {
        let end = Instant::now() + wait;
        while Instant::now() < end {
            match session.read()? {
                Incoming::Data(_) => return Ok(Some("data")),
                Incoming::Heartbeat => return Ok(Some("heartbeat")),
                Incoming::Idle | Incoming::Pong => {}
            }
        }
        Ok(None)
    });
    match data {
        Ok(Some(kind)) => r.push("data", Outcome::Pass, format!("first {kind} received")),
        Ok(None) => r.push(
            "data",
            Outcome::Fail,
            format!(
                "nothing within {}: check the subscribe messages, or whether the market is open",
                human(wait)
            ),
        ),
        Err(e) => r.push("data", Outcome::Fail, e.message),
    }
    session.close();
    report(r)
}

/// Checks several feeds in parallel (each bounded by its own timeouts).
pub fn check_all(
    feeds: &[FeedConfig],
    lookup: &(dyn Fn(&str) -> Option<Secret> + Sync),
) -> Vec<FeedReport> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = feeds
            .iter()
            .map(|f| scope.spawn(move || check_feed(f, lookup)))
            .collect();
        handles
            .into_iter()
            .zip(feeds)
            .map(|(h, f)| {
                h.join().unwrap_or_else(|_| FeedReport {
                    feed: f.name.clone(),
                    broker: f.broker.as_str().into(),
                    target: String::new(),
                    layers: vec![LayerResult {
                        layer: "credentials",
                        outcome: Outcome::Fail,
                        millis: 0,
                        detail: "internal error: the check panicked".into(),
                    }],
                })
            })
            .collect()
    })
}
