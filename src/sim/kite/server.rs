//! The Kite simulator's listeners, shared state and handle: a ticker
//! WebSocket listener and a REST listener on 127.0.0.1, an accept thread
//! for each, one thread per connection, and a handle through which a test
//! changes tokens and faults, sends text messages, and waits on the stats.

use super::fault::KiteFault;
use super::stats::KiteSimStats;
use super::{rest, ticker};
use crate::sim::shared::net;
use crate::sim::shared::{Base, Faults, Host, Watched, handle_methods, lock, spawn_script};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How to start a Kite simulator. [`Default`] gives test credentials in
/// Kite's shapes, no access token, data every 100 ms and a heartbeat
/// after 1 s of quiet.
#[derive(Clone, Debug)]
pub struct KiteSimConfig {
    /// 0 picks any free port.
    pub ticker_port: u16,
    pub rest_port: u16,
    pub api_key: String,
    pub api_secret: String,
    pub user_id: String,
    /// Access tokens the ticker and `/user/profile` accept from the start.
    pub access_tokens: Vec<String>,
    /// Request tokens `/session/token` accepts (each once).
    pub request_tokens: Vec<String>,
    /// Period of data frames to connections with subscriptions.
    pub data_every: Option<Duration>,
    /// A 1-byte heartbeat after this long without a frame.
    pub heartbeat_every: Option<Duration>,
    pub fault: Option<KiteFault>,
    /// One line per connection event (for the CLI).
    pub events: Option<Sender<String>>,
}

impl Default for KiteSimConfig {
    fn default() -> Self {
        KiteSimConfig {
            ticker_port: 0,
            rest_port: 0,
            api_key: "simapikey0000001".into(),
            api_secret: "simsecret0000000000000000000001a".into(),
            user_id: "SIM001".into(),
            access_tokens: Vec::new(),
            request_tokens: Vec::new(),
            data_every: Some(Duration::from_millis(100)),
            heartbeat_every: Some(Duration::from_secs(1)),
            fault: None,
            events: None,
        }
    }
}

pub(crate) struct Shared {
    pub ticker_addr: SocketAddr,
    pub rest_addr: SocketAddr,
    pub api_key: String,
    pub api_secret: String,
    pub user_id: String,
    pub data_every: Option<Duration>,
    pub heartbeat_every: Option<Duration>,
    pub stats: Watched<KiteSimStats>,
    pub faults: Faults<KiteFault>,
    base: Base,
    access_tokens: Mutex<HashSet<String>>,
    /// Request token → already used.
    request_tokens: Mutex<HashMap<String, bool>>,
    minted: AtomicU64,
    rest_fault: Mutex<Option<u16>>,
    /// Text messages for every open ticker connection, in order.
    broadcasts: Mutex<Vec<String>>,
}

impl Host for Shared {
    fn base(&self) -> &Base {
        &self.base
    }

    fn connection_ended(&self, _: usize) {
        self.stats.update(|s| s.live_connections -= 1);
    }
}

/// The outcome of presenting a request token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Redeem {
    Unknown,
    Used,
}

impl Shared {
    pub fn access_token_ok(&self, token: &str) -> bool {
        lock(&self.access_tokens).contains(token)
    }

    /// Marks a request token used if it is known and unused.
    pub fn redeem(&self, request_token: &str, checksum_ok: bool) -> Result<(), Redeem> {
        let mut tokens = lock(&self.request_tokens);
        match tokens.get_mut(request_token) {
            None => Err(Redeem::Unknown),
            Some(true) => Err(Redeem::Used),
            Some(used) => {
                // A wrong checksum does not use the token up: the operator
                // can fix the secret and retry within the token's minutes.
                if checksum_ok {
                    *used = true;
                }
                Ok(())
            }
        }
    }

