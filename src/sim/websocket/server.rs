//! The simulator's listener, shared state and handle: binds 127.0.0.1, runs
//! an accept thread and one thread per connection, and lets a test change
//! tokens and faults at runtime and wait on the stats.

use super::conn;
use super::fault::Fault;
use super::stats::{ConnTimes, SimStats};
use crate::sim::shared::net::{self, Rebinding};
use crate::sim::shared::{Base, Faults, Host, TICK, Watched, handle_methods, lock, spawn_script};
use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A server certificate (chain) and its PKCS#8 key, both PEM.
#[derive(Clone)]
pub struct SimTls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for SimTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimTls { .. }")
    }
}

/// How to start a simulator.
#[derive(Clone, Debug, Default)]
pub struct SimConfig {
    /// 0 picks any free port.
    pub port: u16,
    /// Accepted auth tokens; empty means no auth is required.
    pub tokens: Vec<String>,
    /// Period of data messages to subscribed connections; None sends none.
    pub data_every: Option<Duration>,
    /// A heartbeat is sent when no data went out for this long.
    pub heartbeat_every: Option<Duration>,
    /// Serve wss:// with this identity.
    pub tls: Option<SimTls>,
    /// A fault in force from the start.
    pub fault: Option<Fault>,
    /// One human-readable line per connection event (for the CLI and demo).
    pub events: Option<Sender<String>>,
    /// How long a connection's thread waits for the client before it looks
    /// at faults, stop and due data again (default 20 ms). Benchmarks
    /// shorten it to pace a flood finely, or lengthen it to run hundreds of
    /// idle connections without the simulator's own wake-ups dominating.
    pub tick: Option<Duration>,
    /// Stamp every data message with `"sent_ns"`, the wall clock (ns since
    /// the Unix epoch) just before it is written: a latency benchmark's
    /// hook, so the agent's own path needs none.
    pub stamp_sends: bool,
}

pub(crate) struct Shared {
    pub tick: Duration,
    pub stamp_sends: bool,
    pub data_every: Option<Duration>,
    pub heartbeat_every: Option<Duration>,
    pub tls: Option<native_tls::TlsAcceptor>,
    pub stats: Watched<SimStats>,
    pub faults: Faults<Fault>,
    base: Base,
    tokens: Mutex<HashSet<String>>,
    listener: Rebinding,
}

impl Host for Shared {
    fn base(&self) -> &Base {
        &self.base
    }

    fn close_listeners(&self) {
        self.listener.close();
    }

    fn connection_ended(&self, id: usize) {
        self.stats.update(|s| {
            s.live_connections -= 1;
            if let Some(t) = s.connection_times.get_mut(id) {
                t.ended = Some(Instant::now());
            }
        });
    }
}

impl Shared {
    /// The fault in force and its generation.
    pub fn current_fault(&self) -> (Option<Fault>, u64) {
        self.faults.current()
    }

    pub fn tokens(&self) -> HashSet<String> {
        lock(&self.tokens).clone()
    }

    /// Changes the fault and returns once every open connection has seen
    /// the change (so a test's next step already meets the new behaviour).
    fn set_fault(&self, fault: Option<Fault>) {
        self.faults.change(&self.base, fault, |f| {
            self.listener.follow(f == Some(&Fault::RefuseConnections))
        });
    }
}

/// Starts simulators.
pub struct Simulator;

impl Simulator {
    pub fn start(cfg: SimConfig) -> io::Result<SimHandle> {
        let tls = match &cfg.tls {
            None => None,
            Some(t) => {
                let invalid = |e: native_tls::Error| {
                    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
                };
                let identity =
                    native_tls::Identity::from_pkcs8(&t.cert_pem, &t.key_pem).map_err(invalid)?;
                Some(native_tls::TlsAcceptor::new(identity).map_err(invalid)?)
            }
        };
        let refuse = cfg.fault == Some(Fault::RefuseConnections);
        let shared = Arc::new(Shared {
            tick: cfg.tick.filter(|t| !t.is_zero()).unwrap_or(TICK),
            stamp_sends: cfg.stamp_sends,
            data_every: cfg.data_every.filter(|d| !d.is_zero()),
            heartbeat_every: cfg.heartbeat_every.filter(|d| !d.is_zero()),
            tls,
            stats: Watched::default(),
            faults: Faults::new(cfg.fault.clone()),
            base: Base::new(cfg.events.clone()),
            tokens: Mutex::new(cfg.tokens.iter().cloned().collect()),
            listener: Rebinding::bind(cfg.port, refuse)?,
        });
        let s = shared.clone();
        shared
            .base
            .spawn_accept("sim-accept", move || accept_loop(s))?;
        Ok(SimHandle { shared })
    }
}

fn accept_loop(shared: Arc<Shared>) {
    let refusing = || shared.faults.current().0 == Some(Fault::RefuseConnections);
    net::accept_loop(
        &shared.base,
        || shared.listener.accept(refusing),
        |tcp, peer| {
            let generation = shared.faults.current().1;
            let id = shared.stats.update(|s| {
                s.connections_accepted += 1;
                s.live_connections += 1;
                s.subscribes_per_connection.push(Vec::new());
                s.connection_times.push(ConnTimes {
                    last_client_frame: None,
                    accepted: Instant::now(),
                    authed: None,
                    ended: None,
                });
                s.subscribes_per_connection.len() - 1
            });
            shared.event(format!("conn {id} from {peer}: accepted"));
            let s = shared.clone();
            if let Err(e) = shared.base.spawn(format!("sim-conn-{id}"), move || {
                conn::serve(s, id, tcp, generation)
            }) {
                shared.stats.update(|s| s.live_connections -= 1);
                shared.event(format!("conn {id}: cannot start a thread: {e}"));
            }
        },
    );
}

/// A running simulator; stops when dropped.
pub struct SimHandle {
    shared: Arc<Shared>,
}

handle_methods!(SimHandle, fault: Fault, stats: SimStats);

impl SimHandle {
    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.listener.addr()
    }

    /// `ws://127.0.0.1:PORT/`, or `wss://localhost:PORT/` when serving TLS
    /// (the name the test certificate is made for).
    pub fn url(&self) -> String {
        if self.shared.tls.is_some() {
            format!("wss://localhost:{}/", self.port())
        } else {
            format!("ws://127.0.0.1:{}/", self.port())
        }
    }

    /// Replaces the accepted tokens; an empty set turns auth off.
    pub fn set_tokens<I, S>(&self, tokens: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        *lock(&self.shared.tokens) = tokens.into_iter().map(Into::into).collect();
    }

    /// Applies each step after its delay, counted from the previous step,
    /// in a background thread (ended by `stop`). `None` clears the fault.
    pub fn run_script(&self, steps: Vec<(Duration, Option<Fault>)>) {
        if let Err(e) = spawn_script(&self.shared, "sim-script", steps, Shared::set_fault) {
            self.shared
                .event(format!("cannot start the fault script thread: {e}"));
        }
    }
}
