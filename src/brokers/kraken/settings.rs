//! The pure configuration rules of a Kraken feed, for the registry and
//! `config check`: channels (public or private, never both in one feed),
//! symbols, book depth, OHLC interval, default endpoints, and the format
//! checks of the credential values. Every problem names the field and
//! says what to write instead.

use crate::credentials::format::{FormatProblem, Severity};
use base64::Engine;
use std::fmt;

/// The broker's name in the configuration (`broker = "kraken"`).
pub const BROKER: &str = "kraken";
/// Public WebSocket v2 endpoint.
pub const DEFAULT_PUBLIC_URL: &str = "wss://ws.kraken.com/v2";
/// Private (authenticated) WebSocket v2 endpoint.
pub const DEFAULT_PRIVATE_URL: &str = "wss://ws-auth.kraken.com/v2";
/// REST base URL (private calls are `POST <base>/0/private/<Method>`).
pub const DEFAULT_REST_URL: &str = "https://api.kraken.com";
/// Book depths Kraken offers.
pub const DEPTHS: [u32; 5] = [10, 25, 100, 500, 1000];
/// Book depth when `depth` is not set.
pub const DEFAULT_DEPTH: u32 = 10;
/// OHLC intervals (minutes) Kraken offers.
pub const OHLC_INTERVALS: [u32; 9] = [1, 5, 15, 30, 60, 240, 1440, 10080, 21600];
/// Credential fields of a key set (`KRAKEN_<ACCOUNT>_<FIELD>[_2|_3]`).
pub const CREDENTIAL_FIELDS: [&str; 2] = ["API_KEY", "API_SECRET"];

/// A WebSocket v2 channel a feed may subscribe to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Channel {
    Ticker,
    Book,
    Trade,
    Ohlc,
    Executions,
    Balances,
}

impl Channel {
    pub const ALL: [Channel; 6] = [
        Channel::Ticker,
        Channel::Book,
        Channel::Trade,
        Channel::Ohlc,
        Channel::Executions,
        Channel::Balances,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Ticker => "ticker",
            Channel::Book => "book",
            Channel::Trade => "trade",
            Channel::Ohlc => "ohlc",
            Channel::Executions => "executions",
            Channel::Balances => "balances",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Needs a token and the private endpoint.
    pub fn is_private(self) -> bool {
        matches!(self, Channel::Executions | Channel::Balances)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a public feed subscribes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicPlan {
    pub channels: Vec<Channel>,
    pub symbols: Vec<String>,
    /// Book depth (used when `channels` has `book`).
    pub depth: u32,
    /// OHLC interval in minutes; `None` leaves Kraken's default (1).
    pub ohlc_interval: Option<u32>,
}

/// What a private feed subscribes to (no symbols: the account's own data).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrivatePlan {
    pub channels: Vec<Channel>,
}

/// A validated feed: public or private, never both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedPlan {
    Public(PublicPlan),
    Private(PrivatePlan),
}

impl FeedPlan {
    /// The endpoint used when the feed sets no `url`.
    pub fn default_url(&self) -> &'static str {
        match self {
            FeedPlan::Public(_) => DEFAULT_PUBLIC_URL,
            FeedPlan::Private(_) => DEFAULT_PRIVATE_URL,
        }
    }

    pub fn is_private(&self) -> bool {
        matches!(self, FeedPlan::Private(_))
    }
}

/// One problem with a Kraken feed's configuration; `Display` names the
/// field and the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigProblem {
    NoChannels,
    UnknownChannel(String),
    DuplicateChannel(Channel),
    /// Public and private channels in one feed.
    Mixed {
        public: Vec<Channel>,
        private: Vec<Channel>,
    },
    /// A public feed without symbols.
    NoSymbols,
    /// Symbols given to a feed of private channels only.
    SymbolsOnPrivate,
    BadSymbol(String),
    DuplicateSymbol(String),
    BadDepth(u32),
    BadInterval(u32),
}

