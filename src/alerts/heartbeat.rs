//! The dead-man's switch: a thread that fetches `heartbeat_url` every
//! `heartbeat_every` while the agent is healthy, and the fail URL (its
//! `/fail` form, healthchecks.io's convention, or `heartbeat_fail_url`)
//! while it is not, and at once when health changes. If the droplet, the
//! network or the agent dies, the pings stop and the outside service raises
//! the alarm: the one failure no on-box alert can report.
//!
//! [`Schedule`] is the pure part (when to ping which URL); the thread only
//! waits on its channel until the schedule's next moment. Health comes from
//! the daemon (`crate::status::ready`), sent only when it changes. Until
//! the agent has been healthy once, a start that is still connecting is
//! not reported as a failure before `heartbeat_every` has passed, so a
//! restart does not page anyone.

use super::target::{Target, TargetError};
use crate::config::AlertsConfig;
use crate::net::http::{HttpClient, Request};
use crate::secret::Secret;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// Which URL a ping fetches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ping {
    Healthy,
    Failing,
}

/// When to ping, and which URL. Times are durations since the start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    every: Duration,
    /// The last health reported (None: no report yet).
    health: Option<bool>,
    ever_healthy: bool,
    /// When the next ping is due (None: nothing to say yet).
    next: Option<Duration>,
}

impl Schedule {
    pub fn new(every: Duration) -> Self {
        Schedule {
            every,
            health: None,
            ever_healthy: false,
            next: None,
        }
    }

    /// Health is now `healthy`: a change pings at once (a failure before
    /// the first healthy moment waits until `every` from the start).
    pub fn health(&mut self, healthy: bool, now: Duration) {
        if self.health == Some(healthy) {
            return;
        }
        self.health = Some(healthy);
        self.ever_healthy |= healthy;
        self.next = Some(if healthy || self.ever_healthy {
            now
        } else {
            self.every.max(now)
        });
    }

    /// Changes the period; the next ping keeps its time unless later than
    /// a period from now.
    pub fn set_every(&mut self, every: Duration, now: Duration) {
        self.every = every;
        self.next = self.next.map(|n| n.min(now + every));
    }

    /// The ping due at `now`, if any; the next one is then a period later.
    pub fn due(&mut self, now: Duration) -> Option<Ping> {
        let next = self.next?;
        if now < next {
            return None;
        }
        self.next = Some(now + self.every);
        Some(match self.health {
            Some(true) => Ping::Healthy,
            _ => Ping::Failing,
        })
    }

    /// How long until the next ping (None: none scheduled).
    pub fn wait(&self, now: Duration) -> Option<Duration> {
        self.next.map(|n| n.saturating_sub(now))
    }
}

/// The two URLs, filled from the credentials.
#[derive(Clone, Debug)]
pub struct Urls {
    pub ok: Result<Target, TargetError>,
    pub fail: Result<Target, TargetError>,
    pub every: Duration,
}

impl Urls {
    /// `None` when no heartbeat is configured.
    pub fn from_config(
        cfg: &AlertsConfig,
        lookup: &dyn Fn(&str) -> Option<Secret>,
    ) -> Option<Urls> {
        let ok = cfg.heartbeat_url.as_deref()?;
        let fail = cfg.fail_url().unwrap_or_default();
        Some(Urls {
            ok: Target::resolve("heartbeat_url", ok, lookup),
            fail: Target::resolve("heartbeat_fail_url", &fail, lookup),
            every: cfg.heartbeat_every,
        })
    }
}

enum Msg {
    Health(bool),
    Urls(Box<Urls>),
}

/// The daemon's end of the heartbeat thread.
pub struct Heartbeat {
    tx: Sender<Msg>,
}

