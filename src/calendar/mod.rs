//! Market session calendars: when a market is closed, in its pre-open, or
//! open, so the feed engine knows when silence is expected and when it
//! means a stall, and a broker can warn ahead of the open (a day token must
//! be fresh before it).
//!
//! Three calendars, in the exchange's own time zone with its DST rules
//! (through jiff and the IANA database, never hand-written offsets):
//! - `always`: 24/7 (crypto): always open.
//! - `nyse`: 09:30–16:00 America/New_York, Monday to Friday.
//! - `nse`: pre-open 09:00–09:15 Asia/Kolkata (order entry 09:00–09:08, then
//!   order matching and a buffer to 09:15; both count as `pre_open`), normal
//!   market 09:15–15:30, Monday to Friday.
//!
//! Exchange holidays are whole closed days, configured per calendar
//! (`[calendar.nse] holidays = [...]`); NYSE's early closes (13:00 on the
//! day after Thanksgiving, Christmas Eve, ...) are days whose session ends
//! then (`[calendar.nyse] early_closes = [...]`). Everything here is pure: callers
//! pass the time, nothing reads a clock. A session starts at its first
//! instant and ends just before the next boundary (`[09:15, 15:30)`).

mod zone;

use std::collections::BTreeSet;
use std::fmt;
use std::time::SystemTime;

use jiff::Timestamp;
use jiff::civil::{Time, Weekday, time};
use jiff::tz::{TimeZone, TimeZoneDatabase};

use crate::timefmt::timestamp;

/// A civil date in the exchange's zone (holidays are written as these).
pub use jiff::civil::Date;

/// Which market calendar a feed follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CalendarKind {
    /// 24/7, for crypto.
    Always,
    /// New York Stock Exchange regular hours.
    Nyse,
    /// National Stock Exchange of India, with its pre-open session.
    Nse,
}

impl CalendarKind {
    pub const ALL: [CalendarKind; 3] =
        [CalendarKind::Always, CalendarKind::Nyse, CalendarKind::Nse];

    pub fn as_str(self) -> &'static str {
        match self {
            CalendarKind::Always => "always",
            CalendarKind::Nyse => "nyse",
            CalendarKind::Nse => "nse",
        }
    }

    pub fn parse(s: &str) -> Option<CalendarKind> {
        CalendarKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The IANA zone the exchange's hours are written in; `None` for `always`.
    pub fn zone_name(self) -> Option<&'static str> {
        match self {
            CalendarKind::Always => None,
            CalendarKind::Nyse => Some("America/New_York"),
            CalendarKind::Nse => Some("Asia/Kolkata"),
        }
    }

    /// When the session ends on an early-close day; `None` for a calendar
    /// without early closes.
    pub fn early_close(self) -> Option<Time> {
        match self {
            CalendarKind::Nyse => Some(time(13, 0, 0, 0)),
            CalendarKind::Always | CalendarKind::Nse => None,
        }
    }

    /// Local times at which a trading day's state changes, in order, and the
    /// state from then on. Every trading day starts and ends `Closed`.
    fn sessions(self) -> &'static [(Time, MarketState)] {
        const NYSE: &[(Time, MarketState)] = &[
            (time(9, 30, 0, 0), MarketState::Open),
            (time(16, 0, 0, 0), MarketState::Closed),
        ];
        const NSE: &[(Time, MarketState)] = &[
            (time(9, 0, 0, 0), MarketState::PreOpen),
            (time(9, 15, 0, 0), MarketState::Open),
            (time(15, 30, 0, 0), MarketState::Closed),
        ];
        match self {
            CalendarKind::Always => &[],
            CalendarKind::Nyse => NYSE,
            CalendarKind::Nse => NSE,
        }
    }
}

impl fmt::Display for CalendarKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a market is at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MarketState {
    Closed,
    /// Orders are collected and matched but nothing trades continuously (NSE 09:00–09:15).
    PreOpen,
    Open,
}

impl MarketState {
    pub fn as_str(self) -> &'static str {
        match self {
            MarketState::Closed => "closed",
            MarketState::PreOpen => "pre_open",
            MarketState::Open => "open",
        }
    }
}

