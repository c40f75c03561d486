//! The IBKR registry entry: its section read from real configuration text
//! (problems at line:col), printed back so it loads again, its calendar,
//! target, remedies per layer and the reset window with injected instants.

use super::*;
use crate::config::{Config, Problem, effective_toml, parse_str};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    parse_str(text, Path::new("t.toml")).map_err(|e| e.problems().to_vec())
}

fn feed_toml(extra: &str) -> String {
    format!("[[feed]]\nname = \"tws\"\nbroker = \"ibkr\"\n{extra}\n")
}

fn one(extra: &str) -> FeedConfig {
    let cfg = parse(&feed_toml(extra)).unwrap_or_else(|p| panic!("{p:#?}"));
    cfg.feeds.into_iter().next().unwrap()
}

fn problems(extra: &str) -> Vec<(usize, usize, String, String)> {
    match parse(&feed_toml(extra)) {
        Ok(_) => panic!("expected problems with {extra}"),
        Err(p) => p
            .into_iter()
            .map(|p| (p.line, p.col, p.key, p.message))
            .collect(),
    }
}

#[test]
fn defaults_watch_the_session_on_the_paper_port() {
    let f = one("");
    let s = settings_of(&f);
    assert_eq!(
        (s.host.as_str(), s.port, s.client_ids.first),
        ("127.0.0.1", 7497, 1)
    );
    assert!(s.contracts.is_empty() && s.reset_window.is_none());
    assert_eq!(BROKER.target(&f), "127.0.0.1:7497");
    assert_eq!(BROKER.calendar(&f), CalendarKind::Always);
    assert!(BROKER.credentials(&f).is_empty());
}

#[test]
fn every_key_is_read() {
    let f = one(r#"host = "10.0.0.5"
port = 4002
client_id = 12
client_id_range = [10, 19]
reset_window = "23:45-00:45"
contracts = [
  { symbol = "AAPL", sec_type = "STK", exchange = "SMART", currency = "USD", primary_exchange = "NASDAQ" },
  { symbol = "ES", sec_type = "FUT", exchange = "CME", currency = "USD", local_symbol = "ESZ6", con_id = 495512563 },
  { symbol = "AAPL", sec_type = "OPT", exchange = "SMART", currency = "USD", last_trade_date = "20261218", strike = 150, right = "C", multiplier = "100", trading_class = "AAPL", generic_ticks = "233,236" },
]"#);
    let s = settings_of(&f);
    assert_eq!((s.host.as_str(), s.port), ("10.0.0.5", 4002));
    assert_eq!(
        s.client_ids,
        ClientIds {
            first: 12,
            range: Some((10, 19))
        }
    );
    assert_eq!(s.reset_window.unwrap().to_string(), "23:45-00:45");
    assert_eq!(s.contracts.len(), 3);
    assert_eq!(s.contracts[0].primary_exchange, "NASDAQ");
    assert_eq!(s.contracts[1].con_id, Some(495512563));
    assert_eq!(s.contracts[2].strike, Some(150.0));
    assert_eq!(s.contracts[2].generic_ticks, "233,236");
    assert_eq!(BROKER.target(&f), "10.0.0.5:4002");
    assert_eq!(
        BROKER.calendar(&f),
        CalendarKind::Nyse,
        "a stock: NYSE hours"
    );
}

#[test]
fn the_effective_config_loads_again_unchanged() {
    let text = feed_toml(
        r#"client_id_range = [3, 5]
reset_window = "23:45-00:45"
contracts = [{ symbol = "AAPL", sec_type = "STK", exchange = "SMART", currency = "USD", con_id = 265598 }, { symbol = "AAPL", sec_type = "OPT", exchange = "SMART", currency = "USD", last_trade_date = "20261218", strike = 152.5, right = "P" }]"#,
    );
    let cfg = parse(&text).unwrap();
    let shown = effective_toml(&cfg);
    let again = parse(&shown).unwrap_or_else(|p| panic!("{p:#?}\n{shown}"));
    assert_eq!(again.feeds[0].settings, cfg.feeds[0].settings, "{shown}");
}

#[test]
fn each_problem_is_reported_where_it_was_written() {
    let p = problems(
        r#"port = 70000
client_id = 5
client_id_range = [10, 19]
reset_window = "25:00-01:00"
contracts = [
  { symbol = "AAPL", sec_type = "STK", exchange = "SMART", currency = "USD" },
  { symbol = "AAPL", sec_type = "STK", exchange = "SMART", currency = "USD" },
  { symbol = "MSFT", sec_type = "STK", exchange = "SMART", currency = "usd" },
]"#,
    );
    let at: Vec<(usize, &str)> = p.iter().map(|(l, _, k, _)| (*l, k.as_str())).collect();
    assert_eq!(
        at,
        [
            (4, "feed[0].port"),
            (5, "feed[0].client_id"),
            (7, "feed[0].reset_window"),
            (10, "feed[0].contracts[1].symbol"),
            (11, "feed[0].contracts[2].currency"),
        ],
        "{p:#?}"
    );
    assert!(p[0].3.contains("7497 paper"), "{}", p[0].3);
    assert!(
        p[3].3.contains("same contract as contracts[0]"),
        "{}",
        p[3].3
    );
    // The column points at the value itself.
    assert_eq!(p[4].1, 71, "{p:#?}");
}

#[test]
fn wrong_types_and_unknown_contract_keys_are_named() {
    let p = problems(
        r#"port = "7497"
contracts = [{ symbol = "AAPL", sec_type = "STK", exchange = "SMART", curency = "USD", strike = "x" }]"#,
    );
    let keys: Vec<&str> = p.iter().map(|(_, _, k, _)| k.as_str()).collect();
    assert!(keys.contains(&"feed[0].port"), "{p:#?}");
    assert!(keys.contains(&"feed[0].contracts[0].curency"), "{p:#?}");
    assert!(keys.contains(&"feed[0].contracts[0].strike"), "{p:#?}");
    let unknown = p
        .iter()
        .find(|(_, _, k, _)| k.ends_with("curency"))
        .unwrap();
    assert!(
        unknown.3.contains("did you mean \"currency\""),
        "{}",
        unknown.3
    );
}

#[test]
fn a_url_is_refused_with_host_and_port_named() {
    let p = problems("url = \"ws://127.0.0.1:7497\"");
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].2, "feed[0].url");
    assert!(p[0].3.contains("by host and port"), "{}", p[0].3);
    let p = problems("account = \"main\"");
    assert!(p[0].3.contains("no credentials of its own"), "{}", p[0].3);
}

