//! Order books of the WebSocket v2 `book` channel, kept to verify Kraken's
//! CRC32 checksum (PROTOCOLS.md §1.8). Prices and quantities stay the
//! exact decimal text received — never an `f64`, which would drop the
//! trailing zeros the checksum is computed over.
//!
//! A message is parsed with [`parse_book_message`]; each entry is applied
//! to its symbol's [`Book`] (a snapshot replaces it, an update changes it:
//! `qty` 0 removes a level, several changes to one level apply in order,
//! then the book is cut to the subscribed depth) and [`Book::checksum`]
//! is compared with the one Kraken sent.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

/// The checksum covers this many levels per side, whatever the depth.
pub const CHECKSUM_LEVELS: usize = 10;

/// Why a book message cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BookError {
    /// Not a book message of the documented shape.
    Shape(String),
    /// A price or quantity that is not a plain non-negative decimal.
    NotDecimal { field: &'static str, len: usize },
    /// The checksum is not an unsigned 32-bit integer.
    Checksum,
}

impl fmt::Display for BookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BookError::Shape(s) => write!(f, "book message of an unexpected shape: {s}"),
            BookError::NotDecimal { field, len } => write!(
                f,
                "book message with a {field} that is not a plain decimal ({len} characters)"
            ),
            BookError::Checksum => f.write_str("book message whose checksum is not a u32"),
        }
    }
}

impl std::error::Error for BookError {}

/// A non-negative decimal, kept as the text received (`0.00100000`).
#[derive(Clone, PartialEq, Eq)]
pub struct Decimal {
    text: String,
}

impl Decimal {
    /// `digits[.digits]`, nothing else (no sign, exponent or spaces).
    pub fn parse(text: &str, field: &'static str) -> Result<Self, BookError> {
        let bad = || BookError::NotDecimal {
            field,
            len: text.len(),
        };
        let (int, frac) = match text.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (text, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(int) || frac.is_some_and(|f| !digits(f)) || text.len() > 64 {
            return Err(bad());
        }
        Ok(Decimal {
            text: text.to_string(),
        })
    }

    /// From a JSON value's raw text: a number as written, or a string
    /// holding a decimal (the docs' examples quote them).
    fn from_raw(raw: &RawValue, field: &'static str) -> Result<Self, BookError> {
        let t = raw.get();
        if t.starts_with('"') {
            let s: String = serde_json::from_str(t).map_err(|_| BookError::NotDecimal {
                field,
                len: t.len(),
            })?;
            Decimal::parse(&s, field)
        } else {
            Decimal::parse(t, field)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn is_zero(&self) -> bool {
        self.text.bytes().all(|b| b == b'0' || b == b'.')
    }

    /// The numeric identity: integer digits without leading zeros and
    /// fraction digits without trailing zeros (`045.50` ≡ `45.5`).
    fn key(&self) -> PriceKey {
        let (int, frac) = self.text.split_once('.').unwrap_or((&self.text, ""));
        PriceKey {
            int: int.trim_start_matches('0').to_string(),
            frac: frac.trim_end_matches('0').to_string(),
        }
    }

    /// The checksum's form: `.` removed, then leading zeros removed.
    fn checksum_text(&self, out: &mut String) {
        let mut leading = true;
        for c in self.text.chars() {
            if c == '.' || (leading && c == '0') {
                continue;
            }
            leading = false;
            out.push(c);
        }
    }
}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Orders decimals by value without converting them.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PriceKey {
    int: String,
    frac: String,
}

impl Ord for PriceKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(&other.int))
            .then_with(|| self.frac.cmp(&other.frac))
    }
}

impl PartialOrd for PriceKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One price level as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Level {
    pub price: Decimal,
    pub qty: Decimal,
}

/// One symbol's book at the subscribed depth.
#[derive(Clone, Debug)]
pub struct Book {
    depth: usize,
    bids: BTreeMap<PriceKey, Level>,
    asks: BTreeMap<PriceKey, Level>,
}

impl Book {
    pub fn new(depth: usize) -> Self {
        Book {
            depth: depth.max(1),
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
        }
    }

