//! One outage record per feed, and the pure rules that open, extend and
//! close it. Time comes in as arguments, so the rules are table-tested.
//!
//! An outage begins at the last data the bot received (or, for a feed that
//! has never delivered, at its start) and ends at data on a connection that
//! then keeps delivering for `stable_after`: the outage's end is that
//! connection's first data, decided once data arrives `stable_after` after
//! it on the same connection. "Data" here is evidence the subscription is
//! alive: a data message, a message the broker documents as proof
//! (`Action::Heartbeat`), or, while the feed's market is closed, the
//! subscribed connection itself (quiet is all a closed market can prove).
//!
//! A connection that delivers nothing never ends an outage and never counts
//! as stable, however long it lives. Connections of an outage that die
//! within `stable_after` of subscribing are short-lived; three or more
//! within the flap window (the feed's `alert_after`) make it flapping.
//!
//! The feed thread keeps the record and publishes it as is: `feed_down
//! since=/down_for=`, `feed_recovered downtime=`, the bot's `reconnected
//! down_ms`, status.json and the log's lines all read this one record.
//! The per-message path ([`OutageTracker::evidence`] on a steady connection)
//! stores two timestamps and allocates nothing.

use crate::clock::Mono;
use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

/// Short-lived connections within the window that make a feed flapping.
pub const FLAP_CONNECTIONS: usize = 3;
/// Short-lived connections remembered at most (the window usually holds
/// far fewer): a bound on the record, whatever the reconnect rate.
const SHORT_LIVED_KEPT: usize = 64;

/// One outage of a feed, as every reader is told it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outage {
    /// The feed's outages counted from 1 (the first is its start-up).
    pub id: u64,
    /// The last data before it; the feed's start if it never had data.
    pub start: Mono,
    pub start_wall: SystemTime,
    /// Whether data had arrived before it (false: the feed has not
    /// delivered since it started, so the bot saw no gap).
    pub after_data: bool,
    /// The first data on the connection that then kept delivering for
    /// `stable_after` (None while it lasts).
    pub end: Option<Mono>,
    pub end_wall: Option<SystemTime>,
    /// Connections that subscribed during the outage.
    pub connections: u32,
    /// Failed attempts and ended connections during the outage.
    pub errors: u32,
    /// What began it: the error that ended the last good connection (or
    /// the first error, for a feed that never delivered).
    pub cause: Option<String>,
    /// The latest error on the way.
    pub last_error: Option<String>,
}

impl Outage {
    /// How long the feed has been (or was) down at `now`.
    pub fn down_for(&self, now: Mono) -> Duration {
        self.end.unwrap_or(now).since(self.start)
    }

    /// How long it lasted, once over.
    pub fn downtime(&self) -> Option<Duration> {
        self.end.map(|e| e.since(self.start))
    }
}

/// What a piece of evidence changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// Nothing the feed thread must publish.
    Steady,
    /// The first on this connection: the feed is live. `gap`: it comes
    /// after earlier data during an outage, this long after the outage's
    /// start (the bot's `reconnected down_ms`).
    First { gap: Option<Duration> },
    /// The connection kept delivering for `stable_after`: the outage is
    /// over (see [`OutageTracker::last`]).
    Recovered,
}

/// What changed at the end of a connection or as time passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutageEvent {
    /// An outage began (see [`OutageTracker::current`]).
    Began,
    /// The feed started flapping: this many short-lived connections within `within`.
    Flapping {
        connections: usize,
        within: Duration,
    },
    /// No short-lived connection within the window any more.
    Steady,
}

/// The current connection, as far as the outage cares.
#[derive(Clone, Copy, Debug)]
struct Connection {
    subscribed: Mono,
    /// Its first evidence since it subscribed (or since it was restored).
    first: Option<Mono>,
    first_wall: Option<SystemTime>,
}

