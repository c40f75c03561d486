//! The fence: a process-wide gate that a failover leader keeps open only
//! while its etcd lease is provably its own, and that every private feed's
//! session checks before it opens a connection or sends a byte.
//!
//! Why a gate and not only "stop the feeds": stopping is main's work, and
//! main may be slow, or the whole process may have been paused (SIGSTOP, a
//! frozen VM) past its lease while a standby took over. On waking, each
//! feed thread's next step is a send or a connect, and the gate answers
//! from the monotonic clock alone: past the deadline the ha thread last
//! set, nothing goes out, whatever any thread has or has not noticed yet.
//!
//! Off (no `[ha]`): never installed, every check passes. A feed's thread
//! is marked as guarded when its adapter is a private one
//! ([`guard_this_thread`]); public feeds (`standby = true`) are never held.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Open until a monotonic instant (ns since `origin`); 0 means closed.
#[derive(Debug)]
pub struct Fence {
    origin: Instant,
    open_until_ns: AtomicU64,
}

impl Default for Fence {
    fn default() -> Self {
        Fence::new()
    }
}

impl Fence {
    /// A closed fence.
    pub fn new() -> Fence {
        Fence {
            origin: Instant::now(),
            open_until_ns: AtomicU64::new(0),
        }
    }

    /// Opens the gate until `deadline` (or closes it: `None`).
    pub fn open_until(&self, deadline: Option<Instant>) {
        let ns = deadline
            .map(|d| d.saturating_duration_since(self.origin).as_nanos() as u64)
            .unwrap_or(0);
        self.open_until_ns.store(ns, Ordering::SeqCst);
    }

    pub fn close(&self) {
        self.open_until_ns.store(0, Ordering::SeqCst);
    }

    /// Whether a private session may act at `now`.
    pub fn is_open_at(&self, now: Instant) -> bool {
        let until = self.open_until_ns.load(Ordering::SeqCst);
        until != 0 && (now.saturating_duration_since(self.origin).as_nanos() as u64) < until
    }

    pub fn is_open(&self) -> bool {
        self.is_open_at(Instant::now())
    }

    /// How long the gate stays open from now (zero when closed).
    pub fn open_for(&self) -> Duration {
        let until = self.open_until_ns.load(Ordering::SeqCst);
        let now = Instant::now()
            .saturating_duration_since(self.origin)
            .as_nanos() as u64;
        Duration::from_nanos(until.saturating_sub(now))
    }
}

static FENCE: OnceLock<Fence> = OnceLock::new();

/// The process's fence, installed (closed) by the daemon when `[ha]` is
/// configured. Installing twice returns the one already there.
pub fn install() -> &'static Fence {
    FENCE.get_or_init(Fence::new)
}

/// The fence, when failover is configured.
pub fn installed() -> Option<&'static Fence> {
    FENCE.get()
}

thread_local! {
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling feed thread as holding a private session: from now on
/// [`may_act`] asks the fence.
pub fn guard_this_thread() {
    GUARDED.with(|g| g.set(true));
}

/// Whether the calling thread may connect or send now: always, unless it
/// is a guarded feed thread and the installed fence is closed.
pub fn may_act() -> bool {
    if !GUARDED.with(Cell::get) {
        return true;
    }
    installed().is_none_or(Fence::is_open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_until_opened_and_closed_again_past_its_deadline() {
        let f = Fence::new();
        let now = Instant::now();
        assert!(!f.is_open_at(now));
        f.open_until(Some(now + Duration::from_secs(5)));
        assert!(f.is_open_at(now + Duration::from_secs(4)));
        assert!(!f.is_open_at(now + Duration::from_secs(5)));
        assert!(f.open_for() <= Duration::from_secs(5));
        f.close();
        assert!(!f.is_open_at(now));
        assert_eq!(f.open_for(), Duration::ZERO);
    }

    #[test]
    fn an_unguarded_thread_is_never_held() {
        // This test's thread never called guard_this_thread.
        assert!(may_act());
        std::thread::spawn(|| {
            guard_this_thread();
            // No fence installed in this test process: still free.
            assert!(installed().is_some() || may_act());
        })
        .join()
        .unwrap();
    }
}
