//! The watchdog: every tick it reads each feed's health and decides what to
//! do. `Watchdog::evaluate` is pure (time comes in as an argument); the
//! daemon's watchdog thread carries out the actions and feeds systemd's
//! `WATCHDOG=1` only while every thread is ticking.

use super::health::HealthData;
use super::state::FeedState;
use crate::alert::{Alert, AlertKind};
use crate::clock::Mono;
use crate::timefmt::{human, rfc3339_millis};
use std::collections::HashMap;
use std::time::Duration;

/// How often the watchdog thread runs.
pub const WATCHDOG_TICK: Duration = Duration::from_secs(1);
/// A feed thread that has not ticked for this long beyond its deadline is stuck.
pub const STUCK_AFTER: Duration = Duration::from_secs(2);
/// A thread idle between ticks may take this long before it counts as late.
pub const TICK_DEADLINE: Duration = Duration::from_secs(3);

/// What the watchdog knows of one feed besides its health.
#[derive(Clone, Debug)]
pub struct WatchedFeed {
    pub health: HealthData,
    pub stall_after: Duration,
    pub attempt_budget: Duration,
    pub alert_after: Duration,
    /// The current outage is expected (a broker's daily restart window):
    /// why. It gets a notice instead of `alert=feed_down` while this holds.
    pub expected_outage: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Ask the feed thread to drop its connection and reconnect.
    Restart { feed: String, reason: String },
    /// The thread did not act: shut its socket down so blocked calls return.
    Interrupt { feed: String, reason: String },
    /// Raise this alert (its kind decides the priority).
    Alert(Alert),
    /// Log this line at notice priority (not an alert).
    Notice(String),
}

#[derive(Default, Debug)]
struct FeedMemory {
    restart_sent: Option<Mono>,
    restarts_seen: u64,
    attempts_seen: u64,
    /// The outage `alert=feed_down` was raised for (its record's id), and
    /// when it was last raised.
    alerted: Option<(u64, Mono)>,
    alerts: u32,
    /// The outage noted as expected (once per outage), by id.
    expected_noted: Option<u64>,
    /// When `alert=feed_flapping` was last raised for the current episode.
    flap_alerted_at: Option<Mono>,
}

/// Watchdog state across ticks.
#[derive(Debug)]
pub struct Watchdog {
    alert_repeat: Duration,
    memory: HashMap<String, FeedMemory>,
}

impl Watchdog {
    pub fn new(alert_repeat: Duration) -> Self {
        Watchdog {
            alert_repeat,
            memory: HashMap::new(),
        }
    }

    pub fn set_alert_repeat(&mut self, d: Duration) {
        self.alert_repeat = d;
    }

    /// Whether a feed thread is answering: ticked recently, or inside a
    /// blocking call that has not yet overrun its own timeout.
    pub fn thread_responsive(h: &HealthData, now: Mono) -> bool {
        let deadline = match h.busy_until {
            Some(b) => b.max(h.last_tick.plus(TICK_DEADLINE)),
            None => h.last_tick.plus(TICK_DEADLINE),
        };
        h.state == FeedState::Stopped || now <= deadline.plus(STUCK_AFTER)
    }

    /// Decides this tick's actions: for each feed, whether to restart or
    /// interrupt it, then its alerts (flapping, down, recovered).
    pub fn evaluate(&mut self, feeds: &[WatchedFeed], now: Mono) -> Vec<Action> {
        let mut out = Vec::new();
        self.memory
            .retain(|k, _| feeds.iter().any(|f| &f.health.name == k));
        for f in feeds {
            let mem = self.memory.entry(f.health.name.clone()).or_default();
            if f.health.state == FeedState::Stopped {
                continue;
            }
            mem.restart_or_interrupt(f, now, &mut out);
            mem.flapping(f, now, self.alert_repeat, &mut out);
            mem.escalate(f, now, self.alert_repeat, &mut out);
            mem.outage_over(&f.health, &mut out);
        }
        out
    }
}

