//! The TWS simulator's listener, shared state and handle: binds 127.0.0.1,
//! runs an accept thread and one thread per connection, and lets a test
//! change faults, hold client ids, send codes and wait on the stats.

use super::conn;
use super::fault::{TwsFault, TwsStep};
use super::stats::TwsStats;
use crate::sim::shared::net::{self, Rebinding};
use crate::sim::shared::{Base, Faults, Host, Watched, handle_methods, lock, spawn_script};
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
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
    pub cfg: TwsSimConfig,
    pub stats: Watched<TwsStats>,
    /// Connections act on a change through their [`Cmd`] channel, not by
    /// acknowledging generations: a handle call also waits for codes.
    pub faults: Faults<TwsFault>,
    base: Base,
    listener: Rebinding,
    conns: Mutex<HashMap<usize, CmdSender>>,
    /// Client id → the connection holding it.
    ids_in_use: Mutex<HashMap<i64, usize>>,
    /// Ids a test declared taken (an old half-open socket TWS still holds).
    held_ids: Mutex<HashSet<i64>>,
}

impl Host for Shared {
    fn base(&self) -> &Base {
        &self.base
    }

    fn connection_ended(&self, id: usize) {
        self.forget(id);
        self.stats.update(|s| s.live_connections -= 1);
    }

    fn close_listeners(&self) {
        self.listener.close();
    }
}

impl Shared {
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
        self.faults.change(&self.base, fault, |f| {
            self.listener
                .follow(f == Some(&TwsFault::RefuseConnections))
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
}

/// Starts TWS simulators.
pub struct TwsSim;

impl TwsSim {
    pub fn start(cfg: TwsSimConfig) -> io::Result<TwsSimHandle> {
        let mut cfg = cfg;
        let refuse = cfg.fault == Some(TwsFault::RefuseConnections);
        let shared = Arc::new(Shared {
            listener: Rebinding::bind(cfg.port, refuse)?,
            faults: Faults::new(cfg.fault.clone()),
            base: Base::new(cfg.events.take()),
            cfg,
            stats: Watched::default(),
            conns: Mutex::new(HashMap::new()),
            ids_in_use: Mutex::new(HashMap::new()),
            held_ids: Mutex::new(HashSet::new()),
        });
        let s = shared.clone();
        shared
            .base
            .spawn_accept("tws-sim-accept", move || accept_loop(s))?;
        Ok(TwsSimHandle { shared })
    }
}

fn accept_loop(shared: Arc<Shared>) {
    let refusing = || shared.faults.current().0 == Some(TwsFault::RefuseConnections);
    net::accept_loop(
        &shared.base,
        || shared.listener.accept(refusing),
        |tcp, peer| {
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
            if let Err(e) = shared.base.spawn(format!("tws-sim-conn-{id}"), move || {
                conn::serve(s, id, tcp, rx)
            }) {
                shared.forget(id);
                shared.stats.update(|s| s.live_connections -= 1);
                shared.event(format!("conn {id}: cannot start a thread: {e}"));
            }
        },
    );
}

/// A running TWS simulator; stops when dropped.
pub struct TwsSimHandle {
    shared: Arc<Shared>,
}

handle_methods!(TwsSimHandle, fault: TwsFault, stats: TwsStats);

impl TwsSimHandle {
    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.listener.addr()
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
        if let Err(e) = spawn_script(&self.shared, "tws-sim-script", steps, Shared::apply) {
            self.shared
                .event(format!("cannot start the script thread: {e}"));
        }
    }
}
