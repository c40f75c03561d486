//! The Alpaca simulator's listeners, shared state and handle: one
//! WebSocket port serving the market-data paths and the trading stream,
//! one REST port, one thread per connection, faults changeable at
//! runtime, and stats a test can wait on.

use super::fault::AlpacaFault;
use super::stats::AlpacaSimStats;
use super::{rest, stream};
use crate::sim::shared::net;
use crate::sim::shared::{Base, Faults, Host, Watched, handle_methods, lock};
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An API key the simulated Alpaca accepts (test values, not secrets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimKey {
    pub key_id: String,
    pub secret: String,
    /// A paper key: accepted by the paper trading stream and REST API only
    /// (market data takes either kind, as Alpaca's does).
    pub paper: bool,
}

/// How to start the Alpaca simulator.
#[derive(Clone, Debug)]
pub struct AlpacaSimConfig {
    /// WebSocket port on 127.0.0.1 (0 picks a free one).
    pub ws_port: u16,
    /// REST port on 127.0.0.1 (0 picks a free one).
    pub rest_port: u16,
    pub keys: Vec<SimKey>,
    /// Stock symbols listed (others are left out of the subscription
    /// answer, as Alpaca does); `FAKEPACA` is the test stream's.
    pub stocks: Vec<String>,
    /// Crypto pairs listed.
    pub crypto: Vec<String>,
    /// One batch of market data (a trade, quote, bar … per subscribed
    /// symbol, in one frame) and one trade update this often.
    pub data_every: Duration,
    /// Alpaca's 10 s for the auth after `connected` (404 after it).
    pub auth_within: Duration,
    pub fault: Option<AlpacaFault>,
    /// Seconds added to every REST `Date` header (negative: behind).
    pub date_skew_secs: i64,
    /// One human-readable line per event (for the CLI).
    pub events: Option<Sender<String>>,
}

impl Default for AlpacaSimConfig {
    fn default() -> Self {
        AlpacaSimConfig {
            ws_port: 0,
            rest_port: 0,
            keys: Vec::new(),
            stocks: ["AAPL", "MSFT", "TSLA", "SPY", "BRK.B"]
                .map(String::from)
                .to_vec(),
            crypto: ["BTC/USD", "ETH/USD"].map(String::from).to_vec(),
            data_every: Duration::from_millis(200),
            auth_within: Duration::from_secs(10),
            fault: None,
            date_skew_secs: 0,
            events: None,
        }
    }
}

pub(crate) struct Shared {
    pub ws_addr: SocketAddr,
    pub rest_addr: SocketAddr,
    pub keys: Mutex<Vec<SimKey>>,
    pub stocks: Vec<String>,
    pub crypto: Vec<String>,
    pub data_every: Duration,
    pub auth_within: Duration,
    pub date_skew_secs: i64,
    /// Bumped by `disconnect_all`: a connection older than it ends.
    pub kicks: AtomicU64,
    pub stats: Watched<AlpacaSimStats>,
    pub faults: Faults<AlpacaFault>,
    base: Base,
    /// Which connection holds each (key id, endpoint path): Alpaca's one
    /// connection per key and endpoint.
    pub holders: Mutex<HashMap<(String, String), usize>>,
}

impl Host for Shared {
    fn base(&self) -> &Base {
        &self.base
    }

    fn connection_ended(&self, id: usize) {
        lock(&self.holders).retain(|_, holder| *holder != id);
        self.stats.update(|s| s.live_connections -= 1);
    }
}

impl Shared {
    /// The time a REST `Date` header shows (the configured skew applied).
    pub fn date_now(&self) -> std::time::SystemTime {
        crate::sim::shared::http::skewed_now(self.date_skew_secs)
    }

    /// The key with this id and secret, if the simulator knows it.
    pub fn key(&self, key_id: &str, secret: &str) -> Option<SimKey> {
        lock(&self.keys)
            .iter()
            .find(|k| k.key_id == key_id && k.secret == secret)
            .cloned()
    }

    /// Connection `id` takes the (key, path) slot; false when another holds it.
    pub fn hold(&self, key_id: &str, path: &str, id: usize) -> bool {
        let mut h = lock(&self.holders);
        let slot = (key_id.to_string(), path.to_string());
        match h.get(&slot) {
            Some(other) if *other != id => false,
            _ => {
                h.insert(slot, id);
                true
            }
        }
    }

    fn set_fault(&self, fault: Option<AlpacaFault>) {
        self.faults.change(&self.base, fault, |_| {});
    }
}

/// Starts Alpaca simulators.
pub struct AlpacaSim;

impl AlpacaSim {
    pub fn start(cfg: AlpacaSimConfig) -> io::Result<AlpacaSimHandle> {
        let ws_listener = net::bind(net::loopback(cfg.ws_port))?;
        let rest_listener = net::bind(net::loopback(cfg.rest_port))?;
        let shared = Arc::new(Shared {
            ws_addr: ws_listener.local_addr()?,
            rest_addr: rest_listener.local_addr()?,
            keys: Mutex::new(cfg.keys.clone()),
            stocks: cfg.stocks.clone(),
            crypto: cfg.crypto.clone(),
            data_every: cfg.data_every.max(Duration::from_millis(5)),
            auth_within: cfg.auth_within,
            date_skew_secs: cfg.date_skew_secs,
            kicks: AtomicU64::new(0),
            stats: Watched::default(),
            faults: Faults::new(cfg.fault.clone()),
            base: Base::new(cfg.events.clone()),
            holders: Mutex::new(HashMap::new()),
        });
        for (name, listener, ws) in [
            ("asim-ws-accept", ws_listener, true),
            ("asim-rest-accept", rest_listener, false),
        ] {
            let s = shared.clone();
            shared
                .base
                .spawn_accept(name, move || accept_loop(s, listener, ws))?;
        }
        Ok(AlpacaSimHandle { shared })
    }
}

fn accept_loop(shared: Arc<Shared>, listener: TcpListener, is_ws: bool) {
    let mut rest_id = 0usize;
    net::accept_loop(
        &shared.base,
        || listener.accept(),
        |tcp, peer| {
            let s = shared.clone();
            let started = if is_ws {
                let id = shared.stats.update(|st| {
                    st.connections += 1;
                    st.live_connections += 1;
                    st.connections as usize
                });
                shared.event(format!("ws {id} from {peer}: accepted"));
                let generation = shared.faults.current().1;
                shared.base.ack(id, generation);
                shared.base.spawn(format!("asim-ws-{id}"), move || {
                    stream::serve(s, id, tcp, generation)
                })
            } else {
                rest_id += 1;
                let id = rest_id;
                shared
                    .base
                    .spawn(format!("asim-rest-{id}"), move || rest::serve(s, tcp))
            };
            if let Err(e) = started {
                shared.event(format!("cannot start a connection thread: {e}"));
            }
        },
    );
}

/// A running Alpaca simulator; stops when dropped.
pub struct AlpacaSimHandle {
    shared: Arc<Shared>,
}

handle_methods!(AlpacaSimHandle, fault: AlpacaFault, stats: AlpacaSimStats);

impl AlpacaSimHandle {
    fn ws(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.shared.ws_addr.port())
    }

    /// `ws://127.0.0.1:PORT/v2/<feed>` (`iex`, `sip`, `test`).
    pub fn stocks_url(&self, feed: &str) -> String {
        self.ws(&format!("/v2/{feed}"))
    }

    /// `ws://127.0.0.1:PORT/v1beta3/crypto/us`.
    pub fn crypto_url(&self) -> String {
        self.ws("/v1beta3/crypto/us")
    }

    /// The trading stream (trade updates) for paper or live keys; the
    /// paper one sends binary frames.
    pub fn trading_url(&self, paper: bool) -> String {
        self.ws(if paper {
            "/paper/stream"
        } else {
            "/live/stream"
        })
    }

    /// The REST base for paper or live keys (`/v2/account` under it).
    pub fn rest_url(&self, paper: bool) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.shared.rest_addr.port(),
            if paper { "paper" } else { "live" }
        )
    }

    pub fn ws_port(&self) -> u16 {
        self.shared.ws_addr.port()
    }

    pub fn rest_port(&self) -> u16 {
        self.shared.rest_addr.port()
    }

    /// Accepts another key.
    pub fn add_key(&self, key: SimKey) {
        lock(&self.shared.keys).push(key);
    }

    /// Forgets every key (their connections stay until they reconnect).
    pub fn clear_keys(&self) {
        lock(&self.shared.keys).clear();
    }

    /// Drops every open WebSocket connection at once, without a close
    /// frame (as a network cut does); returns once they are gone.
    pub fn disconnect_all(&self) {
        self.shared.kicks.fetch_add(1, Ordering::SeqCst);
        self.shared
            .stats
            .wait_for(|s| s.live_connections == 0, Duration::from_secs(5));
    }
}
