//! One simulated TWS connection, in its own thread: the `API\0` greeting
//! and version reply, START_API (or 326), the session's requests, tick
//! rounds, and the codes a test sends. The thread looks at the stop flag
//! and its commands at least every tick.

use super::fault::TwsFault;
use super::server::{Cmd, Shared};
use super::stats::MktDataRequest;
use super::wire::{Inbox, fields, message, version_range};
use crate::sim::shared::Host;
use crate::sim::shared::net::{Live, WRITE_TIMEOUT, is_timeout, setup};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The texts TWS sends with the codes a test can ask for.
fn code_text(code: i32) -> &'static str {
    match code {
        326 => {
            "Unable to connect as the client id is already in use. Retry with a unique client id."
        }
        1100 => "Connectivity between IB and Trader Workstation has been lost.",
        1101 => "Connectivity between IB and Trader Workstation has been restored - data lost.",
        1102 => {
            "Connectivity between IB and Trader Workstation has been restored - data maintained."
        }
        1300 => {
            "TWS socket port has been reset and this connection is being dropped. Please reconnect on the new port - 7497"
        }
        2103 => "Market data farm connection is broken:usfarm",
        2104 => "Market data farm connection is OK:usfarm",
        2105 => "HMDS data farm connection is broken:ushmds",
        2106 => "HMDS data farm connection is OK:ushmds",
        2157 => "Sec-def data farm connection is broken:secdefnj",
        2158 => "Sec-def data farm connection is OK:secdefnj",
        200 => "No security definition has been found for the request",
        322 => "Error processing request.-'bW' : cause - Duplicate ticker id",
        _ => "Simulated TWS message",
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Waiting for `API\0`.
    Api,
    /// Waiting for the `v<min>..<max>` frame.
    Greeting,
    /// Version sent; waiting for START_API.
    Start,
    /// Reading and answering nothing (a mute TWS, or one still logging in).
    Silent,
    /// managedAccounts and nextValidId sent: the API session.
    Session,
    /// 326 sent; the socket closes at this instant.
    Closing(Instant),
}

struct Sub {
    symbol: String,
    round: u64,
}

struct Conn {
    shared: Arc<Shared>,
    id: usize,
    tcp: TcpStream,
    inbox: Inbox,
    stage: Stage,
    version: u32,
    client_id: Option<i64>,
    subs: BTreeMap<i64, Sub>,
    /// 1100 until 1101/1102: no ticks.
    connectivity_lost: bool,
    /// 2103 until 2104: no ticks.
    farm_broken: bool,
    next_round: Instant,
}

/// Why the connection ends.
struct End;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// TWS's connection time, e.g. `20260105 10:00:00 UTC`.
fn connection_time() -> String {
    let t = crate::timefmt::rfc3339(SystemTime::now());
    // 2026-01-05T10:00:00Z
    let date: String = t.get(..10).unwrap_or("").replace('-', "");
    let time = t.get(11..19).unwrap_or("00:00:00");
    format!("{date} {time} UTC")
}

/// IB's contract ids of the default symbols; others get a made-up one.
fn con_id_of(symbol: &str) -> i64 {
    match symbol {
        "AAPL" => 265598,
        "MSFT" => 272093,
        "SPY" => 756733,
        "IBM" => 8314,
        "TSLA" => 76792991,
        "NVDA" => 4815747,
        "AMZN" => 3691937,
        "QQQ" => 320227571,
        other => {
            900_000_000
                + other
                    .bytes()
                    .fold(0i64, |h, b| (h * 31 + i64::from(b)) % 99_999_989)
        }
    }
}

/// A price that moves a little with every round, from a base per symbol.
fn price(symbol: &str, round: u64, offset: f64) -> String {
    let base = 100 + symbol.bytes().map(u64::from).sum::<u64>() % 200;
    let cents = (round * 7) % 50;
    format!("{:.2}", base as f64 + cents as f64 / 100.0 + offset)
}

pub(crate) fn serve(
    shared: Arc<Shared>,
    id: usize,
    tcp: TcpStream,
    cmds: Receiver<(Cmd, Sender<()>)>,
) {
    let _live = Live::new(shared.clone(), id, "conn");
    if setup(&tcp, WRITE_TIMEOUT).is_err() {
        return;
    }
    let mut conn = Conn {
        shared,
        id,
        tcp,
        inbox: Inbox::default(),
        stage: Stage::Api,
        version: 0,
        client_id: None,
        subs: BTreeMap::new(),
        connectivity_lost: false,
        farm_broken: false,
        next_round: Instant::now(),
    };
    while conn.turn(&cmds).is_ok() {}
    let _ = conn.tcp.shutdown(Shutdown::Both);
}

