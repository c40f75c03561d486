//! The feed thread: connect → handshake → auth → subscribe → read loop,
//! and on any failure back to a backoff wait and round again. Nothing
//! here can leave a feed "authenticated" after an error: every error, close
//! or failed send ends the connection and is recorded.

use super::adapter::{Adapter, ConnectProgress, Incoming, Interrupter, Session};
use super::backoff::Backoff;
use super::backoff::BackoffConfig;
use super::error::{ErrorClass, FeedError};
use super::health::{FeedHealth, FirstConnection};
use super::liveness::{Due, Liveness, LivenessConfig};
use super::market::MarketWatch;
use super::outage::{Evidence, OutageEvent, OutageTracker};
use super::protocol::{Action, Layer};
use super::schedule::ExpectConfig;
use super::schedule::ExpectTracker;
use super::state::FeedState;
use crate::alert::{Alert, AlertKind};
use crate::calendar::{Calendar, MarketState};
use crate::clock::{Clock, Mono};
use crate::threads::{Crash, CrashBackoff};
use crate::timefmt::{human, rfc3339, rfc3339_millis};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// The longest a feed thread waits between looks at its command channel.
pub const TICK: Duration = Duration::from_secs(1);
/// [`Adapter::tick`] runs at most this often, however many messages arrive.
pub const ADAPTER_TICK_MIN: Duration = Duration::from_millis(500);
/// The shortest wait before a crashed feed runs again.
pub const CRASH_BACKOFF_MIN: Duration = Duration::from_secs(1);

/// Where a feed's messages and state changes go (fan-out, status, alerts).
/// The engine does not know who listens.
pub trait FeedSink: Send + Sync {
    fn data(&self, feed: &str, message: &str, ts: SystemTime);
    fn reconnected(&self, feed: &str, down: Duration);
    fn state(&self, feed: &str, state: FeedState, error: Option<&str>);
    /// A broker-specific event line for the bot.
    fn event(&self, feed: &str, name: &str, fields: &serde_json::Map<String, serde_json::Value>) {
        let _ = (feed, name, fields);
    }
}

/// Commands to a feed thread, checked at least once per [`TICK`].
pub enum FeedCommand {
    /// Reconnect now through a new adapter (new credentials or settings).
    Replace {
        adapter: Box<dyn Adapter>,
        settings: Box<RunnerSettings>,
        reason: String,
    },
    /// Drop the connection and reconnect now.
    Restart { reason: String },
    /// Close cleanly and end the thread.
    Stop,
}

/// The timing settings a feed thread runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct RunnerSettings {
    pub liveness: LivenessConfig,
    pub backoff: BackoffConfig,
    pub expect: Option<ExpectConfig>,
    /// Upper bound of one connect attempt (resolve, connect, handshakes, auth).
    pub attempt_budget: Duration,
    /// Upper bound of one read tick plus a send.
    pub io_budget: Duration,
    /// The market's sessions; `None`: always open (24/7).
    pub calendar: Option<Arc<Calendar>>,
    /// Short-lived connections within this window mean the feed is
    /// flapping (the feed's `alert_after`).
    pub flap_window: Duration,
}

/// What the daemon and the watchdog hold of a running feed.
pub struct FeedHandle {
    pub name: String,
    pub health: Arc<FeedHealth>,
    /// What the first connection proved, layer by layer (the preflight).
    pub first: Arc<Mutex<FirstConnection>>,
    pub commands: Sender<FeedCommand>,
    pub interrupter: Arc<Mutex<Option<Interrupter>>>,
    pub settings: RunnerSettings,
    pub thread: Option<JoinHandle<()>>,
}

impl FeedHandle {
    /// Forces any blocked socket call of this feed to return.
    pub fn interrupt(&self) {
        if let Some(i) = self
            .interrupter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            i();
        }
    }
}