#[test]
fn the_calendar_follows_the_contracts_unless_set() {
    let fx = one(
        r#"contracts = [{ symbol = "EUR", sec_type = "CASH", exchange = "IDEALPRO", currency = "USD" }]"#,
    );
    assert_eq!(BROKER.calendar(&fx), CalendarKind::Always);
    let mixed = one(
        r#"contracts = [{ symbol = "EUR", sec_type = "CASH", exchange = "IDEALPRO", currency = "USD" }, { symbol = "SPY", sec_type = "STK", exchange = "ARCA", currency = "USD" }]"#,
    );
    assert_eq!(BROKER.calendar(&mixed), CalendarKind::Nyse);
}

fn err(layer: Layer, class: ErrorClass, message: &str) -> FeedError {
    FeedError::new(class, message).at(layer)
}

#[test]
fn remedies_per_layer() {
    let f = one("port = 4002");
    let r = |e: &FeedError| BROKER.remedy(&f, e.layer.unwrap(), e);
    let refused = err(
        Layer::Tcp,
        ErrorClass::Network,
        "connect to 127.0.0.1:4002 failed: Connection refused",
    );
    assert_eq!(
        r(&refused).as_deref(),
        Some(remedy::tcp_refused("127.0.0.1", 4002).as_str())
    );
    // Said once, when the message carries it already.
    let carried = err(
        Layer::Tcp,
        ErrorClass::Network,
        &format!("refused: {}", remedy::tcp_refused("127.0.0.1", 4002)),
    );
    assert_eq!(r(&carried).as_deref(), Some(""));
    let timeout = err(
        Layer::Tcp,
        ErrorClass::Network,
        "timeout (connect) after 5s",
    )
    .because(crate::feed::Cause::Timeout(Some(
        crate::net::Phase::Connect,
    )));
    assert_eq!(r(&timeout), None, "the generic firewall advice applies");
    let mute = err(Layer::Handshake, ErrorClass::Network, "connection closed");
    assert_eq!(r(&mute).as_deref(), Some(remedy::HANDSHAKE_UNANSWERED));
    let not_ready = FeedError::timeout("timeout (auth): no nextValidId").at(Layer::Auth);
    assert_eq!(r(&not_ready).as_deref(), Some(remedy::SESSION_NOT_READY));
    let in_use = err(
        Layer::Auth,
        ErrorClass::GoingAway,
        &remedy::client_id_in_use(1),
    );
    assert_eq!(r(&in_use).as_deref(), Some(""));
    let contract = err(
        Layer::Data,
        ErrorClass::Config,
        "TWS refused market data for contracts[0]",
    );
    assert_eq!(r(&contract).as_deref(), Some(""));
    assert_eq!(r(&err(Layer::Data, ErrorClass::Stalled, "nothing")), None);
}

fn utc(unix: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix)
}

#[test]
fn the_reset_window_is_read_in_the_calendars_zone() {
    let min = |m: u64| Duration::from_secs(60 * m);
    // 2026-01-06 04:50 UTC: 23:50 in New York, 10:20 in Kolkata.
    let down = utc(1_767_675_000);
    let stocks = one(r#"reset_window = "23:45-00:45"
contracts = [{ symbol = "AAPL", sec_type = "STK", exchange = "SMART", currency = "USD" }]"#);
    let why = BROKER.expected_outage(&stocks, down, down + min(10));
    assert!(
        why.as_deref()
            .is_some_and(|w| w.contains("America/New_York")),
        "{why:?}"
    );
    assert_eq!(
        BROKER.expected_outage(&stocks, down, down + min(56)),
        None,
        "outlasted"
    );
    // 2026-07-07 03:50 UTC is 23:50 in New York's summer time too.
    let summer = utc(1_783_396_200);
    assert!(
        BROKER
            .expected_outage(&stocks, summer, summer + min(1))
            .is_some()
    );
    // Outside the window: the usual alerts.
    let noon = utc(1_767_711_600);
    assert_eq!(BROKER.expected_outage(&stocks, noon, noon + min(1)), None);
    // A 24/7 feed reads the window in New York time as well.
    let session_only = one("reset_window = \"23:45-00:45\"");
    assert!(
        BROKER
            .expected_outage(&session_only, down, down + min(1))
            .is_some()
    );
    // An explicit calendar moves the window to its zone.
    let nse = one("reset_window = \"10:00-10:30\"\ncalendar = \"nse\"");
    assert!(BROKER.expected_outage(&nse, down, down + min(1)).is_some());
    // No window: never expected.
    assert_eq!(BROKER.expected_outage(&one(""), down, down + min(1)), None);
}

#[test]
fn a_session_only_feed_warns_when_stall_after_is_too_short() {
    assert!(BROKER.warnings(&one("")).is_empty());
    let w = BROKER.warnings(&one("ping_every = \"30s\"\nstall_after = \"20s\""));
    assert_eq!(w.len(), 1, "{w:?}");
}
