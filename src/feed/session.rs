//! The session driver: runs a broker's pure [`ProtocolCore`] over a
//! [`Transport`] and presents it to the engine as a [`Session`].
//!
//! It is the only place where a core's actions meet a socket: sends are
//! written (a failed send ends the connection), data, events and
//! heartbeats are queued for the feed thread in the order the core gave
//! them, alerts and log lines are emitted, and a `Fail` ends the session
//! with the core's error. Transport errors become [`FeedError`]s with a
//! class and the [`Layer`] they happened in, so preflight and status name
//! the layer from data, not from message text.

use super::adapter::{ConnectProgress, Incoming, Session};
use super::error::{Cause, ErrorClass, FeedError};
use super::protocol::{Action, Inbound, Layer, Outbound, ProtocolCore};
use super::state::FeedState;
use crate::clock::Clock;
use crate::net::error::{NetError, Phase};
use crate::net::{ConnectStep, Received, Transport};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// Where a connection is, which decides the layer an error belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Opening the transport (resolve, TCP, TLS, upgrade).
    Opening,
    /// The transport is open; the core is greeting or authenticating.
    Authenticating,
    /// Ready: subscribing and reading.
    Live,
}

/// The layer a transport error belongs to.
pub fn layer_of(e: &NetError, stage: Stage) -> Layer {
    match stage {
        Stage::Authenticating => return Layer::Auth,
        Stage::Live => return Layer::Data,
        Stage::Opening => {}
    }
    match e {
        NetError::Resolve { .. } => Layer::Dns,
        NetError::Connect { .. } => Layer::Tcp,
        NetError::Tls(_) => Layer::Tls,
        NetError::HttpStatus {
            status: 401 | 403, ..
        } => Layer::Auth,
        NetError::Timeout(t) => match t.phase {
            Phase::Resolve => Layer::Dns,
            Phase::Connect => Layer::Tcp,
            Phase::TlsHandshake => Layer::Tls,
            _ => Layer::Handshake,
        },
        _ => Layer::Handshake,
    }
}

/// Maps a transport error to a feed error with its class and layer.
pub fn classify(e: NetError, stage: Stage) -> FeedError {
    let layer = layer_of(&e, stage);
    let cause = match &e {
        NetError::Timeout(t) => Some(Cause::Timeout(Some(t.phase))),
        NetError::Connect { source, .. }
            if source.kind() == std::io::ErrorKind::ConnectionRefused =>
        {
            Some(Cause::Refused)
        }
        _ => None,
    };
    let mut error = match e {
        NetError::Closed { code, ref reason } => {
            FeedError::from_close(code, reason, stage == Stage::Authenticating)
        }
        NetError::HttpStatus { status } if status == 401 || status == 403 => FeedError::auth(
            format!("server refused the WebSocket upgrade with HTTP {status}"),
        ),
        NetError::HttpStatus { status: 429 } => FeedError::new(
            ErrorClass::RateLimited { retry_after: None },
            "server refused the WebSocket upgrade with HTTP 429 (rate limited)",
        ),
        NetError::Protocol(_)
        | NetError::TooLarge
        | NetError::HttpStatus { .. }
        | NetError::InvalidRequest(_) => FeedError::protocol(e.to_string()),
        other => FeedError::network(other.to_string()),
    };
    error.cause = cause;
    error.at(layer)
}

/// The error of a private session whose agent no longer holds the
/// failover lease: a long wait, since main stops the feed at once anyway.
fn fenced() -> FeedError {
    FeedError::new(
        ErrorClass::RateLimited {
            retry_after: Some(Duration::from_secs(60)),
        },
        "fenced: this agent no longer holds the failover lease, so its private sessions send nothing",
    )
}