    /// Replaces the whole book.
    pub fn apply_snapshot(&mut self, bids: &[Level], asks: &[Level]) {
        self.bids.clear();
        self.asks.clear();
        self.apply_update(bids, asks);
    }

    /// Applies every change in order, then cuts both sides to the depth.
    pub fn apply_update(&mut self, bids: &[Level], asks: &[Level]) {
        for (side, levels) in [(&mut self.bids, bids), (&mut self.asks, asks)] {
            for l in levels {
                if l.qty.is_zero() {
                    side.remove(&l.price.key());
                } else {
                    side.insert(l.price.key(), l.clone());
                }
            }
        }
        while self.bids.len() > self.depth {
            // The worst bid is the lowest.
            self.bids.pop_first();
        }
        while self.asks.len() > self.depth {
            // The worst ask is the highest.
            self.asks.pop_last();
        }
    }

    /// Bids, best (highest) first.
    pub fn bids(&self) -> impl Iterator<Item = &Level> {
        self.bids.values().rev()
    }

    /// Asks, best (lowest) first.
    pub fn asks(&self) -> impl Iterator<Item = &Level> {
        self.asks.values()
    }

    /// The text the checksum is computed over: the top 10 asks low → high,
    /// then the top 10 bids high → low, each as price + qty with `.` and
    /// leading zeros removed.
    pub fn checksum_input(&self) -> String {
        let mut s = String::new();
        for l in self
            .asks()
            .take(CHECKSUM_LEVELS)
            .chain(self.bids().take(CHECKSUM_LEVELS))
        {
            l.price.checksum_text(&mut s);
            l.qty.checksum_text(&mut s);
        }
        s
    }

    /// Kraken's checksum of the book as it stands.
    pub fn checksum(&self) -> u32 {
        crc32(self.checksum_input().as_bytes())
    }
}

/// CRC-32 (IEEE 802.3 / zlib polynomial, reflected), as `zlib.crc32`.
pub fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

/// Snapshot or update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BookKind {
    Snapshot,
    Update,
}

/// One symbol's part of a book message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookEntry {
    pub symbol: String,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
    pub checksum: u32,
}

/// A parsed `book` channel message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookMessage {
    pub kind: BookKind,
    pub entries: Vec<BookEntry>,
}

#[derive(Deserialize)]
struct RawMessage<'a> {
    #[serde(rename = "type")]
    kind: String,
    #[serde(borrow)]
    data: Vec<RawEntry<'a>>,
}

#[derive(Deserialize)]
struct RawEntry<'a> {
    symbol: String,
    #[serde(borrow, default)]
    bids: Vec<RawLevel<'a>>,
    #[serde(borrow, default)]
    asks: Vec<RawLevel<'a>>,
    checksum: Option<u64>,
}

#[derive(Deserialize)]
struct RawLevel<'a> {
    #[serde(borrow)]
    price: &'a RawValue,
    #[serde(borrow)]
    qty: &'a RawValue,
}