/// Starts a feed thread.
pub fn spawn(
    name: &str,
    broker: &str,
    adapter: Box<dyn Adapter>,
    settings: RunnerSettings,
    clock: Arc<dyn Clock>,
    sink: Arc<dyn FeedSink>,
) -> std::io::Result<FeedHandle> {
    let (tx, rx) = std::sync::mpsc::channel();
    let health = Arc::new(FeedHealth::new(name, broker, clock.mono(), clock.wall()));
    let interrupter: Arc<Mutex<Option<Interrupter>>> = Arc::new(Mutex::new(None));
    let first = Arc::new(Mutex::new(FirstConnection::default()));
    let wall_now = clock.wall();
    let clock_mono_now = clock.mono();
    let seed = seed_for(name, wall_now);
    let outage = OutageTracker::new(
        settings.backoff.stable_after,
        settings.flap_window,
        clock_mono_now,
        wall_now,
    );
    health.update(|h| h.outage = outage.current().cloned());
    let runner = Runner {
        name: name.to_string(),
        adapter,
        backoff: Backoff::new(settings.backoff, seed),
        expect: settings.expect.map(|e| ExpectTracker::new(e, clock.wall())),
        settings: settings.clone(),
        health: health.clone(),
        interrupter: interrupter.clone(),
        commands: rx,
        clock,
        sink,
        ever_live: false,
        first: first.clone(),
        first_done: false,
        market: settings
            .calendar
            .clone()
            .map(|c| MarketWatch::new(c, wall_now)),
        published_market: None,
        outage,
        adapter_ticked: None,
        state: std::cell::Cell::new(FeedState::Connecting),
        connection_proved: false,
    };
    let recorder = super::recorder::registered(name);
    let thread = std::thread::Builder::new()
        .name(format!("feed-{name}"))
        .stack_size(crate::threads::FEED_STACK)
        .spawn(move || {
            super::recorder::set_current(recorder);
            runner.supervise()
        })?;
    Ok(FeedHandle {
        name: name.to_string(),
        health,
        first,
        commands: tx,
        interrupter,
        settings,
        thread: Some(thread),
    })
}

fn seed_for(name: &str, wall: SystemTime) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    h ^ crate::timefmt::unix_secs(wall).rotate_left(17) ^ (std::process::id() as u64)
}

/// How one connection ended.
enum Ended {
    Failed {
        error: FeedError,
        /// How long the connection delivered (zero: it never did).
        delivered_for: Duration,
    },
    Restart {
        reason: String,
    },
    Replaced {
        reason: String,
    },
    Stop,
}

struct Runner {
    name: String,
    adapter: Box<dyn Adapter>,
    settings: RunnerSettings,
    backoff: Backoff,
    expect: Option<ExpectTracker>,
    health: Arc<FeedHealth>,
    interrupter: Arc<Mutex<Option<Interrupter>>>,
    commands: Receiver<FeedCommand>,
    clock: Arc<dyn Clock>,
    sink: Arc<dyn FeedSink>,
    ever_live: bool,
    first: Arc<Mutex<FirstConnection>>,
    /// The first connection's record is complete (saves a lock per message).
    first_done: bool,
    /// The market's state, when the feed follows a calendar.
    market: Option<MarketWatch>,
    /// The market state last written to health.
    published_market: Option<MarketState>,
    /// The feed's outage record: when it began and ended, what happened
    /// on the way, whether the feed is flapping.
    outage: OutageTracker,
    /// When [`Adapter::tick`] last ran.
    adapter_ticked: Option<Mono>,
    /// The current connection has delivered (since it subscribed).
    connection_proved: bool,
    /// The state last published (read on the per-message path without
    /// taking the health lock).
    state: std::cell::Cell<FeedState>,
}

struct Progress<'a> {
    runner: &'a Runner,
}

impl ConnectProgress for Progress<'_> {
    fn phase(&mut self, state: FeedState) {
        self.runner.set_state(state, None);
    }
    fn socket_opened(&mut self, interrupter: Interrupter) {
        *self
            .runner
            .interrupter
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(interrupter);
    }
    fn layer_passed(&mut self, layer: Layer, detail: &str) {
        if !self.runner.first_done {
            self.runner.first_record().pass(layer, detail);
        }
    }
    fn note(&mut self, key: &'static str, value: &str) {
        self.runner.health.update(|h| {
            h.info.insert(key, value.to_string());
        });
    }
}

impl Runner {
    /// Runs the feed until it is stopped. A panic anywhere in it (a bug in
    /// an adapter, a protocol core or here) is caught at this boundary:
    /// the connection it held is dropped on the way out, the feed is shown
    /// `crashed` with the code location, `alert=feed_crashed` says where,
    /// and after a backoff (doubling, capped, reset once a run lasted the
    /// feed's `stable_after`) it runs again; commands are answered
    /// meanwhile. Other feeds never notice.
    fn supervise(mut self) {
        let base = self.settings.backoff.initial.max(CRASH_BACKOFF_MIN);
        let mut backoff = CrashBackoff::new(
            base,
            self.settings.backoff.max.max(base),
            self.settings.backoff.stable_after,
        );
        loop {
            let started = self.clock.mono();
            let Err(crash) = crate::threads::catch(|| self.run()) else {
                return;
            };
            let delay = backoff.crashed(self.clock.mono().since(started));
            // The bookkeeping of a crash touches the outage record, whose
            // state the panic may have left half-updated: a second panic
            // there must not escape either (the feed is then shown crashed
            // all the same).
            if let Err(again) = crate::threads::catch(|| self.on_crash(&crash, delay)) {
                log::warn!(
                    "feed={} recording its crash failed too, at {}",
                    self.name,
                    again.at
                );
                self.mark_crashed(&crash, delay);
            }
            // The wait runs none of the feed's own code, which may be what
            // crashed.
            match self.wait(delay, false) {
                Some(Ended::Stop) => {
                    self.set_state(FeedState::Stopped, None);
                    log::info!("feed={} stopped", self.name);
                    return;
                }
                Some(Ended::Replaced { reason }) => {
                    log::info!("feed={} restarting after its crash: {reason}", self.name)
                }
                Some(Ended::Restart { reason }) => {
                    log::info!("feed={} restarting after its crash: {reason}", self.name)
                }
                Some(Ended::Failed { .. }) | None => {
                    log::info!("feed={} restarting after its crash", self.name)
                }
            }
        }
    }