/// Reports a passed connect step as the preflight layer it proves.
fn report_step(progress: &mut dyn ConnectProgress, step: ConnectStep) {
    match step {
        ConnectStep::Resolved(addrs) => {
            let list: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
            progress.layer_passed(Layer::Dns, &list.join(", "));
        }
        ConnectStep::Connected(peer) => {
            progress.layer_passed(Layer::Tcp, &format!("connected to {peer}"))
        }
        ConnectStep::TlsVerified => progress.layer_passed(
            Layer::Tls,
            "certificate verified (SNI, system store or tls_ca_file)",
        ),
        ConnectStep::Upgraded => {
            progress.layer_passed(Layer::Handshake, "WebSocket upgrade accepted")
        }
        // A phase, not a layer: `connect` reports it.
        ConnectStep::HandshakeStarting => {}
    }
}

/// A core driven over a transport: the engine's [`Session`].
pub struct CoreSession<T: Transport> {
    transport: T,
    core: Box<dyn ProtocolCore>,
    clock: Arc<dyn Clock>,
    /// What the core produced for the feed thread, oldest first.
    pending: VecDeque<Incoming>,
    stage: Stage,
    /// The feed's flight recorder: every frame sent and received.
    recorder: Option<Arc<super::recorder::Recorder>>,
}

/// Opens a transport with `open` (which reports its steps), hands the
/// interrupter over, and runs the core's greeting and authentication until
/// it is ready, all within `handshake_timeout` after the transport is open.
///
/// `Handshaking` is reported only once TCP (and TLS where used) is up: when
/// the transport starts its own handshake, or, for one without (framed
/// TCP), when it is open and the core's greeting begins. A refused or
/// timed-out connect, or a failed TLS handshake, never shows it.
pub fn connect<T: Transport + 'static>(
    core: Box<dyn ProtocolCore>,
    clock: Arc<dyn Clock>,
    handshake_timeout: Duration,
    progress: &mut dyn ConnectProgress,
    open: impl FnOnce(&mut dyn FnMut(ConnectStep)) -> Result<T, NetError>,
) -> Result<Box<dyn Session>, FeedError> {
    if !crate::fence::may_act() {
        return Err(fenced());
    }
    let mut handshaking = false;
    let transport = {
        let mut observe = |step: ConnectStep| {
            if step == ConnectStep::HandshakeStarting && !handshaking {
                handshaking = true;
                progress.phase(FeedState::Handshaking);
            }
            report_step(&mut *progress, step)
        };
        open(&mut observe).map_err(|e| classify(e, Stage::Opening))?
    };
    if !handshaking {
        progress.phase(FeedState::Handshaking);
    }
    let intr = transport.interrupter();
    progress.socket_opened(Box::new(move || intr.shutdown()));
    let mut session = CoreSession {
        transport,
        core,
        clock,
        pending: VecDeque::new(),
        stage: Stage::Authenticating,
        recorder: super::recorder::current(),
    };
    let now = session.clock.mono();
    let actions = session.core.open(now);
    let mut ready = session.apply(actions, Some(&mut *progress))?;
    if !ready {
        progress.phase(FeedState::Authenticating);
        let start = session.clock.mono();
        while !ready {
            let waited = session.clock.mono().since(start);
            if waited >= handshake_timeout {
                return Err(session.core.not_ready(waited));
            }
            ready = session.step(handshake_timeout - waited, Some(&mut *progress))?;
        }
    }
    session.stage = Stage::Live;
    Ok(Box::new(session))
}