impl Conn {
    fn turn(&mut self, cmds: &Receiver<(Cmd, Sender<()>)>) -> Result<(), End> {
        if self.shared.stopping() {
            return Err(End);
        }
        loop {
            match cmds.try_recv() {
                Ok((cmd, ack)) => {
                    let r = self.command(cmd);
                    let _ = ack.send(());
                    r?;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Err(End),
            }
        }
        if let Stage::Closing(at) = self.stage {
            if Instant::now() >= at {
                self.shared
                    .event(format!("conn {}: closed after 326", self.id));
                return Err(End);
            }
        }
        if self.stage == Stage::Session {
            self.tick_rounds()?;
        }
        self.read()
    }

    fn command(&mut self, cmd: Cmd) -> Result<(), End> {
        match cmd {
            Cmd::Sync => {
                if self.shared.faults.current().0 == Some(TwsFault::RefuseConnections) {
                    // TWS was closed: the socket just goes away.
                    return Err(End);
                }
                Ok(())
            }
            Cmd::Notify(code) => {
                if self.stage != Stage::Session {
                    return Ok(());
                }
                match code {
                    1100 => self.connectivity_lost = true,
                    1101 => {
                        self.connectivity_lost = false;
                        // Data lost: the client must request it again.
                        self.subs.clear();
                    }
                    1102 => self.connectivity_lost = false,
                    2103 => self.farm_broken = true,
                    2104 => self.farm_broken = false,
                    _ => {}
                }
                self.error(-1, code, code_text(code))?;
                if code == 1300 {
                    let _ = self.tcp.flush();
                    return Err(End);
                }
                Ok(())
            }
        }
    }

    fn send<S: AsRef<str>>(&mut self, fields: &[S]) -> Result<(), End> {
        self.tcp.write_all(&message(fields)).map_err(|e| {
            self.shared
                .event(format!("conn {}: write failed: {e}", self.id));
            End
        })
    }

    /// An error message in the layout of the negotiated version.
    fn error(&mut self, req_id: i64, code: i32, text: &str) -> Result<(), End> {
        let (r, c) = (req_id.to_string(), code.to_string());
        let v = self.version;
        let msg: Vec<String> = if v >= 194 {
            let ms = (unix_now() * 1000).to_string();
            vec!["4".into(), r, c, text.into(), String::new(), ms]
        } else if v >= 166 {
            vec!["4".into(), "2".into(), r, c, text.into(), String::new()]
        } else {
            vec!["4".into(), "2".into(), r, c, text.into()]
        };
        self.send(&msg)?;
        self.shared
            .stats
            .update(|s| s.errors_sent.push((req_id, code)));
        Ok(())
    }

    fn read(&mut self) -> Result<(), End> {
        let mut buf = [0u8; 8192];
        match self.tcp.read(&mut buf) {
            Ok(0) => {
                self.shared
                    .event(format!("conn {}: closed by the client", self.id));
                return Err(End);
            }
            Ok(n) => self.inbox.push(&buf[..n]),
            Err(e) if is_timeout(&e) => return Ok(()),
            Err(_) => return Err(End),
        }
        loop {
            if self.stage == Stage::Api {
                match self.inbox.take_api_prefix() {
                    Ok(true) => self.stage = Stage::Greeting,
                    Ok(false) => return Ok(()),
                    Err(e) => {
                        self.shared.event(format!("conn {}: {}", self.id, e.0));
                        return Err(End);
                    }
                }
            }
            let frame = match self.inbox.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.shared.event(format!("conn {}: {}", self.id, e.0));
                    return Err(End);
                }
            };
            self.on_frame(&frame)?;
        }
    }

    fn on_frame(&mut self, frame: &[u8]) -> Result<(), End> {
        match self.stage {
            Stage::Api => Ok(()),
            Stage::Greeting => self.on_greeting(frame),
            Stage::Silent | Stage::Closing(_) => {
                self.shared.stats.update(|s| s.client_messages += 1);
                Ok(())
            }
            Stage::Start | Stage::Session => {
                self.shared.stats.update(|s| s.client_messages += 1);
                let f = fields(frame);
                self.on_request(&f)
            }
        }
    }

    fn on_greeting(&mut self, frame: &[u8]) -> Result<(), End> {
        let text = String::from_utf8_lossy(frame).into_owned();
        self.shared.stats.update(|s| s.greetings.push(text.clone()));
        if self.shared.faults.current().0 == Some(TwsFault::NoGreetingReply) {
            self.shared
                .event(format!("conn {}: greeting {text} left unanswered", self.id));
            self.stage = Stage::Silent;
            return Ok(());
        }
        let Some((min, max)) = version_range(&text) else {
            self.shared
                .event(format!("conn {}: bad greeting {text:?}", self.id));
            return Err(End);
        };
        let version = max.min(self.shared.cfg.server_version);
        if version < min {
            self.shared.event(format!(
                "conn {}: client needs {min}..{max}, simulator speaks up to {}",
                self.id, self.shared.cfg.server_version
            ));
            return Err(End);
        }
        self.version = version;
        self.send(&[version.to_string(), connection_time()])?;
        self.stage = Stage::Start;
        self.shared.stats.update(|s| s.handshakes_answered += 1);
        self.shared.event(format!(
            "conn {}: greeting {text}, server version {version}",
            self.id
        ));
        Ok(())
    }

    fn on_request(&mut self, f: &[String]) -> Result<(), End> {
        let id = f.first().map(String::as_str).unwrap_or("");
        let field = |i: usize| f.get(i).map(String::as_str).unwrap_or("");
        if self.stage == Stage::Start {
            if id == "71" {
                return self.on_start_api(field(2));
            }
            return Ok(());
        }
        match id {
            "49" => {
                self.shared.stats.update(|s| s.current_time_requests += 1);
                if self.shared.faults.current().0 == Some(TwsFault::NoCurrentTime) {
                    return Ok(());
                }
                self.send(&["49".to_string(), "1".into(), unix_now().to_string()])?;
                self.shared.stats.update(|s| s.current_time_answered += 1);
                Ok(())
            }
            "1" => self.on_req_mkt_data(f),
            "2" => {
                let req_id: i64 = field(2).parse().unwrap_or(-1);
                self.subs.remove(&req_id);
                self.shared.stats.update(|s| s.mkt_data_cancels += 1);
                self.shared
                    .event(format!("conn {}: cancelMktData {req_id}", self.id));
                Ok(())
            }
            // The requests ib_async's IB.connect() makes: each gets its end marker.
            "61" => self.send(&["62", "1"]),
            "5" => self.send(&["53", "1"]),
            "99" => self.send(&["102"]),
            "6" => {
                let account = field(3).to_string();
                if field(2) == "1" {
                    self.send(&["54".to_string(), "1".into(), account])?;
                }
                Ok(())
            }
            "76" => self.send(&["74".to_string(), "1".into(), field(2).to_string()]),
            "7" => self.send(&["55".to_string(), "1".into(), field(2).to_string()]),
            "8" => {
                let next = self.shared.cfg.next_valid_id.to_string();
                self.send(&["9".to_string(), "1".into(), next])
            }
            "9" => self.on_req_contract_details(f),
            _ => Ok(()),
        }
    }

    fn known(&self, symbol: &str, con_id: i64) -> bool {
        self.shared
            .cfg
            .known_symbols
            .iter()
            .any(|k| k == symbol || (con_id != 0 && con_id_of(k) == con_id))
    }

    /// reqContractDetails ([9, 8, reqId, conId, symbol, secType, ...,
    /// exchange (10), primaryExchange, currency (12), ...]) → one
    /// contractDetails in the server-version-164+ layout (the fields
    /// ib_async reads, without the later fund fields) and its end marker;
    /// an unknown symbol → 200.
    fn on_req_contract_details(&mut self, f: &[String]) -> Result<(), End> {
        let field = |i: usize| f.get(i).cloned().unwrap_or_default();
        let req_id: i64 = field(2).parse().unwrap_or(-1);
        let (symbol, con_id) = (field(4), field(3).parse().unwrap_or(0));
        if !self.known(&symbol, con_id) {
            return self.error(req_id, 200, code_text(200));
        }
        let symbol = if symbol.is_empty() {
            self.shared
                .cfg
                .known_symbols
                .iter()
                .find(|k| con_id_of(k) == con_id)
                .cloned()
                .unwrap_or_default()
        } else {
            symbol
        };
        let exchange = if field(10).is_empty() {
            "SMART".into()
        } else {
            field(10)
        };
        let currency = if field(12).is_empty() {
            "USD".into()
        } else {
            field(12)
        };
        let r = req_id.to_string();
        let details: Vec<String> = vec![
            "10".into(),
            r.clone(),
            symbol.clone(),
            "STK".into(),
            String::new(), // lastTradeDate
            "0".into(),    // strike
            String::new(), // right
            exchange,
            currency,
            symbol.clone(), // localSymbol
            "NMS".into(),   // marketName
            "NMS".into(),   // tradingClass
            con_id_of(&symbol).to_string(),
            "0.01".into(),        // minTick
            String::new(),        // multiplier
            "LMT,MKT,STP".into(), // orderTypes
            "SMART,NASDAQ,NYSE".into(),
            "1".into(), // priceMagnifier
            "0".into(), // underConId
            format!("{symbol} SIMULATED INC"),
            "NASDAQ".into(), // primaryExchange
            String::new(),   // contractMonth
            "Technology".into(),
            "Computers".into(),
            "Computers".into(),
            "US/Eastern".into(),
            "20260105:0400-20260105:2000".into(),
            "20260105:0930-20260105:1600".into(),
            String::new(),     // evRule
            String::new(),     // evMultiplier
            "0".into(),        // secIdList count
            "1".into(),        // aggGroup
            String::new(),     // underSymbol
            String::new(),     // underSecType
            "26,26,26".into(), // marketRuleIds
            String::new(),     // realExpirationDate
            "COMMON".into(),   // stockType
            "1".into(),        // minSize
            "1".into(),        // sizeIncrement
            "100".into(),      // suggestedSizeIncrement
        ];
        self.send(&details)?;
        self.send(&["52".to_string(), "1".into(), r])
    }

    fn on_start_api(&mut self, client_id: &str) -> Result<(), End> {
        let Ok(client_id) = client_id.parse::<i64>() else {
            self.shared
                .event(format!("conn {}: START_API without a client id", self.id));
            return Err(End);
        };
        self.shared
            .stats
            .update(|s| s.client_ids_seen.push(client_id));
        if !self.shared.claim_client_id(client_id, self.id) {
            self.error(-1, 326, code_text(326))?;
            self.shared
                .stats
                .update(|s| s.client_ids_rejected.push(client_id));
            self.shared.event(format!(
                "conn {}: client id {client_id} in use: 326",
                self.id
            ));
            self.stage = Stage::Closing(Instant::now() + self.shared.cfg.reject_close_after);
            return Ok(());
        }
        self.client_id = Some(client_id);
        if self.shared.faults.current().0 == Some(TwsFault::NoNextValidId) {
            self.shared.event(format!(
                "conn {}: START_API for client id {client_id} left unanswered",
                self.id
            ));
            self.stage = Stage::Silent;
            return Ok(());
        }
        let accounts = self.shared.cfg.accounts.join(",");
        self.send(&["15".to_string(), "1".into(), accounts])?;
        let next = self.shared.cfg.next_valid_id.to_string();
        self.send(&["9".to_string(), "1".into(), next])?;
        for code in [2104, 2106, 2158] {
            let text = match code {
                2104 => "Market data farm connection is OK:usfarm.nj",
                2106 => "HMDS data farm connection is OK:ushmds",
                _ => "Sec-def data farm connection is OK:secdefnj",
            };
            self.error(-1, code, text)?;
        }
        self.stage = Stage::Session;
        self.shared.stats.update(|s| s.sessions_ready += 1);
        self.shared
            .event(format!("conn {}: client id {client_id} ready", self.id));
        Ok(())
    }

    /// reqMktData, as ib_async lays it out: [1, 11, reqId, conId, symbol,
    /// secType, lastTradeDate, strike, right, multiplier, exchange,
    /// primaryExchange, currency, localSymbol, tradingClass, (BAG legs),
    /// deltaNeutral flag (+3), genericTickList, snapshot, regulatorySnapshot,
    /// mktDataOptions].
    fn on_req_mkt_data(&mut self, f: &[String]) -> Result<(), End> {
        let field = |i: usize| f.get(i).map(String::as_str).unwrap_or("");
        let req_id: i64 = field(2).parse().unwrap_or(-1);
        let mut next = 15;
        if field(5) == "BAG" {
            let legs: usize = field(next).parse().unwrap_or(0);
            next += 1 + 4 * legs.min(64);
        }
        if field(next) == "1" {
            next += 3;
        }
        next += 1;
        let req = MktDataRequest {
            req_id,
            con_id: field(3).parse().unwrap_or(0),
            symbol: field(4).to_string(),
            sec_type: field(5).to_string(),
            exchange: field(10).to_string(),
            primary_exchange: field(11).to_string(),
            currency: field(12).to_string(),
            generic_ticks: field(next).to_string(),
            snapshot: field(next + 1) == "1",
            field_count: f.len().saturating_sub(1),
        };
        let conn = self.id;
        self.shared.stats.update(|s| {
            if let Some(v) = s.mkt_data_requests_per_connection.get_mut(conn) {
                v.push(req.clone());
            }
        });
        self.shared.event(format!(
            "conn {}: reqMktData {req_id} {} {} {} {}",
            self.id, req.symbol, req.sec_type, req.exchange, req.currency
        ));
        if self.subs.contains_key(&req_id) {
            return self.error(req_id, 322, code_text(322));
        }
        if !self.known(&req.symbol, req.con_id) {
            return self.error(req_id, 200, code_text(200));
        }
        self.send(&[
            "81".to_string(),
            req_id.to_string(),
            "0.01".into(),
            "9c0001".into(),
            "3".into(),
        ])?;
        self.send(&["58".to_string(), "1".into(), req_id.to_string(), "1".into()])?;
        if req.snapshot {
            self.tick_round(req_id, &req.symbol, 0)?;
            return self.send(&["57".to_string(), "1".into(), req_id.to_string()]);
        }
        self.subs.insert(
            req_id,
            Sub {
                symbol: req.symbol,
                round: 0,
            },
        );
        // The first round goes out now, like TWS's initial snapshot of a stream.
        self.next_round = Instant::now();
        Ok(())
    }

    fn tick_rounds(&mut self) -> Result<(), End> {
        let now = Instant::now();
        if now < self.next_round || self.connectivity_lost || self.farm_broken {
            return Ok(());
        }
        self.next_round = now + self.shared.cfg.tick_every;
        let due: Vec<(i64, String, u64)> = self
            .subs
            .iter_mut()
            .map(|(id, s)| {
                s.round += 1;
                (*id, s.symbol.clone(), s.round)
            })
            .collect();
        for (req_id, symbol, round) in due {
            self.tick_round(req_id, &symbol, round)?;
        }
        Ok(())
    }

    /// bid, ask and last (tickPrice with size and attribute mask), volume
    /// (tickSize) and the last trade's time (tickString).
    fn tick_round(&mut self, req_id: i64, symbol: &str, round: u64) -> Result<(), End> {
        let r = req_id.to_string();
        let msgs: [Vec<String>; 5] = [
            vec![
                "1".into(),
                "6".into(),
                r.clone(),
                "1".into(),
                price(symbol, round, 0.0),
                "300".into(),
                "1".into(),
            ],
            vec![
                "1".into(),
                "6".into(),
                r.clone(),
                "2".into(),
                price(symbol, round, 0.02),
                "200".into(),
                "1".into(),
            ],
            vec![
                "1".into(),
                "6".into(),
                r.clone(),
                "4".into(),
                price(symbol, round, 0.01),
                "100".into(),
                "0".into(),
            ],
            vec![
                "2".into(),
                "6".into(),
                r.clone(),
                "8".into(),
                (10_000 + round * 100).to_string(),
            ],
            vec![
                "46".into(),
                "6".into(),
                r,
                "45".into(),
                unix_now().to_string(),
            ],
        ];
        for m in &msgs {
            self.send(m)?;
        }
        self.shared
            .stats
            .update(|s| s.ticks_sent += msgs.len() as u64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_plain_decimals_that_move() {
        assert_eq!(
            price("AAPL", 0, 0.0).split('.').nth(1).map(str::len),
            Some(2)
        );
        assert_ne!(price("AAPL", 1, 0.0), price("AAPL", 2, 0.0));
        let t = connection_time();
        assert_eq!(t.len(), "20260105 10:00:00 UTC".len(), "{t}");
    }
}
