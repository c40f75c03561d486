//! The credential validator thread: every `validate_every`, each feed
//! whose broker has a REST credential check proves its credentials with it
//! (`Broker::validate_credentials`). A rejection raises
//! `alert=credential_rejected` before the feed's own next connection would
//! find out; an outage of the REST API is only a warning. Results are kept
//! for status.json. Main hands over the feeds and credentials in force on
//! every change; the thread never blocks main (each call is bounded by the
//! feed's HTTP timeouts).

use crate::alert::{Alert, AlertKind};
use crate::brokers::BuildContext;
use crate::clock::{Clock, Mono};
use crate::config::FeedConfig;
use crate::credentials::CredentialStore;
use crate::feed::{ErrorClass, FeedError};
use crate::net::http::ClockDrift;
use crate::timefmt::rfc3339;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// The outcome of the last check of one feed's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validation {
    pub at: SystemTime,
    pub ok: bool,
    /// What was proven, or why not (never a secret).
    pub detail: String,
}

/// What main shares with the thread.
#[derive(Default)]
struct Input {
    feeds: Vec<FeedConfig>,
    store: CredentialStore,
    state_dir: PathBuf,
    calendars: crate::config::CalendarsConfig,
    stop: bool,
    /// Bumped on every change, so the thread re-plans at once.
    generation: u64,
}

pub struct Validator {
    input: Arc<(Mutex<Input>, Condvar)>,
    results: Arc<Mutex<BTreeMap<String, Validation>>>,
    thread: Option<JoinHandle<()>>,
}

impl Validator {
    pub fn start(clock: Arc<dyn Clock>, drift: Arc<ClockDrift>) -> std::io::Result<Validator> {
        let input: Arc<(Mutex<Input>, Condvar)> = Arc::default();
        let results: Arc<Mutex<BTreeMap<String, Validation>>> = Arc::default();
        let (i, r) = (input.clone(), results.clone());
        let stopping = input.clone();
        // A panic (a bug) restarts the thread, which then checks every
        // feed again at once.
        let thread = crate::threads::spawn_isolated(
            "validator",
            crate::threads::FEED_STACK,
            crate::threads::Restart::WithBackoff {
                stopping: Box::new(move || {
                    stopping.0.lock().unwrap_or_else(|p| p.into_inner()).stop
                }),
            },
            move || run(i.clone(), r.clone(), clock.clone(), drift.clone()),
        )?;
        Ok(Validator {
            input,
            results,
            thread: Some(thread),
        })
    }

    /// The feeds and credentials now in force (after start, a reload or a
    /// credential change): changed feeds are checked again at once.
    pub fn update(
        &self,
        feeds: &[FeedConfig],
        store: &CredentialStore,
        state_dir: &Path,
        calendars: &crate::config::CalendarsConfig,
    ) {
        let (m, cv) = &*self.input;
        let mut i = m.lock().unwrap_or_else(|p| p.into_inner());
        i.feeds = feeds.to_vec();
        i.store = store.clone();
        i.state_dir = state_dir.to_path_buf();
        i.calendars = calendars.clone();
        i.generation += 1;
        cv.notify_all();
    }