impl<T: Transport> CoreSession<T> {
    /// Carries out the core's actions in order. Returns whether `Ready` was
    /// among them; a `Fail` or a failed send ends the session.
    fn apply(
        &mut self,
        actions: Vec<Action>,
        mut progress: Option<&mut dyn ConnectProgress>,
    ) -> Result<bool, FeedError> {
        let mut ready = false;
        for action in actions {
            match action {
                Action::Send(out) => self.send(out)?,
                Action::Data(d) => self.pending.push_back(Incoming::Data(d)),
                Action::Event { name, fields } => {
                    self.pending.push_back(Incoming::Event { name, fields })
                }
                Action::Heartbeat => self.pending.push_back(Incoming::Heartbeat),
                Action::Pong => self.pending.push_back(Incoming::Pong),
                Action::LayerPassed { layer, detail } => {
                    if let Some(p) = progress.as_deref_mut() {
                        p.layer_passed(layer, &detail);
                    }
                }
                Action::Ready => ready = true,
                Action::Subscribed { detail } => log::debug!("subscription confirmed: {detail}"),
                Action::Degraded { reason } => self.pending.push_back(Incoming::Degraded(reason)),
                Action::Restored { detail } => self.pending.push_back(Incoming::Restored(detail)),
                Action::Fail(e) => {
                    let layer = e.layer.unwrap_or(match self.stage {
                        Stage::Live => Layer::Data,
                        _ => Layer::Auth,
                    });
                    return Err(e.at(layer));
                }
                Action::Note { key, value } => {
                    // A note's value is often the peer's own text (an
                    // account list, a server version): cleaned and capped.
                    let value = crate::peertext::sanitize(&value, crate::peertext::MAX_PEER_TEXT)
                        .into_owned();
                    match progress.as_deref_mut() {
                        Some(p) => p.note(key, &value),
                        None => self.pending.push_back(Incoming::Note { key, value }),
                    }
                }
                Action::Alert(a) => a.emit(),
                Action::Log { level, message } => crate::peertext::log_peer(level, &message),
            }
        }
        Ok(ready)
    }

    fn send(&mut self, out: Outbound) -> Result<(), FeedError> {
        // A failover standby's private session sends nothing, not even a
        // ping: the lease may already be another agent's (crate::fence).
        if !crate::fence::may_act() {
            return Err(fenced());
        }
        if let Some(rec) = &self.recorder {
            record_out(rec, &out, self.clock.wall());
        }
        let r = match &out {
            Outbound::Text(t) => self.transport.send_text(t.expose()),
            Outbound::Binary(b) => self.transport.send_binary(b),
            Outbound::Frame(f) => self.transport.send_frame(f),
            Outbound::Raw(r) => self.transport.send_raw(r),
            Outbound::Ping => self.transport.send_ping(),
        };
        r.map_err(|e| classify(e, self.stage))
    }

    /// Waits at most `limit` for one message and hands it to the core.
    /// Returns whether the core became ready.
    fn step(
        &mut self,
        limit: Duration,
        progress: Option<&mut dyn ConnectProgress>,
    ) -> Result<bool, FeedError> {
        let tick = self.core.tick(self.clock.mono());
        let mut ready = self.apply(tick, None)?;
        let received = self
            .transport
            .recv_within(limit)
            .map_err(|e| classify(e, self.stage))?;
        let now = self.clock.mono();
        if let (Some(rec), Some(r)) = (&self.recorder, &received) {
            record_in(rec, r, self.clock.wall());
        }
        let actions = match &received {
            None | Some(Received::Ping) => Vec::new(),
            Some(Received::Text(t)) => self.core.receive(Inbound::Text(t), now),
            Some(Received::Binary(b)) => self.core.receive(Inbound::Binary(b), now),
            Some(Received::Frame(f)) => self.core.receive(Inbound::Frame(f), now),
            Some(Received::Pong) => self.core.receive(Inbound::Pong, now),
            Some(Received::Close { code, reason }) => {
                let e = FeedError::from_close(*code, reason, self.stage == Stage::Authenticating);
                let layer = match self.stage {
                    Stage::Live => Layer::Data,
                    _ => Layer::Auth,
                };
                return Err(e.at(layer));
            }
        };
        ready |= self.apply(actions, progress)?;
        Ok(ready)
    }
}

/// A frame the core sent, into the recorder (which redacts it).
fn record_out(rec: &super::recorder::Recorder, out: &Outbound, at: std::time::SystemTime) {
    use super::recorder::Direction::Out;
    match out {
        Outbound::Text(t) => rec.text(Out, t.expose(), at),
        Outbound::Binary(b) | Outbound::Frame(b) | Outbound::Raw(b) => rec.binary(Out, b, at),
        Outbound::Ping => {}
    }
}

