//! Calendar tests: explicit UTC instants around every boundary, weekends,
//! holidays and New York's DST changes; nothing reads a clock.

use super::*;
use MarketState::{Closed, Open, PreOpen};

fn utc(s: &str) -> SystemTime {
    let ts: Timestamp = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
    SystemTime::try_from(ts).unwrap()
}

fn show(t: SystemTime) -> String {
    Timestamp::try_from(t).unwrap().to_string()
}

fn date(s: &str) -> Date {
    parse_date(s).unwrap_or_else(|| panic!("{s} is not a date"))
}

fn nse() -> Calendar {
    // Christmas, a Friday.
    Calendar::new(CalendarKind::Nse, &[date("2026-12-25")]).unwrap()
}

fn nyse() -> Calendar {
    // Thanksgiving, a Thursday.
    Calendar::new(CalendarKind::Nyse, &[date("2026-11-26")]).unwrap()
}

fn check_states(cal: &Calendar, cases: &[(&str, MarketState, &str)]) {
    for (at, want, why) in cases {
        assert_eq!(
            cal.state_at(utc(at)),
            *want,
            "{} at {at} ({why})",
            cal.kind()
        );
    }
}

#[test]
fn names_round_trip() {
    for k in CalendarKind::ALL {
        assert_eq!(CalendarKind::parse(k.as_str()), Some(k));
    }
    assert_eq!(CalendarKind::parse("NSE"), None);
    assert_eq!(CalendarKind::parse("nasdaq"), None);
    let states: Vec<&str> = [Closed, PreOpen, Open].iter().map(|s| s.as_str()).collect();
    assert_eq!(states, ["closed", "pre_open", "open"]);
}

#[test]
fn dates_are_strict() {
    assert_eq!(parse_date("2026-12-25"), Date::new(2026, 12, 25).ok());
    assert_eq!(parse_date("2028-02-29"), Date::new(2028, 2, 29).ok());
    for bad in [
        "2026-13-01",
        "2026-02-30",
        "2027-02-29",
        "2026-1-05",
        "20261225",
        "2026/12/25",
        "2026-12-25T00:00",
        " 2026-12-25",
        "+02026-12-25",
        "２026-12-25",
        "",
    ] {
        assert_eq!(parse_date(bad), None, "{bad:?}");
    }
}

#[test]
fn always_is_open_and_never_changes() {
    let cal = Calendar::new(CalendarKind::Always, &[date("2026-12-25")]).unwrap();
    for at in [
        "2026-11-21T12:00:00Z",
        "2026-12-25T12:00:00Z",
        "1970-01-01T00:00:00Z",
    ] {
        assert_eq!(cal.state_at(utc(at)), Open, "{at}");
    }
    assert_eq!(cal.holidays().count(), 0, "always keeps no holidays");
    let t = utc("2026-11-20T18:00:00Z");
    assert_eq!(cal.next_change_after(t), None);
    assert_eq!(cal.next_opening(t), None);
    assert_eq!(cal.next_entry(t, Open), None);
}

#[test]
fn nse_pre_open_then_open_then_close() {
    // Asia/Kolkata is UTC+05:30 all year: 09:00 IST = 03:30Z, 09:15 = 03:45Z, 15:30 = 10:00Z.
    check_states(
        &nse(),
        &[
            ("2026-11-23T03:29:59Z", Closed, "Monday 08:59:59"),
            ("2026-11-23T03:30:00Z", PreOpen, "09:00 order entry opens"),
            ("2026-11-23T03:38:00Z", PreOpen, "09:08 matching"),
            ("2026-11-23T03:44:59Z", PreOpen, "09:14:59 buffer"),
            ("2026-11-23T03:45:00Z", Open, "09:15 normal market"),
            ("2026-11-23T09:59:59Z", Open, "15:29:59"),
            ("2026-11-23T10:00:00Z", Closed, "15:30 close"),
            ("2026-11-23T18:30:00Z", Closed, "midnight IST, Tuesday"),
            ("2026-11-21T05:00:00Z", Closed, "Saturday 10:30"),
            ("2026-11-22T05:00:00Z", Closed, "Sunday 10:30"),
            ("2026-12-24T05:00:00Z", Open, "Thursday before the holiday"),
            ("2026-12-25T03:35:00Z", Closed, "holiday, pre-open hours"),
            ("2026-12-25T05:00:00Z", Closed, "holiday, market hours"),
        ],
    );
}

