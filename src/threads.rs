//! The agent's long-lived threads: their stack sizes, and how a panic in
//! one of them is contained (docs/ARCHITECTURE.md, "A crash costs one
//! thread").
//!
//! Stacks are set deliberately instead of std's 2 MiB default (or whatever
//! `RUST_MIN_STACK` says on the host). A stack costs resident memory only
//! for the pages a thread touches, but its whole reservation is address
//! space: at 500 feeds the default was a gigabyte of it. Measured
//! high-water marks (resident pages of each stack mapping after the fault
//! soak, `/proc/PID/smaps`) are in bench/RESULTS.md; the sizes leave
//! several times that, for debug builds (larger frames) and for the deepest
//! peer input the parsers accept (serde_json stops at 128 levels of
//! nesting).
//!
//! A panic is a bug, and it must cost only the thread it happened on. The
//! release profile unwinds (`panic = "unwind"` in Cargo.toml), every
//! thread's body runs under [`catch`], and [`install_panic_hook`] replaces
//! std's hook, which prints the panic's message: a message may hold a
//! value (`panic!("bad {frame}")` with a secret in the frame), so the hook
//! records and prints only the thread's name and the code location
//! (`file:line:col`), and [`Crash`] carries nothing else.
//! [`spawn_isolated`] is the boundary for a thread that can simply run its
//! body again: it raises `alert=thread_crashed` and, by its [`Restart`]
//! policy, runs the body again after a [`CrashBackoff`] delay or lets the
//! thread end. Feed threads supervise themselves (`feed::runner`): a crash
//! there also has to be shown in the feed's state.

use crate::alert::{Alert, AlertKind};
use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, Location};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A feed thread (TLS handshake, WebSocket, JSON of the broker's messages),
/// the credential validator (HTTP over TLS) and the watchdog (it asks each
/// broker for its expected outage windows: calendar and time-zone code,
/// whose debug-build frames overflowed 128 KiB in `tests/ibkr_e2e.rs`).
pub const FEED_STACK: usize = 512 * 1024;

/// Threads that move bytes and log: credential watcher, signals,
/// fan-out accept, and each fan-out subscriber's reader and writer.
pub const SMALL_STACK: usize = 128 * 1024;

thread_local! {
    /// Where this thread's last panic happened, set by the hook and taken
    /// by [`catch`].
    static PANICKED_AT: RefCell<Option<String>> = const { RefCell::new(None) };
    /// How many [`catch`] boundaries this thread is inside.
    static CATCHING: Cell<u32> = const { Cell::new(0) };
}

/// Set by [`install_panic_hook`]: no panic anywhere shows its message (the
/// agent's binary). Without it (the library in a test harness, where
/// [`catch`] installs the hook) only panics inside a [`catch`] are
/// quiet, and a test's failed assertion still shows what failed.
static QUIET_EVERYWHERE: AtomicBool = AtomicBool::new(false);

/// `file:line:col` of a code location.
fn site(l: &Location<'_>) -> String {
    format!("{}:{}:{}", l.file(), l.line(), l.column())
}

/// Replaces std's panic hook with one that prints only the thread's name
/// and the panic's code location, never its message (module doc), and
/// records the location for [`catch`]. Called by `cli::main` before
/// anything else, so no panic of the agent shows its message.
pub fn install_panic_hook() {
    QUIET_EVERYWHERE.store(true, Ordering::SeqCst);
    install_hook_once();
}

fn install_hook_once() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let at = info
                .location()
                .map(site)
                .unwrap_or_else(|| "an unknown location".to_string());
            // `try_with`: a panic while the thread's locals are torn down.
            let caught = CATCHING.try_with(Cell::get).unwrap_or(0) > 0;
            let _ = PANICKED_AT.try_with(|p| *p.borrow_mut() = Some(at.clone()));
            if !caught && !QUIET_EVERYWHERE.load(Ordering::SeqCst) {
                return previous(info);
            }
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("unnamed");
            // stderr reaches the journal even when logging is broken (the
            // panic may have been in it); the message is left out on purpose.
            eprintln!(
                "thread '{name}' panicked at {at} (the panic's message is not shown: it may hold a secret)"
            );
        }));
    });
}

/// A panic caught at a thread boundary: where it happened, nothing else
/// (its message may hold a value, so it is dropped unread).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crash {
    /// `file:line:col`, or "an unknown location".
    pub at: String,
}