/// A frame from the broker, into the recorder.
fn record_in(rec: &super::recorder::Recorder, r: &Received, at: std::time::SystemTime) {
    use super::recorder::Direction::In;
    match r {
        Received::Text(t) => rec.text(In, t, at),
        Received::Binary(b) | Received::Frame(b) => rec.binary(In, b, at),
        Received::Close { code, reason } => rec.transition(
            "closed_by_peer",
            Some(&format!(
                "code {} {reason}",
                code.map_or("none".into(), |c| c.to_string())
            )),
            at,
        ),
        Received::Ping | Received::Pong => {}
    }
}

impl<T: Transport> Session for CoreSession<T> {
    fn subscribe(&mut self) -> Result<(), FeedError> {
        let actions = self.core.subscribe(self.clock.mono());
        self.apply(actions, None).map(|_| ())
    }

    fn read(&mut self) -> Result<Incoming, FeedError> {
        self.read_within(super::runner::TICK)
    }

    fn read_within(&mut self, limit: Duration) -> Result<Incoming, FeedError> {
        if let Some(p) = self.pending.pop_front() {
            return Ok(p);
        }
        self.step(limit, None)?;
        Ok(self.pending.pop_front().unwrap_or(Incoming::Idle))
    }

    fn ping(&mut self) -> Result<(), FeedError> {
        let actions = self.core.keepalive(self.clock.mono());
        self.apply(actions, None).map(|_| ())
    }

    fn poll(&mut self) -> Result<bool, FeedError> {
        if !self.core.has_poll() {
            return Ok(false);
        }
        let actions = self.core.poll(self.clock.mono());
        self.apply(actions, None).map(|_| true)
    }

    fn close(&mut self) {
        if !crate::fence::may_act() {
            // Fenced: not even a close frame; the socket is cut.
            self.transport.interrupter().shutdown();
            return;
        }
        let actions = self.core.closing();
        let _ = self.apply(actions, None);
        self.transport.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::error::PhaseTimeout;

    #[test]
    fn transport_errors_name_their_layer() {
        let t = |phase| {
            NetError::Timeout(PhaseTimeout {
                phase,
                after: Duration::from_secs(1),
                target: "h:1".into(),
            })
        };
        let cases = [
            (t(Phase::Resolve), Stage::Opening, Layer::Dns),
            (t(Phase::Connect), Stage::Opening, Layer::Tcp),
            (t(Phase::TlsHandshake), Stage::Opening, Layer::Tls),
            (t(Phase::WsHandshake), Stage::Opening, Layer::Handshake),
            (NetError::Tls("x".into()), Stage::Opening, Layer::Tls),
            (
                NetError::HttpStatus { status: 403 },
                Stage::Opening,
                Layer::Auth,
            ),
            (
                NetError::HttpStatus { status: 404 },
                Stage::Opening,
                Layer::Handshake,
            ),
            (NetError::Reset, Stage::Authenticating, Layer::Auth),
            (NetError::Reset, Stage::Live, Layer::Data),
        ];
        for (e, stage, want) in cases {
            let shown = e.to_string();
            assert_eq!(classify(e, stage).layer, Some(want), "{shown}");
        }
    }

    #[test]
    fn timeouts_and_refusals_are_typed_not_read_from_the_message() {
        let timeout = classify(
            NetError::Timeout(PhaseTimeout {
                phase: Phase::WsHandshake,
                after: Duration::from_secs(1),
                target: "h:1".into(),
            }),
            Stage::Opening,
        );
        assert!(timeout.is_timeout() && timeout.timed_out_in(Phase::WsHandshake));
        assert!(!timeout.timed_out_in(Phase::Connect) && !timeout.is_refused());
        let connect = |kind| NetError::Connect {
            addr: "127.0.0.1:9".parse().unwrap(),
            source: std::io::Error::from(kind),
        };
        let refused = classify(
            connect(std::io::ErrorKind::ConnectionRefused),
            Stage::Opening,
        );
        assert!(refused.is_refused() && !refused.is_timeout());
        let unreachable = classify(connect(std::io::ErrorKind::HostUnreachable), Stage::Opening);
        assert_eq!(unreachable.cause, None);
        // A message that merely starts with "timeout" is not one.
        assert!(!FeedError::network("timeout (fake) said by a peer").is_timeout());
        assert!(FeedError::timeout("timeout (auth): no reply").is_timeout());
    }

    /// Ready as soon as it is open; never keeps alive.
    struct ReadyCore;
    impl ProtocolCore for ReadyCore {
        fn open(&mut self, _: crate::clock::Mono) -> Vec<Action> {
            vec![Action::Ready]
        }
        fn subscribe(&mut self, _: crate::clock::Mono) -> Vec<Action> {
            vec![]
        }
        fn receive(&mut self, _: Inbound<'_>, _: crate::clock::Mono) -> Vec<Action> {
            vec![]
        }
        fn has_keepalive(&self) -> bool {
            false
        }
        fn keepalive(&mut self, _: crate::clock::Mono) -> Vec<Action> {
            vec![]
        }
    }

    /// The phases a connection reported, in order.
    #[derive(Default)]
    struct Phases(Vec<FeedState>);
    impl ConnectProgress for Phases {
        fn phase(&mut self, state: FeedState) {
            self.0.push(state);
        }
        fn socket_opened(&mut self, _: crate::feed::adapter::Interrupter) {}
    }

    fn run<T: Transport + 'static>(
        open: impl FnOnce(&mut dyn FnMut(ConnectStep)) -> Result<T, NetError>,
    ) -> (Vec<FeedState>, Result<(), FeedError>) {
        let mut phases = Phases::default();
        let clock: Arc<dyn Clock> = Arc::new(crate::clock::SystemClock::new());
        let r = connect(
            Box::new(ReadyCore),
            clock,
            Duration::from_secs(5),
            &mut phases,
            open,
        );
        (phases.0, r.map(|_| ()))
    }