#[derive(Clone, Debug)]
pub struct OutageTracker {
    stable_after: Duration,
    window: Duration,
    /// The last evidence, across connections.
    last_data: Option<(Mono, SystemTime)>,
    current: Option<Outage>,
    last: Option<Outage>,
    next_id: u64,
    connection: Option<Connection>,
    /// When short-lived connections ended, oldest first, within the window.
    short_lived: VecDeque<Mono>,
    flapping: bool,
}

impl OutageTracker {
    /// A feed starts down (it has delivered nothing yet) at `now`.
    pub fn new(stable_after: Duration, window: Duration, now: Mono, wall: SystemTime) -> Self {
        let mut t = OutageTracker {
            stable_after,
            window,
            last_data: None,
            current: None,
            last: None,
            next_id: 1,
            connection: None,
            short_lived: VecDeque::new(),
            flapping: false,
        };
        t.open(now, wall);
        t
    }

    /// New settings (a reload); the record is kept.
    pub fn configure(&mut self, stable_after: Duration, window: Duration) {
        self.stable_after = stable_after;
        self.window = window;
    }

    /// The outage under way, if any.
    pub fn current(&self) -> Option<&Outage> {
        self.current.as_ref()
    }

    /// The last outage that ended.
    pub fn last(&self) -> Option<&Outage> {
        self.last.as_ref()
    }

    /// Short-lived connections within the window, while flapping.
    pub fn flapping(&self) -> Option<usize> {
        self.flapping.then_some(self.short_lived.len())
    }

    /// Whether the current connection has delivered since it subscribed.
    pub fn delivering(&self) -> bool {
        self.connection.is_some_and(|c| c.first.is_some())
    }

    /// A connection subscribed at `now`; it proves nothing yet.
    pub fn subscribed(&mut self, now: Mono) {
        self.connection = Some(Connection {
            subscribed: now,
            first: None,
            first_wall: None,
        });
        if let Some(o) = self.current.as_mut() {
            o.connections += 1;
        }
    }

    /// Data or proof arrived on the current connection at `now`.
    pub fn evidence(&mut self, now: Mono, wall: SystemTime) -> Evidence {
        self.last_data = Some((now, wall));
        let Some(c) = self.connection.as_mut() else {
            return Evidence::Steady;
        };
        let Some(first) = c.first else {
            c.first = Some(now);
            c.first_wall = Some(wall);
            let gap = self
                .current
                .as_ref()
                .filter(|o| o.after_data)
                .map(|o| now.since(o.start));
            return Evidence::First { gap };
        };
        if self.current.is_some() && now.since(first) >= self.stable_after {
            let mut o = self.current.take().expect("checked above");
            o.end = Some(first);
            o.end_wall = c.first_wall;
            self.last = Some(o);
            self.short_lived.clear();
            self.flapping = false;
            return Evidence::Recovered;
        }
        Evidence::Steady
    }

    /// The broker says data cannot flow on this connection: the feed is
    /// down from its last data, and must prove itself again.
    pub fn degraded(&mut self, now: Mono, wall: SystemTime, reason: &str) -> Option<OutageEvent> {
        if let Some(c) = self.connection.as_mut() {
            c.first = None;
            c.first_wall = None;
        }
        self.rebase();
        let began = self.open(now, wall);
        self.record_error(reason);
        began.then_some(OutageEvent::Began)
    }

    /// The current connection ended, or an attempt failed before one
    /// subscribed, at `now`; `error` says why (None: a deliberate stop).
    pub fn ended(&mut self, now: Mono, wall: SystemTime, error: Option<&str>) -> Vec<OutageEvent> {
        let mut events = Vec::new();
        let connection = self.connection.take();
        let was_down = self.current.is_some();
        self.rebase();
        if self.open(now, wall) {
            events.push(OutageEvent::Began);
        }
        if let Some(e) = error {
            self.record_error(e);
        }
        // A connection of an outage that died before stable_after.
        if let Some(c) = connection {
            if was_down && now.since(c.subscribed) < self.stable_after {
                if self.short_lived.len() == SHORT_LIVED_KEPT {
                    self.short_lived.pop_front();
                }
                self.short_lived.push_back(now);
                self.prune(now);
                if !self.flapping && self.short_lived.len() >= FLAP_CONNECTIONS {
                    self.flapping = true;
                    events.push(OutageEvent::Flapping {
                        connections: self.short_lived.len(),
                        within: self.window,
                    });
                }
            }
        }
        events
    }

