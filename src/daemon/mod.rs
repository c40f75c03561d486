//! The agent: lock → config → credentials → spawn → supervise → stop.
//!
//! Main owns the configuration and the credential store and is the only
//! place that decides to reload, restart or stop. Everything else reaches it
//! as an [`events::Event`] on one channel.
//!
//! See docs/ARCHITECTURE.md ("Threads, and who owns what").

pub mod blackbox;
pub mod events;
pub mod feeds;
mod ha_role;
pub mod lock;
pub mod process;
pub mod reload;
pub mod signals;
pub mod sink;
pub mod summary;
pub mod validator;
pub mod watchdog_thread;

use crate::alert::{Alert, AlertKind};
use crate::brokers::BuildContext;
use crate::clock::{Clock, SystemClock};
use crate::config::required_credentials;
use crate::config::{self, Config, ConfigError, PreflightMode};
use crate::credentials::watcher::Watcher;
use crate::credentials::{CredentialStore, Monitor, Required, Sources};
use crate::fanout::{Fanout, FanoutSettings};
use crate::feed::Layer;
use crate::feed::health::FirstConnection;
use crate::http::Http;
use crate::http::board::{Board, FeedExtra, Liveness, Published};
use crate::net::http::ClockDrift;
use crate::secret::Secret;
use crate::status::schema::ReloadStatus;
use crate::status::write::{WriteHealth, WriteNews, write_atomic_unnamed};
use crate::systemd::notify::{self, Notifier};
use events::Event;
use feeds::FeedSet;
use lock::{LockError, PidLock};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use summary::AgentInfo;
use watchdog_thread::WatchdogShared;

/// The longest main sleeps between events. Otherwise it wakes when its
/// periodic work is due (the next status.json rewrite, the next credential
/// check), not on a fixed tick; this bounds how late it sees a preflight
/// result or an embedding caller's stop flag, and keeps it well inside the
/// watchdog's `MAIN_STUCK_AFTER`.
const MAIN_MAX_WAIT: Duration = Duration::from_secs(1);
/// A clock offset beyond this (from a broker's `Date`) raises `alert=clock_drift`.
pub const CLOCK_DRIFT_LIMIT: Duration = crate::net::http::DRIFT_LIMIT;
/// A credential file change still under way (a write with the file open, a
/// delete before the re-create) is read this long after its last step; a
/// finished write (renamed into place, closed) is read at once.
const WATCH_DEBOUNCE: Duration = Duration::from_millis(100);
/// The metrics textfile is rewritten on every change and at least this
/// often (node_exporter reads it at each scrape; a write a second would
/// be a disk write a second for nothing).
const TEXTFILE_EVERY: Duration = Duration::from_secs(10);

