//! The server's clock, as its `Date` header tells it: a parser for the
//! IMF-fixdate form (RFC 9110 §5.6.7), the offset of the server's clock
//! from ours over one request, and a shared recorder of the latest offset
//! that says when it is large enough to alert on. Broker APIs reject
//! signed requests whose timestamps are off by a few seconds, so a drifting
//! VPS clock must be noticed before the first rejection, not after.
//!
//! All pure but [`ClockDrift`], which only holds the last reading.

use crate::timefmt::human;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY_NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// days_from_civil, the inverse of `timefmt::civil_from_days`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `n` ASCII digits of `s` at `at..at + n` as a number.
fn digits(s: &[u8], at: usize, n: usize) -> Option<u32> {
    let part = s.get(at..at + n)?;
    part.iter().try_fold(0u32, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

/// Parses an IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`: fixed width,
/// case-sensitive names, always GMT. The day name must agree with the date
/// (a header that contradicts itself is not trusted). The two obsolete
/// forms (RFC 850, asctime) that RFC 9110 still asks recipients to accept
/// give `None`: no reading is better than a wrong one, and every server a
/// broker runs today sends IMF-fixdate. A leap second (`:60`) counts as the
/// next second.
pub fn parse_imf_fixdate(value: &str) -> Option<SystemTime> {
    let s = value.trim().as_bytes();
    if s.len() != 29
        || &s[3..5] != b", "
        || s[7] != b' '
        || s[11] != b' '
        || s[16] != b' '
        || s[19] != b':'
        || s[22] != b':'
        || &s[25..] != b" GMT"
    {
        return None;
    }
    let weekday = DAY_NAMES.iter().position(|d| d.as_bytes() == &s[..3])?;
    let month = MONTHS.iter().position(|m| m.as_bytes() == &s[8..11])? as u32 + 1;
    let day = digits(s, 5, 2)?;
    let year = i64::from(digits(s, 12, 4)?);
    let (hour, minute, second) = (digits(s, 17, 2)?, digits(s, 20, 2)?, digits(s, 23, 2)?);
    if day == 0 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    // 1970-01-01 was a Thursday.
    if (days + 4).rem_euclid(7) as usize != weekday {
        return None;
    }
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs as u64))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    }
}

/// How far the server's clock is from ours, as one request saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockOffset {
    /// The server's clock reads later than ours.
    pub server_ahead: bool,
    /// The best estimate of the difference.
    pub by: Duration,
    /// How far off `by` may be: half a second for the header's resolution
    /// plus half the time the request took.
    pub uncertainty: Duration,
}

impl ClockOffset {
    /// Server minus ours in milliseconds (positive: the server is ahead).
    pub fn signed_millis(&self) -> i64 {
        let ms = i64::try_from(self.by.as_millis()).unwrap_or(i64::MAX);
        if self.server_ahead { ms } else { -ms }
    }

    /// The least the clocks can differ by, given the uncertainty: zero when
    /// the reading is consistent with clocks in agreement.
    pub fn at_least(&self) -> Duration {
        self.by.saturating_sub(self.uncertainty)
    }
}

/// `+2.5s`, `-850ms`, `0ms`: the estimate, signed, server minus ours (an
/// alert's `offset=` field).
impl fmt::Display for ClockOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = match (self.by.is_zero(), self.server_ahead) {
            (true, _) => "",
            (false, true) => "+",
            (false, false) => "-",
        };
        write!(f, "{sign}{}", human(self.by))
    }
}

