//! The watchdog thread: once a second it reads every feed's health, carries
//! out the decisions of [`crate::feed::watchdog::Watchdog`], and tells
//! systemd `WATCHDOG=1` only while the main loop and every feed thread are
//! ticking, so a deadlocked agent gets killed and restarted. Between ticks
//! it waits on [`StopSignal`], not a sleep, so a stop never waits for a tick.

use super::feeds::FeedSet;
use crate::clock::{Clock, Mono};
use crate::feed::runner::FeedCommand;
use crate::feed::watchdog::{Action, WATCHDOG_TICK, Watchdog, WatchedFeed};
use crate::systemd::notify::Notifier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The main loop counts as stuck when it has not ticked for this long.
pub const MAIN_STUCK_AFTER: Duration = Duration::from_secs(5);

/// Shared between main and the watchdog thread.
pub struct WatchdogShared {
    pub feeds: FeedSet,
    pub clock: Arc<dyn Clock>,
    pub notifier: Option<Arc<Notifier>>,
    /// Half of WATCHDOG_USEC, when systemd asked for keep-alives.
    pub notify_every: Option<Duration>,
    /// Main loop's last tick, as monotonic milliseconds.
    pub main_tick_ms: AtomicU64,
    /// The watchdog thread's last round, as monotonic milliseconds plus
    /// one (0: no round yet): `/healthz` reads it.
    pub beat_ms: AtomicU64,
    pub alert_after: Mutex<Duration>,
    pub alert_repeat: Mutex<Duration>,
    pub stop: StopSignal,
}

/// A stop request the watchdog thread waits on between ticks.
#[derive(Debug, Default)]
pub struct StopSignal {
    requested: Mutex<bool>,
    changed: Condvar,
}

impl StopSignal {
    /// Asks the thread to end; it wakes at once.
    pub fn request(&self) {
        *self.requested.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.changed.notify_all();
    }

    pub fn is_requested(&self) -> bool {
        *self.requested.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits up to `limit`; true when a stop was requested.
    fn wait(&self, limit: Duration) -> bool {
        let guard = self.requested.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, limit, |requested| !*requested)
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }
}

impl WatchdogShared {
    /// How long ago the watchdog thread's last round and main's last loop
    /// were (the first `None` before the watchdog's first round).
    pub fn liveness(&self) -> (Option<Duration>, Duration) {
        let now = self.clock.mono().0.as_millis() as u64;
        let beat = self.beat_ms.load(Ordering::Relaxed);
        let watchdog = (beat > 0).then(|| Duration::from_millis(now.saturating_sub(beat - 1)));
        let main =
            Duration::from_millis(now.saturating_sub(self.main_tick_ms.load(Ordering::Relaxed)));
        (watchdog, main)
    }

    pub fn main_ticked(&self) {
        self.main_tick_ms
            .store(self.clock.mono().0.as_millis() as u64, Ordering::Relaxed);
    }
}

/// Starts the thread. A panic in it (a bug) restarts it after a backoff;
/// systemd hears no `WATCHDOG=1` meanwhile, and kills the agent only if
/// the backoff outlasts `WatchdogSec=`.
pub fn spawn(shared: Arc<WatchdogShared>) -> std::io::Result<JoinHandle<()>> {
    let stopping = shared.clone();
    crate::threads::spawn_isolated(
        "watchdog",
        crate::threads::FEED_STACK,
        crate::threads::Restart::WithBackoff {
            stopping: Box::new(move || stopping.stop.is_requested()),
        },
        move || run(shared.clone()),
    )
}

fn run(shared: Arc<WatchdogShared>) {
    let mut wd = Watchdog::new(
        *shared
            .alert_repeat
            .lock()
            .unwrap_or_else(|p| p.into_inner()),
    );
    let mut last_keepalive: Option<Mono> = None;
    let mut withheld = false;
    while !shared.stop.is_requested() {
        let now = shared.clock.mono();
        shared
            .beat_ms
            .store(now.0.as_millis() as u64 + 1, Ordering::Relaxed);
        wd.set_alert_repeat(
            *shared
                .alert_repeat
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let default_alert = *shared.alert_after.lock().unwrap_or_else(|p| p.into_inner());
        let watched: Vec<WatchedFeed> = shared
            .feeds
            .lock()
            .iter()
            .map(|f| {
                let health = f.handle.health.snapshot();
                let expected_outage = health.outage.as_ref().and_then(|o| {
                    let since = o.start_wall;
                    f.config
                        .broker
                        .expected_outage(&f.config, since, shared.clock.wall())
                });
                WatchedFeed {
                    health,
                    stall_after: f.handle.settings.liveness.stall_after,
                    attempt_budget: f.handle.settings.attempt_budget,
                    alert_after: f.config.alert_after.unwrap_or(default_alert),
                    expected_outage,
                }
            })
            .collect();
        for action in wd.evaluate(&watched, now) {
            match action {
                Action::Restart { feed, reason } => {
                    log::warn!("watchdog: restarting feed={feed}: {reason}");
                    if let Some(f) = shared.feeds.lock().iter().find(|f| f.config.name == feed) {
                        let _ = f.handle.commands.send(FeedCommand::Restart { reason });
                    }
                }
                Action::Interrupt { feed, reason } => {
                    log::warn!("watchdog: forcing feed={feed} socket closed: {reason}");
                    if let Some(f) = shared.feeds.lock().iter().find(|f| f.config.name == feed) {
                        f.handle.interrupt();
                    }
                }
                // Names the flight recorder's dump, as the webhooks do.
                Action::Alert(alert) => crate::feed::recorder::with_dump(&alert).emit(),
                Action::Notice(line) => crate::notice!("{line}"),
            }
        }
        if let (Some(n), Some(every)) = (&shared.notifier, shared.notify_every) {
            let main_ok = now.0.as_millis() as u64
                <= shared.main_tick_ms.load(Ordering::Relaxed)
                    + MAIN_STUCK_AFTER.as_millis() as u64;
            let feeds_ok = watched
                .iter()
                .all(|f| Watchdog::thread_responsive(&f.health, now));
            let due = last_keepalive.is_none_or(|t| now.since(t) >= every);
            if due && main_ok && feeds_ok {
                if let Err(e) = n.watchdog() {
                    log::warn!("cannot send WATCHDOG=1 to systemd: {e}");
                }
                last_keepalive = Some(now);
                withheld = false;
            } else if due && !withheld {
                withheld = true;
                log::warn!(
                    "watchdog: withholding WATCHDOG=1 (main loop {}, feed threads {})",
                    if main_ok { "ok" } else { "stuck" },
                    if feeds_ok { "ok" } else { "stuck" }
                );
            }
        }
        let tick = shared
            .notify_every
            .map_or(WATCHDOG_TICK, |e| e.min(WATCHDOG_TICK));
        if shared.stop.wait(tick) {
            break;
        }
    }
}