/// Why the agent could not run (the CLI maps each to an exit code).
#[derive(Debug)]
pub enum DaemonError {
    /// The configuration is invalid (exit 78).
    Config(ConfigError),
    /// Another instance holds the lock (exit 75), or the lock folder is unusable.
    Lock(LockError),
    /// The OS refused something the agent needs (exit 71).
    Os {
        what: String,
        source: std::io::Error,
    },
    /// `preflight = "require"` and a feed failed it (exit 69).
    Preflight(Vec<String>),
    /// The HTTP listener cannot start: its address (exit 71), or off
    /// loopback its TLS files or password (exit 78).
    Http(crate::http::HttpError),
}

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DaemonError::Config(e) => write!(f, "{e}"),
            DaemonError::Lock(e) => write!(f, "{e}"),
            DaemonError::Os { what, source } => write!(f, "cannot {what}: {source}"),
            DaemonError::Http(e) => write!(f, "{e}"),
            DaemonError::Preflight(lines) => {
                write!(f, "preflight failed (agent.preflight = \"require\"):")?;
                for l in lines {
                    write!(f, "\n  {l}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for DaemonError {}

impl DaemonError {
    /// The `alert=start_failed` alerts that end a failed start: the reason,
    /// and for a configuration every problem at `file:line:col`, as
    /// `config check` names them.
    pub fn start_alerts(&self) -> Vec<Alert> {
        let alert = |reason: &str| Alert::new(AlertKind::StartFailed).with("reason", reason);
        match self {
            DaemonError::Config(ConfigError::Invalid { path, problems }) => {
                let mut out = vec![alert("config")
                    .with("file", path.display())
                    .with("problems", problems.len())
                    .with(
                        "action",
                        format!(
                            "fix them ({} lists them), then start again",
                            crate::fixcmd::with_config(path, "config check")
                        ),
                    )];
                out.extend(problems.iter().map(|p| {
                    alert("config")
                        .with("at", format!("{}:{}:{}", path.display(), p.line, p.col))
                        .with("key", &p.key)
                        .with("problem", &p.message)
                }));
                out
            }
            DaemonError::Config(e @ ConfigError::Read { path, .. }) => vec![alert("config")
                .with("file", path.display())
                .with("problem", e)],
            DaemonError::Lock(LockError::Held { pid }) => vec![alert("locked")
                .with("pid", pid.map_or("unknown".to_string(), |p| p.to_string()))
                .with("problem", self)
                .with(
                    "action",
                    "only one agent may hold the broker connections: stop the other copy, or leave it running",
                )],
            DaemonError::Lock(_) | DaemonError::Os { .. } => {
                vec![alert("os").with("problem", self)]
            }
            DaemonError::Http(_) => vec![alert("http").with("problem", self)],
            DaemonError::Preflight(failures) => {
                let mut out = vec![alert("preflight").with("feeds", failures.len()).with(
                    "action",
                    format!(
                        "agent.preflight = \"require\": fix the layer named ({}), or set preflight = \"warn\" to start degraded",
                        crate::fixcmd::command("check")
                    ),
                )];
                out.extend(
                    failures
                        .iter()
                        .map(|f| alert("preflight").with("problem", f)),
                );
                out
            }
        }
    }
}

/// Loads and validates a configuration.
pub fn load_config(path: &Path) -> Result<Config, DaemonError> {
    config::load(path).map_err(DaemonError::Config)
}

/// Options of one agent run (the demo and tests set them).
pub struct RunOptions {
    pub config_path: PathBuf,
    /// Set to stop the agent without a signal (demo, tests).
    pub stop: Option<Arc<AtomicBool>>,
    /// Install signal handlers (off when embedded in the demo).
    pub handle_signals: bool,
    /// Initialise logging from the configuration's level.
    pub init_logging: bool,
}

impl RunOptions {
    pub fn new(config_path: PathBuf) -> Self {
        RunOptions {
            config_path,
            stop: None,
            handle_signals: true,
            init_logging: true,
        }
    }
}

/// Runs the agent until a stop signal. Returns after a clean stop.
pub fn run(opts: RunOptions) -> Result<(), DaemonError> {
    // Secrets in memory must not reach a core dump (the watchdog's kill is
    // SIGABRT) or another process of the service user: non-dumpable first.
    if let Err(e) = crate::os::process::forbid_core_dumps() {
        log::warn!("cannot make the process non-dumpable (prctl PR_SET_DUMPABLE): {e}");
    }
    // Before the first thread: the arena setting applies to arenas made later.
    process::tune();
    // Signals first: a SIGTERM that arrives while we start must become a
    // clean stop, not the default action that kills us mid-way.
    let (events_tx, events) = mpsc::channel();
    let signals = if opts.handle_signals {
        let t = signals::spawn_sender(events_tx.clone(), |s| match s {
            signals::Signal::Stop => Event::Stop,
            signals::Signal::Reload => Event::Reload,
            signals::Signal::DumpBlackbox => Event::DumpBlackbox,
            signals::Signal::StepDown => Event::StepDown,
        })
        .map_err(|source| DaemonError::Os {
            what: "install signal handlers".into(),
            source,
        })?;
        Some(t)
    } else {
        None
    };
    let cfg = load_config(&opts.config_path)?;
    if opts.init_logging {
        crate::logging::init(cfg.agent.log_level);
    }
    // The lock comes before credentials and before any socket.
    let lock = PidLock::acquire(&cfg.agent.runtime_dir).map_err(DaemonError::Lock)?;
    // Before any fingerprint is shown: the host's key, the same as every
    // earlier run's (and the state folder checked: refused if another user
    // could swap its entries).
    crate::secret::fingerprint::use_host_key(&cfg.agent.state_dir).map_err(|e| {
        DaemonError::Os {
            what: "set up the fingerprint key".into(),
            source: std::io::Error::other(e.to_string()),
        }
    })?;
    log::info!(
        "brokerguard {} starting (pid {}, config {})",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        opts.config_path.display()
    );
    let channel = (events_tx, events);
    let result = Agent::start(cfg, channel, signals).map(|mut agent| {
        agent.supervise(&opts);
        agent.shutdown();
    });
    lock.release();
    result
}

/// Insecure set-ups are said out loud at start, not only by doctor:
/// credentials files every user can read, and the configuration's own
/// warnings.
fn warn_of_risky_setup(cfg: &Config) {
    for (file, mode) in
        crate::credentials::permissions::open_to_everyone(&cfg.agent.credential_files)
    {
        Alert::new(AlertKind::InsecureCredentials)
            .with("file", file.display())
            .with("mode", format!("{mode:04o}"))
            .with(
                "problem",
                "every user on this host can read the secrets in it",
            )
            .with(
                "action",
                crate::credentials::permissions::tighten_command(&file),
            )
            .emit();
    }
    for w in config::setup_warnings(cfg) {
        log::warn!("{w}");
    }
}

/// The credentials the feeds need, loaded, with the monitor's first
/// events logged.
fn load_credentials(cfg: &Config, clock: &dyn Clock) -> (Vec<Required>, CredentialStore, Monitor) {
    let required = required_credentials(cfg);
    let sources = Sources::from_process(&cfg.agent.credential_files);
    let outcome = CredentialStore::load(&sources, &required);
    let mut monitor = Monitor::new();
    let events0 = monitor.observe(clock.wall(), &required, &outcome.store, &outcome.problems);
    log_cred_events(&events0);
    (required, outcome.store, monitor)
}

/// The bot's socket, and the sink the feeds publish through.
fn start_fanout(
    cfg: &Config,
    events_tx: &Sender<Event>,
) -> Result<(Fanout, Arc<sink::DaemonSink>), DaemonError> {
    let fanout = Fanout::start(&cfg.agent.fanout_socket(), FanoutSettings::from_config(cfg))
        .map_err(|source| DaemonError::Os {
            what: format!("listen on {}", cfg.agent.fanout_socket().display()),
            source,
        })?;
    let sink = Arc::new(sink::DaemonSink {
        publisher: fanout.publisher(),
        events: Mutex::new(events_tx.clone()),
        blackbox_dir: cfg.agent.state_dir.join("blackbox"),
    });
    Ok((fanout, sink))
}

/// What the watchdog thread shares with main, main's first tick counted.
fn new_watchdog(
    cfg: &Config,
    feeds: &FeedSet,
    clock: &Arc<dyn Clock>,
    notifier: &Option<Arc<Notifier>>,
) -> Arc<WatchdogShared> {
    let watchdog = Arc::new(WatchdogShared {
        feeds: feeds.clone(),
        clock: clock.clone(),
        notifier: notifier.clone(),
        notify_every: notify::watchdog_interval(),
        main_tick_ms: Default::default(),
        beat_ms: Default::default(),
        alert_after: Mutex::new(cfg.agent.alert_after),
        alert_repeat: Mutex::new(cfg.agent.alert_repeat),
        stop: Default::default(),
    });
    watchdog.main_ticked();
    watchdog
}

struct Agent {
    cfg: Config,
    config_path: PathBuf,
    clock: Arc<dyn Clock>,
    feeds: FeedSet,
    required: Vec<Required>,
    store: CredentialStore,
    monitor: Monitor,
    fanout: Option<Fanout>,
    sink: Arc<sink::DaemonSink>,
    notifier: Option<Arc<Notifier>>,
    events: Receiver<Event>,
    events_tx: Sender<Event>,
    watchdog: Arc<WatchdogShared>,
    watchdog_thread: Option<std::thread::JoinHandle<()>>,
    watcher: Option<Watcher>,
    signals: Option<signals::SignalThread>,
    started_at: SystemTime,
    /// Ours, asked once (glibc no longer caches getpid).
    pid: u32,
    last_summary: String,
    last_status_write: Option<Instant>,
    /// Whether status.json can be written (said once, see `WriteHealth`).
    status_health: WriteHealth,
    last_cred_check: Instant,
    /// Feeds whose first-connection preflight has been logged.
    preflight_reported: Vec<String>,
    /// Every REST response's `Date`, for the clock-drift check.
    drift: Arc<ClockDrift>,
    /// When `alert=clock_drift` was last raised.
    drift_alerted: Option<Instant>,
    /// Proves credentials against brokers' REST APIs every `validate_every`.
    validator: Option<validator::Validator>,
    /// The outcome of the last SIGHUP, published in status.json.
    last_reload: Option<ReloadStatus>,
    /// What the HTTP listener and the metrics textfile show (when either
    /// is configured), and the configuration as they see it.
    board: Option<Arc<Board>>,
    shared_cfg: Arc<Config>,
    http: Option<Http>,
    /// When the metrics textfile was last written.
    last_textfile: Option<Instant>,
    /// Webhooks and the heartbeat (`[alerts]`).
    alerts: Option<crate::alerts::Alerts>,
    /// Failover (`[ha]`): the ha thread.
    ha: Option<crate::ha::HaHandle>,
}

impl Agent {
    fn start(
        cfg: Config,
        (events_tx, events): (Sender<Event>, Receiver<Event>),
        signals: Option<signals::SignalThread>,
    ) -> Result<Agent, DaemonError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
        std::fs::create_dir_all(&cfg.agent.state_dir).map_err(|source| DaemonError::Os {
            what: format!("create state_dir {}", cfg.agent.state_dir.display()),
            source,
        })?;
        warn_of_risky_setup(&cfg);
        let (required, store, monitor) = load_credentials(&cfg, &*clock);
        let (fanout, sink) = start_fanout(&cfg, &events_tx)?;
        let notifier = Notifier::from_env().map(Arc::new);
        let feeds = FeedSet::default();
        feeds.set_recorder_limits(cfg.agent.blackbox_entries, cfg.agent.blackbox_bytes);
        let watchdog = new_watchdog(&cfg, &feeds, &clock, &notifier);
        let shared_cfg = Arc::new(cfg.clone());
        let mut agent = Agent {
            config_path: cfg.path.clone(),
            cfg,
            clock,
            feeds,
            required,
            store,
            monitor,
            fanout: Some(fanout),
            sink,
            notifier,
            events,
            events_tx,
            watchdog: watchdog.clone(),
            watchdog_thread: None,
            watcher: None,
            signals,
            started_at: SystemTime::now(),
            pid: std::process::id(),
            last_summary: String::new(),
            last_status_write: None,
            status_health: WriteHealth::default(),
            last_cred_check: Instant::now(),
            preflight_reported: Vec::new(),
            drift: Arc::new(ClockDrift::default()),
            drift_alerted: None,
            validator: None,
            last_reload: None,
            board: None,
            shared_cfg,
            http: None,
            last_textfile: None,
            alerts: None,
            ha: None,
        };
        agent.start_threads(watchdog)?;
        agent.write_status(true);
        if let Some(n) = &agent.notifier {
            let _ = n.ready();
        }
        log::info!("ready: {}", agent.last_summary);
        Ok(agent)
    }

    /// Everything but main, in an order that matters: the listener before
    /// any feed (one that cannot start stops the start with nothing to
    /// undo), the webhooks before the feeds (their first alerts reach
    /// them), the feeds and their preflight before the watchdog.
    fn start_threads(&mut self, watchdog: Arc<WatchdogShared>) -> Result<(), DaemonError> {
        self.start_board();
        self.start_http()?;
        let lookup = self.lookup();
        let alerts = crate::alerts::Alerts::start(&self.cfg, &lookup, self.clock.clone());
        drop(lookup);
        self.alerts = Some(alerts);
        self.start_ha()?;
        self.start_feeds_and_preflight()?;
        self.watchdog_thread =
            Some(
                watchdog_thread::spawn(watchdog).map_err(|source| DaemonError::Os {
                    what: "start the watchdog thread".into(),
                    source,
                })?,
            );
        self.start_watcher();
        self.start_validator();
        Ok(())
    }

    /// Starts every feed this agent runs. Each feed's first connection is
    /// its preflight: with "require" the agent is not ready until every
    /// one has proved its layers, and a failure stops the start.
    fn start_feeds_and_preflight(&mut self) -> Result<(), DaemonError> {
        for f in self.cfg.feeds.clone() {
            if self.should_run(&f) {
                self.start_feed(&f)?;
            }
        }
        if self.cfg.agent.preflight == PreflightMode::Require {
            let failures = self.report_preflight(true);
            if !failures.is_empty() {
                self.feeds.stop_all(self.cfg.agent.stop_timeout);
                if let Some(a) = self.alerts.take() {
                    a.stop();
                }
                return Err(DaemonError::Preflight(failures));
            }
        }
        Ok(())
    }

    /// The credential validator, told the feeds and credentials in force.
    fn start_validator(&mut self) {
        match validator::Validator::start(self.clock.clone(), self.drift.clone()) {
            Ok(v) => {
                v.update(
                    &self.validated_feeds(),
                    &self.store,
                    &self.cfg.agent.state_dir,
                    &self.cfg.calendars,
                );
                self.validator = Some(v);
            }
            Err(e) => log::warn!("cannot start the credential validator thread: {e}"),
        }
    }

    fn lookup(&self) -> impl Fn(&str) -> Option<Secret> + Sync + '_ {
        let store = &self.store;
        move |name| store.get(name).map(|c| c.value.clone())
    }

    /// What building a feed's adapter needs, with the current credentials.
    fn build_context<'a>(
        &'a self,
        lookup: &'a (dyn Fn(&str) -> Option<Secret> + Sync),
    ) -> BuildContext<'a> {
        BuildContext::for_config(&self.cfg, lookup)
            .with_clock(self.clock.clone())
            .with_drift(self.drift.clone())
    }

    /// Logs the preflight of every feed whose first connection has
    /// finished proving its layers (or failed), once each; returns the
    /// failures logged. With `wait`, blocks until every feed is done or its
    /// deadline (attempt budget plus the first-data wait) has passed, and
    /// judges a feed still waiting for data at its deadline as failed.
    fn report_preflight(&mut self, wait: bool) -> Vec<String> {
        let mut failures = Vec::new();
        if self.cfg.agent.preflight == PreflightMode::Off {
            return failures;
        }
        let started = Instant::now();
        loop {
            let mut waiting = false;
            let snapshot: Vec<(config::FeedConfig, FirstConnection, Duration)> = self
                .feeds
                .lock()
                .iter()
                .filter(|f| !self.preflight_reported.contains(&f.config.name))
                .map(|f| {
                    let first = f
                        .handle
                        .first
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    let deadline = f.handle.settings.attempt_budget
                        + f.config.stall_after.min(crate::preflight::DATA_WAIT_MAX)
                        + Duration::from_secs(1);
                    (f.config.clone(), first, deadline)
                })
                .collect();
            for (feed, mut first, deadline) in snapshot {
                if !first.done {
                    if !(wait && started.elapsed() >= deadline) {
                        waiting = true;
                        continue;
                    }
                    first.fail(
                        Layer::Data,
                        &crate::feed::FeedError::stalled(format!(
                            "nothing within {} of starting",
                            crate::timefmt::human(deadline)
                        )),
                    );
                }
                let report = crate::preflight::report_of(&feed, &first, &|_| 0);
                match report.failure() {
                    None => log::info!("preflight feed={} passed every layer", feed.name),
                    Some(l) => {
                        let line = format!("feed={} layer={} {}", feed.name, l.layer, l.detail);
                        log::warn!("preflight {line}");
                        failures.push(line);
                    }
                }
                self.preflight_reported.push(feed.name.clone());
            }
            if !wait || !waiting {
                return failures;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn start_feed(&self, f: &config::FeedConfig) -> Result<(), DaemonError> {
        let lookup = self.lookup();
        self.feeds
            .start(
                f,
                &self.build_context(&lookup),
                self.clock.clone(),
                self.sink.clone(),
            )
            .map_err(|source| DaemonError::Os {
                what: format!("start the thread of feed {}", f.name),
                source,
            })
    }

    /// The board the listener and the metrics textfile read, when either
    /// is configured: its probes read the watchdog's beat and the fan-out's
    /// counters when asked.
    fn start_board(&mut self) {
        if self.cfg.http.is_none() && self.cfg.metrics.textfile.is_none() {
            return;
        }
        let wd = self.watchdog.clone();
        let publisher = self.sink.publisher.clone();
        let first = Published {
            doc: Default::default(),
            extra: Vec::new(),
            config: self.shared_cfg.clone(),
        };
        self.board = Some(Arc::new(Board::new(
            first,
            Box::new(move || {
                let (watchdog_beat_age, main_tick_age) = wd.liveness();
                Liveness {
                    watchdog_beat_age,
                    main_tick_age,
                    main_stuck_after: watchdog_thread::MAIN_STUCK_AFTER,
                }
            }),
            Box::new(move || publisher.stats()),
            self.started_at,
        )));
    }

    /// Starts `[http]`, if configured. Until main's first publication
    /// `/readyz` answers 503 (starting).
    fn start_http(&mut self) -> Result<(), DaemonError> {
        let (Some(cfg), Some(board)) = (&self.cfg.http, &self.board) else {
            return Ok(());
        };
        let password = self
            .store
            .get(crate::http::auth::PASSWORD_CREDENTIAL)
            .map(|c| c.value.clone());
        let http = Http::start(cfg, board.clone(), password.as_ref()).map_err(DaemonError::Http)?;
        self.http = Some(http);
        Ok(())
    }

    /// What the registry says of each feed of `doc` beyond its status.
    fn feed_extras(&self, doc: &crate::status::schema::StatusDoc) -> Vec<FeedExtra> {
        let lookup = self.lookup();
        doc.feeds
            .iter()
            .map(|fs| {
                let Some(f) = self.cfg.feeds.iter().find(|f| f.name == fs.name) else {
                    return FeedExtra::default();
                };
                FeedExtra {
                    credentials: self
                        .required
                        .iter()
                        .filter(|r| r.feed == f.name)
                        .map(|r| r.name.clone())
                        .collect(),
                    token: f.broker.token_expiry(f, &fs.info),
                    login: f.broker.login_link(f, &lookup),
                }
            })
            .collect()
    }

    /// Hands the listener the newest state, and writes the metrics textfile
    /// when due (on a change, else every [`TEXTFILE_EVERY`]).
    fn publish(&mut self, doc: &crate::status::schema::StatusDoc, force: bool) {
        let Some(board) = self.board.clone() else {
            return;
        };
        let published = Published {
            doc: doc.clone(),
            extra: self.feed_extras(doc),
            config: self.shared_cfg.clone(),
        };
        let due = force
            || self
                .last_textfile
                .is_none_or(|t| t.elapsed() >= TEXTFILE_EVERY);
        let text = self
            .cfg
            .metrics
            .textfile
            .clone()
            .filter(|_| due)
            .map(|path| {
                let inputs = crate::http::metrics::Inputs {
                    fanout: board.fanout(),
                    process: crate::http::process::read(),
                    started_at: self.started_at,
                };
                let mut text = String::new();
                crate::http::metrics::render(&published, &inputs, &mut text);
                (path, text)
            });
        board.publish(published, self.clock.wall());
        if let Some((path, text)) = text {
            self.last_textfile = Some(Instant::now());
            if let Err(e) = crate::status::write::write_bytes_atomic(&path, text.as_bytes(), 0o644)
            {
                log::warn!("metrics textfile: {e}");
            }
        }
    }

    fn start_watcher(&mut self) {
        if let Some(w) = self.watcher.take() {
            w.stop();
        }
        let tx = Mutex::new(self.events_tx.clone());
        let on_change = Box::new(move || {
            let _ = tx
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .send(Event::CredentialsChanged);
        });
        match Watcher::start(&self.cfg.agent.credential_files, WATCH_DEBOUNCE, on_change) {
            Ok(w) => self.watcher = Some(w),
            Err(e) => log::warn!(
                "cannot watch credential files ({e}); changes are seen every {} or on reload",
                crate::timefmt::human(self.cfg.agent.credential_check)
            ),
        }
    }

    fn supervise(&mut self, opts: &RunOptions) {
        loop {
            self.watchdog.main_ticked();
            if opts
                .stop
                .as_ref()
                .is_some_and(|s| s.load(Ordering::Relaxed))
            {
                return;
            }
            match self.events.recv_timeout(self.next_wait()) {
                Ok(Event::Stop) => {
                    log::info!("stop requested");
                    return;
                }
                Ok(Event::Reload) => self.reload(),
                Ok(Event::DumpBlackbox) => blackbox::write_all(&self.cfg.agent.runtime_dir),
                Ok(Event::HaChanged) => self.reconcile_ha(),
                Ok(Event::StepDown) => match &self.ha {
                    Some(ha) => {
                        log::info!("ha: step-down requested");
                        ha.step_down();
                    }
                    None => log::warn!(
                        "step-down requested, but there is no [ha] table: nothing to hand over"
                    ),
                },
                Ok(Event::CredentialsChanged) => self.reload_credentials("credential file changed"),
                Ok(Event::FeedStateChanged) => {
                    // Coalesce a burst of state changes into one write.
                    while let Ok(ev) = self.events.try_recv() {
                        if ev != Event::FeedStateChanged {
                            let _ = self.events_tx.send(ev);
                            break;
                        }
                    }
                    self.write_status(true);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            self.report_preflight(false);
            self.check_clock();
            if self.last_cred_check.elapsed() >= self.cfg.agent.credential_check {
                self.reload_credentials("periodic check");
            }
            self.write_status(false);
        }
    }

    /// SIGHUP: configuration, then credentials. A bad configuration keeps
    /// the running one. The outcome goes into status.json only once both
    /// are done, so `brokerguard reload` reports a reload that is complete.
    fn reload(&mut self) {
        if let Some(n) = &self.notifier {
            let _ = n.reloading();
        }
        log::info!("reloading {}", self.config_path.display());
        let problems = match load_config(&self.config_path) {
            Err(e) => {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or_default().to_string();
                Alert::new(AlertKind::ConfigInvalid)
                    .with("file", self.config_path.display())
                    .with("problems", text.lines().count())
                    .with("first", first)
                    .with(
                        "action",
                        "kept the running configuration; fix the file and reload",
                    )
                    .emit();
                for l in text.lines() {
                    log::warn!("config: {l}");
                }
                text.lines().map(String::from).collect()
            }
            Ok(new) => {
                self.apply_config(new);
                Vec::new()
            }
        };
        self.reload_credentials("reload");
        self.last_reload = Some(ReloadStatus {
            generation: self.last_reload.as_ref().map_or(0, |r| r.generation) + 1,
            result: if problems.is_empty() {
                ReloadStatus::APPLIED
            } else {
                ReloadStatus::REJECTED
            }
            .to_string(),
            at: crate::timefmt::rfc3339_millis(self.clock.wall()),
            problems,
        });
        self.write_status(true);
        if let Some(n) = &self.notifier {
            let _ = n.ready();
        }
    }

    fn apply_config(&mut self, new: Config) {
        if new.agent.runtime_dir != self.cfg.agent.runtime_dir {
            log::warn!("agent.runtime_dir changed: it takes effect at the next restart");
        }
        log::set_max_level(new.agent.log_level);
        // New bounds apply to feeds started from now on.
        self.feeds
            .set_recorder_limits(new.agent.blackbox_entries, new.agent.blackbox_bytes);
        *self
            .watchdog
            .alert_after
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = new.agent.alert_after;
        *self
            .watchdog
            .alert_repeat
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = new.agent.alert_repeat;
        if new.http != self.cfg.http {
            log::warn!("[http] changed: the listener takes it at the next restart");
        }
        if new.metrics != self.cfg.metrics && self.board.is_none() {
            log::warn!("[metrics] changed: the textfile is started at the next restart");
        }
        self.shared_cfg = Arc::new(new.clone());
        let old_feeds = std::mem::take(&mut self.cfg.feeds);
        let removed: Vec<String> = old_feeds
            .iter()
            .filter(|o| !new.feeds.iter().any(|n| n.name == o.name))
            .map(|o| o.name.clone())
            .collect();
        let files_changed = new.agent.credential_files != self.cfg.agent.credential_files;
        Self::ha_reload_note(&self.cfg, &new);
        let new = Config {
            ha: self.cfg.ha.clone(),
            ..new
        };
        self.required = required_credentials(&new);
        let stop_timeout = new.agent.stop_timeout;
        self.cfg = new;
        if let Some(fanout) = &self.fanout {
            fanout.set_feeds(&FanoutSettings::from_config(&self.cfg).feeds);
        }
        if !removed.is_empty() {
            log::info!("stopping removed feeds {removed:?}");
            self.feeds.stop_some(&removed, stop_timeout);
        }
        for f in self.cfg.feeds.clone() {
            match old_feeds.iter().find(|o| o.name == f.name) {
                None if !self.should_run(&f) => {
                    log::info!("new feed {} waits for the failover leadership", f.name);
                }
                None => {
                    log::info!("starting new feed {}", f.name);
                    if let Err(e) = self.start_feed(&f) {
                        log::warn!("{e}");
                    }
                }
                Some(o) if *o != f => {
                    let lookup = self.lookup();
                    self.feeds
                        .replace(&f, &self.build_context(&lookup), "configuration changed");
                }
                Some(_) => {}
            }
        }
        if files_changed {
            self.start_watcher();
        }
        if let Some(a) = &self.alerts {
            a.update(&self.cfg, &self.lookup());
        }
        // A feed that changed its standby mark may now run, or not.
        self.reconcile_ha();
        if let Some(v) = &self.validator {
            v.update(
                &self.validated_feeds(),
                &self.store,
                &self.cfg.agent.state_dir,
                &self.cfg.calendars,
            );
        }
        log::info!(
            "configuration reloaded: {}",
            crate::count::count(self.cfg.feeds.len(), "feed", "feeds")
        );
    }

    /// Re-reads every credential source; feeds whose credentials changed
    /// reconnect with the new values, the others are left alone.
    fn reload_credentials(&mut self, why: &str) {
        self.last_cred_check = Instant::now();
        let sources = Sources::from_process(&self.cfg.agent.credential_files);
        let outcome = CredentialStore::reload(&self.store, &sources, &self.required);
        let events = self.monitor.observe(
            self.clock.wall(),
            &self.required,
            &outcome.store,
            &outcome.problems,
        );
        log_cred_events(&events);
        let changed = CredentialStore::changed_feeds(&self.store, &outcome.store, &self.required);
        let old = std::mem::replace(&mut self.store, outcome.store);
        if old != self.store {
            if let Some(a) = &self.alerts {
                a.update(&self.cfg, &self.lookup());
            }
        }
        if let Some(v) = &self.validator {
            if old != self.store {
                v.update(
                    &self.validated_feeds(),
                    &self.store,
                    &self.cfg.agent.state_dir,
                    &self.cfg.calendars,
                );
            }
        }
        for name in changed {
            let Some(f) = self.cfg.feeds.iter().find(|f| f.name == name).cloned() else {
                continue;
            };
            for r in self.required.iter().filter(|r| r.feed == name) {
                let (o, n) = (old.fingerprint(&r.name), self.store.fingerprint(&r.name));
                if o != n {
                    crate::notice!(
                        "token_rotated feed={} name={} old={} new={}",
                        name,
                        r.name,
                        o.as_deref().unwrap_or("none"),
                        n.as_deref().unwrap_or("none")
                    );
                }
            }
            let lookup = self.lookup();
            self.feeds.replace(
                &f,
                &self.build_context(&lookup),
                &format!("credentials changed ({why})"),
            );
        }
        self.write_status(true);
    }

    /// `alert=clock_drift` when a broker's `Date` says our clock is off by
    /// more than [`CLOCK_DRIFT_LIMIT`]: signed APIs reject skewed requests,
    /// and a drifting droplet looks exactly like bad keys. Repeats every
    /// `alert_repeat` while it lasts.
    fn check_clock(&mut self) {
        let Some(r) = self.drift.exceeds(CLOCK_DRIFT_LIMIT) else {
            self.drift_alerted = None;
            return;
        };
        if self
            .drift_alerted
            .is_some_and(|t| t.elapsed() < self.cfg.agent.alert_repeat)
        {
            return;
        }
        self.drift_alerted = Some(Instant::now());
        Alert::new(AlertKind::ClockDrift)
            .with("offset", r.offset)
            .with("host", &r.host)
            .with("at", crate::timefmt::rfc3339(r.at))
            .with(
                "action",
                "check time sync: timedatectl status; sudo systemctl restart systemd-timesyncd",
            )
            .emit();
    }

    /// How long main may sleep before its next periodic work is due.
    fn next_wait(&self) -> Duration {
        let status = self.last_status_write.map_or(Duration::ZERO, |t| {
            self.cfg.agent.status_every.saturating_sub(t.elapsed())
        });
        let credentials = self
            .cfg
            .agent
            .credential_check
            .saturating_sub(self.last_cred_check.elapsed());
        status
            .min(credentials)
            .clamp(Duration::from_millis(1), MAIN_MAX_WAIT)
    }

    fn write_status(&mut self, force: bool) {
        let due = self
            .last_status_write
            .is_none_or(|t| t.elapsed() >= self.cfg.agent.status_every);
        if !force && !due {
            return;
        }
        let now = self.clock.mono();
        let mut health = self.feeds.health();
        health.extend(self.held_back());
        let info = AgentInfo {
            pid: self.pid,
            started_at: self.started_at,
            config: &self.config_path.to_string_lossy(),
            clock: self.drift.last(),
            checks: self
                .validator
                .as_ref()
                .map(|v| v.results())
                .unwrap_or_default(),
            reload: self.last_reload.as_ref(),
            ha: self.ha.as_ref().map(|h| h.status()),
        };
        let doc = summary::status_doc(
            &info,
            &health,
            self.store
                .states(&self.required)
                .into_iter()
                .map(Into::into)
                .collect(),
            now,
            self.clock.wall(),
        );
        let mut doc = doc;
        for fs in doc.feeds.iter_mut() {
            fs.optional = self
                .cfg
                .feeds
                .iter()
                .any(|f| f.name == fs.name && !f.required);
        }
        self.publish(&doc, force);
        let path = self.cfg.agent.status_file();
        let written = write_atomic_unnamed(&path, &doc);
        match self.status_health.observe(
            Instant::now(),
            self.cfg.agent.alert_repeat,
            &path,
            written.as_ref().err(),
        ) {
            WriteNews::Nothing => {}
            WriteNews::Alert(alert) => alert.emit(),
            WriteNews::Writable { after } => crate::notice!(
                "{} is writable again (it was not for {})",
                path.display(),
                crate::timefmt::human(after)
            ),
        }
        self.last_status_write = Some(Instant::now());
        if let Some(a) = &self.alerts {
            // The same readiness as /readyz: feeds with `required = false`
            // never fail the heartbeat.
            a.observe(&health, crate::status::ready::is_ready(&doc));
        }
        let line = doc.agent.summary.clone();
        if line != self.last_summary {
            if let Some(n) = &self.notifier {
                let _ = n.status(&line);
            }
            self.last_summary = line;
        }
    }

    fn shutdown(mut self) {
        log::info!("stopping");
        if let Some(h) = self.http.take() {
            h.stop();
        }
        if let Some(n) = &self.notifier {
            let _ = n.stopping();
        }
        self.feeds.stop_all(self.cfg.agent.stop_timeout);
        if let Some(a) = self.alerts.take() {
            a.stop();
        }
        // After the feeds: a leader releases its lease so the standby takes
        // over at once.
        if let Some(ha) = self.ha.take() {
            ha.set_private_stopped(true);
            ha.stop();
        }
        self.watchdog.stop.request();
        if let Some(t) = self.watchdog_thread.take() {
            let _ = t.join();
        }
        if let Some(w) = self.watcher.take() {
            w.stop();
        }
        if let Some(v) = self.validator.take() {
            v.stop();
        }
        if let Some(f) = self.fanout.take() {
            f.stop();
        }
        if let Some(s) = self.signals.take() {
            s.close();
        }
        let _ = std::fs::remove_file(self.cfg.agent.status_file());
        log::info!("stopped cleanly");
    }
}

fn log_cred_events(events: &[crate::credentials::CredEvent]) {
    // Rotations are logged per feed by `reload_credentials`, with the feed's name.
    for e in events
        .iter()
        .filter(|e| !matches!(e, crate::credentials::CredEvent::Rotated { .. }))
    {
        e.emit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Problem;

    #[test]
    fn start_failure_alerts_name_each_problem_and_escape_quotes() {
        let e = DaemonError::Config(ConfigError::Invalid {
            path: PathBuf::from("/etc/brokerguard/brokerguard.toml"),
            problems: vec![Problem {
                line: 12,
                col: 1,
                key: "feed[0].stal_after".into(),
                message: "unknown key; did you mean \"stall_after\"?".into(),
            }],
        });
        let lines: Vec<String> = e.start_alerts().iter().map(|a| a.to_string()).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with(
                "alert=start_failed reason=config file=/etc/brokerguard/brokerguard.toml problems=1 action=\""
            ),
            "{lines:?}"
        );
        assert_eq!(
            lines[1],
            "alert=start_failed reason=config at=/etc/brokerguard/brokerguard.toml:12:1 key=feed[0].stal_after problem=\"unknown key; did you mean \\\"stall_after\\\"?\""
        );
        let held: Vec<String> = DaemonError::Lock(LockError::Held { pid: Some(42) })
            .start_alerts()
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert!(
            held[0].starts_with("alert=start_failed reason=locked pid=42 problem=\"another brokerguard is running (pid 42)\""),
            "{held:?}"
        );
        let pre: Vec<String> = DaemonError::Preflight(vec!["feed=a layer=tcp refused".into()])
            .start_alerts()
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(pre.len(), 2);
        assert_eq!(
            pre[1],
            "alert=start_failed reason=preflight problem=\"feed=a layer=tcp refused\""
        );
        assert!(
            lines
                .iter()
                .chain(&held)
                .chain(&pre)
                .all(|l| l.starts_with("alert="))
        );
    }
}