/// The parts of [`Watchdog::evaluate`], one feed at a time: each reads the
/// feed's health and what the watchdog remembers of it, and appends actions.
impl FeedMemory {
    /// A thread that stopped ticking, or did not act on a restart, is
    /// interrupted; a stalled feed or an attempt past its budget is restarted.
    fn restart_or_interrupt(&mut self, f: &WatchedFeed, now: Mono, out: &mut Vec<Action>) {
        let h = &f.health;
        // A restart we asked for is done once the thread counts it or starts a new attempt.
        if self.restart_sent.is_some()
            && (h.restarts > self.restarts_seen || h.attempts > self.attempts_seen)
        {
            self.restart_sent = None;
        }
        // Outside the market's sessions silence is expected.
        let market_open = h
            .market
            .is_none_or(|m| m == crate::calendar::MarketState::Open);
        // A connection waiting for its first data stalls like a live one.
        let stalled = matches!(h.state, FeedState::Live | FeedState::Subscribed)
            && market_open
            && now.since(h.last_message.unwrap_or(h.since).max(h.since))
                > f.stall_after + STUCK_AFTER;
        let stuck_attempt =
            h.state.is_attempting() && now.since(h.since) > f.attempt_budget + STUCK_AFTER;
        if !Watchdog::thread_responsive(h, now) {
            out.push(Action::Interrupt {
                feed: h.name.clone(),
                reason: format!(
                    "thread has not ticked for {}",
                    human(now.since(h.last_tick))
                ),
            });
        } else if let Some(sent) = self.restart_sent {
            if now.since(sent) >= WATCHDOG_TICK * 2 {
                out.push(Action::Interrupt {
                    feed: h.name.clone(),
                    reason: "restart not acted on within two ticks".into(),
                });
                self.restart_sent = Some(now);
            }
        } else if stalled || stuck_attempt {
            let reason = if stalled {
                format!(
                    "no data for {} (stall_after {})",
                    human(now.since(h.last_message.unwrap_or(h.since))),
                    human(f.stall_after)
                )
            } else {
                format!("stuck in {} for {}", h.state, human(now.since(h.since)))
            };
            out.push(Action::Restart {
                feed: h.name.clone(),
                reason,
            });
            self.restart_sent = Some(now);
            self.restarts_seen = h.restarts;
            self.attempts_seen = h.attempts;
        }
    }

    /// Flapping: connections that keep dying before they are stable.
    fn flapping(
        &mut self,
        f: &WatchedFeed,
        now: Mono,
        alert_repeat: Duration,
        out: &mut Vec<Action>,
    ) {
        let h = &f.health;
        match h.flapping {
            Some(connections) => {
                let due = self
                    .flap_alerted_at
                    .is_none_or(|t| now.since(t) >= alert_repeat);
                if due {
                    self.flap_alerted_at = Some(now);
                    out.push(Action::Alert(
                        Alert::new(AlertKind::FeedFlapping)
                            .with("feed", &h.name)
                            .with("connections", connections)
                            .with("within", human(f.alert_after))
                            .with("state", h.state)
                            .with("last_error", h.last_error.as_deref().unwrap_or("none")),
                    ));
                }
            }
            None => self.flap_alerted_at = None,
        }
    }

    /// `alert=feed_down` once an outage outlasts `alert_after`, repeated
    /// every `alert_repeat`, or one notice while it is expected.
    fn escalate(
        &mut self,
        f: &WatchedFeed,
        now: Mono,
        alert_repeat: Duration,
        out: &mut Vec<Action>,
    ) {
        let h = &f.health;
        // Escalation reads the feed's outage record: down since its
        // last data, whatever the state says this instant (a feed can be
        // connected and subscribed, or live on one message, and still
        // down). The watchdog keeps no clock of its own, only when it
        // last alerted.
        if let Some(o) = &h.outage {
            let down_for = o.down_for(now);
            let alerted_this = self.alerted.is_some_and(|(id, _)| id == o.id);
            if down_for < f.alert_after {
            } else if let (Some(why), false) = (&f.expected_outage, alerted_this) {
                if self.expected_noted != Some(o.id) {
                    self.expected_noted = Some(o.id);
                    out.push(Action::Notice(format!(
                        "feed={} down for {}, expected: {why}; alert=feed_down follows only if it outlasts that",
                        h.name,
                        human(down_for),
                    )));
                }
            } else {
                let due = match self.alerted {
                    Some((id, t)) if id == o.id => now.since(t) >= alert_repeat,
                    _ => true,
                };
                if due {
                    if !alerted_this {
                        self.alerts = 0;
                    }
                    self.alerted = Some((o.id, now));
                    self.alerts += 1;
                    let err = o
                        .last_error
                        .as_deref()
                        .or(h.last_error.as_deref())
                        .unwrap_or("none");
                    // A flapping feed may be `live` this instant; a down
                    // alert says why it is down, not that it is live.
                    let state = match h.flapping {
                        Some(_) => "flapping",
                        None => h.state.as_str(),
                    };
                    out.push(Action::Alert(
                        Alert::new(AlertKind::FeedDown)
                            .with("feed", &h.name)
                            .with("state", state)
                            .with("down_for", human(down_for))
                            .with("since", rfc3339_millis(o.start_wall))
                            .with("last_error", err)
                            .with("repeat", self.alerts),
                    ));
                }
            }
        }
    }

