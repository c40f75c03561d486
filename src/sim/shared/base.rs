//! What every simulator's shared state is built on: the stop flag its
//! threads look at every [`TICK`], the registry of its threads (reaped as
//! they finish, all joined at stop, so a stopped simulator leaves no thread
//! behind), its event lines, the fault generation each connection has
//! acted on (so a fault change can wait until it is in force everywhere),
//! and fault scripts run in a thread of their own.

use super::lock;
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How often idle threads look at the stop flag and the fault: short
/// enough that `stop` and `set_fault` return promptly, long enough that an
/// idle simulator costs nothing.
pub(crate) const TICK: Duration = Duration::from_millis(20);
/// How long a fault change waits for every connection to acknowledge it:
/// a connection that is stuck (a client that stopped reading) must not
/// hang the test that set the fault.
const ACK_LIMIT: Duration = Duration::from_secs(1);

/// A simulator's stop flag, threads, event lines and acknowledgements.
pub(crate) struct Base {
    stop: AtomicBool,
    events: Option<Sender<String>>,
    accepts: Mutex<Vec<JoinHandle<()>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Fault generation each running connection has acted on.
    seen: Mutex<HashMap<usize, u64>>,
    seen_changed: Condvar,
}

impl Base {
    /// `events` gets one human-readable line per event (for the CLI and demo).
    pub(crate) fn new(events: Option<Sender<String>>) -> Self {
        Base {
            stop: AtomicBool::new(false),
            events,
            accepts: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            seen: Mutex::new(HashMap::new()),
            seen_changed: Condvar::new(),
        }
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub(crate) fn event(&self, line: String) {
        if let Some(tx) = &self.events {
            let _ = tx.send(line);
        }
    }

    /// Connection `id` has acted on every fault change up to `generation`.
    pub(crate) fn ack(&self, id: usize, generation: u64) {
        lock(&self.seen).insert(id, generation);
        self.seen_changed.notify_all();
    }

    /// Connection `id` has ended (or stopped following faults): no change
    /// waits for it any more.
    pub(crate) fn forget(&self, id: usize) {
        lock(&self.seen).remove(&id);
        self.seen_changed.notify_all();
    }

    /// Waits (at most [`ACK_LIMIT`]) until every connection that
    /// acknowledges has acted on `generation`, or the simulator stops.
    pub(crate) fn wait_seen(&self, generation: u64) {
        let deadline = Instant::now() + ACK_LIMIT;
        let mut seen = lock(&self.seen);
        while !self.stopping() && seen.values().any(|g| *g < generation) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return;
            };
            seen = self
                .seen_changed
                .wait_timeout(seen, left.min(TICK))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Starts an accept thread; [`shutdown`](Self::shutdown) joins these
    /// first, so no connection starts once it is joining the others.
    pub(crate) fn spawn_accept(
        &self,
        name: &str,
        f: impl FnOnce() + Send + 'static,
    ) -> io::Result<()> {
        let handle = thread::Builder::new().name(name.into()).spawn(f)?;
        lock(&self.accepts).push(handle);
        Ok(())
    }

    /// Starts a connection (or script) thread.
    pub(crate) fn spawn(&self, name: String, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
        let handle = thread::Builder::new().name(name).spawn(f)?;
        let mut threads = lock(&self.threads);
        // Reap finished threads so a long run does not pile up handles.
        let (done, running): (Vec<_>, Vec<_>) = threads.drain(..).partition(|h| h.is_finished());
        *threads = running;
        threads.push(handle);
        drop(threads);
        for h in done {
            let _ = h.join();
        }
        Ok(())
    }

    /// Sets the stop flag, joins the accept threads, runs `accepts_done`
    /// (closing a listener they would otherwise have re-bound), then joins
    /// every other thread, including any started meanwhile. Idempotent.
    pub(crate) fn shutdown(&self, accepts_done: impl FnOnce()) {
        self.stop.store(true, Ordering::SeqCst);
        join_all(&self.accepts);
        accepts_done();
        join_all(&self.threads);
    }
}

fn join_all(handles: &Mutex<Vec<JoinHandle<()>>>) {
    loop {
        let batch: Vec<_> = lock(handles).drain(..).collect();
        if batch.is_empty() {
            return;
        }
        for h in batch {
            let _ = h.join();
        }
    }
}

/// A simulator's shared state, as the shared helpers see it.
pub(crate) trait Host: Send + Sync + 'static {
    fn base(&self) -> &Base;

    /// A connection thread that [`net::Live`](super::net::Live) tracks has
    /// ended, however it ended: count it gone (and forget whatever the
    /// simulator keeps per connection beyond its acknowledgement).
    fn connection_ended(&self, id: usize);

    /// Called at stop once the accept threads are joined: closes the
    /// listeners they do not own (those they own closed with them).
    fn close_listeners(&self) {}

    fn stopping(&self) -> bool {
        self.base().stopping()
    }

    fn event(&self, line: String) {
        self.base().event(line)
    }
}

/// Applies each step after its delay, counted from the previous step, in a
/// thread of `host`'s (ended by its stop).
pub(crate) fn spawn_script<H: Host, S: Send + 'static>(
    host: &Arc<H>,
    name: &str,
    steps: Vec<(Duration, S)>,
    apply: impl Fn(&H, S) + Send + 'static,
) -> io::Result<()> {
    let h = host.clone();
    host.base().spawn(name.into(), move || {
        for (delay, step) in steps {
            let due = Instant::now() + delay;
            while Instant::now() < due {
                if h.stopping() {
                    return;
                }
                thread::sleep(TICK.min(due.saturating_duration_since(Instant::now())));
            }
            if h.stopping() {
                return;
            }
            apply(&h, step);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Counter {
        base: Base,
        applied: AtomicUsize,
    }

    impl Host for Counter {
        fn base(&self) -> &Base {
            &self.base
        }
        fn connection_ended(&self, _: usize) {}
    }

    #[test]
    fn a_script_applies_its_steps_and_ends_with_the_simulator() {
        let host = Arc::new(Counter {
            base: Base::new(None),
            applied: AtomicUsize::new(0),
        });
        let steps = vec![
            (Duration::ZERO, 1),
            (Duration::ZERO, 2),
            (Duration::from_secs(60), 4),
        ];
        spawn_script(&host, "script", steps, |h, n| {
            h.applied.fetch_add(n, Ordering::SeqCst);
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while host.applied.load(Ordering::SeqCst) != 3 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(host.applied.load(Ordering::SeqCst), 3);
        // The third step's minute is cut short by the stop.
        let started = Instant::now();
        host.base.shutdown(|| {});
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(host.applied.load(Ordering::SeqCst), 3);
    }
}
