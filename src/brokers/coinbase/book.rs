//! Level 2 order books from Coinbase's `l2_data` messages (PROTOCOLS.md
//! §5.1): a `snapshot` event replaces a product's book, an `update` sets
//! each level's new quantity (`"0"` removes it). Prices are kept as exact
//! decimals (no float rounding decides a level), quantities as Coinbase
//! wrote them. Coinbase sends no checksum, so a book is checked for what
//! any book must satisfy: not crossed, and within [`MAX_LEVELS`] a side.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// Most levels a side may hold; more means the stream is not what we
/// think it is (the book is dropped and fetched again).
pub const MAX_LEVELS: usize = 50_000;
/// Decimal places a price may have.
const SCALE: u32 = 18;

/// An exact decimal price, scaled by 10^18.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Price(u128);

impl Price {
    pub fn parse(s: &str) -> Option<Price> {
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if int.is_empty() && frac.is_empty() || frac.len() > SCALE as usize {
            return None;
        }
        let digits = |p: &str| p.chars().all(|c| c.is_ascii_digit());
        if !digits(int) || !digits(frac) {
            return None;
        }
        let int: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut f: u128 = if frac.is_empty() {
            0
        } else {
            frac.parse().ok()?
        };
        f *= 10u128.pow(SCALE - frac.len() as u32);
        int.checked_mul(10u128.pow(SCALE))?
            .checked_add(f)
            .map(Price)
    }
}

/// One side of a level change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Bid,
    Offer,
}

/// One `updates[]` entry, as Coinbase sends it.
#[derive(Clone, Debug, Deserialize)]
pub struct Update {
    pub side: String,
    pub price_level: String,
    pub new_quantity: String,
}

/// One event of an `l2_data` message.
#[derive(Clone, Debug, Deserialize)]
pub struct L2Event {
    #[serde(rename = "type")]
    pub kind: String,
    pub product_id: String,
    #[serde(default)]
    pub updates: Vec<Update>,
}

#[derive(Deserialize)]
struct L2Message {
    #[serde(default)]
    events: Vec<L2Event>,
}

/// The events of an `l2_data` message.
pub fn parse_l2(text: &str) -> Result<Vec<L2Event>, String> {
    serde_json::from_str::<L2Message>(text)
        .map(|m| m.events)
        .map_err(|e| format!("an l2_data message Coinbase sent does not parse: {e}"))
}

/// Why a book must be dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BookProblem {
    BadLevel(String),
    Crossed,
    TooDeep,
}

impl BookProblem {
    /// The `reason` of the bot's `resync` event.
    pub fn reason(&self) -> &'static str {
        match self {
            BookProblem::BadLevel(_) => "malformed",
            BookProblem::Crossed => "crossed",
            BookProblem::TooDeep => "too_deep",
        }
    }
}

impl fmt::Display for BookProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BookProblem::BadLevel(what) => write!(f, "a level Coinbase sent is malformed ({what})"),
            BookProblem::Crossed => f.write_str("the best bid is at or above the best offer"),
            BookProblem::TooDeep => write!(f, "a side grew beyond {MAX_LEVELS} levels"),
        }
    }
}

/// One product's book.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Book {
    bids: BTreeMap<Price, String>,
    offers: BTreeMap<Price, String>,
}

fn is_zero(q: &str) -> bool {
    q.chars().all(|c| c == '0' || c == '.')
}

impl Book {
    /// Applies the updates of one event (after a snapshot replaced it).
    pub fn apply(&mut self, updates: &[Update]) -> Result<(), BookProblem> {
        for u in updates {
            let side = match u.side.as_str() {
                "bid" => Side::Bid,
                "offer" | "ask" => Side::Offer,
                other => {
                    return Err(BookProblem::BadLevel(format!(
                        "side \"{}\"",
                        crate::peertext::short(other)
                    )));
                }
            };
            let price = Price::parse(&u.price_level)
                .ok_or_else(|| BookProblem::BadLevel("price_level".into()))?;
            if Price::parse(&u.new_quantity).is_none() {
                return Err(BookProblem::BadLevel("new_quantity".into()));
            }
            let levels = match side {
                Side::Bid => &mut self.bids,
                Side::Offer => &mut self.offers,
            };
            if is_zero(&u.new_quantity) {
                levels.remove(&price);
            } else {
                levels.insert(price, u.new_quantity.clone());
                if levels.len() > MAX_LEVELS {
                    return Err(BookProblem::TooDeep);
                }
            }
        }
        match (self.bids.keys().next_back(), self.offers.keys().next()) {
            (Some(bid), Some(offer)) if bid >= offer => Err(BookProblem::Crossed),
            _ => Ok(()),
        }
    }

    pub fn depth(&self) -> (usize, usize) {
        (self.bids.len(), self.offers.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(side: &str, p: &str, q: &str) -> Update {
        Update {
            side: side.into(),
            price_level: p.into(),
            new_quantity: q.into(),
        }
    }

    #[test]
    fn prices_are_exact() {
        assert_eq!(Price::parse("1.10"), Price::parse("1.1"));
        assert!(Price::parse("0.00000001") < Price::parse("0.0000001"));
        assert!(Price::parse("21921.73") > Price::parse("21921.7"));
        for bad in ["", ".", "1e5", "-1", "1.2.3", "abc"] {
            assert_eq!(Price::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn updates_set_and_remove_levels_and_a_crossed_book_is_refused() {
        let mut b = Book::default();
        b.apply(&[up("bid", "100.5", "1"), up("offer", "100.7", "2")])
            .unwrap();
        b.apply(&[up("bid", "100.50", "3"), up("bid", "100.4", "1")])
            .unwrap();
        assert_eq!(b.depth(), (2, 1));
        b.apply(&[up("bid", "100.4", "0.000")]).unwrap();
        assert_eq!(b.depth(), (1, 1));
        assert_eq!(
            b.apply(&[up("bid", "100.7", "1")]),
            Err(BookProblem::Crossed)
        );
        let mut b = Book::default();
        assert!(matches!(
            b.apply(&[up("middle", "1", "1")]),
            Err(BookProblem::BadLevel(_))
        ));
        assert!(b.apply(&[up("bid", "x", "1")]).is_err());
    }

    #[test]
    fn l2_messages_parse() {
        let text = r#"{"channel":"l2_data","client_id":"","timestamp":"2023-02-09T20:32:50.714964855Z","sequence_num":0,"events":[{"type":"snapshot","product_id":"BTC-USD","updates":[{"side":"bid","event_time":"1970-01-01T00:00:00Z","price_level":"21921.73","new_quantity":"0.06317902"},{"side":"offer","event_time":"1970-01-01T00:00:00Z","price_level":"21921.9","new_quantity":"0.5"}]}]}"#;
        let ev = parse_l2(text).unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(
            (ev[0].kind.as_str(), ev[0].product_id.as_str()),
            ("snapshot", "BTC-USD")
        );
        let mut b = Book::default();
        b.apply(&ev[0].updates).unwrap();
        assert_eq!(b.depth(), (1, 1));
        assert!(parse_l2(r#"{"events":[{"type":1}]}"#).is_err());
    }
}