    /// An outage that was alerted or noted is over once the record says
    /// so: `alert=feed_recovered` (or a notice), with the record's downtime.
    fn outage_over(&mut self, h: &HealthData, out: &mut Vec<Action>) {
        let current = h.outage.as_ref().map(|o| o.id);
        let ended = |id: u64| h.last_outage.as_ref().filter(|l| l.id == id);
        if let Some((id, _)) = self.alerted.filter(|(id, _)| current != Some(*id)) {
            self.alerted = None;
            self.alerts = 0;
            if self.expected_noted == Some(id) {
                self.expected_noted = None;
            }
            let o = ended(id);
            out.push(Action::Alert(
                Alert::new(AlertKind::FeedRecovered)
                    .with("feed", &h.name)
                    .with(
                        "downtime",
                        o.and_then(|o| o.downtime())
                            .map(human)
                            .unwrap_or_else(|| "unknown".into()),
                    )
                    .with_opt("since", o.map(|o| rfc3339_millis(o.start_wall)))
                    .with_opt("live_since", o.and_then(|o| o.end_wall).map(rfc3339_millis)),
            ));
        }
        if let Some(id) = self.expected_noted.filter(|id| current != Some(*id)) {
            self.expected_noted = None;
            out.push(Action::Notice(format!(
                "feed={} back after an expected outage of {}",
                h.name,
                ended(id)
                    .and_then(|o| o.downtime())
                    .map(human)
                    .unwrap_or_else(|| "unknown".into())
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::health::FeedHealth;
    use crate::feed::outage::Outage;
    use std::time::SystemTime;

    fn at(s: u64) -> Mono {
        Mono(Duration::from_secs(s))
    }

    fn feed(h: HealthData) -> WatchedFeed {
        WatchedFeed {
            health: h,
            stall_after: Duration::from_secs(30),
            attempt_budget: Duration::from_secs(20),
            alert_after: Duration::from_secs(60),
            expected_outage: None,
        }
    }

    fn wall(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    /// Outage `id`, under way since `start` (its last data).
    fn outage(id: u64, start: u64) -> Outage {
        Outage {
            id,
            start: at(start),
            start_wall: wall(start),
            after_data: true,
            end: None,
            end_wall: None,
            connections: 2,
            errors: 2,
            cause: Some("connection reset".into()),
            last_error: Some("no data for 2s (stall_after 2s)".into()),
        }
    }

    /// Outage `id`, over: from `start` to the first data at `end`.
    fn ended(id: u64, start: u64, end: u64) -> Outage {
        Outage {
            end: Some(at(end)),
            end_wall: Some(wall(end)),
            ..outage(id, start)
        }
    }

    fn live_at(t: u64) -> HealthData {
        let mut h = FeedHealth::new("f", "websocket", at(0), SystemTime::UNIX_EPOCH).snapshot();
        h.state = FeedState::Live;
        h.since = at(t);
        h.outage = None;
        h.last_message = Some(at(t));
        h.last_tick = at(t);
        h
    }

    #[test]
    fn healthy_feed_needs_nothing() {
        let mut w = Watchdog::new(Duration::from_secs(900));
        assert!(w.evaluate(&[feed(live_at(10))], at(11)).is_empty());
    }

    #[test]
    fn stalled_feed_is_restarted_then_interrupted_if_ignored() {
        let mut w = Watchdog::new(Duration::from_secs(900));
        let mut h = live_at(0);
        h.last_tick = at(40);
        let a = w.evaluate(&[feed(h.clone())], at(40));
        assert!(matches!(&a[0], Action::Restart { .. }), "{a:?}");
        h.last_tick = at(41);
        assert!(w.evaluate(&[feed(h.clone())], at(41)).is_empty());
        h.last_tick = at(42);
        let a = w.evaluate(&[feed(h.clone())], at(42));
        assert!(matches!(&a[0], Action::Interrupt { .. }), "{a:?}");
        // the thread acts: a new attempt starts
        h.attempts += 1;
        h.state = FeedState::Connecting;
        h.since = at(43);
        h.last_tick = at(43);
        assert!(
            w.evaluate(&[feed(h)], at(43))
                .iter()
                .all(|a| !matches!(a, Action::Interrupt { .. }))
        );
    }

    #[test]
    fn thread_blocked_past_its_deadline_is_interrupted() {
        let mut w = Watchdog::new(Duration::from_secs(900));
        let mut h = live_at(0);
        h.busy_until = Some(at(7));
        assert!(w.evaluate(&[feed(h.clone())], at(8)).is_empty());
        let a = w.evaluate(&[feed(h)], at(10));
        assert!(matches!(&a[0], Action::Interrupt { .. }), "{a:?}");
    }

    #[test]
    fn feed_down_alerts_once_repeats_and_recovers() {
        let mut w = Watchdog::new(Duration::from_secs(900));
        let mut h = live_at(0);
        h.state = FeedState::Backoff;
        h.outage = Some(outage(1, 0));
        h.busy_until = None;
        let alerts = |a: &[Action]| {
            a.iter()
                .filter(|x| matches!(x, Action::Alert(a) if a.kind == AlertKind::FeedDown))
                .count()
        };
        h.last_tick = at(59);
        assert_eq!(alerts(&w.evaluate(&[feed(h.clone())], at(59))), 0);
        h.last_tick = at(60);
        let a = w.evaluate(&[feed(h.clone())], at(60));
        assert_eq!(alerts(&a), 1);
        assert!(
            matches!(&a[0], Action::Alert(al) if al.to_string().starts_with("alert=feed_down feed=f state=backoff "))
        );
        h.last_tick = at(61);
        assert_eq!(alerts(&w.evaluate(&[feed(h.clone())], at(61))), 0);
        h.last_tick = at(960);
        assert_eq!(alerts(&w.evaluate(&[feed(h.clone())], at(960))), 1);
        h.state = FeedState::Live;
        h.outage = None;
        h.last_outage = Some(ended(1, 0, 961));
        h.since = at(961);
        h.last_message = Some(at(961));
        h.last_tick = at(961);
        let a = w.evaluate(&[feed(h)], at(961));
        assert!(
            matches!(&a[..], [Action::Alert(al)] if al.to_string().contains("alert=feed_recovered feed=f downtime=16m1s since=2027-01-15T08:00:00.000Z")),
            "{a:?}"
        );
    }

    #[test]
    fn an_expected_outage_is_a_notice_until_it_is_not() {
        let mut w = Watchdog::new(Duration::from_secs(900));
        let mut h = live_at(0);
        h.state = FeedState::Backoff;
        h.outage = Some(outage(1, 0));
        h.busy_until = None;
        let mut f = feed(h.clone());
        f.expected_outage = Some("inside reset_window 23:45-00:45".into());
        f.health.last_tick = at(61);
        let a = w.evaluate(std::slice::from_ref(&f), at(61));
        assert!(
            matches!(&a[..], [Action::Notice(n)] if n.contains("expected: inside reset_window")),
            "{a:?}"
        );
        f.health.last_tick = at(62);
        assert!(w.evaluate(std::slice::from_ref(&f), at(62)).is_empty());
        // It outlasts the window: the usual alert.
        f.expected_outage = None;
        f.health.last_tick = at(63);
        let a = w.evaluate(std::slice::from_ref(&f), at(63));
        assert!(
            matches!(&a[..], [Action::Alert(al)] if al.kind == AlertKind::FeedDown),
            "{a:?}"
        );
    }

    #[test]
    fn flapping_is_down_and_loud_and_recovery_waits_for_a_stable_connection() {
        let mut w = Watchdog::new(Duration::from_secs(900));
        let kinds = |a: &[Action]| -> Vec<String> {
            a.iter()
                .map(|x| match x {
                    Action::Alert(al) => al.kind.as_str().to_string(),
                    other => format!("{other:?}"),
                })
                .collect()
        };
        // Down since 0, live again at 30 s on a connection not yet proven.
        let mut h = live_at(30);
        // Data keeps flowing on each short connection: no stall restarts here.
        h.last_message = Some(at(1000));
        h.outage = Some(outage(1, 0));
        h.last_error = Some("server closed the connection with code 1000".into());
        h.outage.as_mut().unwrap().last_error = h.last_error.clone();
        // Flapping: feed_flapping, and feed_down from the outage's start.
        h.flapping = Some(3);
        h.last_tick = at(62);
        let a = w.evaluate(&[feed(h.clone())], at(62));
        assert_eq!(kinds(&a), ["feed_flapping", "feed_down"]);
        match &a[1] {
            // Live this instant, but down: the alert says flapping.
            Action::Alert(al) => assert_eq!(al.get("state"), Some("flapping"), "{al}"),
            other => panic!("{other:?}"),
        }
        match &a[0] {
            Action::Alert(al) => {
                assert_eq!(al.get("connections"), Some("3"));
                assert_eq!(al.get("within"), Some("1m0s"));
                assert!(
                    al.to_string()
                        .contains("last_error=\"server closed the connection with code 1000\"")
                );
            }
            other => panic!("{other:?}"),
        }
        h.last_tick = at(63);
        assert!(kinds(&w.evaluate(&[feed(h.clone())], at(63))).is_empty());
        // Repeats every alert_repeat while it lasts.
        h.last_tick = at(962);
        assert_eq!(
            kinds(&w.evaluate(&[feed(h.clone())], at(962))),
            ["feed_flapping", "feed_down"]
        );
        // A connection proves stable: the outage ends, feed_recovered.
        h.flapping = None;
        h.outage = None;
        h.last_outage = Some(ended(1, 0, 970));
        h.last_tick = at(1000);
        assert_eq!(kinds(&w.evaluate(&[feed(h)], at(1000))), ["feed_recovered"]);
    }

    /// The record, not the state, says since when a feed is down: a feed
    /// subscribed (or live on one message) since its last data is down
    /// from that data, and recovery tells the record's downtime.
    #[test]
    fn feed_down_counts_from_the_records_last_data_whatever_the_state() {
        let mut w = Watchdog::new(Duration::from_secs(900));
        let mut h = live_at(50);
        h.state = FeedState::Subscribed;
        h.outage = Some(outage(4, 10));
        let down = |a: &[Action]| -> Vec<String> {
            a.iter()
                .filter_map(|x| match x {
                    Action::Alert(al) => Some(al.to_string()),
                    _ => None,
                })
                .collect()
        };
        h.last_tick = at(69);
        assert!(down(&w.evaluate(&[feed(h.clone())], at(69))).is_empty());
        h.last_tick = at(70);
        let a = down(&w.evaluate(&[feed(h.clone())], at(70)));
        assert_eq!(a.len(), 1, "{a:?}");
        assert!(
            a[0].starts_with(
                "alert=feed_down feed=f state=subscribed down_for=1m0s since=2027-01-15T08:00:10.000Z "
            ),
            "{a:?}"
        );
        // Live on data at 75 (not yet stable): still the same outage.
        h.state = FeedState::Live;
        h.last_tick = at(76);
        assert!(down(&w.evaluate(&[feed(h.clone())], at(76))).is_empty());
        // Stable: the record closes with the first data at 75.
        h.outage = None;
        h.last_outage = Some(ended(4, 10, 75));
        h.last_tick = at(77);
        let a = down(&w.evaluate(&[feed(h.clone())], at(77)));
        assert_eq!(
            a,
            [
                "alert=feed_recovered feed=f downtime=1m5s since=2027-01-15T08:00:10.000Z live_since=2027-01-15T08:01:15.000Z"
            ]
        );
        // A new outage is alerted on its own, from its own start.
        h.outage = Some(outage(5, 200));
        h.last_tick = at(259);
        assert!(down(&w.evaluate(&[feed(h.clone())], at(259))).is_empty());
        h.last_tick = at(260);
        let a = down(&w.evaluate(&[feed(h)], at(260)));
        assert!(a[0].contains("repeat=1"), "{a:?}");
    }
}
