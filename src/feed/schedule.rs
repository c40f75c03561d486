//! Expected message schedules, computed from the UTC wall clock.
//!
//! Window k covers `[k*every + offset, k*every + offset + grace]` counted
//! from the Unix epoch, so it is the same across restarts and across UTC
//! midnight, and never drifts the way "last processed + interval" does.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `expect = { every = "15m", offset = "5m", grace = "2m" }`: a message is
/// expected in every window `[k*every + offset, k*every + offset + grace]`
/// of the UTC wall clock. (The configuration re-exports it; this engine owns it.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpectConfig {
    pub every: Duration,
    pub offset: Duration,
    pub grace: Duration,
}

/// At most this many missed windows are reported one by one after a long
/// gap (a suspended VM, a clock step); the rest are summarised.
pub const MAX_REPORTED: usize = 3;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissedWindow {
    /// Start of the window (UTC).
    pub start: SystemTime,
    /// Further windows missed but not reported individually.
    pub more: u64,
}

#[derive(Clone, Debug)]
pub struct ExpectTracker {
    cfg: ExpectConfig,
    /// Start of the next window to judge, in ms since the epoch.
    next_ms: u128,
    hit: bool,
}

fn ms(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

impl ExpectTracker {
    /// The schedule it follows.
    pub fn config(&self) -> ExpectConfig {
        self.cfg
    }

    /// Starts judging with the first window that opens at or after `now`
    /// (a window already open at start-up cannot be judged fairly).
    pub fn new(cfg: ExpectConfig, now: SystemTime) -> Self {
        let every = cfg.every.as_millis().max(1);
        let offset = cfg.offset.as_millis() % every;
        let t = ms(now);
        let k = (t.saturating_sub(offset)).div_ceil(every);
        let mut next_ms = k * every + offset;
        if next_ms < t {
            next_ms += every;
        }
        ExpectTracker {
            cfg,
            next_ms,
            hit: false,
        }
    }

    /// The start of the window being watched.
    pub fn current_window(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.next_ms as u64)
    }

    fn end_ms(&self) -> u128 {
        self.next_ms + self.cfg.grace.as_millis()
    }

    /// A data message arrived at wall time `t`.
    pub fn on_message(&mut self, t: SystemTime) -> Vec<MissedWindow> {
        let missed = self.check(t);
        let m = ms(t);
        if m >= self.next_ms && m <= self.end_ms() {
            self.hit = true;
        }
        missed
    }

    /// Closes every window that ended before `now`; returns those without a message.
    pub fn check(&mut self, now: SystemTime) -> Vec<MissedWindow> {
        let t = ms(now);
        let every = self.cfg.every.as_millis().max(1);
        let mut out: Vec<MissedWindow> = Vec::new();
        let mut more = 0u64;
        while t > self.end_ms() {
            if !self.hit {
                if out.len() < MAX_REPORTED {
                    out.push(MissedWindow {
                        start: self.current_window(),
                        more: 0,
                    });
                } else {
                    more += 1;
                }
            }
            self.hit = false;
            self.next_ms += every;
            if more > 10_000 {
                // A clock step of years: skip ahead instead of looping.
                let k = (t - self.next_ms) / every;
                more += k as u64;
                self.next_ms += k * every;
            }
        }
        if let Some(last) = out.last_mut() {
            last.more = more;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timefmt::rfc3339;

    fn cfg() -> ExpectConfig {
        ExpectConfig {
            every: Duration::from_secs(15 * 60),
            offset: Duration::from_secs(5 * 60),
            grace: Duration::from_secs(2 * 60),
        }
    }

    /// 2026-11-22T23:40:00Z
    fn evening() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_390_800)
    }

    #[test]
    fn windows_align_to_the_utc_clock() {
        let tr = ExpectTracker::new(cfg(), evening());
        assert_eq!(rfc3339(tr.current_window()), "2026-11-22T23:50:00Z");
    }

    #[test]
    fn a_window_without_data_is_missed_across_midnight() {
        let mut tr = ExpectTracker::new(cfg(), evening());
        let min = |m: u64| evening() + Duration::from_secs(m * 60);
        // 23:50 window: message at 23:51 -> hit
        assert!(tr.on_message(min(11)).is_empty());
        // 00:05 window gets nothing; at 00:08 it is judged missed
        assert!(tr.check(min(27)).is_empty());
        let missed = tr.check(min(28));
        assert_eq!(missed.len(), 1);
        assert_eq!(rfc3339(missed[0].start), "2026-11-23T00:05:00Z");
        // 00:20 window: a message at 00:21 counts
        assert!(tr.on_message(min(41)).is_empty());
        assert!(tr.check(min(43)).is_empty());
    }

    #[test]
    fn a_restart_judges_windows_by_the_clock_not_by_the_last_message() {
        // Process restarted at 00:03: the next window is today's 00:05.
        let restart = evening() + Duration::from_secs(23 * 60);
        let mut tr = ExpectTracker::new(cfg(), restart);
        assert_eq!(rfc3339(tr.current_window()), "2026-11-23T00:05:00Z");
        let missed = tr.check(restart + Duration::from_secs(6 * 60));
        assert_eq!(rfc3339(missed[0].start), "2026-11-23T00:05:00Z");
    }

    #[test]
    fn message_outside_grace_does_not_count() {
        let mut tr = ExpectTracker::new(cfg(), evening());
        // 23:53 is after the 23:50 window's 2 minute grace
        let missed = tr.on_message(evening() + Duration::from_secs(13 * 60));
        assert_eq!(missed.len(), 1);
    }

    #[test]
    fn long_gaps_are_summarised() {
        let mut tr = ExpectTracker::new(cfg(), evening());
        let missed = tr.check(evening() + Duration::from_secs(24 * 3600));
        assert_eq!(missed.len(), MAX_REPORTED);
        assert_eq!(missed[MAX_REPORTED - 1].more, 96 - MAX_REPORTED as u64);
    }
}