#[test]
fn nse_date_is_the_local_one() {
    // 2026-11-22T22:00Z is already Monday 03:30 in Kolkata: closed, but the
    // next change is that Monday's pre-open, not Tuesday's.
    let cal = nse();
    let t = utc("2026-11-22T22:00:00Z");
    assert_eq!(cal.state_at(t), Closed);
    assert_eq!(
        cal.next_change_after(t).map(|(at, s)| (show(at), s)),
        Some(("2026-11-23T03:30:00Z".into(), PreOpen))
    );
}

#[test]
fn nyse_open_moves_with_new_york_dst() {
    // DST starts Sunday 2026-03-08 and ends Sunday 2026-11-01.
    check_states(
        &nyse(),
        &[
            ("2026-03-06T14:29:59Z", Closed, "Friday 09:29:59 EST"),
            ("2026-03-06T14:30:00Z", Open, "Friday 09:30 EST"),
            ("2026-03-06T20:59:59Z", Open, "Friday 15:59:59 EST"),
            ("2026-03-06T21:00:00Z", Closed, "Friday 16:00 EST"),
            ("2026-03-08T15:00:00Z", Closed, "the Sunday of the change"),
            ("2026-03-09T13:29:59Z", Closed, "Monday 09:29:59 EDT"),
            ("2026-03-09T13:30:00Z", Open, "Monday 09:30 EDT"),
            ("2026-03-09T19:59:59Z", Open, "Monday 15:59:59 EDT"),
            ("2026-03-09T20:00:00Z", Closed, "Monday 16:00 EDT"),
            ("2026-10-30T13:30:00Z", Open, "Friday 09:30 EDT"),
            ("2026-10-30T20:00:00Z", Closed, "Friday 16:00 EDT"),
            ("2026-11-02T13:30:00Z", Closed, "Monday 08:30 EST"),
            ("2026-11-02T14:30:00Z", Open, "Monday 09:30 EST"),
            ("2026-11-02T21:00:00Z", Closed, "Monday 16:00 EST"),
            ("2026-11-26T15:00:00Z", Closed, "Thanksgiving"),
            ("2026-11-27T15:00:00Z", Open, "the Friday after"),
        ],
    );
}

#[test]
fn next_change_crosses_weekends_holidays_and_dst() {
    let cases: &[(&Calendar, &str, &str, MarketState)] = &[
        // (calendar, after, next change, new state)
        (
            &nse(),
            "2026-11-23T03:00:00Z",
            "2026-11-23T03:30:00Z",
            PreOpen,
        ),
        (&nse(), "2026-11-23T03:30:00Z", "2026-11-23T03:45:00Z", Open),
        (
            &nse(),
            "2026-11-23T03:45:00Z",
            "2026-11-23T10:00:00Z",
            Closed,
        ),
        (
            &nse(),
            "2026-11-23T10:00:00Z",
            "2026-11-24T03:30:00Z",
            PreOpen,
        ),
        // Friday's close, over the weekend.
        (
            &nse(),
            "2026-11-20T10:00:00Z",
            "2026-11-23T03:30:00Z",
            PreOpen,
        ),
        (
            &nse(),
            "2026-11-21T05:00:00Z",
            "2026-11-23T03:30:00Z",
            PreOpen,
        ),
        // Thursday's close, over Friday's holiday and the weekend.
        (
            &nse(),
            "2026-12-24T10:00:00Z",
            "2026-12-28T03:30:00Z",
            PreOpen,
        ),
        (
            &nyse(),
            "2026-03-06T12:00:00Z",
            "2026-03-06T14:30:00Z",
            Open,
        ),
        (
            &nyse(),
            "2026-03-06T14:30:00Z",
            "2026-03-06T21:00:00Z",
            Closed,
        ),
        // Friday's close in EST to Monday's open in EDT.
        (
            &nyse(),
            "2026-03-06T21:00:00Z",
            "2026-03-09T13:30:00Z",
            Open,
        ),
        // Wednesday's close, over Thanksgiving.
        (
            &nyse(),
            "2026-11-25T21:00:00Z",
            "2026-11-27T14:30:00Z",
            Open,
        ),
    ];
    for (cal, after, want_at, want_state) in cases {
        let got = cal.next_change_after(utc(after));
        assert_eq!(
            got.map(|(at, s)| (show(at), s)),
            Some((want_at.to_string(), *want_state)),
            "{} after {after}",
            cal.kind()
        );
        // The change really is one, and nothing changes before it.
        let (at, state) = got.unwrap();
        assert_eq!(cal.state_at(at), state);
        assert_ne!(cal.state_at(at - std::time::Duration::from_secs(1)), state);
    }
}

