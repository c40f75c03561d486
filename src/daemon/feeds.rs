//! The set of running feeds: start, replace on reload or credential change,
//! stop and join within a deadline. Shared with the watchdog thread.
//!
//! A stop must not wait for a feed's read tick (up to a second on a quiet
//! feed), yet each live feed must still close its WebSocket with 1000. The
//! interrupter cannot do both: it shuts the socket down, leaving nothing to
//! close. So after queueing `Stop`, each feed thread is sent [`WAKE_SIGNAL`],
//! whose handler does nothing: a blocked read returns early, exactly as if
//! its deadline had passed (`net::timed` turns the EINTR into the usual
//! "nothing yet"), and the feed loops round to its command check, sees
//! `Stop` and closes cleanly. The signal is repeated until the feed has
//! ticked since the `Stop` was queued (one sent just before it entered the
//! read would be lost), and not after, so it does not cut short the close
//! handshake. (A tick in the instant between queueing the `Stop` and
//! reading the tick goes unseen; then a signal may end the wait for the
//! server's answer to the close early, never the close itself, which is
//! sent before that wait.) The interrupter stays as the last resort at
//! half the timeout.

use crate::brokers::{BuildContext, BuildError};
use crate::calendar::Calendar;
use crate::clock::{Clock, Mono};
use crate::config::FeedConfig;
use crate::feed::health::HealthData;
use crate::feed::liveness::LivenessConfig;
use crate::feed::recorder::{self, DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, Recorder};
use crate::feed::runner::{self, FeedCommand, FeedHandle, FeedSink, RunnerSettings, TICK};
use crate::feed::{Adapter, ConnectProgress, ErrorClass, FeedError, Session};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Wakes a feed thread out of a blocking socket call (module doc). SIGURG
/// is ignored by default, so a process without the handler is unaffected,
/// and it is only ever sent by the kernel for TCP urgent data to a socket
/// whose owner was set with F_SETOWN, which none of ours is.
pub const WAKE_SIGNAL: libc::c_int = libc::SIGURG;

/// Installs the do-nothing handler for [`WAKE_SIGNAL`] once; false if the
/// OS refused (stops then fall back to the read tick and the interrupter).
fn wake_handler_installed() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        // The flag is never read: what matters is that a handler exists, so
        // the signal interrupts a blocked recv instead of being ignored.
        let unused = Arc::new(AtomicBool::new(false));
        match signal_hook::flag::register(WAKE_SIGNAL, unused) {
            Ok(_) => true,
            Err(e) => {
                log::warn!(
                    "cannot install the SIGURG handler that wakes feed threads to stop: {e}"
                );
                false
            }
        }
    })
}

/// Sends [`WAKE_SIGNAL`] to one feed thread.
fn wake(thread: &JoinHandle<()>) {
    // A thread that has ended already reports ESRCH: nothing to wake.
    let _ = crate::os::process::signal_thread(thread, WAKE_SIGNAL);
}

/// One running feed with the configuration it was started from.
pub struct RunningFeed {
    pub config: FeedConfig,
    pub handle: FeedHandle,
}

/// All feeds; the watchdog thread holds a clone of the Arc.
#[derive(Clone, Default)]
pub struct FeedSet {
    inner: Arc<Mutex<Vec<RunningFeed>>>,
    /// The flight recorder's bounds for feeds started from now on
    /// (`[agent] blackbox_entries`, `blackbox_bytes`).
    recorder_limits: Arc<Mutex<Option<(usize, usize)>>>,
}

/// Stands in for a feed's adapter that could not be built: the feed parks
/// with the reason (a missing credential wakes it when it appears; an
/// invalid setting when the configuration changes).
struct UnbuiltAdapter {
    error: FeedError,
}

impl Adapter for UnbuiltAdapter {
    fn connect(&mut self, _: &mut dyn ConnectProgress) -> Result<Box<dyn Session>, FeedError> {
        Err(self.error.clone())
    }
    fn has_ping(&self) -> bool {
        true
    }
}

/// A private feed's adapter under failover: its thread is marked as
/// guarded by the fence before anything is opened, so neither a connect
/// nor a send happens while this agent's leadership is in doubt.
struct FencedAdapter {
    inner: Box<dyn Adapter>,
}

