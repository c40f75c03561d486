//! The pure configuration rules of a Coinbase Advanced Trade feed
//! (PROTOCOLS.md §5.1): channels (market data on `advanced-trade-ws`, the
//! user's own on `advanced-trade-ws-user`, never both in one feed),
//! product ids, what to do on a sequence gap, default endpoints and the
//! shape checks of the credential values. Every problem names the field
//! and says what to write instead.

use super::jwt::{self, key_name_shape_ok};
use crate::credentials::format::{FormatProblem, Severity};
use std::fmt;

/// The broker's name in the configuration (`broker = "coinbase"`).
pub const BROKER: &str = "coinbase";
/// Market data WebSocket.
pub const DEFAULT_MARKET_URL: &str = "wss://advanced-trade-ws.coinbase.com";
/// User order data WebSocket (heartbeats, user, futures_balance_summary).
pub const DEFAULT_USER_URL: &str = "wss://advanced-trade-ws-user.coinbase.com";
/// REST base URL.
pub const DEFAULT_REST_URL: &str = "https://api.coinbase.com";
/// Credential fields (`COINBASE_<ACCOUNT>_<FIELD>`).
pub const KEY_NAME_FIELD: &str = "API_KEY_NAME";
pub const SECRET_FIELD: &str = "API_SECRET";
/// Most product ids one feed may list (each is in every subscribe message).
pub const MAX_SYMBOLS: usize = 100;

/// A WebSocket channel a feed may list (`heartbeats` is always subscribed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Channel {
    Heartbeats,
    Candles,
    Status,
    Ticker,
    TickerBatch,
    Level2,
    MarketTrades,
    User,
    FuturesBalanceSummary,
}

impl Channel {
    pub const ALL: [Channel; 9] = [
        Channel::Heartbeats,
        Channel::Candles,
        Channel::Status,
        Channel::Ticker,
        Channel::TickerBatch,
        Channel::Level2,
        Channel::MarketTrades,
        Channel::User,
        Channel::FuturesBalanceSummary,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Heartbeats => "heartbeats",
            Channel::Candles => "candles",
            Channel::Status => "status",
            Channel::Ticker => "ticker",
            Channel::TickerBatch => "ticker_batch",
            Channel::Level2 => "level2",
            Channel::MarketTrades => "market_trades",
            Channel::User => "user",
            Channel::FuturesBalanceSummary => "futures_balance_summary",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The user's own data: needs a JWT and the user endpoint.
    pub fn is_user(self) -> bool {
        matches!(self, Channel::User | Channel::FuturesBalanceSummary)
    }

    /// The `channel` value of the messages it sends.
    pub fn answers_on(self) -> &'static str {
        match self {
            Channel::Level2 => "l2_data",
            other => other.as_str(),
        }
    }

    /// Whether its subscribe message carries `product_ids`.
    pub fn takes_products(self) -> bool {
        !matches!(self, Channel::Heartbeats | Channel::FuturesBalanceSummary)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a sequence gap does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnGap {
    /// A `resync` event to the bot and a resubscribe of every channel on
    /// the same connection (fresh snapshots).
    #[default]
    Resync,
    /// An alert and a `sequence_gap` event; the stream goes on as is.
    Alert,
}

impl OnGap {
    pub fn as_str(self) -> &'static str {
        match self {
            OnGap::Resync => "resync",
            OnGap::Alert => "alert",
        }
    }

    pub fn parse(s: &str) -> Option<OnGap> {
        match s {
            "resync" => Some(OnGap::Resync),
            "alert" => Some(OnGap::Alert),
            _ => None,
        }
    }
}

/// Which endpoint a feed's channels live on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Market,
    User,
}

impl Endpoint {
    pub fn default_url(self) -> &'static str {
        match self {
            Endpoint::Market => DEFAULT_MARKET_URL,
            Endpoint::User => DEFAULT_USER_URL,
        }
    }
}

/// A validated feed: its channels (without `heartbeats`, always added),
/// product ids and endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub channels: Vec<Channel>,
    pub symbols: Vec<String>,
    pub endpoint: Endpoint,
}

/// One problem with a Coinbase feed's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigProblem {
    NoChannels,
    UnknownChannel(String),
    DuplicateChannel(Channel),
    Mixed {
        market: Vec<Channel>,
        user: Vec<Channel>,
    },
    NoSymbols,
    BadSymbol(String),
    DuplicateSymbol(String),
    TooManySymbols(usize),
    BadOnGap(String),
}

