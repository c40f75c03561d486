//! The Kite ticker adapter: a WebSocket to `ticker_url(url, api_key,
//! access_token)` with `X-Kite-Version: 3`, a fresh [`TickerCore`] per
//! connection driven by the engine's session driver, and what must outlive
//! one connection: the ticker counters, and the [`TokenWatch`] that times
//! the access token and raises `token_expiring` (ticked by the feed thread
//! whatever the feed's state).
//!
//! A refused upgrade reaches us as `NetError::HttpStatus`; the adapter
//! sees it in the transport's result and replaces the generic error with
//! Kite's meaning ([`classify_upgrade`]): 403 is a dead token (auth: the
//! feed parks and waits for a new one, `alert=credential_rejected`), 429
//! means the key's connections are taken (`alert=connection_limit`, a long
//! wait, never a tight loop).

use super::core::{TickerConfig, TickerCore, TickerCounters, TickerCounts, classify_upgrade};
use super::records;
use super::watch::TokenWatch;
use crate::clock::{Clock, Mono};
use crate::feed::{
    Action, Adapter, ConnectProgress, ErrorClass, FeedError, Layer, Session, session,
};
use crate::net::NetError;
use crate::net::ws::{self, WsOptions};
use crate::secret::Secret;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

/// The header pykiteconnect sends with the upgrade (and every REST call).
pub const VERSION_HEADER: (&str, &str) = ("X-Kite-Version", super::rest::KITE_VERSION);
/// While a token's issue time is unknown, the state folder is looked at
/// this often for a record written by `kite-login` or a REST check.
const RECORD_LOOK_EVERY: Duration = Duration::from_secs(5);

/// The counters of feed `name`, the same for every adapter the feed gets
/// (one per credential change), so its counts cover the agent's life.
fn counters_of(name: &str) -> Arc<TickerCounters> {
    static ALL: OnceLock<Mutex<HashMap<String, Arc<TickerCounters>>>> = OnceLock::new();
    ALL.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(name.to_string())
        .or_default()
        .clone()
}

/// Connects one Kite ticker feed.
pub struct KiteAdapter {
    /// `ws(s)://…?api_key=…&access_token=…`: only ever shown redacted.
    url: Secret,
    opts: WsOptions,
    cfg: Arc<TickerConfig>,
    counters: Arc<TickerCounters>,
    clock: Arc<dyn Clock>,
    state_dir: PathBuf,
    watch: TokenWatch,
    /// The counters as last published to status.
    published: TickerCounts,
    record_looked: Option<Mono>,
}

impl KiteAdapter {
    pub fn new(
        url: Secret,
        mut opts: WsOptions,
        cfg: TickerConfig,
        clock: Arc<dyn Clock>,
        state_dir: PathBuf,
        watch: TokenWatch,
    ) -> Self {
        opts.headers
            .push((VERSION_HEADER.0.to_string(), VERSION_HEADER.1.to_string()));
        KiteAdapter {
            url,
            opts,
            counters: counters_of(&cfg.feed),
            cfg: Arc::new(cfg),
            clock,
            state_dir,
            watch,
            published: TickerCounts::default(),
            record_looked: None,
        }
    }

    /// The ticker's counters (frames, ticks, drops) across connections and
    /// credential changes.
    pub fn counters(&self) -> Arc<TickerCounters> {
        self.counters.clone()
    }

    fn save_record(&self, rec: &records::IssueRecord, now: SystemTime) {
        if let Err(e) = records::save(&self.state_dir, rec, now) {
            log::warn!(
                "feed={}: cannot record when access token {} was first seen working ({e}); \
                 its expiry is still known until the agent restarts",
                self.cfg.feed,
                rec.fingerprint
            );
        }
    }

    /// Counters worth an operator's eye, as notes when they change.
    fn counter_notes(&mut self) -> Vec<Action> {
        let now = self.counters.snapshot();
        let mut out = Vec::new();
        if now.frames_dropped != self.published.frames_dropped {
            out.push(Action::Note {
                key: "frames_dropped",
                value: now.frames_dropped.to_string(),
            });
        }
        if now.texts_dropped != self.published.texts_dropped {
            out.push(Action::Note {
                key: "texts_dropped",
                value: now.texts_dropped.to_string(),
            });
        }
        self.published = now;
        out
    }
}

impl Adapter for KiteAdapter {
    fn connect(
        &mut self,
        progress: &mut dyn ConnectProgress,
    ) -> Result<Box<dyn Session>, FeedError> {
        let core = TickerCore::new(self.cfg.clone(), self.counters.clone());
        let mut refused: Option<u16> = None;
        let (url, opts) = (&self.url, &self.opts);
        let result = session::connect(
            Box::new(core),
            self.clock.clone(),
            self.opts.handshake_timeout,
            progress,
            |observe| {
                let r = ws::connect_observed(url.expose(), opts, observe);
                if let Err(NetError::HttpStatus { status }) = &r {
                    refused = Some(*status);
                }
                r
            },
        );
        let now = self.clock.wall();
        match result {
            Ok(s) => {
                if let Some(rec) = self.watch.worked(now) {
                    self.save_record(&rec, now);
                }
                for (key, value) in self.watch.facts(now) {
                    progress.note(key, &value);
                }
                Ok(s)
            }
            Err(e) => {
                let Some(status) = refused else {
                    return Err(e);
                };
                let refusal = classify_upgrade(status, None, &self.cfg.feed, &self.cfg.account);
                if refusal.error.class == ErrorClass::Auth {
                    // The ticker did answer the upgrade: it refused the credentials.
                    progress.layer_passed(
                        Layer::Handshake,
                        &format!("the ticker answered the WebSocket upgrade (HTTP {status})"),
                    );
                    self.watch.rejected(now);
                    for (key, value) in self.watch.facts(now) {
                        progress.note(key, &value);
                    }
                }
                if let Some(a) = &refusal.alert {
                    a.emit();
                }
                Err(refusal.error)
            }
        }
    }

    fn has_ping(&self) -> bool {
        true
    }

    fn tick(&mut self, now: SystemTime) -> Vec<Action> {
        if self.watch.needs_issue_time() {
            let mono = self.clock.mono();
            if self
                .record_looked
                .is_none_or(|at| mono.since(at) >= RECORD_LOOK_EVERY)
            {
                self.record_looked = Some(mono);
                if let Some(rec) = self
                    .watch
                    .fingerprint()
                    .and_then(|fp| records::load_fingerprint(&self.state_dir, fp))
                {
                    self.watch.learn((&rec).into());
                }
            }
        }
        let mut out = self.watch.tick(now);
        out.extend(self.counter_notes());
        out
    }
}
