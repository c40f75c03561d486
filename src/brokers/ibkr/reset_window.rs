//! IB's nightly restart window (`reset_window = "23:45-00:45"`, in the
//! market calendar's zone): a disconnect that starts inside it is a
//! notice, not `alert=feed_down`, unless the outage outlasts the window.
//! Pure: the caller converts the wall clock to local time with the
//! calendar's zone (an offset or a local time of day comes in).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY: u32 = 24 * 3600;

/// A time of day in the calendar's zone, as seconds after local midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalTime(u32);

impl LocalTime {
    /// `h:m:s`; `None` outside a day.
    pub fn hms(h: u32, m: u32, s: u32) -> Option<Self> {
        (h < 24 && m < 60 && s < 60).then_some(LocalTime(h * 3600 + m * 60 + s))
    }

    /// The local time of day of a Unix time in a zone `utc_offset_secs`
    /// east of UTC (negative west, e.g. -18000 for New York in winter).
    pub fn from_unix(unix_secs: i64, utc_offset_secs: i32) -> Self {
        let local = unix_secs + i64::from(utc_offset_secs);
        LocalTime(local.rem_euclid(i64::from(DAY)) as u32)
    }

    pub fn seconds(self) -> u32 {
        self.0
    }
}

/// The daily window in which IB restarts and a disconnect is expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResetWindow {
    /// Seconds after local midnight.
    start: u32,
    end: u32,
}

/// Whether an outage should raise the usual alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutageVerdict {
    /// Started inside the window and has not outlasted it: a notice only.
    Expected,
    /// Outside the window, or longer than it: the usual `alert=feed_down`.
    Alert,
}

fn parse_hm(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u32 = h.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    LocalTime::hms(h, m, 0).map(|t| t.0)
}

impl FromStr for ResetWindow {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let usage = || {
            format!(
                "\"{s}\" must look like \"23:45-00:45\" (HH:MM-HH:MM, local to the market calendar)"
            )
        };
        let (a, b) = s.split_once('-').ok_or_else(usage)?;
        let (start, end) = (
            parse_hm(a).ok_or_else(usage)?,
            parse_hm(b).ok_or_else(usage)?,
        );
        if start == end {
            return Err(format!(
                "\"{s}\" is empty: the start and the end are the same time"
            ));
        }
        Ok(ResetWindow { start, end })
    }
}

impl fmt::Display for ResetWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |t: u32| format!("{:02}:{:02}", t / 3600, (t % 3600) / 60);
        write!(f, "{}-{}", hm(self.start), hm(self.end))
    }
}

impl ResetWindow {
    /// The window's length (it may span midnight).
    pub fn length(&self) -> Duration {
        Duration::from_secs(u64::from((self.end + DAY - self.start) % DAY))
    }

    /// Whether `t` is inside the window: the start included, the end not.
    pub fn contains(&self, t: LocalTime) -> bool {
        self.elapsed_at(t).is_some()
    }

    /// How far into the window `t` is, or `None` outside it.
    fn elapsed_at(&self, t: LocalTime) -> Option<Duration> {
        let into = (t.0 + DAY - self.start) % DAY;
        (Duration::from_secs(u64::from(into)) < self.length())
            .then(|| Duration::from_secs(u64::from(into)))
    }

    /// How long after `t` the window ends (`None` outside it).
    pub fn remaining(&self, t: LocalTime) -> Option<Duration> {
        self.elapsed_at(t).map(|into| self.length() - into)
    }

    /// A disconnect began at local time `down_at` and has lasted `down_for`:
    /// expected while it stays within the window it began in.
    pub fn verdict(&self, down_at: LocalTime, down_for: Duration) -> OutageVerdict {
        match self.remaining(down_at) {
            Some(left) if down_for < left => OutageVerdict::Expected,
            _ => OutageVerdict::Alert,
        }
    }
}