fn list(cs: &[Channel]) -> String {
    cs.iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

const CHANNEL_LIST: &str = "\"ticker\", \"ticker_batch\", \"level2\", \"market_trades\", \
\"candles\", \"status\" (market data, with symbols) or \"user\", \"futures_balance_summary\" \
(the account's own, with account)";

impl ConfigProblem {
    /// The `[[feed]]` key the problem is about.
    pub fn field(&self) -> &'static str {
        match self {
            ConfigProblem::NoChannels
            | ConfigProblem::UnknownChannel(_)
            | ConfigProblem::DuplicateChannel(_)
            | ConfigProblem::Mixed { .. } => "channels",
            ConfigProblem::NoSymbols
            | ConfigProblem::BadSymbol(_)
            | ConfigProblem::DuplicateSymbol(_)
            | ConfigProblem::TooManySymbols(_) => "symbols",
            ConfigProblem::BadOnGap(_) => "on_sequence_gap",
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = crate::peertext::short;
        match self {
            ConfigProblem::NoChannels => {
                write!(f, "at least one channel is needed: {CHANNEL_LIST}")
            }
            ConfigProblem::UnknownChannel(c) => write!(
                f,
                "unknown channel \"{}\"; Coinbase's are {CHANNEL_LIST}",
                s(c)
            ),
            ConfigProblem::DuplicateChannel(c) => write!(f, "\"{c}\" is listed twice"),
            ConfigProblem::Mixed { market, user } => write!(
                f,
                "{} are market data and {} the account's own; Coinbase serves them on different \
                 endpoints, so split them into two feeds",
                list(market),
                list(user)
            ),
            ConfigProblem::NoSymbols => {
                f.write_str("market data channels need at least one product id, e.g. [\"BTC-USD\"]")
            }
            ConfigProblem::BadSymbol(p) => write!(
                f,
                "\"{}\" is not a Coinbase product id; write BASE-QUOTE in upper case, e.g. \"BTC-USD\"",
                s(p)
            ),
            ConfigProblem::DuplicateSymbol(p) => write!(f, "\"{p}\" is listed twice"),
            ConfigProblem::TooManySymbols(n) => write!(
                f,
                "{n} product ids; at most {MAX_SYMBOLS} per feed (split them into several feeds)"
            ),
            ConfigProblem::BadOnGap(v) => write!(
                f,
                "\"{}\" is not a choice; write \"resync\" (resubscribe for fresh snapshots, the \
                 default) or \"alert\"",
                s(v)
            ),
        }
    }
}

/// Whether a product id has Coinbase's shape: upper-case letters and
/// digits in two or more parts joined by `-` (`BTC-USD`, `BIT-28JUL23-CDE`).
pub fn symbol_shape_ok(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 2
        && s.len() <= 40
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        })
}

/// Validates `channels` and `symbols` and returns what the feed
/// subscribes to, or every problem at once.
pub fn plan(channels: &[String], symbols: &[String]) -> Result<Plan, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    let mut parsed: Vec<Channel> = Vec::new();
    for c in channels {
        match Channel::parse(c) {
            // Always subscribed; listing it changes nothing.
            Some(Channel::Heartbeats) => {}
            Some(ch) if parsed.contains(&ch) => problems.push(ConfigProblem::DuplicateChannel(ch)),
            Some(ch) => parsed.push(ch),
            None => problems.push(ConfigProblem::UnknownChannel(c.clone())),
        }
    }
    if channels.is_empty() {
        problems.push(ConfigProblem::NoChannels);
    }
    let (user, market): (Vec<Channel>, Vec<Channel>) = parsed.iter().partition(|c| c.is_user());
    if !user.is_empty() && !market.is_empty() {
        problems.push(ConfigProblem::Mixed {
            market: market.clone(),
            user: user.clone(),
        });
    }
    if market.iter().any(|c| *c != Channel::Status) && symbols.is_empty() {
        problems.push(ConfigProblem::NoSymbols);
    }
    let mut seen: Vec<&String> = Vec::new();
    for s in symbols {
        if !symbol_shape_ok(s) {
            problems.push(ConfigProblem::BadSymbol(s.clone()));
        } else if seen.contains(&s) {
            problems.push(ConfigProblem::DuplicateSymbol(s.clone()));
        }
        seen.push(s);
    }
    if symbols.len() > MAX_SYMBOLS {
        problems.push(ConfigProblem::TooManySymbols(symbols.len()));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let endpoint = if !user.is_empty() {
        Endpoint::User
    } else {
        Endpoint::Market
    };
    Ok(Plan {
        channels: parsed,
        symbols: symbols.to_vec(),
        endpoint,
    })
}

