//! The Coinbase simulator's listeners, shared state and handle: the
//! WebSocket and the REST API on two loopback ports, one thread per
//! connection, faults and accepted keys changeable at runtime, stats a
//! test can wait on, and every JWT it received (for tests and the interop
//! suite that verify them independently; `record_jwts` also appends them
//! to a file — they are signed by test keys the test made).

use super::fault::CoinbaseFault;
use super::jwt::{PublicKey, Refusal, Verified};
use super::stats::CoinbaseSimStats;
use super::{rest, ws};
use crate::sim::shared::net;
use crate::sim::shared::{Base, Faults, Host, Watched, handle_methods, lock};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A key the simulated Coinbase accepts JWTs from: its name and public
/// key (a SEC1 P-256 point, or 32 bytes of Ed25519).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimKey {
    pub name: String,
    pub public_key: Vec<u8>,
}

/// How to start the Coinbase simulator.
#[derive(Clone, Debug)]
pub struct CoinbaseSimConfig {
    /// WebSocket port on 127.0.0.1 (0 picks a free one).
    pub ws_port: u16,
    /// REST port on 127.0.0.1 (0 picks a free one).
    pub rest_port: u16,
    pub keys: Vec<SimKey>,
    /// Product ids listed (others are left out of a subscription's answer).
    pub products: Vec<String>,
    /// Period of market data to subscribed connections.
    pub data_every: Duration,
    /// Period of heartbeats (Coinbase: 1 s).
    pub heartbeat_every: Duration,
    /// A connection without a subscribe by then is closed (Coinbase: 5 s).
    pub subscribe_within: Duration,
    /// A connection without heartbeats that was sent nothing for this long
    /// is closed (Coinbase: 60–90 s).
    pub idle_close: Duration,
    pub fault: Option<CoinbaseFault>,
    /// Seconds added to every REST `Date` header (negative: behind).
    pub date_skew_secs: i64,
    /// Appends `ws <jwt>` / `rest <jwt>` lines for every JWT received.
    pub record_jwts: Option<PathBuf>,
    /// One human-readable line per event (for the CLI).
    pub events: Option<Sender<String>>,
}

impl Default for CoinbaseSimConfig {
    fn default() -> Self {
        CoinbaseSimConfig {
            ws_port: 0,
            rest_port: 0,
            keys: Vec::new(),
            products: ["BTC-USD", "ETH-USD", "SOL-USD"].map(String::from).to_vec(),
            data_every: Duration::from_millis(250),
            heartbeat_every: Duration::from_secs(1),
            subscribe_within: Duration::from_secs(5),
            idle_close: Duration::from_secs(75),
            fault: None,
            date_skew_secs: 0,
            record_jwts: None,
            events: None,
        }
    }
}

/// Nonces remembered to refuse a JWT used twice.
const NONCES_KEPT: usize = 100_000;
/// JWTs kept for [`CoinbaseSimHandle::received_jwts`].
const JWTS_KEPT: usize = 10_000;

pub(crate) struct Shared {
    pub ws_addr: SocketAddr,
    pub rest_addr: SocketAddr,
    pub products: Vec<String>,
    pub data_every: Duration,
    pub heartbeat_every: Duration,
    pub subscribe_within: Duration,
    pub idle_close: Duration,
    pub date_skew_secs: i64,
    /// Bumped by `disconnect_all`: a connection older than it ends.
    pub kicks: AtomicU64,
    pub stats: Watched<CoinbaseSimStats>,
    pub faults: Faults<CoinbaseFault>,
    base: Base,
    keys: Mutex<HashMap<String, PublicKey>>,
    nonces: Mutex<(HashSet<String>, VecDeque<String>)>,
    jwts: Mutex<VecDeque<String>>,
    record: Option<Mutex<std::fs::File>>,
    /// When each recent client message arrived (all connections).
    recent: Mutex<VecDeque<Instant>>,
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
    pub fn date_now(&self) -> SystemTime {
        crate::sim::shared::http::skewed_now(self.date_skew_secs)
    }

    fn set_fault(&self, fault: Option<CoinbaseFault>) {
        self.faults.change(&self.base, fault, |_| {});
    }

    /// Counts a client message towards the messages-per-second figure.
    pub fn count_message(&self) {
        let now = Instant::now();
        let mut recent = lock(&self.recent);
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            recent.pop_front();
        }
        recent.push_back(now);
        let n = recent.len() as u64;
        drop(recent);
        self.stats
            .update(|s| s.max_messages_per_second = s.max_messages_per_second.max(n));
    }

    /// Verifies a JWT received on `what` ("ws" or "rest"), refusing one
    /// whose nonce was seen before; records it either way.
    pub fn check_jwt(
        &self,
        what: &str,
        token: &str,
        uri: Option<&str>,
    ) -> Result<Verified, Refusal> {
        self.record(what, token);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let rejecting = self.faults.current().0 == Some(CoinbaseFault::RejectJwt);
        let keys = lock(&self.keys).clone();
        let verdict =
            super::jwt::verify(token, |kid| keys.get(kid).cloned(), now, uri).and_then(|v| {
                if rejecting {
                    Err(Refusal::BadSignature)
                } else {
                    Ok(v)
                }
            });
        let verdict = verdict.and_then(|v| {
            let mut nonces = lock(&self.nonces);
            if !nonces.0.insert(v.nonce.clone()) {
                self.stats.update(|s| s.jwts_reused += 1);
                return Err(Refusal::Claims(
                    "nonce used before (a JWT is good for one message)",
                ));
            }
            nonces.1.push_back(v.nonce.clone());
            if nonces.1.len() > NONCES_KEPT {
                if let Some(old) = nonces.1.pop_front() {
                    nonces.0.remove(&old);
                }
            }
            Ok(v)
        });
        if verdict
            .as_ref()
            .is_err_and(|r| *r == Refusal::UriOnWebSocket)
        {
            self.stats.update(|s| s.ws_jwts_with_uri += 1);
        }
        self.stats.update(|s| match verdict {
            Ok(_) => s.jwts_accepted += 1,
            Err(_) => s.jwts_refused += 1,
        });
        if let Err(r) = &verdict {
            self.event(format!("{what}: JWT refused: {r}"));
        }
        verdict
    }

    fn record(&self, what: &str, token: &str) {
        let mut jwts = lock(&self.jwts);
        jwts.push_back(format!("{what} {token}"));
        if jwts.len() > JWTS_KEPT {
            jwts.pop_front();
        }
        drop(jwts);
        if let Some(f) = &self.record {
            let _ = writeln!(lock(f), "{what} {token}");
        }
    }
}

