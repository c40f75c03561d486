//! The pure configuration rules of an Alpaca feed (PROTOCOLS.md §2): which
//! stream (`iex`, `sip`, `crypto`, `test`, `trade_updates`), which
//! channels each stream serves, the symbols' shapes, the default
//! endpoints (market data, trade updates on the paper or live host, REST),
//! and the format checks of the two credential values. Every problem names
//! the key and says what to write instead. No I/O: `section` reads the
//! TOML through these rules.

use crate::credentials::format::{self, FormatProblem};
use std::fmt;
use std::time::Duration;

/// The broker's name in the configuration (`broker = "alpaca"`).
pub const NAME: &str = "alpaca";
/// Market data host (every market-data stream is a path under it).
pub const DATA_HOST: &str = "wss://stream.data.alpaca.markets";
/// The default endpoint shown where a stream is not known (every one of
/// Alpaca's is wss://).
pub const DEFAULT_URL: &str = "wss://stream.data.alpaca.markets/v2/iex";
/// Trade updates (order events) for live keys.
pub const LIVE_STREAM_URL: &str = "wss://api.alpaca.markets/stream";
/// Trade updates for paper keys (different keys from live).
pub const PAPER_STREAM_URL: &str = "wss://paper-api.alpaca.markets/stream";
/// REST base for live keys.
pub const LIVE_REST_URL: &str = "https://api.alpaca.markets";
/// REST base for paper keys.
pub const PAPER_REST_URL: &str = "https://paper-api.alpaca.markets";
/// The only symbol of the `test` stream.
pub const TEST_SYMBOL: &str = "FAKEPACA";
/// The credential fields (`ALPACA_<ACCOUNT>_<FIELD>`).
pub const FIELD_KEY_ID: &str = "API_KEY_ID";
pub const FIELD_SECRET: &str = "API_SECRET_KEY";
/// Alpaca's client pings every 10 s and waits 5 s for the pong
/// (alpaca-trade-api-go `marketdata/stream/conn.go`): the defaults when a
/// feed sets no `ping_every` / `pong_timeout`.
pub const PING_EVERY: Duration = Duration::from_secs(10);
pub const PONG_TIMEOUT: Duration = Duration::from_secs(5);

/// What an Alpaca feed connects to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    Iex,
    Sip,
    Crypto,
    /// `v2/test`: the `FAKEPACA` symbol at all hours.
    Test,
    /// Order events of the account (`/stream`, `trade_updates`).
    TradeUpdates,
}

impl Stream {
    pub const ALL: [Stream; 5] = [
        Stream::Iex,
        Stream::Sip,
        Stream::Crypto,
        Stream::Test,
        Stream::TradeUpdates,
    ];
    pub const NAMES: [&'static str; 5] = ["iex", "sip", "crypto", "test", "trade_updates"];

    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Iex => "iex",
            Stream::Sip => "sip",
            Stream::Crypto => "crypto",
            Stream::Test => "test",
            Stream::TradeUpdates => "trade_updates",
        }
    }

    pub fn parse(s: &str) -> Option<Stream> {
        Stream::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The market-data path under [`DATA_HOST`] (`None` for trade updates).
    pub fn data_path(self) -> Option<&'static str> {
        match self {
            Stream::Iex => Some("/v2/iex"),
            Stream::Sip => Some("/v2/sip"),
            Stream::Crypto => Some("/v1beta3/crypto/us"),
            Stream::Test => Some("/v2/test"),
            Stream::TradeUpdates => None,
        }
    }

    /// The endpoint when the feed sets no `url`.
    pub fn default_url(self, paper: bool) -> String {
        match (self.data_path(), paper) {
            (Some(path), _) => format!("{DATA_HOST}{path}"),
            (None, true) => PAPER_STREAM_URL.to_string(),
            (None, false) => LIVE_STREAM_URL.to_string(),
        }
    }

    /// The channels this stream serves.
    pub fn channels(self) -> &'static [Channel] {
        use Channel::*;
        match self {
            Stream::Iex | Stream::Sip | Stream::Test => &[
                Trades,
                Quotes,
                Bars,
                DailyBars,
                UpdatedBars,
                Statuses,
                Lulds,
            ],
            Stream::Crypto => &[Trades, Quotes, Bars, DailyBars, UpdatedBars, Orderbooks],
            Stream::TradeUpdates => &[],
        }
    }

    pub fn is_market_data(self) -> bool {
        self != Stream::TradeUpdates
    }

    /// Stocks follow the NYSE calendar; crypto, the test stream and order
    /// events (crypto orders fill at any hour) are always open.
    pub fn follows_nyse(self) -> bool {
        matches!(self, Stream::Iex | Stream::Sip)
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A market-data channel, spelled as in the subscribe message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Trades,
    Quotes,
    Bars,
    DailyBars,
    UpdatedBars,
    Statuses,
    Lulds,
    Orderbooks,
}

