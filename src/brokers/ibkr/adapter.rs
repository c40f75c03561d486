//! The IBKR adapter: framed TCP to TWS / IB Gateway
//! (`net::framed::connect_observed`) driven by a fresh [`TwsCore`] per
//! connection through the engine's session driver.
//!
//! What outlives one connection lives here: the client id to use. When
//! TWS refuses it with 326 the next id of `client_id_range` is tried at
//! once, on a new connection within the same attempt; with no other id
//! (or every id refused in a row) the attempt ends with the core's
//! going-away error, which the engine answers with a short randomized
//! delay. Once a session is up, the id in use, the server version and the
//! accounts go to `status` as notes (`feeds[].info`).
//!
//! Errors leave here with the remedy an operator needs in their own text
//! (status and the journal show the message, `check` too): a refused TCP
//! connect names the TWS/Gateway ports, and a connection that ended before
//! TWS answered the greeting is a handshake failure, not an auth one.

use super::contract::Contract;
use super::core::{TwsCore, TwsCoreConfig};
use super::remedy;
use super::settings::ClientIds;
use crate::clock::Clock;
use crate::feed::{Adapter, ConnectProgress, FeedError, Layer, Session, session};
use crate::net::NetError;
use crate::net::framed::{self, FramedOptions};
use std::sync::Arc;
use std::time::Duration;

/// The `feeds[].info` keys an IBKR feed reports.
pub const NOTE_CLIENT_ID: &str = "client_id";
pub const NOTE_SERVER_VERSION: &str = "server_version";
pub const NOTE_ACCOUNTS: &str = "accounts";

/// Connections to one TWS / IB Gateway.
pub struct IbkrAdapter {
    /// The feed's name, for log lines.
    pub(super) feed: String,
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) ids: ClientIds,
    pub(super) contracts: Vec<Contract>,
    pub(super) opts: FramedOptions,
    pub(super) clock: Arc<dyn Clock>,
    /// The id the next connection starts with: the last one TWS accepted,
    /// or the next after the last one it refused.
    pub(super) client_id: i32,
    /// 326s in a row since the last session that came up.
    pub(super) refused_in_a_row: u32,
}

impl IbkrAdapter {
    pub fn new(
        feed: String,
        host: String,
        port: u16,
        ids: ClientIds,
        contracts: Vec<Contract>,
        opts: FramedOptions,
        clock: Arc<dyn Clock>,
    ) -> Self {
        IbkrAdapter {
            feed,
            host,
            port,
            client_id: ids.first,
            ids,
            contracts,
            opts,
            clock,
            refused_in_a_row: 0,
        }
    }

    /// The client id the next connection uses.
    pub fn client_id(&self) -> i32 {
        self.client_id
    }

    /// One connection with client id `id`; also whether TWS refused it
    /// with 326.
    fn connect_once(
        &mut self,
        id: i32,
        progress: &mut dyn ConnectProgress,
    ) -> (Result<Box<dyn Session>, FeedError>, bool) {
        let core = TwsCore::new(TwsCoreConfig::new(id, self.contracts.clone()));
        let report = core.report();
        let mut refused: Option<String> = None;
        let (host, port, opts) = (&self.host, self.port, &self.opts);
        let result = session::connect(
            Box::new(core),
            self.clock.clone(),
            self.opts.handshake_timeout,
            progress,
            |observe| {
                let r = framed::connect_observed(host, port, opts, observe);
                if let Err(NetError::Connect { addr, source }) = &r {
                    if source.kind() == std::io::ErrorKind::ConnectionRefused {
                        refused = Some(format!("cannot connect to {addr}: {source}"));
                    }
                }
                r
            },
        );
        let facts = report.facts();
        let result = match result {
            Ok(s) => {
                progress.note(NOTE_CLIENT_ID, &id.to_string());
                if let Some(v) = facts.server_version {
                    progress.note(NOTE_SERVER_VERSION, &v.to_string());
                }
                progress.note(NOTE_ACCOUNTS, &facts.accounts.join(","));
                Ok(s)
            }
            Err(mut e) => {
                if let Some(what) = refused {
                    e.message = format!("{what}: {}", remedy::tcp_refused(&self.host, self.port));
                } else if e.layer == Some(Layer::Auth) && facts.server_version.is_none() {
                    // The socket ended before TWS answered the greeting.
                    e.message = format!("{}: {}", e.message, remedy::HANDSHAKE_UNANSWERED);
                    e.layer = Some(Layer::Handshake);
                }
                Err(e)
            }
        };
        (result, facts.client_id_rejected)
    }
}

impl Adapter for IbkrAdapter {
    fn connect(
        &mut self,
        progress: &mut dyn ConnectProgress,
    ) -> Result<Box<dyn Session>, FeedError> {
        loop {
            let id = self.client_id;
            let (result, rejected) = self.connect_once(id, progress);
            if !rejected {
                if result.is_ok() {
                    self.refused_in_a_row = 0;
                }
                return result;
            }
            self.refused_in_a_row = self.refused_in_a_row.saturating_add(1);
            match self.ids.next_after(id, self.refused_in_a_row) {
                Some(next) => {
                    log::warn!(
                        "feed={} TWS refused client id {id} (326, in use): trying client id {next} of client_id_range",
                        self.feed
                    );
                    self.client_id = next;
                }
                None => {
                    let mut e = result.err().unwrap_or_else(|| {
                        FeedError::protocol("TWS refused the client id (326)").at(Layer::Auth)
                    });
                    if let Some((a, b)) = self.ids.range.filter(|(a, b)| a != b) {
                        e.message = remedy::client_ids_exhausted(a, b);
                        // The next attempt goes round the range again.
                        self.client_id = self.ids.next_after(id, 0).unwrap_or(id);
                    }
                    self.refused_in_a_row = 0;
                    return Err(e);
                }
            }
        }
    }

    fn has_ping(&self) -> bool {
        // reqCurrentTime, answered by currentTime.
        true
    }
}

/// The framed transport's options from a feed's common keys.
pub fn framed_options(
    connect_timeout: Duration,
    handshake_timeout: Duration,
    write_timeout: Duration,
    max_message_bytes: usize,
) -> FramedOptions {
    FramedOptions {
        connect_timeout,
        handshake_timeout,
        write_timeout,
        read_tick: crate::feed::runner::TICK,
        max_frame_bytes: max_message_bytes,
    }
}
