//! When a Kite access token dies, and when to warn about it.
//!
//! Kite's rule (PROTOCOLS.md §3.1): unless invalidated earlier, an
//! `access_token` expires at 06:00 the next morning, Indian time. India
//! Standard Time is UTC+05:30 all year with no daylight saving, so fixed
//! offset arithmetic is exact here and needs no time zone database.
//!
//! The `token_expiring` alert is due when, `token_alert_before` (default
//! 30 min) before the next NSE pre-open, the token in hand will already be
//! expired at that pre-open and no newer one has arrived. The pre-open
//! instant is passed in: the NSE calendar (weekends, holidays) computes it.
//! [`ExpiryWatch`] makes it fire once per token and pre-open, not on every
//! tick.

use super::rest::login_command;
use crate::alert::{Alert, AlertKind};
use crate::timefmt::rfc3339;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// IST = UTC+05:30.
pub const IST_OFFSET_SECS: i64 = 5 * 3600 + 30 * 60;
/// Tokens die at this hour of the IST day.
pub const EXPIRY_HOUR_IST: i64 = 6;
/// `token_alert_before` when the configuration does not say.
pub const DEFAULT_TOKEN_ALERT_BEFORE: Duration = Duration::from_secs(30 * 60);

const DAY: i64 = 86_400;

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs_f64().ceil() as i64),
    }
}

fn from_unix(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm, the
/// inverse of `timefmt::civil_from_days`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The instant of an IST wall-clock time.
pub fn ist(y: i64, month: u32, day: u32, h: u32, min: u32, s: u32) -> SystemTime {
    let local = days_from_civil(y, month, day) * DAY
        + i64::from(h) * 3600
        + i64::from(min) * 60
        + i64::from(s);
    from_unix(local - IST_OFFSET_SECS)
}

/// Parses Kite's `login_time`, `YYYY-MM-DD HH:MM:SS` in IST.
pub fn parse_ist_datetime(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Reject dates that do not exist (Feb 30) by round-tripping.
    let days = days_from_civil(i64::from(y), mo, d);
    if crate::timefmt::civil_from_days(days) != (i64::from(y), mo, d) {
        return None;
    }
    Some(ist(i64::from(y), mo, d, h, mi, se))
}

/// When a token issued (or first seen working) at `issued_at` expires: the
/// first 06:00 IST strictly after it.
pub fn expires_at(issued_at: SystemTime) -> SystemTime {
    let local = unix(issued_at) + IST_OFFSET_SECS;
    let six = local.div_euclid(DAY) * DAY + EXPIRY_HOUR_IST * 3600;
    let expiry_local = if local < six { six } else { six + DAY };
    from_unix(expiry_local - IST_OFFSET_SECS)
}

/// Whether `token_expiring` is due now: we are within `alert_before` of the
/// next pre-open (and not past it), and the token in hand — issued at
/// `issued_at`, or none at all — will be expired when the market opens.
pub fn token_expiring_due(
    now: SystemTime,
    issued_at: Option<SystemTime>,
    next_preopen: SystemTime,
    alert_before: Duration,
) -> bool {
    let window_start = next_preopen.checked_sub(alert_before).unwrap_or(UNIX_EPOCH);
    if now < window_start || now >= next_preopen {
        return false;
    }
    match issued_at {
        None => true,
        Some(issued) => expires_at(issued) <= next_preopen,
    }
}

/// The token a feed holds: its fingerprint (never the value) and when it
/// was issued, or first seen working.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInHand {
    pub fingerprint: String,
    pub issued_at: SystemTime,
}

/// What is known of the access token a feed holds now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenState {
    /// No access token is set.
    Missing,
    /// Set, but neither issued by `kite-login` nor seen working yet: its
    /// expiry is not known, so nothing is alerted about it (a rejection
    /// will say soon enough).
    Unknown { fingerprint: String },
    /// Issued (or first seen working) at a known time.
    Issued(TokenInHand),
    /// Kite refused it (a 403 on the upgrade, a `TokenException`).
    Rejected {
        fingerprint: String,
        issued_at: Option<SystemTime>,
    },
}

impl TokenState {
    fn fingerprint(&self) -> Option<&str> {
        match self {
            TokenState::Missing => None,
            TokenState::Unknown { fingerprint }
            | TokenState::Rejected { fingerprint, .. }
            | TokenState::Issued(TokenInHand { fingerprint, .. }) => Some(fingerprint),
        }
    }
}