fn levels(raw: &[RawLevel<'_>]) -> Result<Vec<Level>, BookError> {
    raw.iter()
        .map(|l| {
            Ok(Level {
                price: Decimal::from_raw(l.price, "price")?,
                qty: Decimal::from_raw(l.qty, "qty")?,
            })
        })
        .collect()
}

/// Parses a `{"channel":"book","type":…,"data":[…]}` message, keeping
/// every price and quantity as its text.
pub fn parse_book_message(text: &str) -> Result<BookMessage, BookError> {
    let raw: RawMessage<'_> = serde_json::from_str(text)
        .map_err(|e| BookError::Shape(crate::peertext::short(&e.to_string())))?;
    let kind = match raw.kind.as_str() {
        "snapshot" => BookKind::Snapshot,
        "update" => BookKind::Update,
        other => {
            return Err(BookError::Shape(format!(
                "type \"{}\"",
                crate::peertext::short(other)
            )));
        }
    };
    let entries = raw
        .data
        .iter()
        .map(|e| {
            let checksum = e
                .checksum
                .and_then(|c| u32::try_from(c).ok())
                .ok_or(BookError::Checksum)?;
            Ok(BookEntry {
                symbol: e.symbol.clone(),
                bids: levels(&e.bids)?,
                asks: levels(&e.asks)?,
                checksum,
            })
        })
        .collect::<Result<Vec<_>, BookError>>()?;
    Ok(BookMessage { kind, entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lv(price: &str, qty: &str) -> Level {
        Level {
            price: Decimal::parse(price, "price").unwrap(),
            qty: Decimal::parse(qty, "qty").unwrap(),
        }
    }

    /// The v1 guide's worked example (PROTOCOLS.md §1.8).
    fn published() -> (Vec<Level>, Vec<Level>) {
        let asks = [
            "0.05005", "0.05010", "0.05015", "0.05020", "0.05025", "0.05030", "0.05035", "0.05040",
            "0.05045", "0.05050",
        ]
        .iter()
        .map(|p| lv(p, "0.00000500"))
        .collect();
        let bids = [
            "0.05000", "0.04995", "0.04990", "0.04980", "0.04975", "0.04970", "0.04965", "0.04960",
            "0.04955", "0.04950",
        ]
        .iter()
        .map(|p| lv(p, "0.00000500"))
        .collect();
        (bids, asks)
    }

    #[test]
    fn crc32_is_zlibs() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn published_example_gives_974947235() {
        let (bids, asks) = published();
        let mut book = Book::new(10);
        book.apply_snapshot(&bids, &asks);
        assert!(
            book.checksum_input()
                .starts_with("5005500501050050155005020500")
        );
        assert_eq!(book.checksum(), 974_947_235);
        // Order of arrival does not matter: the book sorts by value.
        let mut book = Book::new(10);
        let rb: Vec<Level> = bids.iter().rev().cloned().collect();
        let ra: Vec<Level> = asks.iter().rev().cloned().collect();
        book.apply_snapshot(&rb, &ra);
        assert_eq!(book.checksum(), 974_947_235);
    }

    #[test]
    fn docs_level_string_example() {
        let mut book = Book::new(10);
        book.apply_snapshot(&[], &[lv("45285.2", "0.00100000")]);
        assert_eq!(book.checksum_input(), "452852100000");
    }

    #[test]
    fn corrupted_update_is_detected() {
        let (bids, asks) = published();
        let mut book = Book::new(10);
        book.apply_snapshot(&bids, &asks);
        // The exchange changed one level; we applied a different quantity.
        book.apply_update(&[lv("0.05000", "0.00000600")], &[]);
        assert_ne!(book.checksum(), 974_947_235);
        // Restoring it gives the published checksum again.
        book.apply_update(&[lv("0.05000", "0.00000500")], &[]);
        assert_eq!(book.checksum(), 974_947_235);
    }

    #[test]
    fn updates_apply_in_order_remove_on_zero_and_truncate() {
        let (bids, asks) = published();
        let mut book = Book::new(10);
        book.apply_snapshot(&bids, &asks);
        // Three changes to one level in one message: the last wins; a new
        // best ask pushes the worst ask out of the depth.
        book.apply_update(
            &[
                lv("0.05001", "0.1"),
                lv("0.05001", "0.2"),
                lv("0.05001", "0"),
            ],
            &[lv("0.05004", "1.5")],
        );
        assert_eq!(book.asks().count(), 10);
        assert_eq!(book.asks().next().unwrap().price.as_str(), "0.05004");
        assert_eq!(book.asks().last().unwrap().price.as_str(), "0.05045");
        assert_eq!(book.bids().next().unwrap().price.as_str(), "0.05000");
        assert_eq!(book.bids().count(), 10);
        // A removal leaves a gap that no one fills (no level below the depth is known).
        book.apply_update(&[lv("0.04950", "0.00000000")], &[]);
        assert_eq!(book.bids().count(), 9);
        // A depth-25 book keeps 25 levels but checksums only the top 10.
        let mut deep = Book::new(25);
        let many: Vec<Level> = (0..30)
            .map(|i| lv(&format!("{}.5", 100 + i), "1"))
            .collect();
        deep.apply_snapshot(&[], &many);
        assert_eq!(deep.asks().count(), 25);
        assert_eq!(deep.asks().last().unwrap().price.as_str(), "124.5");
        let mut top10 = Book::new(10);
        top10.apply_snapshot(&[], &many[..10]);
        assert_eq!(deep.checksum(), top10.checksum());
    }

    #[test]
    fn trailing_zeros_are_kept_and_name_the_same_level() {
        let mut book = Book::new(10);
        book.apply_snapshot(
            &[lv("45283.5", "0.10000000")],
            &[lv("45285.2", "0.00100000")],
        );
        // Through f64 these would be "0.1" and "0.001", checksummed as "1".
        assert_eq!(book.checksum_input(), "45285210000045283510000000");
        // The same price written with a trailing zero updates that level.
        book.apply_update(&[], &[lv("45285.20", "0.00200000")]);
        assert_eq!(book.asks().count(), 1);
        assert_eq!(book.checksum_input(), "452852020000045283510000000");
        book.apply_update(&[], &[lv("45285.200", "0")]);
        assert_eq!(book.asks().count(), 0);
    }

    #[test]
    fn decimals_compare_by_value() {
        let k = |s: &str| Decimal::parse(s, "price").unwrap().key();
        assert!(k("9.99") < k("10"));
        assert!(k("0.05") < k("0.5"));
        assert!(k("0.1") < k("0.12"));
        assert_eq!(k("045.50"), k("45.5"));
        assert_eq!(k("0"), k("0.000"));
        for bad in ["", ".5", "5.", "-1", "1e-8", "1.2.3", " 1", "0x10", "1,5"] {
            assert!(Decimal::parse(bad, "price").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_numbers_and_strings_as_text() {
        let m = parse_book_message(
            r#"{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD",
            "bids":[{"price":45283.5,"qty":0.10000000}],
            "asks":[{"price":"45285.2","qty":"0.00100000"}],
            "checksum":3310070434,"timestamp":"2023-10-06T17:35:55.440295Z"}]}"#,
        )
        .unwrap();
        assert_eq!(m.kind, BookKind::Snapshot);
        let e = &m.entries[0];
        assert_eq!(e.symbol, "BTC/USD");
        assert_eq!(e.bids[0].qty.as_str(), "0.10000000");
        assert_eq!(e.asks[0].price.as_str(), "45285.2");
        assert_eq!(e.checksum, 3_310_070_434);
    }

    #[test]
    fn malformed_book_messages_are_errors() {
        let cases = [
            r#"{"channel":"book","type":"update","data":[{"symbol":"X","bids":[{"price":1e3,"qty":1}],"checksum":1}]}"#,
            r#"{"channel":"book","type":"update","data":[{"symbol":"X","bids":[{"price":-1,"qty":1}],"checksum":1}]}"#,
            r#"{"channel":"book","type":"update","data":[{"symbol":"X","bids":[{"price":true,"qty":1}],"checksum":1}]}"#,
            r#"{"channel":"book","type":"update","data":[{"symbol":"X","bids":[{"price":"1","qty":"a"}],"checksum":1}]}"#,
            r#"{"channel":"book","type":"update","data":[{"symbol":"X","checksum":4294967296}]}"#,
            r#"{"channel":"book","type":"update","data":[{"symbol":"X","checksum":-1}]}"#,
            r#"{"channel":"book","type":"update","data":[{"symbol":"X"}]}"#,
            r#"{"channel":"book","type":"delta","data":[]}"#,
            r#"{"channel":"book","type":"update","data":{}}"#,
            r#"{"channel":"book","type":"update"}"#,
            r#"{"channel":"book","type":"update","data":[{"symbol":"X","bids":[{"price":1}],"checksum":1}]}"#,
            "not json",
        ];
        for c in cases {
            assert!(parse_book_message(c).is_err(), "{c}");
        }
    }
}
