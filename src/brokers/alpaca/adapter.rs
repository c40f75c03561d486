//! Connects an Alpaca feed: a WebSocket to the stream's endpoint (the
//! feed's `url`, else Alpaca's for the stream), a fresh core per
//! connection — [`AlpacaCore`] for market data, [`UpdatesCore`] for trade
//! updates — driven by the engine's session driver
//! (`brokers::connect_ws`). What outlives a connection is the feed's
//! [`FeedMemory`]: how many 406s came in a row, which lengthens the wait.
//!
//! Authentication is the auth message (not handshake headers): headers
//! would sit in the transport's options, which are not secrets.

use super::core::{AlpacaCore, FeedMemory, Identity, Keepalive};
use super::settings::Plan;
use super::updates::UpdatesCore;
use crate::clock::Clock;
use crate::feed::{Adapter, ConnectProgress, FeedError, ProtocolCore, Session};
use crate::net::ws::{self, WsOptions};
use std::sync::Arc;
use std::time::Duration;

pub struct AlpacaAdapter {
    pub(super) url: String,
    pub(super) opts: WsOptions,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) plan: Arc<Plan>,
    pub(super) who: Arc<Identity>,
    pub(super) memory: Arc<FeedMemory>,
    pub(super) ping_every: Duration,
    pub(super) pong_timeout: Duration,
}

impl AlpacaAdapter {
    fn core(&self) -> Box<dyn ProtocolCore> {
        let keepalive = Keepalive::new(self.ping_every, self.pong_timeout);
        if self.plan.stream.is_market_data() {
            Box::new(AlpacaCore::new(
                self.who.clone(),
                self.plan.clone(),
                self.memory.clone(),
                keepalive,
                ws::READ_BUFFER_BYTES,
                self.opts.max_message_bytes,
            ))
        } else {
            Box::new(UpdatesCore::new(
                self.who.clone(),
                self.plan.paper,
                keepalive,
            ))
        }
    }
}

impl Adapter for AlpacaAdapter {
    fn connect(
        &mut self,
        progress: &mut dyn ConnectProgress,
    ) -> Result<Box<dyn Session>, FeedError> {
        super::super::connect_ws(
            self.core(),
            self.clock.clone(),
            &self.url,
            &self.opts,
            progress,
        )
    }

    fn has_ping(&self) -> bool {
        // The core pings on Alpaca's own cadence (10 s, pong within 5 s).
        false
    }
}