/// (calendar, after, entering (None: ask next_opening), expected instant, why).
type OpeningCase<'a> = (
    &'a Calendar,
    SystemTime,
    Option<MarketState>,
    Option<&'a str>,
    &'a str,
);

#[test]
fn next_opening_from_a_friday_evening() {
    // 23:30 in Kolkata, 13:00 in New York (NYSE still open).
    let nse_evening = utc("2026-11-20T18:00:00Z");
    // 18:00 in New York.
    let nyse_evening = utc("2026-11-20T23:00:00Z");
    let cases: &[OpeningCase] = &[
        (
            &nse(),
            nse_evening,
            None,
            Some("2026-11-23T03:30:00Z"),
            "Monday's 09:00 pre-open",
        ),
        (
            &nse(),
            nse_evening,
            Some(PreOpen),
            Some("2026-11-23T03:30:00Z"),
            "the same",
        ),
        (
            &nse(),
            nse_evening,
            Some(Open),
            Some("2026-11-23T03:45:00Z"),
            "Monday's 09:15 open",
        ),
        (
            &nse(),
            nse_evening,
            Some(Closed),
            Some("2026-11-23T10:00:00Z"),
            "Monday's close",
        ),
        (
            &nyse(),
            nyse_evening,
            None,
            Some("2026-11-23T14:30:00Z"),
            "Monday 09:30 EST",
        ),
        (
            &nyse(),
            nyse_evening,
            Some(Open),
            Some("2026-11-23T14:30:00Z"),
            "the same",
        ),
        (
            &nyse(),
            nyse_evening,
            Some(PreOpen),
            None,
            "NYSE has no pre-open",
        ),
        // Open at 13:00 EST: the next opening is Monday's, the close today's.
        (
            &nyse(),
            nse_evening,
            None,
            Some("2026-11-23T14:30:00Z"),
            "in a session",
        ),
        (
            &nyse(),
            nse_evening,
            Some(Closed),
            Some("2026-11-20T21:00:00Z"),
            "today's close",
        ),
        // From the Friday before DST ends to the Monday after.
        (
            &nyse(),
            utc("2026-10-30T22:00:00Z"),
            None,
            Some("2026-11-02T14:30:00Z"),
            "over DST's end",
        ),
        (
            &nse(),
            utc("2026-11-23T03:40:00Z"),
            None,
            Some("2026-11-24T03:30:00Z"),
            "in pre-open",
        ),
    ];
    for (cal, after, entering, want, why) in cases {
        let got = match entering {
            None => cal.next_opening(*after),
            Some(s) => cal.next_entry(*after, *s),
        };
        assert_eq!(
            got.map(show).as_deref(),
            *want,
            "{} after {} entering {entering:?} ({why})",
            cal.kind(),
            show(*after)
        );
    }
}

