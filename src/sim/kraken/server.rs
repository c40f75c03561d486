//! The Kraken simulator's listeners, shared state and handle: REST over
//! HTTP/1.1 and WebSocket v2 on two loopback ports, one thread per
//! connection, faults and accepted keys changeable at runtime, and stats
//! a test can wait on.

use super::fault::KrakenFault;
use super::market::{SymbolSpec, default_symbols};
use super::stats::{KrakenSimStats, SharedStats};
use super::{rest, ws};
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How often idle threads look at the stop flag and the fault.
pub(crate) const TICK: Duration = Duration::from_millis(20);

/// An API key the simulated Kraken accepts (test values, not secrets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimKey {
    pub api_key: String,
    /// The private key as Kraken hands it out: base64 of 64 bytes.
    pub secret_b64: String,
}

/// How to start the Kraken simulator.
#[derive(Clone, Debug)]
pub struct KrakenSimConfig {
    /// WebSocket port on 127.0.0.1 (0 picks a free one).
    pub ws_port: u16,
    /// REST port on 127.0.0.1 (0 picks a free one).
    pub rest_port: u16,
    pub keys: Vec<SimKey>,
    /// Symbols listed (others are refused like `XDG/USD`).
    pub symbols: Vec<SymbolSpec>,
    /// Period of market data to subscribed connections.
    pub data_every: Duration,
    /// A heartbeat after this long without any other message (Kraken: ~1 s).
    pub heartbeat_every: Duration,
    /// How long an issued WebSocket token may be used to subscribe (Kraken: 900 s).
    pub token_ttl: Duration,
    pub fault: Option<KrakenFault>,
    /// Seconds added to every REST `Date` header (negative: behind).
    pub date_skew_secs: i64,
    /// One human-readable line per event (for the CLI).
    pub events: Option<Sender<String>>,
}

impl Default for KrakenSimConfig {
    fn default() -> Self {
        KrakenSimConfig {
            ws_port: 0,
            rest_port: 0,
            keys: Vec::new(),
            symbols: default_symbols(),
            data_every: Duration::from_millis(250),
            heartbeat_every: Duration::from_secs(1),
            token_ttl: Duration::from_secs(900),
            fault: None,
            date_skew_secs: 0,
            events: None,
        }
    }
}

/// One accepted key and the last nonce accepted for it.
pub(crate) struct KeyState {
    pub secret: Vec<u8>,
    pub last_nonce: Option<u64>,
}

pub(crate) struct Shared {
    pub ws_addr: SocketAddr,
    pub rest_addr: SocketAddr,
    pub symbols: Vec<SymbolSpec>,
    pub data_every: Duration,
    pub heartbeat_every: Duration,
    pub token_ttl: Duration,
    pub date_skew_secs: i64,
    /// Bumped by `disconnect_all`: a connection older than it ends.
    pub kicks: AtomicU64,
    pub stats: SharedStats,
    pub stop: AtomicBool,
    pub keys: Mutex<HashMap<String, KeyState>>,
    /// Issued WebSocket tokens and when they stop being accepted.
    pub tokens: Mutex<HashMap<String, Instant>>,
    pub token_counter: AtomicU64,
    fault: Mutex<(Option<KrakenFault>, u64)>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    events: Option<Sender<String>>,
    /// Fault generation each open WebSocket has acted on.
    seen: Mutex<HashMap<usize, u64>>,
    seen_changed: Condvar,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// The time a REST `Date` header shows (the configured skew applied).
    pub fn date_now(&self) -> std::time::SystemTime {
        let now = std::time::SystemTime::now();
        let skew = Duration::from_secs(self.date_skew_secs.unsigned_abs());
        if self.date_skew_secs >= 0 {
            now + skew
        } else {
            now.checked_sub(skew).unwrap_or(now)
        }
    }

    pub fn fault(&self) -> (Option<KrakenFault>, u64) {
        lock(&self.fault).clone()
    }

