//! Time, behind a small trait so pure logic (backoff, schedules, the feed
//! state machine, the watchdog) can be driven by tests without sleeping.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// A monotonic instant, as time elapsed since the clock's own origin.
/// Unlike `std::time::Instant` it can be made up by a test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mono(pub Duration);

impl Mono {
    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Mono) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
    pub fn plus(self, d: Duration) -> Mono {
        Mono(self.0 + d)
    }
}

/// Where time comes from.
pub trait Clock: Send + Sync {
    /// Monotonic time, for timeouts and ages.
    fn mono(&self) -> Mono;
    /// Wall-clock time (UTC), for schedules and timestamps shown to people.
    fn wall(&self) -> SystemTime;
}

/// The real clocks of the machine.
#[derive(Clone, Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn mono(&self) -> Mono {
        Mono(self.origin.elapsed())
    }
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to. Clones share the same time.
#[derive(Clone, Debug)]
pub struct FakeClock {
    inner: Arc<Mutex<(Duration, SystemTime)>>,
}

impl FakeClock {
    /// Starts at monotonic zero and the given wall time.
    pub fn at(wall: SystemTime) -> Self {
        FakeClock {
            inner: Arc::new(Mutex::new((Duration::ZERO, wall))),
        }
    }
    /// Starts at `secs` seconds after the Unix epoch.
    pub fn at_unix(secs: u64) -> Self {
        Self::at(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
    }
    /// Moves both clocks forward.
    pub fn advance(&self, d: Duration) {
        let mut g = self.inner.lock().unwrap();
        g.0 += d;
        g.1 += d;
    }
    /// Sets the wall clock only (a restart, or an NTP step).
    pub fn set_wall(&self, wall: SystemTime) {
        self.inner.lock().unwrap().1 = wall;
    }
}

impl Clock for FakeClock {
    fn mono(&self) -> Mono {
        Mono(self.inner.lock().unwrap().0)
    }
    fn wall(&self) -> SystemTime {
        self.inner.lock().unwrap().1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_moves_only_when_told() {
        let c = FakeClock::at_unix(1_000);
        let a = c.mono();
        assert_eq!(c.mono(), a);
        c.advance(Duration::from_millis(1500));
        assert_eq!(c.mono().since(a), Duration::from_millis(1500));
        assert_eq!(
            c.wall(),
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_001_500)
        );
    }

    #[test]
    fn mono_since_never_negative() {
        assert_eq!(
            Mono(Duration::from_secs(1)).since(Mono(Duration::from_secs(5))),
            Duration::ZERO
        );
    }
}
