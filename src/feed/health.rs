//! A feed's published health: written only by its own thread, read by the
//! watchdog, the status writer and the daemon.

use super::error::FeedError;
use super::outage::Outage;
use super::protocol::Layer;
use super::state::FeedState;
use crate::clock::Mono;
use std::sync::Mutex;
use std::time::SystemTime;

#[derive(Clone, Debug)]
pub struct HealthData {
    pub name: String,
    pub broker: String,
    pub state: FeedState,
    pub since_wall: SystemTime,
    pub since: Mono,
    /// Last data or heartbeat message.
    pub last_message: Option<Mono>,
    pub messages: u64,
    /// Connections that reached `live` after the first.
    pub reconnects: u64,
    /// Restarts ordered by the watchdog or the daemon.
    pub restarts: u64,
    /// Panics caught in the feed's thread (each restarted it).
    pub crashes: u64,
    pub consecutive_failures: u64,
    /// The last error, kept after the feed recovers (see `last_error_at`).
    pub last_error: Option<String>,
    /// When `last_error` happened (wall clock): a feed live since a later
    /// moment has recovered from it, and `status` shows it as past.
    pub last_error_at: Option<SystemTime>,
    /// In backoff/parked: when the next attempt starts.
    pub retry_at: Option<Mono>,
    /// Last time the thread showed it is not stuck.
    pub last_tick: Mono,
    /// While in a blocking phase: the latest moment it may return by.
    pub busy_until: Option<Mono>,
    /// Connection attempts started.
    pub attempts: u64,
    /// The outage under way (kept by the feed thread's
    /// `feed::outage::OutageTracker` and published as is): None while the
    /// feed delivers.
    pub outage: Option<Outage>,
    /// The last outage that ended.
    pub last_outage: Option<Outage>,
    /// Facts about the session its broker reports (client id, key set, ...).
    pub info: std::collections::BTreeMap<&'static str, String>,
    /// Short-lived connections within the flap window, while flapping.
    pub flapping: Option<usize>,
    /// The feed's market state, when it follows a calendar (None: 24/7).
    pub market: Option<crate::calendar::MarketState>,
}

/// What the first connection of a feed proved, layer by layer: in `run`
/// this is the preflight (no second session is opened to check).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FirstConnection {
    /// Layers that passed, in order, with what was found.
    pub passed: Vec<(Layer, String)>,
    /// The layer that failed and why.
    pub failed: Option<(Layer, FeedError)>,
    /// The first data or heartbeat arrived, or the connection failed:
    /// nothing more is added.
    pub done: bool,
}

impl FirstConnection {
    pub fn pass(&mut self, layer: Layer, detail: &str) {
        if !self.done {
            self.passed.push((layer, detail.to_string()));
        }
    }

    pub fn fail(&mut self, layer: Layer, error: &FeedError) {
        if !self.done {
            self.failed = Some((layer, error.clone()));
            self.done = true;
        }
    }

    pub fn data(&mut self, detail: &str) {
        if !self.done {
            self.passed.push((Layer::Data, detail.to_string()));
            self.done = true;
        }
    }
}

pub struct FeedHealth {
    data: Mutex<HealthData>,
}

impl FeedHealth {
    pub fn new(name: &str, broker: &str, now: Mono, wall: SystemTime) -> Self {
        FeedHealth {
            data: Mutex::new(HealthData {
                name: name.to_string(),
                broker: broker.to_string(),
                state: FeedState::Connecting,
                since_wall: wall,
                since: now,
                last_message: None,
                messages: 0,
                reconnects: 0,
                restarts: 0,
                crashes: 0,
                consecutive_failures: 0,
                last_error: None,
                last_error_at: None,
                retry_at: None,
                last_tick: now,
                busy_until: None,
                attempts: 0,
                outage: None,
                last_outage: None,
                info: Default::default(),
                market: None,
                flapping: None,
            }),
        }
    }

    pub fn snapshot(&self) -> HealthData {
        self.lock().clone()
    }

    pub fn update<R>(&self, f: impl FnOnce(&mut HealthData) -> R) -> R {
        f(&mut self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HealthData> {
        // A panic while holding this lock is a bug elsewhere; the data is
        // plain counters and stays usable.
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}
