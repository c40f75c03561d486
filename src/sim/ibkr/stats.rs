//! What the TWS simulator has seen and done; kept in a
//! [`Watched`](crate::sim::shared::Watched) cell, so a test waits for a
//! state ("two market data requests on connection 0") instead of sleeping.

/// One `reqMktData` as the simulator read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MktDataRequest {
    pub req_id: i64,
    pub con_id: i64,
    pub symbol: String,
    pub sec_type: String,
    pub exchange: String,
    pub primary_exchange: String,
    pub currency: String,
    pub generic_ticks: String,
    pub snapshot: bool,
    /// The request's fields after the message id, as sent.
    pub field_count: usize,
}

/// A snapshot of the simulator's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TwsStats {
    pub connections_accepted: u64,
    /// TCP connections open now.
    pub live_connections: u64,
    /// The version string of every greeting read (`v157..178`), in order.
    pub greetings: Vec<String>,
    /// Greetings answered with the server version.
    pub handshakes_answered: u64,
    /// Client ids of every START_API, in order.
    pub client_ids_seen: Vec<i64>,
    /// Client ids refused with 326, in order.
    pub client_ids_rejected: Vec<i64>,
    /// Sessions sent managedAccounts and nextValidId.
    pub sessions_ready: u64,
    /// Every reqMktData, indexed by connection number (0 = first accepted).
    pub mkt_data_requests_per_connection: Vec<Vec<MktDataRequest>>,
    pub mkt_data_cancels: u64,
    pub current_time_requests: u64,
    pub current_time_answered: u64,
    /// tickPrice, tickSize and tickString messages sent.
    pub ticks_sent: u64,
    /// (request id, code) of every error or notice sent, in order.
    pub errors_sent: Vec<(i64, i32)>,
    /// Framed messages received from clients (the greeting excluded).
    pub client_messages: u64,
}

impl TwsStats {
    /// Market data requests on connection `n` (0 when there is none).
    pub fn mkt_data_requests(&self, n: usize) -> usize {
        self.mkt_data_requests_per_connection
            .get(n)
            .map_or(0, Vec::len)
    }

    /// How many times `code` was sent.
    pub fn sent_code(&self, code: i32) -> usize {
        self.errors_sent.iter().filter(|(_, c)| *c == code).count()
    }
}