impl fmt::Display for MarketState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a calendar could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalendarError {
    /// Neither the host's tzdata nor the copy built into brokerguard has the zone.
    ZoneNotFound {
        calendar: CalendarKind,
        zone: &'static str,
        /// jiff's own words for the last lookup that failed.
        detail: String,
    },
}

impl fmt::Display for CalendarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CalendarError::ZoneNotFound {
                calendar,
                zone,
                detail,
            } => write!(
                f,
                "the {calendar} calendar needs the time zone {zone}, found neither in the host's \
                 tzdata ($TZDIR or /usr/share/zoneinfo) nor in the copy built into brokerguard \
                 ({detail}); install the tzdata package (sudo apt-get install tzdata)"
            ),
        }
    }
}

impl std::error::Error for CalendarError {}

/// `YYYY-MM-DD` and nothing else (`2026-12-25`); `None` for any other form
/// or a day that does not exist (`2026-02-30`).
pub fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i32> {
        b[r].iter().try_fold(0i32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + i32::from(c - b'0'))
        })
    };
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    Date::new(
        i16::try_from(y).ok()?,
        i8::try_from(m).ok()?,
        i8::try_from(d).ok()?,
    )
    .ok()
}

/// One market's sessions: a kind, its zone and its holidays.
#[derive(Clone, Debug)]
pub struct Calendar {
    kind: CalendarKind,
    /// `None` for `always`.
    zone: Option<TimeZone>,
    holidays: BTreeSet<Date>,
    /// Days whose session ends at [`CalendarKind::early_close`].
    early_closes: BTreeSet<Date>,
}

/// Two calendars are the same when their kind, holidays and early closes
/// are (the zone follows from the kind).
impl PartialEq for Calendar {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.holidays == other.holidays
            && self.early_closes == other.early_closes
    }
}

impl Calendar {
    /// The calendar of `kind`, closed on `holidays` (dates in the exchange's
    /// zone; ignored for `always`). The zone comes from the host's tzdata
    /// (`$TZDIR`, else `/usr/share/zoneinfo`), else from the IANA database
    /// built into the binary.
    pub fn new(kind: CalendarKind, holidays: &[Date]) -> Result<Calendar, CalendarError> {
        Calendar::with_host_tzdb(kind, holidays, jiff::tz::db())
    }

    /// As [`Calendar::new`] with `host` standing for the host's tzdata.
    pub(crate) fn with_host_tzdb(
        kind: CalendarKind,
        holidays: &[Date],
        host: &TimeZoneDatabase,
    ) -> Result<Calendar, CalendarError> {
        let zone = kind
            .zone_name()
            .map(|name| {
                zone::find(name, host).map_err(|detail| CalendarError::ZoneNotFound {
                    calendar: kind,
                    zone: name,
                    detail,
                })
            })
            .transpose()?;
        let holidays = match kind {
            CalendarKind::Always => BTreeSet::new(),
            _ => holidays.iter().copied().collect(),
        };
        Ok(Calendar {
            kind,
            zone,
            holidays,
            early_closes: BTreeSet::new(),
        })
    }

    /// The same calendar with sessions ending early on `dates` (ignored by
    /// a calendar without early closes).
    pub fn with_early_closes(mut self, dates: &[Date]) -> Calendar {
        if self.kind.early_close().is_some() {
            self.early_closes = dates.iter().copied().collect();
        }
        self
    }

    pub fn kind(&self) -> CalendarKind {
        self.kind
    }

    /// The exchange zone's offset from UTC at `t`, in seconds east (New
    /// York in winter: -18000); 0 for `always`. For a broker's daily
    /// windows written in the market's local time.
    pub fn utc_offset_at(&self, t: SystemTime) -> i32 {
        self.zone
            .as_ref()
            .map_or(0, |z| z.to_offset(timestamp(t)).seconds())
    }

