//! The Kraken simulator's listeners, shared state and handle: REST over
//! HTTP/1.1 and WebSocket v2 on two loopback ports, one thread per
//! connection, faults and accepted keys changeable at runtime, and stats
//! a test can wait on.

use super::fault::KrakenFault;
use super::market::{SymbolSpec, default_symbols};
use super::stats::KrakenSimStats;
use super::{rest, ws};
use crate::sim::shared::net;
use crate::sim::shared::{Base, Faults, Host, Watched, handle_methods, lock};
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    pub stats: Watched<KrakenSimStats>,
    pub faults: Faults<KrakenFault>,
    base: Base,
    pub keys: Mutex<HashMap<String, KeyState>>,
    /// Issued WebSocket tokens and when they stop being accepted.
    pub tokens: Mutex<HashMap<String, Instant>>,
    pub token_counter: AtomicU64,
}

impl Host for Shared {
    fn base(&self) -> &Base {
        &self.base
    }

    fn connection_ended(&self, _: usize) {
        self.stats.update(|s| s.live_connections -= 1);
    }
}

impl Shared {
    /// The time a REST `Date` header shows (the configured skew applied).
    pub fn date_now(&self) -> std::time::SystemTime {
        crate::sim::shared::http::skewed_now(self.date_skew_secs)
    }

    fn set_fault(&self, fault: Option<KrakenFault>) {
        self.faults.change(&self.base, fault, |_| {});
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
    net::bind(net::loopback(port))
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
            stats: Watched::default(),
            faults: Faults::new(cfg.fault.clone()),
            base: Base::new(cfg.events.clone()),
            keys: Mutex::new(keys),
            tokens: Mutex::new(HashMap::new()),
            token_counter: AtomicU64::new(0),
        });
        let s = shared.clone();
        net::spawn_acceptor(&shared, "ksim-ws-accept", ws_listener, move |tcp, peer| {
            let id = s.stats.update(|st| {
                st.connections += 1;
                st.live_connections += 1;
                st.subscribes_per_connection.push(Vec::new());
                st.subscribes_per_connection.len() - 1
            });
            s.event(format!("ws {id} from {peer}: accepted"));
            s.base.ack(id, s.faults.current().1);
            let conn = s.clone();
            (
                format!("ksim-ws-{id}"),
                Box::new(move || ws::serve(conn, id, tcp)),
            )
        })?;
        let s = shared.clone();
        let mut rest_id = 0usize;
        net::spawn_acceptor(&shared, "ksim-rest-accept", rest_listener, move |tcp, _| {
            rest_id += 1;
            let conn = s.clone();
            (
                format!("ksim-rest-{rest_id}"),
                Box::new(move || rest::serve(conn, tcp)),
            )
        })?;
        Ok(KrakenSimHandle { shared })
    }
}

/// How long a client that does not read may block a write.
const WRITE_TIMEOUT: Duration = Duration::from_millis(500);

/// Sets a stream's timeouts for a connection thread.
pub(crate) fn setup(tcp: &TcpStream) -> io::Result<()> {
    net::setup(tcp, WRITE_TIMEOUT)
}

/// A running Kraken simulator; stops when dropped.
pub struct KrakenSimHandle {
    shared: Arc<Shared>,
}

handle_methods!(KrakenSimHandle, fault: KrakenFault, stats: KrakenSimStats);

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
}