/// The offset of the server's clock from ours, from the server's `Date`
/// and our wall clock just before the request went out (`sent_at`) and
/// when its response headers were in (`received_at`).
///
/// The server stamped `Date` at some moment between the two, so ours is
/// taken at their midpoint. `Date` has whole seconds and servers truncate:
/// the server's clock read somewhere in `[Date, Date + 1 s)`, so the
/// estimate is `Date + 0.5 s`, and `uncertainty` is that half second plus
/// half the round trip. `sent_at` includes connecting, so a request on a
/// fresh connection is less precise but still within its uncertainty.
/// Compare with [`ClockOffset::at_least`] to alert only on offsets no
/// resolution or latency can explain.
pub fn clock_offset(
    server_date: SystemTime,
    sent_at: SystemTime,
    received_at: SystemTime,
) -> ClockOffset {
    // A wall clock stepped backwards mid-request: treat it as instantaneous.
    let rtt = received_at.duration_since(sent_at).unwrap_or_default();
    let ours = sent_at + rtt / 2;
    let theirs = server_date + Duration::from_millis(500);
    let (server_ahead, by) = match theirs.duration_since(ours) {
        Ok(d) => (true, d),
        Err(e) => (false, e.duration()),
    };
    ClockOffset {
        server_ahead,
        by,
        uncertainty: Duration::from_millis(500) + rtt / 2,
    }
}

/// One offset, from whom and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriftReading {
    pub offset: ClockOffset,
    /// The host whose clock was read (no port, no path).
    pub host: String,
    /// When (our wall clock) the reading was taken.
    pub at: SystemTime,
}

/// A clock offset beyond this raises `alert=clock_drift`: signed broker APIs
/// start rejecting requests around there, and a drifting host looks exactly
/// like bad keys.
pub const DRIFT_LIMIT: Duration = Duration::from_secs(2);

/// The latest clock offset seen by any HTTP client given it, shared across
/// threads (`Arc<ClockDrift>`). It only records; whoever watches it raises
/// the `clock_drift` alert from what [`exceeds`](Self::exceeds) returns.
#[derive(Debug, Default)]
pub struct ClockDrift {
    last: Mutex<Option<DriftReading>>,
}