    /// Shows the feed crashed (state, last error, when it retries).
    fn mark_crashed(&self, crash: &Crash, delay: Duration) -> String {
        let message = format!(
            "crashed at {} (a bug; the panic's message is not shown); restarting in {}",
            crash.at,
            human(delay)
        );
        *self.interrupter.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let now = self.clock.mono();
        let wall = self.clock.wall();
        self.health.update(|h| {
            h.crashes += 1;
            h.last_error = Some(message.clone());
            h.last_error_at = Some(wall);
            h.retry_at = Some(now.plus(delay));
        });
        self.set_state(FeedState::Crashed, Some(&message));
        message
    }

    /// What a crash leaves behind: the feed shown crashed, its outage
    /// begun (so `feed_down` follows as for any outage), the alert.
    fn on_crash(&mut self, crash: &Crash, delay: Duration) {
        let message = self.mark_crashed(crash, delay);
        Alert::new(AlertKind::FeedCrashed)
            .with("feed", &self.name)
            .with("at", &crash.at)
            .with(
                "action",
                format!(
                    "the feed restarts in {}; the other feeds run on (report the location as a bug)",
                    human(delay)
                ),
            )
            .emit();
        let events = self
            .outage
            .ended(self.clock.mono(), self.clock.wall(), Some(&message));
        self.on_outage(events);
    }

    fn run(&mut self) {
        log::info!("feed={} starting", self.name);
        // A command that arrived during a backoff wait ends it like a connection.
        let mut pending: Option<Ended> = None;
        loop {
            let ended = match pending.take() {
                Some(e) => e,
                None => self.attempt(),
            };
            *self.interrupter.lock().unwrap_or_else(|p| p.into_inner()) = None;
            let why = match &ended {
                Ended::Stop => None,
                Ended::Failed { error, .. } => Some(error.message.clone()),
                Ended::Restart { reason } => Some(format!("restarted: {reason}")),
                Ended::Replaced { reason } => Some(format!("reconnecting: {reason}")),
            };
            if let Some(why) = why {
                let events = self
                    .outage
                    .ended(self.clock.mono(), self.clock.wall(), Some(&why));
                self.on_outage(events);
            }
            let delay = match ended {
                Ended::Stop => break,
                Ended::Restart { reason } => {
                    self.health.update(|h| h.restarts += 1);
                    log::warn!("feed={} restarting: {reason}", self.name);
                    self.backoff.connection_ended(Duration::ZERO);
                    Duration::ZERO
                }
                // `replace` has reset the backoff for the new adapter.
                Ended::Replaced { reason } => {
                    log::info!("feed={} reconnecting: {reason}", self.name);
                    Duration::ZERO
                }
                Ended::Failed {
                    error,
                    delivered_for,
                } => {
                    self.backoff.connection_ended(delivered_for);
                    let delay = self.backoff.next_delay(error.class);
                    let parked = matches!(
                        error.class,
                        ErrorClass::Auth | ErrorClass::MissingCredential | ErrorClass::Config
                    );
                    let state = match error.class {
                        ErrorClass::MissingCredential => FeedState::Waiting,
                        _ if parked => FeedState::Parked,
                        _ => FeedState::Backoff,
                    };
                    let now = self.clock.mono();
                    // A missing credential is waited for, not retried on a
                    // timer an operator would misread.
                    let retry_at =
                        (error.class != ErrorClass::MissingCredential).then(|| now.plus(delay));
                    let wall = self.clock.wall();
                    self.health.update(|h| {
                        h.consecutive_failures = self.backoff.failures() as u64;
                        h.last_error = Some(error.message.clone());
                        h.last_error_at = Some(wall);
                        h.retry_at = retry_at;
                    });
                    self.set_state(state, Some(&error.message));
                    if error.class == ErrorClass::MissingCredential {
                        log::warn!("feed={} {}", self.name, error.message);
                    } else if error.class == ErrorClass::Config {
                        // The broker refused what only the configuration
                        // can fix (an unknown contract): not a credential.
                        Alert::new(AlertKind::ConfigInvalid)
                            .with("feed", &self.name)
                            .with("error", &error.message)
                            .with(
                                "action",
                                format!(
                                    "parked: fix the feed's configuration and reload; it retries in {}",
                                    human(delay)
                                ),
                            )
                            .emit();
                    } else if parked {
                        Alert::new(AlertKind::CredentialRejected)
                            .with("feed", &self.name)
                            .with("error", &error.message)
                            .with(
                                "action",
                                format!(
                                    "parked: fix the credential; the feed wakes on change or retries in {}",
                                    human(delay)
                                ),
                            )
                            .emit();
                    } else {
                        log::warn!(
                            "feed={} class={} error=\"{}\" retry_in={}",
                            self.name,
                            error.class.as_str(),
                            error.message,
                            human(delay)
                        );
                    }
                    delay
                }
            };
            if !delay.is_zero() {
                pending = self.wait(delay, true);
            }
        }
        self.set_state(FeedState::Stopped, None);
        log::info!("feed={} stopped", self.name);
    }