    /// A new random-looking token of 32 lower-case hex digits.
    pub fn mint(&self, what: &str) -> String {
        let n = self.minted.fetch_add(1, Ordering::SeqCst);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let digest = Sha256::digest(format!("{what}:{n}:{nanos}:{}", self.api_secret));
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn add_access_token(&self, token: String) {
        lock(&self.access_tokens).insert(token);
    }

    pub fn rest_fault(&self) -> Option<u16> {
        *lock(&self.rest_fault)
    }

    fn set_fault(&self, fault: Option<KiteFault>) {
        self.faults.change(&self.base, fault, |_| {});
    }

    /// Broadcast texts from index `from` on, and the index after them.
    pub fn broadcasts_since(&self, from: usize) -> (Vec<String>, usize) {
        let b = lock(&self.broadcasts);
        (
            b.get(from..).map(<[String]>::to_vec).unwrap_or_default(),
            b.len(),
        )
    }
}

/// A listener could not be bound: which port (inside the `io::Error`
/// that [`KiteSim::start`] returns).
#[derive(Debug)]
pub struct BindFailed {
    pub port: u16,
    pub source: io::Error,
}

impl std::fmt::Display for BindFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for BindFailed {}

fn bind(port: u16) -> io::Result<TcpListener> {
    net::bind(net::loopback(port))
        .map_err(|source| io::Error::new(source.kind(), BindFailed { port, source }))
}

/// Starts Kite simulators.
pub struct KiteSim;

impl KiteSim {
    pub fn start(cfg: KiteSimConfig) -> io::Result<KiteSimHandle> {
        let ticker_listener = bind(cfg.ticker_port)?;
        let rest_listener = bind(cfg.rest_port)?;
        let shared = Arc::new(Shared {
            ticker_addr: ticker_listener.local_addr()?,
            rest_addr: rest_listener.local_addr()?,
            api_key: cfg.api_key,
            api_secret: cfg.api_secret,
            user_id: cfg.user_id,
            data_every: cfg.data_every.filter(|d| !d.is_zero()),
            heartbeat_every: cfg.heartbeat_every.filter(|d| !d.is_zero()),
            stats: Watched::default(),
            faults: Faults::new(cfg.fault),
            base: Base::new(cfg.events),
            access_tokens: Mutex::new(cfg.access_tokens.into_iter().collect()),
            request_tokens: Mutex::new(
                cfg.request_tokens.into_iter().map(|t| (t, false)).collect(),
            ),
            minted: AtomicU64::new(0),
            rest_fault: Mutex::new(None),
            broadcasts: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        shared.base.spawn_accept("kite-sim-ticker", move || {
            accept_loop(s, ticker_listener, Kind::Ticker)
        })?;
        let s = shared.clone();
        shared.base.spawn_accept("kite-sim-rest", move || {
            accept_loop(s, rest_listener, Kind::Rest)
        })?;
        Ok(KiteSimHandle { shared })
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Ticker,
    Rest,
}

fn accept_loop(shared: Arc<Shared>, listener: TcpListener, kind: Kind) {
    let mut rest_id = 0usize;
    net::accept_loop(
        &shared.base,
        || listener.accept(),
        |tcp, peer| {
            let s = shared.clone();
            let started = match kind {
                Kind::Ticker => {
                    let generation = shared.faults.current().1;
                    let id = shared.stats.update(|st| {
                        st.ticker_connections += 1;
                        st.live_connections += 1;
                        (st.ticker_connections - 1) as usize
                    });
                    shared.event(format!("ticker conn {id} from {peer}: accepted"));
                    shared.base.spawn(format!("kite-sim-ws-{id}"), move || {
                        ticker::serve(s, id, tcp, generation)
                    })
                }
                Kind::Rest => {
                    rest_id += 1;
                    shared
                        .base
                        .spawn(format!("kite-sim-http-{rest_id}"), move || {
                            rest::serve(&s, tcp)
                        })
                }
            };
            if let Err(e) = started {
                if let Kind::Ticker = kind {
                    shared.stats.update(|st| st.live_connections -= 1);
                }
                shared.event(format!("cannot start a connection thread: {e}"));
            }
        },
    );
}

/// A running Kite simulator; stops when dropped.
pub struct KiteSimHandle {
    shared: Arc<Shared>,
}

handle_methods!(KiteSimHandle, fault: KiteFault, stats: KiteSimStats);

impl KiteSimHandle {
    pub fn ticker_port(&self) -> u16 {
        self.shared.ticker_addr.port()
    }

    pub fn rest_port(&self) -> u16 {
        self.shared.rest_addr.port()
    }

    /// `ws://127.0.0.1:PORT/`: the ticker's base URL (a feed's `url`).
    pub fn ticker_url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.ticker_port())
    }

    /// `http://127.0.0.1:PORT`: the REST root (a feed's `rest_url`).
    pub fn rest_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rest_port())
    }

    pub fn api_key(&self) -> &str {
        &self.shared.api_key
    }

    pub fn api_secret(&self) -> &str {
        &self.shared.api_secret
    }

    pub fn user_id(&self) -> &str {
        &self.shared.user_id
    }

    /// A new request token, as Kite's redirect would carry after a login;
    /// `/session/token` accepts it once.
    pub fn issue_request_token(&self) -> String {
        let t = self.shared.mint("request");
        lock(&self.shared.request_tokens).insert(t.clone(), false);
        t
    }

    /// Accepts this access token too (as if issued by a login).
    pub fn add_access_token(&self, token: impl Into<String>) {
        self.shared.add_access_token(token.into());
    }

    /// Replaces the accepted access tokens (an empty set: 06:00 IST came).
    pub fn set_access_tokens<I, S>(&self, tokens: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        *lock(&self.shared.access_tokens) = tokens.into_iter().map(Into::into).collect();
    }

    /// The access tokens accepted now (a test tool: the simulator's tokens
    /// are its own, not real secrets).
    pub fn access_tokens(&self) -> Vec<String> {
        let mut v: Vec<String> = lock(&self.shared.access_tokens).iter().cloned().collect();
        v.sort();
        v
    }

    /// Every REST request is answered with this HTTP status and Kite's
    /// error shape for it (429, 500, 502, 503, …), until set to None.
    pub fn set_rest_fault(&self, status: Option<u16>) {
        *lock(&self.shared.rest_fault) = status;
    }

    /// Sends a text message to every open ticker connection (and only to
    /// those open now); `texts_sent` counts each delivery.
    pub fn send_text(&self, text: impl Into<String>) {
        lock(&self.shared.broadcasts).push(text.into());
    }

    /// `{"type":"order","data":order}` to every open ticker connection.
    pub fn send_order_update(&self, order: serde_json::Value) {
        self.send_text(serde_json::json!({"type": "order", "data": order}).to_string());
    }

    /// `{"type":"error","data":message}` to every open ticker connection.
    pub fn send_error(&self, message: &str) {
        self.send_text(serde_json::json!({"type": "error", "data": message}).to_string());
    }

    /// Applies each step after its delay, counted from the previous step,
    /// in a background thread (ended by `stop`). `None` clears the fault.
    pub fn run_script(&self, steps: Vec<(Duration, Option<KiteFault>)>) {
        if let Err(e) = spawn_script(&self.shared, "kite-sim-script", steps, Shared::set_fault) {
            self.shared
                .event(format!("cannot start the fault script thread: {e}"));
        }
    }
}