    /// Time passes: short-lived connections age out of the window.
    pub fn tick(&mut self, now: Mono) -> Option<OutageEvent> {
        self.prune(now);
        if self.flapping && self.short_lived.len() < FLAP_CONNECTIONS {
            self.flapping = false;
            return Some(OutageEvent::Steady);
        }
        None
    }

    /// Opens an outage at the last data, unless one is under way. True
    /// when it opened one.
    fn open(&mut self, now: Mono, wall: SystemTime) -> bool {
        if self.current.is_some() {
            return false;
        }
        let (start, start_wall) = self.last_data.unwrap_or((now, wall));
        self.current = Some(Outage {
            id: self.next_id,
            start,
            start_wall,
            after_data: self.last_data.is_some(),
            end: None,
            end_wall: None,
            connections: 0,
            errors: 0,
            cause: None,
            last_error: None,
        });
        self.next_id += 1;
        true
    }

    /// The start-up outage runs from the feed's start while the bot has
    /// had nothing; once data has reached the bot and stopped again, the
    /// outage is the bot's gap, from its last data.
    fn rebase(&mut self) {
        if let (Some(o), Some((at, wall))) = (self.current.as_mut(), self.last_data) {
            if !o.after_data && at > o.start {
                o.start = at;
                o.start_wall = wall;
                o.after_data = true;
            }
        }
    }

    fn record_error(&mut self, error: &str) {
        if let Some(o) = self.current.as_mut() {
            o.errors += 1;
            if o.cause.is_none() {
                o.cause = Some(error.to_string());
            }
            o.last_error = Some(error.to_string());
        }
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

    fn wall(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) + Duration::from_millis(ms)
    }

    #[derive(Clone, Copy, Debug)]
    enum Step {
        /// A connection subscribed.
        Sub(u64),
        /// Data (or proof) every `every` ms from `from` to `to`
        /// (inclusive): `Data(from, to, every)`.
        Data(u64, u64, u64),
        /// The connection ended (or an attempt failed) with an error.
        End(u64),
        Degraded(u64),
        Tick(u64),
    }
    use Step::*;