    fn set_state(&self, state: FeedState, error: Option<&str>) {
        self.set_state_counting(state, error, false);
    }

    /// Publishes the outage record as it now is (status, the watchdog's
    /// alerts read it from health) and says what changed: the outage that
    /// began, the feed that started flapping.
    fn on_outage(&mut self, events: impl IntoIterator<Item = OutageEvent>) {
        self.publish_outage();
        for event in events {
            match event {
                OutageEvent::Began => {
                    if let Some(o) = self.outage.current() {
                        let now = self.clock.mono();
                        log::warn!(
                            "feed={} down since {} (the last data, {} ago): {}",
                            self.name,
                            rfc3339_millis(o.start_wall),
                            human(o.down_for(now)),
                            o.cause.as_deref().unwrap_or("no reason given")
                        );
                    }
                }
                OutageEvent::Flapping {
                    connections,
                    within,
                } => {
                    let last_error = self
                        .outage
                        .current()
                        .and_then(|o| o.last_error.clone())
                        .unwrap_or_default();
                    log::warn!(
                        "feed={} flapping: {connections} connections within {} died before stable_after ({})",
                        self.name,
                        human(within),
                        human(self.settings.backoff.stable_after)
                    );
                    let mut fields = serde_json::Map::new();
                    fields.insert("connections".into(), connections.into());
                    fields.insert("within_ms".into(), (within.as_millis() as u64).into());
                    fields.insert("last_error".into(), last_error.into());
                    self.sink.event(&self.name, "flapping", &fields);
                }
                OutageEvent::Steady => {}
            }
        }
    }

    /// Copies the record to health, as is.
    fn publish_outage(&self) {
        let current = self.outage.current().cloned();
        let last = self.outage.last().cloned();
        let flapping = self.outage.flapping();
        self.health.update(|h| {
            h.outage = current;
            h.last_outage = last;
            h.flapping = flapping;
        });
    }

    /// Evidence arrived on this connection (data, the broker's proof, or
    /// a closed market's expected quiet): the feed goes live on the first,
    /// the bot hears of the gap, and the outage ends once it has kept
    /// delivering for `stable_after`. `data`: a message for the bot.
    fn on_evidence(&mut self, now: Mono, wall: SystemTime, data: bool, open: bool) {
        let evidence = self.outage.evidence(now, wall);
        // Live on data, or on the broker's proof while the market is open;
        // a closed market's quiet and heartbeats keep it `closed`.
        let proves_live = open || data;
        let shown = self.state.get();
        if proves_live
            && matches!(shown, FeedState::Subscribed | FeedState::Closed)
            && !matches!(evidence, Evidence::First { .. })
        {
            self.set_state(FeedState::Live, None);
        }
        match evidence {
            Evidence::Steady => {}
            Evidence::First { gap } => {
                let state = if proves_live {
                    FeedState::Live
                } else {
                    FeedState::Closed
                };
                // A reconnect is a new connection proving itself after an
                // earlier one did (not a degraded one restored).
                let reconnect = self.ever_live && !self.connection_proved;
                self.set_state_counting(state, None, reconnect);
                self.ever_live = true;
                self.connection_proved = true;
                self.publish_outage();
                match gap {
                    Some(gap) => {
                        self.sink.reconnected(&self.name, gap);
                        log::info!(
                            "feed={} data again, {} after the last (outage since {}); it ends once data keeps flowing for {}",
                            self.name,
                            human(gap),
                            self.outage
                                .current()
                                .map(|o| rfc3339_millis(o.start_wall))
                                .unwrap_or_default(),
                            human(self.settings.backoff.stable_after)
                        );
                    }
                    None if self.outage.current().is_some_and(|o| o.id == 1) => {
                        log::info!("feed={} live: first data received", self.name)
                    }
                    None => log::info!("feed={} live", self.name),
                }
            }
            Evidence::Recovered => {
                self.publish_outage();
                if let Some(o) = self.outage.last() {
                    if o.after_data {
                        log::info!(
                            "feed={} recovered: data kept flowing for {}; the outage of {} is over (from {} to {}, {} connections, {} errors, cause: {})",
                            self.name,
                            human(self.settings.backoff.stable_after),
                            human(o.downtime().unwrap_or_default()),
                            rfc3339_millis(o.start_wall),
                            o.end_wall.map(rfc3339_millis).unwrap_or_default(),
                            o.connections,
                            o.errors,
                            o.cause.as_deref().unwrap_or("none")
                        );
                    } else {
                        log::info!(
                            "feed={} stable: data kept flowing for {}, the first {} after start",
                            self.name,
                            human(self.settings.backoff.stable_after),
                            human(o.downtime().unwrap_or_default())
                        );
                    }
                }
            }
        }
    }

