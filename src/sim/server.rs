//! The simulator's listener, shared state and handle: binds 127.0.0.1, runs
//! an accept thread and one thread per connection, and lets a test change
//! tokens and faults at runtime and wait on the stats.

use super::conn;
use super::fault::Fault;
use super::stats::{SharedStats, SimStats};
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How often idle threads look at the stop flag and the fault.
pub(crate) const TICK: Duration = Duration::from_millis(20);

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

struct FaultState {
    current: Option<Fault>,
    generation: u64,
    /// Every change, so a connection that looks late still sees one-shot
    /// faults (close once, reset) that were set and cleared in between.
    history: Vec<(u64, Option<Fault>)>,
}

pub(crate) struct Shared {
    pub addr: SocketAddr,
    pub tick: Duration,
    pub stamp_sends: bool,
    pub data_every: Option<Duration>,
    pub heartbeat_every: Option<Duration>,
    pub tls: Option<native_tls::TlsAcceptor>,
    pub stats: SharedStats,
    pub stop: AtomicBool,
    tokens: Mutex<HashSet<String>>,
    fault: Mutex<FaultState>,
    listener: Mutex<Option<TcpListener>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    events: Option<Sender<String>>,
    /// Fault generation each running connection has seen, so `set_fault`
    /// can return only once the change is in force everywhere.
    seen: Mutex<HashMap<usize, u64>>,
    seen_changed: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let l = TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

impl Shared {
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub fn tokens(&self) -> HashSet<String> {
        lock(&self.tokens).clone()
    }

    pub fn current_fault(&self) -> (Option<Fault>, u64) {
        let f = lock(&self.fault);
        (f.current.clone(), f.generation)
    }

    /// Fault changes after generation `seen`, in order, and the latest generation.
    pub fn fault_changes_since(&self, seen: u64) -> (Vec<Option<Fault>>, u64) {
        let f = lock(&self.fault);
        if f.generation == seen {
            return (Vec::new(), seen);
        }
        let changes = f
            .history
            .iter()
            .filter(|(g, _)| *g > seen)
            .map(|(_, c)| c.clone())
            .collect();
        (changes, f.generation)
    }

    /// A connection has seen every fault change up to `generation`.
    pub fn ack(&self, id: usize, generation: u64) {
        lock(&self.seen).insert(id, generation);
        self.seen_changed.notify_all();
    }

    /// A connection has ended and no longer needs to see changes.
    pub fn forget(&self, id: usize) {
        lock(&self.seen).remove(&id);
        self.seen_changed.notify_all();
    }

    /// Waits (at most a second) until every running connection has seen `generation`.
    fn wait_seen(&self, generation: u64) {
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut seen = lock(&self.seen);
        while !self.stopping() && seen.values().any(|g| *g < generation) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return;
            };
            seen = self
                .seen_changed
                .wait_timeout(seen, left.min(TICK))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    pub fn event(&self, line: String) {
        if let Some(tx) = &self.events {
            let _ = tx.send(line);
        }
    }

    /// Changes the fault and returns once every open connection has seen
    /// the change (so a test's next step already meets the new behaviour).
    fn set_fault(&self, fault: Option<Fault>) {
        let refuse = fault == Some(Fault::RefuseConnections);
        let generation = {
            let mut f = lock(&self.fault);
            f.generation += 1;
            let g = f.generation;
            f.history.push((g, fault.clone()));
            f.current = fault.clone();
            g
        };
        let mut listener = lock(&self.listener);
        if refuse {
            // Dropping the listener closes it: connect() is refused at once.
            *listener = None;
        } else if listener.is_none() {
            // If the port is briefly unavailable the accept thread retries.
            *listener = bind(self.addr).ok();
        }
        drop(listener);
        self.event(match fault {
            Some(f) => format!("fault set: {f}"),
            None => "fault cleared".into(),
        });
        self.wait_seen(generation);
    }

