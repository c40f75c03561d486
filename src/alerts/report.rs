//! The daily report (`daily_report = "08:30 Asia/Kolkata"`): once a day,
//! one `alert=daily_report` (a notice) through the webhooks with each
//! feed's availability, reconnects and alerts over the period, and its
//! token's expiry when its broker reports one. Operators ask for a daily
//! "all OK" as much as for alarms.
//!
//! Pure: [`Tally`] accumulates from the health snapshots main takes every
//! status write (time as an argument), [`next_after`] finds the next
//! report time in the configured zone (DST included, by jiff).

use crate::alert::{Alert, AlertKind};
use crate::calendar::MarketState;
use crate::clock::Mono;
use crate::config::DailyReportConfig;
use crate::feed::health::HealthData;
use crate::feed::state::FeedState;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// The health note a broker publishes its token's expiry under.
const TOKEN_EXPIRES_NOTE: &str = "token_expires";
/// A gap between two observations longer than this (main stalled, the
/// machine suspended) is not counted for or against a feed.
const GAP_MAX: Duration = Duration::from_secs(10);

/// The first report time strictly after `now`.
pub fn next_after(now: SystemTime, spec: &DailyReportConfig) -> Option<SystemTime> {
    let tz = crate::calendar::find_zone(&spec.zone).ok()?;
    let ts = jiff::Timestamp::try_from(now).ok()?;
    let today = tz.to_datetime(ts).date();
    let at_time = jiff::civil::time(spec.hour as i8, spec.minute as i8, 0, 0);
    for day in [today, today.tomorrow().ok()?] {
        // A time in a DST gap or overlap resolves "compatibly", as calendars do.
        let at = tz.to_timestamp(day.to_datetime(at_time)).ok()?;
        let at = SystemTime::try_from(at).ok()?;
        if at > now {
            return Some(at);
        }
    }
    None
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct FeedTally {
    /// Time live, or quiet because its market was closed.
    up: Duration,
    seen: Duration,
    reconnects_at_start: Option<u64>,
    reconnects_now: u64,
    alerts: u32,
    token_expires: Option<String>,
}

/// What the report says, gathered since the last one.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    feeds: BTreeMap<String, FeedTally>,
    last: Option<Mono>,
}

impl Tally {
    /// One health snapshot at `now`: the time since the last one counts as
    /// up for feeds that are live (or closed), as seen for all.
    pub fn observe(&mut self, health: &[HealthData], now: Mono) {
        let step = self
            .last
            .map(|l| now.since(l))
            .filter(|d| *d <= GAP_MAX)
            .unwrap_or_default();
        self.last = Some(now);
        for h in health {
            let t = self.feeds.entry(h.name.clone()).or_default();
            t.seen += step;
            if h.state == FeedState::Live || h.market == Some(MarketState::Closed) {
                t.up += step;
            }
            t.reconnects_at_start.get_or_insert(h.reconnects);
            t.reconnects_now = h.reconnects;
            if let Some(v) = h.info.get(TOKEN_EXPIRES_NOTE) {
                t.token_expires = Some(v.clone());
            }
        }
    }

    /// An error alert was raised about `feed`.
    pub fn alert(&mut self, feed: &str) {
        self.feeds.entry(feed.to_string()).or_default().alerts += 1;
    }

    /// The report over `period`, and a fresh start for the next one
    /// (feeds keep their reconnect baseline).
    pub fn report(&mut self, period: &str) -> Alert {
        let mut parts = Vec::new();
        let (mut up, mut seen, mut reconnects, mut alerts) = (Duration::ZERO, Duration::ZERO, 0, 0);
        for (name, t) in &self.feeds {
            let r = t
                .reconnects_now
                .saturating_sub(t.reconnects_at_start.unwrap_or(t.reconnects_now));
            let mut line = format!(
                "{name}: {} available, {r} reconnects, {} alerts",
                percent(t.up, t.seen),
                t.alerts
            );
            if let Some(e) = &t.token_expires {
                line += &format!(", token expires {e}");
            }
            parts.push(line);
            up += t.up;
            seen += t.seen;
            reconnects += r;
            alerts += t.alerts;
        }
        let a = Alert::new(AlertKind::DailyReport)
            .with("period", period)
            .with("feeds", self.feeds.len())
            .with("available", percent(up, seen))
            .with("reconnects", reconnects)
            .with("alerts", alerts)
            .with("detail", parts.join("; "));
        for t in self.feeds.values_mut() {
            let reconnects = t.reconnects_now;
            *t = FeedTally {
                reconnects_at_start: Some(reconnects),
                reconnects_now: reconnects,
                token_expires: t.token_expires.take(),
                ..FeedTally::default()
            };
        }
        a
    }
}

