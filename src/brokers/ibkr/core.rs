//! The TWS API protocol core: one connection's state machine, pure (frames
//! and timer calls in, [`Action`]s out). It speaks over a length-prefixed
//! TCP transport: [`Inbound::Frame`] in, [`Outbound::Raw`] (the `API\0`
//! greeting) and [`Outbound::Frame`] out.
//!
//! Life of a connection:
//! 1. `open` sends the greeting `API\0` + `v157..178`;
//! 2. the two-field server version reply → `LayerPassed{Handshake}` and
//!    `START_API` with the client id;
//! 3. `managedAccounts` and `nextValidId` → `LayerPassed{Auth}` and `Ready`
//!    (326 instead → [`ErrorClass::GoingAway`] and
//!    [`TwsCore::rejected_client_id`], so the adapter tries the next id);
//! 4. `subscribe` sends one `reqMktData` per contract (request ids from
//!    [`FIRST_REQ_ID`]); each `tickReqParams` confirms one (`Subscribed`).
//!    Without contracts it sends a `reqCurrentTime` instead, whose answer
//!    is the session's first heartbeat;
//! 5. live: ticks become `Data` lines; 1100 / 2103 / 2105 / 2157 →
//!    `Degraded`, 1101 / 1102 / farm OK → `Restored` (1101 re-sends every
//!    `reqMktData`, a market data farm's recovery cancels and re-sends them),
//!    1300 → a network failure, an error for one of our requests → a
//!    configuration failure naming the contract; `keepalive` sends
//!    `reqCurrentTime`, whose answer is a `Pong`.

use super::codec::{
    self, ErrorMsg, MAX_CLIENT_VERSION, MIN_CLIENT_VERSION, ServerHello, TickAttrib, TwsMessage,
};
use super::codes::{self, CodeKind, Farm};
use super::contract::Contract;
use super::remedy;
use super::ticks;
use crate::clock::Mono;
use crate::feed::{Action, ErrorClass, FeedError, Inbound, Layer, Outbound, ProtocolCore};
use crate::peertext::short as sanitize;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The most account names kept from `managedAccounts` (an advisor's login
/// lists many; a peer could list millions).
const MAX_ACCOUNTS: usize = 32;

/// The request id of the first contract's market data; the i-th contract
/// gets `FIRST_REQ_ID + i`. Ticker ids are the client's own namespace;
/// starting well above 0 keeps them apart from TWS's `-1` ("no request").
pub const FIRST_REQ_ID: i64 = 1000;

/// The event name of a TWS error or notice passed to the bot.
pub const TWS_MESSAGE_EVENT: &str = "tws_message";
/// The event name of a change of market data type (real-time, delayed...).
pub const MARKET_DATA_TYPE_EVENT: &str = "market_data_type";

/// What the core needs for one connection.
#[derive(Clone, Debug, PartialEq)]
pub struct TwsCoreConfig {
    pub client_id: i32,
    pub contracts: Vec<Contract>,
    /// `START_API`'s optional capabilities (empty, as ib_async sends).
    pub optional_capabilities: String,
    /// Appended to the greeting after a space (e.g. `+PACEAPI`); empty by default.
    pub connect_options: String,
}

impl TwsCoreConfig {
    pub fn new(client_id: i32, contracts: Vec<Contract>) -> Self {
        TwsCoreConfig {
            client_id,
            contracts,
            optional_capabilities: String::new(),
            connect_options: String::new(),
        }
    }
}

/// What one connection learned, kept where the adapter can read it after
/// the core has been handed to the session driver: the client id in use,
/// whether TWS refused it (326), the server version and the accounts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionFacts {
    pub client_id: i32,
    pub server_version: Option<u32>,
    pub connection_time: Option<String>,
    pub accounts: Vec<String>,
    pub next_valid_id: Option<i64>,
    /// TWS answered `START_API` with 326: this client id is held by
    /// another connection.
    pub client_id_rejected: bool,
    pub ready: bool,
}

/// A shared view of [`SessionFacts`]: the adapter keeps a clone.
#[derive(Clone, Debug, Default)]
pub struct SessionReport(Arc<Mutex<SessionFacts>>);

impl SessionReport {
    pub fn facts(&self) -> SessionFacts {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut SessionFacts)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The greeting is out (or about to be); waiting for the server version.
    Greeting,
    /// `START_API` sent; waiting for managedAccounts and nextValidId.
    Starting,
    /// `Ready` returned; `subscribe` not yet called.
    Ready,
    /// Subscribed: the live session.
    Live,
}

