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
use crate::feed::ErrorClass;
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
    let (m, cv) = &*input;
    // feed name → (the config it was checked with, when it is next due).
    let mut due: BTreeMap<String, (FeedConfig, Mono)> = BTreeMap::new();
    let mut seen_generation = 0;
    loop {
        let (feeds, store, state_dir, calendars) = {
            let i = m.lock().unwrap_or_else(|p| p.into_inner());
            if i.stop {
                return;
            }
            if i.generation != seen_generation {
                seen_generation = i.generation;
                // A feed whose config changed is due now; removed feeds are forgotten.
                let now = clock.mono();
                due.retain(|name, _| i.feeds.iter().any(|f| &f.name == name));
                for f in &i.feeds {
                    match due.get(&f.name) {
                        Some((old, _)) if old == f => {}
                        _ => {
                            due.insert(f.name.clone(), (f.clone(), now));
                        }
                    }
                }
                // Credentials changed: check everything again now.
                for (_, at) in due.values_mut() {
                    *at = now;
                }
            }
            let now = clock.mono();
            let next = due
                .values()
                .filter(|(f, _)| !f.validate_every.is_zero())
                .map(|(_, at)| *at)
                .min();
            match next {
                Some(at) if at <= now => (
                    i.feeds.clone(),
                    i.store.clone(),
                    i.state_dir.clone(),
                    i.calendars.clone(),
                ),
                Some(at) => {
                    let _ = cv.wait_timeout(i, at.since(now).min(Duration::from_secs(60)));
                    continue;
                }
                None => {
                    let _ = cv.wait_timeout(i, Duration::from_secs(60));
                    continue;
                }
            }
        };
        let now = clock.mono();
        let lookup = |name: &str| store.get(name).map(|c| c.value.clone());
        let ctx = BuildContext {
            lookup: &lookup,
            clock: clock.clone(),
            state_dir,
            drift: drift.clone(),
            calendars,
            alert_after: Duration::from_secs(60),
        };
        for f in feeds.iter().filter(|f| !f.validate_every.is_zero()) {
            let Some((_, at)) = due.get(&f.name) else {
                continue;
            };
            if *at > now {
                continue;
            }
            let next = now.plus(f.validate_every);
            due.insert(f.name.clone(), (f.clone(), next));
            let Some(outcome) = f.broker.validate_credentials(f, &ctx) else {
                // No REST check for this broker: never due again.
                due.insert(f.name.clone(), (f.clone(), Mono(Duration::MAX)));
                continue;
            };
            let previous = results
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&f.name)
                .cloned();
            let result = match outcome {
                Ok(detail) => {
                    if previous.as_ref().is_some_and(|p| !p.ok) {
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
                        ok: previous.as_ref().is_some_and(|p| p.ok),
                        detail: format!("not checked at {}: {}", rfc3339(clock.wall()), e.message),
                    }
                }
            };
            results
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(f.name.clone(), result);
        }
    }
}