/// Remembers which (token, pre-open) was alerted, so the alert fires once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExpiryWatch {
    alerted: Option<(Option<String>, SystemTime)>,
}

impl ExpiryWatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// The alert to emit now, if any (at most once per token and pre-open):
    /// within `alert_before` of `next_preopen`, a token that will be expired
    /// by then, a rejected one, or none at all.
    pub fn check(
        &mut self,
        account: &str,
        token: &TokenState,
        now: SystemTime,
        next_preopen: SystemTime,
        alert_before: Duration,
    ) -> Option<Alert> {
        let in_window = token_expiring_due(now, None, next_preopen, alert_before);
        let (due, expires) = match token {
            TokenState::Missing => (in_window, "missing".to_string()),
            TokenState::Unknown { .. } => (false, String::new()),
            TokenState::Issued(t) => (
                token_expiring_due(now, Some(t.issued_at), next_preopen, alert_before),
                rfc3339(expires_at(t.issued_at)),
            ),
            TokenState::Rejected { issued_at, .. } => (
                in_window,
                // Past its 06:00 it expired; before it, it was revoked
                // (a master logout, a new login elsewhere).
                issued_at
                    .map(expires_at)
                    .filter(|e| *e <= now)
                    .map_or_else(|| "rejected".to_string(), rfc3339),
            ),
        };
        if !due {
            return None;
        }
        let key = (token.fingerprint().map(String::from), next_preopen);
        if self.alerted.as_ref() == Some(&key) {
            return None;
        }
        self.alerted = Some(key);
        Some(
            Alert::new(AlertKind::TokenExpiring)
                .with("account", account)
                .with("expires", expires)
                .with("market_opens", rfc3339(next_preopen))
                .with("action", format!("run: {}", login_command(account))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Duration = Duration::from_secs(60);

    #[test]
    fn ist_is_utc_plus_five_thirty() {
        assert_eq!(rfc3339(ist(2026, 11, 23, 6, 0, 0)), "2026-11-23T00:30:00Z");
        assert_eq!(rfc3339(ist(2026, 1, 1, 0, 0, 0)), "2025-12-31T18:30:00Z");
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for d in [-1000i64, 0, 11_016, 20_000, 50_000] {
            let (y, m, dd) = crate::timefmt::civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }

    #[test]
    fn expiry_is_the_next_six_am_ist() {
        let cases = [
            // (issued, IST)                  expires (IST)
            (ist(2026, 11, 23, 8, 45, 0), ist(2026, 11, 24, 6, 0, 0)), // a morning login
            (ist(2026, 11, 23, 23, 59, 59), ist(2026, 11, 24, 6, 0, 0)),
            (ist(2026, 11, 24, 0, 10, 0), ist(2026, 11, 24, 6, 0, 0)), // after midnight IST
            (ist(2026, 11, 24, 5, 59, 59), ist(2026, 11, 24, 6, 0, 0)), // one second left
            (ist(2026, 11, 24, 6, 0, 0), ist(2026, 11, 25, 6, 0, 0)),  // at 06:00: the next one
            (ist(2026, 12, 31, 20, 0, 0), ist(2027, 1, 1, 6, 0, 0)),   // across a year
            (ist(2028, 2, 28, 9, 0, 0), ist(2028, 2, 29, 6, 0, 0)),    // leap day
            (ist(2026, 11, 27, 10, 0, 0), ist(2026, 11, 28, 6, 0, 0)), // Friday → Saturday
        ];
        for (issued, want) in cases {
            assert_eq!(expires_at(issued), want, "issued {}", rfc3339(issued));
        }
        // 18:29:59 UTC is 23:59:59 IST; 18:30 UTC is already the next IST day.
        assert_eq!(
            rfc3339(expires_at(ist(2026, 11, 23, 23, 59, 59))),
            "2026-11-24T00:30:00Z"
        );
    }

    #[test]
    fn login_time_parses_as_ist() {
        assert_eq!(
            parse_ist_datetime("2026-11-23 08:45:10"),
            Some(ist(2026, 11, 23, 8, 45, 10))
        );
        for bad in [
            "2026-11-23T08:45:10",
            "2026-02-30 08:00:00",
            "2026-13-01 08:00:00",
            "",
            "2026-11-23 8:45:10",
            "+026-11-23 08:45:10",
        ] {
            assert_eq!(parse_ist_datetime(bad), None, "{bad:?}");
        }
    }

    /// Mon 2026-11-23 .. Sun 2026-11-29; NSE pre-open at 09:00 IST.
    fn preopen(d: u32) -> SystemTime {
        ist(2026, 11, d, 9, 0, 0)
    }

    #[test]
    fn token_expiring_table() {
        let before = DEFAULT_TOKEN_ALERT_BEFORE;
        let cases: Vec<(&str, SystemTime, Option<SystemTime>, SystemTime, bool)> = vec![
            // (what, now, issued, next pre-open, due)
            (
                "today's token, morning of the open",
                ist(2026, 11, 24, 8, 35, 0),
                Some(ist(2026, 11, 24, 7, 50, 0)),
                preopen(24),
                false,
            ),
            (
                "yesterday's token, 25 min before",
                ist(2026, 11, 24, 8, 35, 0),
                Some(ist(2026, 11, 23, 8, 40, 0)),
                preopen(24),
                true,
            ),
            (
                "yesterday's token, 31 min before: not yet",
                ist(2026, 11, 24, 8, 29, 0),
                Some(ist(2026, 11, 23, 8, 40, 0)),
                preopen(24),
                false,
            ),
            (
                "exactly 30 min before",
                ist(2026, 11, 24, 8, 30, 0),
                Some(ist(2026, 11, 23, 8, 40, 0)),
                preopen(24),
                true,
            ),
            (
                "at the pre-open: too late for this window",
                preopen(24),
                Some(ist(2026, 11, 23, 8, 40, 0)),
                preopen(24),
                false,
            ),
            (
                "no token at all",
                ist(2026, 11, 24, 8, 45, 0),
                None,
                preopen(24),
                true,
            ),
            (
                "token from before 06:00 today",
                ist(2026, 11, 24, 8, 45, 0),
                Some(ist(2026, 11, 24, 5, 30, 0)),
                preopen(24),
                true,
            ),
            // Weekend: Friday's token expired Saturday 06:00; nothing is due
            // until Monday's pre-open window.
            (
                "Friday token, Saturday",
                ist(2026, 11, 28, 8, 45, 0),
                Some(ist(2026, 11, 27, 8, 50, 0)),
                ist(2026, 11, 30, 9, 0, 0),
                false,
            ),
            (
                "Friday token, Sunday night",
                ist(2026, 11, 29, 23, 0, 0),
                Some(ist(2026, 11, 27, 8, 50, 0)),
                ist(2026, 11, 30, 9, 0, 0),
                false,
            ),
            (
                "Friday token, Monday 08:31",
                ist(2026, 11, 30, 8, 31, 0),
                Some(ist(2026, 11, 27, 8, 50, 0)),
                ist(2026, 11, 30, 9, 0, 0),
                true,
            ),
            (
                "Sunday login lasts until Monday 06:00 only",
                ist(2026, 11, 30, 8, 31, 0),
                Some(ist(2026, 11, 29, 20, 0, 0)),
                ist(2026, 11, 30, 9, 0, 0),
                true,
            ),
            (
                "Monday 07:00 login, Monday open",
                ist(2026, 11, 30, 8, 31, 0),
                Some(ist(2026, 11, 30, 7, 0, 0)),
                ist(2026, 11, 30, 9, 0, 0),
                false,
            ),
            // Holiday: Wednesday 2026-11-25 closed, next pre-open Thursday.
            (
                "holiday morning: no open, no alert",
                ist(2026, 11, 25, 8, 45, 0),
                Some(ist(2026, 11, 24, 8, 50, 0)),
                preopen(26),
                false,
            ),
            (
                "day after the holiday, old token",
                ist(2026, 11, 26, 8, 45, 0),
                Some(ist(2026, 11, 24, 8, 50, 0)),
                preopen(26),
                true,
            ),
            (
                "login on the holiday still dies before the open",
                ist(2026, 11, 26, 8, 45, 0),
                Some(ist(2026, 11, 25, 12, 0, 0)),
                preopen(26),
                true,
            ),
            (
                "login on the morning after the holiday",
                ist(2026, 11, 26, 8, 45, 0),
                Some(ist(2026, 11, 26, 6, 30, 0)),
                preopen(26),
                false,
            ),
        ];
        for (what, now, issued, open, due) in cases {
            assert_eq!(token_expiring_due(now, issued, open, before), due, "{what}");
        }
        // A longer lead time opens the window earlier.
        assert!(token_expiring_due(
            ist(2026, 11, 24, 7, 0, 0),
            Some(ist(2026, 11, 23, 9, 0, 0)),
            preopen(24),
            120 * M
        ));
    }

    #[test]
    fn watch_fires_once_per_token_and_preopen() {
        let mut w = ExpiryWatch::new();
        let old = TokenInHand {
            fingerprint: "sha256:aaaaaaaa".into(),
            issued_at: ist(2026, 11, 23, 8, 40, 0),
        };
        let open = preopen(24);
        assert!(
            w.check(
                "main",
                &issued(&old),
                ist(2026, 11, 24, 8, 0, 0),
                open,
                30 * M
            )
            .is_none()
        );
        let a = w
            .check(
                "main",
                &issued(&old),
                ist(2026, 11, 24, 8, 31, 0),
                open,
                30 * M,
            )
            .unwrap();
        assert_eq!(
            a.to_string(),
            "alert=token_expiring account=main expires=2026-11-24T00:30:00Z market_opens=2026-11-24T03:30:00Z \
             action=\"run: sudo brokerguard kite-login --account main\""
        );
        for m in 32..60 {
            assert!(
                w.check(
                    "main",
                    &issued(&old),
                    ist(2026, 11, 24, 8, m, 0),
                    open,
                    30 * M
                )
                .is_none(),
                "minute {m}"
            );
        }
        // A new token that works: nothing more.
        let fresh = TokenInHand {
            fingerprint: "sha256:bbbbbbbb".into(),
            issued_at: ist(2026, 11, 24, 8, 50, 0),
        };
        assert!(
            w.check(
                "main",
                &issued(&fresh),
                ist(2026, 11, 24, 8, 51, 0),
                open,
                30 * M
            )
            .is_none()
        );
        // The token goes missing: a new situation, alerted once.
        let a = w
            .check(
                "main",
                &TokenState::Missing,
                ist(2026, 11, 24, 8, 52, 0),
                open,
                30 * M,
            )
            .unwrap();
        assert_eq!(a.get("expires"), Some("missing"));
        assert!(
            w.check(
                "main",
                &TokenState::Missing,
                ist(2026, 11, 24, 8, 53, 0),
                open,
                30 * M
            )
            .is_none()
        );
        // The same old token before the next day's open alerts again.
        assert!(
            w.check(
                "main",
                &issued(&old),
                ist(2026, 11, 25, 8, 40, 0),
                preopen(25),
                30 * M
            )
            .is_some()
        );
    }

    fn issued(t: &TokenInHand) -> TokenState {
        TokenState::Issued(t.clone())
    }

    #[test]
    fn rejected_and_unknown_tokens() {
        let open = preopen(24);
        let at = ist(2026, 11, 24, 8, 40, 0);
        let unknown = TokenState::Unknown {
            fingerprint: "sha256:cccccccc".into(),
        };
        // Never seen working, never issued by kite-login: nothing is claimed.
        assert!(
            ExpiryWatch::new()
                .check("main", &unknown, at, open, 30 * M)
                .is_none()
        );
        // Yesterday's token, refused after 06:00: it expired at 06:00.
        let expired = TokenState::Rejected {
            fingerprint: "sha256:dddddddd".into(),
            issued_at: Some(ist(2026, 11, 23, 9, 0, 0)),
        };
        let a = ExpiryWatch::new()
            .check("main", &expired, at, open, 30 * M)
            .unwrap();
        assert_eq!(a.get("expires"), Some("2026-11-24T00:30:00Z"));
        // This morning's token refused: revoked, not expired.
        let revoked = TokenState::Rejected {
            fingerprint: "sha256:eeeeeeee".into(),
            issued_at: Some(ist(2026, 11, 24, 7, 0, 0)),
        };
        let mut w = ExpiryWatch::new();
        let a = w.check("main", &revoked, at, open, 30 * M).unwrap();
        assert_eq!(a.get("expires"), Some("rejected"));
        assert!(w.check("main", &revoked, at, open, 30 * M).is_none());
        // Outside the window a rejection is credential_rejected's business.
        let early = ist(2026, 11, 24, 7, 30, 0);
        assert!(
            ExpiryWatch::new()
                .check("main", &revoked, early, open, 30 * M)
                .is_none()
        );
    }
}