impl Adapter for FencedAdapter {
    fn connect(
        &mut self,
        progress: &mut dyn ConnectProgress,
    ) -> Result<Box<dyn Session>, FeedError> {
        crate::fence::guard_this_thread();
        if !crate::fence::may_act() {
            return Err(FeedError::new(
                ErrorClass::RateLimited {
                    retry_after: Some(Duration::from_secs(60)),
                },
                "fenced: this agent does not hold the failover lease",
            ));
        }
        self.inner.connect(progress)
    }
    fn has_ping(&self) -> bool {
        self.inner.has_ping()
    }
    fn poll_every(&self) -> Option<Duration> {
        self.inner.poll_every()
    }
    fn tick(&mut self, now: std::time::SystemTime) -> Vec<crate::feed::Action> {
        self.inner.tick(now)
    }
}

/// Builds an adapter, or a parked stand-in when it cannot be built; under
/// failover a private feed's adapter is fenced.
pub fn adapter_for(f: &FeedConfig, ctx: &BuildContext<'_>) -> Box<dyn Adapter> {
    let adapter = unfenced_adapter_for(f, ctx);
    if crate::fence::installed().is_some() && !f.standby {
        return Box::new(FencedAdapter { inner: adapter });
    }
    adapter
}

fn unfenced_adapter_for(f: &FeedConfig, ctx: &BuildContext<'_>) -> Box<dyn Adapter> {
    match f.broker.build(f, ctx) {
        Ok(a) => a,
        Err(e) => {
            let class = match e {
                BuildError::MissingCredential { .. } => ErrorClass::MissingCredential,
                BuildError::Invalid { .. } => ErrorClass::Config,
            };
            Box::new(UnbuiltAdapter {
                error: FeedError::new(class, e.to_string()).at(crate::feed::Layer::Credentials),
            })
        }
    }
}

/// The feed's calendar; a calendar that cannot be built (its time zone is
/// found nowhere) is logged and the feed is judged as 24/7.
fn calendar_for(f: &FeedConfig, ctx: &BuildContext<'_>) -> Option<Arc<crate::calendar::Calendar>> {
    ctx.calendar_of(f).unwrap_or_else(|e| {
        log::warn!(
            "feed={}: {e}; its silence is judged as if the market were always open",
            f.name
        );
        None
    })
}

/// The credential values a feed uses: kept out of its flight recorder.
fn feed_secrets(f: &FeedConfig, ctx: &BuildContext<'_>) -> Vec<crate::secret::Secret> {
    crate::config::feed_required(f)
        .iter()
        .filter_map(|r| (ctx.lookup)(&r.name))
        .collect()
}

impl FeedSet {
    /// The flight recorder's bounds for the feeds started from now on.
    pub fn set_recorder_limits(&self, entries: usize, bytes: usize) {
        *self
            .recorder_limits
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some((entries, bytes));
    }