impl ClockDrift {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&self, offset: ClockOffset, host: &str, at: SystemTime) {
        // A panic elsewhere while holding the lock leaves a valid Option behind.
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(DriftReading {
            offset,
            host: host.to_string(),
            at,
        });
    }

    pub fn last(&self) -> Option<DriftReading> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The latest reading if the clocks certainly differ by more than
    /// `threshold` (its [`ClockOffset::at_least`] is above it): an alert is due.
    pub fn exceeds(&self, threshold: Duration) -> Option<DriftReading> {
        self.last().filter(|r| r.offset.at_least() > threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timefmt::{civil_from_days, rfc3339};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn parses_the_rfc_example() {
        // RFC 9110 §5.6.7: 784111777 seconds after the epoch.
        let t = parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t, at(784_111_777));
        assert_eq!(rfc3339(t), "1994-11-06T08:49:37Z");
    }

    #[test]
    fn parses_leap_days_and_year_ends() {
        for (text, want) in [
            ("Thu, 01 Jan 1970 00:00:00 GMT", "1970-01-01T00:00:00Z"),
            ("Tue, 29 Feb 2028 23:59:59 GMT", "2028-02-29T23:59:59Z"),
            ("Tue, 29 Feb 2000 12:00:00 GMT", "2000-02-29T12:00:00Z"),
            ("Thu, 31 Dec 2026 23:59:59 GMT", "2026-12-31T23:59:59Z"),
            ("Sun, 22 Nov 2026 09:00:01 GMT", "2026-11-22T09:00:01Z"),
        ] {
            let t = parse_imf_fixdate(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(rfc3339(t), want, "{text}");
        }
        // Surrounding whitespace (optional whitespace of a header) is fine.
        assert!(parse_imf_fixdate("  Sun, 06 Nov 1994 08:49:37 GMT ").is_some());
        // A leap second is the next second.
        assert_eq!(
            parse_imf_fixdate("Sat, 31 Dec 2016 23:59:60 GMT").unwrap(),
            parse_imf_fixdate("Sun, 01 Jan 2017 00:00:00 GMT").unwrap()
        );
    }

    #[test]
    fn refuses_anything_else() {
        for bad in [
            "",
            "Sunday, 06-Nov-94 08:49:37 GMT", // RFC 850
            "Sun Nov  6 08:49:37 1994",       // asctime
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 08:49:37 +0000",
            "sun, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 nov 1994 08:49:37 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Mon, 06 Nov 1994 08:49:37 GMT", // 1994-11-06 was a Sunday
            "Wed, 29 Feb 2023 00:00:00 GMT", // no such day
            "Sat, 31 Apr 2027 00:00:00 GMT",
            "Sun, 00 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:00 GMT",
            "Sun, 06 Nov 1994 08:49:61 GMT",
            "Sun, 06 Nov 1994 08:49:3a GMT",
            "Sun, 06 Nov 1994 08:49:37 GMTX",
            "Sun; 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08-49-37 GMT",
            "Sun, 06 Nov +994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT\u{e9}",
        ] {
            assert_eq!(parse_imf_fixdate(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn days_from_civil_inverts_civil_from_days() {
        for days in (-800_000i64..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn offset_of_synchronised_clocks_is_within_its_uncertainty() {
        // Sent at 100.2 s, answered at 100.4 s; the server stamped "100".
        let sent = at(100) + Duration::from_millis(200);
        let recv = at(100) + Duration::from_millis(400);
        let o = clock_offset(at(100), sent, recv);
        // Estimate 100.5 - 100.3 = +200 ms, give or take 600 ms.
        assert_eq!(o.by, Duration::from_millis(200));
        assert!(o.server_ahead);
        assert_eq!(o.uncertainty, Duration::from_millis(600));
        assert_eq!(o.at_least(), Duration::ZERO);
        assert_eq!(o.signed_millis(), 200);
        assert_eq!(o.to_string(), "+200ms");
    }

    #[test]
    fn server_behind_is_negative() {
        // We read 1000.0 .. 1000.1; the server says 995 (really 995.0..996.0).
        let sent = at(1000);
        let recv = at(1000) + Duration::from_millis(100);
        let o = clock_offset(at(995), sent, recv);
        assert!(!o.server_ahead);
        assert_eq!(o.by, Duration::from_millis(4550));
        assert_eq!(o.signed_millis(), -4550);
        assert_eq!(o.uncertainty, Duration::from_millis(550));
        assert_eq!(o.at_least(), Duration::from_secs(4));
        assert_eq!(o.to_string(), "-4.6s");
    }

    #[test]
    fn a_clock_stepped_back_mid_request_does_not_panic() {
        let o = clock_offset(at(50), at(60), at(59));
        assert!(!o.server_ahead);
        assert_eq!(o.by, Duration::from_millis(9500));
        assert_eq!(o.uncertainty, Duration::from_millis(500));
    }

    #[test]
    fn exactly_equal_shows_no_sign() {
        let o = clock_offset(
            at(10),
            at(10) + Duration::from_millis(500),
            at(10) + Duration::from_millis(500),
        );
        assert_eq!(o.by, Duration::ZERO);
        assert_eq!(o.to_string(), "0ms");
    }

    #[test]
    fn drift_recorder_keeps_the_last_reading_and_says_when_to_alert() {
        let drift = ClockDrift::new();
        assert_eq!(drift.last(), None);
        assert_eq!(drift.exceeds(Duration::from_secs(1)), None);
        let small = clock_offset(at(100), at(100), at(100));
        drift.record(small, "api.example.com", at(100));
        assert_eq!(drift.exceeds(Duration::from_secs(1)), None);
        // 3.55 s behind, known within 0.55 s: certainly beyond 2 s, not beyond 3 s.
        let big = clock_offset(at(996), at(1000), at(1000) + Duration::from_millis(100));
        drift.record(big, "rest.example.net", at(1000));
        let r = drift.exceeds(Duration::from_secs(2)).expect("alert due");
        assert_eq!(r.host, "rest.example.net");
        assert_eq!(r.at, at(1000));
        assert_eq!(r.offset, big);
        assert_eq!(drift.exceeds(Duration::from_secs(3)), None);
        assert_eq!(drift.last().unwrap().host, "rest.example.net");
    }

    #[test]
    fn drift_recorder_is_shared_across_threads() {
        let drift = std::sync::Arc::new(ClockDrift::new());
        let d = drift.clone();
        std::thread::spawn(move || d.record(clock_offset(at(1), at(1), at(1)), "h", at(1)))
            .join()
            .unwrap();
        assert_eq!(drift.last().unwrap().host, "h");
    }
}