/// Hints about product ids that load but are probably not what was meant.
pub fn symbol_warnings(plan: &Plan) -> Vec<String> {
    if plan.endpoint == Endpoint::User {
        return Vec::new();
    }
    plan.symbols
        .iter()
        .filter(|s| s.ends_with("-USDC") && !matches!(s.as_str(), "USDT-USDC" | "EURC-USDC"))
        .map(|s| {
            format!(
                "symbols: \"{s}\": market data channels send the -USD product's data for -USDC \
                 product ids (only the user channel tells them apart)"
            )
        })
        .collect()
}

/// Format problems of a Coinbase credential value; messages never hold
/// the value. The private key must parse in an accepted form (an error,
/// naming the forms); a key name of another shape is a warning.
pub fn check_credential(field: &str, value: &str) -> Vec<FormatProblem> {
    match field {
        SECRET_FIELD => match jwt::parse_private_key(value) {
            Ok(_) => Vec::new(),
            Err(e) => vec![FormatProblem {
                severity: Severity::Error,
                message: e.to_string(),
            }],
        },
        KEY_NAME_FIELD if !key_name_shape_ok(value.trim()) => vec![FormatProblem {
            severity: Severity::Warning,
            message: format!(
                "is {} characters and not of the form organizations/{{org_id}}/apiKeys/{{key_id}}, \
                 the key name the CDP portal shows",
                value.chars().count()
            ),
        }],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn good_plans() {
        let p = plan(
            &s(&["ticker", "level2", "heartbeats"]),
            &s(&["BTC-USD", "ETH-USD"]),
        )
        .unwrap();
        assert_eq!(p.channels, vec![Channel::Ticker, Channel::Level2]);
        assert_eq!(p.endpoint, Endpoint::Market);
        let p = plan(&s(&["user"]), &[]).unwrap();
        assert_eq!(
            (p.endpoint, p.channels),
            (Endpoint::User, vec![Channel::User])
        );
        assert_eq!(Endpoint::User.default_url(), DEFAULT_USER_URL);
        assert!(plan(&s(&["status"]), &[]).is_ok());
        assert_eq!(Channel::Level2.answers_on(), "l2_data");
    }

    #[test]
    fn every_problem_at_once_naming_the_field() {
        let problems = plan(
            &s(&["ticker", "user", "orders", "ticker"]),
            &s(&["btc-usd", "BTC-USD", "BTC-USD", "BTCUSD"]),
        )
        .unwrap_err();
        let text: Vec<(String, &str)> = problems
            .iter()
            .map(|p| (p.to_string(), p.field()))
            .collect();
        for (needle, field) in [
            ("unknown channel \"orders\"", "channels"),
            ("\"ticker\" is listed twice", "channels"),
            ("split them into two feeds", "channels"),
            ("\"btc-usd\" is not a Coinbase product id", "symbols"),
            ("\"BTCUSD\" is not", "symbols"),
            ("\"BTC-USD\" is listed twice", "symbols"),
        ] {
            assert!(
                text.iter().any(|(t, f)| t.contains(needle) && *f == field),
                "{needle}: {text:#?}"
            );
        }
        assert_eq!(
            plan(&[], &s(&["BTC-USD"])),
            Err(vec![ConfigProblem::NoChannels])
        );
        assert_eq!(
            plan(&s(&["level2"]), &[]),
            Err(vec![ConfigProblem::NoSymbols])
        );
        let many: Vec<String> = (0..101).map(|i| format!("A{i}-USD")).collect();
        assert_eq!(
            plan(&s(&["ticker"]), &many),
            Err(vec![ConfigProblem::TooManySymbols(101)])
        );
    }

    #[test]
    fn usdc_products_on_market_channels_are_a_warning() {
        let p = plan(&s(&["ticker"]), &s(&["BTC-USDC", "USDT-USDC", "ETH-USD"])).unwrap();
        let w = symbol_warnings(&p);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("BTC-USDC"));
    }

    #[test]
    fn credential_shapes() {
        let (_, seed, _) = super::super::jwt::test_keys::ed25519_forms();
        assert!(check_credential(SECRET_FIELD, &seed).is_empty());
        let canary = "CANARY-coinbase-secret-value";
        let p = check_credential(SECRET_FIELD, canary);
        assert_eq!(p[0].severity, Severity::Error);
        assert!(p[0].message.contains("BEGIN EC PRIVATE KEY") && !p[0].message.contains(canary));
        assert!(check_credential(KEY_NAME_FIELD, "organizations/o/apiKeys/k").is_empty());
        let p = check_credential(KEY_NAME_FIELD, "plainkey");
        assert_eq!(p[0].severity, Severity::Warning);
    }
}