    /// `handshaking` means TCP (and TLS where used) is up: a refused
    /// connect never shows it, a WebSocket upgrade that goes unanswered
    /// does, and so does a framed connection whose greeting starts.
    #[test]
    fn handshaking_is_reported_only_once_the_transport_is_up() {
        use crate::net::{framed, ws};
        use std::net::TcpListener;
        let refused_port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("ws://127.0.0.1:{refused_port}/");
        let (phases, r) = run(|o| ws::connect_observed(&url, &ws::WsOptions::default(), o));
        assert_eq!(r.unwrap_err().layer, Some(Layer::Tcp));
        assert_eq!(phases, [], "a refused connect reached no handshake");

        // Accepts TCP, never answers the upgrade.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ws://{}/", silent.local_addr().unwrap());
        let opts = ws::WsOptions {
            handshake_timeout: Duration::from_millis(200),
            ..ws::WsOptions::default()
        };
        let (phases, r) = run(|o| ws::connect_observed(&url, &opts, o));
        assert_eq!(r.unwrap_err().layer, Some(Layer::Handshake));
        assert_eq!(phases, [FeedState::Handshaking]);

        // Framed TCP has no transport handshake: the core's greeting is it.
        let port = silent.local_addr().unwrap().port();
        let (phases, r) = run(|o| {
            framed::connect_observed("127.0.0.1", port, &framed::FramedOptions::default(), o)
        });
        r.unwrap();
        assert_eq!(phases, [FeedState::Handshaking]);
    }

    #[test]
    fn upgrade_statuses_have_their_classes() {
        let c = |status| classify(NetError::HttpStatus { status }, Stage::Opening).class;
        assert_eq!(c(401), ErrorClass::Auth);
        assert_eq!(c(429), ErrorClass::RateLimited { retry_after: None });
        assert_eq!(c(404), ErrorClass::Protocol);
    }
}
