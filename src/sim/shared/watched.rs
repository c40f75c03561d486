//! A value that simulator threads update and tests wait on (each
//! simulator's stats): a condition variable wakes waiters on every change,
//! so a test waits for a state ("two handshakes done") with a deadline
//! instead of sleeping.

use super::lock;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// `T` behind a mutex, with waiters woken on every [`update`](Self::update).
#[derive(Default)]
pub(crate) struct Watched<T> {
    value: Mutex<T>,
    changed: Condvar,
}

impl<T> Watched<T> {
    fn lock(&self) -> MutexGuard<'_, T> {
        lock(&self.value)
    }

    /// Changes the value under the lock and wakes every waiter.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let r = f(&mut self.lock());
        self.changed.notify_all();
        r
    }

    pub(crate) fn snapshot(&self) -> T
    where
        T: Clone,
    {
        self.lock().clone()
    }

    /// Waits until `pred` holds or `limit` passes; returns whether it held.
    pub(crate) fn wait_for(&self, pred: impl Fn(&T) -> bool, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut guard = self.lock();
        loop {
            if pred(&guard) {
                return true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            guard = self
                .changed
                .wait_timeout(guard, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn wait_for_wakes_on_update_and_times_out_otherwise() {
        let s = Arc::new(Watched::<u64>::default());
        assert!(!s.wait_for(|n| *n > 0, Duration::from_millis(20)));
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.update(|n| *n = 3));
        assert!(s.wait_for(|n| *n == 3, Duration::from_secs(5)));
        t.join().unwrap();
        assert_eq!(s.snapshot(), 3);
    }
}
