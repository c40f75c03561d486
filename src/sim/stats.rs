//! Counters the simulator keeps for tests, with a condition variable so a
//! test can wait for a state ("two handshakes done") instead of sleeping.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A snapshot of what the simulator has seen and done.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    pub connections_accepted: u64,
    pub handshakes_completed: u64,
    /// TCP connections currently open (accepted and not yet ended).
    pub live_connections: u64,
    pub auth_ok: u64,
    pub auth_failed: u64,
    pub data_sent: u64,
    pub heartbeats_sent: u64,
    /// Channels subscribed, in order, indexed by connection number
    /// (0 = first accepted connection).
    pub subscribes_per_connection: Vec<Vec<String>>,
    /// Every token presented in an auth message, in order (a test tool: the
    /// simulator is the server side and holds no real secrets).
    pub tokens_seen: Vec<String>,
    pub pings_received: u64,
    /// Text messages received from clients.
    pub client_messages: u64,
    /// Close codes the simulator sent, in order.
    pub close_codes_sent: Vec<u16>,
    /// Connections ended with a TCP reset.
    pub resets_sent: u64,
    /// When each connection was accepted, authenticated and ended (same
    /// index as `subscribes_per_connection`), so a soak can tell a
    /// connection that lived on without subscribing from one a fault cut.
    pub connection_times: Vec<ConnTimes>,
}

/// The life of one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnTimes {
    pub accepted: Instant,
    /// When its auth was accepted (None: never; or no auth required).
    pub authed: Option<Instant>,
    /// When its thread ended (None: still open).
    pub ended: Option<Instant>,
}

/// Stats behind a mutex, with waiters woken on every change.
#[derive(Default)]
pub(crate) struct SharedStats {
    stats: Mutex<SimStats>,
    changed: Condvar,
}

impl SharedStats {
    fn lock(&self) -> MutexGuard<'_, SimStats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut SimStats) -> R) -> R {
        let r = f(&mut self.lock());
        self.changed.notify_all();
        r
    }

    pub(crate) fn snapshot(&self) -> SimStats {
        self.lock().clone()
    }

    /// Waits until `pred` holds or `limit` passes; returns whether it held.
    pub(crate) fn wait_for(&self, pred: impl Fn(&SimStats) -> bool, limit: Duration) -> bool {
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
        let s = Arc::new(SharedStats::default());
        assert!(!s.wait_for(|st| st.data_sent > 0, Duration::from_millis(20)));
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.update(|st| st.data_sent = 3));
        assert!(s.wait_for(|st| st.data_sent == 3, Duration::from_secs(5)));
        t.join().unwrap();
    }
}
