//! How brokerguard prints time: RFC 3339 timestamps in UTC (status.json,
//! log lines, fan-out `ts`) through jiff, and the short human durations of
//! tables and alerts (`850ms`, `2.5s`, `4m10s`), a form jiff does not have.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jiff::Timestamp;

/// (year, month, day) for days since 1970-01-01, for any day count
/// (Howard Hinnant's civil-from-days). Timestamps go through jiff; this
/// stays for the HTTP `Date` code and the simulator, which build their own
/// IMF-fixdate text from it.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `t` for jiff, clamped to its range (years -9999 to 9999) so that no
/// wall time, however absurd, makes formatting or a calendar fail.
pub(crate) fn timestamp(t: SystemTime) -> Timestamp {
    Timestamp::try_from(t).unwrap_or(if t < UNIX_EPOCH {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// `2026-11-22T09:00:01Z` (fractions of a second are cut, not rounded).
pub fn rfc3339(t: SystemTime) -> String {
    format!("{:.0}", timestamp(t))
}

/// `2026-11-22T09:00:01.123Z`: always three digits, cut, not rounded.
pub fn rfc3339_millis(t: SystemTime) -> String {
    format!("{:.3}", timestamp(t))
}

/// `retry in 8s`: how a countdown to the next attempt reads, in the
/// summary and in `status`'s STATE column alike.
pub fn retry_in(left: Duration) -> String {
    format!("retry in {}", human(left))
}

/// Human form of a duration for tables and alerts: `850ms`, `12s`, `4m10s`, `2h3m`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    if s < 60 {
        // Keep the tenths: "2.5s" must not read as "2s" (nor 2004ms as "2.0s").
        let tenths = (ms + 50) / 100;
        if tenths % 10 == 0 {
            format!("{}s", tenths / 10)
        } else {
            format!("{}.{}s", tenths / 10, tenths % 10)
        }
    } else if s < 3600 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{}h{}m", s / 3600, (s % 3600) / 60)
    }
}

/// Seconds since the epoch for a wall time (0 before it).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_338_001_123);
        assert_eq!(rfc3339_millis(t), "2026-11-22T09:00:01.123Z");
        // Leap day and century rules.
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn civil_from_days_agrees_with_jiff() {
        let epoch = jiff::civil::Date::new(1970, 1, 1).unwrap();
        for days in [-719_468i64, -1, 0, 1, 10_957, 11_016, 20_779, 2_932_896] {
            let d = epoch.checked_add(jiff::Span::new().days(days)).unwrap();
            let want = (i64::from(d.year()), d.month() as u32, d.day() as u32);
            assert_eq!(civil_from_days(days), want, "{days}");
        }
    }

    #[test]
    fn fractions_are_cut_and_padded() {
        let t = UNIX_EPOCH + Duration::from_nanos(1_795_338_001_999_999_999);
        assert_eq!(rfc3339(t), "2026-11-22T09:00:01Z");
        assert_eq!(rfc3339_millis(t), "2026-11-22T09:00:01.999Z");
        let whole = UNIX_EPOCH + Duration::from_secs(1_795_338_001);
        assert_eq!(rfc3339_millis(whole), "2026-11-22T09:00:01.000Z");
        let before = UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(rfc3339_millis(before), "1969-12-31T23:59:58.500Z");
    }

    #[test]
    fn out_of_range_times_are_clamped_not_panics() {
        let far = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert!(rfc3339(far).starts_with("9999-12-"), "{}", rfc3339(far));
        let early = UNIX_EPOCH - Duration::from_secs(400_000_000_000);
        assert!(
            rfc3339(early).starts_with("-009999-01-"),
            "{}",
            rfc3339(early)
        );
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(850)), "850ms");
        assert_eq!(human(Duration::from_secs(12)), "12s");
        assert_eq!(human(Duration::from_millis(2500)), "2.5s");
        assert_eq!(human(Duration::from_millis(2004)), "2s");
        assert_eq!(human(Duration::from_secs(250)), "4m10s");
        assert_eq!(human(Duration::from_secs(7380)), "2h3m");
    }
}
