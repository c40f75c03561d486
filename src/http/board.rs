//! What the listener shows, as main last published it: the status
//! document (the same one written to status.json, at the same moments:
//! every change and at least every second), what only the configuration
//! and credentials tell about each feed (its token's expiry, its broker's
//! login link), and the 24-hour timeline. Main publishes; the workers
//! only read, so a request never waits on a feed or on main's work.

use super::timeline::Timeline;
use crate::brokers::registry::LoginLink;
use crate::config::Config;
use crate::fanout::FanoutStats;
use crate::status::schema::StatusDoc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// What the registry says of one feed beyond its status (same order as
/// `doc.feeds`).
#[derive(Clone, Debug, Default)]
pub struct FeedExtra {
    /// The credentials the feed reads, by name.
    pub credentials: Vec<String>,
    /// A day token's credential and when it expires.
    pub token: Option<(String, SystemTime)>,
    /// Where its account's holder logs in (a broker with a browser login).
    pub login: Option<LoginLink>,
}

/// One publication by main.
#[derive(Clone, Debug)]
pub struct Published {
    pub doc: StatusDoc,
    pub extra: Vec<FeedExtra>,
    pub config: Arc<Config>,
}

/// Whether the agent's own threads are running, asked at each `/healthz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Liveness {
    /// Since the watchdog thread's last round; `None` before its first.
    pub watchdog_beat_age: Option<Duration>,
    /// Since main's last loop.
    pub main_tick_age: Duration,
    /// Main counts as stuck past this (the watchdog's own limit).
    pub main_stuck_after: Duration,
}

/// A source of a value the listener reads when asked.
pub type Probe<T> = Box<dyn Fn() -> T + Send + Sync>;

/// Shared by main (which publishes) and the listener's workers.
pub struct Board {
    latest: Mutex<Arc<Published>>,
    /// Main has published at least once (before: the agent is starting).
    published: AtomicBool,
    timeline: Mutex<Timeline>,
    liveness: Probe<Liveness>,
    fanout: Probe<FanoutStats>,
    /// When the process started (`process_start_time_seconds`).
    pub started_at: SystemTime,
}

impl Board {
    /// A board showing `first` until main publishes (which
    /// [`Board::is_published`] tells; `/readyz` says "starting" until then).
    pub fn new(
        first: Published,
        liveness: Probe<Liveness>,
        fanout: Probe<FanoutStats>,
        started_at: SystemTime,
    ) -> Board {
        Board {
            latest: Mutex::new(Arc::new(first)),
            published: AtomicBool::new(false),
            timeline: Mutex::new(Timeline::default()),
            liveness,
            fanout,
            started_at,
        }
    }

    /// Main: the newest state, and one more sample for the timeline.
    pub fn publish(&self, p: Published, wall: SystemTime) {
        self.timeline().record(&p.doc, wall);
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(p);
        self.published.store(true, Ordering::Release);
    }

    /// Whether main has published yet (else the agent is still starting).
    pub fn is_published(&self) -> bool {
        self.published.load(Ordering::Acquire)
    }

    /// The last publication (cheap: an `Arc`).
    pub fn latest(&self) -> Arc<Published> {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn timeline(&self) -> MutexGuard<'_, Timeline> {
        self.timeline.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn liveness(&self) -> Liveness {
        (self.liveness)()
    }

    pub fn fanout(&self) -> FanoutStats {
        (self.fanout)()
    }
}