    fn first_record(&self) -> std::sync::MutexGuard<'_, FirstConnection> {
        self.first.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The first connection failed in `layer` (the default when the error
    /// names none).
    fn first_failed(&mut self, default: Layer, error: &FeedError) {
        if !self.first_done {
            self.first_record()
                .fail(error.layer.unwrap_or(default), error);
            self.first_done = true;
        }
    }

    /// The first data or heartbeat arrived.
    fn first_data(&mut self, what: &str) {
        if !self.first_done {
            self.first_record().data(what);
            self.first_done = true;
        }
    }

    /// Sets the state; `reconnect` counts a new connection going live (its
    /// first data after an earlier connection's).
    fn set_state_counting(&self, state: FeedState, error: Option<&str>, reconnect: bool) {
        let now = self.clock.mono();
        let wall = self.clock.wall();
        self.state.set(state);
        let changed = self.health.update(|h| {
            h.last_tick = now;
            if h.state == state {
                return false;
            }
            h.state = state;
            h.since = now;
            h.since_wall = wall;
            if state == FeedState::Live {
                // Counted in the same update as the state, so a status
                // snapshot never shows "live" after a reconnect with the
                // reconnect not yet counted.
                if reconnect {
                    h.reconnects += 1;
                }
                h.retry_at = None;
                h.consecutive_failures = 0;
            }
            if !matches!(
                state,
                FeedState::Backoff | FeedState::Parked | FeedState::Waiting | FeedState::Crashed
            ) {
                h.retry_at = None;
            }
            h.busy_until = if state.is_attempting() && state != FeedState::Subscribing {
                Some(now.plus(self.settings.attempt_budget))
            } else {
                None
            };
            true
        });
        if changed {
            log::debug!("feed={} state={state}", self.name);
            self.sink.state(&self.name, state, error);
        }
    }

    fn tick(&self, busy_for: Option<Duration>) {
        let now = self.clock.mono();
        self.health.update(|h| {
            h.last_tick = now;
            h.busy_until = busy_for.map(|d| now.plus(d));
        });
    }

    /// Whether the feed's market is open now (always, for 24/7 markets);
    /// a change is published to health for status.
    fn market_open(&mut self) -> bool {
        let Some(m) = self.market.as_mut() else {
            return true;
        };
        let state = m.state(self.clock.wall());
        if self.published_market != Some(state) {
            self.published_market = Some(state);
            self.health.update(|h| h.market = Some(state));
            log::info!("feed={} market {}", self.name, state.as_str());
        }
        state == MarketState::Open
    }

    fn check_schedule(&mut self) {
        let wall = self.clock.wall();
        if !self.market_open() {
            // Silence is expected outside the market's sessions.
            if let Some(tr) = self.expect.as_mut() {
                *tr = ExpectTracker::new(tr.config(), wall);
            }
            return;
        }
        if let Some(tr) = self.expect.as_mut() {
            for m in tr.check(wall) {
                self.report_missed(m);
            }
        }
    }

    /// Runs the adapter's own periodic work (at most every
    /// [`ADAPTER_TICK_MIN`], however many messages arrive) and carries out
    /// what it asks for. Called from the read loop and the backoff/parked
    /// wait alike, so it runs while the feed is parked or its market closed.
    fn adapter_tick(&mut self) {
        let now = self.clock.mono();
        if self
            .adapter_ticked
            .is_some_and(|at| now.since(at) < ADAPTER_TICK_MIN)
        {
            return;
        }
        self.adapter_ticked = Some(now);
        for action in self.adapter.tick(self.clock.wall()) {
            match action {
                Action::Alert(a) => a.emit(),
                Action::Note { key, value } => self.health.update(|h| {
                    h.info.insert(key, value);
                }),
                Action::Log { level, message } => {
                    log::log!(level, "feed={} {message}", self.name)
                }
                other => log::debug!(
                    "feed={}: the adapter's tick asked for {other:?}, which only a session can do",
                    self.name
                ),
            }
        }
    }

    fn report_missed(&self, m: super::schedule::MissedWindow) {
        Alert::new(AlertKind::WaveMissed)
            .with("feed", &self.name)
            .with("window", rfc3339(m.start))
            .with("state", self.health.snapshot().state)
            .with_opt("more_missed", (m.more > 0).then_some(m.more))
            .emit();
    }

    /// Waits `delay` while ticking (the watchdog sees a responsive thread)
    /// and answering commands: None when the time is up, or how the wait
    /// ended if a command came first. With `feed_code`, the schedule, the
    /// outage record and the adapter's own work run meanwhile (a backoff
    /// or parked wait); without, nothing of the feed's runs (after a crash).
    fn wait(&mut self, delay: Duration, feed_code: bool) -> Option<Ended> {
        let until = self.clock.mono().plus(delay);
        loop {
            self.tick(None);
            if feed_code {
                self.check_schedule();
                if let Some(event) = self.outage.tick(self.clock.mono()) {
                    self.on_outage([event]);
                }
                self.adapter_tick();
            }
            let now = self.clock.mono();
            if now >= until {
                return None;
            }
            match self.commands.recv_timeout(until.since(now).min(TICK)) {
                Ok(cmd) => return Some(self.on_command(cmd)),
                Err(RecvTimeoutError::Timeout) => {}
                // The daemon is gone: nothing will ever stop us otherwise.
                Err(RecvTimeoutError::Disconnected) => return Some(Ended::Stop),
            }
        }
    }

    fn replace(&mut self, adapter: Box<dyn Adapter>, settings: RunnerSettings) {
        self.adapter = adapter;
        if settings.expect != self.settings.expect {
            self.expect = settings
                .expect
                .map(|e| ExpectTracker::new(e, self.clock.wall()));
        }
        self.backoff = Backoff::new(settings.backoff, seed_for(&self.name, self.clock.wall()));
        self.outage
            .configure(settings.backoff.stable_after, settings.flap_window);
        self.market = settings
            .calendar
            .clone()
            .map(|c| MarketWatch::new(c, self.clock.wall()));
        self.settings = settings;
    }

    /// How a command ends the current connection or wait.
    fn on_command(&mut self, cmd: FeedCommand) -> Ended {
        match cmd {
            FeedCommand::Stop => Ended::Stop,
            FeedCommand::Restart { reason } => Ended::Restart { reason },
            FeedCommand::Replace {
                adapter,
                settings,
                reason,
            } => {
                self.replace(adapter, *settings);
                Ended::Replaced { reason }
            }
        }
    }

    /// Checks commands between reads. Some: end this connection.
    fn poll_command(&mut self) -> Option<Ended> {
        match self.commands.try_recv() {
            Ok(cmd) => Some(self.on_command(cmd)),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Ended::Stop),
        }
    }

