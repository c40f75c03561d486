//! Whether a feed's market is open now, cheaply: the calendar is asked
//! only when the wall clock passes the next session change (or steps
//! back), so a feed thread can look on every message. Outside market
//! hours silence is expected: the engine suspends stall detection and
//! expected-message windows while the market is not open.

use crate::calendar::{Calendar, MarketState};
use std::sync::Arc;
use std::time::SystemTime;

#[derive(Clone, Debug)]
pub struct MarketWatch {
    calendar: Arc<Calendar>,
    state: MarketState,
    /// When `state` was computed.
    computed_at: SystemTime,
    /// The next session change after `computed_at` (None: never changes).
    next_change: Option<SystemTime>,
}

impl MarketWatch {
    pub fn new(calendar: Arc<Calendar>, now: SystemTime) -> Self {
        let mut w = MarketWatch {
            state: calendar.state_at(now),
            next_change: calendar.next_change_after(now).map(|(t, _)| t),
            computed_at: now,
            calendar,
        };
        w.refresh(now);
        w
    }

    fn refresh(&mut self, now: SystemTime) {
        self.state = self.calendar.state_at(now);
        self.next_change = self.calendar.next_change_after(now).map(|(t, _)| t);
        self.computed_at = now;
    }

    /// The market's state at `now`.
    pub fn state(&mut self, now: SystemTime) -> MarketState {
        let passed = self.next_change.is_some_and(|t| now >= t);
        if passed || now < self.computed_at {
            self.refresh(now);
        }
        self.state
    }

    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::CalendarKind;
    use std::time::{Duration, UNIX_EPOCH};

    fn utc(s: &str) -> SystemTime {
        let ts: jiff::Timestamp = s.parse().unwrap();
        UNIX_EPOCH + Duration::from_secs(ts.as_second() as u64)
    }

    #[test]
    fn follows_the_sessions_and_a_clock_stepped_back() {
        let cal = Arc::new(Calendar::new(CalendarKind::Nyse, &[]).unwrap());
        // Friday 2026-11-27 15:59 New York (EST, UTC-5) is 20:59Z.
        let mut w = MarketWatch::new(cal, utc("2026-11-27T20:59:00Z"));
        assert_eq!(w.state(utc("2026-11-27T20:59:00Z")), MarketState::Open);
        assert_eq!(w.state(utc("2026-11-27T21:00:00Z")), MarketState::Closed);
        assert_eq!(w.state(utc("2026-11-28T15:00:00Z")), MarketState::Closed);
        assert_eq!(w.state(utc("2026-11-30T14:30:00Z")), MarketState::Open);
        assert_eq!(w.state(utc("2026-11-28T15:00:00Z")), MarketState::Closed);
    }
}