    /// The configured holidays, in order.
    pub fn holidays(&self) -> impl Iterator<Item = Date> + '_ {
        self.holidays.iter().copied()
    }

    /// True when `date` (in the exchange's zone) has sessions: a weekday
    /// that is not a holiday. Every day is one for `always`.
    pub fn is_trading_day(&self, date: Date) -> bool {
        self.kind == CalendarKind::Always
            || (!matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
                && !self.holidays.contains(&date))
    }

    /// The market's state at `t`.
    pub fn state_at(&self, t: SystemTime) -> MarketState {
        let Some(zone) = &self.zone else {
            return MarketState::Open;
        };
        let ts = timestamp(t);
        let today = zone.to_datetime(ts).date();
        if !self.is_trading_day(today) {
            return MarketState::Closed;
        }
        let mut state = MarketState::Closed;
        for (at, next) in self.boundaries_on(zone, today) {
            if at > ts {
                break;
            }
            state = next;
        }
        state
    }

    /// The first instant after `t` at which the state changes, and the new
    /// state. `None` for `always` (it never changes).
    pub fn next_change_after(&self, t: SystemTime) -> Option<(SystemTime, MarketState)> {
        let ts = timestamp(t);
        self.boundaries_after(ts)
            .next()
            .and_then(|(at, state)| Some((system_time(at)?, state)))
    }

    /// The first instant after `t` at which the market enters `state`
    /// (e.g. `Open`: NSE's 09:15, not its 09:00 pre-open). `None` for
    /// `always`, and for a state the calendar never enters (NYSE has no
    /// `PreOpen`).
    pub fn next_entry(&self, t: SystemTime, state: MarketState) -> Option<SystemTime> {
        let ts = timestamp(t);
        self.boundaries_after(ts)
            .find(|(_, s)| *s == state)
            .and_then(|(at, _)| system_time(at))
    }

    /// The first instant after `t` at which the market stops being closed:
    /// the start of the next trading day's first session (NSE's 09:00
    /// pre-open, NYSE's 09:30 open). What a broker warns ahead of, e.g. a
    /// day token that must be renewed before it. `None` for `always`.
    pub fn next_opening(&self, t: SystemTime) -> Option<SystemTime> {
        let ts = timestamp(t);
        let zone = self.zone.as_ref()?;
        let first = self.kind.sessions().first()?;
        self.trading_days_from(zone.to_datetime(ts).date())
            .filter_map(|d| zone.to_timestamp(d.to_datetime(first.0)).ok())
            .find(|at| *at > ts)
            .and_then(system_time)
    }

    /// Boundaries strictly after `ts`, in order; empty for `always`.
    fn boundaries_after(
        &self,
        ts: Timestamp,
    ) -> impl Iterator<Item = (Timestamp, MarketState)> + '_ {
        self.zone
            .iter()
            .flat_map(move |zone| {
                self.trading_days_from(zone.to_datetime(ts).date())
                    .flat_map(move |d| self.boundaries_on(zone, d))
            })
            .filter(move |(at, _)| *at > ts)
    }

    /// The instants of `date`'s session boundaries and the state each starts.
    fn boundaries_on<'a>(
        &'a self,
        zone: &'a TimeZone,
        date: Date,
    ) -> impl Iterator<Item = (Timestamp, MarketState)> + 'a {
        let early = self
            .kind
            .early_close()
            .filter(|_| self.early_closes.contains(&date));
        let sessions = self.kind.sessions();
        sessions
            .iter()
            .enumerate()
            .filter_map(move |(i, (at, state))| {
                // The last boundary (the close) moves on an early-close day.
                let at = match early {
                    Some(close) if i + 1 == sessions.len() => close,
                    _ => *at,
                };
                // A local time in a DST gap or overlap resolves as most software
                // does ("compatible"); no session boundary is near one anyway.
                let ts = zone.to_timestamp(date.to_datetime(at)).ok()?;
                Some((ts, *state))
            })
    }

    /// Trading days from `first` on. Bounded so that a search always ends:
    /// between any day and the next trading day lie at most the weekends
    /// and the configured holidays.
    fn trading_days_from(&self, first: Date) -> impl Iterator<Item = Date> + '_ {
        let limit = 2 * self.holidays.len() + 10;
        std::iter::successors(Some(first), |d| d.tomorrow().ok())
            .take(limit)
            .filter(|d| self.is_trading_day(*d))
    }
}

fn system_time(ts: Timestamp) -> Option<SystemTime> {
    SystemTime::try_from(ts).ok()
}

/// The IANA time zone `name` (the host's tzdata, else the built-in copy),
/// for schedules given in a zone (`daily_report = "08:30 Asia/Kolkata"`).
pub fn find_zone(name: &str) -> Result<TimeZone, String> {
    zone::find(name, jiff::tz::db())
}

#[cfg(test)]
mod tests;