    pub fn results(&self) -> BTreeMap<String, Validation> {
        self.results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn stop(mut self) {
        {
            let (m, cv) = &*self.input;
            m.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
            cv.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    input: Arc<(Mutex<Input>, Condvar)>,
    results: Arc<Mutex<BTreeMap<String, Validation>>>,
    clock: Arc<dyn Clock>,
    drift: Arc<ClockDrift>,
) {
    let mut schedule = Schedule::default();
    while let Some(snapshot) = wait_until_due(&input, &mut schedule, &*clock) {
        check_due(&snapshot, &mut schedule, &results, &clock, &drift);
    }
}

/// What the checks run with: main's input as it was when one fell due.
struct Snapshot {
    feeds: Vec<FeedConfig>,
    store: CredentialStore,
    state_dir: PathBuf,
    calendars: crate::config::CalendarsConfig,
}

/// When each feed's check is next due.
#[derive(Default)]
struct Schedule {
    /// feed name → (the config it was checked with, when it is next due).
    due: BTreeMap<String, (FeedConfig, Mono)>,
    /// The input's generation last planned for.
    seen_generation: u64,
}

impl Schedule {
    /// Plans again when main's input changed: a feed whose config changed
    /// is due now; removed feeds are forgotten; and since the credentials
    /// may have changed, every feed is checked again now.
    fn replan(&mut self, input: &Input, now: Mono) {
        if input.generation == self.seen_generation {
            return;
        }
        self.seen_generation = input.generation;
        self.due
            .retain(|name, _| input.feeds.iter().any(|f| &f.name == name));
        for f in &input.feeds {
            match self.due.get(&f.name) {
                Some((old, _)) if old == f => {}
                _ => {
                    self.due.insert(f.name.clone(), (f.clone(), now));
                }
            }
        }
        for (_, at) in self.due.values_mut() {
            *at = now;
        }
    }

    /// When the next check is due (feeds with `validate_every = 0` are
    /// never checked).
    fn next(&self) -> Option<Mono> {
        self.due
            .values()
            .filter(|(f, _)| !f.validate_every.is_zero())
            .map(|(_, at)| *at)
            .min()
    }
}

/// Waits until a check is due (woken by main's changes, at least once a
/// minute) and takes a snapshot of the input; `None` when stopped.
fn wait_until_due(
    input: &(Mutex<Input>, Condvar),
    schedule: &mut Schedule,
    clock: &dyn Clock,
) -> Option<Snapshot> {
    let (m, cv) = input;
    loop {
        let i = m.lock().unwrap_or_else(|p| p.into_inner());
        if i.stop {
            return None;
        }
        schedule.replan(&i, clock.mono());
        let now = clock.mono();
        let wait = match schedule.next() {
            Some(at) if at <= now => {
                return Some(Snapshot {
                    feeds: i.feeds.clone(),
                    store: i.store.clone(),
                    state_dir: i.state_dir.clone(),
                    calendars: i.calendars.clone(),
                });
            }
            Some(at) => at.since(now).min(Duration::from_secs(60)),
            None => Duration::from_secs(60),
        };
        let _ = cv.wait_timeout(i, wait);
    }
}

/// Checks every feed that is due and records the outcomes.
fn check_due(
    snapshot: &Snapshot,
    schedule: &mut Schedule,
    results: &Mutex<BTreeMap<String, Validation>>,
    clock: &Arc<dyn Clock>,
    drift: &Arc<ClockDrift>,
) {
    let now = clock.mono();
    let lookup = |name: &str| snapshot.store.get(name).map(|c| c.value.clone());
    let ctx = BuildContext {
        calendars: snapshot.calendars.clone(),
        alert_after: Duration::from_secs(60),
        ..BuildContext::new(&lookup, snapshot.state_dir.clone())
    }
    .with_clock(clock.clone())
    .with_drift(drift.clone());
    for f in snapshot
        .feeds
        .iter()
        .filter(|f| !f.validate_every.is_zero())
    {
        let Some((_, at)) = schedule.due.get(&f.name) else {
            continue;
        };
        if *at > now {
            continue;
        }
        let next = now.plus(f.validate_every);
        schedule.due.insert(f.name.clone(), (f.clone(), next));
        let Some(outcome) = f.broker.validate_credentials(f, &ctx) else {
            // No REST check for this broker: never due again.
            schedule
                .due
                .insert(f.name.clone(), (f.clone(), Mono(Duration::MAX)));
            continue;
        };
        let previous = results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&f.name)
            .cloned();
        let result = judge(f, outcome, previous.as_ref(), &**clock);
        results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(f.name.clone(), result);
    }
}

/// One check's outcome, said and kept: a rejection raises
/// `alert=credential_rejected`; an outage of the REST API is a warning and
/// keeps the last verdict; passing after a rejection is a notice.
fn judge(
    f: &FeedConfig,
    outcome: Result<String, FeedError>,
    previous: Option<&Validation>,
    clock: &dyn Clock,
) -> Validation {
    match outcome {
        Ok(detail) => {
            if previous.is_some_and(|p| !p.ok) {
                crate::notice!("feed={} credentials accepted again: {detail}", f.name);
            }
            Validation {
                at: clock.wall(),
                ok: true,
                detail,
            }
        }
        Err(e) if e.class == ErrorClass::Auth => {
            Alert::new(AlertKind::CredentialRejected)
                .with("feed", &f.name)
                .with("broker", f.broker.name())
                .with_opt("account", f.account.as_deref())
                .with("class", e.class.as_str())
                .with("error", &e.message)
                .with("checked", "REST credential check (validate_every)")
                .emit();
            Validation {
                at: clock.wall(),
                ok: false,
                detail: e.message,
            }
        }
        Err(e) => {
            log::warn!(
                "feed={} could not validate its credentials ({}): {}",
                f.name,
                e.class.as_str(),
                e.message
            );
            Validation {
                at: clock.wall(),
                ok: previous.is_some_and(|p| p.ok),
                detail: format!("not checked at {}: {}", rfc3339(clock.wall()), e.message),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brokers::{BrokerRef, websocket};

    fn feed(name: &str, every_s: u64) -> FeedConfig {
        let mut f = FeedConfig::new(name, BrokerRef(&websocket::BROKER));
        f.validate_every = Duration::from_secs(every_s);
        f
    }

    fn input(generation: u64, feeds: Vec<FeedConfig>) -> Input {
        Input {
            feeds,
            generation,
            ..Input::default()
        }
    }

    #[test]
    fn a_change_makes_every_feed_due_now_and_forgets_removed_ones() {
        let t = |s: u64| Mono(Duration::from_secs(s));
        let mut s = Schedule::default();
        // Nothing from main yet: nothing is due.
        s.replan(&input(0, vec![feed("a", 60)]), t(1));
        assert_eq!(s.next(), None);
        s.replan(&input(1, vec![feed("a", 60), feed("b", 0)]), t(5));
        assert_eq!(s.next(), Some(t(5)), "new feeds are due at once");
        // Checked: next due a period later; the same generation changes nothing.
        s.due.insert("a".into(), (feed("a", 60), t(65)));
        s.replan(&input(1, vec![feed("a", 60)]), t(10));
        assert_eq!(s.next(), Some(t(65)));
        assert!(s.due.contains_key("b"));
        // A new generation (a credential may have changed): due now, b gone.
        s.replan(&input(2, vec![feed("a", 60)]), t(20));
        assert_eq!(s.next(), Some(t(20)));
        assert_eq!(s.due.keys().collect::<Vec<_>>(), vec!["a"]);
        // A feed that is never checked is never due.
        s.replan(&input(3, vec![feed("b", 0)]), t(30));
        assert_eq!(s.next(), None);
    }
}