/// Runs `body`, turning a panic into a [`Crash`] that names the code
/// location. The panic's payload is dropped without being looked at.
pub fn catch<R>(body: impl FnOnce() -> R) -> Result<R, Crash> {
    install_hook_once();
    PANICKED_AT.with(|p| p.borrow_mut().take());
    CATCHING.with(|c| c.set(c.get() + 1));
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(body));
    CATCHING.with(|c| c.set(c.get() - 1));
    match outcome {
        Ok(r) => Ok(r),
        Err(payload) => {
            // Dropping a payload can itself panic (a Drop impl in it): that
            // must not escape the boundary either.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(move || drop(payload)));
            let at = PANICKED_AT
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| "an unknown location".to_string());
            Err(Crash { at })
        }
    }
}

/// How long a crashed thread waits before it runs again: doubling from
/// `base` up to `cap`, back to `base` once a run lasted `stable_after`
/// (a crash a day is not a crash loop). Pure: the run's length comes in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashBackoff {
    pub base: Duration,
    pub cap: Duration,
    pub stable_after: Duration,
    crashes: u32,
}

impl Default for CrashBackoff {
    fn default() -> Self {
        CrashBackoff::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            Duration::from_secs(300),
        )
    }
}

impl CrashBackoff {
    pub fn new(base: Duration, cap: Duration, stable_after: Duration) -> Self {
        CrashBackoff {
            base,
            cap,
            stable_after,
            crashes: 0,
        }
    }

    /// A run that lasted `ran_for` crashed: the wait before the next run.
    pub fn crashed(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= self.stable_after {
            self.crashes = 0;
        }
        let delay = self
            .base
            .saturating_mul(1u32 << self.crashes.min(16))
            .min(self.cap);
        self.crashes = self.crashes.saturating_add(1);
        delay
    }

    /// Crashes since the last stable run.
    pub fn crashes(&self) -> u32 {
        self.crashes
    }
}

/// What [`spawn_isolated`] does after the body panicked.
pub enum Restart {
    /// Raise the alert and let the thread end (what the thread did is not
    /// safe to redo); the rest of the agent keeps running.
    Never,
    /// Raise the alert, wait the [`CrashBackoff`] delay and run the body
    /// again, unless `stopping` says the owner is stopping the thread
    /// (looked at every 50 ms of the wait).
    WithBackoff {
        stopping: Box<dyn Fn() -> bool + Send>,
    },
}

/// How often a crash's backoff wait looks at [`Restart::WithBackoff`]'s
/// `stopping`.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Starts thread `name` with `stack` bytes of stack running `body` under
/// [`catch`]: a panic raises `alert=thread_crashed thread=<name> at=<file:line:col>`
/// and, by `restart`, runs `body` again after a backoff or ends the
/// thread. A body that returns ends the thread.
pub fn spawn_isolated(
    name: &str,
    stack: usize,
    restart: Restart,
    body: impl FnMut() + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    spawn_guarded(name, stack, restart, |_| {}, body)
}

/// [`spawn_isolated`], with `on_crash` run first thing after a panic,
/// before the alert and the backoff (the ha thread closes the fence: a
/// crashed election proves no leadership). A panic in `on_crash` is caught
/// too, and the thread then ends.
pub fn spawn_guarded(
    name: &str,
    stack: usize,
    restart: Restart,
    mut on_crash: impl FnMut(&Crash) + Send + 'static,
    mut body: impl FnMut() + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    install_hook_once();
    let thread = name.to_string();
    std::thread::Builder::new()
        .name(thread.clone())
        .stack_size(stack)
        .spawn(move || {
            let mut backoff = CrashBackoff::default();
            loop {
                let started = Instant::now();
                let Err(crash) = catch(&mut body) else {
                    return;
                };
                if let Err(again) = catch(|| on_crash(&crash)) {
                    crash_alert(&thread, &crash.at)
                        .with("then_at", &again.at)
                        .with("action", "not restarted: cleaning up after the crash failed too")
                        .emit();
                    return;
                }
                let stopping = match &restart {
                    Restart::Never => {
                        crash_alert(&thread, &crash.at)
                            .with(
                                "action",
                                "not restarted; the rest of the agent runs on (restart the service to get it back)",
                            )
                            .emit();
                        return;
                    }
                    Restart::WithBackoff { stopping } => stopping,
                };
                let delay = backoff.crashed(started.elapsed());
                crash_alert(&thread, &crash.at)
                    .with(
                        "action",
                        format!(
                            "restarting it in {} (crash {} in a row)",
                            crate::timefmt::human(delay),
                            backoff.crashes()
                        ),
                    )
                    .emit();
                let until = Instant::now() + delay;
                while Instant::now() < until {
                    if stopping() {
                        return;
                    }
                    std::thread::sleep(STOP_POLL.min(until.saturating_duration_since(Instant::now())));
                }
                if stopping() {
                    return;
                }
                log::warn!("thread {thread} restarted after its crash");
            }
        })
}

