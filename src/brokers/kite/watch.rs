//! What one Kite feed knows of its access token between connections, and
//! what it tells the operator about it: pure, driven by the time handed in
//! (the feed thread's clock, through `Adapter::tick`), so a test walks it
//! across a weekend and a holiday without sleeping.
//!
//! - the token's state: missing, issued at a known time (by `kite-login`
//!   or first seen working), rejected by Kite, or not yet known;
//! - notes for `status` (`feeds[].info`): `token_expires` (the first
//!   06:00 IST after issue), `token_issued` (when, and who said so),
//!   `token_state`, `market_opens` (the next NSE pre-open);
//! - `alert=token_expiring` once per token and pre-open, `token_alert_before`
//!   ahead of the next NSE pre-open, when the token in hand will be dead by
//!   then (see [`super::expiry::ExpiryWatch`]).
//!
//! The pre-open comes from the NSE calendar with the configured
//! `[calendar.nse]` holidays, whatever calendar the feed's stall detection
//! follows: the token rule is NSE's day, not the instruments'.

use super::expiry::{ExpiryWatch, TokenInHand, TokenState, expires_at};
use super::records::{IssueRecord, IssuedBy};
use crate::calendar::Calendar;
use crate::feed::Action;
use crate::timefmt::rfc3339;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Notes this watch publishes, in the order `session_facts` lists them.
pub const NOTE_KEYS: [&str; 4] = [
    "token_expires",
    "token_issued",
    "token_state",
    "market_opens",
];

/// When the token was issued, and who said so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Issued {
    pub at: SystemTime,
    pub by: IssuedBy,
}

impl From<&IssueRecord> for Issued {
    fn from(r: &IssueRecord) -> Self {
        Issued {
            at: r.issued_at,
            by: r.by,
        }
    }
}

/// One feed's token and its alerts.
#[derive(Clone, Debug)]
pub struct TokenWatch {
    account: String,
    /// The token's fingerprint; `None`: no token is set.
    fingerprint: Option<String>,
    issued: Option<Issued>,
    /// When Kite last refused this token (cleared when it works).
    rejected_at: Option<SystemTime>,
    /// The NSE calendar, for the next pre-open; `None` when it could not
    /// be built (then nothing is alerted, and the note says why).
    nse: Option<Arc<Calendar>>,
    alert_before: Duration,
    expiry: ExpiryWatch,
    /// The notes as last published, so only changes are sent.
    published: BTreeMap<&'static str, String>,
}

impl TokenWatch {
    pub fn new(
        account: &str,
        fingerprint: Option<String>,
        issued: Option<Issued>,
        nse: Option<Arc<Calendar>>,
        alert_before: Duration,
    ) -> Self {
        TokenWatch {
            account: account.to_string(),
            issued: issued.filter(|_| fingerprint.is_some()),
            fingerprint,
            rejected_at: None,
            nse,
            alert_before,
            expiry: ExpiryWatch::new(),
            published: BTreeMap::new(),
        }
    }

    /// The token just worked (the upgrade was accepted, the profile
    /// answered). Returns the record to write when this is the first time
    /// anyone has timed it.
    pub fn worked(&mut self, now: SystemTime) -> Option<IssueRecord> {
        self.rejected_at = None;
        let fingerprint = self.fingerprint.clone()?;
        if self.issued.is_some() {
            return None;
        }
        let issued = Issued {
            at: now,
            by: IssuedBy::FirstSeen,
        };
        self.issued = Some(issued);
        Some(IssueRecord {
            fingerprint,
            issued_at: now,
            by: issued.by,
            user_id: None,
        })
    }

    /// Kite refused the token.
    pub fn rejected(&mut self, now: SystemTime) {
        self.rejected_at = Some(now);
    }

    /// A record appeared for the token (written by `kite-login` or by
    /// another check) after this watch was made.
    pub fn learn(&mut self, issued: Issued) {
        if self.fingerprint.is_some() && self.issued.is_none() {
            self.issued = Some(issued);
        }
    }

    /// Whether the issue time is still unknown (the caller may look for a
    /// record that appeared since).
    pub fn needs_issue_time(&self) -> bool {
        self.fingerprint.is_some() && self.issued.is_none()
    }

    pub fn fingerprint(&self) -> Option<&str> {
        self.fingerprint.as_deref()
    }

    pub fn state(&self) -> TokenState {
        let Some(fingerprint) = self.fingerprint.clone() else {
            return TokenState::Missing;
        };
        match (self.rejected_at, self.issued) {
            (Some(_), issued) => TokenState::Rejected {
                fingerprint,
                issued_at: issued.map(|i| i.at),
            },
            (None, Some(i)) => TokenState::Issued(TokenInHand {
                fingerprint,
                issued_at: i.at,
            }),
            (None, None) => TokenState::Unknown { fingerprint },
        }
    }