    fn attempt(&mut self) -> Ended {
        if let Some(e) = self.poll_command() {
            return e;
        }
        self.health.update(|h| h.attempts += 1);
        self.set_state(FeedState::Connecting, None);
        let connected = {
            let mut adapter = std::mem::replace(&mut self.adapter, Box::new(NoAdapter));
            let mut progress = Progress { runner: self };
            let r = adapter.connect(&mut progress);
            self.adapter = adapter;
            r
        };
        let mut session = match connected {
            Ok(s) => s,
            Err(error) => {
                // Interrupted for a command (see `read_loop`).
                if let Some(e) = self.poll_command() {
                    return e;
                }
                self.first_failed(Layer::Handshake, &error);
                return Ended::Failed {
                    error,
                    delivered_for: Duration::ZERO,
                };
            }
        };
        if let Some(e) = self.poll_command() {
            session.close();
            return e;
        }
        self.set_state(FeedState::Subscribing, None);
        self.tick(Some(self.settings.io_budget));
        if let Err(error) = session.subscribe() {
            self.first_failed(Layer::Data, &error);
            return Ended::Failed {
                error,
                delivered_for: Duration::ZERO,
            };
        }
        let subscribed_at = self.clock.mono();
        self.outage.subscribed(subscribed_at);
        self.connection_proved = false;
        self.publish_outage();
        // Not live until data proves it: a connection is never live on its
        // handshake alone.
        let state = if self.market_open() {
            FeedState::Subscribed
        } else {
            FeedState::Closed
        };
        self.set_state(state, None);
        match self.outage.current() {
            Some(o) if o.after_data => log::info!(
                "feed={} subscribed (connection {} since the last data {} ago); waiting for data",
                self.name,
                o.connections,
                human(o.down_for(subscribed_at))
            ),
            _ => log::info!("feed={} subscribed; waiting for the first data", self.name),
        }
        let ended = self.read_loop(session.as_mut(), subscribed_at);
        if matches!(
            ended,
            Ended::Stop | Ended::Restart { .. } | Ended::Replaced { .. }
        ) {
            session.close();
        }
        ended
    }