fn public_key(k: &SimKey) -> io::Result<PublicKey> {
    PublicKey::from_bytes(&k.public_key).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the public key of {} is neither a SEC1 P-256 point nor 32 bytes of Ed25519",
                k.name
            ),
        )
    })
}

/// Starts Coinbase simulators.
pub struct CoinbaseSim;

impl CoinbaseSim {
    pub fn start(cfg: CoinbaseSimConfig) -> io::Result<CoinbaseSimHandle> {
        let mut keys = HashMap::new();
        for k in &cfg.keys {
            keys.insert(k.name.clone(), public_key(k)?);
        }
        let record = match &cfg.record_jwts {
            Some(p) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            )),
            None => None,
        };
        let ws_listener = net::bind(net::loopback(cfg.ws_port))?;
        let rest_listener = net::bind(net::loopback(cfg.rest_port))?;
        let shared = Arc::new(Shared {
            ws_addr: ws_listener.local_addr()?,
            rest_addr: rest_listener.local_addr()?,
            products: cfg.products.clone(),
            data_every: cfg.data_every.max(Duration::from_millis(5)),
            heartbeat_every: cfg.heartbeat_every.max(Duration::from_millis(5)),
            subscribe_within: cfg.subscribe_within,
            idle_close: cfg.idle_close,
            date_skew_secs: cfg.date_skew_secs,
            kicks: AtomicU64::new(0),
            stats: Watched::default(),
            faults: Faults::new(cfg.fault.clone()),
            base: Base::new(cfg.events.clone()),
            keys: Mutex::new(keys),
            nonces: Mutex::new((HashSet::new(), VecDeque::new())),
            jwts: Mutex::new(VecDeque::new()),
            record,
            recent: Mutex::new(VecDeque::new()),
        });
        let s = shared.clone();
        net::spawn_acceptor(&shared, "cbsim-ws-accept", ws_listener, move |tcp, peer| {
            let id = s.stats.update(|st| {
                st.connections += 1;
                st.live_connections += 1;
                st.messages_per_connection.push(Vec::new());
                st.last_subscribe_ms.push(0);
                st.messages_per_connection.len() - 1
            });
            s.event(format!("ws {id} from {peer}: accepted"));
            s.base.ack(id, s.faults.current().1);
            let conn = s.clone();
            (
                format!("cbsim-ws-{id}"),
                Box::new(move || ws::serve(conn, id, tcp)),
            )
        })?;
        let s = shared.clone();
        let mut rest_id = 0usize;
        net::spawn_acceptor(
            &shared,
            "cbsim-rest-accept",
            rest_listener,
            move |tcp, _| {
                rest_id += 1;
                let conn = s.clone();
                (
                    format!("cbsim-rest-{rest_id}"),
                    Box::new(move || rest::serve(conn, tcp)),
                )
            },
        )?;
        Ok(CoinbaseSimHandle { shared })
    }
}

/// A running Coinbase simulator; stops when dropped.
pub struct CoinbaseSimHandle {
    shared: Arc<Shared>,
}

handle_methods!(CoinbaseSimHandle, fault: CoinbaseFault, stats: CoinbaseSimStats);

impl CoinbaseSimHandle {
    /// `ws://127.0.0.1:PORT`: the market data endpoint.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.shared.ws_addr.port())
    }

    /// `ws://127.0.0.1:PORT/user`: the user order data endpoint.
    pub fn ws_user_url(&self) -> String {
        format!("ws://127.0.0.1:{}/user", self.shared.ws_addr.port())
    }

    /// `http://127.0.0.1:PORT`: the REST base URL.
    pub fn rest_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.shared.rest_addr.port())
    }

    /// Accepts another key (or replaces one).
    pub fn add_key(&self, key: SimKey) -> io::Result<()> {
        let public = public_key(&key)?;
        lock(&self.shared.keys).insert(key.name, public);
        Ok(())
    }

    /// Drops every open WebSocket connection without a close frame (as a
    /// network cut does: the agent sees 1006); returns once they are gone.
    pub fn disconnect_all(&self) {
        self.shared.kicks.fetch_add(1, Ordering::SeqCst);
        self.shared
            .stats
            .wait_for(|s| s.live_connections == 0, Duration::from_secs(5));
    }

    /// Every JWT received, as `"ws <jwt>"` or `"rest <jwt>"`, oldest first
    /// (the last 10 000).
    pub fn received_jwts(&self) -> Vec<String> {
        lock(&self.shared.jwts).iter().cloned().collect()
    }
}