    fn spawn(&self, name: String, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
        let handle = thread::Builder::new().name(name).spawn(f)?;
        let mut threads = lock(&self.threads);
        // Reap finished threads so a long run does not pile up handles.
        let (done, running): (Vec<_>, Vec<_>) = threads.drain(..).partition(|h| h.is_finished());
        *threads = running;
        threads.push(handle);
        drop(threads);
        for h in done {
            let _ = h.join();
        }
        Ok(())
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
        let listener = bind(SocketAddr::from((Ipv4Addr::LOCALHOST, cfg.port)))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            addr,
            tick: cfg.tick.filter(|t| !t.is_zero()).unwrap_or(TICK),
            stamp_sends: cfg.stamp_sends,
            data_every: cfg.data_every.filter(|d| !d.is_zero()),
            heartbeat_every: cfg.heartbeat_every.filter(|d| !d.is_zero()),
            tls,
            stats: SharedStats::default(),
            stop: AtomicBool::new(false),
            tokens: Mutex::new(cfg.tokens.iter().cloned().collect()),
            fault: Mutex::new(FaultState {
                current: cfg.fault.clone(),
                generation: 0,
                history: Vec::new(),
            }),
            listener: Mutex::new(if refuse { None } else { Some(listener) }),
            threads: Mutex::new(Vec::new()),
            events: cfg.events.clone(),
            seen: Mutex::new(HashMap::new()),
            seen_changed: Condvar::new(),
        });
        let s = shared.clone();
        let accept = thread::Builder::new()
            .name("sim-accept".into())
            .spawn(move || accept_loop(s))?;
        Ok(SimHandle {
            shared,
            accept: Mutex::new(Some(accept)),
        })
    }
}

fn accept_loop(shared: Arc<Shared>) {
    while !shared.stopping() {
        let accepted = {
            let mut listener = lock(&shared.listener);
            if listener.is_none() && shared.current_fault().0 != Some(Fault::RefuseConnections) {
                *listener = bind(shared.addr).ok();
            }
            match listener.as_ref() {
                Some(l) => l.accept(),
                None => Err(io::ErrorKind::WouldBlock.into()),
            }
        };
        match accepted {
            Ok((tcp, peer)) => {
                let generation = shared.current_fault().1;
                let id = shared.stats.update(|s| {
                    s.connections_accepted += 1;
                    s.live_connections += 1;
                    s.subscribes_per_connection.push(Vec::new());
                    s.connection_times.push(super::stats::ConnTimes {
                        accepted: Instant::now(),
                        authed: None,
                        ended: None,
                    });
                    s.subscribes_per_connection.len() - 1
                });
                shared.event(format!("conn {id} from {peer}: accepted"));
                let s = shared.clone();
                if let Err(e) = shared.spawn(format!("sim-conn-{id}"), move || {
                    conn::serve(s, id, tcp, generation)
                }) {
                    shared.stats.update(|s| s.live_connections -= 1);
                    shared.event(format!("conn {id}: cannot start a thread: {e}"));
                }
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// A running simulator; stops when dropped.
pub struct SimHandle {
    shared: Arc<Shared>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl SimHandle {
    pub fn port(&self) -> u16 {
        self.shared.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
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

    /// Sets the fault; returns once every open connection has seen it (at
    /// most about a second), so the next step of a test meets it.
    pub fn set_fault(&self, fault: Fault) {
        self.shared.set_fault(Some(fault));
    }

    /// Ends the fault (re-binding the port after `RefuseConnections`).
    pub fn clear_fault(&self) {
        self.shared.set_fault(None);
    }

    pub fn fault(&self) -> Option<Fault> {
        self.shared.current_fault().0
    }

    /// Applies each step after its delay, counted from the previous step,
    /// in a background thread (ended by `stop`). `None` clears the fault.
    pub fn run_script(&self, steps: Vec<(Duration, Option<Fault>)>) {
        let shared = self.shared.clone();
        let s = shared.clone();
        let started = shared.spawn("sim-script".into(), move || {
            for (delay, fault) in steps {
                let due = Instant::now() + delay;
                while Instant::now() < due {
                    if s.stopping() {
                        return;
                    }
                    thread::sleep(TICK.min(due.saturating_duration_since(Instant::now())));
                }
                if s.stopping() {
                    return;
                }
                s.set_fault(fault);
            }
        });
        if let Err(e) = started {
            shared.event(format!("cannot start the fault script thread: {e}"));
        }
    }

    pub fn stats(&self) -> SimStats {
        self.shared.stats.snapshot()
    }

    /// Waits until `pred` holds for the stats, at most `deadline` long.
    pub fn wait_for(&self, pred: impl Fn(&SimStats) -> bool, deadline: Duration) -> bool {
        self.shared.stats.wait_for(pred, deadline)
    }

    /// Stops accepting, ends every connection and joins every thread
    /// (within about a second). Idempotent.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = lock(&self.accept).take() {
            let _ = h.join();
        }
        *lock(&self.shared.listener) = None;
        loop {
            let batch: Vec<_> = lock(&self.shared.threads).drain(..).collect();
            if batch.is_empty() {
                break;
            }
            for h in batch {
                let _ = h.join();
            }
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop();
    }
}
