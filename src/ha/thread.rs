//! The ha thread: drives the [`Election`] against etcd, keeps the process's
//! fence (`crate::fence`) open exactly while this agent is a renewed
//! leader, records the leader's nonce high-water mark in etcd, and tells
//! main (through a callback) every time the role changes, so main starts
//! or stops the private feeds.
//!
//! Order matters at every change. Becoming leader: raise the local nonce
//! counters above what the old leader recorded, open the fence, then tell
//! main. Losing leadership: close the fence first (nothing private goes
//! out from that instant), then tell main, then — when stepping down —
//! wait for main to report the private feeds stopped before revoking the
//! lease, so the standby cannot win while a session is still open here.

use super::election::{Answer, Call, Change, Election, Holder, Role};
use super::etcd::Etcd;
use crate::alert::{Alert, AlertKind};
use crate::clock::{Clock, Mono};
use crate::config::HaConfig;
use crate::nonce::NonceStore;
use crate::timefmt::human;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// A standby campaigns this often, so it wins within this much of the old
/// lease's expiry.
pub const CAMPAIGN_EVERY: Duration = Duration::from_millis(250);
/// How often the leader records its nonce high-water mark.
pub const NONCE_RECORD_EVERY: Duration = Duration::from_secs(1);
/// Added to the recorded mark on taking over, in microseconds of the old
/// leader's clock: it may have drawn nonces after its last record for one
/// record interval, and, when etcd stopped answering, until it fenced
/// itself half a lease later; plus a second for a slow record.
pub fn nonce_margin_us(lease: Duration) -> u64 {
    (lease / 2 + NONCE_RECORD_EVERY + Duration::from_secs(1)).as_micros() as u64
}

/// What status, `ha status` and the page show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaStatus {
    pub node: String,
    pub cluster: String,
    /// "starting", "leader", "standby".
    pub role: &'static str,
    /// The leadership's epoch (the key's create revision) this agent holds
    /// or last saw.
    pub epoch: Option<i64>,
    /// The node holding the key, when known.
    pub holder: Option<String>,
    pub since: SystemTime,
    pub etcd_reachable: bool,
    pub last_error: Option<String>,
    pub lease_ttl: Duration,
}

#[derive(Default)]
struct Commands {
    stop: bool,
    step_down: bool,
}

struct Shared {
    status: Mutex<HaStatus>,
    commands: Mutex<Commands>,
    wake: Condvar,
    /// Set by main: no private feed runs in this process.
    private_stopped: AtomicBool,
}

/// The running ha thread.
pub struct HaHandle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl HaHandle {
    /// Starts the thread. `on_change` runs on it after every role change
    /// (main's event channel); `nonces` is this agent's state folder.
    pub fn start(
        cfg: &HaConfig,
        nonces: NonceStore,
        clock: Arc<dyn Clock>,
        on_change: Box<dyn Fn() + Send>,
    ) -> Result<HaHandle, String> {
        // A call must be answered well within a third of the lease.
        let timeout = (cfg.lease / 5).clamp(Duration::from_millis(200), Duration::from_secs(2));
        let etcd = Etcd::new(&cfg.etcd, cfg.ca_file.clone(), timeout).map_err(|e| e.to_string())?;
        let fence = crate::fence::install();
        fence.close();
        let shared = Arc::new(Shared {
            status: Mutex::new(HaStatus {
                node: cfg.node.clone(),
                cluster: cfg.cluster.clone(),
                role: "starting",
                epoch: None,
                holder: None,
                since: clock.wall(),
                etcd_reachable: true,
                last_error: None,
                lease_ttl: cfg.lease,
            }),
            commands: Mutex::new(Commands::default()),
            wake: Condvar::new(),
            private_stopped: AtomicBool::new(true),
        });
        let worker = Worker {
            shared: shared.clone(),
            etcd,
            nonces,
            clock,
            on_change,
            key: format!("/brokerguard/{}/leader", cfg.cluster),
            nonce_key: format!("/brokerguard/{}/nonce", cfg.cluster),
            node: cfg.node.clone(),
            stop_timeout: Duration::from_secs(10),
            last_nonce_record: None,
            recorded: None,
            origin: Instant::now(),
        };
        let mut first = Some(Election::new(
            &cfg.node,
            cfg.lease,
            CAMPAIGN_EVERY,
            Mono::default(),
        ));
        let (node, lease) = (cfg.node.clone(), cfg.lease);
        let stopping = shared.clone();
        let mut worker = worker;
        // A panic (a bug) closes the fence before anything else: a crashed
        // election proves no leadership, so no private feed may act until
        // the restarted thread wins a lease again.
        let thread = crate::threads::spawn_guarded(
            "ha",
            crate::threads::SMALL_STACK * 2,
            crate::threads::Restart::WithBackoff {
                stopping: Box::new(move || lock(&stopping.commands).stop),
            },
            |_| crate::fence::install().close(),
            move || {
                let election = match first.take() {
                    Some(e) => e,
                    None => {
                        // Restarted after a crash: campaign afresh, and
                        // have main stop the private feeds meanwhile.
                        worker.update(|s| {
                            s.role = "standby";
                            s.holder = None;
                            s.epoch = None;
                        });
                        (worker.on_change)();
                        Election::new(&node, lease, CAMPAIGN_EVERY, worker.now())
                    }
                };
                worker.run(election)
            },
        )
        .map_err(|e| format!("cannot start the ha thread: {e}"))?;
        Ok(HaHandle {
            shared,
            thread: Some(thread),
        })
    }

