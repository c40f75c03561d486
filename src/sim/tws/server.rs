//! The TWS simulator's listener, shared state and handle: binds 127.0.0.1,
//! runs an accept thread and one thread per connection, and lets a test
//! change faults, hold client ids, send codes and wait on the stats.

use super::conn;
use super::fault::{TwsFault, TwsStep};
use super::stats::{SharedTwsStats, TwsStats};
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How often idle threads look at the stop flag and their commands.
pub(crate) const TICK: Duration = Duration::from_millis(20);
/// How long a handle call waits for every connection to act on a change.
const ACK_LIMIT: Duration = Duration::from_secs(1);

/// Symbols the simulator knows by default; others get error 200.
pub const DEFAULT_SYMBOLS: &[&str] = &["AAPL", "MSFT", "SPY", "IBM", "TSLA", "NVDA", "AMZN", "QQQ"];

/// How to start a TWS simulator.
#[derive(Clone, Debug)]
pub struct TwsSimConfig {
    /// 0 picks any free port.
    pub port: u16,
    /// The highest server version it speaks (it answers min(this, the client's max)).
    pub server_version: u32,
    /// The managed accounts it reports.
    pub accounts: Vec<String>,
    pub next_valid_id: i64,
    /// Period of the tick rounds to each subscription.
    pub tick_every: Duration,
    /// Contracts with these symbols have a definition; others get 200.
    pub known_symbols: Vec<String>,
    /// How long after a 326 the socket is closed (TWS: about 0.7 s).
    pub reject_close_after: Duration,
    pub fault: Option<TwsFault>,
    /// One human-readable line per connection event.
    pub events: Option<Sender<String>>,
}

impl Default for TwsSimConfig {
    fn default() -> Self {
        TwsSimConfig {
            port: 0,
            server_version: 176,
            accounts: vec!["DU1234567".into()],
            next_valid_id: 1,
            tick_every: Duration::from_millis(250),
            known_symbols: DEFAULT_SYMBOLS.iter().map(|s| s.to_string()).collect(),
            reject_close_after: Duration::from_millis(700),
            fault: None,
            events: None,
        }
    }
}

/// What a handle asks every connection to do; each acknowledges when done.
#[derive(Clone, Debug)]
pub(crate) enum Cmd {
    /// Look at the current fault now.
    Sync,
    /// Send this code to the API session.
    Notify(i32),
}

pub(crate) type CmdSender = Sender<(Cmd, Sender<()>)>;

pub(crate) struct Shared {
    pub addr: SocketAddr,
    pub cfg: TwsSimConfig,
    pub stats: SharedTwsStats,
    pub stop: AtomicBool,
    fault: Mutex<Option<TwsFault>>,
    listener: Mutex<Option<TcpListener>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    conns: Mutex<HashMap<usize, CmdSender>>,
    /// Client id → the connection holding it.
    ids_in_use: Mutex<HashMap<i64, usize>>,
    /// Ids a test declared taken (an old half-open socket TWS still holds).
    held_ids: Mutex<HashSet<i64>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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

    pub fn fault(&self) -> Option<TwsFault> {
        lock(&self.fault).clone()
    }

    pub fn event(&self, line: String) {
        if let Some(tx) = &self.cfg.events {
            let _ = tx.send(line);
        }
    }

    pub fn register(&self, id: usize, tx: CmdSender) {
        lock(&self.conns).insert(id, tx);
    }

    /// A connection has ended: it gets no commands and holds no client id.
    pub fn forget(&self, id: usize) {
        lock(&self.conns).remove(&id);
        lock(&self.ids_in_use).retain(|_, c| *c != id);
    }

    /// Takes `client_id` for connection `conn`, unless another holds it.
    pub fn claim_client_id(&self, client_id: i64, conn: usize) -> bool {
        if lock(&self.held_ids).contains(&client_id) {
            return false;
        }
        let mut ids = lock(&self.ids_in_use);
        match ids.get(&client_id) {
            Some(other) if *other != conn => false,
            _ => {
                ids.insert(client_id, conn);
                true
            }
        }
    }

    /// Sends `cmd` to every connection and waits (at most a second) until
    /// each has acted on it; returns how many did.
    fn broadcast(&self, cmd: Cmd) -> usize {
        let targets: Vec<CmdSender> = lock(&self.conns).values().cloned().collect();
        let (ack_tx, ack_rx) = mpsc::channel();
        let sent = targets
            .iter()
            .filter(|t| t.send((cmd.clone(), ack_tx.clone())).is_ok())
            .count();
        drop(ack_tx);
        let deadline = Instant::now() + ACK_LIMIT;
        let mut acked = 0;
        while acked < sent {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            match ack_rx.recv_timeout(left) {
                Ok(()) => acked += 1,
                Err(_) => break,
            }
        }
        acked
    }

    fn set_fault(&self, fault: Option<TwsFault>) {
        let refuse = fault == Some(TwsFault::RefuseConnections);
        *lock(&self.fault) = fault.clone();
        {
            let mut listener = lock(&self.listener);
            if refuse {
                *listener = None;
            } else if listener.is_none() {
                *listener = bind(self.addr).ok();
            }
        }
        self.event(match &fault {
            Some(f) => format!("fault set: {f}"),
            None => "fault cleared".into(),
        });
        self.broadcast(Cmd::Sync);
    }