/// Whether an outage that began at `down_since` is still expected at `now`
/// under `window`, read in a zone whose UTC offset at an instant is
/// `offset_at` (seconds east): why, or `None` for the usual alerts. Pure:
/// the instants and the zone come in, so tests inject both.
pub fn expected_outage(
    window: &ResetWindow,
    zone: &str,
    offset_at: impl Fn(SystemTime) -> i32,
    down_since: SystemTime,
    now: SystemTime,
) -> Option<String> {
    let unix = match down_since.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    let down_at = LocalTime::from_unix(unix, offset_at(down_since));
    let down_for = now.duration_since(down_since).unwrap_or_default();
    match window.verdict(down_at, down_for) {
        OutageVerdict::Expected => Some(format!(
            "it began inside reset_window {window} ({zone}), IB's daily restart"
        )),
        OutageVerdict::Alert => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u32, m: u32) -> LocalTime {
        LocalTime::hms(h, m, 0).unwrap()
    }

    #[test]
    fn parses_and_prints() {
        let w: ResetWindow = "23:45-00:45".parse().unwrap();
        assert_eq!(w.to_string(), "23:45-00:45");
        assert_eq!(w.length(), Duration::from_secs(3600));
        assert_eq!(
            "1:05-2:00".parse::<ResetWindow>().unwrap().to_string(),
            "01:05-02:00"
        );
        for bad in [
            "",
            "23:45",
            "24:00-01:00",
            "23:60-00:10",
            "23:45-23:45",
            "a:b-c:d",
            "23:5-00:45",
        ] {
            assert!(bad.parse::<ResetWindow>().is_err(), "{bad}");
        }
    }

    #[test]
    fn contains_spans_midnight() {
        let w: ResetWindow = "23:45-00:45".parse().unwrap();
        let table = [
            (at(23, 44), false),
            (at(23, 45), true),
            (at(0, 0), true),
            (at(0, 44), true),
            (at(0, 45), false),
            (at(12, 0), false),
        ];
        for (t, want) in table {
            assert_eq!(w.contains(t), want, "{t:?}");
        }
        let day: ResetWindow = "01:00-02:00".parse().unwrap();
        assert!(day.contains(at(1, 30)));
        assert!(!day.contains(at(23, 30)));
    }

    #[test]
    fn verdict_alerts_outside_or_after_the_window() {
        let w: ResetWindow = "23:45-00:45".parse().unwrap();
        let min = |m: u64| Duration::from_secs(60 * m);
        let table = [
            (at(23, 50), min(10), OutageVerdict::Expected),
            (at(23, 50), min(54), OutageVerdict::Expected),
            (at(23, 50), min(55), OutageVerdict::Alert),
            (at(0, 30), min(14), OutageVerdict::Expected),
            (at(0, 30), min(15), OutageVerdict::Alert),
            (at(22, 0), min(1), OutageVerdict::Alert),
        ];
        for (t, d, want) in table {
            assert_eq!(w.verdict(t, d), want, "{t:?} {d:?}");
        }
    }

    #[test]
    fn local_time_from_unix_and_offset() {
        // 2026-01-05 04:50:00 UTC is 23:50 in New York (UTC-5).
        let t = LocalTime::from_unix(1_767_588_600, -5 * 3600);
        assert_eq!(t, at(23, 50));
        assert_eq!(LocalTime::from_unix(0, 0), at(0, 0));
        assert_eq!(
            LocalTime::from_unix(-60, 0),
            LocalTime::hms(23, 59, 0).unwrap()
        );
    }
}

#[cfg(test)]
mod outage_tests {
    use super::*;

    /// New York's offset: -4 h from 2026-03-08 07:00 UTC to 2026-11-01
    /// 06:00 UTC, else -5 h (a stand-in for the zone database).
    fn new_york(t: SystemTime) -> i32 {
        let s = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
        if (1_772_953_200..1_793_512_800).contains(&s) {
            -4 * 3600
        } else {
            -5 * 3600
        }
    }

    fn utc(unix: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix)
    }

    #[test]
    fn a_disconnect_inside_the_window_is_expected_until_it_outlasts_it() {
        let w: ResetWindow = "23:45-00:45".parse().unwrap();
        let min = |m: u64| Duration::from_secs(60 * m);
        // 2026-01-06 04:50 UTC = 23:50 in New York (winter).
        let winter = utc(1_767_675_000);
        // 2026-07-07 03:50 UTC = 23:50 in New York (summer).
        let summer = utc(1_783_396_200);
        // 2026-01-06 15:00 UTC = 10:00 in New York.
        let morning = utc(1_767_711_600);
        let table = [
            (winter, min(1), true),
            (winter, min(54), true),
            (winter, min(55), false),
            (summer, min(30), true),
            (summer + min(60), min(1), false),
            (morning, min(1), false),
        ];
        for (down, lasted, want) in table {
            let got = expected_outage(&w, "America/New_York", new_york, down, down + lasted);
            assert_eq!(got.is_some(), want, "{down:?} for {lasted:?}: {got:?}");
        }
        let why = expected_outage(&w, "America/New_York", new_york, winter, winter + min(5));
        assert_eq!(
            why.as_deref(),
            Some("it began inside reset_window 23:45-00:45 (America/New_York), IB's daily restart")
        );
        // The same instant read as UTC is 04:50: outside the window.
        assert_eq!(
            expected_outage(&w, "UTC", |_| 0, winter, winter + min(5)),
            None
        );
    }
}