    /// The next NSE pre-open after `now`.
    pub fn next_preopen(&self, now: SystemTime) -> Option<SystemTime> {
        self.nse.as_ref().and_then(|c| c.next_opening(now))
    }

    /// What an operator reads about the token and the market at `now`, in
    /// [`NOTE_KEYS`] order.
    pub fn facts(&self, now: SystemTime) -> Vec<(&'static str, String)> {
        let expires = self.issued.map(|i| expires_at(i.at));
        let state = match self.state() {
            TokenState::Missing => "missing",
            TokenState::Unknown { .. } => "not seen working yet",
            TokenState::Rejected { .. } => "rejected by Kite",
            TokenState::Issued(_) if expires.is_some_and(|e| e <= now) => "expired",
            TokenState::Issued(_) => "valid",
        };
        vec![
            (
                "token_expires",
                expires.map_or_else(
                    || "unknown".to_string(),
                    |e| format!("{} (06:00 IST)", rfc3339(e)),
                ),
            ),
            (
                "token_issued",
                self.issued.map_or_else(
                    || "unknown".to_string(),
                    |i| format!("{} ({})", rfc3339(i.at), i.by.as_str()),
                ),
            ),
            ("token_state", state.to_string()),
            (
                "market_opens",
                match (&self.nse, self.next_preopen(now)) {
                    (Some(_), Some(t)) => format!("{} (NSE pre-open)", rfc3339(t)),
                    (Some(_), None) => "unknown".to_string(),
                    (None, _) => "unknown (the NSE calendar could not be built)".to_string(),
                },
            ),
        ]
    }