fn list(cs: &[Channel]) -> String {
    cs.iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ConfigProblem {
    /// The `[[feed]]` key the problem is about.
    pub fn field(&self) -> &'static str {
        match self {
            ConfigProblem::NoChannels
            | ConfigProblem::UnknownChannel(_)
            | ConfigProblem::DuplicateChannel(_)
            | ConfigProblem::Mixed { .. } => "channels",
            ConfigProblem::NoSymbols
            | ConfigProblem::SymbolsOnPrivate
            | ConfigProblem::BadSymbol(_)
            | ConfigProblem::DuplicateSymbol(_) => "symbols",
            ConfigProblem::BadDepth(_) => "depth",
            ConfigProblem::BadInterval(_) => "ohlc_interval",
        }
    }

    /// What is wrong and what to write instead, without the field name
    /// (the configuration reader puts the key path before it).
    pub fn detail(&self) -> String {
        let text = self.to_string();
        let prefix = format!("{}: ", self.field());
        text.strip_prefix(&prefix).unwrap_or(&text).to_string()
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigProblem::NoChannels => f.write_str(
                "channels: at least one is needed: \"ticker\", \"book\", \"trade\", \"ohlc\" \
                 (public) or \"executions\", \"balances\" (private)",
            ),
            ConfigProblem::UnknownChannel(c) => write!(
                f,
                "channels: unknown channel \"{}\"; Kraken's are \"ticker\", \"book\", \"trade\", \
                 \"ohlc\" (public) and \"executions\", \"balances\" (private)",
                crate::peertext::short(c)
            ),
            ConfigProblem::DuplicateChannel(c) => {
                write!(f, "channels: \"{c}\" is listed twice")
            }
            ConfigProblem::Mixed { public, private } => write!(
                f,
                "channels: {} are public and {} private; Kraken serves them on different \
                 endpoints, so split them into two feeds (one with the public channels and \
                 `symbols`, one with the private channels)",
                list(public),
                list(private)
            ),
            ConfigProblem::NoSymbols => f.write_str(
                "symbols: a feed of public channels needs at least one symbol, e.g. [\"BTC/USD\"]",
            ),
            ConfigProblem::SymbolsOnPrivate => f.write_str(
                "symbols: private channels carry the account's own data and take no symbols; \
                 remove `symbols`",
            ),
            ConfigProblem::BadSymbol(s) => write!(
                f,
                "symbols: \"{}\" is not a WebSocket v2 symbol; write BASE/QUOTE, e.g. \"BTC/USD\"",
                crate::peertext::short(s)
            ),
            ConfigProblem::DuplicateSymbol(s) => write!(f, "symbols: \"{s}\" is listed twice"),
            ConfigProblem::BadDepth(d) => write!(
                f,
                "depth: Kraken offers book depths 10, 25, 100, 500 and 1000, not {d}"
            ),
            ConfigProblem::BadInterval(i) => write!(
                f,
                "ohlc_interval: Kraken offers 1, 5, 15, 30, 60, 240, 1440, 10080 and 21600 \
                 (minutes), not {i}"
            ),
        }
    }
}

/// Whether a symbol has the v2 shape `BASE/QUOTE` (letters, digits, `.`).
pub fn symbol_shape_ok(s: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty() && p.len() <= 16 && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
    };
    matches!(s.split_once('/'), Some((b, q)) if part(b) && part(q))
}

/// Hints about symbols that have the right shape but are probably wrong.
pub fn symbol_warnings(symbols: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for s in symbols {
        if s.chars().any(|c| c.is_ascii_lowercase()) {
            out.push(format!(
                "symbols: \"{s}\" has lower-case letters; Kraken's symbols are upper case"
            ));
        }
        if s.starts_with("XBT/") || s.ends_with("/XBT") {
            out.push(format!(
                "symbols: \"{s}\": WebSocket v2 names bitcoin BTC (XBT is the v1 and REST name)"
            ));
        }
    }
    out
}