impl Channel {
    pub const ALL: [Channel; 8] = [
        Channel::Trades,
        Channel::Quotes,
        Channel::Bars,
        Channel::DailyBars,
        Channel::UpdatedBars,
        Channel::Statuses,
        Channel::Lulds,
        Channel::Orderbooks,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Trades => "trades",
            Channel::Quotes => "quotes",
            Channel::Bars => "bars",
            Channel::DailyBars => "dailyBars",
            Channel::UpdatedBars => "updatedBars",
            Channel::Statuses => "statuses",
            Channel::Lulds => "lulds",
            Channel::Orderbooks => "orderbooks",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a feed streams, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub stream: Stream,
    /// Market data: the channels, each with every symbol. Empty for trade updates.
    pub channels: Vec<Channel>,
    pub symbols: Vec<String>,
    /// Paper keys (the trade-updates and REST host).
    pub paper: bool,
}

impl Plan {
    pub fn default_url(&self) -> String {
        self.stream.default_url(self.paper)
    }

    /// The REST base for the account check when the feed sets no `rest_url`.
    pub fn default_rest_url(&self) -> &'static str {
        if self.paper {
            PAPER_REST_URL
        } else {
            LIVE_REST_URL
        }
    }
}

/// One problem with an Alpaca feed's keys; `Display` names the key and the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    NoChannels(Stream),
    UnknownChannel(String),
    /// A channel another stream serves, not this one.
    WrongStream {
        channel: Channel,
        stream: Stream,
    },
    DuplicateChannel(Channel),
    NoSymbols(Stream),
    BadSymbol {
        symbol: String,
        stream: Stream,
    },
    DuplicateSymbol(String),
    /// `channels`/`symbols` on a trade-updates feed.
    NotForTradeUpdates(&'static str),
}

impl Problem {
    /// The `[[feed]]` key the problem is about.
    pub fn field(&self) -> &'static str {
        match self {
            Problem::NoChannels(_)
            | Problem::UnknownChannel(_)
            | Problem::WrongStream { .. }
            | Problem::DuplicateChannel(_) => "channels",
            Problem::NoSymbols(_) | Problem::BadSymbol { .. } | Problem::DuplicateSymbol(_) => {
                "symbols"
            }
            Problem::NotForTradeUpdates(key) => key,
        }
    }
}

fn channel_list(stream: Stream) -> String {
    stream
        .channels()
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let clean = crate::peertext::short;
        match self {
            Problem::NoChannels(s) => write!(
                f,
                "the {s} stream needs channels: any of {}, e.g. channels = [\"trades\"]",
                channel_list(*s)
            ),
            Problem::UnknownChannel(c) => write!(
                f,
                "unknown channel \"{}\"; Alpaca's are {}",
                clean(c),
                Channel::ALL
                    .iter()
                    .map(|c| format!("\"{c}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Problem::WrongStream { channel, stream } => write!(
                f,
                "the {stream} stream has no \"{channel}\" channel; it serves {}",
                channel_list(*stream)
            ),
            Problem::DuplicateChannel(c) => write!(f, "\"{c}\" is listed twice"),
            Problem::NoSymbols(s) => write!(
                f,
                "the {s} stream needs symbols, e.g. symbols = [{}]",
                example_symbol(*s)
            ),
            Problem::BadSymbol { symbol, stream } => write!(
                f,
                "\"{}\" is not a symbol of the {stream} stream; {}",
                clean(symbol),
                match stream {
                    Stream::Crypto => "crypto pairs look like \"BTC/USD\" (or \"*\" for all)",
                    Stream::Test => "the test stream serves only \"FAKEPACA\"",
                    _ =>
                        "stock symbols are upper case, e.g. \"AAPL\" or \"BRK.B\" (or \"*\" for all)",
                }
            ),
            Problem::DuplicateSymbol(s) => write!(f, "\"{}\" is listed twice", clean(s)),
            Problem::NotForTradeUpdates(key) => write!(
                f,
                "trade updates carry the account's own order events and take no `{key}`; \
                 remove it (market data is a feed of its own, e.g. stream = \"iex\")"
            ),
        }
    }
}

fn example_symbol(s: Stream) -> &'static str {
    match s {
        Stream::Crypto => "\"BTC/USD\"",
        Stream::Test => "\"FAKEPACA\"",
        _ => "\"AAPL\"",
    }
}