    fn notify(&self, code: i32) -> usize {
        self.event(format!("notify {code}"));
        self.broadcast(Cmd::Notify(code))
    }

    fn apply(&self, step: TwsStep) {
        match step {
            TwsStep::Fault(f) => self.set_fault(Some(f)),
            TwsStep::Clear => self.set_fault(None),
            TwsStep::Notify(code) => {
                self.notify(code);
            }
        }
    }

    fn spawn(&self, name: String, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
        let handle = thread::Builder::new().name(name).spawn(f)?;
        let mut threads = lock(&self.threads);
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

/// Starts TWS simulators.
pub struct TwsSim;

impl TwsSim {
    pub fn start(cfg: TwsSimConfig) -> io::Result<TwsSimHandle> {
        let refuse = cfg.fault == Some(TwsFault::RefuseConnections);
        let listener = bind(SocketAddr::from((Ipv4Addr::LOCALHOST, cfg.port)))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            addr,
            fault: Mutex::new(cfg.fault.clone()),
            cfg,
            stats: SharedTwsStats::default(),
            stop: AtomicBool::new(false),
            listener: Mutex::new(if refuse { None } else { Some(listener) }),
            threads: Mutex::new(Vec::new()),
            conns: Mutex::new(HashMap::new()),
            ids_in_use: Mutex::new(HashMap::new()),
            held_ids: Mutex::new(HashSet::new()),
        });
        let s = shared.clone();
        let accept = thread::Builder::new()
            .name("tws-sim-accept".into())
            .spawn(move || accept_loop(s))?;
        Ok(TwsSimHandle {
            shared,
            accept: Mutex::new(Some(accept)),
        })
    }
}

fn accept_loop(shared: Arc<Shared>) {
    while !shared.stopping() {
        let accepted = {
            let mut listener = lock(&shared.listener);
            if listener.is_none() && shared.fault() != Some(TwsFault::RefuseConnections) {
                *listener = bind(shared.addr).ok();
            }
            match listener.as_ref() {
                Some(l) => l.accept(),
                None => Err(io::ErrorKind::WouldBlock.into()),
            }
        };
        match accepted {
            Ok((tcp, peer)) => {
                let id = shared.stats.update(|s| {
                    s.connections_accepted += 1;
                    s.live_connections += 1;
                    s.mkt_data_requests_per_connection.push(Vec::new());
                    s.mkt_data_requests_per_connection.len() - 1
                });
                let (tx, rx) = mpsc::channel();
                shared.register(id, tx);
                shared.event(format!("conn {id} from {peer}: accepted"));
                let s = shared.clone();
                if let Err(e) = shared.spawn(format!("tws-sim-conn-{id}"), move || {
                    conn::serve(s, id, tcp, rx)
                }) {
                    shared.forget(id);
                    shared.stats.update(|s| s.live_connections -= 1);
                    shared.event(format!("conn {id}: cannot start a thread: {e}"));
                }
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// A running TWS simulator; stops when dropped.
pub struct TwsSimHandle {
    shared: Arc<Shared>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl TwsSimHandle {
    pub fn port(&self) -> u16 {
        self.shared.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Sets the fault; returns once every open connection has seen it.
    pub fn set_fault(&self, fault: TwsFault) {
        self.shared.set_fault(Some(fault));
    }

    /// Ends the fault (binding the port again after `RefuseConnections`).
    pub fn clear_fault(&self) {
        self.shared.set_fault(None);
    }

    pub fn fault(&self) -> Option<TwsFault> {
        self.shared.fault()
    }

    /// Declares `client_id` taken, as by a connection TWS still holds: a
    /// START_API with it gets 326 and the socket closes.
    pub fn hold_client_id(&self, client_id: i64) {
        lock(&self.shared.held_ids).insert(client_id);
        self.shared.event(format!("client id {client_id} held"));
    }

    pub fn release_client_id(&self, client_id: i64) {
        lock(&self.shared.held_ids).remove(&client_id);
        self.shared.event(format!("client id {client_id} released"));
    }

    /// Sends an error/notice code with request id -1 to every API session,
    /// with its effect (1100 pauses ticks, 1101 also drops every
    /// subscription, 1102 resumes them, 2103/2104 pause and resume ticks,
    /// 1300 closes the connection). Connections without an API session
    /// ignore it. Returns once every connection has acted on it, with how
    /// many connections did.
    pub fn notify(&self, code: i32) -> usize {
        self.shared.notify(code)
    }

    /// Applies each step after its delay, counted from the previous one, in
    /// a background thread ended by `stop`.
    pub fn run_script(&self, steps: Vec<(Duration, TwsStep)>) {
        let s = self.shared.clone();
        let started = self.shared.spawn("tws-sim-script".into(), move || {
            for (delay, step) in steps {
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
                s.apply(step);
            }
        });
        if let Err(e) = started {
            self.shared
                .event(format!("cannot start the script thread: {e}"));
        }
    }

    pub fn stats(&self) -> TwsStats {
        self.shared.stats.snapshot()
    }

    /// Waits until `pred` holds for the stats, at most `deadline` long.
    pub fn wait_for(&self, pred: impl Fn(&TwsStats) -> bool, deadline: Duration) -> bool {
        self.shared.stats.wait_for(pred, deadline)
    }

    /// Stops accepting, ends every connection and joins every thread. Idempotent.
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

impl Drop for TwsSimHandle {
    fn drop(&mut self) {
        self.stop();
    }
}
