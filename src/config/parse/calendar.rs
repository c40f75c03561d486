//! The `[calendar.NAME]` tables: exchange holidays per market calendar,
//! and NYSE's early closes (days its session ends at 13:00).
//! Only calendars with sessions take them (`nse`, `nyse`; `always` is open
//! every day), every date must be `YYYY-MM-DD`, and a date listed twice is
//! reported, since it usually means another one was meant.

use std::collections::HashMap;

use toml::de::DeTable;

use super::walker::{Value, Walker, suggest};
use crate::calendar::{CalendarKind, Date, parse_date};
use crate::config::{CalendarConfig, CalendarsConfig};

/// The calendars that take a table, in the order messages list them.
pub(super) const CALENDAR_NAMES: &[&str] = &["nse", "nyse"];
pub(super) const CALENDAR_KEYS: &[&str] = &["holidays", "early_closes"];

impl Walker<'_, '_> {
    /// The `[calendar]` table: one sub-table per calendar.
    pub(super) fn calendars(&mut self, t: &DeTable<'_>, out: &mut CalendarsConfig) {
        for (k, v) in t.iter() {
            let name: &str = k.get_ref();
            let kp = format!("calendar.{name}");
            let kind = CalendarKind::parse(name);
            match kind.and_then(|kind| out.get_mut(kind)) {
                Some(cal) => {
                    let expected = format!("a table (a [calendar.{name}] header)");
                    if let Some(ct) = self.table(v, &kp, &expected) {
                        self.calendar(ct, &kp, cal);
                    }
                }
                None if kind == Some(CalendarKind::Always) => self.report(
                    k.span(),
                    &kp,
                    "the always calendar (open 24/7, for crypto) has no holidays; remove [calendar.always]",
                ),
                None if CALENDAR_KEYS.contains(&name) => self.report(
                    k.span(),
                    &kp,
                    format!(
                        "\"{name}\" belongs to one calendar; write it below a [calendar.nse] or \
                         [calendar.nyse] header"
                    ),
                ),
                None => {
                    let names = CALENDAR_NAMES.join(", ");
                    let message = match suggest(&name.to_lowercase(), CALENDAR_NAMES) {
                        Some(s) => format!(
                            "unknown calendar \"{name}\"; did you mean \"{s}\"? (the calendars \
                             with holidays are {names})"
                        ),
                        None => format!(
                            "unknown calendar \"{name}\"; the calendars with holidays are {names}"
                        ),
                    };
                    self.report(k.span(), &kp, message);
                }
            }
        }
    }

    fn calendar(&mut self, t: &DeTable<'_>, kp: &str, out: &mut CalendarConfig) {
        for (k, v) in t.iter() {
            let key: &str = k.get_ref();
            let keypath = format!("{kp}.{key}");
            match key {
                "holidays" => {
                    if let Some(h) = self.holidays(v, &keypath) {
                        out.holidays = h;
                    }
                }
                "early_closes" if kp == "calendar.nyse" => {
                    if let Some(h) = self.holidays(v, &keypath) {
                        out.early_closes = h;
                    }
                }
                "early_closes" => self.report(
                    k.span(),
                    &keypath,
                    format!(
                        "only NYSE closes early (13:00 New York) on set days; [{kp}] has no \
                         early_closes: list a closed day in holidays instead"
                    ),
                ),
                _ => self.unknown_key(k.span(), &keypath, key, &format!("[{kp}]"), CALENDAR_KEYS),
            }
        }
    }

    /// A list of `YYYY-MM-DD` strings, sorted; `None` if any is wrong.
    fn holidays(&mut self, v: &Value<'_>, key: &str) -> Option<Vec<Date>> {
        let items = self.array(v, key, "a list of dates such as [\"2026-12-25\"]")?;
        let mut seen: HashMap<Date, (usize, usize)> = HashMap::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let ik = format!("{key}[{i}]");
            let Some(s) = self.string(item, &ik) else {
                ok = false;
                continue;
            };
            let Some(date) = parse_date(&s) else {
                let shown: String = s.chars().take(40).collect();
                self.report(
                    item.span(),
                    &ik,
                    format!("\"{shown}\" is not a date; write YYYY-MM-DD, e.g. \"2026-12-25\""),
                );
                ok = false;
                continue;
            };
            let at = self.lines.locate(item.span().start);
            if let Some(first) = seen.insert(date, at) {
                self.report(
                    item.span(),
                    &ik,
                    format!(
                        "\"{s}\" is listed twice (first at line {}, column {}); remove one",
                        first.0, first.1
                    ),
                );
                // Keep the first line in the map for a third copy.
                seen.insert(date, first);
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        let mut dates: Vec<Date> = seen.into_keys().collect();
        dates.sort();
        Some(dates)
    }
}