/// Validates a feed's `channels`, `symbols`, `depth` and `ohlc_interval`
/// and returns what it subscribes to, or every problem at once.
pub fn plan(
    channels: &[String],
    symbols: &[String],
    depth: Option<u32>,
    ohlc_interval: Option<u32>,
) -> Result<FeedPlan, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    let mut parsed: Vec<Channel> = Vec::new();
    for c in channels {
        match Channel::parse(c) {
            Some(ch) if parsed.contains(&ch) => problems.push(ConfigProblem::DuplicateChannel(ch)),
            Some(ch) => parsed.push(ch),
            None => problems.push(ConfigProblem::UnknownChannel(c.clone())),
        }
    }
    if channels.is_empty() {
        problems.push(ConfigProblem::NoChannels);
    }
    let (private, public): (Vec<Channel>, Vec<Channel>) =
        parsed.iter().partition(|c| c.is_private());
    if !private.is_empty() && !public.is_empty() {
        problems.push(ConfigProblem::Mixed {
            public: public.clone(),
            private: private.clone(),
        });
    }
    let is_private = public.is_empty() && !private.is_empty();
    if is_private && !symbols.is_empty() {
        problems.push(ConfigProblem::SymbolsOnPrivate);
    }
    if !public.is_empty() && symbols.is_empty() {
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
    let depth = depth.unwrap_or(DEFAULT_DEPTH);
    if !DEPTHS.contains(&depth) {
        problems.push(ConfigProblem::BadDepth(depth));
    }
    if let Some(i) = ohlc_interval {
        if !OHLC_INTERVALS.contains(&i) {
            problems.push(ConfigProblem::BadInterval(i));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(if is_private {
        FeedPlan::Private(PrivatePlan { channels: private })
    } else {
        FeedPlan::Public(PublicPlan {
            channels: public,
            symbols: symbols.to_vec(),
            depth,
            ohlc_interval,
        })
    })
}

/// The base field of a credential field, without a fallback suffix
/// (`API_SECRET_2` → `API_SECRET`).
pub fn base_field(field: &str) -> &str {
    field
        .strip_suffix("_2")
        .or_else(|| field.strip_suffix("_3"))
        .unwrap_or(field)
}

/// Format problems of a Kraken credential value (`field` with or without
/// a fallback suffix). The private key must be base64 of 64 bytes (an
/// error); an API key of an unusual shape is only a warning, since Kraken
/// may change its key format. Messages never contain the value.
pub fn check_credential(field: &str, value: &str) -> Vec<FormatProblem> {
    let n = value.chars().count();
    let mut out = Vec::new();
    match base_field(field) {
        "API_SECRET" => match base64::engine::general_purpose::STANDARD.decode(value) {
            Ok(bytes) if bytes.len() == 64 => {}
            Ok(bytes) => out.push(FormatProblem {
                severity: Severity::Error,
                message: format!(
                    "decodes to {} bytes; a Kraken private key is base64 of 64 bytes (88 characters)",
                    bytes.len()
                ),
            }),
            Err(_) => out.push(FormatProblem {
                severity: Severity::Error,
                message: format!(
                    "is not valid base64 ({n} characters); a Kraken private key is base64 of 64 bytes (88 characters)"
                ),
            }),
        },
        "API_KEY" => {
            let base64ish = value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c));
            if n != 56 || !base64ish {
                out.push(FormatProblem {
                    severity: Severity::Warning,
                    message: format!(
                        "is {n} characters{}; Kraken API keys so far are 56 base64 characters",
                        if base64ish {
                            ""
                        } else {
                            " with characters outside base64"
                        }
                    ),
                });
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn good_plans() {
        assert_eq!(
            plan(
                &s(&["ticker", "book"]),
                &s(&["BTC/USD", "ETH/EUR"]),
                Some(25),
                None
            ),
            Ok(FeedPlan::Public(PublicPlan {
                channels: vec![Channel::Ticker, Channel::Book],
                symbols: s(&["BTC/USD", "ETH/EUR"]),
                depth: 25,
                ohlc_interval: None,
            }))
        );
        let p = plan(&s(&["executions", "balances"]), &[], None, None).unwrap();
        assert!(p.is_private());
        assert_eq!(p.default_url(), "wss://ws-auth.kraken.com/v2");
        let p = plan(&s(&["ohlc"]), &s(&["BTC/USD"]), None, Some(60)).unwrap();
        assert_eq!(p.default_url(), "wss://ws.kraken.com/v2");
        match p {
            FeedPlan::Public(pp) => assert_eq!((pp.depth, pp.ohlc_interval), (10, Some(60))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_problem_at_once_naming_the_field() {
        let problems = plan(
            &s(&["ticker", "executions", "candles", "ticker"]),
            &s(&["BTCUSD", "BTC/USD", "BTC/USD", "BTC / USD"]),
            Some(20),
            Some(2),
        )
        .unwrap_err();
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        for p in &problems {
            assert!(
                p.to_string().starts_with(&format!("{}: ", p.field())),
                "{p}"
            );
            assert!(!p.detail().starts_with(p.field()), "{}", p.detail());
        }
        for (needle, field) in [
            ("unknown channel \"candles\"", "channels:"),
            ("\"ticker\" is listed twice", "channels:"),
            ("split them into two feeds", "channels:"),
            ("\"BTCUSD\" is not a WebSocket v2 symbol", "symbols:"),
            ("\"BTC / USD\" is not", "symbols:"),
            ("\"BTC/USD\" is listed twice", "symbols:"),
            ("not 20", "depth:"),
            ("not 2", "ohlc_interval:"),
        ] {
            assert!(
                text.iter()
                    .any(|t| t.contains(needle) && t.starts_with(field)),
                "{needle}: {text:#?}"
            );
        }
        assert_eq!(
            plan(&[], &s(&["BTC/USD"]), None, None),
            Err(vec![ConfigProblem::NoChannels])
        );
        assert_eq!(
            plan(&s(&["book"]), &[], None, None),
            Err(vec![ConfigProblem::NoSymbols])
        );
        assert_eq!(
            plan(&s(&["balances"]), &s(&["BTC/USD"]), None, None),
            Err(vec![ConfigProblem::SymbolsOnPrivate])
        );
        for d in DEPTHS {
            assert!(plan(&s(&["book"]), &s(&["BTC/USD"]), Some(d), None).is_ok());
        }
    }

    #[test]
    fn symbol_hints() {
        assert!(symbol_shape_ok("1INCH/USD") && symbol_shape_ok("USDT/USD"));
        assert!(!symbol_shape_ok("/USD") && !symbol_shape_ok("BTC/") && !symbol_shape_ok("A/B/C"));
        let w = symbol_warnings(&s(&["btc/usd", "XBT/USD", "BTC/USD"]));
        assert_eq!(w.len(), 2, "{w:?}");
    }

    #[test]
    fn credential_formats() {
        use base64::Engine;
        let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![1u8; n]);
        assert!(check_credential("API_SECRET", &b64(64)).is_empty());
        assert!(check_credential("API_SECRET_2", &b64(64)).is_empty());
        let p = check_credential("API_SECRET_3", &b64(32));
        assert_eq!(p[0].severity, Severity::Error);
        assert!(p[0].message.contains("32 bytes"));
        let canary = "CANARY*secret*value";
        let p = check_credential("API_SECRET", canary);
        assert!(p[0].message.contains("not valid base64") && !p[0].message.contains(canary));
        assert!(check_credential("API_KEY", &"A".repeat(56)).is_empty());
        let p = check_credential("API_KEY_2", "short");
        assert_eq!(p[0].severity, Severity::Warning);
        assert!(check_credential("OTHER", "x").is_empty());
        assert_eq!(base_field("API_KEY_2"), "API_KEY");
    }
}