    /// Called about once a second: the notes that changed and the
    /// `token_expiring` alert when it is due.
    pub fn tick(&mut self, now: SystemTime) -> Vec<Action> {
        let mut out = Vec::new();
        for (key, value) in self.facts(now) {
            if self.published.get(key) != Some(&value) {
                self.published.insert(key, value.clone());
                out.push(Action::Note { key, value });
            }
        }
        if let Some(open) = self.next_preopen(now) {
            let state = self.state();
            if let Some(a) = self
                .expiry
                .check(&self.account, &state, now, open, self.alert_before)
            {
                out.push(Action::Alert(a));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::expiry::ist;
    use super::*;
    use crate::calendar::{CalendarKind, Date};
    use crate::clock::{Clock, FakeClock};

    const MIN: Duration = Duration::from_secs(60);

    /// NSE with Wednesday 2026-11-25 as a holiday (a made-up one: the
    /// test needs a weekday closure inside the week it walks).
    fn nse() -> Arc<Calendar> {
        let holiday = Date::new(2026, 11, 25).unwrap();
        Arc::new(Calendar::new(CalendarKind::Nse, &[holiday]).unwrap())
    }

    fn alerts(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Alert(a) => Some(a.to_string()),
                _ => None,
            })
            .collect()
    }

    /// Walks `clock` minute by minute until `until`, ticking the watch, and
    /// returns every alert with the IST-free instant it fired at.
    fn walk(w: &mut TokenWatch, clock: &FakeClock, until: SystemTime) -> Vec<(String, String)> {
        let mut out = Vec::new();
        while clock.wall() < until {
            for a in alerts(&w.tick(clock.wall())) {
                out.push((rfc3339(clock.wall()), a));
            }
            clock.advance(MIN);
        }
        out
    }

    /// Friday 2026-11-27 08:45 IST login; nobody logs in over the weekend.
    /// The token dies Saturday 06:00; the first alert is Monday 08:30 IST,
    /// 30 minutes before Monday's pre-open, and only once.
    #[test]
    fn a_friday_token_is_alerted_once_on_monday_morning_not_over_the_weekend() {
        let fp = "sha256:0000f00d".to_string();
        let issued = Issued {
            at: ist(2026, 11, 27, 8, 45, 0),
            by: IssuedBy::KiteLogin,
        };
        let mut w = TokenWatch::new("main", Some(fp), Some(issued), Some(nse()), 30 * MIN);
        let clock = FakeClock::at(ist(2026, 11, 27, 9, 0, 0));
        let fired = walk(&mut w, &clock, ist(2026, 11, 30, 12, 0, 0));
        assert_eq!(
            fired,
            vec![(
                rfc3339(ist(2026, 11, 30, 8, 30, 0)),
                "alert=token_expiring account=main expires=2026-11-28T00:30:00Z \
                 market_opens=2026-11-30T03:30:00Z action=\"run: sudo brokerguard kite-login --account main\""
                    .to_string()
            )]
        );
        // Over the weekend the notes say the token is dead and when the market opens.
        let facts: BTreeMap<_, _> = w.facts(ist(2026, 11, 29, 12, 0, 0)).into_iter().collect();
        assert_eq!(facts["token_state"], "expired");
        assert_eq!(facts["token_expires"], "2026-11-28T00:30:00Z (06:00 IST)");
        assert_eq!(facts["token_issued"], "2026-11-27T03:15:00Z (kite-login)");
        assert_eq!(facts["market_opens"], "2026-11-30T03:30:00Z (NSE pre-open)");
    }

    /// Tuesday 2026-11-24 login; Wednesday is a holiday, so the next
    /// pre-open is Thursday's: no alert on the holiday morning, one on
    /// Thursday at 08:30 IST. After a login on Thursday at 08:40 nothing
    /// more that day; Thursday's token is alerted on Friday morning.
    #[test]
    fn across_a_holiday_the_alert_waits_for_the_next_trading_morning() {
        let issued = Issued {
            at: ist(2026, 11, 24, 8, 50, 0),
            by: IssuedBy::KiteLogin,
        };
        let mut w = TokenWatch::new(
            "main",
            Some("sha256:00000001".into()),
            Some(issued),
            Some(nse()),
            30 * MIN,
        );
        let clock = FakeClock::at(ist(2026, 11, 24, 10, 0, 0));
        let fired = walk(&mut w, &clock, ist(2026, 11, 26, 8, 40, 0));
        let times: Vec<&str> = fired.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(times, [rfc3339(ist(2026, 11, 26, 8, 30, 0))]);
        assert!(
            fired[0].1.contains("market_opens=2026-11-26T03:30:00Z"),
            "{}",
            fired[0].1
        );
        // The operator logs in: a new token (a new watch, as the adapter is
        // rebuilt on a credential change) with today's issue time.
        let fresh = Issued {
            at: clock.wall(),
            by: IssuedBy::KiteLogin,
        };
        let mut w = TokenWatch::new(
            "main",
            Some("sha256:00000002".into()),
            Some(fresh),
            Some(nse()),
            30 * MIN,
        );
        assert!(walk(&mut w, &clock, ist(2026, 11, 26, 16, 0, 0)).is_empty());
        let next = walk(&mut w, &clock, ist(2026, 11, 27, 9, 0, 0));
        let times: Vec<&str> = next.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(times, [rfc3339(ist(2026, 11, 27, 8, 30, 0))]);
    }

    /// A longer `token_alert_before` opens the window earlier; a token
    /// rejected in it is alerted too, and one that works again is not.
    #[test]
    fn lead_time_rejection_and_first_seen() {
        let mut w = TokenWatch::new(
            "acct2",
            Some("sha256:00000003".into()),
            None,
            Some(nse()),
            120 * MIN,
        );
        let monday_7 = ist(2026, 11, 30, 7, 0, 0);
        // Unknown: nothing claimed.
        assert!(alerts(&w.tick(monday_7)).is_empty());
        assert_eq!(
            w.state(),
            TokenState::Unknown {
                fingerprint: "sha256:00000003".into()
            }
        );
        w.rejected(monday_7);
        let a = alerts(&w.tick(monday_7 + MIN));
        assert_eq!(a.len(), 1);
        assert!(a[0].contains("account=acct2 expires=rejected"), "{}", a[0]);
        // It works after all (a clock step at Kite's side): timed from now.
        let rec = w.worked(monday_7 + 2 * MIN).unwrap();
        assert_eq!(rec.by, IssuedBy::FirstSeen);
        assert!(w.worked(monday_7 + 3 * MIN).is_none(), "timed only once");
        let facts: BTreeMap<_, _> = w.facts(monday_7 + 3 * MIN).into_iter().collect();
        assert_eq!(facts["token_expires"], "2026-12-01T00:30:00Z (06:00 IST)");
        assert_eq!(facts["token_state"], "valid");
        assert!(alerts(&w.tick(monday_7 + 4 * MIN)).is_empty());
    }

    #[test]
    fn notes_are_sent_when_they_change_and_a_missing_token_is_alerted() {
        let mut w = TokenWatch::new("main", None, None, Some(nse()), 30 * MIN);
        let t = ist(2026, 11, 30, 8, 45, 0);
        let first = w.tick(t);
        let notes: Vec<&str> = first
            .iter()
            .filter_map(|a| match a {
                Action::Note { key, .. } => Some(*key),
                _ => None,
            })
            .collect();
        assert_eq!(notes, NOTE_KEYS);
        assert_eq!(
            alerts(&first),
            [
                "alert=token_expiring account=main expires=missing market_opens=2026-11-30T03:30:00Z \
              action=\"run: sudo brokerguard kite-login --account main\""
            ]
        );
        assert!(w.tick(t + MIN).is_empty(), "nothing changed, nothing sent");
        // No calendar: notes say so, nothing is alerted.
        let mut blind = TokenWatch::new("main", None, None, None, 30 * MIN);
        let facts: BTreeMap<_, _> = blind.facts(t).into_iter().collect();
        assert!(facts["market_opens"].contains("could not be built"));
        assert!(alerts(&blind.tick(t)).is_empty());
    }
}
