//! A Kite feed's own keys (`instruments`, `mode`, `token_alert_before`),
//! read from its `[[feed]]` table at file:line:col and printed back by
//! `config check`. The shared keys it takes (`account`, `url`, `rest_url`)
//! are read by the configuration walker; `account` is required here.

use super::expiry::DEFAULT_TOKEN_ALERT_BEFORE;
use super::limits::check_instruments;
use super::ticker::Mode;
use crate::config::{FeedConfig, Section, Shown};
use std::time::Duration;

/// The `[[feed]]` keys of a Kite feed besides the common ones.
pub const KEYS: &[&str] = &[
    "account",
    "url",
    "rest_url",
    "instruments",
    "mode",
    "token_alert_before",
];

/// Kite's own default: a new subscription streams in quote mode.
pub const DEFAULT_MODE: Mode = Mode::Quote;
/// `token_alert_before` must lie in this range.
pub const TOKEN_ALERT_BEFORE_RANGE: (Duration, Duration) =
    (Duration::from_secs(60), Duration::from_secs(24 * 3600));

/// A Kite feed's section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KiteSettings {
    /// Instrument tokens, in the order configured (no repeats).
    pub instruments: Vec<u32>,
    pub mode: Mode,
    /// How long before the next NSE pre-open a token that will be dead by
    /// then raises `alert=token_expiring`.
    pub token_alert_before: Duration,
}

impl Default for KiteSettings {
    fn default() -> Self {
        KiteSettings {
            instruments: Vec::new(),
            mode: DEFAULT_MODE,
            token_alert_before: DEFAULT_TOKEN_ALERT_BEFORE,
        }
    }
}

impl crate::brokers::registry::BrokerSettings for KiteSettings {
    crate::broker_settings_plumbing!();

    fn show(&self, out: &mut Shown<'_>) {
        let tokens: Vec<i64> = self.instruments.iter().map(|&t| i64::from(t)).collect();
        out.integers("instruments", &tokens);
        out.string("mode", self.mode.as_str());
        out.duration("token_alert_before", self.token_alert_before);
    }
}

/// The settings of a feed (every default for a feed of another broker).
pub fn of(feed: &FeedConfig) -> KiteSettings {
    feed.settings::<KiteSettings>().cloned().unwrap_or_default()
}

/// Reads the section; every problem is reported through `s`. The
/// settings come back even with problems (the load fails on those anyway)
/// so the rules across feeds see what was written.
pub fn parse(s: &mut Section<'_, '_, '_, '_>, feed: &FeedConfig) -> Option<KiteSettings> {
    let mut k = KiteSettings::default();
    if feed.account.is_none() && !s.has("account") {
        s.report_missing(
            "account",
            format!(
                "broker = \"kite\" needs an account, e.g. account = \"main\": its credentials are then \
                 KITE_MAIN_API_KEY and KITE_MAIN_ACCESS_TOKEN ({} writes the token)",
                super::rest::login_command("main")
            ),
        );
    }
    match s.integer_list("instruments").map(|l| tokens(&l)) {
        Some(Ok(t)) => {
            if let Err(m) = check_instruments(&feed.name, &t) {
                s.report("instruments", m);
            }
            // Kept even when refused: the cross-feed rules count them.
            k.instruments = t;
        }
        Some(Err(m)) => {
            s.report("instruments", m);
        }
        None if !s.has("instruments") => {
            s.report_missing(
                "instruments",
                "broker = \"kite\" needs instruments: the instrument tokens to stream, e.g. instruments = [408065, 884737]",
            );
        }
        // Not a list of integers: reported by the reader.
        None => {}
    }
    if let Some(m) = s.choice("mode", "mode", &["ltp", "quote", "full"]) {
        k.mode = Mode::parse(m).unwrap_or(DEFAULT_MODE);
    }
    if let Some(d) = s.duration("token_alert_before") {
        let (min, max) = TOKEN_ALERT_BEFORE_RANGE;
        if d < min || d > max {
            s.report(
                "token_alert_before",
                format!(
                    "\"{}\" is out of range; use {} to {} (how long before the 09:00 IST pre-open \
                     a token that will be dead by then is alerted)",
                    crate::config::format_duration(d),
                    crate::config::format_duration(min),
                    crate::config::format_duration(max)
                ),
            );
        } else {
            k.token_alert_before = d;
        }
    }
    Some(k)
}

/// Instrument tokens as Kite's `u32`s, without repeats.
fn tokens(list: &[i64]) -> Result<Vec<u32>, String> {
    let mut out: Vec<u32> = Vec::with_capacity(list.len());
    let mut seen = std::collections::HashSet::with_capacity(list.len());
    for &n in list {
        let t = u32::try_from(n).ok().filter(|t| *t > 0).ok_or_else(|| {
            format!(
                "{n} is not an instrument token; tokens are 1 to {}",
                u32::MAX
            )
        })?;
        if !seen.insert(t) {
            return Err(format!(
                "instrument {t} is listed twice; list each instrument once"
            ));
        }
        out.push(t);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_u32_without_repeats() {
        assert_eq!(tokens(&[408065, 1]), Ok(vec![408065, 1]));
        assert!(
            tokens(&[0])
                .unwrap_err()
                .contains("not an instrument token")
        );
        assert!(tokens(&[-5]).is_err());
        assert!(tokens(&[i64::from(u32::MAX) + 1]).is_err());
        assert_eq!(
            tokens(&[7, 8, 7]).unwrap_err(),
            "instrument 7 is listed twice; list each instrument once"
        );
    }
}