/// The TWS protocol core for one connection.
#[derive(Debug)]
pub struct TwsCore {
    cfg: TwsCoreConfig,
    phase: Phase,
    server_version: u32,
    accounts: Option<Vec<String>>,
    next_valid_id: Option<i64>,
    report: SessionReport,
    /// 1100 seen and neither 1101 nor 1102 since.
    connectivity_lost: bool,
    /// Farms TWS reported broken (2103/2105/2157) and not OK since.
    broken_farms: BTreeSet<(Farm, String)>,
    /// A market data farm broke since the last (re-)request.
    farm_rerequest_due: bool,
    /// Whether `Degraded` is in force (emitted and not yet `Restored`).
    degraded: bool,
    /// `reqCurrentTime` sent and not yet answered.
    pings_outstanding: u32,
}

fn level_for(code: i32) -> log::Level {
    // The journal's error level is for alerts only: TWS errors log as
    // warnings, TWS warnings and notices as info.
    if codes::is_warning(code) {
        log::Level::Info
    } else {
        log::Level::Warn
    }
}

fn farm_base(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// The bot's `tws_message` event for one TWS error, warning or notice.
fn tws_message_event(e: &ErrorMsg, message: &str, contract: Option<&Contract>) -> Action {
    let severity = if codes::is_warning(e.code) {
        "warning"
    } else {
        "error"
    };
    let mut event: Vec<(&str, Value)> = vec![
        ("code", e.code.into()),
        ("req_id", e.req_id.into()),
        ("message", message.into()),
        ("severity", severity.into()),
    ];
    if let Some(c) = contract {
        event.push(("symbol", c.symbol.clone().into()));
    }
    Action::event(TWS_MESSAGE_EVENT, &event)
}

/// A tickPrice's fields for the bot (ib_async's names).
fn tick_price_fields(
    price: f64,
    size: Option<f64>,
    attrib: Option<TickAttrib>,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("price".into(), json!(price));
    if let Some(s) = size {
        m.insert("size".into(), json!(s));
    }
    if let Some(TickAttrib {
        can_auto_execute,
        past_limit,
        pre_open,
    }) = attrib
    {
        m.insert("can_auto_execute".into(), can_auto_execute.into());
        m.insert("past_limit".into(), past_limit.into());
        m.insert("pre_open".into(), pre_open.into());
    }
    m
}

/// The bot's `market_data_type` event, and a warning when the data is not
/// real-time (the account may lack the subscription).
fn market_data_type(c: &Contract, req_id: i64, data_type: i64) -> Vec<Action> {
    let name = match data_type {
        1 => "realtime",
        2 => "frozen",
        3 => "delayed",
        4 => "delayed_frozen",
        _ => "unknown",
    };
    let mut out = vec![Action::event(
        MARKET_DATA_TYPE_EVENT,
        &[
            ("symbol", c.symbol.clone().into()),
            ("req_id", req_id.into()),
            ("market_data_type", data_type.into()),
            ("name", name.into()),
        ],
    )];
    if data_type != 1 {
        out.push(Action::Log {
            level: log::Level::Warn,
            message: format!(
                "TWS sends {name} market data for {} (market data type {data_type}): \
                 the account may lack a real-time subscription",
                c.label()
            ),
        });
    }
    out
}

/// Whether an error about one of our market data requests refuses it (the
/// session ends), rather than warning about it.
fn refuses_market_data(code: i32) -> bool {
    !codes::is_warning(code)
        && ![
            codes::UNKNOWN_TICKER_ID,
            codes::PARTLY_SUBSCRIBED,
            codes::COMPETING_SESSION,
        ]
        .contains(&code)
}

/// TWS refused the market data of `contracts[i]`: a duplicate request is
/// ours to fix, any other refusal the configuration's.
fn market_data_refused(i: usize, c: &Contract, code: i32, message: &str) -> FeedError {
    if code == codes::DUPLICATE_TICKER_ID {
        FeedError::protocol(format!(
            "TWS refused a duplicate market data request for {} (322): {message}",
            c.label()
        ))
    } else {
        FeedError::config(format!(
            "TWS refused market data for contracts[{i}] ({}): error {code}: {message}; \
             fix the contract in the configuration",
            c.label()
        ))
    }
}

impl TwsCore {
    pub fn new(cfg: TwsCoreConfig) -> Self {
        let report = SessionReport::default();
        report.update(|f| f.client_id = cfg.client_id);
        TwsCore {
            cfg,
            phase: Phase::Greeting,
            server_version: 0,
            accounts: None,
            next_valid_id: None,
            report,
            connectivity_lost: false,
            broken_farms: BTreeSet::new(),
            farm_rerequest_due: false,
            degraded: false,
            pings_outstanding: 0,
        }
    }

    /// A handle on what this connection learns, for the adapter to keep.
    pub fn report(&self) -> SessionReport {
        self.report.clone()
    }

    /// The client id TWS refused with 326 on this connection, if it did:
    /// the adapter tries `ClientIds::next_after` it, or backs off briefly.
    pub fn rejected_client_id(&self) -> Option<i32> {
        self.report
            .facts()
            .client_id_rejected
            .then_some(self.cfg.client_id)
    }

    /// The server version negotiated (0 before the reply).
    pub fn server_version(&self) -> u32 {
        self.server_version
    }

    fn req_id(i: usize) -> i64 {
        FIRST_REQ_ID + i as i64
    }

    /// The contract (and its index) a request id belongs to.
    fn contract_of(&self, req_id: i64) -> Option<(usize, &Contract)> {
        let i = usize::try_from(req_id.checked_sub(FIRST_REQ_ID)?).ok()?;
        self.cfg.contracts.get(i).map(|c| (i, c))
    }

    fn req_all(&self) -> Vec<Action> {
        self.cfg
            .contracts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Action::Send(Outbound::Frame(codec::req_mkt_data(
                    Self::req_id(i),
                    c,
                    false,
                    false,
                )))
            })
            .collect()
    }

    fn cancel_all(&self) -> Vec<Action> {
        (0..self.cfg.contracts.len())
            .map(|i| Action::Send(Outbound::Frame(codec::cancel_mkt_data(Self::req_id(i)))))
            .collect()
    }

    /// Why no data can flow now, or `None` when it can.
    fn degraded_reason(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.connectivity_lost {
            parts.push("connectivity between TWS and IB lost (1100)".to_string());
        }
        for (farm, name) in &self.broken_farms {
            parts.push(format!("{} farm {name} broken", farm.as_str()));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// `Degraded` or `Restored` when the health changed (only once live:
    /// before that, `subscribe` reports the state it finds).
    /// `announce` reports a restoration even when no `Degraded` preceded
    /// it (1101 / 1102 say so themselves; a farm OK at connect does not).
    fn health_change(&mut self, detail: &str, announce: bool, out: &mut Vec<Action>) {
        if self.phase != Phase::Live {
            return;
        }
        match self.degraded_reason() {
            Some(reason) => {
                self.degraded = true;
                out.push(Action::Degraded { reason });
            }
            None if self.degraded || announce => {
                self.degraded = false;
                out.push(Action::Restored {
                    detail: detail.to_string(),
                });
            }
            None => {}
        }
    }

    fn fail_protocol(e: impl std::fmt::Display) -> Vec<Action> {
        vec![Action::Fail(FeedError::protocol(e.to_string()))]
    }

    fn on_hello(&mut self, hello: ServerHello) -> Vec<Action> {
        let v = hello.server_version;
        if v < MIN_CLIENT_VERSION {
            return vec![Action::Fail(
                FeedError::config(remedy::server_too_old(v, MIN_CLIENT_VERSION))
                    .at(Layer::Handshake),
            )];
        }
        if v > MAX_CLIENT_VERSION {
            return vec![Action::Fail(
                FeedError::protocol(format!(
                    "TWS chose API server version {v}, above the {MIN_CLIENT_VERSION}..{MAX_CLIENT_VERSION} offered"
                ))
                .at(Layer::Handshake),
            )];
        }
        self.server_version = v;
        self.phase = Phase::Starting;
        let time = sanitize(&hello.connection_time);
        self.report.update(|f| {
            f.server_version = Some(v);
            f.connection_time = Some(time.clone());
        });
        vec![
            Action::LayerPassed {
                layer: Layer::Handshake,
                detail: format!("API server version {v}, connection time {time}"),
            },
            Action::Send(Outbound::Frame(codec::start_api(
                self.cfg.client_id,
                &self.cfg.optional_capabilities,
                v,
            ))),
        ]
    }

    fn maybe_ready(&mut self, out: &mut Vec<Action>) {
        if self.phase != Phase::Starting {
            return;
        }
        let (Some(accounts), Some(id)) = (&self.accounts, self.next_valid_id) else {
            return;
        };
        self.phase = Phase::Ready;
        let detail = format!(
            "client id {}, account(s) {}, next order id {id}",
            self.cfg.client_id,
            accounts.join(",")
        );
        self.report.update(|f| f.ready = true);
        out.push(Action::LayerPassed {
            layer: Layer::Auth,
            detail,
        });
        out.push(Action::Ready);
    }

    fn tick_data(
        &self,
        req_id: i64,
        kind: &str,
        tick_type: i64,
        extra: Map<String, Value>,
    ) -> Vec<Action> {
        let Some((_, c)) = self.contract_of(req_id) else {
            return Vec::new();
        };
        let mut m = Map::new();
        m.insert("type".into(), kind.into());
        m.insert("symbol".into(), c.symbol.clone().into());
        if !c.local_symbol.is_empty() {
            m.insert("local_symbol".into(), c.local_symbol.clone().into());
        }
        m.insert("req_id".into(), req_id.into());
        m.insert("tick_type".into(), tick_type.into());
        m.insert("tick".into(), ticks::name(tick_type).into());
        m.extend(extra);
        vec![Action::Data(Value::Object(m).to_string())]
    }

    fn on_error(&mut self, e: ErrorMsg) -> Vec<Action> {
        let message = sanitize(&e.message);
        let code = e.code;
        let ours = self.contract_of(e.req_id).map(|(i, c)| (i, c.clone()));
        let mut out = vec![tws_message_event(
            &e,
            &message,
            ours.as_ref().map(|(_, c)| c),
        )];
        let about = match &ours {
            Some((_, c)) => format!(" for {}", c.label()),
            None if e.req_id >= 0 => format!(" for request {}", e.req_id),
            None => String::new(),
        };
        let line = format!("TWS {code}{about}: {message}");
        match codes::kind(code) {
            CodeKind::ClientIdInUse => {
                let id = self.cfg.client_id;
                self.report.update(|f| f.client_id_rejected = true);
                out.push(Action::Fail(
                    FeedError::new(ErrorClass::GoingAway, remedy::client_id_in_use(id))
                        .at(Layer::Auth),
                ));
            }
            CodeKind::ConnectivityLost => {
                out.push(Action::Log {
                    level: log::Level::Warn,
                    message: line,
                });
                self.connectivity_lost = true;
                self.health_change("", false, &mut out);
            }
            CodeKind::RestoredDataLost => {
                out.push(Action::Log {
                    level: log::Level::Info,
                    message: line,
                });
                self.on_restored_data_lost(&mut out);
            }
            CodeKind::RestoredDataKept => {
                out.push(Action::Log {
                    level: log::Level::Info,
                    message: line,
                });
                self.connectivity_lost = false;
                self.health_change(
                    "connectivity between TWS and IB restored, data maintained (1102)",
                    true,
                    &mut out,
                );
            }
            CodeKind::SocketPortReset => {
                out.push(Action::Fail(FeedError::network(format!(
                    "TWS reset its API socket port and dropped the connection (1300): reconnecting; \
                     if TWS now listens on another port, set port to it ({message})"
                ))));
            }
            CodeKind::FarmBroken(farm) => {
                out.push(Action::Log {
                    level: log::Level::Warn,
                    message: line,
                });
                self.on_farm_broken(farm, &message, &mut out);
            }
            CodeKind::FarmOk(farm) => {
                out.push(Action::Log {
                    level: log::Level::Info,
                    message: line,
                });
                self.on_farm_ok(farm, code, &message, &mut out);
            }
            CodeKind::FarmInactive => out.push(Action::Log {
                level: log::Level::Info,
                message: line,
            }),
            CodeKind::Other => out.push(match ours {
                Some((i, c)) if refuses_market_data(code) => {
                    Action::Fail(market_data_refused(i, &c, code, &message).at(Layer::Data))
                }
                _ => Action::Log {
                    level: level_for(code),
                    message: line,
                },
            }),
        }
        out
    }

    /// TWS's clock: the answer to our keepalive, else a stray.
    fn on_current_time(&mut self, t: i64, out: &mut Vec<Action>) {
        if self.pings_outstanding > 0 {
            self.pings_outstanding -= 1;
            out.push(Action::Pong);
            if self.cfg.contracts.is_empty() {
                // Without market data the session's own answers are
                // all the liveness there is.
                out.push(Action::Heartbeat);
            }
        } else {
            out.push(Action::Log {
                level: log::Level::Debug,
                message: format!("TWS currentTime {t} without a request"),
            });
        }
    }

    /// 1101: TWS is back but dropped every subscription: request them again.
    fn on_restored_data_lost(&mut self, out: &mut Vec<Action>) {
        self.connectivity_lost = false;
        if self.phase == Phase::Live {
            out.extend(self.req_all());
            // Still due if a market data farm is down as well.
            self.farm_rerequest_due = self
                .broken_farms
                .iter()
                .any(|(f, _)| *f == Farm::MarketData);
        }
        let n = self.cfg.contracts.len();
        self.health_change(
            &format!("connectivity between TWS and IB restored, data lost (1101): {n} market data request(s) re-sent"),
            true,
            out,
        );
    }

    /// A farm went down (2103/2105/2157): remembered until its OK; a
    /// market data farm's return re-requests the data.
    fn on_farm_broken(&mut self, farm: Farm, message: &str, out: &mut Vec<Action>) {
        let name = codes::farm_name(message).unwrap_or("?").to_string();
        if farm == Farm::MarketData {
            self.farm_rerequest_due = true;
        }
        self.broken_farms.insert((farm, name));
        self.health_change("", false, out);
    }

    /// A farm is OK again (2104/2106/2158): forgotten, and once no market
    /// data farm is down, the data a broken one lost is requested again.
    fn on_farm_ok(&mut self, farm: Farm, code: i32, message: &str, out: &mut Vec<Action>) {
        let name = codes::farm_name(message).unwrap_or("?").to_string();
        let before = self.broken_farms.len();
        self.broken_farms.remove(&(farm, name.clone()));
        if self.broken_farms.len() == before {
            // TWS names farms with and without a site suffix
            // (usfarm / usfarm.nj): match on the base name.
            self.broken_farms
                .retain(|(f, n)| !(*f == farm && farm_base(n) == farm_base(&name)));
        }
        let market_data_ok = !self
            .broken_farms
            .iter()
            .any(|(f, _)| *f == Farm::MarketData);
        let mut detail = format!("{} farm {name} OK ({code})", farm.as_str());
        if market_data_ok && self.farm_rerequest_due && self.phase == Phase::Live {
            self.farm_rerequest_due = false;
            out.extend(self.cancel_all());
            out.extend(self.req_all());
            detail.push_str(&format!(
                ": {} market data request(s) re-sent",
                self.cfg.contracts.len()
            ));
        }
        self.health_change(&detail, false, out);
    }

    fn on_message(&mut self, msg: TwsMessage) -> Vec<Action> {
        let mut out = Vec::new();
        match msg {
            TwsMessage::ManagedAccounts(list) => {
                // The peer's text, on its way to logs and status.json:
                // each name cleaned and capped, and a bounded list.
                let list: Vec<String> = list
                    .iter()
                    .take(MAX_ACCOUNTS)
                    .map(|a| sanitize(a))
                    .collect();
                self.report.update(|f| f.accounts = list.clone());
                if !list.is_empty() {
                    self.accounts = Some(list);
                }
                self.maybe_ready(&mut out);
            }
            TwsMessage::NextValidId(id) => {
                self.next_valid_id = Some(id);
                self.report.update(|f| f.next_valid_id = Some(id));
                self.maybe_ready(&mut out);
            }
            TwsMessage::Error(e) => out = self.on_error(e),
            TwsMessage::CurrentTime(t) => self.on_current_time(t, &mut out),
            TwsMessage::TickPrice {
                req_id,
                tick_type,
                price,
                size,
                attrib,
            } => {
                // ib_async drops a tickPrice with an empty price too.
                let Some(price) = price else { return out };
                let m = tick_price_fields(price, size, attrib);
                out = self.tick_data(req_id, "tick_price", tick_type, m);
            }
            TwsMessage::TickSize {
                req_id,
                tick_type,
                size,
            } => {
                let mut m = Map::new();
                m.insert("size".into(), size.map_or(Value::Null, |s| json!(s)));
                out = self.tick_data(req_id, "tick_size", tick_type, m);
            }
            TwsMessage::TickString {
                req_id,
                tick_type,
                value,
            } => {
                let mut m = Map::new();
                m.insert("value".into(), value.into());
                out = self.tick_data(req_id, "tick_string", tick_type, m);
            }
            TwsMessage::TickGeneric {
                req_id,
                tick_type,
                value,
            } => {
                let mut m = Map::new();
                m.insert("value".into(), value.map_or(Value::Null, |v| json!(v)));
                out = self.tick_data(req_id, "tick_generic", tick_type, m);
            }
            TwsMessage::TickReqParams {
                req_id, min_tick, ..
            } => {
                if let Some((_, c)) = self.contract_of(req_id) {
                    let tick = min_tick.map_or("unknown".to_string(), |t| t.to_string());
                    out.push(Action::Subscribed {
                        detail: format!(
                            "market data for {} (request {req_id}), min tick {tick}",
                            c.label()
                        ),
                    });
                }
            }
            TwsMessage::MarketDataType { req_id, data_type } => {
                if let Some((_, c)) = self.contract_of(req_id) {
                    out.extend(market_data_type(c, req_id, data_type));
                }
            }
            TwsMessage::TickSnapshotEnd { .. } | TwsMessage::Other { .. } => {}
        }
        out
    }
}

impl ProtocolCore for TwsCore {
    fn open(&mut self, _now: Mono) -> Vec<Action> {
        vec![Action::Send(Outbound::Raw(codec::client_greeting(
            MIN_CLIENT_VERSION,
            MAX_CLIENT_VERSION,
            &self.cfg.connect_options,
        )))]
    }

    fn subscribe(&mut self, _now: Mono) -> Vec<Action> {
        self.phase = Phase::Live;
        let mut out = self.req_all();
        if self.cfg.contracts.is_empty() {
            out.push(Action::Log {
                level: log::Level::Info,
                message: "no contracts configured: holding and watching the API session only"
                    .into(),
            });
            // Without market data the session's own answer is the first
            // sign of life (`check`'s data layer, the stall timer): ask now
            // rather than a ping_every later.
            self.pings_outstanding = self.pings_outstanding.saturating_add(1);
            out.push(Action::Send(Outbound::Frame(codec::req_current_time())));
        }
        // A farm or IB's connectivity may already be down at connect time.
        self.farm_rerequest_due = false;
        if let Some(reason) = self.degraded_reason() {
            self.degraded = true;
            out.push(Action::Degraded { reason });
        }
        out
    }

    fn receive(&mut self, msg: Inbound<'_>, _now: Mono) -> Vec<Action> {
        let frame = match msg {
            Inbound::Frame(f) => f,
            Inbound::Pong => return Vec::new(),
            Inbound::Text(_) | Inbound::Binary(_) => {
                return Self::fail_protocol("a WebSocket message on a TWS API connection");
            }
        };
        if self.phase == Phase::Greeting {
            return match codec::decode_server_hello(frame) {
                Ok(Some(hello)) => self.on_hello(hello),
                Ok(None) => vec![Action::Log {
                    level: log::Level::Debug,
                    message: "TWS message before the server version, skipped".into(),
                }],
                Err(e) => Self::fail_protocol(e),
            };
        }
        match codec::decode(frame, self.server_version) {
            Ok(m) => self.on_message(m),
            Err(e) => Self::fail_protocol(e),
        }
    }

    fn not_ready(&self, waited: Duration) -> FeedError {
        let waited = crate::timefmt::human(waited);
        match self.phase {
            Phase::Greeting => FeedError::timeout(format!(
                "timeout (handshake): no answer to the API greeting within {waited}: {}",
                remedy::HANDSHAKE_UNANSWERED
            ))
            .at(Layer::Handshake),
            _ => {
                let missing = match (&self.accounts, self.next_valid_id) {
                    (None, None) => "managedAccounts and nextValidId",
                    (None, Some(_)) => "managedAccounts",
                    _ => "nextValidId",
                };
                FeedError::timeout(format!(
                    "timeout (auth): no {missing} within {waited} of START_API (client id {}): {}",
                    self.cfg.client_id,
                    remedy::SESSION_NOT_READY
                ))
                .at(Layer::Auth)
            }
        }
    }

    fn has_keepalive(&self) -> bool {
        true
    }

    fn keepalive(&mut self, _now: Mono) -> Vec<Action> {
        if !matches!(self.phase, Phase::Ready | Phase::Live) {
            return Vec::new();
        }
        self.pings_outstanding = self.pings_outstanding.saturating_add(1);
        vec![Action::Send(Outbound::Frame(codec::req_current_time()))]
    }

    fn closing(&mut self) -> Vec<Action> {
        if self.phase == Phase::Live {
            self.cancel_all()
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