fn percent(up: Duration, seen: Duration) -> String {
    if seen.is_zero() {
        return "n/a".to_string();
    }
    let p = up.as_secs_f64() / seen.as_secs_f64() * 100.0;
    format!("{p:.2}%")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::health::FeedHealth;

    fn feed(name: &str, state: FeedState, reconnects: u64) -> HealthData {
        let mut h =
            FeedHealth::new(name, "generic", Mono::default(), SystemTime::UNIX_EPOCH).snapshot();
        h.state = state;
        h.reconnects = reconnects;
        h
    }

    fn s(n: u64) -> Mono {
        Mono(Duration::from_secs(n))
    }

    #[test]
    fn availability_reconnects_and_alerts_per_feed() {
        let mut t = Tally::default();
        t.observe(
            &[feed("a", FeedState::Live, 2), feed("b", FeedState::Live, 0)],
            s(0),
        );
        t.observe(
            &[feed("a", FeedState::Live, 2), feed("b", FeedState::Live, 0)],
            s(3),
        );
        // b goes down for 1s, reconnects once; a gap of 60s is not counted.
        t.observe(
            &[
                feed("a", FeedState::Live, 2),
                feed("b", FeedState::Backoff, 0),
            ],
            s(4),
        );
        t.observe(
            &[feed("a", FeedState::Live, 3), feed("b", FeedState::Live, 1)],
            s(64),
        );
        t.observe(
            &[feed("a", FeedState::Live, 3), feed("b", FeedState::Live, 1)],
            s(68),
        );
        t.alert("b");
        let a = t.report("24h");
        assert_eq!(a.get("feeds"), Some("2"));
        assert_eq!(a.get("reconnects"), Some("2"));
        assert_eq!(a.get("alerts"), Some("1"));
        assert_eq!(
            a.get("detail"),
            Some(
                "a: 100.00% available, 1 reconnects, 0 alerts; b: 87.50% available, 1 reconnects, 1 alerts"
            )
        );
        // The next period starts afresh.
        t.observe(
            &[feed("a", FeedState::Live, 3), feed("b", FeedState::Live, 1)],
            s(69),
        );
        let b = t.report("24h");
        assert_eq!(b.get("reconnects"), Some("0"));
        assert_eq!(b.get("alerts"), Some("0"));
    }

    #[test]
    fn the_next_report_is_the_next_local_time() {
        let spec = DailyReportConfig::parse("08:30 Asia/Kolkata").unwrap();
        // 2026-11-22T02:00:00Z = 07:30 IST: today at 08:30 IST = 03:00Z.
        let t = |iso: &str| SystemTime::try_from(iso.parse::<jiff::Timestamp>().unwrap()).unwrap();
        let cases = [
            ("2026-11-22T02:00:00Z", "2026-11-22T03:00:00Z"),
            ("2026-11-22T03:00:00Z", "2026-11-23T03:00:00Z"),
            ("2026-11-22T20:00:00Z", "2026-11-23T03:00:00Z"),
        ];
        for (now, want) in cases {
            assert_eq!(next_after(t(now), &spec), Some(t(want)), "{now}");
        }
        // A zone with DST: 08:30 New York is 13:30Z in winter, 12:30Z in summer.
        let ny = DailyReportConfig::parse("08:30 America/New_York").unwrap();
        assert_eq!(
            next_after(t("2026-01-10T00:00:00Z"), &ny),
            Some(t("2026-01-10T13:30:00Z"))
        );
        assert_eq!(
            next_after(t("2026-07-10T00:00:00Z"), &ny),
            Some(t("2026-07-10T12:30:00Z"))
        );
    }
}