    fn read_loop(&mut self, session: &mut dyn Session, subscribed_at: Mono) -> Ended {
        let mut conn = Connection {
            live: Liveness::new(self.settings.liveness, subscribed_at),
            degraded: false,
            first_evidence: None,
            last_bot_data: subscribed_at,
        };
        loop {
            self.tick(Some(self.settings.io_budget));
            if let Some(e) = self.poll_command() {
                return e;
            }
            // A connection counts as stable for the backoff only for as
            // long as it delivered.
            let delivered_for = conn
                .first_evidence
                .map(|t| self.clock.mono().since(t))
                .unwrap_or_default();
            let fail = |error: FeedError| Ended::Failed {
                error,
                delivered_for,
            };
            let wait = conn.live.next_due_in(self.clock.mono());
            let open = self.market_open();
            match session.read_within(wait) {
                Ok(incoming) => self.on_incoming(&mut conn, incoming, open),
                Err(error) => {
                    // A command interrupts a blocked read on purpose (see
                    // `FeedSet::replace`): it wins over the error it caused.
                    if let Some(e) = self.poll_command() {
                        return e;
                    }
                    self.first_failed(Layer::Data, &error);
                    return fail(error);
                }
            }
            self.check_schedule();
            self.adapter_tick();
            let now = self.clock.mono();
            if let Some(event) = self.outage.tick(now) {
                self.on_outage([event]);
            }
            self.expected_silence(&mut conn, now, open);
            if let Err(e) = self.keep_alive(session, &mut conn.live, now) {
                return fail(e);
            }
        }
    }

    /// One thing the connection delivered: data for the bot, a heartbeat,
    /// a pong, an event or note, or the broker saying data stopped or
    /// resumed. `open`: the market is open now.
    fn on_incoming(&mut self, conn: &mut Connection, incoming: Incoming, open: bool) {
        match incoming {
            Incoming::Idle => {}
            Incoming::Data(msg) => {
                let now = self.clock.mono();
                let wall = self.clock.wall();
                conn.live.on_data(now);
                conn.last_bot_data = now;
                conn.first_evidence.get_or_insert(now);
                self.health.update(|h| {
                    h.messages += 1;
                    h.last_message = Some(now);
                });
                if let Some(tr) = self.expect.as_mut() {
                    for m in tr.on_message(wall) {
                        self.report_missed(m);
                    }
                }
                // The gap is told (`reconnected`) before the data after it.
                if !conn.degraded {
                    self.on_evidence(now, wall, true, open);
                }
                // Tests only (never in the shipped binary).
                #[cfg(feature = "fault-injection")]
                crate::threads::fault::panic_if_triggered("feed-", &self.name);
                self.sink.data(&self.name, &msg, wall);
                self.first_data("first data received");
            }
            Incoming::Heartbeat => {
                self.first_data("first heartbeat received");
                let now = self.clock.mono();
                conn.live.on_data(now);
                conn.first_evidence.get_or_insert(now);
                self.health.update(|h| h.last_message = Some(now));
                if !conn.degraded {
                    self.on_evidence(now, self.clock.wall(), false, open);
                }
            }
            Incoming::Pong => conn.live.on_pong(),
            Incoming::Event { name, fields } => self.sink.event(&self.name, name, &fields),
            Incoming::Note { key, value } => self.health.update(|h| {
                h.info.insert(key, value);
            }),
            Incoming::Degraded(reason) => {
                log::warn!("feed={} degraded: {reason}", self.name);
                let now = self.clock.mono();
                let wall = self.clock.wall();
                self.health.update(|h| {
                    h.last_error = Some(reason.clone());
                    h.last_error_at = Some(wall);
                });
                let event = self.outage.degraded(now, wall, &reason);
                self.on_outage(event);
                self.set_state(FeedState::Degraded, Some(&reason));
                conn.degraded = true;
            }
            Incoming::Restored(detail) => {
                log::info!("feed={} restored: {detail}; waiting for data", self.name);
                conn.live.on_data(self.clock.mono());
                self.set_state(FeedState::Subscribed, None);
                conn.degraded = false;
            }
        }
    }