impl Heartbeat {
    pub fn spawn(urls: Urls) -> std::io::Result<Heartbeat> {
        let (tx, rx) = mpsc::channel();
        let client =
            HttpClient::new(super::worker::http_options()).map_err(std::io::Error::other)?;
        let mut urls = urls;
        // A panic (a bug) restarts the thread with the URLs last set; it
        // ends when the agent drops its sender.
        crate::threads::spawn_isolated(
            "heartbeat",
            crate::threads::FEED_STACK, // TLS handshakes, as the validator
            crate::threads::Restart::WithBackoff {
                stopping: Box::new(|| false),
            },
            move || run(&mut urls, &rx, &client),
        )?;
        Ok(Heartbeat { tx })
    }

    pub fn health(&self, healthy: bool) {
        let _ = self.tx.send(Msg::Health(healthy));
    }

    pub fn set_urls(&self, urls: Urls) {
        let _ = self.tx.send(Msg::Urls(Box::new(urls)));
    }

    /// Ends the thread (after its current request); dropping does the same.
    pub fn stop(self) {}
}

fn run(urls: &mut Urls, rx: &Receiver<Msg>, client: &HttpClient) {
    let start = Instant::now();
    let mut schedule = Schedule::new(urls.every);
    // The failing URL's label while its pings fail (logged once).
    let mut failing: Option<String> = None;
    loop {
        let wait = schedule
            .wait(start.elapsed())
            .unwrap_or(Duration::from_secs(3600));
        match rx.recv_timeout(wait) {
            Ok(Msg::Health(h)) => schedule.health(h, start.elapsed()),
            Ok(Msg::Urls(u)) => {
                schedule.set_every(u.every, start.elapsed());
                *urls = *u;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let Some(ping) = schedule.due(start.elapsed()) else {
            continue;
        };
        let (which, target) = match ping {
            Ping::Healthy => ("heartbeat_url", &urls.ok),
            Ping::Failing => ("heartbeat_fail_url", &urls.fail),
        };
        let outcome = match target {
            Ok(t) => match client.send(&Request::get(t.url().expose())) {
                Ok(r) if r.is_success() => Ok(()),
                Ok(r) => Err(format!(
                    "{which} ({}) answered HTTP {}",
                    t.label(),
                    r.status
                )),
                Err(e) => Err(format!(
                    "{which} ({}): {}",
                    t.label(),
                    t.scrub(&e.to_string())
                )),
            },
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => {
                if failing.take().is_some() {
                    crate::notice!("heartbeat: {which} reached again");
                }
                log::debug!("heartbeat: fetched {which}");
            }
            Err(why) => {
                if failing.is_none() {
                    log::warn!(
                        "heartbeat: {why}; the outside monitor will report this agent as down if it lasts \
                         (logged once until a ping gets through)"
                    );
                    failing = Some(why);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn schedule_table() {
        // (time, health report, expected ping at that time)
        let mut sch = Schedule::new(s(60));
        let mut got = Vec::new();
        let steps: &[(u64, Option<bool>)] = &[
            (0, Some(false)), // starting: not yet a failure
            (30, None),
            (40, Some(true)), // healthy: ping at once
            (41, None),
            (100, None),        // a period later
            (130, Some(false)), // a change: fail at once
            (131, Some(false)),
            (190, None),
            (191, Some(true)),
        ];
        for (t, h) in steps {
            if let Some(h) = h {
                sch.health(*h, s(*t));
            }
            if let Some(p) = sch.due(s(*t)) {
                got.push((*t, p));
            }
        }
        assert_eq!(
            got,
            vec![
                (40, Ping::Healthy),
                (100, Ping::Healthy),
                (130, Ping::Failing),
                (190, Ping::Failing),
                (191, Ping::Healthy),
            ]
        );
    }

    #[test]
    fn a_start_that_never_gets_healthy_fails_after_one_period() {
        let mut sch = Schedule::new(s(60));
        sch.health(false, s(0));
        assert_eq!(sch.due(s(59)), None);
        assert_eq!(sch.wait(s(59)), Some(s(1)));
        assert_eq!(sch.due(s(60)), Some(Ping::Failing));
        let mut none = Schedule::new(s(60));
        assert_eq!(none.due(s(1000)), None);
    }
}
