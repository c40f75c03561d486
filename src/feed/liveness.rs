//! When to ping, when to poll, and when silence means the feed is dead.
//!
//! Pongs prove the transport alive but not the feed: a server that answers
//! pings and sends no data is stalled. Only data and broker heartbeats reset
//! the stall timer.

use crate::clock::Mono;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LivenessConfig {
    /// None: the transport has no ping (raw TCP).
    pub ping_every: Option<Duration>,
    pub pong_timeout: Duration,
    pub stall_after: Duration,
    pub poll_every: Option<Duration>,
}

/// What the feed thread must do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    Ping,
    Poll,
    /// No pong within `pong_timeout` of the ping sent at the given time.
    PongOverdue {
        waited: Duration,
    },
    /// No data or heartbeat for this long.
    Stalled {
        silent_for: Duration,
    },
}

#[derive(Clone, Debug)]
pub struct Liveness {
    cfg: LivenessConfig,
    last_data: Mono,
    last_ping: Mono,
    ping_outstanding: Option<Mono>,
    last_poll: Mono,
}

impl Liveness {
    /// Starts the timers at `now` (the moment the feed went live).
    pub fn new(cfg: LivenessConfig, now: Mono) -> Self {
        Liveness {
            cfg,
            last_data: now,
            last_ping: now,
            ping_outstanding: None,
            last_poll: now,
        }
    }

    pub fn on_data(&mut self, now: Mono) {
        self.last_data = now;
    }

    pub fn on_pong(&mut self) {
        self.ping_outstanding = None;
    }

    pub fn ping_sent(&mut self, now: Mono) {
        self.last_ping = now;
        if self.ping_outstanding.is_none() {
            self.ping_outstanding = Some(now);
        }
    }

    pub fn poll_sent(&mut self, now: Mono) {
        self.last_poll = now;
    }

    pub fn silent_for(&self, now: Mono) -> Duration {
        now.since(self.last_data)
    }

    /// The most urgent thing due at `now`, if any. Failures first.
    pub fn due(&self, now: Mono) -> Option<Due> {
        let silent = now.since(self.last_data);
        if silent >= self.cfg.stall_after {
            return Some(Due::Stalled { silent_for: silent });
        }
        if let Some(sent) = self.ping_outstanding {
            let waited = now.since(sent);
            if waited >= self.cfg.pong_timeout {
                return Some(Due::PongOverdue { waited });
            }
        }
        if let Some(every) = self.cfg.poll_every {
            if now.since(self.last_poll) >= every {
                return Some(Due::Poll);
            }
        }
        if let Some(every) = self.cfg.ping_every {
            if now.since(self.last_ping) >= every {
                return Some(Due::Ping);
            }
        }
        None
    }

    /// Time until the next thing is due (zero if something already is).
    /// The feed thread waits no longer than this for a message, so a stall
    /// or a missing pong is acted on when due, not at the next read tick.
    pub fn next_due_in(&self, now: Mono) -> Duration {
        let mut due = self.last_data.plus(self.cfg.stall_after);
        if let Some(sent) = self.ping_outstanding {
            due = due.min(sent.plus(self.cfg.pong_timeout));
        }
        if let Some(every) = self.cfg.poll_every {
            due = due.min(self.last_poll.plus(every));
        }
        if let Some(every) = self.cfg.ping_every {
            due = due.min(self.last_ping.plus(every));
        }
        due.since(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LivenessConfig {
        LivenessConfig {
            ping_every: Some(Duration::from_secs(15)),
            pong_timeout: Duration::from_secs(10),
            stall_after: Duration::from_secs(30),
            poll_every: Some(Duration::from_secs(2)),
        }
    }

    fn at(s: u64) -> Mono {
        Mono(Duration::from_secs(s))
    }

    #[test]
    fn polls_and_pings_on_schedule() {
        let mut l = Liveness::new(cfg(), at(0));
        assert_eq!(l.due(at(1)), None);
        assert_eq!(l.due(at(2)), Some(Due::Poll));
        l.poll_sent(at(2));
        l.on_data(at(2));
        assert_eq!(l.due(at(3)), None);
        let mut t = 2;
        while t < 15 {
            t += 2;
            l.poll_sent(at(t));
            l.on_data(at(t));
        }
        assert_eq!(l.due(at(16)), Some(Due::Ping));
    }

    #[test]
    fn pongs_do_not_count_as_data() {
        let mut l = Liveness::new(
            LivenessConfig {
                poll_every: None,
                ..cfg()
            },
            at(0),
        );
        assert_eq!(l.due(at(14)), None);
        assert_eq!(l.due(at(15)), Some(Due::Ping));
        l.ping_sent(at(15));
        l.on_pong();
        assert_eq!(l.due(at(29)), None);
        assert_eq!(
            l.due(at(30)),
            Some(Due::Stalled {
                silent_for: Duration::from_secs(30)
            })
        );
    }

    #[test]
    fn missing_pong_is_overdue_after_timeout() {
        let mut l = Liveness::new(
            LivenessConfig {
                poll_every: None,
                ..cfg()
            },
            at(0),
        );
        l.ping_sent(at(15));
        l.on_data(at(20));
        assert_eq!(l.due(at(24)), None);
        assert_eq!(
            l.due(at(25)),
            Some(Due::PongOverdue {
                waited: Duration::from_secs(10)
            })
        );
    }

    #[test]
    fn next_due_in_is_the_earliest_deadline() {
        let ms = Duration::from_millis;
        let mut l = Liveness::new(
            LivenessConfig {
                ping_every: Some(ms(15_000)),
                pong_timeout: ms(10_000),
                stall_after: ms(2_500),
                poll_every: None,
            },
            at(0),
        );
        // Only the stall deadline is near: 2.5 s after the last data.
        assert_eq!(l.next_due_in(at(1)), ms(1_500));
        l.on_data(at(2));
        assert_eq!(l.next_due_in(at(3)), ms(1_500));
        assert_eq!(l.next_due_in(at(5)), Duration::ZERO);
        // A poll and an outstanding ping's deadline count too.
        let mut l = Liveness::new(cfg(), at(0));
        assert_eq!(l.next_due_in(at(1)), ms(1_000));
        l.poll_sent(at(2));
        l.ping_sent(at(3));
        l.poll_sent(at(12));
        l.on_data(at(12));
        assert_eq!(l.next_due_in(at(12)), ms(1_000));
        l.poll_sent(at(13));
        assert_eq!(l.next_due_in(at(13)), Duration::ZERO);
    }
}