/// Whether `symbol` has the shape of one of `stream`'s symbols.
pub fn symbol_fits(stream: Stream, symbol: &str) -> bool {
    if symbol == "*" {
        return stream != Stream::Test;
    }
    match stream {
        Stream::Test => symbol == TEST_SYMBOL,
        Stream::Crypto => match symbol.split_once('/') {
            Some((base, quote)) => [base, quote].iter().all(|p| {
                !p.is_empty()
                    && p.len() <= 10
                    && p.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            }),
            None => false,
        },
        _ => {
            !symbol.is_empty()
                && symbol.len() <= 12
                && symbol.starts_with(|c: char| c.is_ascii_uppercase())
                && symbol
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '.')
        }
    }
}

/// Validates a feed's stream, channels and symbols into a [`Plan`], or
/// every problem found.
pub fn plan(
    stream: Stream,
    channels: Option<&[String]>,
    symbols: Option<&[String]>,
    paper: bool,
) -> Result<Plan, Vec<Problem>> {
    let mut problems = Vec::new();
    if !stream.is_market_data() {
        if channels.is_some() {
            problems.push(Problem::NotForTradeUpdates("channels"));
        }
        if symbols.is_some() {
            problems.push(Problem::NotForTradeUpdates("symbols"));
        }
        return if problems.is_empty() {
            Ok(Plan {
                stream,
                channels: Vec::new(),
                symbols: Vec::new(),
                paper,
            })
        } else {
            Err(problems)
        };
    }
    let mut chosen = Vec::new();
    for c in channels.unwrap_or(&[]) {
        match Channel::parse(c) {
            None => problems.push(Problem::UnknownChannel(c.clone())),
            Some(ch) if !stream.channels().contains(&ch) => problems.push(Problem::WrongStream {
                channel: ch,
                stream,
            }),
            Some(ch) if chosen.contains(&ch) => problems.push(Problem::DuplicateChannel(ch)),
            Some(ch) => chosen.push(ch),
        }
    }
    if channels.is_none_or(|c| c.is_empty()) {
        problems.push(Problem::NoChannels(stream));
    }
    let mut syms: Vec<String> = Vec::new();
    for s in symbols.unwrap_or(&[]) {
        if !symbol_fits(stream, s) {
            problems.push(Problem::BadSymbol {
                symbol: s.clone(),
                stream,
            });
        } else if syms.contains(s) {
            problems.push(Problem::DuplicateSymbol(s.clone()));
        } else {
            syms.push(s.clone());
        }
    }
    if symbols.is_none_or(|s| s.is_empty()) {
        problems.push(Problem::NoSymbols(stream));
    }
    if problems.is_empty() {
        Ok(Plan {
            stream,
            channels: chosen,
            symbols: syms,
            paper,
        })
    } else {
        Err(problems)
    }
}

