//! The registry entry: the feed's keys read at file:line:col, the limits
//! refused at `config check` (one feed above 3 000 instruments, a fourth
//! feed on one API key), credentials, the adapter built from them, and its
//! tick (token notes, `token_expiring`) driven by a fake clock.

use super::expiry::ist;
use super::*;
use crate::clock::{Clock, FakeClock};
use crate::config::{Config, ConfigError, Problem, effective_toml, parse_str};
use crate::feed::Action;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    match parse_str(text, Path::new("kite.toml")) {
        Ok(c) => Ok(c),
        Err(ConfigError::Invalid { problems, .. }) => Err(problems),
        Err(e) => panic!("{e}"),
    }
}

fn feed_toml(name: &str, account: &str, extra: &str) -> String {
    format!(
        "[[feed]]\nname = \"{name}\"\nbroker = \"kite\"\naccount = \"{account}\"\ninstruments = [408065, 884737]\n{extra}\n"
    )
}

#[test]
fn a_feed_reads_its_keys_and_prints_them_back() {
    let text = feed_toml(
        "nse",
        "main",
        "mode = \"full\"\ntoken_alert_before = \"45m\"\nurl = \"ws://127.0.0.1:9/\"\nrest_url = \"http://127.0.0.1:10\"",
    );
    let cfg = parse(&text).unwrap();
    let f = &cfg.feeds[0];
    assert_eq!(f.broker.name(), NAME);
    let s = f.settings::<KiteSettings>().unwrap();
    assert_eq!(s.instruments, [408065, 884737]);
    assert_eq!(s.mode, Mode::Full);
    assert_eq!(s.token_alert_before, Duration::from_secs(45 * 60));
    assert_eq!(f.calendar, None);
    assert_eq!(f.broker.calendar(f), CalendarKind::Nse);
    // The effective configuration loads again to the same feed.
    let shown = effective_toml(&cfg);
    assert!(
        shown.contains(
            "instruments = [408065, 884737]\nmode = \"full\"\ntoken_alert_before = \"45m\""
        ),
        "{shown}"
    );
    let again = parse(&shown).unwrap();
    assert_eq!(again.feeds[0], *f);
    // Defaults.
    let d = parse(&feed_toml("nse", "main", "")).unwrap();
    let s = d.feeds[0].settings::<KiteSettings>().unwrap();
    assert_eq!(
        (s.mode, s.token_alert_before),
        (Mode::Quote, Duration::from_secs(30 * 60))
    );
    assert_eq!(BROKER.target(&d.feeds[0]), "wss://ws.kite.trade:443/");
}

#[test]
fn problems_are_reported_at_their_keys() {
    let text = "[[feed]]\nname = \"nse\"\nbroker = \"kite\"\nmode = \"depth\"\ninstruments = [1, 2, 1]\ntoken_alert_before = \"10s\"\n";
    let p = parse(text).unwrap_err();
    let at: Vec<(usize, &str)> = p.iter().map(|p| (p.line, p.key.as_str())).collect();
    assert_eq!(
        at,
        [
            (3, "feed[0].account"),
            (4, "feed[0].mode"),
            (5, "feed[0].instruments"),
            (6, "feed[0].token_alert_before")
        ]
    );
    assert!(
        p[0].message.contains("KITE_MAIN_ACCESS_TOKEN"),
        "{}",
        p[0].message
    );
    assert!(
        p[1].message.contains("use one of ltp, quote, full"),
        "{}",
        p[1].message
    );
    assert!(
        p[2].message.contains("instrument 1 is listed twice"),
        "{}",
        p[2].message
    );
    assert!(p[3].message.contains("use 1m to 24h"), "{}", p[3].message);
    let missing =
        parse("[[feed]]\nname = \"nse\"\nbroker = \"kite\"\naccount = \"main\"\n").unwrap_err();
    assert!(
        missing[0].message.contains("needs instruments"),
        "{missing:?}"
    );
    // A key of another broker, and auth (a websocket key).
    let foreign = parse(&feed_toml("nse", "main", "auth = '{}'")).unwrap_err();
    assert!(
        foreign[0]
            .message
            .contains("only for broker = \"websocket\""),
        "{foreign:?}"
    );
}

