//! When a feed's outage ends, and when it is flapping. Pure: time comes in
//! as arguments, so the rules are table-tested.
//!
//! A connection that dies within `stable_after` of going live does not end
//! the outage: the down-timer behind `alert=feed_down` keeps running across
//! such connections (a server that closes every connection after a second
//! is down, however often the feed says "live"). The outage ends only once
//! a connection has stayed up for `stable_after`. Three or more short-lived
//! connections within the flap window (the feed's `alert_after`) mean the
//! feed is flapping.

use crate::clock::Mono;
use std::collections::VecDeque;
use std::time::Duration;

/// Short-lived connections within the window that make a feed flapping.
pub const FLAP_CONNECTIONS: usize = 3;

/// What changed, for the feed thread to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutageEvent {
    /// A connection stayed up for `stable_after`: the outage is over.
    Ended { downtime: Duration },
    /// The feed started flapping: this many short-lived connections within `within`.
    Flapping {
        connections: usize,
        within: Duration,
    },
    /// No short-lived connection within the window any more.
    Steady,
}

#[derive(Clone, Debug)]
pub struct OutageTracker {
    stable_after: Duration,
    window: Duration,
    /// Since when the feed has not had a proven connection (None: none now).
    down_since: Option<Mono>,
    /// When the current connection went live, while it is not yet proven.
    up_since: Option<Mono>,
    /// When short-lived connections ended, oldest first, within the window.
    short_lived: VecDeque<Mono>,
    flapping: bool,
}

impl OutageTracker {
    /// A feed starts down (it has never been live) at `now`.
    pub fn new(stable_after: Duration, window: Duration, now: Mono) -> Self {
        OutageTracker {
            stable_after,
            window,
            down_since: Some(now),
            up_since: None,
            short_lived: VecDeque::new(),
            flapping: false,
        }
    }

    /// New settings (a reload); the history is kept.
    pub fn configure(&mut self, stable_after: Duration, window: Duration) {
        self.stable_after = stable_after;
        self.window = window;
    }

    pub fn down_since(&self) -> Option<Mono> {
        self.down_since
    }

    /// Short-lived connections within the window, while flapping.
    pub fn flapping(&self) -> Option<usize> {
        self.flapping.then_some(self.short_lived.len())
    }

    /// A connection went live at `now`.
    pub fn went_live(&mut self, now: Mono) {
        if self.down_since.is_some() {
            self.up_since = Some(now);
        }
    }

    /// The current connection ended (or an attempt failed) at `now`.
    pub fn connection_ended(&mut self, now: Mono) -> Option<OutageEvent> {
        match self.up_since.take() {
            // Live but not yet proven: a short-lived connection.
            Some(_) => {
                self.short_lived.push_back(now);
                self.prune(now);
                self.down_since.get_or_insert(now);
                if !self.flapping && self.short_lived.len() >= FLAP_CONNECTIONS {
                    self.flapping = true;
                    return Some(OutageEvent::Flapping {
                        connections: self.short_lived.len(),
                        within: self.window,
                    });
                }
                None
            }
            None => {
                // A proven connection ended: a new outage starts.
                self.down_since.get_or_insert(now);
                None
            }
        }
    }

    /// Time passes: a connection up for `stable_after` ends the outage, and
    /// short-lived connections age out of the window.
    pub fn tick(&mut self, now: Mono) -> Option<OutageEvent> {
        if let (Some(up), Some(down)) = (self.up_since, self.down_since) {
            if now.since(up) >= self.stable_after {
                self.up_since = None;
                self.down_since = None;
                self.short_lived.clear();
                self.flapping = false;
                return Some(OutageEvent::Ended {
                    downtime: up.since(down),
                });
            }
        }
        self.prune(now);
        if self.flapping && self.short_lived.len() < FLAP_CONNECTIONS {
            self.flapping = false;
            return Some(OutageEvent::Steady);
        }
        None
    }

    fn prune(&mut self, now: Mono) {
        while self
            .short_lived
            .front()
            .is_some_and(|t| now.since(*t) > self.window)
        {
            self.short_lived.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Mono {
        Mono(Duration::from_millis(ms))
    }

    #[derive(Clone, Copy)]
    enum Step {
        Live(u64),
        End(u64),
        Tick(u64),
    }
    use Step::*;

    /// Runs the steps; returns every event with its step index, and the
    /// final down_since.
    fn run(steps: &[Step]) -> (Vec<(usize, OutageEvent)>, Option<Mono>) {
        let mut t = OutageTracker::new(Duration::from_secs(2), Duration::from_secs(10), at(0));
        let mut out = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            let e = match *s {
                Live(ms) => {
                    t.went_live(at(ms));
                    None
                }
                End(ms) => t.connection_ended(at(ms)),
                Tick(ms) => t.tick(at(ms)),
            };
            out.extend(e.map(|e| (i, e)));
        }
        (out, t.down_since())
    }

    #[test]
    fn a_connection_that_stays_up_ends_the_outage() {
        let (events, down) = run(&[Live(100), Tick(1_000), Tick(2_100)]);
        assert_eq!(
            events,
            vec![(
                2,
                OutageEvent::Ended {
                    downtime: Duration::from_millis(100)
                }
            )]
        );
        assert_eq!(down, None);
    }

    #[test]
    fn short_lived_connections_keep_the_outage_and_three_are_flapping() {
        let (events, down) = run(&[
            Live(100),
            End(1_100),
            Tick(1_500),
            Live(1_600),
            End(2_600),
            Live(3_000),
            End(4_000),
            Tick(4_100),
        ]);
        assert_eq!(
            events,
            vec![(
                6,
                OutageEvent::Flapping {
                    connections: 3,
                    within: Duration::from_secs(10)
                }
            )]
        );
        // The outage began at start-up and is still running.
        assert_eq!(down, Some(at(0)));
    }

    #[test]
    fn flapping_ends_when_a_connection_proves_itself_or_the_window_empties() {
        let flap = [
            Live(100),
            End(200),
            Live(300),
            End(400),
            Live(500),
            End(600),
        ];
        let mut proven: Vec<Step> = flap.to_vec();
        proven.extend([Live(700), Tick(2_700)]);
        let (events, down) = run(&proven);
        assert!(
            matches!(events.last(), Some((_, OutageEvent::Ended { .. }))),
            "{events:?}"
        );
        assert_eq!(down, None);

        let mut aged: Vec<Step> = flap.to_vec();
        aged.push(Tick(10_500));
        let (events, down) = run(&aged);
        assert_eq!(events.last(), Some(&(6, OutageEvent::Steady)));
        // No proven connection: still down.
        assert_eq!(down, Some(at(0)));
    }

    #[test]
    fn a_proven_connection_that_ends_starts_a_new_outage() {
        let (_, down) = run(&[Live(100), Tick(2_200), End(5_000)]);
        assert_eq!(down, Some(at(5_000)));
    }
}