/// Format checks of one credential value. Alpaca's key ids have been 20
/// upper-case letters and digits starting `PK` (paper) or `AK` (live),
/// and secrets 40 characters; Alpaca may change that, so a deviation is a
/// warning only. A key id that says paper on a live feed (or the reverse)
/// is caught by the REST check, which names the other endpoint.
pub fn check_credential(field: &str, value: &str) -> Vec<FormatProblem> {
    let mut out = Vec::new();
    match field {
        FIELD_KEY_ID => {
            if value.len() != 20
                || !value
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            {
                out.push(format::warning(format!(
                    "Alpaca key ids are 20 upper-case letters and digits; this one has {} \
                     characters: was the secret pasted here, or the id cut short?",
                    value.chars().count()
                )));
            } else if !value.starts_with("PK") && !value.starts_with("AK") {
                out.push(format::warning(
                    "Alpaca key ids start with PK (paper) or AK (live); this one does not",
                ));
            }
        }
        FIELD_SECRET if value.len() != 40 => {
            out.push(format::warning(format!(
                "Alpaca secret keys are 40 characters; this one has {}: copy it again from \
                 the dashboard (it is shown once, when the key is made)",
                value.chars().count()
            )));
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
    fn endpoints_per_stream() {
        let cases = [
            (
                Stream::Iex,
                false,
                "wss://stream.data.alpaca.markets/v2/iex",
            ),
            (Stream::Sip, true, "wss://stream.data.alpaca.markets/v2/sip"),
            (
                Stream::Crypto,
                false,
                "wss://stream.data.alpaca.markets/v1beta3/crypto/us",
            ),
            (
                Stream::Test,
                false,
                "wss://stream.data.alpaca.markets/v2/test",
            ),
            (
                Stream::TradeUpdates,
                false,
                "wss://api.alpaca.markets/stream",
            ),
            (
                Stream::TradeUpdates,
                true,
                "wss://paper-api.alpaca.markets/stream",
            ),
        ];
        for (stream, paper, url) in cases {
            assert_eq!(stream.default_url(paper), url, "{stream} paper={paper}");
        }
        for n in Stream::NAMES {
            assert_eq!(Stream::parse(n).map(Stream::as_str), Some(n));
        }
    }

    #[test]
    fn plans_and_their_problems() {
        let ok = plan(
            Stream::Iex,
            Some(&s(&["trades", "quotes"])),
            Some(&s(&["AAPL", "BRK.B"])),
            false,
        )
        .unwrap();
        assert_eq!(ok.channels, [Channel::Trades, Channel::Quotes]);
        assert_eq!(ok.default_rest_url(), LIVE_REST_URL);
        assert!(plan(Stream::TradeUpdates, None, None, true).is_ok());
        type Row = (
            Stream,
            Option<&'static [&'static str]>,
            Option<&'static [&'static str]>,
            &'static str,
        );
        let rows: &[Row] = &[
            (Stream::Iex, None, Some(&["AAPL"]), "needs channels"),
            (
                Stream::Iex,
                Some(&["ticks"]),
                Some(&["AAPL"]),
                "unknown channel \"ticks\"",
            ),
            (
                Stream::Crypto,
                Some(&["statuses"]),
                Some(&["BTC/USD"]),
                "has no \"statuses\"",
            ),
            (
                Stream::Iex,
                Some(&["orderbooks"]),
                Some(&["AAPL"]),
                "has no \"orderbooks\"",
            ),
            (
                Stream::Iex,
                Some(&["bars", "bars"]),
                Some(&["AAPL"]),
                "listed twice",
            ),
            (Stream::Iex, Some(&["bars"]), None, "needs symbols"),
            (Stream::Iex, Some(&["bars"]), Some(&["aapl"]), "upper case"),
            (
                Stream::Crypto,
                Some(&["bars"]),
                Some(&["BTCUSD"]),
                "\"BTC/USD\"",
            ),
            (
                Stream::Test,
                Some(&["trades"]),
                Some(&["AAPL"]),
                "only \"FAKEPACA\"",
            ),
            (
                Stream::TradeUpdates,
                Some(&["trades"]),
                None,
                "take no `channels`",
            ),
            (
                Stream::TradeUpdates,
                None,
                Some(&["AAPL"]),
                "take no `symbols`",
            ),
        ];
        for (stream, channels, symbols, needle) in rows {
            let c = channels.map(s);
            let y = symbols.map(s);
            let err = plan(*stream, c.as_deref(), y.as_deref(), false).unwrap_err();
            assert!(
                err.iter().any(|p| p.to_string().contains(needle)),
                "{stream} {channels:?} {symbols:?}: want {needle:?} in {err:?}"
            );
        }
    }

    #[test]
    fn credential_shapes_warn_only() {
        assert!(check_credential(FIELD_KEY_ID, "PKABCDEFGHIJ12345678").is_empty());
        assert!(check_credential(FIELD_SECRET, &"x".repeat(40)).is_empty());
        let short = check_credential(FIELD_KEY_ID, "PK123");
        assert_eq!(short[0].severity, format::Severity::Warning);
        assert!(short[0].message.contains("5 characters"));
        assert!(!check_credential(FIELD_KEY_ID, "XXABCDEFGHIJ12345678").is_empty());
        assert!(
            check_credential(FIELD_SECRET, "short")[0]
                .message
                .contains("has 5")
        );
    }
}