#[test]
fn more_than_3000_instruments_on_one_feed_is_refused_with_how_to_split() {
    let tokens: Vec<String> = (1..=3001).map(|n| n.to_string()).collect();
    let text = format!(
        "[[feed]]\nname = \"big\"\nbroker = \"kite\"\naccount = \"main\"\ninstruments = [{}]\n",
        tokens.join(", ")
    );
    let p = parse(&text).unwrap_err();
    assert_eq!(
        (p[0].line, p[0].col, p[0].key.as_str()),
        (5, 15, "feed[0].instruments")
    );
    assert!(
        p[0].message.contains(
            "3001 instruments, but Kite allows 3000 per connection; split them into 2 feeds"
        ),
        "{}",
        p[0].message
    );
    let ok = format!(
        "[[feed]]\nname = \"big\"\nbroker = \"kite\"\naccount = \"main\"\ninstruments = [{}]\n",
        tokens[..3000].join(", ")
    );
    assert!(parse(&ok).is_ok());
}

#[test]
fn a_fourth_feed_on_one_account_is_refused_at_its_account() {
    let mut text = String::new();
    for (i, account) in ["main", "main", "other", "main", "main", "main"]
        .iter()
        .enumerate()
    {
        text.push_str(&feed_toml(&format!("f{i}"), account, ""));
    }
    let p = parse(&text).unwrap_err();
    let at: Vec<(usize, usize, &str)> = p.iter().map(|p| (p.line, p.col, p.key.as_str())).collect();
    // feed[4] and feed[5] are the fourth and fifth on account main.
    assert_eq!(
        at,
        [(28, 11, "feed[4].account"), (34, 11, "feed[5].account")]
    );
    assert_eq!(
        p[0].message,
        "API key of account main is used by 5 feeds (f0, f1, f3, f4, f5), but Kite allows 3 ticker connections \
         per API key; merge them into at most 3 feeds (they hold 10 instruments; each feed takes up to 3000), \
         or move some to another account with its own API key"
    );
    // Three per account is fine, whatever the number of accounts.
    let mut fine = String::new();
    for (i, account) in ["a", "a", "a", "b", "b", "b"].iter().enumerate() {
        fine.push_str(&feed_toml(&format!("f{i}"), account, ""));
    }
    assert!(parse(&fine).is_ok());
}

#[test]
fn with_credentials_known_two_accounts_on_one_key_share_its_connections() {
    let mut text = String::new();
    for (i, account) in ["a", "a", "b", "b"].iter().enumerate() {
        text.push_str(&feed_toml(&format!("f{i}"), account, ""));
    }
    let cfg = parse(&text).unwrap();
    let feeds: Vec<&FeedConfig> = cfg.feeds.iter().collect();
    let same = |name: &str| {
        name.ends_with("_API_KEY")
            .then(|| Secret::new("samekey000000001"))
    };
    let p = BROKER.check_feeds(&feeds, Some(&same));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].feed, p[0].key), (3, "account"));
    let fp = Secret::new("samekey000000001").fingerprint();
    assert!(
        p[0].message
            .starts_with(&format!("API key {fp} is used by 4 feeds (f0, f1, f2, f3)")),
        "{}",
        p[0].message
    );
    assert!(!p[0].message.contains("samekey000000001"));
    let distinct = |name: &str| Some(Secret::new(format!("{name}-value")));
    assert!(BROKER.check_feeds(&feeds, Some(&distinct)).is_empty());
    assert!(BROKER.check_feeds(&feeds, None).is_empty());
}

#[test]
fn credentials_are_per_account_with_the_secret_optional() {
    let cfg = parse(&feed_toml("nse", "user_2", "")).unwrap();
    let got: Vec<(String, bool)> = BROKER
        .credentials(&cfg.feeds[0])
        .into_iter()
        .map(|c| (c.name, c.optional))
        .collect();
    assert_eq!(
        got,
        [
            ("KITE_USER_2_API_KEY".to_string(), false),
            ("KITE_USER_2_ACCESS_TOKEN".to_string(), false),
            ("KITE_USER_2_API_SECRET".to_string(), true)
        ]
    );
    assert!(
        !BROKER
            .check_credential(FIELD_API_KEY, &Secret::new("UPPER"))
            .is_empty()
    );
}

struct Ctx {
    clock: FakeClock,
    state: PathBuf,
    values: Vec<(String, Secret)>,
}