    /// Silence that proves nothing: the broker said no data can flow
    /// (degraded), or the market is closed; and a closed market opening.
    fn expected_silence(&mut self, conn: &mut Connection, now: Mono, open: bool) {
        if conn.degraded {
            // The broker said no data can flow: silence is expected,
            // and the outage runs until data proves otherwise.
            conn.live.on_data(now);
        } else if !open {
            // The market is closed: silence is expected, and the
            // subscribed connection is all the proof there can be.
            conn.live.on_data(now);
            conn.first_evidence.get_or_insert(now);
            self.on_evidence(now, self.clock.wall(), false, false);
            // Quiet for a stall's length: closed, not live.
            if self.state.get() == FeedState::Live
                && now.since(conn.last_bot_data) >= self.settings.liveness.stall_after
            {
                self.set_state(FeedState::Closed, None);
            }
        } else if self.state.get() == FeedState::Closed {
            // The market opened: live once data proves it.
            self.set_state(FeedState::Subscribed, None);
        }
    }

    /// The keepalive: a ping or poll when due, or the connection's end
    /// when a pong is overdue or the feed stalled.
    fn keep_alive(
        &self,
        session: &mut dyn Session,
        live: &mut Liveness,
        now: Mono,
    ) -> Result<(), FeedError> {
        match live.due(now) {
            None => {}
            Some(Due::Ping) => {
                session.ping()?;
                live.ping_sent(now);
            }
            Some(Due::Poll) => {
                session.poll()?;
                live.poll_sent(now);
            }
            Some(Due::PongOverdue { waited }) => {
                return Err(FeedError::stalled(format!(
                    "no pong within {}",
                    human(waited)
                )));
            }
            Some(Due::Stalled { silent_for }) => {
                return Err(FeedError::stalled(format!(
                    "no data for {} (stall_after {})",
                    human(silent_for),
                    human(self.settings.liveness.stall_after)
                )));
            }
        }
        Ok(())
    }
}

/// What the read loop keeps of one connection.
struct Connection {
    live: Liveness,
    /// The broker said no data can flow: silence is expected.
    degraded: bool,
    /// The first evidence on this connection.
    first_evidence: Option<Mono>,
    /// Its last data message for the bot.
    last_bot_data: Mono,
}

/// Stands in for the adapter while it is lent to `connect`.
struct NoAdapter;

impl Adapter for NoAdapter {
    fn connect(&mut self, _: &mut dyn ConnectProgress) -> Result<Box<dyn Session>, FeedError> {
        Err(FeedError::protocol("internal: adapter missing"))
    }
    fn has_ping(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct NullSink;

    impl FeedSink for NullSink {
        fn data(&self, _: &str, _: &str, _: SystemTime) {}
        fn reconnected(&self, _: &str, _: Duration) {}
        fn state(&self, _: &str, _: FeedState, _: Option<&str>) {}
    }

    /// Always rejected (so the feed parks); its tick counts and notes.
    struct Rejected {
        ticks: Arc<AtomicU32>,
    }

    impl Adapter for Rejected {
        fn connect(&mut self, _: &mut dyn ConnectProgress) -> Result<Box<dyn Session>, FeedError> {
            Err(FeedError::auth("token rejected"))
        }
        fn has_ping(&self) -> bool {
            false
        }
        fn tick(&mut self, _now: SystemTime) -> Vec<Action> {
            let n = self.ticks.fetch_add(1, Ordering::SeqCst) + 1;
            vec![
                Action::Note {
                    key: "ticks",
                    value: n.to_string(),
                },
                // Only a session can send: ignored here, not a panic.
                Action::send_text("never sent"),
            ]
        }
    }

    #[test]
    fn the_adapter_ticks_while_the_feed_is_parked_and_its_notes_reach_health() {
        let ticks = Arc::new(AtomicU32::new(0));
        let settings = RunnerSettings {
            liveness: LivenessConfig {
                ping_every: None,
                pong_timeout: Duration::from_secs(10),
                stall_after: Duration::from_secs(30),
                poll_every: None,
            },
            backoff: BackoffConfig::default(),
            expect: None,
            attempt_budget: Duration::from_secs(5),
            io_budget: Duration::from_secs(5),
            calendar: None,
            flap_window: Duration::from_secs(60),
        };
        let mut h = spawn(
            "parked",
            "test",
            Box::new(Rejected {
                ticks: ticks.clone(),
            }),
            settings,
            Arc::new(SystemClock::new()),
            Arc::new(NullSink),
        )
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let seen = loop {
            let s = h.health.snapshot();
            let n: u32 = s
                .info
                .get("ticks")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if (s.state == FeedState::Parked && n >= 2) || std::time::Instant::now() > deadline {
                break (s.state, n);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(seen.0, FeedState::Parked);
        assert!(seen.1 >= 2, "ticked {} times while parked", seen.1);
        // One attempt only: parked means no retries until parked_retry.
        assert_eq!(h.health.snapshot().attempts, 1);
        let _ = h.commands.send(FeedCommand::Stop);
        h.thread.take().unwrap().join().unwrap();
    }
}