fn crash_alert(thread: &str, at: &str) -> Alert {
    Alert::new(AlertKind::ThreadCrashed)
        .with("thread", thread)
        .with("at", at)
}

/// A panic on purpose, for the tests of crash containment: compiled only
/// with the `fault-injection` feature, which only the test build enables
/// (a dev-dependency of the package on itself), so the shipped binary has
/// no path to it: `.ci/run` checks that [`fault::ENV`]'s name is absent
/// from the release binary.
#[cfg(feature = "fault-injection")]
pub mod fault {
    use std::path::PathBuf;
    use std::sync::OnceLock;

    /// The folder a test puts trigger files in.
    pub const ENV: &str = "BROKERGUARD_FAULT_INJECT_DIR";

    /// Panics when the file `panic-<point><name>` exists in [`ENV`]'s
    /// folder, removing it first (one file, one panic), with the file's
    /// text in the panic's message: the tests write a canary there to prove
    /// a panic's message, which may hold a value, is never shown. The
    /// panic's location is the caller's. Without [`ENV`] (read once) it
    /// costs a load, so benchmarks built with the feature measure the same.
    #[track_caller]
    pub fn panic_if_triggered(point: &str, name: &str) {
        static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
        let Some(dir) = DIR.get_or_init(|| std::env::var_os(ENV).map(PathBuf::from)) else {
            return;
        };
        let trigger = dir.join(format!("panic-{point}{name}"));
        if let Ok(text) = std::fs::read_to_string(&trigger) {
            if std::fs::remove_file(&trigger).is_ok() {
                panic!("injected fault at {point}{name}: {text}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    #[test]
    fn backoff_doubles_to_its_cap_and_resets_after_a_stable_run() {
        let s = Duration::from_secs;
        let mut b = CrashBackoff::new(s(1), s(8), s(60));
        let quick = s(1);
        let table = [
            (quick, s(1)),
            (quick, s(2)),
            (quick, s(4)),
            (quick, s(8)),
            (quick, s(8)),
            (s(60), s(1)),
            (quick, s(2)),
        ];
        for (i, (ran_for, want)) in table.into_iter().enumerate() {
            assert_eq!(b.crashed(ran_for), want, "crash #{i} after {ran_for:?}");
        }
        assert_eq!(b.crashes(), 2);
    }

    #[test]
    fn backoff_never_overflows_after_many_crashes() {
        let mut b = CrashBackoff::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            Duration::MAX,
        );
        for _ in 0..200 {
            assert!(b.crashed(Duration::ZERO) <= Duration::from_secs(60));
        }
    }

    #[test]
    fn catch_names_the_location_and_never_the_message() {
        let line = line!() + 2;
        let crash = catch(|| {
            panic!("canary-value-{}", 42);
        })
        .unwrap_err();
        assert_eq!(crash.at, format!("{}:{line}:13", file!()));
        assert!(!format!("{crash:?}").contains("canary"));
        // The next catch on this thread starts clean.
        assert_eq!(catch(|| 7), Ok(7));
    }

    #[test]
    fn an_isolated_thread_runs_again_after_a_crash_and_stops_when_asked() {
        let runs = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s, body_stop) = (runs.clone(), stop.clone(), stop.clone());
        let t = spawn_isolated(
            "crashy",
            SMALL_STACK,
            Restart::WithBackoff {
                stopping: Box::new(move || s.load(Ordering::SeqCst)),
            },
            move || {
                // Crash on the first run; the second runs until stopped.
                if r.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("first run");
                }
                while !body_stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            },
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while runs.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2, "ran again after the crash");
        stop.store(true, Ordering::SeqCst);
        t.join()
            .expect("the thread ends without a panic escaping it");
    }

    #[test]
    fn a_thread_that_must_not_restart_ends_quietly() {
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        let t = spawn_isolated("once", SMALL_STACK, Restart::Never, move || {
            r.fetch_add(1, Ordering::SeqCst);
            panic!("always");
        })
        .unwrap();
        t.join().expect("the panic did not escape the thread");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