impl Ctx {
    fn new(tag: &str, at: std::time::SystemTime) -> Ctx {
        let state = std::env::temp_dir().join(format!("bg-kite-ctx-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state).unwrap();
        Ctx {
            clock: FakeClock::at(at),
            state,
            values: vec![
                ("KITE_MAIN_API_KEY".into(), Secret::new("canarykey0000001")),
                (
                    "KITE_MAIN_ACCESS_TOKEN".into(),
                    Secret::new("CanaryAccessToken000000000000001"),
                ),
            ],
        }
    }

    fn with<R>(&self, f: impl FnOnce(&BuildContext<'_>) -> R) -> R {
        let values = self.values.clone();
        let lookup = move |n: &str| values.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let ctx =
            BuildContext::new(&lookup, self.state.clone()).with_clock(Arc::new(self.clock.clone()));
        f(&ctx)
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state);
    }
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

fn note<'a>(actions: &'a [Action], key: &str) -> Option<&'a str> {
    actions.iter().find_map(|a| match a {
        Action::Note { key: k, value } if *k == key => Some(value.as_str()),
        _ => None,
    })
}

/// The adapter the registry builds knows its token's issue time from the
/// record `kite-login` left, and its tick (what the feed thread calls even
/// while parked) raises `token_expiring` on Monday morning for a Friday
/// token — driven by a fake clock, nothing sleeps.
#[test]
fn the_built_adapter_times_its_token_from_the_record_and_alerts_on_monday() {
    let c = Ctx::new("monday", ist(2026, 11, 27, 16, 0, 0));
    let token = c.values[1].1.clone();
    records::save(
        &c.state,
        &records::IssueRecord {
            fingerprint: token.fingerprint(),
            issued_at: ist(2026, 11, 27, 8, 45, 0),
            by: records::IssuedBy::KiteLogin,
            user_id: None,
        },
        c.clock.wall(),
    )
    .unwrap();
    let cfg = parse(&feed_toml("nse", "main", "")).unwrap();
    let mut adapter = c.with(|ctx| BROKER.build(&cfg.feeds[0], ctx)).unwrap();
    let first = adapter.tick(c.clock.wall());
    assert_eq!(
        note(&first, "token_expires"),
        Some("2026-11-28T00:30:00Z (06:00 IST)")
    );
    assert_eq!(
        note(&first, "token_issued"),
        Some("2026-11-27T03:15:00Z (kite-login)")
    );
    assert_eq!(
        note(&first, "market_opens"),
        Some("2026-11-30T03:30:00Z (NSE pre-open)")
    );
    let mut fired = Vec::new();
    while c.clock.wall() < ist(2026, 11, 30, 10, 0, 0) {
        c.clock.advance(Duration::from_secs(60));
        for a in alerts(&adapter.tick(c.clock.wall())) {
            fired.push((crate::timefmt::rfc3339(c.clock.wall()), a));
        }
    }
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(
        fired[0].0,
        crate::timefmt::rfc3339(ist(2026, 11, 30, 8, 30, 0))
    );
    assert!(fired[0].1.starts_with("alert=token_expiring account=main expires=2026-11-28T00:30:00Z market_opens=2026-11-30T03:30:00Z"));
    // Doctor's view of the same, from local state only.
    let facts = c.with(|ctx| BROKER.session_facts(&cfg.feeds[0], ctx));
    let keys: Vec<&str> = facts.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys,
        [
            "token_expires",
            "token_issued",
            "token_state",
            "market_opens",
            "market"
        ]
    );
    assert_eq!(facts[2].1, "expired");
    assert_eq!(facts[4].1, "NSE open");
}

#[test]
fn a_feed_without_its_token_waits_for_it() {
    let mut c = Ctx::new("missing", ist(2026, 11, 30, 10, 0, 0));
    c.values.pop();
    let cfg = parse(&feed_toml("nse", "main", "")).unwrap();
    match c.with(|ctx| BROKER.build(&cfg.feeds[0], ctx)) {
        Err(BuildError::MissingCredential { name, .. }) => {
            assert_eq!(name, "KITE_MAIN_ACCESS_TOKEN")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("built without a token"),
    }
    let r = BROKER
        .remedy(
            &cfg.feeds[0],
            Layer::Credentials,
            &FeedError::new(ErrorClass::MissingCredential, "x"),
        )
        .unwrap();
    assert!(
        r.contains("sudo brokerguard kite-login --account main"),
        "{r}"
    );
    let v = c
        .with(|ctx| BROKER.validate_credentials(&cfg.feeds[0], ctx))
        .unwrap();
    assert_eq!(v.unwrap_err().class, ErrorClass::MissingCredential);
}
