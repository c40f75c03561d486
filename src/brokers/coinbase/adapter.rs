//! Connects a Coinbase feed: a fresh [`CoinbaseCore`] per connection over
//! the WebSocket transport, with what outlives a connection kept here —
//! the JWT minter (a fresh JWT per subscribe message), the gap counters
//! shown in status, and the send budget every Coinbase connection of the
//! process shares (8 messages a second per IP).

use super::core::{CoinbaseCore, GapCounters, Pacer};
use super::jwt::{Minter, TokenSource};
use super::settings::{OnGap, Plan};
use crate::clock::Clock;
use crate::feed::{Adapter, ConnectProgress, FeedError, Session};
use crate::net::ws::WsOptions;
use std::sync::{Arc, OnceLock};

/// The process's one send budget for Coinbase connections.
fn pacer() -> Arc<Pacer> {
    static PACER: OnceLock<Arc<Pacer>> = OnceLock::new();
    PACER.get_or_init(|| Arc::new(Pacer::default())).clone()
}

pub struct CoinbaseAdapter {
    pub(super) feed: String,
    pub(super) url: String,
    pub(super) opts: WsOptions,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) plan: Plan,
    pub(super) on_gap: OnGap,
    /// The feed's key (a feed without `account` signs nothing).
    pub(super) minter: Option<Arc<Minter>>,
    pub(super) counters: Arc<GapCounters>,
}

impl Adapter for CoinbaseAdapter {
    fn connect(
        &mut self,
        progress: &mut dyn ConnectProgress,
    ) -> Result<Box<dyn Session>, FeedError> {
        let core = CoinbaseCore::new(
            &self.feed,
            self.plan.clone(),
            self.on_gap,
            self.minter.clone().map(|m| m as Arc<dyn TokenSource>),
            pacer(),
            self.counters.clone(),
        );
        crate::brokers::connect_ws(
            Box::new(core),
            self.clock.clone(),
            &self.url,
            &self.opts,
            progress,
        )
    }

    fn has_ping(&self) -> bool {
        false
    }
}