    /// Ends a one-shot fault if it is still the one in force.
    pub fn take_once(&self, which: &KrakenFault) -> bool {
        let mut f = lock(&self.fault);
        if f.0.as_ref() == Some(which) {
            f.0 = None;
            f.1 += 1;
            true
        } else {
            false
        }
    }

    pub fn event(&self, line: String) {
        if let Some(tx) = &self.events {
            let _ = tx.send(line);
        }
    }

    pub fn ack(&self, id: usize, generation: u64) {
        lock(&self.seen).insert(id, generation);
        self.seen_changed.notify_all();
    }

    pub fn forget(&self, id: usize) {
        lock(&self.seen).remove(&id);
        self.seen_changed.notify_all();
    }

    fn set_fault(&self, fault: Option<KrakenFault>) {
        let generation = {
            let mut f = lock(&self.fault);
            f.0 = fault.clone();
            f.1 += 1;
            f.1
        };
        self.event(match &fault {
            Some(f) => format!("fault set: {f}"),
            None => "fault cleared".into(),
        });
        // Returns once every open WebSocket has seen it (at most a second).
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

fn decode_secret(k: &SimKey) -> io::Result<Vec<u8>> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&k.secret_b64)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a key's secret is not base64"))?;
    if bytes.len() != 64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a key's secret is not base64 of 64 bytes",
        ));
    }
    Ok(bytes)
}