    pub fn lock(&self) -> MutexGuard<'_, Vec<RunningFeed>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn health(&self) -> Vec<HealthData> {
        self.lock()
            .iter()
            .map(|f| f.handle.health.snapshot())
            .collect()
    }

    pub fn start(
        &self,
        f: &FeedConfig,
        ctx: &BuildContext<'_>,
        clock: Arc<dyn Clock>,
        sink: Arc<dyn FeedSink>,
    ) -> std::io::Result<()> {
        let adapter = adapter_for(f, ctx);
        let settings = runner_settings(
            f,
            adapter.as_ref(),
            calendar_for(f, ctx),
            f.alert_after.unwrap_or(ctx.alert_after),
        );
        let (entries, bytes) = self
            .recorder_limits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or((DEFAULT_MAX_ENTRIES, DEFAULT_MAX_BYTES));
        let recorder = Recorder::new(&f.name, entries, bytes);
        recorder.set_secrets(feed_secrets(f, ctx));
        recorder::register(recorder);
        let handle = runner::spawn(&f.name, f.broker.name(), adapter, settings, clock, sink)?;
        self.lock().push(RunningFeed {
            config: f.clone(),
            handle,
        });
        Ok(())
    }

    /// Sends a new adapter to a running feed; it reconnects at once: a
    /// blocked read is interrupted rather than left to its tick (up to a
    /// second on a quiet feed), so a rotated token is in use well under one.
    pub fn replace(&self, f: &FeedConfig, ctx: &BuildContext<'_>, reason: &str) {
        let mut feeds = self.lock();
        if let Some(rf) = feeds.iter_mut().find(|r| r.config.name == f.name) {
            let adapter = adapter_for(f, ctx);
            let settings = runner_settings(
                f,
                adapter.as_ref(),
                calendar_for(f, ctx),
                f.alert_after.unwrap_or(ctx.alert_after),
            );
            rf.handle.settings = settings.clone();
            rf.config = f.clone();
            if let Some(r) = recorder::registered(&f.name) {
                r.set_secrets(feed_secrets(f, ctx));
            }
            // Holding the slot keeps the feed from registering a connection
            // made with the new adapter before the interrupt: only the
            // connection in use when the command was sent is cut.
            let slot = rf
                .handle
                .interrupter
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let _ = rf.handle.commands.send(FeedCommand::Replace {
                adapter,
                settings: Box::new(settings),
                reason: reason.to_string(),
            });
            if let Some(interrupt) = slot.as_ref() {
                interrupt();
            }
        }
    }

    /// Removes feeds from the set and stops them, waiting at most `timeout`.
    pub fn stop_some(&self, names: &[String], timeout: Duration) {
        let taken: Vec<RunningFeed> = {
            let mut feeds = self.lock();
            let (out, keep): (Vec<_>, Vec<_>) = feeds
                .drain(..)
                .partition(|f| names.contains(&f.config.name));
            *feeds = keep;
            out
        };
        names.iter().for_each(|n| recorder::unregister(n));
        stop_and_join(taken, timeout);
    }

    /// Stops every feed (graceful close), waiting at most `timeout`.
    pub fn stop_all(&self, timeout: Duration) {
        let taken: Vec<RunningFeed> = self.lock().drain(..).collect();
        for f in &taken {
            recorder::unregister(&f.config.name);
        }
        stop_and_join(taken, timeout);
    }
}

fn stop_and_join(feeds: Vec<RunningFeed>, timeout: Duration) {
    // Each feed's last tick right after its Stop was queued: a later tick
    // means its thread has reached the command check (module doc).
    let mut feeds: Vec<(RunningFeed, Mono)> = feeds
        .into_iter()
        .map(|f| {
            let _ = f.handle.commands.send(FeedCommand::Stop);
            let tick = f.handle.health.snapshot().last_tick;
            (f, tick)
        })
        .collect();
    let can_wake = wake_handler_installed();
    let start = Instant::now();
    let mut interrupted = false;
    loop {
        feeds.retain_mut(|(f, _)| match f.handle.thread.as_ref() {
            Some(t) if t.is_finished() => {
                if let Some(t) = f.handle.thread.take() {
                    let _ = t.join();
                }
                false
            }
            Some(_) => true,
            None => false,
        });
        if feeds.is_empty() {
            return;
        }
        let waited = start.elapsed();
        if waited >= timeout {
            let names: Vec<&str> = feeds.iter().map(|(f, _)| f.config.name.as_str()).collect();
            log::warn!("feeds {names:?} did not stop within {timeout:?}; leaving them behind");
            return;
        }
        if can_wake {
            for (f, queued_at) in &feeds {
                if f.handle.health.snapshot().last_tick == *queued_at {
                    if let Some(t) = f.handle.thread.as_ref() {
                        wake(t);
                    }
                }
            }
        }
        // Half way through, wake anything blocked in a socket call.
        if !interrupted && waited >= timeout / 2 {
            for (f, _) in &feeds {
                f.handle.interrupt();
            }
            interrupted = true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The settings a feed thread runs `f` with, driven through `adapter`
/// (which says whether the feed has a keepalive and a poll): the feed
/// engine takes its own types, built here from the configuration.
pub fn runner_settings(
    f: &FeedConfig,
    adapter: &dyn Adapter,
    calendar: Option<Arc<Calendar>>,
    flap_window: Duration,
) -> RunnerSettings {
    RunnerSettings {
        liveness: LivenessConfig {
            ping_every: adapter.has_ping().then_some(f.ping_every),
            pong_timeout: f.pong_timeout,
            stall_after: f.stall_after,
            poll_every: adapter.poll_every(),
        },
        backoff: f.backoff,
        expect: f.expect,
        // resolve + connect (per address, allow two) + TLS/WS + auth reply
        attempt_budget: f.connect_timeout * 3 + f.handshake_timeout * 2 + f.write_timeout,
        io_budget: TICK + f.write_timeout * 2,
        calendar,
        flap_window,
    }
}