    pub fn status(&self) -> HaStatus {
        lock(&self.shared.status).clone()
    }

    pub fn is_leader(&self) -> bool {
        self.status().role == "leader"
    }

    /// Main reports whether any private feed runs in this process.
    pub fn set_private_stopped(&self, stopped: bool) {
        self.shared.private_stopped.store(stopped, Ordering::SeqCst);
        self.shared.wake.notify_all();
    }

    /// `brokerguard ha step-down`: hand the lease over.
    pub fn step_down(&self) {
        lock(&self.shared.commands).step_down = true;
        self.shared.wake.notify_all();
    }

    /// Stops the thread; a leader revokes its lease on the way out, so the
    /// standby takes over at once instead of after the TTL. Call after the
    /// private feeds are stopped.
    pub fn stop(mut self) {
        lock(&self.shared.commands).stop = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Worker {
    shared: Arc<Shared>,
    etcd: Etcd,
    nonces: NonceStore,
    clock: Arc<dyn Clock>,
    on_change: Box<dyn Fn() + Send>,
    key: String,
    nonce_key: String,
    node: String,
    stop_timeout: Duration,
    last_nonce_record: Option<Instant>,
    recorded: Option<u64>,
    /// The election's monotonic time is time since this instant, so the
    /// fence's deadline is an `Instant`.
    origin: Instant,
}

impl Worker {
    fn now(&self) -> Mono {
        Mono(self.origin.elapsed())
    }

    fn run(&mut self, mut election: Election) {
        loop {
            let (stop, step_down) = {
                let mut c = lock(&self.shared.commands);
                (c.stop, std::mem::take(&mut c.step_down))
            };
            let now = self.now();
            let mut changes = election.tick(now);
            if step_down {
                changes.extend(election.step_down(now));
            }
            self.publish(&election, changes);
            if stop {
                if let Some(lease) = election.lease() {
                    self.wait_private_stopped();
                    if let Err(e) = self.etcd.revoke(lease) {
                        log::warn!(
                            "ha: could not release the lease on the way out: {e}; the standby takes over when it expires"
                        );
                    } else {
                        log::info!("ha: lease released");
                    }
                }
                return;
            }
            if let Some(call) = election.next_call(now) {
                if matches!(call, Call::Revoke(_)) {
                    // Never let the standby win while a private session
                    // may still be open here.
                    self.wait_private_stopped();
                }
                let sent = self.now();
                let answer = self.execute(call);
                let changes = election.answer(call, sent, answer, self.now());
                self.publish(&election, changes);
                continue;
            }
            if election.role().is_leader() {
                self.record_nonces();
            }
            let wake = election.wake_at(self.now());
            let mut wait = wake.0.saturating_sub(self.now().0);
            if election.role().is_leader() {
                wait = wait.min(NONCE_RECORD_EVERY);
            }
            let c = lock(&self.shared.commands);
            if !c.stop && !c.step_down && !wait.is_zero() {
                let _ = self.shared.wake.wait_timeout(c, wait);
            }
        }
    }

    fn wait_private_stopped(&self) {
        let deadline = Instant::now() + self.stop_timeout;
        let mut c = lock(&self.shared.commands);
        while !self.shared.private_stopped.load(Ordering::SeqCst) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log::warn!(
                    "ha: private feeds still running after {}; releasing the lease anyway (the fence holds them)",
                    human(self.stop_timeout)
                );
                return;
            }
            c = self
                .shared
                .wake
                .wait_timeout(c, left.min(Duration::from_millis(100)))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    fn execute(&self, call: Call) -> Answer {
        let result = match call {
            Call::Grant => self
                .etcd
                .grant(lock(&self.shared.status).lease_ttl)
                .map(|(lease, ttl)| Answer::Granted { lease, ttl }),
            Call::KeepAlive(id) => self
                .etcd
                .keepalive(id)
                .map(|ttl_left| Answer::KeptAlive { ttl_left }),
            Call::Campaign(id) => self.etcd.campaign(&self.key, &self.node, id),
            Call::Revoke(id) => self.etcd.revoke(id).map(|()| Answer::Revoked),
        };
        result.unwrap_or_else(|e| Answer::Failed(e.to_string()))
    }

    /// The fence follows the election at every step; then each change is
    /// logged, alerted and published.
    fn publish(&mut self, election: &Election, changes: Vec<Change>) {
        let fence = crate::fence::install();
        match election.fence_open_until() {
            Some(until) => fence.open_until(Some(self.origin + until.0)),
            None => fence.close(),
        }
        if changes.is_empty() {
            return;
        }
        let mut role_changed = false;
        for change in changes {
            match change {
                Change::Leader {
                    epoch,
                    took_over_from,
                } => {
                    // Nonces first: main starts the private feeds on the
                    // event below, and their first signed call must be
                    // above everything the old leader sent.
                    self.raise_nonces();
                    self.update(|s| {
                        s.role = "leader";
                        s.epoch = Some(epoch);
                        s.holder = Some(s.node.clone());
                    });
                    match took_over_from {
                        Some(from) => Alert::new(AlertKind::HaTakeover)
                            .with("node", &self.node)
                            .with("from", from)
                            .with("epoch", epoch)
                            .emit(),
                        None => log::info!("ha: {} is the leader (epoch {epoch})", self.node),
                    }
                    role_changed = true;
                }
                Change::Fenced(reason) => {
                    self.update(|s| {
                        s.role = "standby";
                        s.holder = None;
                    });
                    Alert::new(AlertKind::HaFenced)
                        .with("node", &self.node)
                        .with("reason", reason.to_string())
                        .with("action", "private feeds stopped; campaigning again")
                        .emit();
                    role_changed = true;
                }
                Change::Standby { holder } => {
                    let (node, epoch) = match &holder {
                        Some(Holder { node, epoch, .. }) => (Some(node.clone()), Some(*epoch)),
                        None => (None, None),
                    };
                    if let Some(n) = &node {
                        log::info!(
                            "ha: standby; {n} holds the lease (epoch {})",
                            epoch.unwrap_or(0)
                        );
                    }
                    self.update(|s| {
                        s.role = "standby";
                        s.holder = node;
                        s.epoch = epoch;
                    });
                    role_changed = true;
                }
                Change::Unreachable { error } => {
                    self.update(|s| {
                        s.etcd_reachable = false;
                        s.last_error = Some(error.clone());
                    });
                    Alert::new(AlertKind::HaEtcdUnreachable)
                        .with("node", &self.node)
                        .with("error", &error)
                        .with(
                            "action",
                            match election.role() {
                                Role::Leader { .. } => format!(
                                    "the leader fences itself {} after its last renewal unless etcd answers",
                                    human(election.ttl() / 2)
                                ),
                                _ => "no takeover is possible until etcd answers".to_string(),
                            },
                        )
                        .emit();
                    role_changed = true;
                }
                Change::Reachable { after } => {
                    self.update(|s| s.etcd_reachable = true);
                    log::info!("ha: etcd answers again after {}", human(after));
                    role_changed = true;
                }
            }
        }
        if role_changed {
            let now = self.clock.wall();
            self.update(|s| s.since = now);
            (self.on_change)();
        }
    }

    fn update(&self, f: impl FnOnce(&mut HaStatus)) {
        f(&mut lock(&self.shared.status));
    }

    /// Raises this host's nonce counters above the last mark the old
    /// leader recorded (plus [`nonce_margin_us`]).
    fn raise_nonces(&mut self) {
        match self.etcd.get(&self.nonce_key) {
            Ok(Some((value, _))) => {
                let mark = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok());
                if let Some(mark) = mark {
                    let lease = lock(&self.shared.status).lease_ttl;
                    let floor = mark.saturating_add(nonce_margin_us(lease));
                    match self.nonces.raise_floor(floor) {
                        Ok(()) => log::info!(
                            "ha: nonces start above {floor} (the last leader recorded {mark})"
                        ),
                        Err(e) => log::error!("ha: cannot raise the nonce counters: {e}"),
                    }
                    self.recorded = Some(floor);
                }
            }
            Ok(None) => {}
            Err(e) => log::warn!("ha: cannot read the last leader's nonce mark: {e}"),
        }
    }

    /// Records this leader's nonce high-water mark, at most once a second
    /// and only when it moved.
    fn record_nonces(&mut self) {
        if self
            .last_nonce_record
            .is_some_and(|t| t.elapsed() < NONCE_RECORD_EVERY)
        {
            return;
        }
        self.last_nonce_record = Some(Instant::now());
        let Ok(Some(high)) = self.nonces.high_water() else {
            return;
        };
        if self.recorded.is_some_and(|r| r >= high) {
            return;
        }
        match self.etcd.put(&self.nonce_key, high.to_string().as_bytes()) {
            Ok(()) => self.recorded = Some(high),
            Err(e) => log::debug!("ha: cannot record the nonce mark: {e}"),
        }
    }
}