fn bind(port: u16) -> io::Result<TcpListener> {
    let l = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Starts Kraken simulators.
pub struct KrakenSim;

impl KrakenSim {
    pub fn start(cfg: KrakenSimConfig) -> io::Result<KrakenSimHandle> {
        let mut keys = HashMap::new();
        for k in &cfg.keys {
            keys.insert(
                k.api_key.clone(),
                KeyState {
                    secret: decode_secret(k)?,
                    last_nonce: None,
                },
            );
        }
        let ws_listener = bind(cfg.ws_port)?;
        let rest_listener = bind(cfg.rest_port)?;
        let shared = Arc::new(Shared {
            ws_addr: ws_listener.local_addr()?,
            rest_addr: rest_listener.local_addr()?,
            symbols: cfg.symbols.clone(),
            data_every: cfg.data_every.max(Duration::from_millis(5)),
            heartbeat_every: cfg.heartbeat_every.max(Duration::from_millis(5)),
            token_ttl: cfg.token_ttl,
            date_skew_secs: cfg.date_skew_secs,
            kicks: AtomicU64::new(0),
            stats: SharedStats::default(),
            stop: AtomicBool::new(false),
            keys: Mutex::new(keys),
            tokens: Mutex::new(HashMap::new()),
            token_counter: AtomicU64::new(0),
            fault: Mutex::new((cfg.fault.clone(), 0)),
            threads: Mutex::new(Vec::new()),
            events: cfg.events.clone(),
            seen: Mutex::new(HashMap::new()),
            seen_changed: Condvar::new(),
        });
        let mut accepts = Vec::new();
        for (name, listener, ws) in [
            ("ksim-ws-accept", ws_listener, true),
            ("ksim-rest-accept", rest_listener, false),
        ] {
            let s = shared.clone();
            accepts.push(
                thread::Builder::new()
                    .name(name.into())
                    .spawn(move || accept_loop(s, listener, ws))?,
            );
        }
        Ok(KrakenSimHandle {
            shared,
            accepts: Mutex::new(accepts),
        })
    }
}

fn accept_loop(shared: Arc<Shared>, listener: TcpListener, is_ws: bool) {
    let mut rest_id = 0usize;
    while !shared.stopping() {
        match listener.accept() {
            Ok((tcp, peer)) => {
                let s = shared.clone();
                let started = if is_ws {
                    let id = shared.stats.update(|st| {
                        st.connections += 1;
                        st.live_connections += 1;
                        st.subscribes_per_connection.push(Vec::new());
                        st.subscribes_per_connection.len() - 1
                    });
                    shared.event(format!("ws {id} from {peer}: accepted"));
                    let generation = shared.fault().1;
                    shared.ack(id, generation);
                    shared.spawn(format!("ksim-ws-{id}"), move || ws::serve(s, id, tcp))
                } else {
                    rest_id += 1;
                    let id = rest_id;
                    shared.spawn(format!("ksim-rest-{id}"), move || rest::serve(s, tcp))
                };
                if let Err(e) = started {
                    shared.event(format!("cannot start a connection thread: {e}"));
                }
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Sets a stream's timeouts for a connection thread.
pub(crate) fn setup(tcp: &TcpStream) -> io::Result<()> {
    tcp.set_nonblocking(false)?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(TICK))?;
    tcp.set_write_timeout(Some(Duration::from_millis(500)))
}

/// A running Kraken simulator; stops when dropped.
pub struct KrakenSimHandle {
    shared: Arc<Shared>,
    accepts: Mutex<Vec<JoinHandle<()>>>,
}

impl KrakenSimHandle {
    /// `http://127.0.0.1:PORT`: the REST base URL (private calls under `/0/private/`).
    pub fn rest_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.shared.rest_addr.port())
    }

    /// `ws://127.0.0.1:PORT/v2`: the public WebSocket endpoint.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/v2", self.shared.ws_addr.port())
    }

    /// `ws://127.0.0.1:PORT/auth/v2`: the private WebSocket endpoint.
    pub fn ws_auth_url(&self) -> String {
        format!("ws://127.0.0.1:{}/auth/v2", self.shared.ws_addr.port())
    }

    pub fn ws_port(&self) -> u16 {
        self.shared.ws_addr.port()
    }

    pub fn rest_port(&self) -> u16 {
        self.shared.rest_addr.port()
    }

    /// Accepts another key (or replaces one), with no nonce seen yet.
    pub fn add_key(&self, key: SimKey) -> io::Result<()> {
        let secret = decode_secret(&key)?;
        lock(&self.shared.keys).insert(
            key.api_key,
            KeyState {
                secret,
                last_nonce: None,
            },
        );
        Ok(())
    }

    /// The last nonce accepted for a key.
    pub fn last_nonce(&self, api_key: &str) -> Option<u64> {
        lock(&self.shared.keys)
            .get(api_key)
            .and_then(|k| k.last_nonce)
    }

    /// Drops every open WebSocket connection at once, without a close
    /// frame (as a network cut does); returns once they are gone.
    pub fn disconnect_all(&self) {
        self.shared.kicks.fetch_add(1, Ordering::SeqCst);
        self.shared
            .stats
            .wait_for(|s| s.live_connections == 0, Duration::from_secs(5));
    }

    /// Every WebSocket token the REST API has issued so far (for tests
    /// that prove no token reaches a log or status).
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.shared.tokens).keys().cloned().collect()
    }

    /// Sets the fault; returns once every open WebSocket has seen it.
    pub fn set_fault(&self, fault: KrakenFault) {
        self.shared.set_fault(Some(fault));
    }

    pub fn clear_fault(&self) {
        self.shared.set_fault(None);
    }

    pub fn fault(&self) -> Option<KrakenFault> {
        self.shared.fault().0
    }

    pub fn stats(&self) -> KrakenSimStats {
        self.shared.stats.snapshot()
    }

    /// Waits until `pred` holds for the stats, at most `deadline` long.
    pub fn wait_for(&self, pred: impl Fn(&KrakenSimStats) -> bool, deadline: Duration) -> bool {
        self.shared.stats.wait_for(pred, deadline)
    }

    /// Stops accepting, ends every connection and joins every thread. Idempotent.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for h in lock(&self.accepts).drain(..) {
            let _ = h.join();
        }
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

impl Drop for KrakenSimHandle {
    fn drop(&mut self) {
        self.stop();
    }
}