    /// What one step produced, for the tables.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Seen {
        Live { gap_ms: Option<u64> },
        Recovered { downtime_ms: u64 },
        Began { start_ms: u64 },
        Flapping(usize),
        Steady,
    }

    fn ms(d: Duration) -> u64 {
        d.as_millis() as u64
    }

    /// Runs the steps with stable_after 2 s and a 10 s flap window;
    /// returns what happened and the tracker.
    fn run(steps: &[Step]) -> (Vec<Seen>, OutageTracker) {
        let mut t = OutageTracker::new(
            Duration::from_secs(2),
            Duration::from_secs(10),
            at(0),
            wall(0),
        );
        let mut out = Vec::new();
        let data = |t: &mut OutageTracker, out: &mut Vec<Seen>, now: u64| match t
            .evidence(at(now), wall(now))
        {
            Evidence::Steady => {}
            Evidence::First { gap } => out.push(Seen::Live {
                gap_ms: gap.map(ms),
            }),
            Evidence::Recovered => out.push(Seen::Recovered {
                downtime_ms: ms(t.last().unwrap().downtime().unwrap()),
            }),
        };
        for s in steps {
            let events = match *s {
                Sub(now) => {
                    t.subscribed(at(now));
                    vec![]
                }
                Data(from, to, every) => {
                    let mut now = from;
                    while now <= to {
                        data(&mut t, &mut out, now);
                        now += every;
                    }
                    vec![]
                }
                End(now) => t.ended(at(now), wall(now), Some("reset")),
                Degraded(now) => t
                    .degraded(at(now), wall(now), "farm down")
                    .into_iter()
                    .collect(),
                Tick(now) => t.tick(at(now)).into_iter().collect(),
            };
            for e in events {
                out.push(match e {
                    OutageEvent::Began => Seen::Began {
                        start_ms: ms(t.current().unwrap().start.0),
                    },
                    OutageEvent::Flapping { connections, .. } => Seen::Flapping(connections),
                    OutageEvent::Steady => Seen::Steady,
                });
            }
        }
        (out, t)
    }

    #[test]
    fn the_start_up_outage_ends_at_the_first_data_of_a_connection_that_keeps_delivering() {
        let (seen, t) = run(&[Sub(300), Data(500, 2_600, 100)]);
        // No gap for the bot: it never had data before.
        assert_eq!(
            seen,
            [
                Seen::Live { gap_ms: None },
                Seen::Recovered { downtime_ms: 500 }
            ]
        );
        let last = t.last().unwrap();
        assert_eq!((last.id, last.end, last.connections), (1, Some(at(500)), 1));
        assert!(t.current().is_none());
    }

    #[test]
    fn a_connection_that_delivers_nothing_never_ends_the_outage_however_long_it_lives() {
        // Healthy, then a connection that lives an hour with nothing on it.
        let (seen, t) = run(&[
            Sub(0),
            Data(100, 5_000, 100),
            End(6_000),
            Sub(6_100),
            Tick(3_606_100),
        ]);
        assert_eq!(
            seen,
            [
                Seen::Live { gap_ms: None },
                Seen::Recovered { downtime_ms: 100 },
                Seen::Began { start_ms: 5_000 },
            ]
        );
        let o = t.current().unwrap();
        assert_eq!((o.start, o.connections, o.errors), (at(5_000), 1, 1));
        assert_eq!(o.cause.as_deref(), Some("reset"));
        assert_eq!(o.down_for(at(3_606_100)), Duration::from_millis(3_601_100));
    }

    #[test]
    fn the_outage_runs_from_the_last_data_to_the_first_data_of_the_stable_connection() {
        let (seen, t) = run(&[
            Sub(0),
            Data(100, 3_000, 100),
            // Silent with pongs: the stall ends the connection 2 s later.
            End(5_000),
            // Two connections that deliver nothing.
            Sub(5_100),
            End(7_100),
            Sub(7_200),
            End(9_200),
            // Data again at 12 s; the bot hears of a 9 s gap.
            Sub(11_900),
            Data(12_000, 14_000, 100),
        ]);
        assert_eq!(
            seen,
            [
                Seen::Live { gap_ms: None },
                Seen::Recovered { downtime_ms: 100 },
                Seen::Began { start_ms: 3_000 },
                Seen::Live {
                    gap_ms: Some(9_000)
                },
                Seen::Recovered { downtime_ms: 9_000 },
            ]
        );
        let o = t.last().unwrap();
        assert_eq!((o.connections, o.errors), (3, 3));
        assert_eq!(o.end_wall, Some(wall(12_000)));
        assert_eq!(o.start_wall, wall(3_000));
    }

    #[test]
    fn data_on_a_connection_that_dies_before_stable_after_does_not_end_the_outage() {
        let (seen, t) = run(&[
            Sub(0),
            Data(100, 3_000, 100),
            End(3_050),
            Sub(3_500),
            Data(4_000, 5_000, 500),
            End(5_200),
            Sub(6_000),
            Data(7_000, 9_000, 1_000),
        ]);
        assert_eq!(
            seen,
            [
                Seen::Live { gap_ms: None },
                Seen::Recovered { downtime_ms: 100 },
                Seen::Began { start_ms: 3_000 },
                Seen::Live {
                    gap_ms: Some(1_000)
                },
                // The same outage: the gap counts from its start.
                Seen::Live {
                    gap_ms: Some(4_000)
                },
                Seen::Recovered { downtime_ms: 4_000 },
            ]
        );
        assert_eq!(t.last().unwrap().connections, 2);
    }

    #[test]
    fn three_short_lived_connections_within_the_window_are_flapping_until_one_proves_itself() {
        let flap = [Sub(100), End(200), Sub(300), End(400), Sub(500), End(600)];
        let (seen, t) = run(&flap);
        assert_eq!(seen, [Seen::Flapping(3)]);
        assert_eq!(t.flapping(), Some(3));
        // The start-up outage, still under way.
        assert_eq!(t.current().unwrap().start, at(0));

        let mut proven = flap.to_vec();
        proven.extend([Sub(700), Data(800, 2_800, 200)]);
        let (seen, t) = run(&proven);
        assert_eq!(seen.last(), Some(&Seen::Recovered { downtime_ms: 800 }));
        assert_eq!(t.flapping(), None);

        let mut aged = flap.to_vec();
        aged.push(Tick(10_500));
        let (seen, t) = run(&aged);
        assert_eq!(seen.last(), Some(&Seen::Steady));
        // No proven connection: still down.
        assert!(t.current().is_some());
    }

    #[test]
    fn data_that_stops_before_the_start_up_outage_ends_makes_it_the_bots_gap() {
        let (seen, t) = run(&[
            Sub(100),
            Data(200, 1_000, 100),
            End(1_100),
            Sub(1_500),
            Data(1_600, 3_600, 100),
        ]);
        assert_eq!(
            seen,
            [
                Seen::Live { gap_ms: None },
                // The bot saw data until 1 s: its gap is 600 ms.
                Seen::Live { gap_ms: Some(600) },
                Seen::Recovered { downtime_ms: 600 },
            ]
        );
        let o = t.last().unwrap();
        assert_eq!((o.id, o.start, o.after_data), (1, at(1_000), true));
    }

    #[test]
    fn a_long_connection_without_data_is_down_but_not_short_lived() {
        let (seen, t) = run(&[
            Sub(100),
            End(5_000),
            Sub(5_100),
            End(10_000),
            Sub(10_100),
            End(15_000),
        ]);
        assert!(seen.is_empty(), "{seen:?}");
        assert_eq!(t.flapping(), None);
        assert_eq!(t.current().unwrap().connections, 3);
    }

    #[test]
    fn a_degraded_connection_is_down_from_its_last_data_and_must_prove_itself_again() {
        let (seen, t) = run(&[
            Sub(0),
            Data(100, 3_000, 100),
            Degraded(3_500),
            // Restored; data again on the same connection.
            Data(8_000, 10_000, 500),
        ]);
        assert_eq!(
            seen,
            [
                Seen::Live { gap_ms: None },
                Seen::Recovered { downtime_ms: 100 },
                Seen::Began { start_ms: 3_000 },
                Seen::Live {
                    gap_ms: Some(5_000)
                },
                Seen::Recovered { downtime_ms: 5_000 },
            ]
        );
        assert_eq!(t.last().unwrap().cause.as_deref(), Some("farm down"));
    }

    #[test]
    fn every_outage_has_its_own_id_and_the_last_one_is_kept() {
        let (_, t) = run(&[
            Sub(0),
            Data(100, 2_100, 100),
            End(2_200),
            Sub(2_300),
            Data(2_400, 4_400, 100),
            End(4_500),
        ]);
        assert_eq!(t.last().unwrap().id, 2);
        assert_eq!(
            t.last().unwrap().downtime(),
            Some(Duration::from_millis(300))
        );
        assert_eq!(t.current().unwrap().id, 3);
        assert_eq!(t.current().unwrap().start, at(4_400));
    }
}