#[test]
fn holidays_on_end_every_search() {
    // Every weekday of three weeks a holiday: the next opening is after them.
    let mut holidays = Vec::new();
    let mut d = date("2026-11-23");
    while d < date("2026-12-14") {
        holidays.push(d);
        d = d.tomorrow().unwrap();
    }
    let cal = Calendar::new(CalendarKind::Nse, &holidays).unwrap();
    assert_eq!(
        cal.next_opening(utc("2026-11-20T18:00:00Z"))
            .map(show)
            .as_deref(),
        Some("2026-12-14T03:30:00Z")
    );
    // At the end of jiff's range there is nothing to find, and no panic.
    let far = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(400_000_000_000);
    assert_eq!(cal.next_change_after(far), None);
    assert_eq!(cal.state_at(far), Closed);
}

#[test]
fn zones_come_from_the_bundled_copy_when_the_host_has_none() {
    // A host without /usr/share/zoneinfo, as jiff sees it. (Pointing TZDIR
    // at an empty folder cannot stand in for that: jiff refuses a folder
    // without TZif files and falls through to /usr/share/zoneinfo.)
    let none = TimeZoneDatabase::none();
    assert!(none.get("America/New_York").is_err());
    let cal = Calendar::with_host_tzdb(CalendarKind::Nyse, &[], &none).unwrap();
    check_states(
        &cal,
        &[
            ("2026-03-06T14:30:00Z", Open, "Friday 09:30 EST"),
            ("2026-03-09T13:30:00Z", Open, "Monday 09:30 EDT"),
            ("2026-03-09T13:29:59Z", Closed, "Monday 09:29:59 EDT"),
        ],
    );
    let cal = Calendar::with_host_tzdb(CalendarKind::Nse, &[], &none).unwrap();
    assert_eq!(cal.state_at(utc("2026-11-23T03:45:00Z")), Open);
}

#[test]
fn a_zone_found_nowhere_is_an_error() {
    let e = zone::find("Mars/Olympus_Mons", &TimeZoneDatabase::none()).unwrap_err();
    assert!(
        e.contains("host tzdata") && e.contains("built-in copy"),
        "{e}"
    );
    let shown = CalendarError::ZoneNotFound {
        calendar: CalendarKind::Nyse,
        zone: "America/New_York",
        detail: e,
    }
    .to_string();
    assert!(
        shown.starts_with("the nyse calendar needs the time zone America/New_York"),
        "{shown}"
    );
    assert!(shown.ends_with("sudo apt-get install tzdata)"), "{shown}");
}

#[test]
fn utc_offset_follows_the_zone_and_its_dst() {
    let ny = nyse();
    assert_eq!(ny.utc_offset_at(utc("2026-01-05T12:00:00Z")), -5 * 3600);
    assert_eq!(ny.utc_offset_at(utc("2026-07-06T12:00:00Z")), -4 * 3600);
    assert_eq!(
        nse().utc_offset_at(utc("2026-07-06T12:00:00Z")),
        5 * 3600 + 1800
    );
    let always = Calendar::new(CalendarKind::Always, &[]).unwrap();
    assert_eq!(always.utc_offset_at(utc("2026-07-06T12:00:00Z")), 0);
}

#[test]
fn nyse_early_closes_end_the_session_at_13_00_new_york() {
    // The day after Thanksgiving 2026 (Friday 27 November) closes at 13:00
    // EST (18:00 UTC).
    let cal = nyse().with_early_closes(&[date("2026-11-27")]);
    check_states(
        &cal,
        &[
            ("2026-11-27T14:30:00Z", Open, "09:30 opens as usual"),
            ("2026-11-27T17:59:59Z", Open, "12:59:59"),
            ("2026-11-27T18:00:00Z", Closed, "13:00: the early close"),
            (
                "2026-11-27T20:30:00Z",
                Closed,
                "15:30: a normal day would trade",
            ),
            (
                "2026-11-30T20:30:00Z",
                Open,
                "the Monday after trades to 16:00",
            ),
        ],
    );
    assert_eq!(
        cal.next_change_after(utc("2026-11-27T15:00:00Z"))
            .map(|(t, s)| (show(t), s)),
        Some(("2026-11-27T18:00:00Z".to_string(), Closed))
    );
    assert_ne!(cal, nyse());
    // NSE has no early closes: the dates are ignored.
    let nse_early = nse().with_early_closes(&[date("2026-11-27")]);
    assert_eq!(nse_early, nse());
}
